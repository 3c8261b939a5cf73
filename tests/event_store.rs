//! The event-store write side (issue #14): optimistic concurrency with EXPECTED_VERSION and
//! idempotent appends with EVENT_ID, through the real server, in INSERT and in BulkInsert,
//! across concurrent writers and across kill -9.

mod common;

use common::*;
use sluice_proto::v1 as pb;
use sluice_proto::v1::sluice_client::SluiceClient;
use std::collections::{BTreeMap, BTreeSet};
use tonic::Code;
use tonic::transport::Channel;

const CART: &str = "CREATE STREAM cart_events (cart_id STRING KEY, item STRING, qty INT) \
                    WITH (kafka_topic='cart_events', value_format='JSON', partitions=2);";

/// The only result of a one-statement Execute.
async fn insert(
    c: &mut SluiceClient<Channel>,
    sql: &str,
) -> Result<pb::StatementResult, tonic::Status> {
    let mut r = exec(c, sql).await?;
    assert_eq!(r.results.len(), 1, "{sql}");
    Ok(r.results.remove(0))
}

/// The events stored under a cart, in log order (item column).
async fn items(c: &mut SluiceClient<Channel>, cart: &str) -> Vec<String> {
    pull(
        c,
        &format!("SELECT item FROM cart_events WHERE cart_id = '{cart}';"),
    )
    .await
    .text_rows()
    .into_iter()
    .map(|r| r[0].clone())
    .collect()
}

/// "actual N" from a conflict message.
fn actual_version(message: &str) -> u64 {
    let tail = message
        .rsplit("actual ")
        .next()
        .unwrap_or_else(|| panic!("no actual version in {message:?}"));
    let digits: String = tail.chars().take_while(|c| c.is_ascii_digit()).collect();
    digits
        .parse()
        .unwrap_or_else(|_| panic!("no actual version in {message:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expected_version_appends_only_at_that_version() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data")).await;
    let mut c = server.client().await;
    exec_ok(&mut c, CART).await;

    // 0 means a new key; each acknowledgement carries the key's new version and a position.
    let a = insert(&mut c, "INSERT INTO cart_events (cart_id, item, qty) VALUES ('c1', 'apple', 1) WITH (EXPECTED_VERSION = 0);").await.unwrap();
    assert_eq!(a.version, Some(1));
    assert!(a.position > 0);
    let b = insert(
        &mut c,
        "INSERT INTO cart_events (cart_id, item, qty) VALUES ('c1', 'pear', 2);",
    )
    .await
    .unwrap();
    assert_eq!(
        b.version,
        Some(2),
        "an unchecked insert still reports the version"
    );
    assert!(b.position > a.position);

    // A stale version is refused with ABORTED naming the key, the expected and the actual
    // version, and appends nothing.
    let e = insert(&mut c, "INSERT INTO cart_events (cart_id, item, qty) VALUES ('c1', 'plum', 1) WITH (EXPECTED_VERSION = 1);").await.unwrap_err();
    assert_eq!(e.code(), Code::Aborted, "{e:?}");
    for part in ["c1", "CART_EVENTS", "expected 1", "actual 2"] {
        assert!(e.message().contains(part), "{part} in {}", e.message());
    }
    let e = insert(&mut c, "INSERT INTO cart_events (cart_id, item, qty) VALUES ('c1', 'plum', 1) WITH (EXPECTED_VERSION = 0);").await.unwrap_err();
    assert_eq!(e.code(), Code::Aborted);
    assert!(e.message().contains("actual 2"), "{}", e.message());
    let ok = insert(&mut c, "INSERT INTO cart_events (cart_id, item, qty) VALUES ('c1', 'plum', 1) WITH (EXPECTED_VERSION = 2);").await.unwrap();
    assert_eq!(ok.version, Some(3));
    // Versions are per key.
    let other = insert(&mut c, "INSERT INTO cart_events (cart_id, item, qty) VALUES ('c2', 'fig', 1) WITH (EXPECTED_VERSION = 0);").await.unwrap();
    assert_eq!(other.version, Some(1));
    assert_eq!(items(&mut c, "c1").await, ["apple", "pear", "plum"]);

    // Misuse is a clear error, not an append.
    exec_ok(
        &mut c,
        "CREATE TABLE carts (cart_id STRING PRIMARY KEY, n INT) WITH (kafka_topic='carts', value_format='JSON', partitions=1);",
    )
    .await;
    exec_ok(&mut c, "CREATE STREAM nokey (item STRING) WITH (kafka_topic='nokey', value_format='JSON', partitions=1);").await;
    exec_ok(
        &mut c,
        "CREATE STREAM derived AS SELECT * FROM cart_events;",
    )
    .await;
    for (sql, code, words) in [
        (
            "INSERT INTO cart_events (cart_id, item, qty) VALUES ('c1', 'x', 1) WITH (EXPECTED_VERSION = -1);",
            Code::InvalidArgument,
            "EXPECTED_VERSION",
        ),
        (
            "INSERT INTO cart_events (cart_id, item, qty) VALUES ('c1', 'x', 1) WITH (EXPECTED_VERSION = '3');",
            Code::InvalidArgument,
            "EXPECTED_VERSION",
        ),
        (
            "INSERT INTO cart_events (cart_id, item, qty) VALUES ('c1', 'x', 1) WITH (VERSION = 3);",
            Code::InvalidArgument,
            "Unknown INSERT property VERSION",
        ),
        (
            "INSERT INTO cart_events (cart_id, item, qty) VALUES (NULL, 'x', 1) WITH (EXPECTED_VERSION = 0);",
            Code::InvalidArgument,
            "NULL",
        ),
        (
            "INSERT INTO nokey (item) VALUES ('x') WITH (EXPECTED_VERSION = 0);",
            Code::InvalidArgument,
            "no KEY column",
        ),
        (
            "INSERT INTO derived (cart_id, item, qty) VALUES ('c1', 'x', 1) WITH (EXPECTED_VERSION = 0);",
            Code::FailedPrecondition,
            "indexed",
        ),
    ] {
        let e = insert(&mut c, sql).await.unwrap_err();
        assert_eq!(e.code(), code, "{sql}: {e:?}");
        assert!(e.message().contains(words), "{sql}: {}", e.message());
    }
    let e = insert(
        &mut c,
        "INSERT INTO carts (cart_id, n) VALUES ('c9', 1) WITH (EXPECTED_VERSION = 0);",
    )
    .await
    .unwrap_err();
    assert!(
        e.message().contains("applies to streams"),
        "{}",
        e.message()
    );
    assert_eq!(items(&mut c, "c1").await, ["apple", "pear", "plum"]);
}

/// Writers that each read a version and append at it, racing on one key: exactly one wins
/// per version, no update is lost, and every loser learns the version that beat it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_writers_win_each_version_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data")).await;
    let mut c = server.client().await;
    exec_ok(&mut c, CART).await;
    const WRITERS: usize = 6;
    const TOTAL: u64 = 60;
    let mut tasks = vec![];
    for w in 0..WRITERS {
        let mut c = server.client().await;
        tasks.push(tokio::spawn(async move {
            let mut known = 0u64;
            let mut won = vec![];
            let mut conflicts = 0;
            while known < TOTAL {
                let sql = format!(
                    "INSERT INTO cart_events (cart_id, item, qty) VALUES ('hot', 'w{w}-v{known}', 1) WITH (EXPECTED_VERSION = {known});"
                );
                match insert(&mut c, &sql).await {
                    Ok(r) => {
                        assert_eq!(r.version, Some(known + 1));
                        won.push(known);
                        known += 1;
                    }
                    Err(e) => {
                        assert_eq!(e.code(), Code::Aborted, "{e:?}");
                        let actual = actual_version(e.message());
                        assert!(actual > known, "{actual} after {known}: {}", e.message());
                        known = actual;
                        conflicts += 1;
                    }
                }
            }
            (w, won, conflicts)
        }));
    }
    let mut winners: BTreeMap<u64, usize> = BTreeMap::new();
    let mut conflicts = 0;
    for t in tasks {
        let (w, won, n) = t.await.unwrap();
        conflicts += n;
        for v in won {
            assert!(winners.insert(v, w).is_none(), "version {v} was won twice");
        }
    }
    assert_eq!(winners.len() as u64, TOTAL, "every version won once");
    assert!(conflicts > 0, "the writers never raced");
    // The log holds exactly the winners, in version order.
    let stored = items(&mut c, "hot").await;
    let expected: Vec<String> = winners.iter().map(|(v, w)| format!("w{w}-v{v}")).collect();
    assert_eq!(stored, expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_id_is_appended_once_however_often_it_is_retried() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut server = Server::start(&data).await;
    let mut c = server.client().await;
    exec_ok(&mut c, CART).await;
    exec_ok(&mut c, "CREATE STREAM audit (cart_id STRING KEY, item STRING, qty INT) WITH (kafka_topic='audit', value_format='JSON', partitions=1);").await;
    let sql = "INSERT INTO cart_events (cart_id, item, qty) VALUES ('c1', 'apple', 1) WITH (EVENT_ID = 'cmd-1');";
    let first = insert(&mut c, sql).await.unwrap();
    assert!(!first.duplicate);
    assert_eq!(first.version, Some(1));
    let again = insert(&mut c, sql).await.unwrap();
    assert!(again.duplicate, "a retry is acknowledged as a duplicate");
    assert_eq!(again.position, first.position, "with the original position");
    assert_eq!(again.version, Some(1));
    // The id is the identity, whatever the retry carries; an expected version that no longer
    // holds does not turn a retry into a conflict.
    let changed = insert(&mut c, "INSERT INTO cart_events (cart_id, item, qty) VALUES ('c1', 'apple', 1) WITH (EVENT_ID = 'cmd-1', EXPECTED_VERSION = 0);").await.unwrap();
    assert!(changed.duplicate);
    // Ids are per stream.
    let elsewhere = insert(&mut c, "INSERT INTO audit (cart_id, item, qty) VALUES ('c1', 'apple', 1) WITH (EVENT_ID = 'cmd-1');").await.unwrap();
    assert!(!elsewhere.duplicate);
    assert_eq!(items(&mut c, "c1").await, ["apple"]);
    let e = insert(
        &mut c,
        "INSERT INTO cart_events (cart_id, item, qty) VALUES ('c1', 'x', 1) WITH (EVENT_ID = '');",
    )
    .await
    .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    assert!(e.message().contains("EVENT_ID"), "{}", e.message());

    // Across kill -9: ids are as durable as the events they name.
    server.kill9();
    let server = Server::start(&data).await;
    let mut c = server.client().await;
    let after = insert(&mut c, sql).await.unwrap();
    assert!(after.duplicate);
    assert_eq!(after.position, first.position);
    assert_eq!(items(&mut c, "c1").await, ["apple"]);
    // And the versions are still counted from the log.
    let next = insert(&mut c, "INSERT INTO cart_events (cart_id, item, qty) VALUES ('c1', 'pear', 1) WITH (EXPECTED_VERSION = 1);").await.unwrap();
    assert_eq!(next.version, Some(2));
}

/// The reason for event ids: a client whose insert's outcome is unknown (the server died
/// before the acknowledgement) retries, and gets exactly one copy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_after_a_kill_between_append_and_ack_append_once() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut server = Server::start(&data).await;
    let mut c = server.client().await;
    exec_ok(&mut c, CART).await;
    const N: usize = 400;
    let sql = |i: usize| {
        format!(
            "INSERT INTO cart_events (cart_id, item, qty) VALUES ('k{}', 'i{i}', 1) WITH (EVENT_ID = 'e{i}');",
            i % 7
        )
    };
    // Four clients insert concurrently; the server is killed once some (not all) have been
    // acknowledged, so others are in flight: appended or not, their clients cannot know.
    let (acked_tx, mut acked_rx) = tokio::sync::mpsc::unbounded_channel::<(usize, u64)>();
    let mut tasks = vec![];
    for t in 0..4 {
        let mut c = server.client().await;
        let acked_tx = acked_tx.clone();
        tasks.push(tokio::spawn(async move {
            for i in (t..N).step_by(4) {
                match insert(&mut c, &sql(i)).await {
                    Ok(r) => {
                        let _ = acked_tx.send((i, r.position));
                    }
                    Err(_) => return,
                }
            }
        }));
    }
    drop(acked_tx);
    let mut acked = BTreeMap::new();
    while acked.len() < 40 {
        let (i, p) = acked_rx.recv().await.expect("inserts acknowledged");
        acked.insert(i, p);
    }
    server.kill9();
    for t in tasks {
        t.await.unwrap();
    }
    while let Ok((i, p)) = acked_rx.try_recv() {
        acked.insert(i, p);
    }
    assert!(
        acked.len() < N,
        "the kill came too late to leave inserts in flight"
    );

    let server = Server::start(&data).await;
    let mut c = server.client().await;
    for i in 0..N {
        let r = insert(&mut c, &sql(i)).await.unwrap();
        if let Some(p) = acked.get(&i) {
            assert!(r.duplicate, "e{i} was acknowledged before the kill");
            assert_eq!(r.position, *p, "e{i} keeps its original position");
        }
    }
    let mut seen = BTreeSet::new();
    for k in 0..7 {
        for item in items(&mut c, &format!("k{k}")).await {
            assert!(seen.insert(item.clone()), "{item} stored twice");
        }
    }
    assert_eq!(seen.len(), N, "every event stored exactly once");
}

fn row(cart: &str, item: &str) -> pb::Row {
    pb::Row {
        values: vec![
            s(cart),
            s(item),
            pb::Value {
                kind: Some(pb::value::Kind::Int(1)),
            },
        ],
    }
}

async fn bulk(
    c: &mut SluiceClient<Channel>,
    req: pb::BulkInsertRequest,
) -> Result<pb::BulkInsertResponse, tonic::Status> {
    let mut acks = c
        .bulk_insert(tokio_stream::iter(vec![req]))
        .await?
        .into_inner();
    match acks.message().await? {
        Some(a) => Ok(a),
        None => panic!("no acknowledgement"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bulk_insert_checks_versions_and_ids_per_row() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data")).await;
    let mut c = server.client().await;
    exec_ok(&mut c, CART).await;
    // Several events for one key in one request, each checked against the ones before it.
    let a = bulk(
        &mut c,
        pb::BulkInsertRequest {
            target: "cart_events".into(),
            rows: vec![
                row("c1", "a"),
                row("c1", "b"),
                row("c2", "c"),
                row("c1", "d"),
            ],
            expected_versions: vec![0, 1, -1, 2],
            batch_id: 1,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(a.versions, [1, 2, 1, 3]);
    assert!(a.duplicates.is_empty());
    assert_eq!(a.offsets.len(), 4);
    assert!(a.position > 0);
    // One failed check and the request appends nothing, the good rows included.
    let e = bulk(
        &mut c,
        pb::BulkInsertRequest {
            target: "cart_events".into(),
            rows: vec![row("c2", "x"), row("c1", "y")],
            expected_versions: vec![1, 1],
            batch_id: 2,
            ..Default::default()
        },
    )
    .await
    .unwrap_err();
    assert_eq!(e.code(), Code::Aborted);
    for part in ["batch 2", "c1", "expected 1", "actual 3"] {
        assert!(e.message().contains(part), "{part} in {}", e.message());
    }
    assert_eq!(items(&mut c, "c1").await, ["a", "b", "d"]);
    assert_eq!(items(&mut c, "c2").await, ["c"]);

    // Event ids: a retried request appends nothing and is acknowledged with the original
    // positions; an id repeated inside one request is appended once.
    let req = pb::BulkInsertRequest {
        target: "cart_events".into(),
        rows: vec![
            row("c3", "p"),
            row("c3", "q"),
            row("c3", "p-again"),
            row("c3", "r"),
        ],
        event_ids: vec!["p".into(), "q".into(), "p".into(), "".into()],
        batch_id: 3,
        ..Default::default()
    };
    let first = bulk(&mut c, req.clone()).await.unwrap();
    assert_eq!(first.duplicates, [false, false, true, false]);
    assert_eq!(first.offsets[2], first.offsets[0]);
    assert_eq!(first.partitions[2], first.partitions[0]);
    let retry = bulk(&mut c, req).await.unwrap();
    assert_eq!(
        retry.duplicates,
        [true, true, true, false],
        "a row without an id is appended again"
    );
    assert_eq!(retry.offsets[..3], first.offsets[..3]);
    assert_eq!(items(&mut c, "c3").await, ["p", "q", "r", "r"]);

    // Malformed per-row fields are named.
    for (req, words) in [
        (
            pb::BulkInsertRequest {
                target: "cart_events".into(),
                rows: vec![row("c4", "a"), row("c4", "b")],
                expected_versions: vec![0],
                ..Default::default()
            },
            "expected_versions has 1 entries for 2 rows",
        ),
        (
            pb::BulkInsertRequest {
                target: "cart_events".into(),
                rows: vec![row("c4", "a")],
                event_ids: vec!["x".repeat(300)],
                ..Default::default()
            },
            "event id is 300 bytes",
        ),
        (
            pb::BulkInsertRequest {
                target: "cart_events".into(),
                rows: vec![row("c4", "a")],
                expected_versions: vec![-2],
                ..Default::default()
            },
            "negative",
        ),
    ] {
        let e = bulk(&mut c, req).await.unwrap_err();
        assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");
        assert!(e.message().contains(words), "{words} in {}", e.message());
    }
    assert!(items(&mut c, "c4").await.is_empty());
}

/// Item numbers ("i17" -> 17) of a pull's first column.
fn numbers(rows: &[Vec<String>]) -> Vec<u32> {
    rows.iter()
        .map(|r| r[0].trim_start_matches('i').parse().unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_keys_history_is_read_from_the_index_in_log_order() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut server = Server::start(&data).await;
    let mut c = server.client().await;
    exec_ok(&mut c, CART).await;
    // Five carts interleaved over two partitions; event i of cart i % 5 at ROWTIME 1000 + i.
    for i in 0..60u32 {
        insert(
            &mut c,
            &format!(
                "INSERT INTO cart_events (ROWTIME, cart_id, item, qty) VALUES ({}, 'c{}', 'i{i}', {i});",
                1000 + i,
                i % 5
            ),
        )
        .await
        .unwrap();
    }
    let explain = exec_ok(
        &mut c,
        "EXPLAIN SELECT * FROM cart_events WHERE cart_id = 'c1';",
    )
    .await;
    assert!(
        explain.results[0].message.contains("from the key index"),
        "{}",
        explain.results[0].message
    );

    let history = |cart: u32| (0..60).filter(move |i| i % 5 == cart).collect::<Vec<u32>>();
    let q = "SELECT item, ROWOFFSET FROM cart_events WHERE cart_id = 'c1';";
    let rows = pull(&mut c, q).await.text_rows();
    assert_eq!(numbers(&rows), history(1), "the key's events, in log order");
    // ROWOFFSET counts within the key's partition; the third event's offset bounds the rest.
    let third: u64 = rows[2][1].parse().unwrap();
    let rows = pull(
        &mut c,
        &format!("SELECT item FROM cart_events WHERE cart_id = 'c1' AND ROWOFFSET > {third};"),
    )
    .await
    .text_rows();
    assert_eq!(numbers(&rows), history(1)[3..]);
    let rows = pull(
        &mut c,
        "SELECT item FROM cart_events WHERE cart_id = 'c1' AND ROWTIME >= 1031 AND ROWTIME < 1051;",
    )
    .await
    .text_rows();
    assert_eq!(numbers(&rows), [31, 36, 41, 46]);
    let rows = pull(
        &mut c,
        "SELECT item FROM cart_events WHERE cart_id = 'c1' LIMIT 3;",
    )
    .await
    .text_rows();
    assert_eq!(numbers(&rows), [1, 6, 11]);

    // Two carts in different partitions (read off the topic itself), read together, come
    // back in the order they were appended.
    let partition_of: BTreeMap<String, i32> = read_topic(&mut c, "cart_events", 2)
        .await
        .into_iter()
        .map(|r| (String::from_utf8(r.key.unwrap()).unwrap(), r.partition))
        .collect();
    assert_eq!(partition_of.len(), 5);
    let (a, b) = (0..5u32)
        .flat_map(|a| (0..5u32).map(move |b| (a, b)))
        .find(|&(a, b)| partition_of[&format!("c{a}")] != partition_of[&format!("c{b}")])
        .expect("carts in both partitions");
    let merged = |c: &mut SluiceClient<Channel>| {
        let sql = format!(
            "SELECT item FROM cart_events WHERE cart_id IN ('c{a}', 'c{b}', 'c{a}') OR cart_id = 'nope';"
        );
        let mut c = c.clone();
        async move { pull(&mut c, &sql).await.text_rows() }
    };
    let want: Vec<u32> = (0..60).filter(|i| i % 5 == a || i % 5 == b).collect();
    assert_eq!(numbers(&merged(&mut c).await), want);

    // Not a key lookup: a scan, filtered, with the same rule for what it returns.
    let rows = pull(&mut c, "SELECT item FROM cart_events WHERE qty >= 55;")
        .await
        .text_rows();
    let mut got = numbers(&rows);
    got.sort();
    assert_eq!(got, [55, 56, 57, 58, 59]);
    let explain = exec_ok(&mut c, "EXPLAIN SELECT * FROM cart_events WHERE qty >= 55;").await;
    assert!(
        explain.results[0]
            .message
            .contains("a scan of every partition")
    );

    // A key format the index does not serve: the same query scans, with the same answer.
    exec_ok(&mut c, "CREATE STREAM jk (id STRING KEY, v INT) WITH (kafka_topic='jk', key_format='JSON', value_format='JSON', partitions=2);").await;
    for (i, k) in ["a", "b", "a", "c", "a"].iter().enumerate() {
        insert(
            &mut c,
            &format!("INSERT INTO jk (id, v) VALUES ('{k}', {i});"),
        )
        .await
        .unwrap();
    }
    let rows = pull(&mut c, "SELECT v FROM jk WHERE id = 'a';")
        .await
        .text_rows();
    let mut got: Vec<String> = rows.into_iter().map(|r| r[0].clone()).collect();
    got.sort();
    assert_eq!(got, ["0", "2", "4"]);
    let explain = exec_ok(&mut c, "EXPLAIN SELECT v FROM jk WHERE id = 'a';").await;
    assert!(
        explain.results[0]
            .message
            .contains("a scan of every partition, filtered by key"),
        "{}",
        explain.results[0].message
    );

    // The index is durable with the log: after kill -9 the history reads the same.
    server.kill9();
    let server = Server::start(&data).await;
    let mut c = server.client().await;
    assert_eq!(numbers(&merged(&mut c).await), want);
    insert(
        &mut c,
        &format!("INSERT INTO cart_events (cart_id, item, qty) VALUES ('c{a}', 'i60', 0);"),
    )
    .await
    .unwrap();
    let mut want = want;
    want.push(60);
    assert_eq!(numbers(&merged(&mut c).await), want);
}
