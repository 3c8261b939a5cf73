//! gRPC helpers shared by the workloads: statements, status polling and pipelined bulk
//! loads over several BulkInsert streams.

use crate::progress::Progress;
use anyhow::{Context, anyhow, bail};
use sluice_proto::v1 as pb;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::codec::Streaming;

/// Sends `SLUICE_TOKEN` as a bearer token when set (a server with `--auth-file`).
pub type Client = sluice_proto::AuthedClient;

/// Batches each load stream keeps in flight: enough to cover the group commit's fsync.
const IN_FLIGHT: usize = 8;

pub async fn execute(c: &mut Client, sql: &str) -> anyhow::Result<pb::ExecuteResponse> {
    c.execute(pb::ExecuteRequest {
        sql: sql.to_string(),
        properties: Default::default(),
    })
    .await
    .map(|r| r.into_inner())
    .map_err(|e| anyhow!("{sql}\n  failed: {}", e.message()))
}

/// Runs a CREATE ... AS SELECT and returns the persistent query's id.
pub async fn create_query(c: &mut Client, sql: &str) -> anyhow::Result<String> {
    let r = execute(c, sql).await?;
    r.results
        .iter()
        .find(|s| !s.query_id.is_empty())
        .map(|s| s.query_id.clone())
        .ok_or_else(|| anyhow!("{sql}\n  started no persistent query"))
}

fn bigint(v: &pb::Value) -> Option<i64> {
    match v.kind.as_ref()? {
        pb::value::Kind::Bigint(n) => Some(*n),
        pb::value::Kind::Int(n) => Some(*n as i64),
        _ => None,
    }
}

fn string(v: &pb::Value) -> Option<&str> {
    match v.kind.as_ref()? {
        pb::value::Kind::String(s) => Some(s),
        _ => None,
    }
}

/// (processed, lag, errors, status) of a persistent query, from SHOW QUERIES.
pub async fn query_status(c: &mut Client, id: &str) -> anyhow::Result<(u64, u64, u64, String)> {
    let r = execute(c, "SHOW QUERIES;").await?;
    let res = r.results.first().context("SHOW QUERIES returned nothing")?;
    let col = |name: &str| {
        res.columns
            .iter()
            .position(|c| c.name == name)
            .ok_or_else(|| anyhow!("SHOW QUERIES has no column {name}"))
    };
    let (id_i, st_i, p_i, l_i, e_i) = (
        col("Query ID")?,
        col("Status")?,
        col("Processed")?,
        col("Lag")?,
        col("Errors")?,
    );
    for row in &res.rows {
        let v = &row.values;
        if v.get(id_i).and_then(string) == Some(id) {
            let num = |i: usize| v.get(i).and_then(bigint).unwrap_or(0).max(0) as u64;
            let status = v.get(st_i).and_then(string).unwrap_or("").to_string();
            return Ok((num(p_i), num(l_i), num(e_i), status));
        }
    }
    bail!("query {id} is not in SHOW QUERIES")
}

/// Waits until query `id` has processed at least `expected` records and has no lag, showing
/// its progress. Fails if the query reports an error state for over 10 s.
pub async fn wait_caught_up(
    c: &mut Client,
    id: &str,
    expected: u64,
    progress: &Progress,
) -> anyhow::Result<Instant> {
    let mut erroring_since: Option<Instant> = None;
    loop {
        let (processed, lag, _errors, status) = query_status(c, id).await?;
        progress.set(processed.min(expected));
        if processed >= expected && lag == 0 {
            return Ok(Instant::now());
        }
        if status.starts_with("ERROR") {
            let since = *erroring_since.get_or_insert_with(Instant::now);
            if since.elapsed() > Duration::from_secs(10) {
                bail!("query {id} is failing: {status}");
            }
        } else {
            erroring_since = None;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Starts a push query and waits for its header, so the subscription is live before the
/// caller inserts anything. `rows_per_message` is the request's `max_rows_per_message`.
pub async fn subscribe(
    c: &mut Client,
    sql: String,
    rows_per_message: u32,
) -> anyhow::Result<Streaming<pb::QueryResponse>> {
    let mut rows = c
        .query(pb::QueryRequest {
            sql,
            max_rows_per_message: rows_per_message,
            ..Default::default()
        })
        .await
        .map_err(|e| anyhow!("push query: {}", e.message()))?
        .into_inner();
    match rows.message().await {
        Ok(Some(pb::QueryResponse {
            kind: Some(pb::query_response::Kind::Header(_)),
        })) => Ok(rows),
        other => bail!("push query did not start with a header: {other:?}"),
    }
}

/// The rows a push query's message carries: one (QueryRow), several (QueryRows), or none.
pub fn push_rows(m: pb::QueryResponse) -> Vec<pb::QueryRow> {
    match m.kind {
        Some(pb::query_response::Kind::Row(r)) => vec![r],
        Some(pb::query_response::Kind::Rows(r)) => r.rows,
        _ => Vec::new(),
    }
}

pub fn row(values: Vec<pb::value::Kind>) -> pb::Row {
    pb::Row {
        values: values
            .into_iter()
            .map(|k| pb::Value { kind: Some(k) })
            .collect(),
    }
}

/// Sends `total` rows to `target` over `streams` BulkInsert streams of `batch` rows, each
/// stream keeping up to [`IN_FLIGHT`] batches in flight. `make_row(i)` builds row number `i`
/// (0-based, global); stream `s` sends the batches `s, s + streams, ...`. Returns once every
/// row is acknowledged durable.
#[allow(clippy::too_many_arguments)]
pub async fn bulk_load<F>(
    target_url: &crate::target::Target,
    table: &str,
    total: u64,
    batch: usize,
    streams: usize,
    make_row: F,
    progress: &Progress,
) -> anyhow::Result<()>
where
    F: Fn(u64) -> pb::Row + Send + Sync + 'static,
{
    let make_row = Arc::new(make_row);
    let batch = batch.max(1) as u64;
    let batches = total.div_ceil(batch);
    let streams = (streams.max(1) as u64).min(batches.max(1));
    let mut tasks = Vec::new();
    for s in 0..streams {
        let mut client = target_url.client().await?;
        let make_row = make_row.clone();
        let progress = progress.clone();
        let table = table.to_string();
        tasks.push(tokio::spawn(async move {
            let (tx, rx) = mpsc::channel::<pb::BulkInsertRequest>(IN_FLIGHT);
            let mut acks = client
                .bulk_insert(ReceiverStream::new(rx))
                .await
                .map_err(|e| anyhow!("BulkInsert into {table}: {}", e.message()))?
                .into_inner();
            let mine: Vec<u64> = (s..batches).step_by(streams as usize).collect();
            let expected = mine.len();
            let sender = tokio::spawn(async move {
                for b in mine {
                    let lo = b * batch;
                    let hi = ((b + 1) * batch).min(total);
                    let req = pb::BulkInsertRequest {
                        target: table.clone(),
                        columns: vec![],
                        rows: (lo..hi).map(|i| make_row(i)).collect(),
                        batch_id: b,
                        ..Default::default()
                    };
                    if tx.send(req).await.is_err() {
                        break;
                    }
                }
            });
            let mut acked = 0usize;
            while acked < expected {
                match acks.message().await {
                    Ok(Some(r)) => {
                        acked += 1;
                        progress.add(r.rows);
                    }
                    Ok(None) => bail!("the server closed a BulkInsert stream early"),
                    Err(e) => bail!("BulkInsert failed: {}", e.message()),
                }
            }
            sender.abort();
            Ok::<(), anyhow::Error>(())
        }));
    }
    for t in tasks {
        t.await.context("a load task panicked")??;
    }
    Ok(())
}
