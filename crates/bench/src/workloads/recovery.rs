//! `recovery`: with N events in the log and a K-key view over them, SIGKILL the server and
//! time restart to the first successful pull query on the view.

use crate::client::{create_query, execute, wait_caught_up};
use crate::events::{EventGen, key};
use crate::progress::Progress;
use crate::{Ctx, Figure, Meter};
use std::time::{Duration, Instant};

pub(crate) async fn run(ctx: &mut Ctx<'_>) -> anyhow::Result<Figure> {
    let o = ctx.opts;
    let stream = ctx.name("REC_SRC");
    let view = ctx.name("REC_VIEW");
    let mut c = ctx.target.client().await?;
    execute(&mut c, &super::create_event_stream(ctx, &stream)).await?;
    let id = create_query(
        &mut c,
        &format!(
            "CREATE TABLE {view} AS SELECT K, COUNT(*) AS N, SUM(AMOUNT) AS TOTAL FROM {stream} GROUP BY K;"
        ),
    )
    .await?;
    // A key the load is sure to contain: the first event's.
    let probe = key(EventGen::new(o.seed, o.keys, o.value_size).key_of(0));
    super::load_events(ctx, &stream, "recovery load").await?;
    let progress = Progress::start("recovery view", o.events);
    wait_caught_up(&mut c, &id, o.events, &progress).await?;
    progress.finish();
    drop(c);

    let started = ctx.target.kill_and_restart()?;
    let meter = Meter::start(&ctx.target);
    let answering = ctx.target.wait_ready(Duration::from_secs(600)).await?;
    let mut c = ctx.target.client().await?;
    let sql = format!("SELECT * FROM {view} WHERE K = '{probe}';");
    let end = loop {
        if let Ok(1) = super::pull::lookup(&mut c, sql.clone()).await {
            break Instant::now();
        }
        if started.elapsed() > Duration::from_secs(600) {
            anyhow::bail!("no successful pull query on {view} within 600 s of the restart");
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    };
    let mut f = Figure::new("recovery");
    f.events = o.events;
    let mut f = meter.stop_at(f, end);
    // The interval starts at the restart, not at this meter's (slightly later) start.
    f.wall_s = end.duration_since(started).as_secs_f64();
    f.events_per_s = 0.0;
    f.events_per_cpu_s = None;
    let wall = f.wall_s;
    Ok(f.param("keys", o.keys)
        .param("restart_to_answering_s", answering.as_secs_f64())
        .param("restart_to_first_pull_s", wall))
}
