//! `groupby` and `stateless`: a persistent query over a stream, measured from the first
//! insert until the query has consumed the last event (its lag reaches zero).

use crate::client::{create_query, execute, wait_caught_up};
use crate::progress::Progress;
use crate::{Ctx, Figure};

async fn view(
    ctx: &mut Ctx<'_>,
    workload: &str,
    query: impl Fn(&str, &str) -> String,
) -> anyhow::Result<Figure> {
    let o = ctx.opts;
    let stream = ctx.name(&format!("{}_SRC", workload.to_uppercase()));
    let view = ctx.name(&format!("{}_VIEW", workload.to_uppercase()));
    let mut c = ctx.target.client().await?;
    execute(&mut c, &super::create_event_stream(ctx, &stream)).await?;
    let id = create_query(&mut c, &query(&view, &stream)).await?;
    let meter = ctx.meter();
    super::load_events(ctx, &stream, &format!("{workload} load")).await?;
    let loaded = meter.t0().elapsed().as_secs_f64();
    let progress = Progress::start(workload, o.events);
    let end = wait_caught_up(&mut c, &id, o.events, &progress).await?;
    progress.finish();
    let mut f = Figure::new(workload);
    f.events = o.events;
    Ok(meter
        .stop_at(f, end)
        .param("keys", o.keys)
        .param("load_s", loaded)
        .param("partitions", o.partitions)
        .param("query", query(&view, &stream)))
}

pub(crate) async fn groupby(ctx: &mut Ctx<'_>) -> anyhow::Result<Figure> {
    view(ctx, "groupby", |view, stream| {
        format!(
            "CREATE TABLE {view} AS SELECT K, COUNT(*) AS N, SUM(AMOUNT) AS TOTAL, \
             MIN(AMOUNT) AS LO, MAX(AMOUNT) AS HI, AVG(AMOUNT) AS MEAN FROM {stream} GROUP BY K;"
        )
    })
    .await
}

pub(crate) async fn stateless(ctx: &mut Ctx<'_>) -> anyhow::Result<Figure> {
    view(ctx, "stateless", |view, stream| {
        format!(
            "CREATE STREAM {view} AS SELECT K, ID, USER_ID, AMOUNT * 0.908 AS AMOUNT_EUR, CATEGORY \
             FROM {stream} WHERE QTY > 2 AND CATEGORY <> 'tools';"
        )
    })
    .await
}
