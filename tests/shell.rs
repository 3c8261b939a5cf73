//! End-to-end: the `sluice shell` binary against the real server.

mod common;

use common::*;
use std::process::{Command, Stdio};
use std::time::Duration;
use tokio::io::AsyncBufReadExt;

fn shell(server: &Server, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["shell", "--server", &server.url()])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run sluice shell")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tutorial_runs_verbatim_with_a_push_query_started_before_the_inserts() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data")).await;
    let tutorial = common::repo_path("docs/tutorial.sql");
    let sql = std::fs::read_to_string(tutorial).unwrap();
    let (ddl, rest) = sql.split_at(sql.find("INSERT INTO").unwrap());

    let out = shell(&server, &["-e", ddl]);
    assert!(out.status.success(), "{}", text(&out.stderr));

    // A push subscriber that is listening before any insert happens: the shell prints the
    // query's header as soon as it arrives, and the server sends it only once the
    // subscription's positions are fixed, so the header line is the readiness signal.
    let mut subscriber = tokio::process::Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args([
            "shell",
            "--server",
            &server.url(),
            "--output",
            "json",
            "-e",
            "SELECT * FROM pageviews EMIT CHANGES LIMIT 3;",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut sub_lines = tokio::io::BufReader::new(subscriber.stdout.take().unwrap()).lines();
    let header = tokio::time::timeout(Duration::from_secs(30), sub_lines.next_line())
        .await
        .expect("the push query's header within 30 s")
        .unwrap()
        .expect("a header line before the shell's output ends");
    assert!(header.starts_with(r#"{"header":"#), "{header}");

    let out = shell(&server, &["-e", rest]);
    let stdout = text(&out.stdout);
    assert!(
        out.status.success(),
        "stdout:\n{stdout}\nstderr:\n{}",
        text(&out.stderr)
    );
    for expected in [
        "VIEWS_PER_USER",
        "SLOW_VIEWS",
        "PAGEVIEWS",
        "Limit Reached",
        "USER_ID",
        "/a",
    ] {
        assert!(
            stdout.contains(expected),
            "missing {expected:?} in:\n{stdout}"
        );
    }

    let mut sub_stdout = vec![header];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while let Some(line) = tokio::time::timeout_at(deadline, sub_lines.next_line())
        .await
        .expect("the subscriber's output ends within 30 s")
        .unwrap()
    {
        sub_stdout.push(line);
    }
    let sub = subscriber.wait_with_output().await.unwrap();
    assert!(sub.status.success(), "{}", text(&sub.stderr));
    let lines: Vec<serde_json::Value> = sub_stdout
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let rows: Vec<&serde_json::Value> = lines.iter().filter_map(|l| l.get("row")).collect();
    assert_eq!(rows.len(), 3, "{lines:?}");
    assert_eq!(rows[0], &serde_json::json!(["u1", "/a", 120]));
    assert!(lines.last().unwrap().get("final").is_some(), "{lines:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scripted_failures_exit_non_zero_and_json_output_is_one_object_per_line() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data")).await;
    let out = shell(
        &server,
        &[
            "--output",
            "json",
            "-e",
            "CREATE STREAM s (k STRING KEY, v INT) WITH (kafka_topic='s', value_format='JSON'); SHOW STREAMS;",
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let lines: Vec<serde_json::Value> = text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect();
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert_eq!(lines[0]["message"], "Stream created");

    let out = shell(
        &server,
        &[
            "-e",
            "SHOW STREAMS; SELECT nope FROM s EMIT CHANGES; SHOW TABLES;",
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("NOPE") && stderr.contains("Line: 1, Col: "),
        "{stderr}"
    );

    let file = dir.path().join("script.sql");
    std::fs::write(
        &file,
        "INSERT INTO s (k, v) VALUES ('a', 1);\nINSERT INTO missing (k) VALUES ('a');\n",
    )
    .unwrap();
    let out = shell(&server, &["-f", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("MISSING does not exist"),
        "{}",
        text(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interactive_shell_multiline_ctrl_c_and_history() {
    let python = Command::new("python3").arg("--version").output();
    if python.is_err() {
        eprintln!(
            "skipping the interactive shell test: python3 (used to drive a pseudo-terminal) is not installed"
        );
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data")).await;
    let script = common::repo_path("tests/pty/interactive_shell.py");
    let history = dir.path().join("history");
    let url = server.url();
    let out = tokio::task::spawn_blocking(move || {
        Command::new("python3")
            .arg(script)
            .args([
                env!("CARGO_BIN_EXE_sluice"),
                &url,
                history.to_str().unwrap(),
            ])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(
        out.status.success() && text(&out.stdout).contains("interactive shell OK"),
        "stdout:\n{}\nstderr:\n{}",
        text(&out.stdout),
        text(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_shopping_cart_tutorial_runs_verbatim() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data")).await;
    let script = common::repo_path("docs/cart-tutorial.sql");
    let out = shell(
        &server,
        &["--output", "json", "-f", script.to_str().unwrap()],
    );
    let stdout = text(&out.stdout);
    assert!(
        out.status.success(),
        "stdout:\n{stdout}\nstderr:\n{}",
        text(&out.stderr)
    );
    let lines: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    // Each pull right after a command sees it (read your writes), in script order.
    let rows: Vec<&serde_json::Value> = lines.iter().filter_map(|l| l.get("row")).collect();
    let want = [
        serde_json::json!(["c1", 3, 1, "apple"]),
        serde_json::json!(["c1", 4, 2, "pear"]),
        // The retried command 2 appended nothing: three events, not four.
        serde_json::json!(["c1", 3, 3, "apple"]),
        serde_json::json!(["apple", 2]),
        serde_json::json!(["added", "apple", 3, 0]),
        serde_json::json!(["added", "pear", 1, 1]),
        serde_json::json!(["removed", "apple", 1, 2]),
    ];
    assert_eq!(rows, want.iter().collect::<Vec<_>>(), "{stdout}");
    let inserts: Vec<&serde_json::Value> = lines
        .iter()
        .filter(|l| {
            l["statement"]
                .as_str()
                .is_some_and(|s| s.starts_with("INSERT"))
        })
        .collect();
    assert_eq!(inserts.len(), 4);
    let versions: Vec<u64> = inserts
        .iter()
        .map(|l| l["version"].as_u64().unwrap())
        .collect();
    assert_eq!(versions, [1, 2, 2, 3]);
    assert_eq!(inserts[2]["duplicate"], serde_json::json!(true));
    assert_eq!(inserts[2]["position"], inserts[1]["position"]);

    // The conflict the tutorial shows: a stale version is refused, naming the versions.
    let out = shell(
        &server,
        &[
            "-e",
            "INSERT INTO cart_events (cart_id, kind, item, qty) VALUES ('c1', 'added', 'plum', 2) WITH (EXPECTED_VERSION = 0);",
        ],
    );
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains("Wrong expected version for key c1 of CART_EVENTS: expected 0, actual 3"),
        "{err}"
    );
}

/// The shell asks for several rows per message; a push query through history, whose rows
/// are all ready at once, still prints each row once, in log order, and counts them all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_query_through_history_prints_every_row_once_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data")).await;
    let mut script = String::from(
        "CREATE STREAM s (id INT) WITH (kafka_topic='s', value_format='JSON', partitions=1);\n",
    );
    for id in 0..700 {
        script.push_str(&format!("INSERT INTO s (id) VALUES ({id});\n"));
    }
    let out = shell(&server, &["-e", &script]);
    assert!(out.status.success(), "{}", text(&out.stderr));

    let out = shell(
        &server,
        &[
            "--output",
            "json",
            "-e",
            "SET 'auto.offset.reset'='earliest'; SELECT id FROM s EMIT CHANGES LIMIT 700;",
        ],
    );
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let lines: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect();
    let ids: Vec<i64> = lines
        .iter()
        .filter_map(|l| l.get("row"))
        .map(|r| r[0].as_i64().expect("an INT id"))
        .collect();
    assert_eq!(ids, (0..700).collect::<Vec<i64>>());
    let last = lines
        .last()
        .and_then(|l| l.get("final"))
        .expect("a final line");
    assert_eq!(last["rows"], 700, "{last}");
}
