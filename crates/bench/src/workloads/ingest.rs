//! `ingest`: bulk insert of N events into a stream; acknowledged-durable events per second.

use crate::client::{bulk_load, execute};
use crate::events::EventGen;
use crate::progress::Progress;
use crate::{Ctx, Figure};
use std::time::Instant;

pub(crate) async fn run(ctx: &mut Ctx<'_>) -> anyhow::Result<Figure> {
    let o = ctx.opts;
    let stream = ctx.name("INGEST");
    let mut c = ctx.target.client().await?;
    execute(&mut c, &super::create_event_stream(ctx, &stream)).await?;
    let generator = EventGen::new(o.seed, o.keys, o.value_size);
    let progress = Progress::start("ingest", o.events);
    let meter = ctx.meter();
    bulk_load(
        &ctx.target,
        &stream,
        o.events,
        o.batch,
        o.concurrency,
        8,
        move |i| generator.row(i),
        &progress,
    )
    .await?;
    let end = Instant::now();
    progress.finish();
    let mut f = Figure::new("ingest");
    f.events = o.events;
    Ok(meter
        .stop_at(f, end)
        .param("batch", o.batch as u64)
        .param("streams", o.concurrency as u64)
        .param("value_size", o.value_size as u64)
        .param("partitions", o.partitions))
}
