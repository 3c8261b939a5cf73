//! Damaged data files, against the real binary: a flipped byte in a table file (SST) or in
//! the write-ahead log is found and reported with the file's name, never returned as rows
//! and never silently dropped with the acknowledged events after it.

mod common;

use common::*;
use sluice_proto::v1 as pb;
use std::path::{Path, PathBuf};
use std::time::Duration;

const EVENTS: usize = 20_000;

async fn create_stream(
    c: &mut sluice_proto::v1::sluice_client::SluiceClient<tonic::transport::Channel>,
) {
    exec_ok(
        c,
        "CREATE STREAM s (id INT KEY, v STRING) WITH (kafka_topic='s', partitions=1, value_format='JSON');",
    )
    .await;
}

/// Inserts `n` events, ids from `first`, each with a 200-byte payload, and waits for the
/// acknowledgement.
async fn insert(
    c: &mut sluice_proto::v1::sluice_client::SluiceClient<tonic::transport::Channel>,
    first: usize,
    n: usize,
) {
    let payload = "x".repeat(200);
    let rows = (first..first + n)
        .map(|i| pb::Row {
            values: vec![
                pb::Value {
                    kind: Some(pb::value::Kind::Int(i as i32)),
                },
                s(&format!("{i:08}{payload}")),
            ],
        })
        .collect();
    let req = pb::BulkInsertRequest {
        target: "s".into(),
        rows,
        ..Default::default()
    };
    let mut acks = c
        .bulk_insert(tokio_stream::iter(vec![req]))
        .await
        .expect("bulk insert")
        .into_inner();
    let ack = acks
        .message()
        .await
        .expect("ack")
        .expect("an acknowledgement");
    assert_eq!(ack.rows, n as u64);
}

/// The files in `dir` whose names end with `ext`, largest first.
fn files(dir: &Path, ext: &str) -> Vec<PathBuf> {
    let mut out: Vec<(u64, PathBuf)> = std::fs::read_dir(dir)
        .expect("data dir")
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == ext))
        .map(|p| (std::fs::metadata(&p).map_or(0, |m| m.len()), p))
        .collect();
    out.sort_by_key(|f| std::cmp::Reverse(f.0));
    out.into_iter().map(|(_, p)| p).collect()
}

/// Inverts one byte of `file` at `at` (a fraction of its length).
fn flip_byte(file: &Path, at: f64) {
    let mut bytes = std::fs::read(file).expect("read file");
    let i = ((bytes.len() as f64) * at) as usize;
    bytes[i] ^= 0xff;
    std::fs::write(file, bytes).expect("write file");
}

/// Starts the server on a damaged data directory. Either it refuses to start, saying the
/// data is corrupt and naming the file (None), or it starts (Some).
async fn start_damaged(data: &Path, env: &[(&str, &str)], file: &str) -> Option<Server> {
    let log = data.with_extension("refused.log");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["server", "--data-dir"])
        .arg(data)
        .args(["--listen", &format!("127.0.0.1:{}", free_port())])
        .envs(env.iter().copied())
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log).expect("log file"))
        .spawn()
        .expect("spawn sluice");
    // A refusal exits within moments of opening the data directory; a server still
    // running after 10 s has started.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while std::time::Instant::now() < deadline {
        if let Some(status) = child.try_wait().expect("wait") {
            let stderr = std::fs::read_to_string(&log).unwrap_or_default();
            assert!(!status.success(), "a damaged server exited 0: {stderr}");
            assert!(
                stderr.contains(file) && stderr.to_lowercase().contains("corrupt"),
                "the refusal should say the data is corrupt and name {file}: {stderr}"
            );
            return None;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = child.kill();
    let _ = child.wait();
    Some(Server::start_with_env(data, free_port(), env).await)
}

/// A byte flipped in the middle of a table file: the scan that reads it fails with
/// DATA_LOSS naming the file, whether at start-up or at read time, and never answers
/// with rows read from the damaged block. A table file cut short stops the start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_table_file_is_reported_with_the_file_never_as_rows() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    // Small memtables, so the events reach table files.
    let env = [("SLUICE_ROCKSDB_WRITE_BUFFER_MB", "1")];
    let mut server = Server::start_with_env(&data, free_port(), &env).await;
    let mut c = server.client().await;
    create_stream(&mut c).await;
    for batch in 0..10 {
        insert(&mut c, batch * EVENTS / 10, EVENTS / 10).await;
    }
    drop(c);
    assert!(
        server.terminate(Duration::from_secs(30)).is_some(),
        "server did not stop"
    );
    let ssts = files(&data, "sst");
    let victim = ssts.first().expect("the events reached a table file");
    let name = victim.file_name().unwrap().to_string_lossy().to_string();
    flip_byte(victim, 0.5);

    let server = start_damaged(&data, &env, &name)
        .await
        .expect("a flipped data byte is found when read, not at start-up");
    let mut c = server.client().await;
    let err = match query(
        &mut c,
        "SELECT * FROM s;",
        &[],
        EVENTS + 1,
        Duration::from_secs(60),
    )
    .await
    {
        Ok(r) => panic!(
            "a scan over a damaged file answered {} rows without an error",
            r.rows.len()
        ),
        Err(e) => e,
    };
    assert_eq!(err.code(), tonic::Code::DataLoss, "{err:?}");
    assert!(err.message().contains(&name), "{}", err.message());
    // A push query reading the same events from the start meets the same block in its
    // catch-up read: it ends with DATA_LOSS naming the file, after at most the rows
    // before the damage, never with rows from the damaged block.
    let err = match query(
        &mut c,
        "SELECT * FROM s EMIT CHANGES;",
        &[("auto.offset.reset", "earliest")],
        EVENTS + 1,
        Duration::from_secs(60),
    )
    .await
    {
        Ok(r) => panic!(
            "a push query over a damaged file gave {} rows and no error",
            r.rows.len()
        ),
        Err(e) => e,
    };
    assert_eq!(err.code(), tonic::Code::DataLoss, "{err:?}");
    assert!(err.message().contains(&name), "{}", err.message());
    // The server carries on: another statement still works.
    exec_ok(&mut c, "SHOW STREAMS;").await;
    drop(c);
    drop(server);

    // A table file cut short is found when the database opens.
    let victim = ssts.last().expect("table files");
    let name = victim.file_name().unwrap().to_string_lossy().to_string();
    let len = std::fs::metadata(victim).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(victim)
        .unwrap()
        .set_len(len / 2)
        .unwrap();
    assert!(
        start_damaged(&data, &env, &name).await.is_none(),
        "started on a truncated table file"
    );
}

/// A byte flipped in the middle of the write-ahead log, which holds the latest
/// acknowledged events: the server refuses to start, naming the corruption, rather than
/// replaying up to the damage and dropping every acknowledged event after it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flipped_byte_in_the_wal_is_refused_not_replayed_up_to() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut server = Server::start(&data).await;
    let mut c = server.client().await;
    create_stream(&mut c).await;
    for i in 0..200 {
        insert(&mut c, i * 10, 10).await;
    }
    drop(c);
    server.kill9();
    let wals = files(&data, "log");
    let victim = wals.first().expect("a write-ahead log");
    let name = victim.file_name().unwrap().to_string_lossy().to_string();
    flip_byte(victim, 0.5);

    if let Some(server) = start_damaged(&data, &[], &name).await {
        // Started: then every acknowledged event must be there.
        let mut c = server.client().await;
        let rows = query(
            &mut c,
            "SELECT * FROM s;",
            &[],
            2001,
            Duration::from_secs(60),
        )
        .await
        .expect("scan")
        .rows;
        assert_eq!(rows.len(), 2000, "acknowledged events were dropped");
    }
}
