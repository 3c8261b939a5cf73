//! End-to-end: the tutorial's statements against the real server over gRPC.

mod common;

use common::*;
use sluice_proto::v1 as pb;
use std::time::Duration;
use tonic::Code;

const SETUP: &str = "
CREATE STREAM pageviews (user_id STRING KEY, page STRING, ms BIGINT)
  WITH (kafka_topic='pageviews', value_format='JSON', partitions=1);
CREATE TABLE users (id STRING PRIMARY KEY, name STRING) WITH (kafka_topic='users', value_format='JSON');
CREATE TABLE queryable_users AS SELECT * FROM users;
CREATE TABLE views_per_user AS
  SELECT user_id, COUNT(*) AS views, SUM(ms) AS total_ms, AVG(ms) AS avg_ms, MIN(ms) AS min_ms, MAX(ms) AS max_ms,
         LATEST_BY_OFFSET(page) AS last_page, EARLIEST_BY_OFFSET(page) AS first_page
  FROM pageviews GROUP BY user_id EMIT CHANGES;
CREATE STREAM slow_views AS SELECT user_id, page, ms * 2 AS double_ms FROM pageviews WHERE ms > 100 EMIT CHANGES;
";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tutorial_flow_through_the_server() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data")).await;
    let mut c = server.client().await;
    exec_ok(&mut c, SETUP).await;

    // A push query started before the inserts sees them. Each is started once its header
    // has arrived, which the server sends after the subscription's positions are fixed.
    let mut push_client = server.client().await;
    let push = open_query(
        &mut push_client,
        "SELECT * FROM pageviews EMIT CHANGES LIMIT 3;",
        &[],
        Duration::from_secs(30),
    )
    .await
    .expect("push query");
    assert_eq!(push.result.columns, vec!["USER_ID", "PAGE", "MS"]);
    let push = tokio::spawn(push.collect(usize::MAX, Duration::from_secs(30)));
    let mut table_push_client = server.client().await;
    let table_push = open_query(
        &mut table_push_client,
        "SELECT user_id, views FROM views_per_user EMIT CHANGES LIMIT 3;",
        &[],
        Duration::from_secs(30),
    )
    .await
    .expect("table push query");
    assert_eq!(table_push.result.columns, vec!["USER_ID", "VIEWS"]);
    let table_push = tokio::spawn(table_push.collect(usize::MAX, Duration::from_secs(30)));

    exec_ok(
        &mut c,
        "INSERT INTO pageviews (user_id, page, ms) VALUES ('u1', '/a', 120);",
    )
    .await;
    exec_ok(
        &mut c,
        "INSERT INTO pageviews (user_id, page, ms) VALUES ('u1', '/b', 80);",
    )
    .await;
    exec_ok(
        &mut c,
        "INSERT INTO pageviews (user_id, page, ms) VALUES ('u2', '/c', 300);",
    )
    .await;
    exec_ok(
        &mut c,
        "INSERT INTO users (id, name) VALUES ('u1', 'Alice');",
    )
    .await;

    let pushed = push.await.unwrap().expect("push query");
    assert_eq!(pushed.columns, vec!["USER_ID", "PAGE", "MS"]);
    assert_eq!(
        pushed.text_rows(),
        vec![
            vec!["u1", "/a", "120"],
            vec!["u1", "/b", "80"],
            vec!["u2", "/c", "300"]
        ]
    );
    assert_eq!(pushed.final_message.as_deref(), Some("Limit Reached"));
    let table_changes = table_push.await.unwrap().expect("table push query");
    assert_eq!(
        table_changes.text_rows(),
        vec![vec!["u1", "1"], vec!["u1", "2"], vec!["u2", "1"]]
    );

    // Pull: key lookup on the aggregate.
    let rows = eventually(
        &mut c,
        "SELECT * FROM views_per_user WHERE user_id = 'u1';",
        |r| r.len() == 1 && r[0][1] == "2",
    )
    .await;
    assert_eq!(
        rows[0],
        vec!["u1", "2", "200", "100", "80", "120", "/b", "/a"]
    );
    let r = pull(&mut c, "SELECT * FROM views_per_user WHERE user_id = 'u1';").await;
    assert_eq!(
        r.columns,
        vec![
            "USER_ID",
            "VIEWS",
            "TOTAL_MS",
            "AVG_MS",
            "MIN_MS",
            "MAX_MS",
            "LAST_PAGE",
            "FIRST_PAGE"
        ]
    );
    // Range and scan with a predicate on a value column.
    let rows = pull(
        &mut c,
        "SELECT user_id, views FROM views_per_user WHERE user_id >= 'u1' AND user_id < 'u2';",
    )
    .await
    .text_rows();
    assert_eq!(rows, vec![vec!["u1", "2"]]);
    let rows = pull(
        &mut c,
        "SELECT user_id FROM views_per_user WHERE total_ms > 250;",
    )
    .await
    .text_rows();
    assert_eq!(rows, vec![vec!["u2"]]);
    let rows = pull(&mut c, "SELECT user_id FROM views_per_user LIMIT 1;")
        .await
        .text_rows();
    assert_eq!(rows.len(), 1);
    // A table declared with CREATE TABLE is not queryable (as in ksqlDB); one derived
    // from it is.
    let err = query(
        &mut c,
        "SELECT name FROM users WHERE id = 'u1';",
        &[],
        1,
        Duration::from_secs(10),
    )
    .await
    .unwrap_err();
    assert!(
        err.message().contains("The `USERS` table isn't queryable."),
        "{}",
        err.message()
    );
    let rows = eventually(
        &mut c,
        "SELECT name FROM queryable_users WHERE id = 'u1';",
        |r| r.len() == 1,
    )
    .await;
    assert_eq!(rows, vec![vec!["Alice"]]);

    // The derived stream is queryable from the beginning, and its topic is named as ksqlDB does.
    let slow = query(
        &mut c,
        "SELECT * FROM slow_views EMIT CHANGES LIMIT 2;",
        &[("auto.offset.reset", "earliest")],
        2,
        Duration::from_secs(30),
    )
    .await
    .unwrap();
    assert_eq!(
        slow.text_rows(),
        vec![vec!["u1", "/a", "240"], vec!["u2", "/c", "600"]]
    );
    let topics = exec_ok(&mut c, "SHOW TOPICS;").await;
    let names: Vec<String> = topics.results[0]
        .rows
        .iter()
        .map(|r| show(&r.values[0]))
        .collect();
    assert!(
        names.contains(&"SLOW_VIEWS".to_string()) && names.contains(&"VIEWS_PER_USER".to_string()),
        "{names:?}"
    );

    // A derived stream can feed another query.
    exec_ok(&mut c, "CREATE TABLE slow_counts AS SELECT user_id, COUNT(*) AS n FROM slow_views GROUP BY user_id;").await;
    eventually(
        &mut c,
        "SELECT n FROM slow_counts WHERE user_id = 'u2';",
        |r| r == [vec!["1".to_string()]],
    )
    .await;

    // SHOW / DESCRIBE / PRINT.
    let streams = exec_ok(&mut c, "SHOW STREAMS;").await;
    assert!(
        streams.results[0]
            .rows
            .iter()
            .any(|r| show(&r.values[0]) == "PAGEVIEWS")
    );
    let queries = exec_ok(&mut c, "SHOW QUERIES;").await;
    let ids: Vec<String> = queries.results[0]
        .rows
        .iter()
        .map(|r| show(&r.values[0]))
        .collect();
    assert!(
        ids.iter().any(|i| i.starts_with("CTAS_VIEWS_PER_USER_")),
        "{ids:?}"
    );
    let d = exec_ok(&mut c, "DESCRIBE views_per_user;").await;
    let fields: Vec<String> = d.results[0]
        .rows
        .iter()
        .map(|r| format!("{} {}", show(&r.values[0]), show(&r.values[1])))
        .collect();
    assert_eq!(fields[0], "USER_ID STRING (PRIMARY KEY)");
    assert_eq!(fields[1], "VIEWS BIGINT");
    // PRINT: lines rendered as ksqlDB's server renders them, the guessed formats first.
    let printed = query(
        &mut c,
        "PRINT 'pageviews' FROM BEGINNING LIMIT 2;",
        &[],
        usize::MAX,
        Duration::from_secs(10),
    )
    .await
    .unwrap();
    assert_eq!(printed.columns, vec!["LINE"]);
    let lines: Vec<String> = printed.text_rows().into_iter().flatten().collect();
    assert_eq!(lines.len(), 4, "{lines:?}");
    assert_eq!(lines[0], "Key format: KAFKA_STRING");
    assert_eq!(lines[1], "Value format: JSON or KAFKA_STRING");
    assert!(
        is_print_line(
            &lines[2],
            r#"key: u1, value: {"PAGE":"/a","MS":120}, partition: 0"#
        ),
        "{lines:?}"
    );
    assert_eq!(printed.final_message.as_deref(), Some("Limit Reached"));
    // A PRINT from the end sees what is written once its header has arrived.
    exec_ok(
        &mut c,
        "CREATE STREAM printed (k STRING KEY, v INT) WITH (kafka_topic='printed', value_format='JSON', partitions=1);",
    )
    .await;
    let mut print_client = server.client().await;
    let tail = open_query(
        &mut print_client,
        "PRINT 'printed' LIMIT 1;",
        &[],
        Duration::from_secs(30),
    )
    .await
    .unwrap();
    assert_eq!(tail.result.columns, vec!["LINE"]);
    exec_ok(&mut c, "INSERT INTO printed (k, v) VALUES ('x', 7);").await;
    let tail = tail
        .collect(usize::MAX, Duration::from_secs(30))
        .await
        .unwrap();
    let lines: Vec<String> = tail.text_rows().into_iter().flatten().collect();
    assert!(
        is_print_line(&lines[2], r#"key: x, value: {"V":7}, partition: 0"#),
        "{lines:?}"
    );

    // DROP is refused while a query reads the source; TERMINATE then DROP works.
    let err = exec(&mut c, "DROP STREAM pageviews;").await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert!(
        err.message().contains("CTAS_VIEWS_PER_USER"),
        "{}",
        err.message()
    );
    let sc_id = ids
        .iter()
        .find(|i| i.starts_with("CSAS_SLOW_VIEWS"))
        .unwrap()
        .clone();
    exec_ok(&mut c, &format!("TERMINATE {sc_id};")).await;
    let err = exec(&mut c, "DROP STREAM slow_views;").await.unwrap_err();
    assert!(
        err.message().contains("CTAS_SLOW_COUNTS"),
        "{}",
        err.message()
    );
    exec_ok(&mut c, "TERMINATE ALL;").await;
    exec_ok(&mut c, "DROP TABLE slow_counts;").await;
    exec_ok(&mut c, "DROP STREAM slow_views;").await;
    exec_ok(&mut c, "DROP STREAM IF EXISTS slow_views;").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_are_clear_positioned_and_not_fatal() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data")).await;
    let mut c = server.client().await;
    exec_ok(
        &mut c,
        "CREATE STREAM s (k STRING KEY, v BIGINT) WITH (kafka_topic='s', value_format='JSON');",
    )
    .await;

    let e = exec(
        &mut c,
        "CREATE STREAM t (a STRING) WITH (kafka_topic='t', value_format='JSON');\nSELEC 1;",
    )
    .await
    .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    assert!(e.message().starts_with("line 2:1:"), "{}", e.message());

    let e = exec(&mut c, "CREATE STREAM o AS SELECT k, nope FROM s;")
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    assert!(
        e.message().contains("NOPE") && e.message().starts_with("Line: 1, Col: 30:"),
        "{}",
        e.message()
    );

    let e = exec(&mut c, "CREATE STREAM o AS SELECT k, v FROM missing;")
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::NotFound);
    assert!(e.message().contains("MISSING"), "{}", e.message());

    let e = exec(
        &mut c,
        "CREATE STREAM s (k STRING KEY, v BIGINT) WITH (kafka_topic='s', value_format='JSON');",
    )
    .await
    .unwrap_err();
    assert_eq!(e.code(), Code::AlreadyExists);

    let e = exec(
        &mut c,
        "CREATE STREAM o AS SELECT k, v + 'x' AS bad FROM s;",
    )
    .await
    .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    assert!(
        e.message().contains("BIGINT") && e.message().contains("STRING"),
        "{}",
        e.message()
    );

    let e = exec(&mut c, "INSERT INTO s (k, v) VALUES ('a', 'not a number');")
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);

    let e = exec(&mut c, "CREATE STREAM o AS SELECT v FROM s;")
        .await
        .unwrap_err();
    assert!(
        e.message().contains("must include the key column K"),
        "{}",
        e.message()
    );

    // Undecodable records are skipped and logged to the processing log, not fatal.
    exec_ok(
        &mut c,
        "CREATE TABLE totals AS SELECT k, SUM(v) AS total FROM s GROUP BY k;",
    )
    .await;
    c.produce(pb::ProduceRequest {
        topic: "s".into(),
        records: vec![
            pb::ProduceRecord {
                key: Some(b"a".to_vec()),
                value: Some(b"{not json".to_vec()),
                ..Default::default()
            },
            pb::ProduceRecord {
                key: Some(b"a".to_vec()),
                value: Some(br#"{"V": 5}"#.to_vec()),
                ..Default::default()
            },
        ],
    })
    .await
    .unwrap();
    eventually(&mut c, "SELECT total FROM totals WHERE k = 'a';", |r| {
        r == [vec!["5".to_string()]]
    })
    .await;
    let plog = query(
        &mut c,
        "SELECT query_id, message FROM sluice_processing_log EMIT CHANGES LIMIT 1;",
        &[("auto.offset.reset", "earliest")],
        1,
        Duration::from_secs(10),
    )
    .await
    .unwrap();
    assert_eq!(plog.rows.len(), 1);
    assert!(
        show(&plog.rows[0][1]).contains("invalid JSON"),
        "{:?}",
        plog.text_rows()
    );

    // Still serving.
    exec_ok(&mut c, "SHOW STREAMS;").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bulk_insert_acknowledges_offsets_and_raw_consume_reads_them() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data")).await;
    let mut c = server.client().await;
    exec_ok(&mut c, "CREATE STREAM ev (id STRING KEY, n BIGINT) WITH (kafka_topic='ev', value_format='JSON', partitions=2);").await;
    let batches: Vec<pb::BulkInsertRequest> = (0..5u64)
        .map(|b| pb::BulkInsertRequest {
            target: "ev".into(),
            columns: vec!["id".into(), "n".into()],
            rows: (0..1000)
                .map(|i| pb::Row {
                    values: vec![s(&format!("k{}", i % 10)), big((b * 1000 + i) as i64)],
                })
                .collect(),
            batch_id: b,
            ..Default::default()
        })
        .collect();
    let mut acks = c
        .bulk_insert(tokio_stream::iter(batches))
        .await
        .unwrap()
        .into_inner();
    let mut total = 0;
    let mut ids = vec![];
    while let Some(a) = acks.message().await.unwrap() {
        assert_eq!(a.offsets.len(), 1000);
        total += a.rows;
        ids.push(a.batch_id);
    }
    assert_eq!(total, 5000);
    assert_eq!(ids, vec![0, 1, 2, 3, 4]);
    assert_eq!(read_topic(&mut c, "ev", 2).await.len(), 5000);
    // A bad batch is refused with a message naming the row and column.
    let bad = pb::BulkInsertRequest {
        target: "ev".into(),
        columns: vec!["id".into(), "n".into()],
        rows: vec![pb::Row {
            values: vec![s("x"), s("y")],
        }],
        batch_id: 9,
        ..Default::default()
    };
    let mut acks = c
        .bulk_insert(tokio_stream::iter(vec![bad]))
        .await
        .unwrap()
        .into_inner();
    let e = acks.message().await.unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    assert!(e.message().contains("row 0, column N"), "{}", e.message());
    // A source stream (CREATE SOURCE) is read-only for bulk inserts too, as for INSERT.
    exec_ok(&mut c, "CREATE SOURCE STREAM ro (id STRING KEY, n BIGINT) WITH (kafka_topic='ro', value_format='JSON', partitions=1);").await;
    let into_ro = pb::BulkInsertRequest {
        target: "ro".into(),
        columns: vec![],
        rows: vec![pb::Row {
            values: vec![s("x"), big(1)],
        }],
        batch_id: 0,
        ..Default::default()
    };
    let mut acks = c
        .bulk_insert(tokio_stream::iter(vec![into_ro]))
        .await
        .unwrap()
        .into_inner();
    let e = acks.message().await.unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    assert!(
        e.message()
            .contains("Cannot insert values into read-only stream: RO"),
        "{}",
        e.message()
    );
}

/// A push query filtering on the key decides on the key alone before decoding values;
/// the rows it sends must be exactly those a full evaluation sends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_queries_filtered_by_key_send_exactly_their_keys_rows() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data")).await;
    let mut c = server.client().await;
    exec_ok(
        &mut c,
        "CREATE TABLE T (K STRING PRIMARY KEY, V BIGINT) WITH (kafka_topic='t', value_format='JSON', partitions=2);",
    )
    .await;
    for (k, v) in [("a", 1), ("b", 2), ("c", 3), ("b", 4), ("a", 5), ("b", 6)] {
        exec_ok(
            &mut c,
            &format!("INSERT INTO T (K, V) VALUES ('{k}', {v});"),
        )
        .await;
    }
    let earliest = [("auto.offset.reset", "earliest")];
    let wait = Duration::from_secs(10);
    let key_only = query(
        &mut c,
        "SELECT K, V FROM T WHERE K = 'b' EMIT CHANGES LIMIT 3;",
        &earliest,
        3,
        wait,
    )
    .await
    .unwrap();
    assert_eq!(
        key_only.text_rows(),
        vec![vec!["b", "2"], vec!["b", "4"], vec!["b", "6"]]
    );
    let mixed = query(
        &mut c,
        "SELECT V FROM T WHERE K IN ('a', 'c') AND V > 1 EMIT CHANGES LIMIT 2;",
        &earliest,
        2,
        wait,
    )
    .await
    .unwrap();
    // Keys a and c may sit in different partitions, so their order is not defined.
    let mut rows = mixed.text_rows();
    rows.sort();
    assert_eq!(rows, vec![vec!["3"], vec!["5"]]);
}

/// Push queries over joins run through the server: a stream-table join from the earliest
/// records (the stream record meets the table as it was when the record arrived), a
/// stream-stream join started at the latest records that sees only what comes after, and
/// a join feeding GROUP BY.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_queries_over_joins_send_joined_rows() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data")).await;
    let mut c = server.client().await;
    for sql in [
        "CREATE TABLE customers (id STRING PRIMARY KEY, name STRING) WITH (kafka_topic='customers', value_format='JSON', partitions=2);",
        "CREATE STREAM orders (id STRING KEY, cid STRING, total BIGINT) WITH (kafka_topic='orders', value_format='JSON', partitions=2);",
        "CREATE STREAM payments (id STRING KEY, amount BIGINT) WITH (kafka_topic='payments', value_format='JSON');",
        "INSERT INTO customers (id, name) VALUES ('c1', 'ada');",
        "INSERT INTO orders (id, cid, total) VALUES ('o1', 'c1', 10);",
        "INSERT INTO customers (id, name) VALUES ('c1', 'ada lovelace');",
        "INSERT INTO orders (id, cid, total) VALUES ('o2', 'c1', 20);",
        "INSERT INTO orders (id, cid, total) VALUES ('o3', 'nobody', 30);",
    ] {
        exec_ok(&mut c, sql).await;
    }
    let earliest = [("auto.offset.reset", "earliest")];
    let wait = Duration::from_secs(10);
    let enriched = query(
        &mut c,
        "SELECT o.id, c.name, o.total FROM orders o LEFT JOIN customers c ON o.cid = c.id WHERE o.total > 5 EMIT CHANGES LIMIT 3;",
        &earliest,
        3,
        wait,
    )
    .await
    .unwrap();
    assert_eq!(enriched.columns, vec!["O_ID", "NAME", "TOTAL"]);
    assert_eq!(
        enriched.text_rows(),
        vec![
            vec!["o1", "ada", "10"],
            vec!["o2", "ada lovelace", "20"],
            vec!["o3", "null", "30"],
        ]
    );

    // Started at the latest records: the order already there has no payment to meet.
    let open = open_query(
        &mut c,
        "SELECT o.id, p.amount FROM orders o JOIN payments p WITHIN 1 HOUR ON o.id = p.id EMIT CHANGES LIMIT 1;",
        &[],
        wait,
    )
    .await
    .unwrap();
    exec_ok(
        &mut c,
        "INSERT INTO payments (id, amount) VALUES ('o1', 10);",
    )
    .await;
    exec_ok(
        &mut c,
        "INSERT INTO orders (id, cid, total) VALUES ('o4', 'c1', 40);",
    )
    .await;
    exec_ok(
        &mut c,
        "INSERT INTO payments (id, amount) VALUES ('o4', 40);",
    )
    .await;
    let paid = open.collect(1, wait).await.unwrap();
    assert_eq!(paid.text_rows(), vec![vec!["o4", "40"]]);

    // A join feeding an aggregation: every update of a group, from the earliest records.
    let per_name = query(
        &mut c,
        "SELECT c.name, COUNT(*) AS orders FROM orders o JOIN customers c ON o.cid = c.id GROUP BY c.name EMIT CHANGES LIMIT 2;",
        &earliest,
        2,
        wait,
    )
    .await
    .unwrap();
    assert_eq!(
        per_name.text_rows(),
        vec![vec!["ada", "1"], vec!["ada lovelace", "1"]]
    );
}

/// DELETE FROM a source table writes a tombstone per key it names: views over the table
/// retract the row. Anything but whole keys, a stream, or a table a query computes is
/// refused with a positioned error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_from_a_table_retracts_its_rows_from_views() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data")).await;
    let mut c = server.client().await;
    for sql in [
        "CREATE TABLE users (id STRING PRIMARY KEY, name STRING, city STRING) WITH (kafka_topic='users', value_format='JSON', partitions=2);",
        "CREATE TABLE per_city AS SELECT city, COUNT(*) AS n FROM users GROUP BY city;",
        "CREATE STREAM clicks (id STRING KEY) WITH (kafka_topic='clicks', value_format='JSON');",
        "INSERT INTO users (id, name, city) VALUES ('u1', 'ada', 'london');",
        "INSERT INTO users (id, name, city) VALUES ('u2', 'bob', 'london');",
        "INSERT INTO users (id, name, city) VALUES ('u3', 'cy', 'paris');",
    ] {
        exec_ok(&mut c, sql).await;
    }
    let london = "SELECT n FROM per_city WHERE city = 'london';";
    eventually(&mut c, london, |r| r == [vec!["2".to_string()]]).await;
    let done = exec_ok(&mut c, "DELETE FROM users WHERE id = 'u1';").await;
    assert_eq!(done.results[0].message, "Deleted 1 key from USERS");
    eventually(&mut c, london, |r| r == [vec!["1".to_string()]]).await;
    let done = exec_ok(&mut c, "DELETE FROM users WHERE id IN ('u2', 'nobody');").await;
    assert_eq!(done.results[0].message, "Deleted 2 keys from USERS");
    eventually(&mut c, london, |r| r == [vec!["0".to_string()]]).await;
    // Paris is untouched.
    let paris = pull(&mut c, "SELECT n FROM per_city WHERE city = 'paris';").await;
    assert_eq!(paris.text_rows(), [["1"]]);

    for (sql, needle) in [
        (
            "DELETE FROM users WHERE name = 'cy';",
            "must name the keys to delete",
        ),
        ("DELETE FROM users;", "needs a WHERE clause"),
        ("DELETE FROM clicks WHERE id = 'x';", "it is a stream"),
        ("DELETE FROM per_city WHERE city = 'paris';", "computes"),
    ] {
        let e = exec(&mut c, sql).await.unwrap_err();
        assert_eq!(e.code(), Code::InvalidArgument, "{sql}: {e:?}");
        assert!(e.message().contains(needle), "{sql}: {}", e.message());
    }
}

/// The Pull RPC: many pull queries pipelined over one call, with `?` parameters; a failed
/// request is answered with its error and the call goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pull_rpc_answers_pipelined_parameterised_lookups_in_order() {
    use tokio_stream::StreamExt;
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data")).await;
    let mut c = server.client().await;
    exec_ok(
        &mut c,
        "CREATE TABLE users_raw (id STRING PRIMARY KEY, name STRING, age BIGINT) WITH (kafka_topic='users', value_format='JSON', partitions=1);
         CREATE TABLE users AS SELECT * FROM users_raw;
         INSERT INTO users_raw (id, name, age) VALUES ('u1', 'Ann', 31);
         INSERT INTO users_raw (id, name, age) VALUES ('it''s', 'Quote', 7);
         INSERT INTO users_raw (id, name, age) VALUES ('u3', 'Cy', 50);",
    )
    .await;
    eventually(&mut c, "SELECT * FROM users;", |rows| rows.len() == 3).await;

    let req = |id: u64, sql: &str, params: Vec<pb::Value>, with_columns: bool| pb::PullRequest {
        id,
        sql: sql.into(),
        with_columns,
        params,
        ..Default::default()
    };
    let by_id = "SELECT name, age FROM users WHERE id = ?;";
    let requests = vec![
        req(0, by_id, vec![s("u1")], true),
        // A value needing SQL quoting goes in as a parameter unchanged.
        req(1, by_id, vec![s("it's")], false),
        req(2, by_id, vec![s("nobody")], false),
        req(
            3,
            "SELECT id FROM users WHERE age > ? AND age < ?;",
            vec![big(10), big(60)],
            false,
        ),
        req(4, by_id, vec![], false),
        req(
            5,
            "SELECT * FROM nowhere WHERE id = ?;",
            vec![s("u1")],
            false,
        ),
        req(6, "SELECT * FROM users EMIT CHANGES;", vec![], false),
        req(7, "SELEC 1;", vec![], false),
        req(
            8,
            by_id,
            vec![pb::Value {
                kind: Some(pb::value::Kind::Bytes(vec![1])),
            }],
            false,
        ),
        req(9, by_id, vec![s("u3")], false),
    ];
    let n = requests.len();
    let mut responses = c
        .pull(tokio_stream::iter(requests))
        .await
        .expect("Pull call")
        .into_inner();
    let mut got = Vec::new();
    while let Some(r) = responses.next().await {
        got.push(r.expect("a Pull response, not a failed call"));
        if got.len() == n {
            break;
        }
    }
    assert_eq!(got.len(), n);
    for (i, r) in got.iter().enumerate() {
        assert_eq!(r.id, i as u64, "responses come in request order");
    }
    let rows = |r: &pb::PullResponse| -> Vec<Vec<String>> {
        assert!(r.error.is_empty(), "request {} failed: {}", r.id, r.error);
        let mut v: Vec<Vec<String>> = r
            .rows
            .iter()
            .map(|row| row.values.iter().map(show).collect())
            .collect();
        v.sort();
        v
    };
    assert_eq!(rows(&got[0]), vec![vec!["Ann", "31"]]);
    let cols: Vec<_> = got[0].columns.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(cols, ["NAME", "AGE"]);
    assert!(got[1].columns.is_empty(), "columns only when asked for");
    assert_eq!(rows(&got[1]), vec![vec!["Quote", "7"]]);
    assert!(rows(&got[2]).is_empty());
    assert_eq!(rows(&got[3]), vec![vec!["u1"], vec!["u3"]]);
    let err = |r: &pb::PullResponse, code: Code, text: &str| {
        assert_eq!(r.error_code, code as i32, "request {}: {}", r.id, r.error);
        assert!(r.error.contains(text), "request {}: {}", r.id, r.error);
    };
    err(
        &got[4],
        Code::InvalidArgument,
        "1 parameter placeholder (?) but 0 values",
    );
    err(&got[5], Code::NotFound, "NOWHERE");
    err(
        &got[6],
        Code::InvalidArgument,
        "push queries (EMIT CHANGES) with Query",
    );
    err(&got[7], Code::InvalidArgument, "Syntax Error");
    err(
        &got[8],
        Code::InvalidArgument,
        "parameter 1: only null, boolean",
    );
    assert_eq!(rows(&got[9]), vec![vec!["Cy", "50"]]);
}

/// A Pull call keeps key lookups by parameter planned across requests; a DROP or a
/// re-created table between two requests of the same call must take effect at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pull_rpc_prepared_lookups_follow_catalog_changes() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data")).await;
    let mut c = server.client().await;
    let mut ddl = server.client().await;
    exec_ok(
        &mut ddl,
        "CREATE TABLE t1 (id STRING PRIMARY KEY, v BIGINT) WITH (kafka_topic='t1', value_format='JSON', partitions=1);
         CREATE TABLE t AS SELECT * FROM t1;
         INSERT INTO t1 (id, v) VALUES ('a', 1);
         INSERT INTO t1 (id, v) VALUES ('b', 2);",
    )
    .await;
    eventually(&mut ddl, "SELECT * FROM t;", |rows| rows.len() == 2).await;

    let (tx, rx) = tokio::sync::mpsc::channel::<pb::PullRequest>(4);
    let mut responses = c
        .pull(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
        .expect("Pull call")
        .into_inner();
    let mut next_id = 0u64;
    let mut ask = async |sql: &str, params: Vec<pb::Value>| -> pb::PullResponse {
        next_id += 1;
        tx.send(pb::PullRequest {
            id: next_id,
            sql: sql.into(),
            with_columns: true,
            params,
            ..Default::default()
        })
        .await
        .expect("send");
        let r = responses
            .message()
            .await
            .expect("a Pull response")
            .expect("the call stays open");
        assert_eq!(r.id, next_id);
        r
    };
    let table = |r: &pb::PullResponse| -> (Vec<String>, Vec<Vec<String>>) {
        assert!(r.error.is_empty(), "request {} failed: {}", r.id, r.error);
        (
            r.columns.iter().map(|c| c.name.clone()).collect(),
            r.rows
                .iter()
                .map(|row| row.values.iter().map(show).collect())
                .collect(),
        )
    };
    let by_id = "SELECT * FROM t WHERE id = ?;";
    let row = |cols: &[&str], vals: &[&str]| {
        (
            cols.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
            vec![vals.iter().map(|s| s.to_string()).collect::<Vec<_>>()],
        )
    };
    assert_eq!(
        table(&ask(by_id, vec![s("a")]).await),
        row(&["ID", "V"], &["a", "1"])
    );
    // Conditions beside the key's still filter the looked-up row.
    let with_filter = "SELECT v FROM t WHERE ? = id AND v > 1;";
    assert!(table(&ask(with_filter, vec![s("a")]).await).1.is_empty());
    assert_eq!(
        table(&ask(with_filter, vec![s("b")]).await),
        row(&["V"], &["2"])
    );

    exec_ok(&mut ddl, "TERMINATE ALL; DROP TABLE t;").await;
    let r = ask(by_id, vec![s("a")]).await;
    assert_eq!(r.error_code, Code::NotFound as i32, "{}", r.error);

    exec_ok(
        &mut ddl,
        "CREATE TABLE t2 (id BIGINT PRIMARY KEY, name STRING) WITH (kafka_topic='t2', value_format='JSON', partitions=1);
         CREATE TABLE t WITH (kafka_topic='t_v2') AS SELECT * FROM t2;
         INSERT INTO t2 (id, name) VALUES (7, 'seven');",
    )
    .await;
    eventually(&mut ddl, "SELECT * FROM t;", |rows| rows.len() == 1).await;
    assert_eq!(
        table(&ask(by_id, vec![big(7)]).await),
        row(&["ID", "NAME"], &["7", "seven"])
    );
    // An INT parameter for a BIGINT key is looked up; a string one is refused as the
    // literal would be.
    let int7 = pb::Value {
        kind: Some(pb::value::Kind::Int(7)),
    };
    assert_eq!(table(&ask(by_id, vec![int7]).await).1.len(), 1);
    let r = ask(by_id, vec![s("7")]).await;
    assert_eq!(r.error_code, Code::InvalidArgument as i32, "{}", r.error);
    assert!(
        r.error.contains("Cannot compare ID (BIGINT)"),
        "{}",
        r.error
    );
    drop(tx);
}

/// A BulkInsert call resolves its target once, but DDL on the way must take effect: a
/// dropped stream is not written with its old definition.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bulk_insert_sees_a_drop_between_batches() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data")).await;
    let mut c = server.client().await;
    let mut ddl = server.client().await;
    exec_ok(&mut ddl, "CREATE STREAM ev (id STRING KEY, n BIGINT) WITH (kafka_topic='ev', value_format='JSON', partitions=1);").await;
    let batch = |b: u64| pb::BulkInsertRequest {
        target: "ev".into(),
        columns: vec!["id".into(), "n".into()],
        rows: vec![pb::Row {
            values: vec![s("k"), big(b as i64)],
        }],
        batch_id: b,
        ..Default::default()
    };
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    let mut acks = c
        .bulk_insert(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
        .unwrap()
        .into_inner();
    tx.send(batch(0)).await.unwrap();
    assert_eq!(acks.message().await.unwrap().unwrap().batch_id, 0);
    exec_ok(&mut ddl, "DROP STREAM ev;").await;
    tx.send(batch(1)).await.unwrap();
    let e = acks.message().await.unwrap_err();
    assert_eq!(e.code(), Code::NotFound, "{}", e.message());
    assert!(e.message().contains("EV does not exist"), "{}", e.message());
}

/// `rowtime: yyyy/MM/dd HH:mm:ss.SSS Z, <rest>`, the rowtime being any instant.
fn is_print_line(line: &str, rest: &str) -> bool {
    let Some(time) = line
        .strip_prefix("rowtime: ")
        .and_then(|l| l.strip_suffix(rest))
        .and_then(|l| l.strip_suffix(", "))
    else {
        return false;
    };
    let shape = "dddd/dd/dd dd:dd:dd.ddd Z";
    time.len() == shape.len()
        && time
            .chars()
            .zip(shape.chars())
            .all(|(c, s)| if s == 'd' { c.is_ascii_digit() } else { c == s })
}
