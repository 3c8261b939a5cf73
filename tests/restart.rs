//! A restart must not change what a persistent query computes, and no stored object may
//! keep the database from starting. Each test runs the real binary, kills it with -9 and
//! starts it again on the same data directory.

mod common;

use common::*;
use sluice_proto::v1 as pb;
use sluice_proto::v1::sluice_client::SluiceClient;
use std::collections::HashMap;
use std::time::{Duration, Instant};
use tonic::Code;
use tonic::transport::Channel;

async fn exec_with(
    c: &mut SluiceClient<Channel>,
    sql: &str,
    properties: &[(&str, &str)],
) -> pb::ExecuteResponse {
    c.execute(pb::ExecuteRequest {
        sql: sql.into(),
        properties: properties
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<HashMap<_, _>>(),
    })
    .await
    .unwrap_or_else(|e| panic!("{sql}: {e:?}"))
    .into_inner()
}

/// SHOW QUERIES: id -> status.
async fn statuses(c: &mut SluiceClient<Channel>) -> HashMap<String, String> {
    show_queries(c).await.into_iter().collect()
}

/// Issue #11: `SET 'ksql.functions.collect_list.limit'='2'` held until a restart, after
/// which the query was re-planned with the default limit and the list grew past it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_query_keeps_the_properties_it_was_created_with_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut server = Server::start(&data).await;
    let mut c = server.client().await;
    exec_ok(
        &mut c,
        "CREATE STREAM cl (k STRING KEY, v INT) WITH (kafka_topic='cl', value_format='JSON', partitions=1);",
    )
    .await;
    exec_with(
        &mut c,
        "CREATE TABLE lists AS SELECT k, COLLECT_LIST(v) AS l FROM cl GROUP BY k;",
        &[("ksql.functions.collect_list.limit", "2")],
    )
    .await;
    for v in 1..=3 {
        exec_ok(&mut c, &format!("INSERT INTO cl (k, v) VALUES ('a', {v});")).await;
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while list_of(&mut c).await != [1, 2] {
        assert!(Instant::now() < deadline, "the list never became [1, 2]");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    server.kill9();
    let server = Server::start(&data).await;
    let mut c = server.client().await;
    for v in 4..=5 {
        exec_ok(&mut c, &format!("INSERT INTO cl (k, v) VALUES ('a', {v});")).await;
    }
    // Wait until the two new records are processed, then the list must still be [1,2].
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (status, processed, _, _) = query_row(&mut c, "CTAS_LISTS").await;
        assert_eq!(status, "RUNNING");
        if processed >= 2 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the query did not process the new records"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(list_of(&mut c).await, [1, 2]);
}

/// The one row of LISTS: its list's integers.
async fn list_of(c: &mut SluiceClient<Channel>) -> Vec<i32> {
    let r = pull(c, "SELECT k, l FROM lists;").await;
    let Some(row) = r.rows.first() else {
        return Vec::new();
    };
    match &row[1].kind {
        Some(pb::value::Kind::Array(a)) => a
            .items
            .iter()
            .filter_map(|v| match v.kind {
                Some(pb::value::Kind::Int(i)) => Some(i),
                _ => None,
            })
            .collect(),
        other => panic!("not an array: {other:?}"),
    }
}

/// Issue #11: dropping a type a query used was accepted, and from then on every start
/// failed with "cannot restore the catalog: ... Unknown type: MYTYPE".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_type_a_query_uses_cannot_be_dropped_and_the_database_always_starts() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut server = Server::start(&data).await;
    let mut c = server.client().await;
    exec_ok(
        &mut c,
        "CREATE STREAM s5 (id STRING KEY, n INT) WITH (kafka_topic='s5', value_format='JSON', partitions=1);",
    )
    .await;
    exec_ok(&mut c, "CREATE TYPE mytype AS BIGINT;").await;
    exec_ok(
        &mut c,
        "CREATE STREAM d5 AS SELECT id, CAST(n AS mytype) AS m FROM s5;",
    )
    .await;
    let err = exec(&mut c, "DROP TYPE mytype;").await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");
    assert!(err.message().contains("CSAS_D5"), "{}", err.message());

    server.kill9();
    let mut server = Server::start(&data).await;
    let mut c = server.client().await;
    let st = statuses(&mut c).await;
    let id = st
        .keys()
        .find(|k| k.starts_with("CSAS_D5"))
        .expect("the query survives the restart")
        .clone();
    assert_eq!(st[&id], "RUNNING");
    exec_ok(&mut c, &format!("TERMINATE {id};")).await;
    exec_ok(&mut c, "DROP TYPE mytype;").await;
    server.kill9();
    let server = Server::start(&data).await;
    let mut c = server.client().await;
    exec_ok(&mut c, "SHOW STREAMS;").await;
}

/// A stored query that no longer plans is listed in ERROR with the reason; the server
/// starts, and every other query runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stored_query_that_no_longer_plans_is_in_error_not_a_failed_start() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut server = Server::start(&data).await;
    let mut c = server.client().await;
    exec_ok(
        &mut c,
        "CREATE STREAM src (id STRING KEY, n INT) WITH (kafka_topic='src', value_format='JSON', partitions=1);
         CREATE STREAM good AS SELECT id, n FROM src;
         CREATE STREAM bad AS SELECT id, n * 2 AS m FROM src;",
    )
    .await;
    let st = statuses(&mut c).await;
    let bad = st
        .keys()
        .find(|k| k.starts_with("CSAS_BAD"))
        .unwrap()
        .clone();
    let good = st
        .keys()
        .find(|k| k.starts_with("CSAS_GOOD"))
        .unwrap()
        .clone();
    server.kill9();

    // Damage the stored statement of one query, as a bug or a future incompatible change
    // might: it no longer parses.
    {
        let log = sluice_storage::EmbeddedLog::open(&data).unwrap();
        let key = format!("query/{bad}");
        let mut def: serde_json::Value = serde_json::from_slice(
            &log.get(sluice_storage::Cf::Catalog, key.as_bytes())
                .unwrap()
                .unwrap(),
        )
        .unwrap();
        def["sql"] = serde_json::Value::String("CREATE STREAM bad AS SELEC id FROM src;".into());
        let mut txn = sluice_storage::Txn::new();
        txn.put(
            sluice_storage::Cf::Catalog,
            key.into_bytes(),
            serde_json::to_vec(&def).unwrap(),
        );
        sluice_storage::Log::submit(&log, txn).wait().await.unwrap();
    }

    let server = Server::start(&data).await;
    let mut c = server.client().await;
    let st = statuses(&mut c).await;
    assert!(st[&bad].starts_with("ERROR: "), "{st:?}");
    assert!(
        st[&bad].contains("Syntax Error") || st[&bad].contains("SELEC"),
        "{st:?}"
    );
    assert_eq!(st[&good], "RUNNING", "{st:?}");
    exec_ok(&mut c, "INSERT INTO src (id, n) VALUES ('x', 1);").await;
    let out = query(
        &mut c,
        "SELECT id, n FROM good EMIT CHANGES;",
        &[("auto.offset.reset", "earliest")],
        1,
        Duration::from_secs(20),
    )
    .await
    .unwrap();
    assert_eq!(out.text_rows(), [["x", "1"]]);
    // The broken query can be terminated like any other.
    exec_ok(&mut c, &format!("TERMINATE {bad};")).await;
    assert!(!statuses(&mut c).await.contains_key(&bad));
}

/// SHOW QUERIES' row of the query whose id starts with `prefix`: (status, processed,
/// errors).
/// A query's SHOW QUERIES row: (status, processed, errors, late records dropped).
async fn query_row(c: &mut SluiceClient<Channel>, prefix: &str) -> (String, u64, u64, u64) {
    let r = exec_ok(c, "SHOW QUERIES;").await;
    let cols: Vec<&str> = r.results[0]
        .columns
        .iter()
        .map(|c| c.name.as_str())
        .collect();
    let col = |name: &str| cols.iter().position(|c| *c == name).unwrap();
    let row = r.results[0]
        .rows
        .iter()
        .find(|row| show(&row.values[0]).starts_with(prefix))
        .unwrap_or_else(|| panic!("no query {prefix}*"))
        .clone();
    let number = |name: &str| show(&row.values[col(name)]).parse().unwrap();
    (
        show(&row.values[col("Status")]),
        number("Processed"),
        number("Errors"),
        number("Late"),
    )
}

/// Issue #12, end to end through the server: a tumbling-window count with a grace
/// period, read by pull queries with window bounds; a late record is dropped and counted,
/// an expired window leaves the table, and both stay so after SIGKILL and a restart
/// (stream time is committed with the offsets), while on-time records keep counting.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_windowed_count_serves_pull_queries_and_keeps_its_stream_time_across_a_kill() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut server = Server::start(&data).await;
    let mut c = server.client().await;
    exec_ok(
        &mut c,
        "CREATE STREAM clicks (user_id STRING KEY, page STRING) WITH (kafka_topic='clicks', value_format='JSON', partitions=1);",
    )
    .await;
    exec_ok(
        &mut c,
        "CREATE TABLE per_10s AS SELECT user_id, COUNT(*) AS n FROM clicks WINDOW TUMBLING (SIZE 10 SECONDS, GRACE PERIOD 5 SECONDS) GROUP BY user_id;",
    )
    .await;
    let explained = exec_ok(
        &mut c,
        "EXPLAIN CREATE TABLE hops AS SELECT user_id, COUNT(*) AS n FROM clicks WINDOW HOPPING (SIZE 10 SECONDS, ADVANCE BY 5 SECONDS) GROUP BY user_id EMIT FINAL;",
    )
    .await;
    let plan = &explained.results[0].message;
    assert!(
        plan.contains(
            "WINDOW HOPPING (size 10000 ms, advance 5000 ms, grace 0 ms, retention 10000 ms), EMIT FINAL"
        ),
        "{plan}"
    );
    let insert = |ts: i64, user: &str| {
        format!("INSERT INTO clicks (ROWTIME, user_id, page) VALUES ({ts}, '{user}', 'p');")
    };
    for (ts, user) in [(1_000, "u1"), (4_000, "u1"), (12_000, "u1"), (13_000, "u2")] {
        exec_ok(&mut c, &insert(ts, user)).await;
    }
    let windows = "SELECT user_id, WINDOWSTART, WINDOWEND, n FROM per_10s WHERE user_id = 'u1';";
    let rows = eventually(&mut c, windows, |r| r.len() == 2 && r[1][3] == "1").await;
    assert_eq!(
        rows,
        [["u1", "0", "10000", "2"], ["u1", "10000", "20000", "1"]],
        "one row per window, in window order"
    );
    let bounded = "SELECT n FROM per_10s WHERE user_id = 'u1' AND WINDOWSTART >= 10000;";
    assert_eq!(pull(&mut c, bounded).await.text_rows(), [["1"]]);

    // Stream time 21,000 closes [0, 10000) (end + grace = 15,000); a record for it is late.
    exec_ok(&mut c, &insert(21_000, "u2")).await;
    exec_ok(&mut c, &insert(2_000, "u1")).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while query_row(&mut c, "CTAS_PER_10S").await.1 < 6 {
        assert!(
            Instant::now() < deadline,
            "the query did not process the records"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (status, _, errors, late) = query_row(&mut c, "CTAS_PER_10S").await;
    assert_eq!(
        (status.as_str(), errors, late),
        ("RUNNING", 0, 1),
        "the late record is counted as late, not as an error"
    );
    let described = exec_ok(&mut c, "DESCRIBE EXTENDED per_10s;").await;
    let text = &described.results[0].message;
    assert!(text.contains("late records dropped 1"), "{text}");
    // Retention (size + grace = 15 s by default) has expired [0, 10000) too: its start is
    // before stream time minus retention, so it left the table.
    assert_eq!(
        pull(&mut c, windows).await.text_rows(),
        [["u1", "10000", "20000", "1"]]
    );

    server.kill9();
    let server = Server::start(&data).await;
    let mut c = server.client().await;
    // Still late after the restart; an on-time record for [10000, 20000) still counts.
    exec_ok(&mut c, &insert(3_000, "u1")).await;
    exec_ok(&mut c, &insert(17_000, "u1")).await;
    let rows = eventually(&mut c, windows, |r| r.len() == 1 && r[0][3] == "2").await;
    assert_eq!(
        rows,
        [["u1", "10000", "20000", "2"]],
        "the late record was not counted"
    );
    let (_, processed, errors, late) = query_row(&mut c, "CTAS_PER_10S").await;
    assert_eq!(
        (processed, errors, late),
        (2, 0, 1),
        "processed, errors and late records since the restart"
    );
}

/// SIGTERM with a push subscriber and a PRINT tail connected: both end with UNAVAILABLE,
/// the process exits within seconds (not the 30-70 s it took when shutdown waited for
/// subscribers to hang up), and a server started right after on the same data directory
/// opens it (no stale RocksDB lock) with every acknowledged event there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_ends_streaming_calls_and_exits_promptly() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut server = Server::start(&data).await;
    let mut c = server.client().await;
    exec_ok(
        &mut c,
        "CREATE STREAM ev (k STRING KEY, v BIGINT) WITH (kafka_topic='ev', value_format='JSON');",
    )
    .await;
    exec_ok(&mut c, "INSERT INTO ev (k, v) VALUES ('a', 1);").await;
    let push = open_query(
        &mut c,
        "SELECT * FROM ev EMIT CHANGES;",
        &[],
        Duration::from_secs(10),
    )
    .await
    .unwrap();
    let mut c2 = server.client().await;
    let print = open_query(
        &mut c2,
        "PRINT 'ev' FROM BEGINNING;",
        &[],
        Duration::from_secs(10),
    )
    .await
    .unwrap();
    let started = Instant::now();
    let status = tokio::task::spawn_blocking(move || {
        let status = server.terminate(Duration::from_secs(20));
        (server, status)
    })
    .await
    .unwrap();
    let (_server, status) = status;
    let status = status.expect("the server exits after SIGTERM");
    eprintln!(
        "SIGTERM to exit, with a push query and a PRINT open: {:?}",
        started.elapsed()
    );
    assert!(status.success(), "{status:?}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "exit took {:?}",
        started.elapsed()
    );
    for (what, open) in [("push query", push), ("PRINT", print)] {
        let err = open
            .collect(usize::MAX, Duration::from_secs(10))
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::Unavailable, "{what}: {err:?}");
    }
    let server = Server::start(&data).await;
    let mut c = server.client().await;
    let rows = query(
        &mut c,
        "SELECT k, v FROM ev EMIT CHANGES LIMIT 1;",
        &[("auto.offset.reset", "earliest")],
        1,
        Duration::from_secs(10),
    )
    .await
    .unwrap();
    assert_eq!(rows.text_rows(), [["a", "1"]]);
}

/// With no TLS or authentication yet, a non-loopback address is refused at start-up with
/// what to do, before anything is opened; `--insecure` serves it anyway.
#[test]
fn a_non_loopback_address_needs_insecure() {
    use std::io::{BufRead, BufReader};
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let addr = format!("0.0.0.0:{}", free_port());
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["server", "--listen", &addr, "--data-dir"])
        .arg(&data)
        .env_remove("SLUICE_INSECURE")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("refusing to listen on {addr}")) && stderr.contains("--insecure"),
        "{stderr}"
    );
    assert!(!data.exists(), "a refused start creates nothing");

    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["server", "--insecure", "--listen", &addr, "--data-dir"])
        .arg(&data)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let ready = BufReader::new(stderr)
        .lines()
        .map_while(Result::ok)
        .any(|line| line.contains("Sluice server listening"));
    let _ = child.kill();
    let _ = child.wait();
    assert!(ready, "the server did not start with --insecure");
}

/// A limit of 0 is refused at start-up, naming the flag, whether given as a flag or
/// through its environment variable, before anything is opened.
#[test]
fn a_limit_of_zero_is_refused_at_start_up() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    for (args, env) in [
        (vec!["--max-in-list", "0"], None),
        (vec!["--max-value-bytes", "0"], None),
        (vec!["--pull-timeout-ms", "0"], None),
        (vec![], Some(("SLUICE_MAX_REGEX_BYTES", "0"))),
    ] {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_sluice"));
        cmd.args(["server", "--data-dir"]).arg(&data).args(&args);
        if let Some((k, v)) = env {
            cmd.env(k, v);
        }
        let out = cmd.output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} {env:?} started");
        let flag = args
            .first()
            .copied()
            .unwrap_or("--max-regex-bytes")
            .to_string();
        assert!(
            stderr.contains(&flag) && stderr.contains("at least 1"),
            "{args:?} {env:?}: {stderr}"
        );
        assert!(!data.exists(), "a refused start creates nothing");
    }
}

/// The server hands glibc's free pages back on a thread of its own
/// (`SLUICE_MALLOC_TRIM_SECS`, src/c_malloc.rs): it runs by default, 0 turns it off, and
/// a value that is not a number of seconds is refused at start-up, naming the variable,
/// before anything is opened.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_malloc_trim_thread_runs_unless_turned_off() {
    let thread_names = |pid: u32| -> Vec<String> {
        std::fs::read_dir(format!("/proc/{pid}/task"))
            .unwrap()
            .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
            .map(|n| n.trim().to_string())
            .collect()
    };
    // The kernel keeps 15 bytes of a thread's name.
    let trimmer = "sluice-malloc-t";
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("on")).await;
    let names = thread_names(server.child.id());
    assert!(names.iter().any(|n| n == trimmer), "{names:?}");
    drop(server);
    let server = Server::start_with_env(
        &dir.path().join("off"),
        free_port(),
        &[("SLUICE_MALLOC_TRIM_SECS", "0")],
    )
    .await;
    let names = thread_names(server.child.id());
    assert!(!names.iter().any(|n| n == trimmer), "{names:?}");
    drop(server);

    let data = dir.path().join("bad");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["server", "--data-dir"])
        .arg(&data)
        .env("SLUICE_MALLOC_TRIM_SECS", "often")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("SLUICE_MALLOC_TRIM_SECS") && stderr.contains("\"often\""),
        "{stderr}"
    );
    assert!(!data.exists(), "a refused start creates nothing");
}

/// `--log-format json` (here through SLUICE_LOG_FORMAT): every log line is one JSON
/// object, and a call's lines carry its span with a request id and the statement.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_carry_the_request_id() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with_env(
        &dir.path().join("data"),
        free_port(),
        &[("SLUICE_LOG_FORMAT", "json")],
    )
    .await;
    let mut c = server.client().await;
    exec_ok(
        &mut c,
        "CREATE STREAM ev (k STRING KEY, v BIGINT) WITH (kafka_topic='ev', value_format='JSON');",
    )
    .await;
    query(
        &mut c,
        "SELECT * FROM ev EMIT CHANGES LIMIT 0;",
        &[],
        1,
        Duration::from_secs(10),
    )
    .await
    .unwrap();
    let log = server.log();
    let lines: Vec<serde_json::Value> = log
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let started = lines
        .iter()
        .find(|l| l["fields"]["message"] == "push query started")
        .unwrap_or_else(|| panic!("no push query line in {log}"));
    assert_eq!(started["span"]["name"], "query", "{started}");
    assert!(
        started["span"]["request_id"].as_u64().is_some(),
        "{started}"
    );
    assert!(
        started["span"]["sql"]
            .as_str()
            .is_some_and(|s| s.contains("FROM ev")),
        "{started}"
    );
}
