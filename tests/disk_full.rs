//! A full disk (issue #15): with the data directory on a small filesystem (a size-limited
//! tmpfs the test mounts, which needs root; skipped with a message otherwise), writes are
//! refused with RESOURCE_EXHAUSTED naming the free space while pull and push queries go
//! on serving; once space is freed, writes succeed again without a restart; after a
//! restart every acknowledged event is there.

mod common;

use common::*;
use sluice_proto::v1 as pb;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;
use tonic::Code;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

/// The health-checking name for writes (`sluice_server::WRITES_HEALTH`).
const WRITES: &str = "sluice.writes";

/// A tmpfs mounted for the test, unmounted when dropped.
struct Mount(PathBuf);

impl Mount {
    fn tmpfs(at: &Path, size_mb: u64) -> Option<Mount> {
        std::fs::create_dir_all(at).ok()?;
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size_mb}m"), "tmpfs"])
            .arg(at)
            .output()
            .is_ok_and(|o| o.status.success());
        ok.then(|| Mount(at.to_path_buf()))
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Bytes available on the filesystem holding `p`.
fn available(p: &Path) -> u64 {
    let o = Command::new("df")
        .args(["--output=avail", "-B1"])
        .arg(p)
        .output()
        .unwrap();
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .nth(1)
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

async fn insert(
    c: &mut sluice_proto::v1::sluice_client::SluiceClient<tonic::transport::Channel>,
    i: usize,
) -> Result<pb::ExecuteResponse, tonic::Status> {
    exec(
        c,
        &format!("INSERT INTO ev (k, v) VALUES ('k{}', {i});", i % 5),
    )
    .await
}

/// The health status of `service` (`""` for the server as a whole).
async fn health(server: &Server, service: &str) -> ServingStatus {
    let ch = tonic::transport::Channel::from_shared(server.url())
        .expect("url")
        .connect()
        .await
        .expect("connect");
    let mut h = HealthClient::new(ch);
    let status = h
        .check(HealthCheckRequest {
            service: service.into(),
        })
        .await
        .expect("health check")
        .into_inner()
        .status;
    ServingStatus::try_from(status).unwrap_or(ServingStatus::Unknown)
}

/// Waits (up to 30 s; the server looks at the disk every second) for `service` to report
/// `want`.
async fn health_becomes(server: &Server, service: &str, want: ServingStatus) {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let now = health(server, service).await;
        if now == want {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{service:?} stayed {now:?}, not {want:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_refuses_writes_clearly_keeps_reads_and_recovers_without_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let Some(mount) = Mount::tmpfs(&dir.path().join("mnt"), 400) else {
        eprintln!("skipping the disk-full test: cannot mount a tmpfs (needs root)");
        return;
    };
    let data = mount.0.join("data");
    let port = free_port();
    let env = [("SLUICE_DISK_RESERVE_MB", "64")];
    let mut server = Server::start_with_env(&data, port, &env).await;
    let mut c = server.client().await;
    exec_ok(&mut c, "CREATE STREAM ev (k STRING KEY, v BIGINT) WITH (kafka_topic='ev', value_format='JSON', partitions=2);").await;
    exec_ok(
        &mut c,
        "CREATE TABLE counts AS SELECT k, COUNT(*) AS n FROM ev GROUP BY k;",
    )
    .await;
    let mut acked = 0;
    for i in 0..100 {
        insert(&mut c, i).await.unwrap();
        acked += 1;
    }
    let total = |rows: &[Vec<String>]| {
        rows.iter()
            .map(|r| r[1].parse::<usize>().unwrap())
            .sum::<usize>()
    };
    eventually(&mut c, "SELECT k, n FROM counts;", |r| total(r) == 100).await;
    let push = open_query(
        &mut c,
        "SELECT k, v FROM ev EMIT CHANGES;",
        &[],
        Duration::from_secs(10),
    )
    .await
    .unwrap();

    // Fill the filesystem to 32 MiB free, under the 64 MiB reserve.
    let ballast = mount.0.join("ballast");
    {
        let fill = available(&mount.0).saturating_sub(32 << 20);
        let mut f = std::fs::File::create(&ballast).unwrap();
        let chunk = vec![0u8; 1 << 20];
        for _ in 0..fill >> 20 {
            f.write_all(&chunk).unwrap();
        }
        f.sync_all().unwrap();
    }
    let e = insert(&mut c, 100)
        .await
        .expect_err("a full disk refuses writes");
    assert_eq!(e.code(), Code::ResourceExhausted, "{e:?}");
    assert!(
        e.message().contains("MiB free, less than the 64 MiB"),
        "{}",
        e.message()
    );
    assert!(
        e.message().contains(&data.display().to_string()),
        "{}",
        e.message()
    );
    let bulk = pb::BulkInsertRequest {
        target: "ev".into(),
        columns: vec!["k".into(), "v".into()],
        rows: vec![pb::Row {
            values: vec![s("k1"), big(7)],
        }],
        ..Default::default()
    };
    let refused = match c.bulk_insert(tokio_stream::iter(vec![bulk])).await {
        Err(e) => e,
        Ok(r) => r
            .into_inner()
            .message()
            .await
            .expect_err("BulkInsert refused too"),
    };
    assert_eq!(refused.code(), Code::ResourceExhausted, "{refused:?}");
    // Health checking says writes are out, the server is not.
    health_becomes(&server, WRITES, ServingStatus::NotServing).await;
    assert_eq!(health(&server, "").await, ServingStatus::Serving);
    assert_eq!(
        health(&server, "sluice.v1.Sluice").await,
        ServingStatus::Serving
    );
    // Reads go on.
    let rows = pull(&mut c, "SELECT k, n FROM counts;").await.text_rows();
    assert_eq!(total(&rows), 100);
    exec_ok(&mut c, "SHOW QUERIES;").await;

    // Space freed: writes succeed again, no restart; the push subscriber sees them.
    std::fs::remove_file(&ballast).unwrap();
    health_becomes(&server, WRITES, ServingStatus::Serving).await;
    for i in 100..110 {
        insert(&mut c, i)
            .await
            .expect("writes succeed once space is freed");
        acked += 1;
    }
    let got = push.collect(10, Duration::from_secs(30)).await.unwrap();
    assert_eq!(got.rows.len(), 10, "the push subscriber kept serving");
    eventually(&mut c, "SELECT k, n FROM counts;", |r| total(r) == acked).await;

    // After a restart every acknowledged event is there.
    assert!(server.terminate(Duration::from_secs(30)).is_some());
    drop(server);
    let server = Server::start_with_env(&data, port, &env).await;
    let mut c = server.client().await;
    assert_eq!(read_topic(&mut c, "ev", 2).await.len(), acked);
    eventually(&mut c, "SELECT k, n FROM counts;", |r| total(r) == acked).await;
    drop(server);
    drop(mount);
}
