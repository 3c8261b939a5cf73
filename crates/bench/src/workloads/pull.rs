//! `pull`: key lookups on a K-key table from C concurrent clients for the run's duration;
//! queries per second and latency percentiles. Every lookup must return its one row.

use crate::client::{Client, execute, materialization_lag};
use crate::events::key;
use crate::progress::Progress;
use crate::rng::Rng;
use crate::{Ctx, Figure};
use anyhow::{anyhow, bail};
use sluice_proto::v1 as pb;
use std::time::{Duration, Instant};

/// Loads a table of `keys` rows, one per key, and waits until its store serves them all.
pub(crate) async fn load_table(ctx: &Ctx<'_>, table: &str, label: &str) -> anyhow::Result<()> {
    let o = ctx.opts;
    let mut c = ctx.target.client().await?;
    execute(&mut c, &super::create_event_table(ctx, table)).await?;
    super::load_rows(ctx, table, o.keys, label, |g, i| g.row_with_key(i, i)).await?;
    while materialization_lag(&mut c, table).await? > 0 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
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

pub(crate) async fn run(ctx: &mut Ctx<'_>) -> anyhow::Result<Figure> {
    let o = ctx.opts;
    let table = ctx.name("PULL");
    load_table(ctx, &table, "pull load").await?;
    let duration = Duration::from_secs_f64(o.duration_s.max(0.1));
    let progress = Progress::start("pull", 0);
    let meter = ctx.meter();
    let deadline = meter.t0() + duration;
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
    let mut lat = Vec::new();
    for t in tasks {
        lat.extend(t.await??);
    }
    let end = Instant::now();
    progress.finish();
    let mut f = Figure::new("pull");
    f.events = lat.len() as u64;
    let mut f = meter.stop_at(f, end).latencies(&mut lat);
    f.qps = Some(f.events_per_s);
    Ok(f.param("keys", o.keys)
        .param("clients", o.concurrency as u64))
}
