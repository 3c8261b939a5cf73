//! Load held for a while, against the real binary: ingest, about 500 pull queries a
//! second and 100 live push subscribers at once. Every call succeeds, every few seconds
//! each kind of work makes progress (no deadlock, no starvation), the server's memory
//! stops growing after a warm-up, and at the end the view counts every acknowledged
//! event.
//!
//! The suite runs it for 30 s; `SLUICE_SOAK_SECS=1800 cargo test --release --test soak --
//! --nocapture` holds it for half an hour (RSS plateaus after about ten minutes, so the
//! 2% check needs the middle third to start after that) and prints what it measured.

mod common;

use common::*;
use sluice_proto::v1 as pb;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

const KEYS: u64 = 1000;
const SUBSCRIBERS: usize = 100;
const PULL_TASKS: usize = 4;
/// Each pull task's pace: 4 tasks at 8 ms is 500 pulls a second.
const PULL_EVERY: Duration = Duration::from_millis(8);
const BATCH: u64 = 200;
const INSERT_EVERY: Duration = Duration::from_millis(40);
/// How often progress is checked.
const WINDOW: Duration = Duration::from_secs(5);
/// Runtime workers, RocksDB's background threads, the blocking gate's permits and a few
/// pull scans fit well under this; before the gate, a debug run reached about 150.
const MAX_THREADS: usize = 64;

#[derive(Default)]
struct Progress {
    acked: AtomicU64,
    pulls: AtomicU64,
    pushed: AtomicU64,
    failures: AtomicU64,
}

fn threads_of(pid: u32) -> usize {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| {
            l.strip_prefix("Threads:")
                .and_then(|t| t.trim().parse().ok())
        })
        .unwrap_or(0)
}

fn value(i: u64) -> pb::Value {
    big(i as i64)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingest_pulls_and_subscribers_together_for_a_while() {
    let secs: u64 = std::env::var("SLUICE_SOAK_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(30);
    let dir = tempfile::tempdir().unwrap();
    // Small RocksDB budgets, so memory reaches its plateau within the warm-up.
    let server = Server::start_with_env(
        &dir.path().join("data"),
        free_port(),
        &[
            ("SLUICE_ROCKSDB_MEMTABLES_MB", "16"),
            ("SLUICE_ROCKSDB_WRITE_BUFFER_MB", "4"),
            ("SLUICE_ROCKSDB_BLOCK_CACHE_MB", "8"),
        ],
    )
    .await;
    let pid = server.child.id();
    let mut c = server.client().await;
    exec_ok(
        &mut c,
        "CREATE STREAM ev (k STRING KEY, v BIGINT) WITH (kafka_topic='ev', value_format='JSON', partitions=2);",
    )
    .await;
    exec_ok(
        &mut c,
        "CREATE TABLE totals AS SELECT k, COUNT(*) AS n, SUM(v) AS total FROM ev GROUP BY k;",
    )
    .await;

    let progress = Arc::new(Progress::default());
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();

    // Push subscribers, 50 to a connection, each following one key's changes.
    let mut conn = server.client().await;
    for s in 0..SUBSCRIBERS {
        if s % 50 == 0 {
            conn = server.client().await;
        }
        let mut open = open_query(
            &mut conn,
            &format!("SELECT k, n FROM totals WHERE k = 'k{s}' EMIT CHANGES;"),
            &[],
            Duration::from_secs(30),
        )
        .await
        .expect("push query");
        let (progress, stop) = (progress.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                match open.next_row(Duration::from_secs(1)).await {
                    Ok(Some(_)) => {
                        progress.pushed.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(None) => {}
                    Err(e) => {
                        eprintln!("push subscriber failed: {e:?}");
                        progress.failures.fetch_add(1, Ordering::Relaxed);
                        return;
                    }
                }
            }
        }));
    }

    // Pull queries: key lookups on the view.
    for t in 0..PULL_TASKS {
        let mut c = server.client().await;
        let (progress, stop) = (progress.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            let mut tick = tokio::time::interval(PULL_EVERY);
            let mut i = t as u64;
            while !stop.load(Ordering::Relaxed) {
                tick.tick().await;
                i = i.wrapping_add(7919);
                let sql = format!("SELECT n, total FROM totals WHERE k = 'k{}';", i % KEYS);
                match query(&mut c, &sql, &[], 10, Duration::from_secs(10)).await {
                    Ok(_) => progress.pulls.fetch_add(1, Ordering::Relaxed),
                    Err(e) => {
                        eprintln!("pull failed: {e:?}");
                        progress.failures.fetch_add(1, Ordering::Relaxed)
                    }
                };
            }
        }));
    }

    // Ingest: a batch every 40 ms (5,000 events a second), each acknowledged.
    {
        let mut c = server.client().await;
        let (progress, stop) = (progress.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            let mut tick = tokio::time::interval(INSERT_EVERY);
            let mut next = 0u64;
            while !stop.load(Ordering::Relaxed) {
                tick.tick().await;
                let rows = (next..next + BATCH)
                    .map(|i| pb::Row {
                        values: vec![s(&format!("k{}", i % KEYS)), value(i)],
                    })
                    .collect();
                let sent = c
                    .bulk_insert(tokio_stream::iter(vec![pb::BulkInsertRequest {
                        target: "ev".into(),
                        rows,
                        ..Default::default()
                    }]))
                    .await;
                let acked = match sent {
                    Ok(r) => r.into_inner().message().await,
                    Err(e) => Err(e),
                };
                match acked {
                    Ok(Some(_)) => {
                        next += BATCH;
                        progress.acked.store(next, Ordering::Relaxed);
                    }
                    other => {
                        eprintln!("insert failed: {other:?}");
                        progress.failures.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }));
    }

    // Every second memory and threads are sampled; every window, each kind of work must
    // have moved.
    let started = Instant::now();
    let mut samples: Vec<(Duration, u64)> = Vec::new();
    let mut most_threads = 0usize;
    let mut last = (0u64, 0u64, 0u64);
    let mut last_check = started;
    while started.elapsed() < Duration::from_secs(secs) {
        tokio::time::sleep(Duration::from_secs(1)).await;
        samples.push((started.elapsed(), rss_kib(pid)));
        let threads = threads_of(pid);
        most_threads = most_threads.max(threads);
        assert!(
            threads <= MAX_THREADS,
            "the server runs {threads} threads (at most {MAX_THREADS} expected): blocking work is not bounded"
        );
        if last_check.elapsed() < WINDOW {
            continue;
        }
        last_check = Instant::now();
        let now = (
            progress.acked.load(Ordering::Relaxed),
            progress.pulls.load(Ordering::Relaxed),
            progress.pushed.load(Ordering::Relaxed),
        );
        eprintln!(
            "{:>4} s: {} events acked, {} pulls, {} push rows, RSS {} MiB, {threads} threads",
            started.elapsed().as_secs(),
            now.0,
            now.1,
            now.2,
            samples.last().map_or(0, |s| s.1) / 1024
        );
        assert!(
            now.0 > last.0 && now.1 > last.1 && now.2 > last.2,
            "no progress in {WINDOW:?}: {last:?} -> {now:?}"
        );
        assert_eq!(
            progress.failures.load(Ordering::Relaxed),
            0,
            "a call failed"
        );
        last = now;
    }
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        tokio::time::timeout(Duration::from_secs(30), t)
            .await
            .expect("a load task did not stop (deadlock?)")
            .expect("load task");
    }
    assert_eq!(
        progress.failures.load(Ordering::Relaxed),
        0,
        "a call failed"
    );
    let elapsed = started.elapsed().as_secs_f64();
    let acked = progress.acked.load(Ordering::Relaxed);
    let pulls = progress.pulls.load(Ordering::Relaxed);
    // Growth is a trend, not a spike: a compaction or a memtable flush lifts RSS for a few
    // seconds and gives it back. The first third is the warm-up (memtables and caches
    // filling); the mean of the last third is compared with the mean of the middle one.
    let third = Duration::from_secs(secs) / 3;
    let mean = |from: Duration, to: Duration| {
        let v: Vec<u64> = samples
            .iter()
            .filter(|(t, _)| *t >= from && *t < to)
            .map(|s| s.1)
            .collect();
        v.iter().sum::<u64>() / v.len().max(1) as u64
    };
    let middle = mean(third, third * 2);
    let end = mean(third * 2, Duration::MAX);
    let growth = end as f64 / middle.max(1) as f64 - 1.0;
    let peak = samples.iter().map(|s| s.1).max().unwrap_or(0);
    eprintln!(
        "soak {elapsed:.0} s: {acked} events ({:.0}/s), {pulls} pulls ({:.0}/s), {} push rows to {SUBSCRIBERS} subscribers; RSS mean {} MiB in the middle third, {} MiB in the last ({:+.1}%), peak {} MiB; at most {most_threads} threads",
        acked as f64 / elapsed,
        pulls as f64 / elapsed,
        progress.pushed.load(Ordering::Relaxed),
        middle / 1024,
        end / 1024,
        growth * 100.0,
        peak / 1024,
    );
    // Under 2% once the middle third starts after the warm-up (about ten minutes with
    // these budgets: a 600 s release run measured +3.6%, the end of the warm-up, where a
    // 1,800 s run measured +0.6%). Shorter runs, the suite's 30 s debug one included,
    // only catch runaway growth, such as a thread per subscriber.
    let bound = if secs >= 1800 { 0.02 } else { 0.25 };
    assert!(
        growth <= bound,
        "memory grew after the warm-up: mean {} MiB -> {} MiB ({:+.1}%, at most {:+.0}%)",
        middle / 1024,
        end / 1024,
        growth * 100.0,
        bound * 100.0
    );
    // The view counts every acknowledged event.
    eventually(&mut c, "SELECT n FROM totals;", |rows| {
        rows.iter()
            .map(|r| r[0].parse::<u64>().unwrap_or(0))
            .sum::<u64>()
            == acked
    })
    .await;
}
