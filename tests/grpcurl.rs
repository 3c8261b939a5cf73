//! End-to-end with an independent client: grpcurl (via gRPC server reflection) and the
//! standard health service. scripts/test installs grpcurl into a virtualenv and sets
//! SLUICE_GRPCURL; without it this test is skipped with a message.

mod common;

use common::*;
use std::process::Command;

fn grpcurl() -> Option<String> {
    let path = std::env::var("SLUICE_GRPCURL").ok().or_else(|| {
        let found = Command::new("sh")
            .args(["-c", "command -v grpcurl"])
            .output()
            .ok()?;
        found
            .status
            .success()
            .then(|| String::from_utf8_lossy(&found.stdout).trim().to_string())
    })?;
    Command::new(&path)
        .arg("-version")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|_| path)
}

fn run(bin: &str, args: &[&str]) -> (bool, String) {
    let out = Command::new(bin).args(args).output().expect("run grpcurl");
    let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpcurl_lists_describes_and_calls_the_api() {
    let Some(bin) = grpcurl() else {
        eprintln!(
            "skipping grpcurl test: grpcurl not found (set SLUICE_GRPCURL or run scripts/test, which installs it)"
        );
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data")).await;
    let addr = server.addr.clone();

    let (ok, out) = run(&bin, &["-plaintext", &addr, "list"]);
    assert!(ok, "{out}");
    for service in ["sluice.v1.Sluice", "grpc.health.v1.Health"] {
        assert!(out.contains(service), "{service} missing from:\n{out}");
    }
    // grpcurl 1.8 speaks reflection v1alpha; describe needs the full descriptors.
    let (ok, out) = run(&bin, &["-plaintext", &addr, "describe", "sluice.v1.Sluice"]);
    assert!(ok && out.contains("rpc BulkInsert"), "{out}");

    let (ok, out) = run(&bin, &["-plaintext", &addr, "grpc.health.v1.Health/Check"]);
    assert!(ok && out.contains("SERVING"), "{out}");

    let create = r#"{"sql":"CREATE STREAM s (k STRING KEY, v INT) WITH (kafka_topic='s', value_format='JSON'); INSERT INTO s (k, v) VALUES ('a', 1);"}"#;
    let (ok, out) = run(
        &bin,
        &[
            "-plaintext",
            "-d",
            create,
            &addr,
            "sluice.v1.Sluice/Execute",
        ],
    );
    assert!(ok && out.contains("Stream created"), "{out}");
    let (ok, out) = run(
        &bin,
        &[
            "-plaintext",
            "-d",
            r#"{"sql":"SELECT * FROM s EMIT CHANGES LIMIT 1;","properties":{"auto.offset.reset":"earliest"}}"#,
            &addr,
            "sluice.v1.Sluice/Query",
        ],
    );
    assert!(
        ok && out.contains("\"header\"") && out.contains("\"a\"") && out.contains("Limit Reached"),
        "{out}"
    );

    // The Pull RPC: two pull queries on one call, the first with a parameter, the second
    // failing; both answered, in order.
    let mut c = server.client().await;
    exec_ok(
        &mut c,
        "CREATE TABLE t_raw (k STRING PRIMARY KEY, v INT) WITH (kafka_topic='t', value_format='JSON', partitions=1);
         CREATE TABLE t AS SELECT * FROM t_raw;
         INSERT INTO t_raw (k, v) VALUES ('it''s', 7);",
    )
    .await;
    eventually(&mut c, "SELECT * FROM t;", |rows| rows.len() == 1).await;
    let (ok, out) = run(
        &bin,
        &[
            "-plaintext",
            "-d",
            r#"{"id":1,"sql":"SELECT v FROM t WHERE k = ?;","params":[{"string":"it's"}],"with_columns":true} {"id":2,"sql":"SELEC v FROM t;"}"#,
            &addr,
            "sluice.v1.Sluice/Pull",
        ],
    );
    let first = out.find(r#""id": "1""#);
    let second = out.find(r#""id": "2""#);
    assert!(
        ok && first.is_some() && second.is_some() && first < second,
        "{out}"
    );
    assert!(
        out.contains(r#""int": 7"#) && out.contains(r#""name": "V""#),
        "{out}"
    );
    assert!(
        out.contains(r#""errorCode": 3"#) && out.contains("Syntax Error"),
        "{out}"
    );

    // Errors arrive as gRPC statuses with positioned messages.
    let (ok, out) = run(
        &bin,
        &[
            "-plaintext",
            "-d",
            r#"{"sql":"SELECT nope FROM s EMIT CHANGES;"}"#,
            &addr,
            "sluice.v1.Sluice/Query",
        ],
    );
    assert!(
        // A semantic error: positioned as ksqlDB positions those ("Line: L, Col: C").
        !ok && out.contains("InvalidArgument") && out.contains("Line: 1, Col: 8"),
        "{out}"
    );
}
