//! `ingest`: bulk insert of N events into a stream; acknowledged-durable events per second.

use crate::client::execute;
use crate::{Ctx, Figure};
use std::time::Instant;

pub(crate) async fn run(ctx: &mut Ctx<'_>) -> anyhow::Result<Figure> {
    let o = ctx.opts;
    let stream = ctx.name("INGEST");
    let mut c = ctx.target.client().await?;
    execute(&mut c, &super::create_event_stream(ctx, &stream)).await?;
    let meter = ctx.meter();
    super::load_events(ctx, &stream, "ingest").await?;
    let end = Instant::now();
    let mut f = Figure::new("ingest");
    f.events = o.events;
    Ok(meter
        .stop_at(f, end)
        .param("batch", o.batch as u64)
        .param("streams", o.concurrency as u64)
        .param("value_size", o.value_size as u64)
        .param("partitions", o.partitions))
}
