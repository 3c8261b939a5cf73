//! Crashes at chosen points of the write path, cycle after cycle, against the real binary.
//!
//! Each cycle starts the server with one crash point armed (`SLUICE_TEST_CRASH_AT`, see
//! `sluice_common::crash`): inside a commit, before the batch is written or after it is
//! durable but before anyone is answered, or inside `CREATE ... AS SELECT`, after the
//! sink's topic exists but before the catalog knows it, or after the catalog commit but
//! before its query starts; or inside a checkpoint of the view's state, with its table
//! file written but not ingested, or ingested but the changelog records it covers not yet
//! deleted. Inserts and a DDL statement run until the process aborts
//! there, at a hit chosen per cycle (one of the first 40 commits, inserts' and views' alike).
//! RocksDB's write buffer is 1 MiB, so memtable flushes and compactions (which run on
//! RocksDB's own threads, out of reach of a crash point) are often in flight.
//!
//! After every crash: the server restarts, every acknowledged insert is in the log once,
//! every acknowledged CREATE exists, one that was not answered either exists or can be
//! issued again. At the end the views equal a recompute from the log, with one changelog
//! record per event.
//!
//! The suite runs 12 cycles (2 per point); `SLUICE_CRASH_CYCLES=240 cargo test --release --test
//! crash_points -- --nocapture` runs more.

mod common;

use common::*;
use sluice_proto::v1 as pb;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::os::unix::process::ExitStatusExt;
use std::sync::atomic::AtomicI64;
use std::sync::{Arc, Mutex};
use std::time::Duration;

const KEYS: i64 = 20;
const POINTS: [&str; 6] = [
    "commit.before_write",
    "commit.after_write",
    "ddl.after_topic",
    "ddl.after_catalog",
    "checkpoint.before_ingest",
    "checkpoint.after_ingest",
];
/// Small memtables, so flushes run during the cycles; and a checkpoint of the view's
/// state before every batch, so crashes land between and inside checkpoints.
const TUNING: [(&str, &str); 3] = [
    ("SLUICE_ROCKSDB_WRITE_BUFFER_MB", "1"),
    ("SLUICE_ROCKSDB_MEMTABLES_MB", "4"),
    ("SLUICE_STATE_CHECKPOINT_MB", "0"),
];

fn json(r: &pb::ConsumedRecord) -> serde_json::Value {
    serde_json::from_slice(r.value.as_deref().unwrap_or(b"null")).unwrap()
}

fn ddl(n: u64) -> String {
    format!(
        "CREATE STREAM copy{n} AS SELECT k, v FROM events WHERE v % 3 = {};",
        n % 3
    )
}

/// The COPYn streams the catalog lists.
async fn copies(
    c: &mut pb::sluice_client::SluiceClient<tonic::transport::Channel>,
) -> HashSet<u64> {
    let text = format!("{:?}", exec_ok(c, "SHOW STREAMS;").await).to_uppercase();
    text.split("COPY")
        .skip(1)
        .filter_map(|rest| {
            let digits: String = rest.chars().take_while(|ch| ch.is_ascii_digit()).collect();
            digits.parse().ok()
        })
        .collect()
}

/// COPYn holds exactly the log's events that pass its filter, once each.
async fn check_copy(
    c: &mut pb::sluice_client::SluiceClient<tonic::transport::Channel>,
    n: u64,
    values: &[i64],
) {
    let mut want: Vec<i64> = values
        .iter()
        .copied()
        .filter(|v| v % 3 == (n % 3) as i64)
        .collect();
    want.sort_unstable();
    let topic = format!("COPY{n}");
    let mut got = Vec::new();
    for _ in 0..400 {
        got = read_topic(c, &topic, 2)
            .await
            .iter()
            .map(|r| json(r)["V"].as_i64().unwrap())
            .collect();
        if got.len() >= want.len() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    got.sort_unstable();
    assert_eq!(got, want, "{topic} has lost, duplicated or wrong records");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crashes_inside_commits_and_ddl_lose_nothing() {
    let cycles: u64 = std::env::var("SLUICE_CRASH_CYCLES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(12);
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let port = free_port();
    {
        let server = Server::start_with_env(&data, port, &TUNING).await;
        let mut c = server.client().await;
        exec_ok(&mut c, "CREATE STREAM events (k STRING KEY, v BIGINT) WITH (kafka_topic='events', value_format='JSON', partitions=2);").await;
        exec_ok(
            &mut c,
            "CREATE TABLE totals AS SELECT k, COUNT(*) AS n, SUM(v) AS total FROM events GROUP BY k;",
        )
        .await;
    }
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos() as u64;
    eprintln!("seed {seed}");
    let next = Arc::new(AtomicI64::new(0));
    let acked = Arc::new(Mutex::new(Vec::new()));
    // Streams whose CREATE was answered: they must survive every later crash.
    let mut created: Vec<u64> = Vec::new();
    let mut checked = 0;
    let mut during_recovery = 0;
    let mut crashes: BTreeMap<&str, u64> = BTreeMap::new();
    for cycle in 0..cycles {
        let point = POINTS[(cycle % POINTS.len() as u64) as usize];
        let r = seed
            .wrapping_add(cycle)
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407)
            >> 33;
        // Commits: one of the first 40 (inserts and the views' output both commit), so
        // some land while the views catch up at start-up and some after a flush began.
        let hit = if !point.starts_with("ddl") {
            1 + r % 40
        } else {
            1
        };
        let armed = format!("{point}:{hit}");
        let mut env = TUNING.to_vec();
        env.push(("SLUICE_TEST_CRASH_AT", &armed));
        let status = match Server::start_or_exit(&data, port, &env).await {
            Err(status) => {
                during_recovery += 1;
                status
            }
            Ok(mut server) => {
                let writers: Vec<_> = (0..2)
                    .map(|_| {
                        tokio::spawn(insert_until_failure(
                            server.url(),
                            50,
                            KEYS,
                            next.clone(),
                            acked.clone(),
                        ))
                    })
                    .collect();
                let mut c = server.client().await;
                // The DDL statement comes after up to 300 ms of inserts.
                tokio::time::sleep(Duration::from_millis(r % 300)).await;
                let answered = point.starts_with("ddl") && exec(&mut c, &ddl(cycle)).await.is_ok();
                let status = match server.exited(Duration::from_secs(30)).await {
                    Some(status) => status,
                    None => panic!(
                        "cycle {cycle}: {armed} was not reached in 30 s; log:\n{}",
                        server.log()
                    ),
                };
                if answered {
                    created.push(cycle);
                }
                for w in writers {
                    let _ = w.await;
                }
                status
            }
        };
        assert_eq!(
            status.signal(),
            Some(6),
            "cycle {cycle}: the server did not abort at {armed}: {status:?}"
        );
        *crashes.entry(point).or_default() += 1;

        // Restarted without a crash point: what was acknowledged is there.
        let server = Server::start_with_env(&data, port, &TUNING).await;
        let mut c = server.client().await;
        let log = read_topic(&mut c, "events", 2).await;
        let mut seen: HashMap<i64, String> = HashMap::new();
        for r in &log {
            let v = json(r)["V"].as_i64().unwrap();
            let k = String::from_utf8(r.key.clone().unwrap()).unwrap();
            assert!(
                seen.insert(v, k).is_none(),
                "cycle {cycle} ({armed}): value {v} is in the log twice"
            );
        }
        for (k, v) in acked.lock().unwrap().iter() {
            assert_eq!(
                seen.get(v),
                Some(k),
                "cycle {cycle} ({armed}): acknowledged insert ({k}, {v}) is missing"
            );
        }
        let listed = copies(&mut c).await;
        for n in &created {
            assert!(
                listed.contains(n),
                "cycle {cycle} ({armed}): COPY{n} was created and acknowledged, and is gone: {listed:?}"
            );
        }
        // A CREATE the crash cut off either happened or can be issued again.
        if point.starts_with("ddl") && !listed.contains(&cycle) {
            let again = exec(&mut c, &ddl(cycle)).await;
            assert!(
                again.is_ok(),
                "cycle {cycle} ({armed}): re-creating COPY{cycle} after the crash failed: {again:?}"
            );
        }
        if point.starts_with("ddl") && !created.contains(&cycle) {
            created.push(cycle);
        }
        // A few copies at a time: an older one is checked against the log, then dropped.
        while created.len() > 3 {
            let n = created.remove(0);
            let values: Vec<i64> = seen.keys().copied().collect();
            check_copy(&mut c, n, &values).await;
            let prefix = format!("CSAS_COPY{n}_");
            for (id, _) in show_queries(&mut c).await {
                if id.starts_with(&prefix) {
                    exec_ok(&mut c, &format!("TERMINATE {id};")).await;
                }
            }
            exec_ok(&mut c, &format!("DROP STREAM copy{n};")).await;
            checked += 1;
        }
        let mut server = server;
        server.kill9();
    }

    // The views equal a recompute from the log, with one output record per event.
    let server = Server::start_with_env(&data, port, &TUNING).await;
    let mut c = server.client().await;
    let log = read_topic(&mut c, "events", 2).await;
    let mut expected: BTreeMap<String, (i64, i64)> = BTreeMap::new();
    let mut values: Vec<i64> = Vec::new();
    for r in &log {
        let v = json(r)["V"].as_i64().unwrap();
        let k = String::from_utf8(r.key.clone().unwrap()).unwrap();
        let e = expected.entry(k).or_default();
        *e = (e.0 + 1, e.1 + v);
        values.push(v);
    }
    let want: Vec<Vec<String>> = expected
        .iter()
        .map(|(k, (n, t))| vec![k.clone(), n.to_string(), t.to_string()])
        .collect();
    eventually(&mut c, "SELECT k, n, total FROM totals;", |rows| {
        let mut rows = rows.to_vec();
        rows.sort();
        rows == want
    })
    .await;
    let changelog = read_topic(&mut c, "TOTALS", 2).await;
    assert_eq!(
        changelog.len(),
        log.len(),
        "the TOTALS changelog has lost or duplicated records"
    );
    for n in &created {
        check_copy(&mut c, *n, &values).await;
        checked += 1;
    }
    let acked = acked.lock().unwrap().len();
    eprintln!(
        "{cycles} crashes ({crashes:?}; {during_recovery} while recovering), {acked} acknowledged inserts, {} in the log, {checked} streams created in a crashing cycle and checked",
        log.len()
    );
    assert!(acked >= 500, "too few inserts were acknowledged: {acked}");
}
