//! Replacing a running query without loss (issue #14, item 7): `CREATE OR REPLACE TABLE v
//! AS SELECT ...` builds the new version from the log while the old one keeps serving and
//! writing, then swaps. Across the swap the view's topic must hold every update exactly
//! once (per key, the counts 1, 2, ..., n with no gap and no repeat: the old query's for
//! the records before the swap, the new one's after), and the view must be the new
//! query's over the whole log, also when the server is killed while the replacement is
//! being built.

mod common;

use common::*;
use sluice_proto::v1 as pb;
use sluice_proto::v1::sluice_client::SluiceClient;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tonic::transport::Channel;

const KEYS: i64 = 20;
const EVENTS: &str = "CREATE STREAM events (k STRING KEY, v BIGINT) \
                      WITH (kafka_topic='events', value_format='JSON', partitions=2);";
const OLD: &str = "CREATE TABLE totals AS SELECT k, COUNT(*) AS n FROM events GROUP BY k;";
const NEW: &str = "CREATE OR REPLACE TABLE totals AS SELECT k, COUNT(*) AS n, SUM(v) AS total FROM events GROUP BY k;";

/// Inserts events `v` = next, next+1, ... (key `k{v % KEYS}`) in requests of 100 until
/// `stop`, recording what was acknowledged.
async fn writer(
    url: String,
    next: Arc<AtomicI64>,
    acked: Arc<Mutex<Vec<i64>>>,
    stop: Arc<AtomicBool>,
) {
    let mut c = SluiceClient::connect(url).await.unwrap();
    while !stop.load(Ordering::SeqCst) {
        insert_batch(&mut c, &next, &acked).await;
    }
}

async fn insert_batch(c: &mut SluiceClient<Channel>, next: &AtomicI64, acked: &Mutex<Vec<i64>>) {
    let first = next.fetch_add(100, Ordering::SeqCst);
    let values: Vec<i64> = (first..first + 100).collect();
    let req = pb::BulkInsertRequest {
        target: "events".into(),
        columns: vec!["k".into(), "v".into()],
        rows: values
            .iter()
            .map(|v| pb::Row {
                values: vec![s(&format!("k{}", v % KEYS)), big(*v)],
            })
            .collect(),
        batch_id: first as u64,
        ..Default::default()
    };
    let mut acks = c
        .bulk_insert(tokio_stream::iter(vec![req]))
        .await
        .unwrap()
        .into_inner();
    let a = acks.message().await.unwrap().unwrap();
    assert_eq!(a.rows, 100);
    acked.lock().unwrap().extend(values);
}

/// Waits until the view counts `n` events in all.
async fn await_count(c: &mut SluiceClient<Channel>, n: i64) {
    eventually(c, "SELECT k, n FROM totals;", |rows| {
        rows.iter()
            .map(|r| r[1].parse::<i64>().unwrap())
            .sum::<i64>()
            == n
    })
    .await;
}

/// Waits until `new` is the only query and RUNNING: the replacement has taken over.
async fn await_takeover(c: &mut SluiceClient<Channel>, new: &str) {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let q = show_queries(c).await;
        if q.len() == 1 && q[0].0 == new && q[0].1 == "RUNNING" {
            return;
        }
        assert!(Instant::now() < deadline, "no take-over by {new}: {q:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Checks the topic and the view against the acknowledged events: per key, the topic's
/// counts run 1..=n exactly once each, the old query's rows (without TOTAL) come first
/// and the new query's (with TOTAL, the running sum) after; the view holds the new query's
/// result over every event. Returns how many topic records each query wrote.
async fn check(c: &mut SluiceClient<Channel>, acked: &[i64]) -> (usize, usize) {
    let mut per_key: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    for v in acked {
        per_key
            .entry(format!("k{}", v % KEYS))
            .or_default()
            .push(*v);
    }
    for vs in per_key.values_mut() {
        vs.sort();
    }
    // The view: the new query's over the whole log, once it has consumed everything.
    let expect: Vec<Vec<String>> = per_key
        .iter()
        .map(|(k, vs)| {
            vec![
                k.clone(),
                vs.len().to_string(),
                vs.iter().sum::<i64>().to_string(),
            ]
        })
        .collect();
    eventually(c, "SELECT k, n, total FROM totals;", |rows| {
        let mut rows = rows.to_vec();
        rows.sort();
        rows == expect
    })
    .await;
    let mut topic: BTreeMap<String, Vec<serde_json::Value>> = BTreeMap::new();
    for r in read_topic(c, "TOTALS", 2).await {
        let key = String::from_utf8(r.key.clone().unwrap()).unwrap();
        let value: serde_json::Value = serde_json::from_slice(r.value.as_deref().unwrap()).unwrap();
        topic.entry(key).or_default().push(value);
    }
    assert_eq!(
        topic.len(),
        per_key.len(),
        "a key's updates are missing from the topic"
    );
    let (mut old_rows, mut new_rows) = (0, 0);
    for (k, vs) in &per_key {
        let records = &topic[k];
        let counts: Vec<i64> = records.iter().map(|r| r["N"].as_i64().unwrap()).collect();
        let want: Vec<i64> = (1..=vs.len() as i64).collect();
        assert_eq!(
            counts, want,
            "{k}: the topic's counts have a gap or a repeat"
        );
        let first_new = records
            .iter()
            .position(|r| r.get("TOTAL").is_some())
            .unwrap_or(records.len());
        for (i, r) in records.iter().enumerate().skip(first_new) {
            let running: i64 = vs[..=i].iter().sum();
            assert_eq!(
                r["TOTAL"].as_i64(),
                Some(running),
                "{k}: update {} after the swap",
                i + 1
            );
        }
        assert!(
            records[..first_new]
                .iter()
                .all(|r| r.get("TOTAL").is_none()),
            "{k}: an old-query row after the swap"
        );
        old_rows += first_new;
        new_rows += records.len() - first_new;
    }
    (old_rows, new_rows)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_query_replaced_under_load_loses_and_repeats_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data")).await;
    let mut c = server.client().await;
    exec_ok(&mut c, EVENTS).await;
    let old_id = exec_ok(&mut c, OLD).await.results[0].query_id.clone();
    let next = Arc::new(AtomicI64::new(0));
    let acked = Arc::new(Mutex::new(Vec::new()));
    for _ in 0..100 {
        insert_batch(&mut c, &next, &acked).await;
    }
    await_count(&mut c, 10_000).await;
    let stop = Arc::new(AtomicBool::new(false));
    let load = tokio::spawn(writer(
        server.url(),
        next.clone(),
        acked.clone(),
        stop.clone(),
    ));
    let r = exec_ok(&mut c, NEW).await;
    let new_id = r.results[0].query_id.clone();
    assert_ne!(new_id, old_id);
    assert!(
        r.results[0]
            .message
            .contains(&format!("Replacing query {old_id} with {new_id}"))
    );
    await_takeover(&mut c, &new_id).await;
    // The load goes on after the swap, then stops.
    let at_swap = acked.lock().unwrap().len();
    while acked.lock().unwrap().len() < at_swap + 3000 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop.store(true, Ordering::SeqCst);
    load.await.unwrap();
    let acked = acked.lock().unwrap().clone();
    let (old_rows, new_rows) = check(&mut c, &acked).await;
    assert!(
        old_rows >= 10_000,
        "the old query wrote the history: {old_rows}"
    );
    assert!(
        new_rows >= 3000,
        "the new query writes after the swap: {new_rows}"
    );
    let d = exec_ok(&mut c, "DESCRIBE totals;").await;
    let text = format!("{d:?}");
    assert!(
        text.contains("TOTAL"),
        "the new definition is the table's: {text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replacement_killed_while_building_resumes_and_takes_over() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let port = free_port();
    let mut server = Server::start_on(&data, port).await;
    let next = Arc::new(AtomicI64::new(0));
    let acked = Arc::new(Mutex::new(Vec::new()));
    let new_id = {
        let mut c = server.client().await;
        exec_ok(&mut c, EVENTS).await;
        exec_ok(&mut c, OLD).await;
        for _ in 0..400 {
            insert_batch(&mut c, &next, &acked).await;
        }
        await_count(&mut c, 40_000).await;
        let new_id = exec_ok(&mut c, NEW).await.results[0].query_id.clone();
        // Killed once the replacement has committed some of its own progress (or, on a
        // fast machine, has already taken over).
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let q = show_queries(&mut c).await;
            if !q.iter().any(|(_, st)| st.contains("(40000 records behind")) {
                eprintln!("killed with queries {q:?}");
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the replacement makes no progress: {q:?}"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        new_id
    };
    server.kill9();
    let server = Server::start_on(&data, port).await;
    let mut c = server.client().await;
    await_takeover(&mut c, &new_id).await;
    for _ in 0..20 {
        insert_batch(&mut c, &next, &acked).await;
    }
    let acked = acked.lock().unwrap().clone();
    let (old_rows, new_rows) = check(&mut c, &acked).await;
    // The old query had consumed everything before the kill, so it wrote every update
    // before the swap and the new one exactly those after.
    assert_eq!((old_rows, new_rows), (40_000, 2000));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replacements_that_would_change_what_readers_see_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data")).await;
    let mut c = server.client().await;
    exec_ok(&mut c, EVENTS).await;
    exec_ok(&mut c, "CREATE STREAM other (k STRING KEY, v BIGINT) WITH (kafka_topic='other', value_format='JSON', partitions=2);").await;
    exec_ok(&mut c, OLD).await;
    let refused = |sql: &'static str, want: &'static str| (sql, want);
    for (sql, want) in [
        refused(
            "CREATE OR REPLACE TABLE totals AS SELECT k, COUNT(*) AS n FROM other GROUP BY k;",
            "a replacement reads the same sources",
        ),
        refused(
            "CREATE OR REPLACE TABLE totals AS SELECT k, CAST(COUNT(*) AS STRING) AS n FROM events GROUP BY k;",
            "value column N BIGINT would become N STRING",
        ),
        refused(
            "CREATE OR REPLACE TABLE totals AS SELECT k, SUM(v) AS total FROM events GROUP BY k;",
            "value column N BIGINT would become TOTAL BIGINT",
        ),
        refused(
            "CREATE OR REPLACE TABLE totals AS SELECT v, COUNT(*) AS n FROM events GROUP BY v;",
            "key columns would change",
        ),
        refused(
            "CREATE OR REPLACE TABLE totals WITH (kafka_topic='elsewhere') AS SELECT k, COUNT(*) AS n FROM events GROUP BY k;",
            "topic would change",
        ),
        refused(
            "CREATE OR REPLACE STREAM totals AS SELECT k, v FROM events;",
            "keeps the kind",
        ),
        refused(
            "CREATE OR REPLACE TABLE events AS SELECT k, COUNT(*) AS n FROM other GROUP BY k;",
            "keeps the kind",
        ),
    ] {
        let e = exec(&mut c, sql).await.expect_err(sql);
        assert_eq!(e.code(), tonic::Code::InvalidArgument, "{sql}: {e:?}");
        assert!(e.message().contains(want), "{sql}: {}", e.message());
    }
    // Schema and kind refusals start with ksqlDB's words (DataSource::canUpgradeTo, and
    // its metastore's check of a name's kind).
    for (sql, want) in [
        (
            "CREATE OR REPLACE TABLE totals AS SELECT k, CAST(COUNT(*) AS STRING) AS n FROM events GROUP BY k;",
            "Cannot upgrade data source: DataSource '`TOTALS`' has schema = `K` STRING KEY, `N` BIGINT which is not upgradeable to `K` STRING KEY, `N` STRING. (The following columns are changed, missing or reordered: [`N` BIGINT])",
        ),
        (
            "CREATE OR REPLACE TABLE totals AS SELECT v, COUNT(*) AS n FROM events GROUP BY v;",
            "(Key columns must be identical.)",
        ),
        (
            "CREATE OR REPLACE STREAM totals AS SELECT k, v FROM events;",
            "Cannot add stream 'TOTALS': A table with the same name already exists",
        ),
    ] {
        let e = exec(&mut c, sql).await.expect_err(sql);
        assert!(e.message().contains(want), "{sql}: {}", e.message());
    }
    // Adding a column is refused while another query reads the table with its columns.
    exec_ok(
        &mut c,
        "CREATE TABLE big AS SELECT k, n FROM totals WHERE n > 10;",
    )
    .await;
    let e = exec(&mut c, NEW).await.expect_err("a reader");
    assert!(
        e.message().contains("would gain columns (TOTAL BIGINT)"),
        "{}",
        e.message()
    );
    // A replacement that keeps the columns is fine with readers; it takes over.
    let r = exec_ok(&mut c, "CREATE OR REPLACE TABLE totals AS SELECT k, COUNT(*) AS n FROM events WHERE v >= 0 GROUP BY k;").await;
    let new_id = r.results[0].query_id.clone();
    let deadline = Instant::now() + Duration::from_secs(60);
    while show_queries(&mut c)
        .await
        .iter()
        .any(|(id, st)| id == &new_id && st != "RUNNING")
    {
        assert!(Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        show_queries(&mut c)
            .await
            .iter()
            .any(|(id, _)| id == &new_id)
    );
    // A replacement that names no topic keeps writing the one the view has.
    exec_ok(&mut c, "CREATE TABLE named WITH (kafka_topic='named_t') AS SELECT k, COUNT(*) AS n FROM events GROUP BY k;").await;
    exec_ok(&mut c, "CREATE OR REPLACE TABLE named AS SELECT k, COUNT(*) AS n FROM events WHERE v > 0 GROUP BY k;").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replacement_being_built_is_exclusive_and_cancelled_by_terminate() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data")).await;
    let mut c = server.client().await;
    exec_ok(&mut c, EVENTS).await;
    let old_id = exec_ok(&mut c, OLD).await.results[0].query_id.clone();
    let next = AtomicI64::new(0);
    let acked = Mutex::new(Vec::new());
    // Enough history that the replacement is still building when the next statements
    // arrive (it rebuilds 40,000 records; they take a round trip each).
    for _ in 0..400 {
        insert_batch(&mut c, &next, &acked).await;
    }
    await_count(&mut c, 40_000).await;
    let new_id = exec_ok(&mut c, NEW).await.results[0].query_id.clone();
    let e = exec(&mut c, NEW)
        .await
        .expect_err("one replacement at a time");
    assert_eq!(e.code(), tonic::Code::FailedPrecondition, "{e:?}");
    assert!(
        e.message()
            .contains(&format!("already being replaced by query {new_id}")),
        "{}",
        e.message()
    );
    let r = exec_ok(&mut c, &format!("TERMINATE {new_id};")).await;
    assert!(r.results[0].message.contains("no longer replaces"), "{r:?}");
    let q = show_queries(&mut c).await;
    assert_eq!(q, vec![(old_id.clone(), "RUNNING".to_string())]);
    // The old query goes on alone: every update once, none from the cancelled one.
    insert_batch(&mut c, &next, &acked).await;
    await_count(&mut c, 40_100).await;
    let records = read_topic(&mut c, "TOTALS", 2).await;
    assert_eq!(records.len(), 40_100);
    assert!(
        records
            .iter()
            .all(|r| !String::from_utf8_lossy(r.value.as_deref().unwrap()).contains("TOTAL"))
    );
    let d = exec_ok(&mut c, "DESCRIBE totals;").await;
    assert!(!format!("{d:?}").contains("\"TOTAL\""), "{d:?}");
}
