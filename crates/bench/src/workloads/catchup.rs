//! `catchup`: a push subscriber that starts at the beginning of a stream already holding
//! N events (`auto.offset.reset=earliest`, `LIMIT N`) and reads them all: how fast
//! history reaches a client, per server CPU-second. This is the path where rows are ready
//! faster than one message each can carry them, so `--push-rows-per-message` (the
//! request's `max_rows_per_message`) shows what packing them is worth.

use crate::client::{execute, push_rows};
use crate::progress::Progress;
use crate::{Ctx, Figure};
use anyhow::{anyhow, bail};
use sluice_proto::v1 as pb;
use std::time::Instant;

pub(crate) async fn run(ctx: &mut Ctx<'_>) -> anyhow::Result<Figure> {
    let o = ctx.opts;
    let stream = ctx.name("CATCHUP");
    let mut c = ctx.target.client().await?;
    execute(&mut c, &super::create_event_stream(ctx, &stream)).await?;
    super::load_events(ctx, &stream, "catchup (load)").await?;

    let meter = ctx.meter();
    let mut rows = c
        .query(pb::QueryRequest {
            sql: format!("SELECT * FROM {stream} EMIT CHANGES LIMIT {};", o.events),
            properties: [("auto.offset.reset".to_string(), "earliest".to_string())].into(),
            max_rows_per_message: o.push_rows_per_message,
            ..Default::default()
        })
        .await
        .map_err(|e| anyhow!("push query: {}", e.message()))?
        .into_inner();
    let progress = Progress::start("catchup", o.events);
    let (mut got, mut messages) = (0u64, 0u64);
    loop {
        let m = match rows.message().await {
            Ok(Some(m)) => m,
            Ok(None) => break,
            Err(e) => bail!("push query failed after {got} rows: {}", e.message()),
        };
        match m.kind {
            Some(pb::query_response::Kind::Final(_)) => break,
            Some(pb::query_response::Kind::Header(_)) | None => {}
            kind => {
                let n = push_rows(pb::QueryResponse { kind }).len() as u64;
                got += n;
                messages += 1;
                progress.add(n);
            }
        }
    }
    let end = Instant::now();
    progress.finish();
    if got != o.events {
        bail!("the subscriber received {got} of {} events", o.events);
    }
    let mut f = Figure::new("catchup");
    f.events = got;
    Ok(meter
        .stop_at(f, end)
        .param("messages", messages)
        .param("max_rows_per_message", o.push_rows_per_message))
}
