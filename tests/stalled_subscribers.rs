//! A thousand push subscribers that stop reading while events flow, against the real
//! binary: the server's memory stays bounded (each subscriber's queue is bounded), a
//! subscriber that does read keeps receiving promptly, and the stalled ones are closed
//! after the stall timeout with the position to resume from.

mod common;

use common::*;
use sluice_proto::v1 as pb;
use sluice_proto::v1::sluice_client::SluiceClient;
use std::collections::HashMap;
use std::time::{Duration, Instant};
use tonic::transport::Channel;

const STALLED: usize = 1000;
const PER_CONNECTION: usize = 100;
const BATCHES: usize = 40;
const BATCH: usize = 250;
const STALL_SECS: u64 = 20;

async fn subscribe(c: &mut SluiceClient<Channel>) -> tonic::Streaming<pb::QueryResponse> {
    let mut stream = c
        .query(pb::QueryRequest {
            sql: "SELECT id, v FROM s EMIT CHANGES;".into(),
            properties: HashMap::new(),
            ..Default::default()
        })
        .await
        .expect("push query")
        .into_inner();
    // The header: the subscription is live from here.
    let header = tokio::time::timeout(Duration::from_secs(30), stream.message())
        .await
        .expect("header in time")
        .expect("header");
    assert!(
        matches!(
            header.and_then(|h| h.kind),
            Some(pb::query_response::Kind::Header(_))
        ),
        "a push query starts with its header"
    );
    stream
}

/// The batch whose last id the row holds, if it is one.
fn last_of_batch(msg: &pb::QueryResponse) -> Option<usize> {
    let Some(pb::query_response::Kind::Row(row)) = &msg.kind else {
        return None;
    };
    let values = row
        .row
        .as_ref()
        .map(|r| r.values.as_slice())
        .unwrap_or_default();
    let id = match values.first().and_then(|v| v.kind.as_ref()) {
        Some(pb::value::Kind::Int(i)) => *i as usize,
        _ => return None,
    };
    ((id + 1) % BATCH == 0).then_some(id / BATCH)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_stalled_subscribers_cost_bounded_memory_and_do_not_slow_a_reader() {
    let dir = tempfile::tempdir().unwrap();
    let limit = (STALLED + 10).to_string();
    let stall = STALL_SECS.to_string();
    let server = Server::start_with_env(
        &dir.path().join("data"),
        free_port(),
        &[
            ("SLUICE_MAX_PUSH_QUERIES", &limit),
            ("SLUICE_PUSH_STALL_SECS", &stall),
        ],
    )
    .await;
    let pid = server.child.id();
    let mut c = server.client().await;
    exec_ok(
        &mut c,
        "CREATE STREAM s (id INT KEY, v STRING) WITH (kafka_topic='s', partitions=1, value_format='JSON');",
    )
    .await;

    // The stalled subscribers, 100 to a connection (the per-connection default), never read
    // after their header.
    let mut stalled = Vec::with_capacity(STALLED);
    let mut conns = Vec::new();
    for _ in 0..STALLED / PER_CONNECTION {
        let mut conn = server.client().await;
        for _ in 0..PER_CONNECTION {
            stalled.push(subscribe(&mut conn).await);
        }
        conns.push(conn);
    }
    // The reader, on its own connection, notes when each batch's last row arrives.
    let mut reader_conn = server.client().await;
    let mut reader = subscribe(&mut reader_conn).await;
    let (seen_tx, mut seen_rx) = tokio::sync::mpsc::unbounded_channel::<(usize, Instant)>();
    let reading = tokio::spawn(async move {
        let mut batches = 0;
        while batches < BATCHES {
            match reader.message().await {
                Ok(Some(msg)) => {
                    if let Some(b) = last_of_batch(&msg) {
                        let _ = seen_tx.send((b, Instant::now()));
                        batches += 1;
                    }
                }
                other => panic!("the reading subscriber ended: {other:?}"),
            }
        }
    });
    let rss_open = rss_kib(pid);

    // Events flow: a batch every 100 ms, each acknowledged (fsynced) before the next.
    let payload = "p".repeat(200);
    let mut acked = Vec::with_capacity(BATCHES);
    let mut rss_mid = 0;
    for b in 0..BATCHES {
        let rows = (b * BATCH..(b + 1) * BATCH)
            .map(|i| pb::Row {
                values: vec![
                    pb::Value {
                        kind: Some(pb::value::Kind::Int(i as i32)),
                    },
                    s(&payload),
                ],
            })
            .collect();
        let mut acks = c
            .bulk_insert(tokio_stream::iter(vec![pb::BulkInsertRequest {
                target: "s".into(),
                rows,
                ..Default::default()
            }]))
            .await
            .expect("bulk insert")
            .into_inner();
        acks.message().await.expect("ack").expect("an ack");
        acked.push(Instant::now());
        if b == BATCHES / 2 {
            rss_mid = rss_kib(pid);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::timeout(Duration::from_secs(60), reading)
        .await
        .expect("the reader got every batch in time")
        .expect("reader task");
    let rss_end = rss_kib(pid);
    let mut latencies = Vec::with_capacity(BATCHES);
    while let Ok((b, at)) = seen_rx.try_recv() {
        latencies.push(at.saturating_duration_since(acked[b]));
    }
    latencies.sort();
    let (p50, p99) = (percentile(&latencies, 0.5), percentile(&latencies, 0.99));
    eprintln!(
        "{STALLED} stalled subscribers: reader ack->row p50 {p50:?} p99 {p99:?}; server RSS {} MiB with them open, {} MiB halfway, {} MiB after {} events",
        rss_open / 1024,
        rss_mid / 1024,
        rss_end / 1024,
        BATCHES * BATCH
    );
    // Memory is bounded per subscriber: once the stalled ones' queues are full (within the
    // first batches: 512 records each), the second half of the flow adds nothing to hold.
    assert!(
        rss_end < rss_mid + rss_mid / 10 + 16 * 1024,
        "server memory grew while subscribers were stalled: {} MiB halfway, {} MiB at the end",
        rss_mid / 1024,
        rss_end / 1024
    );
    // Delivered within a few seconds, not held behind the stalled subscribers (with 300
    // stalled subscribers, a reader's p50 was once 13.4 s).
    assert!(
        p99 < Duration::from_secs(5),
        "the reader waited: p50 {p50:?} p99 {p99:?}"
    );

    // Each stalled subscriber is closed once it has read nothing for the stall timeout
    // (the server logs each close), then reads what was queued for it and
    // RESOURCE_EXHAUSTED naming the position to resume from.
    let closes = || {
        server
            .log()
            .matches("closing a push query whose subscriber stopped reading")
            .count()
    };
    let deadline = Instant::now() + Duration::from_secs(STALL_SECS + 120);
    while closes() < STALLED {
        assert!(
            Instant::now() < deadline,
            "only {} of {STALLED} stalled subscribers were closed",
            closes()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let closing = stalled.into_iter().map(|mut stream| async move {
        loop {
            match tokio::time::timeout(Duration::from_secs(STALL_SECS * 3), stream.message()).await
            {
                Err(_) => return Err("not closed in time".to_string()),
                Ok(Ok(Some(_))) => continue,
                Ok(Ok(None)) => return Err("ended without an error".to_string()),
                Ok(Err(status)) => {
                    return if status.code() == tonic::Code::ResourceExhausted
                        && status.message().contains("resume after position")
                    {
                        Ok(())
                    } else {
                        Err(format!("{status:?}"))
                    };
                }
            }
        }
    });
    let outcomes = futures::future::join_all(closing).await;
    let failures: Vec<&String> = outcomes.iter().filter_map(|o| o.as_ref().err()).collect();
    assert!(
        failures.is_empty(),
        "{} of {STALLED} stalled subscribers were not told where to resume, e.g. {}",
        failures.len(),
        failures[0]
    );
    // And the server goes on serving.
    exec_ok(&mut c, "SHOW STREAMS;").await;
}
