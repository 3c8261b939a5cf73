//! `freshness`: inserts at a fixed rate while a push subscriber listens; the latency of
//! each event from its insert's acknowledgement (durable) to its arrival at the subscriber.
//! Arrivals before the acknowledgement reached the client count as zero.

use crate::client::{execute, push_rows, subscribe};
use crate::events::EventGen;
use crate::progress::Progress;
use crate::{Ctx, Figure};
use anyhow::{Context, anyhow, bail};
use sluice_proto::v1 as pb;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

/// How often the generator wakes to send what is due: one small batch per millisecond.
const TICK: Duration = Duration::from_millis(1);

pub(crate) async fn run(ctx: &mut Ctx<'_>) -> anyhow::Result<Figure> {
    let o = ctx.opts;
    let stream = ctx.name("FRESH");
    let mut c = ctx.target.client().await?;
    execute(&mut c, &super::create_event_stream(ctx, &stream)).await?;
    let total = ((o.rate as f64) * o.duration_s).round().max(1.0) as u64;
    let arrivals: Arc<Mutex<Vec<Option<Instant>>>> =
        Arc::new(Mutex::new(vec![None; total as usize]));

    // The subscriber: started, and its header seen, before the first insert.
    let mut sub = ctx.target.client().await?;
    let mut rows = subscribe(
        &mut sub,
        format!("SELECT ID FROM {stream} EMIT CHANGES;"),
        o.push_rows_per_message,
    )
    .await?;
    let progress = Progress::start("freshness", total);
    let sub_arrivals = arrivals.clone();
    let sub_progress = progress.clone();
    let subscriber = tokio::spawn(async move {
        let mut seen = 0u64;
        while seen < total {
            let m = match rows.message().await {
                Ok(Some(m)) => m,
                Ok(None) | Err(_) => break,
            };
            let now = Instant::now();
            for r in push_rows(m) {
                let id = r
                    .row
                    .and_then(|r| r.values.into_iter().next())
                    .and_then(|v| match v.kind {
                        Some(pb::value::Kind::Bigint(n)) => Some(n as usize),
                        _ => None,
                    });
                if let Some(id) = id {
                    let mut a = sub_arrivals.lock().unwrap_or_else(|p| p.into_inner());
                    if let Some(slot) = a.get_mut(id)
                        && slot.is_none()
                    {
                        *slot = Some(now);
                        seen += 1;
                        sub_progress.add(1);
                    }
                }
            }
        }
        seen
    });

    // The producer: one BulkInsert stream, sending every millisecond what the rate says is due.
    let generator = EventGen::new(o.seed, o.keys, o.value_size);
    let (tx, rx) = mpsc::channel::<pb::BulkInsertRequest>(1024);
    let mut acks = c
        .bulk_insert(ReceiverStream::new(rx))
        .await
        .map_err(|e| anyhow!("BulkInsert: {}", e.message()))?
        .into_inner();
    let sent_at: Arc<Mutex<Vec<(u64, u64, Instant)>>> = Arc::new(Mutex::new(Vec::new()));
    let meter = ctx.meter();
    let start = meter.t0();
    let producer_sent = sent_at.clone();
    let stream_name = stream.clone();
    let rate = o.rate as f64;
    let producer = tokio::spawn(async move {
        let mut sent = 0u64;
        let mut batch_id = 0u64;
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        while sent < total {
            tick.tick().await;
            let due = ((start.elapsed().as_secs_f64() * rate) as u64).min(total);
            if due <= sent {
                continue;
            }
            let req = pb::BulkInsertRequest {
                target: stream_name.clone(),
                columns: vec![],
                rows: (sent..due).map(|i| generator.row(i)).collect(),
                batch_id,
                ..Default::default()
            };
            producer_sent
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push((sent, due, Instant::now()));
            if tx.send(req).await.is_err() {
                break;
            }
            sent = due;
            batch_id += 1;
        }
        batch_id
    });
    // Acknowledgement instants, indexed by batch id.
    let mut acked: Vec<Instant> = Vec::new();
    let mut acked_rows = 0u64;
    while acked_rows < total {
        match acks.message().await {
            Ok(Some(r)) => {
                if r.batch_id as usize != acked.len() {
                    bail!(
                        "acknowledgements out of order: got batch {} expecting {}",
                        r.batch_id,
                        acked.len()
                    );
                }
                acked.push(Instant::now());
                acked_rows += r.rows;
            }
            Ok(None) => bail!("the server closed the BulkInsert stream early"),
            Err(e) => bail!("BulkInsert failed: {}", e.message()),
        }
    }
    let send_end = Instant::now();
    producer.await.context("producer task")?;
    let seen = tokio::time::timeout(Duration::from_secs(60), subscriber)
        .await
        .map_err(|_| {
            anyhow!("the subscriber had not received every event 60 s after the last insert")
        })?
        .context("subscriber task")?;
    let end = Instant::now();
    progress.finish();
    if seen < total {
        bail!("the push subscriber received {seen} of {total} events");
    }
    let arrivals = arrivals.lock().unwrap_or_else(|p| p.into_inner());
    let batches = sent_at.lock().unwrap_or_else(|p| p.into_inner());
    let mut from_ack = Vec::with_capacity(total as usize);
    let mut from_send = Vec::with_capacity(total as usize);
    for (b, (lo, hi, sent)) in batches.iter().enumerate() {
        let ack = acked[b];
        for i in *lo..*hi {
            if let Some(at) = arrivals[i as usize] {
                from_ack.push(at.saturating_duration_since(ack).as_micros() as u64);
                from_send.push(at.saturating_duration_since(*sent).as_micros() as u64);
            }
        }
    }
    if let Ok(path) = std::env::var("SLUICE_BENCH_TIMELINE") {
        // The first line anchors the file to CLOCK_MONOTONIC (which `Instant` reads on
        // Linux), so the timeline lines up with `perf record -k CLOCK_MONOTONIC` traces.
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: clock_gettime writes only into the timespec it is given.
        unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
        let now_us = ts.tv_sec as u128 * 1_000_000 + ts.tv_nsec as u128 / 1000;
        let mut text = format!(
            "# start_monotonic_us {} (columns: sent_us ack_us last_arrival_us rows)\n",
            now_us.saturating_sub(start.elapsed().as_micros())
        );
        for (b, (lo, hi, sent)) in batches.iter().enumerate() {
            let ack = acked[b];
            let arr = (*lo..*hi)
                .filter_map(|i| arrivals[i as usize])
                .max()
                .map_or(0, |a| a.saturating_duration_since(start).as_micros());
            text.push_str(&format!(
                "{} {} {} {}\n",
                sent.saturating_duration_since(start).as_micros(),
                ack.saturating_duration_since(start).as_micros(),
                arr,
                hi - lo
            ));
        }
        let _ = std::fs::write(path, text);
    }
    from_send.sort_unstable();
    let pct = |v: &[u64], q: f64| {
        let i = ((v.len() as f64 * q).ceil() as usize).clamp(1, v.len().max(1));
        v.get(i - 1).copied().unwrap_or(0) as f64 / 1000.0
    };
    let achieved = total as f64 / send_end.duration_since(start).as_secs_f64();
    let mut f = Figure::new("freshness");
    f.events = total;
    let f = meter
        .stop_at(f, end)
        .latencies(&mut from_ack)
        .param("target_rate", o.rate)
        .param("achieved_insert_rate", achieved)
        .param("batches", batches.len() as u64)
        .param("insert_to_arrival_p50_ms", pct(&from_send, 0.5))
        .param("insert_to_arrival_p99_ms", pct(&from_send, 0.99))
        .param("insert_to_arrival_p999_ms", pct(&from_send, 0.999));
    Ok(f)
}
