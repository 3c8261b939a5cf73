//! `pull` and `pull-query`: key lookups on a K-key table from C concurrent clients for the
//! run's duration; queries per second and latency percentiles. Every lookup must return its
//! one row. `pull` sends them over the Pull RPC, pipelined; `pull-query` makes one Query
//! call per lookup, as a client without pipelining would.

use crate::client::{Client, create_query, execute, wait_caught_up};
use crate::events::key;
use crate::progress::Progress;
use crate::rng::Rng;
use crate::{Ctx, Figure};
use anyhow::{anyhow, bail};
use sluice_proto::v1 as pb;
use std::collections::VecDeque;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

/// Loads a queryable table of `keys` rows, one per key, and waits until its store serves
/// them all. As in ksqlDB, pull queries read a table derived by a query: the rows go into
/// a source table, `table` is `CREATE TABLE ... AS SELECT *` over it.
pub(crate) async fn load_table(ctx: &Ctx<'_>, table: &str, label: &str) -> anyhow::Result<()> {
    let o = ctx.opts;
    let mut c = ctx.target.client().await?;
    let source = format!("{table}_SRC");
    execute(&mut c, &super::create_event_table(ctx, &source)).await?;
    let id = create_query(
        &mut c,
        &format!("CREATE TABLE {table} AS SELECT * FROM {source};"),
    )
    .await?;
    super::load_rows(ctx, &source, o.keys, label, |g, i| g.row_with_key(i, i)).await?;
    let progress = Progress::start(&format!("{label} (view)"), o.keys);
    wait_caught_up(&mut c, &id, o.keys, &progress).await?;
    progress.finish();
    Ok(())
}

/// One lookup: returns the number of rows it answered.
pub(crate) async fn lookup(c: &mut Client, sql: String) -> anyhow::Result<u64> {
    let mut s = c
        .query(pb::QueryRequest {
            sql,
            ..Default::default()
        })
        .await
        .map_err(|e| anyhow!("pull query: {}", e.message()))?
        .into_inner();
    let mut rows = 0;
    while let Some(m) = s
        .message()
        .await
        .map_err(|e| anyhow!("pull query: {}", e.message()))?
    {
        if let Some(pb::query_response::Kind::Row(_)) = m.kind {
            rows += 1;
        }
    }
    Ok(rows)
}

/// `pull`: lookups over the Pull RPC, each client keeping `--pipeline` requests in flight
/// on one call; latency is from a request's send to its response.
pub(crate) async fn run(ctx: &mut Ctx<'_>) -> anyhow::Result<Figure> {
    let o = ctx.opts;
    let depth = o.pipeline.max(1);
    let (table, progress, meter, deadline) = prepare(ctx, "PULL", "pull").await?;
    let mut tasks = Vec::new();
    for w in 0..o.concurrency.max(1) {
        let mut c = ctx.target.client().await?;
        let keys = o.keys;
        let mut rng = Rng::new(o.seed ^ (w as u64 + 1));
        let progress = progress.clone();
        let sql = format!("SELECT * FROM {table} WHERE K = ?;");
        let (tx, rx) = mpsc::channel::<pb::PullRequest>(depth);
        let mut responses = c
            .pull(ReceiverStream::new(rx))
            .await
            .map_err(|e| anyhow!("Pull: {}", e.message()))?
            .into_inner();
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            // Send instants of the requests in flight, oldest first: responses come in
            // request order.
            let mut in_flight: VecDeque<(u64, String, Instant)> = VecDeque::with_capacity(depth);
            let mut next_id = 0u64;
            loop {
                while in_flight.len() < depth && Instant::now() < deadline {
                    let k = key(rng.below(keys));
                    let req = pb::PullRequest {
                        id: next_id,
                        sql: sql.clone(),
                        with_columns: false,
                        params: vec![pb::Value {
                            kind: Some(pb::value::Kind::String(k.clone())),
                        }],
                        ..Default::default()
                    };
                    in_flight.push_back((next_id, k, Instant::now()));
                    next_id += 1;
                    if tx.send(req).await.is_err() {
                        bail!("the server closed the Pull call");
                    }
                }
                let Some((id, k, sent)) = in_flight.pop_front() else {
                    break;
                };
                let r = responses
                    .message()
                    .await
                    .map_err(|e| anyhow!("Pull: {}", e.message()))?
                    .ok_or_else(|| anyhow!("the server ended the Pull call early"))?;
                lat.push(sent.elapsed().as_micros() as u64);
                if r.id != id {
                    bail!("Pull response {} out of order, expected {id}", r.id);
                }
                if !r.error.is_empty() {
                    bail!("lookup of {k} failed: {}", r.error);
                }
                if r.rows.len() != 1 {
                    bail!("lookup of {k} returned {} rows, expected 1", r.rows.len());
                }
                progress.add(1);
            }
            Ok::<_, anyhow::Error>(lat)
        }));
    }
    finish(ctx, meter, progress, tasks, "pull")
        .await
        .map(|f| f.param("pipeline", depth as u64))
}

/// `pull-query`: lookups as separate Query calls, one at a time per client.
pub(crate) async fn run_query(ctx: &mut Ctx<'_>) -> anyhow::Result<Figure> {
    let o = ctx.opts;
    let (table, progress, meter, deadline) = prepare(ctx, "PULLQ", "pull-query").await?;
    let mut tasks = Vec::new();
    for w in 0..o.concurrency.max(1) {
        let mut c = ctx.target.client().await?;
        let table = table.clone();
        let keys = o.keys;
        let mut rng = Rng::new(o.seed ^ (w as u64 + 1));
        let progress = progress.clone();
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            while Instant::now() < deadline {
                let k = key(rng.below(keys));
                let t = Instant::now();
                let n = lookup(&mut c, format!("SELECT * FROM {table} WHERE K = '{k}';")).await?;
                lat.push(t.elapsed().as_micros() as u64);
                if n != 1 {
                    bail!("lookup of {k} returned {n} rows, expected 1");
                }
                progress.add(1);
            }
            Ok::<_, anyhow::Error>(lat)
        }));
    }
    finish(ctx, meter, progress, tasks, "pull-query").await
}

/// What both pull workloads start with: the loaded table (named from `base`), the
/// progress bar, the meter of the measured interval and its deadline.
async fn prepare(
    ctx: &Ctx<'_>,
    base: &str,
    label: &str,
) -> anyhow::Result<(String, Progress, crate::Meter, Instant)> {
    let table = ctx.name(base);
    load_table(ctx, &table, "pull load").await?;
    let progress = Progress::start(label, 0);
    let meter = ctx.meter();
    let deadline = meter.t0() + Duration::from_secs_f64(ctx.opts.duration_s.max(0.1));
    Ok((table, progress, meter, deadline))
}

async fn finish(
    ctx: &Ctx<'_>,
    meter: crate::Meter,
    progress: Progress,
    tasks: Vec<tokio::task::JoinHandle<anyhow::Result<Vec<u64>>>>,
    name: &str,
) -> anyhow::Result<Figure> {
    let mut lat = Vec::new();
    for t in tasks {
        lat.extend(t.await??);
    }
    let end = Instant::now();
    progress.finish();
    let mut f = Figure::new(name);
    f.events = lat.len() as u64;
    let mut f = meter.stop_at(f, end).latencies(&mut lat);
    f.qps = Some(f.events_per_s);
    Ok(f.param("keys", ctx.opts.keys)
        .param("clients", ctx.opts.concurrency as u64))
}
