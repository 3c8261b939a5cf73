//! Kill -9 during a steady insert load, repeatedly; after each restart every acknowledged
//! insert must be in the log, and the views (a plain and a windowed aggregation, a
//! projection, a stream-stream and a stream-table join) must equal a recompute from the
//! log with no output lost or duplicated.

mod common;

use common::*;
use sluice_proto::v1 as pb;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::AtomicI64;
use std::sync::{Arc, Mutex};
use std::time::Duration;

const KEYS: i64 = 50;

fn json(r: &pb::ConsumedRecord) -> serde_json::Value {
    serde_json::from_slice(r.value.as_deref().unwrap_or(b"null")).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_under_load_loses_nothing_and_duplicates_nothing() {
    sigkill_under_load(&[]).await;
}

/// The same with no aggregate state cached in memory: every group update reads its state
/// from RocksDB, the path a view larger than its cache budget takes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_under_load_without_a_state_cache() {
    sigkill_under_load(&[("SLUICE_STATE_CACHE_MB", "0")]).await;
}

async fn sigkill_under_load(env: &[(&str, &str)]) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let port = free_port();
    let mut server = Server::start_with_env(&data, port, env).await;
    {
        let mut c = server.client().await;
        exec_ok(&mut c, "CREATE STREAM events (k STRING KEY, v BIGINT) WITH (kafka_topic='events', value_format='JSON', partitions=2);").await;
        exec_ok(&mut c, "CREATE TABLE totals AS SELECT k, COUNT(*) AS n, SUM(v) AS total FROM events GROUP BY k;").await;
        // Records are stamped when inserted; the default 24-hour grace period keeps every
        // one of them on time, so the windows are a function of the log alone.
        exec_ok(&mut c, "CREATE TABLE per_window AS SELECT k, COUNT(*) AS n, SUM(v) AS total FROM events WINDOW TUMBLING (SIZE 200 MILLISECONDS) GROUP BY k;").await;
        exec_ok(
            &mut c,
            "CREATE STREAM copy AS SELECT k, v FROM events WHERE v >= 0;",
        )
        .await;
        // Joins: each event meets the one record derived from it (a stream-stream join on
        // a value column, so exactly one result per event), and the aggregate of its key
        // (a LEFT stream-table join: one result per event, whatever the table holds).
        exec_ok(
            &mut c,
            "CREATE STREAM doubled AS SELECT k, v, v * 2 AS w FROM events;",
        )
        .await;
        exec_ok(&mut c, "CREATE STREAM pairs AS SELECT e.v, e.k, d.w FROM events e JOIN doubled d WITHIN 1 HOURS ON e.v = d.v;").await;
        exec_ok(&mut c, "CREATE STREAM enriched AS SELECT e.k, e.v, t.n FROM events e LEFT JOIN totals t ON e.k = t.k;").await;
    }
    let next = Arc::new(AtomicI64::new(0));
    let acked = Arc::new(Mutex::new(Vec::new()));
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos() as u64;
    for round in 0..4u64 {
        let writers: Vec<_> = (0..2)
            .map(|_| {
                tokio::spawn(insert_until_failure(
                    server.url(),
                    100,
                    KEYS,
                    next.clone(),
                    acked.clone(),
                ))
            })
            .collect();
        // Vary the kill point between rounds: 300..1100 ms into the load.
        let delay = 300
            + (seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(round * 1442695040888963407)
                >> 33)
                % 800;
        tokio::time::sleep(Duration::from_millis(delay)).await;
        server.kill9();
        for w in writers {
            let _ = w.await;
        }
        server = Server::start_with_env(&data, port, env).await;
    }
    let acked: Vec<(String, i64)> = acked.lock().unwrap().clone();
    assert!(
        acked.len() >= 400,
        "the load produced too few acknowledged rows: {}",
        acked.len()
    );
    let mut c = server.client().await;

    // Every acknowledged insert is in the log, once.
    let log = read_topic(&mut c, "events", 2).await;
    let mut seen: HashMap<i64, String> = HashMap::new();
    let mut windows: BTreeMap<(String, i64), (i64, i64)> = BTreeMap::new();
    for r in &log {
        let v = json(r)["V"].as_i64().unwrap();
        let k = String::from_utf8(r.key.clone().unwrap()).unwrap();
        let w = windows
            .entry((k.clone(), r.timestamp - r.timestamp % 200))
            .or_default();
        *w = (w.0 + 1, w.1 + v);
        assert!(seen.insert(v, k).is_none(), "value {v} is in the log twice");
    }
    for (k, v) in &acked {
        assert_eq!(
            seen.get(v),
            Some(k),
            "acknowledged insert ({k}, {v}) is missing from the log"
        );
    }

    // The aggregate view equals a recompute from the log.
    let mut expected: BTreeMap<String, (i64, i64)> = BTreeMap::new();
    for (v, k) in &seen {
        let e = expected.entry(k.clone()).or_default();
        e.0 += 1;
        e.1 += v;
    }
    let want: Vec<Vec<String>> = expected
        .iter()
        .map(|(k, (n, t))| vec![k.clone(), n.to_string(), t.to_string()])
        .collect();
    let got = eventually(&mut c, "SELECT k, n, total FROM totals;", |rows| {
        let mut rows = rows.to_vec();
        rows.sort();
        rows == want
    })
    .await;
    assert_eq!(got.len(), expected.len());

    // Exactly once downstream: one changelog record per input event, one copy per event.
    let changelog = read_topic(&mut c, "TOTALS", 2).await;
    assert_eq!(
        changelog.len(),
        log.len(),
        "the TOTALS changelog has lost or duplicated records"
    );
    // The windowed view too: every window equals its recompute, one changelog record per
    // event.
    let want: Vec<Vec<String>> = windows
        .iter()
        .map(|((k, start), (n, t))| {
            vec![k.clone(), start.to_string(), n.to_string(), t.to_string()]
        })
        .collect();
    eventually(
        &mut c,
        "SELECT k, WINDOWSTART, n, total FROM per_window;",
        |rows| {
            let mut rows = rows.to_vec();
            rows.sort();
            let mut want = want.clone();
            want.sort();
            rows == want
        },
    )
    .await;
    let windowed = read_topic(&mut c, "PER_WINDOW", 2).await;
    assert_eq!(
        windowed.len(),
        log.len(),
        "the PER_WINDOW changelog has lost or duplicated records"
    );
    let copy = read_topic(&mut c, "COPY", 2).await;
    let copied: HashSet<i64> = copy
        .iter()
        .map(|r| json(r)["V"].as_i64().unwrap())
        .collect();
    assert_eq!(copy.len(), log.len(), "COPY has lost or duplicated records");
    assert_eq!(copied, seen.keys().copied().collect::<HashSet<_>>());

    // The joins: once caught up, one result per event, none lost or repeated.
    let all: HashSet<i64> = seen.keys().copied().collect();
    for (topic, what) in [
        ("PAIRS", "the stream-stream join"),
        ("ENRICHED", "the stream-table join"),
    ] {
        let mut records = Vec::new();
        for _ in 0..200 {
            records = read_topic(&mut c, topic, 2).await;
            if records.len() >= log.len() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(
            records.len(),
            log.len(),
            "{what} ({topic}) has lost or duplicated records"
        );
        let values: HashSet<i64> = records
            .iter()
            .map(|r| match topic {
                // PAIRS is keyed by the join column, V.
                "PAIRS" => {
                    let key = r.key.as_deref().unwrap_or_default();
                    let v = i64::from_be_bytes(key.try_into().unwrap());
                    assert_eq!(json(r)["W"].as_i64(), Some(2 * v), "a wrong pair: {v}");
                    v
                }
                _ => json(r)["V"].as_i64().unwrap(),
            })
            .collect();
        assert_eq!(
            values, all,
            "{what} ({topic}) has other events than the log"
        );
    }
}

/// A view created by a build that kept aggregate state under its own keys (before the
/// state moved into the sink table's row) continues from that state after an upgrade.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aggregate_state_from_an_earlier_build_is_continued() {
    use sluice_common::codec::{decode_row, encode_row_vec};
    use sluice_storage::{Cf, EmbeddedLog, Txn};

    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let port = free_port();
    let mut server = Server::start_on(&data, port).await;
    let mut c = server.client().await;
    exec_ok(&mut c, "CREATE STREAM ev (k STRING KEY, v BIGINT) WITH (kafka_topic='ev', value_format='JSON', partitions=1);").await;
    exec_ok(
        &mut c,
        "CREATE TABLE totals AS SELECT k, COUNT(*) AS n, SUM(v) AS total FROM ev GROUP BY k;",
    )
    .await;
    for (k, v) in [("a", 1), ("a", 2), ("b", 10)] {
        exec_ok(
            &mut c,
            &format!("INSERT INTO ev (k, v) VALUES ('{k}', {v});"),
        )
        .await;
    }
    let sorted = |rows: &[Vec<String>]| {
        let mut rows = rows.to_vec();
        rows.sort();
        rows
    };
    let table = |rows: &[(&str, i64, i64)]| -> Vec<Vec<String>> {
        rows.iter()
            .map(|(k, n, t)| vec![k.to_string(), n.to_string(), t.to_string()])
            .collect()
    };
    let sql = "SELECT k, n, total FROM totals;";
    let want = table(&[("a", 2, 3), ("b", 1, 10)]);
    eventually(&mut c, sql, |rows| sorted(rows) == want).await;
    // A clean stop checkpoints the view's state into the state family, where earlier
    // builds kept all of it (after a kill it would still be in the changelog).
    drop(c);
    assert!(
        server.terminate(Duration::from_secs(30)).is_some(),
        "server did not stop"
    );

    // Rewrite the view's state as earlier builds kept it: the table row holds its columns,
    // ROWTIME and two reserved values only; the group's state is at 'A' · query · group.
    {
        let log = EmbeddedLog::open(&data).unwrap();
        let offsets = log.scan_prefix(Cf::State, b"O").unwrap();
        assert_eq!(offsets.len(), 1, "one persistent query, one partition");
        let num = u64::from_be_bytes(offsets[0].0[1..9].try_into().unwrap());
        let mut sink_prefix = vec![b'T'];
        sink_prefix.extend((num - 1).to_be_bytes());
        let rows = log.scan_prefix(Cf::State, &sink_prefix).unwrap();
        assert_eq!(rows.len(), 2);
        let mut txn = Txn::new();
        for (key, value) in rows {
            let row = decode_row(&value).unwrap();
            let (columns, state) = row.split_at(6);
            assert!(!state.is_empty(), "this build keeps the state in the row");
            txn.put(Cf::State, key.clone(), encode_row_vec(columns));
            let mut agg = vec![b'A'];
            agg.extend(num.to_be_bytes());
            agg.extend_from_slice(&key[9..]);
            txn.put(Cf::State, agg, encode_row_vec(state));
        }
        // Earlier builds recorded nothing about the layout in the query's catalog entry.
        let queries = log.scan_prefix(Cf::Catalog, b"query/").unwrap();
        assert_eq!(queries.len(), 1);
        let mut def: serde_json::Value = serde_json::from_slice(&queries[0].1).unwrap();
        for field in ["state_layout", "state_version", "types", "properties"] {
            def.as_object_mut().unwrap().remove(field);
        }
        txn.put(
            Cf::Catalog,
            queries[0].0.clone(),
            serde_json::to_vec(&def).unwrap(),
        );
        log.commit(txn).wait().await.unwrap();
    }

    server = Server::start_on(&data, port).await;
    let mut c = server.client().await;
    eventually(&mut c, sql, |rows| sorted(rows) == want).await;
    for (k, v) in [("a", 4), ("c", 5)] {
        exec_ok(
            &mut c,
            &format!("INSERT INTO ev (k, v) VALUES ('{k}', {v});"),
        )
        .await;
    }
    let want = table(&[("a", 3, 7), ("b", 1, 10), ("c", 1, 5)]);
    eventually(&mut c, sql, |rows| sorted(rows) == want).await;
    assert!(
        !server.log().contains("skipping record"),
        "records were skipped:\n{}",
        server.log()
    );
}
