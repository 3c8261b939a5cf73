//! Read your writes (issue #14): a pull query carrying an insert's acknowledged position
//! sees that insert in every view it reads, through the Query and Pull RPCs and, by
//! default, in the shell; without a position it answers at once, as before.

mod common;

use common::*;
use sluice_proto::v1 as pb;
use sluice_proto::v1::sluice_client::SluiceClient;
use std::process::{Command, Stdio};
use tonic::Code;
use tonic::transport::Channel;

const CART: &str = "CREATE STREAM cart_events (cart_id STRING KEY, item STRING, qty INT) \
                    WITH (kafka_topic='cart_events', value_format='JSON', partitions=2);";

/// A pull query through the Query RPC that waits for `position`; its rows as text.
async fn pull_at(
    c: &mut SluiceClient<Channel>,
    sql: &str,
    position: u64,
    props: &[(&str, &str)],
) -> Result<Vec<Vec<String>>, tonic::Status> {
    let mut stream = c
        .query(pb::QueryRequest {
            sql: sql.into(),
            properties: props
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            min_position: position,
            ..Default::default()
        })
        .await?
        .into_inner();
    let mut rows = Vec::new();
    while let Some(m) = stream.message().await? {
        if let Some(pb::query_response::Kind::Row(r)) = m.kind {
            rows.push(r.row.unwrap_or_default().values.iter().map(show).collect());
        }
    }
    Ok(rows)
}

/// Appends `n` events to cart `cart` in one BulkInsert; the position acknowledged.
async fn bulk_events(c: &mut SluiceClient<Channel>, cart: &str, n: usize) -> u64 {
    let rows = (0..n)
        .map(|i| pb::Row {
            values: vec![
                s(cart),
                s(&format!("i{i}")),
                pb::Value {
                    kind: Some(pb::value::Kind::Int(1)),
                },
            ],
        })
        .collect();
    let req = pb::BulkInsertRequest {
        target: "cart_events".into(),
        rows,
        ..Default::default()
    };
    let mut acks = c
        .bulk_insert(tokio_stream::iter(vec![req]))
        .await
        .unwrap()
        .into_inner();
    let ack = acks.message().await.unwrap().expect("an acknowledgement");
    assert_eq!(ack.rows, n as u64);
    ack.position
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pull_with_a_position_waits_for_its_view_and_views_over_views() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data")).await;
    let mut c = server.client().await;
    exec_ok(&mut c, CART).await;
    // A backlog the views below must work through after they are created: a pull that
    // answered at once would see part of it.
    const N: usize = 20_000;
    let mut position = 0;
    for _ in 0..4 {
        position = bulk_events(&mut c, "c1", N / 4).await;
    }
    assert!(position > 0);
    // The views start from the earliest records, so they have the backlog to work through.
    for sql in [
        "CREATE STREAM big_items AS SELECT cart_id, item, qty * 2 AS q2 FROM cart_events;",
        "CREATE TABLE counts AS SELECT cart_id, COUNT(*) AS n FROM big_items GROUP BY cart_id;",
    ] {
        c.execute(pb::ExecuteRequest {
            sql: sql.into(),
            properties: [("auto.offset.reset".to_string(), "earliest".to_string())].into(),
        })
        .await
        .unwrap();
    }

    // Too short a wait is a clear DEADLINE_EXCEEDED naming the view and the query behind.
    let e = pull_at(
        &mut c,
        "SELECT n FROM counts WHERE cart_id = 'c1';",
        position,
        &[("sluice.pull.wait.timeout.ms", "0")],
    )
    .await
    .unwrap_err();
    assert_eq!(e.code(), Code::DeadlineExceeded, "{e:?}");
    for part in ["COUNTS", "has not caught up to position", "behind"] {
        assert!(e.message().contains(part), "{part} in {}", e.message());
    }
    // Long enough, it sees every event, two queries downstream of the insert.
    let rows = pull_at(
        &mut c,
        "SELECT n FROM counts WHERE cart_id = 'c1';",
        position,
        &[],
    )
    .await
    .unwrap();
    assert_eq!(rows, [[N.to_string()]]);
    // A stream pull of a derived stream waits for the query appending to it.
    let more = bulk_events(&mut c, "c2", 500).await;
    let rows = pull_at(
        &mut c,
        "SELECT item FROM big_items WHERE cart_id = 'c2';",
        more,
        &[],
    )
    .await
    .unwrap();
    assert_eq!(rows.len(), 500);

    // The Pull RPC's prepared point lookups wait too.
    let more = bulk_events(&mut c, "c2", 300).await;
    let mut responses = c
        .pull(tokio_stream::iter(vec![pb::PullRequest {
            id: 7,
            sql: "SELECT n FROM counts WHERE cart_id = ?;".into(),
            params: vec![s("c2")],
            min_position: more,
            ..Default::default()
        }]))
        .await
        .unwrap()
        .into_inner();
    let r = responses.message().await.unwrap().expect("a response");
    assert_eq!(r.error, "");
    assert_eq!(r.rows.len(), 1);
    assert_eq!(show(&r.rows[0].values[0]), "800");

    // A position the log has not reached is refused, not waited for.
    let e = pull_at(
        &mut c,
        "SELECT n FROM counts WHERE cart_id = 'c1';",
        more + 1_000_000,
        &[],
    )
    .await
    .unwrap_err();
    assert_eq!(e.code(), Code::OutOfRange, "{e:?}");
    assert!(
        e.message().contains("beyond the end of the log"),
        "{}",
        e.message()
    );
    let e = pull_at(
        &mut c,
        "SELECT n FROM counts WHERE cart_id = 'c1';",
        more,
        &[("sluice.pull.wait.timeout.ms", "soon")],
    )
    .await
    .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    assert!(e.message().contains("sluice.pull.wait.timeout.ms"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shell_script_sees_each_insert_in_the_next_select_under_load() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data")).await;
    let mut c = server.client().await;
    exec_ok(&mut c, CART).await;
    exec_ok(
        &mut c,
        "CREATE STREAM doubled AS SELECT cart_id, item, qty * 2 AS q2 FROM cart_events;",
    )
    .await;
    exec_ok(
        &mut c,
        "CREATE TABLE cart_sizes AS SELECT cart_id, COUNT(*) AS n FROM doubled GROUP BY cart_id;",
    )
    .await;

    // Load on the same stream and views from another client while the script runs.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let load = {
        let mut c = server.client().await;
        let stop = stop.clone();
        tokio::spawn(async move {
            let mut batches = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                bulk_events(&mut c, &format!("load{}", batches % 50), 200).await;
                batches += 1;
            }
            batches
        })
    };

    // Each insert is followed at once by a pull of the view two queries downstream.
    const ROUNDS: usize = 40;
    let mut script = String::new();
    for i in 1..=ROUNDS {
        script.push_str(&format!(
            "INSERT INTO cart_events (cart_id, item, qty) VALUES ('mine', 'i{i}', 1);\n\
             SELECT cart_id, n FROM cart_sizes WHERE cart_id = 'mine';\n"
        ));
    }
    let file = dir.path().join("script.sql");
    std::fs::write(&file, script).unwrap();
    let url = server.url();
    let out = tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_sluice"))
            .args(["shell", "--server", &url, "--output", "json", "-f"])
            .arg(&file)
            .stdin(Stdio::null())
            .output()
            .expect("run sluice shell")
    })
    .await
    .unwrap();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let batches = load.await.unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The script's rows, in order: after the i-th insert the count is exactly i.
    let counts: Vec<String> = stdout
        .lines()
        .filter(|l| l.starts_with(r#"{"row""#))
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            v["row"][1].to_string()
        })
        .collect();
    let want: Vec<String> = (1..=ROUNDS).map(|i| i.to_string()).collect();
    assert_eq!(counts, want, "under load of {batches} concurrent batches");
    assert!(batches > 0, "the load ran while the script did");
}
