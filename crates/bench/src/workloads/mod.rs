//! The workloads. Each creates its own uniquely named streams and tables, measures one
//! interval with a [`crate::Meter`] and returns its figures.

mod catchup;
mod fanout;
mod freshness;
mod ingest;
mod pull;
mod recovery;
mod views;

use crate::client::bulk_load;
use crate::events::EventGen;
use crate::progress::Progress;
use crate::{Ctx, Figure};

pub(crate) async fn run(name: &str, ctx: &mut Ctx<'_>) -> anyhow::Result<Vec<Figure>> {
    Ok(match name {
        "ingest" => vec![ingest::run(ctx).await?],
        "groupby" => vec![views::groupby(ctx).await?],
        "stateless" => vec![views::stateless(ctx).await?],
        "freshness" => vec![freshness::run(ctx).await?],
        "pull" => vec![pull::run(ctx).await?],
        "pull-query" => vec![pull::run_query(ctx).await?],
        "recovery" => vec![recovery::run(ctx).await?],
        "fanout" => vec![fanout::run(ctx).await?],
        "catchup" => vec![catchup::run(ctx).await?],
        "nexmark" => crate::nexmark::run(ctx).await?,
        other => anyhow::bail!("unknown workload {other}"),
    })
}

/// CREATE STREAM over the event schema with the run's partitions.
pub(crate) fn create_event_stream(ctx: &Ctx<'_>, name: &str) -> String {
    create_events(ctx, "STREAM", name, "KEY")
}

/// CREATE TABLE over the event schema (K the primary key) with the run's partitions.
pub(crate) fn create_event_table(ctx: &Ctx<'_>, name: &str) -> String {
    create_events(ctx, "TABLE", name, "PRIMARY KEY")
}

fn create_events(ctx: &Ctx<'_>, kind: &str, name: &str, key_role: &str) -> String {
    format!(
        "CREATE {kind} {name} ({}) WITH (kafka_topic='{}', value_format='JSON', partitions={});",
        crate::events::columns(key_role),
        name.to_lowercase(),
        ctx.opts.partitions
    )
}

/// Bulk-inserts the run's `--events` events into `stream`, showing progress as `label`;
/// returns once every one is acknowledged durable.
pub(crate) async fn load_events(ctx: &Ctx<'_>, stream: &str, label: &str) -> anyhow::Result<()> {
    load_rows(ctx, stream, ctx.opts.events, label, |g, i| g.row(i)).await
}

/// Bulk-inserts `count` generated rows (`row(generator, i)` for i in 0..count) into
/// `target`, showing progress as `label`; returns once every one is acknowledged durable.
pub(crate) async fn load_rows(
    ctx: &Ctx<'_>,
    target: &str,
    count: u64,
    label: &str,
    row: fn(&EventGen, u64) -> sluice_proto::v1::Row,
) -> anyhow::Result<()> {
    let o = ctx.opts;
    let generator = EventGen::new(o.seed, o.keys, o.value_size);
    let progress = Progress::start(label, count);
    bulk_load(
        &ctx.target,
        target,
        count,
        o.batch,
        o.concurrency,
        move |i| row(&generator, i),
        &progress,
    )
    .await?;
    progress.finish();
    Ok(())
}
