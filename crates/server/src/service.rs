//! The `sluice.v1.Sluice` gRPC service.

use crate::auth::Role;
use crate::convert::{from_proto, row_to_proto};
use crate::status::{OrStatus, from_exec, grpc_code};
use futures::Stream;
use sluice_common::Value;
use sluice_database::{ExecError, Executor, QueryKind, now_ms, transient_id};
use sluice_engine::{PushEvent, PushStart, ScanEvent, encode_row_record};
use sluice_plan::PullAccess;
use sluice_planner::pull::PreparedPull;
use sluice_planner::query::OutputColumn;
use sluice_proto::v1 as pb;
use sluice_proto::v1::sluice_server::Sluice;
use sluice_sql::StatementKind;
use sluice_storage::{Log, Record, Txn};
use std::collections::HashMap;
use std::pin::Pin;
use std::sync::Arc;
use tokio::sync::mpsc;
use tokio_stream::StreamExt;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};
use tracing::Instrument;

/// A number for each call, in the spans of its log lines, so one call's lines can be
/// told from another's.
fn next_request_id() -> u64 {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

type BoxStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

pub struct SluiceService {
    exec: Arc<Executor>,
    /// Turns true when the server shuts down: streaming calls then end (see `drain`).
    drain: tokio::sync::watch::Receiver<bool>,
    limits: crate::limits::Limits,
    /// Push queries open now, against `limits.max_push_queries`.
    pushes: crate::limits::PushCount,
}

impl SluiceService {
    pub fn new(
        exec: Arc<Executor>,
        drain: tokio::sync::watch::Receiver<bool>,
        limits: crate::limits::Limits,
        pushes: crate::limits::PushCount,
    ) -> SluiceService {
        SluiceService {
            exec,
            drain,
            limits,
            pushes,
        }
    }

    /// A streaming response that ends with UNAVAILABLE when the server drains.
    fn draining<T: Send + 'static>(
        &self,
        response: Result<Response<BoxStream<T>>, Status>,
    ) -> Result<Response<BoxStream<T>>, Status> {
        let drain = self.drain.clone();
        response.map(|r| r.map(|s| Box::pin(crate::drain::Draining::new(s, drain)) as BoxStream<T>))
    }
}

fn column(name: &str, ty: &str, role: &str) -> pb::Column {
    pb::Column {
        name: name.to_string(),
        r#type: ty.to_string(),
        role: role.to_string(),
    }
}

fn header(query_id: &str, columns: Vec<pb::Column>, push: bool) -> pb::QueryResponse {
    header_at(query_id, columns, push, 0)
}

fn header_at(
    query_id: &str,
    columns: Vec<pb::Column>,
    push: bool,
    position: u64,
) -> pb::QueryResponse {
    pb::QueryResponse {
        kind: Some(pb::query_response::Kind::Header(pb::QueryHeader {
            query_id: query_id.into(),
            columns,
            push,
            position,
        })),
    }
}

fn row_msg(row: &[Value], partition: u32, offset: u64, tombstone: bool) -> pb::QueryResponse {
    pb::QueryResponse {
        kind: Some(pb::query_response::Kind::Row(query_row(
            row, partition, offset, 0, tombstone,
        ))),
    }
}

fn query_row(
    row: &[Value],
    partition: u32,
    offset: u64,
    position: u64,
    tombstone: bool,
) -> pb::QueryRow {
    pb::QueryRow {
        row: Some(row_to_proto(row)),
        partition: partition as i32,
        offset: offset as i64,
        tombstone,
        position,
    }
}

fn final_msg(message: &str, rows: u64) -> pb::QueryResponse {
    pb::QueryResponse {
        kind: Some(pb::query_response::Kind::Final(pb::QueryFinal {
            message: message.into(),
            rows,
        })),
    }
}

/// Most rows a push query's QueryRows message holds (`max_rows_per_message` above it is
/// capped here): the engine's channel to the connection holds this many, so a fuller
/// message could not be filled without waiting.
const MAX_ROWS_PER_MESSAGE: usize = sluice_engine::PUSH_CHANNEL;

/// A QueryRows message takes no more rows once it holds this many encoded bytes, so that
/// it stays well under gRPC's usual 4 MiB limit on a received message.
const MAX_ROWS_MESSAGE_BYTES: usize = 1 << 20;

/// A push query's rows as the response stream. The response body polls the engine's
/// channel directly: a task relaying rows to a second channel cost a wake-up and a
/// channel hop per row, a measurable share of the server's CPU at 100K rows/s.
struct PushRows {
    /// Its place among the open push queries, given back when the call ends.
    _slot: crate::limits::PushSlot,
    rx: mpsc::Receiver<PushEvent>,
    rows: u64,
    query: String,
    /// Set once the final message (or an error) went out: only then may the stream end.
    done: bool,
    /// Rows per message: 1 sends each as a QueryRow; more packs the rows that are ready
    /// into one QueryRows, which spares a message's framing, its HTTP/2 frame and a
    /// wake-up of the connection per row.
    per_message: usize,
    /// An event that ended a QueryRows message being filled (the final message, a
    /// failure), to handle next.
    held: Option<PushEvent>,
}

impl PushRows {
    fn new(
        rx: mpsc::Receiver<PushEvent>,
        query: String,
        slot: crate::limits::PushSlot,
        max_rows_per_message: u32,
    ) -> PushRows {
        PushRows {
            _slot: slot,
            rx,
            rows: 0,
            query,
            done: false,
            per_message: (max_rows_per_message as usize).clamp(1, MAX_ROWS_PER_MESSAGE),
            held: None,
        }
    }

    fn skipped(&self, partition: u32, offset: u64, message: &str) {
        tracing::warn!(
            query = %self.query,
            partition,
            offset,
            "push query skipped a record: {message}"
        );
    }

    /// `first` and the rows ready behind it, up to the message's bounds, as one QueryRows.
    /// Never waits: what is not in the channel yet goes in a later message.
    fn pack(&mut self, first: pb::QueryRow) -> pb::QueryResponse {
        use prost::Message;
        let mut bytes = first.encoded_len();
        let mut rows = vec![first];
        while rows.len() < self.per_message && bytes < MAX_ROWS_MESSAGE_BYTES {
            match self.rx.try_recv() {
                Ok(PushEvent::Row {
                    row,
                    partition,
                    offset,
                    position,
                    tombstone,
                }) => {
                    self.rows += 1;
                    let r = query_row(&row, partition, offset, position, tombstone);
                    bytes += r.encoded_len();
                    rows.push(r);
                }
                Ok(PushEvent::Skipped {
                    partition,
                    offset,
                    message,
                }) => self.skipped(partition, offset, &message),
                Ok(other) => {
                    self.held = Some(other);
                    break;
                }
                // Empty, or closed: a closed channel is seen by the next poll.
                Err(_) => break,
            }
        }
        pb::QueryResponse {
            kind: Some(pb::query_response::Kind::Rows(pb::QueryRows { rows })),
        }
    }
}

impl Stream for PushRows {
    type Item = Result<pb::QueryResponse, Status>;

    fn poll_next(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        use std::task::Poll;
        let this = &mut *self;
        // The engine's reader drops its sender after `LimitReached`, so the channel
        // ends the stream after the final message.
        loop {
            let ev = match this.held.take() {
                Some(ev) => ev,
                None => {
                    let Some(ev) = std::task::ready!(this.rx.poll_recv(cx)) else {
                        if this.done {
                            return Poll::Ready(None);
                        }
                        // The reader stopped without a final message: tell the client,
                        // rather than ending with OK as if the query had completed.
                        this.done = true;
                        return Poll::Ready(Some(Err(Status::internal(format!(
                            "push query {} stopped unexpectedly after {} rows",
                            this.query, this.rows
                        )))));
                    };
                    ev
                }
            };
            match ev {
                PushEvent::Row {
                    row,
                    partition,
                    offset,
                    position,
                    tombstone,
                } => {
                    this.rows += 1;
                    let first = query_row(&row, partition, offset, position, tombstone);
                    if this.per_message > 1 {
                        return Poll::Ready(Some(Ok(this.pack(first))));
                    }
                    return Poll::Ready(Some(Ok(pb::QueryResponse {
                        kind: Some(pb::query_response::Kind::Row(first)),
                    })));
                }
                PushEvent::Skipped {
                    partition,
                    offset,
                    message,
                } => this.skipped(partition, offset, &message),
                PushEvent::LimitReached => {
                    this.done = true;
                    return Poll::Ready(Some(Ok(final_msg("Limit Reached", this.rows))));
                }
                PushEvent::Failed { message, kind } => {
                    this.done = true;
                    tracing::error!(query = %this.query, "push query failed: {message}");
                    let code = crate::status::push_failure_code(kind);
                    return Poll::Ready(Some(Err(crate::status::status(
                        code,
                        format!("push query {} failed: {message}", this.query),
                    ))));
                }
            }
        }
    }
}

impl Drop for PushRows {
    fn drop(&mut self) {
        tracing::info!(query = %self.query, rows = self.rows, "push query ended");
    }
}

/// A pull query on a stream as the response stream: rows as the scan reads them, then
/// the final message ("Query Completed", or "Limit Reached" at LIMIT), or the error that
/// stopped it.
struct ScanRows {
    rx: mpsc::Receiver<ScanEvent>,
    rows: u64,
}

impl Stream for ScanRows {
    type Item = Result<pb::QueryResponse, Status>;

    fn poll_next(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        use std::task::Poll;
        let this = &mut *self;
        let Some(ev) = std::task::ready!(this.rx.poll_recv(cx)) else {
            return Poll::Ready(None);
        };
        Poll::Ready(Some(match ev {
            ScanEvent::Row(row) => {
                this.rows += 1;
                Ok(row_msg(&row, 0, 0, false))
            }
            ScanEvent::Done { limit_reached } => Ok(final_msg(
                if limit_reached {
                    "Limit Reached"
                } else {
                    "Query Completed"
                },
                this.rows,
            )),
            ScanEvent::Failed(e) => Err(crate::status::from_exec(e.into())),
        }))
    }
}

/// Pull queries of one Pull call, by SQL text: a call usually repeats a few queries with
/// different parameters, and parsing was a quarter of a lookup's server CPU, planning a
/// fifth. The syntax tree is kept, and for key lookups by parameter (`WHERE id = ?`) a
/// prepared plan, re-planned whenever the catalog has changed since.
#[derive(Default)]
struct PullCache {
    entries: HashMap<String, CachedPull>,
}

struct CachedPull {
    select: sluice_sql::Select,
    /// The catalog version it was prepared against, and the plan if the shape has one.
    prepared: Option<(u64, Option<PreparedPull>)>,
}

/// Distinct query texts a Pull call keeps parsed; past this the cache starts over.
const PULL_CACHE_ENTRIES: usize = 256;

impl PullCache {
    fn entry(&mut self, exec: &Executor, sql: &str) -> Result<&mut CachedPull, ExecError> {
        if !self.entries.contains_key(sql) {
            let select = parse_pull(exec, sql)?;
            if self.entries.len() >= PULL_CACHE_ENTRIES {
                self.entries.clear();
            }
            self.entries.insert(
                sql.to_string(),
                CachedPull {
                    select,
                    prepared: None,
                },
            );
        }
        self.entries
            .get_mut(sql)
            .ok_or_else(|| ExecError::internal("pull cache entry vanished"))
    }
}

fn parse_pull(exec: &Executor, sql: &str) -> Result<sluice_sql::Select, ExecError> {
    let mut statements = exec.parse(sql)?;
    if statements.len() != 1 {
        return Err(ExecError::invalid(format!(
            "a Pull request takes exactly one pull query, got {} statements",
            statements.len()
        )));
    }
    let StatementKind::Select(select) = statements.remove(0).kind else {
        return Err(ExecError::invalid(
            "a Pull request takes a pull query (SELECT); run other statements with Execute",
        ));
    };
    if select.emit_changes {
        return Err(ExecError::invalid(
            "a Pull request takes a pull query; run push queries (EMIT CHANGES) with Query",
        ));
    }
    Ok(*select)
}

fn pb_columns(columns: &[OutputColumn]) -> Vec<pb::Column> {
    columns
        .iter()
        .map(|c| column(&c.name, &c.data_type.to_string(), c.role.label()))
        .collect()
}

/// The key a prepared pull query looks up with these parameters, when every key value
/// has exactly its key column's type (anything else takes the ordinary path, which casts
/// and reports errors as it always has).
fn prepared_key(prep: &PreparedPull, params: &[pb::Value]) -> Option<Vec<Value>> {
    use pb::value::Kind;
    use sluice_common::DataType;
    if params.len() != prep.key_params.len() {
        return None;
    }
    prep.key_params
        .iter()
        .map(|(i, ty)| match (params.get(*i)?.kind.as_ref()?, ty) {
            (Kind::String(s), DataType::String) => Some(Value::String(s.clone())),
            (Kind::Int(n), DataType::Int) => Some(Value::Int(*n)),
            (Kind::Bigint(n), DataType::Int) => i32::try_from(*n).ok().map(Value::Int),
            (Kind::Int(n), DataType::BigInt) => Some(Value::BigInt(i64::from(*n))),
            (Kind::Bigint(n), DataType::BigInt) => Some(Value::BigInt(*n)),
            (Kind::Boolean(b), DataType::Boolean) => Some(Value::Boolean(*b)),
            _ => None,
        })
        .collect()
}

/// One request of the Pull RPC: a single SELECT without EMIT CHANGES, its parameters
/// bound, planned and run.
async fn run_one_pull(
    exec: &Executor,
    cache: &mut PullCache,
    req: &pb::PullRequest,
) -> Result<(Vec<pb::Column>, Vec<Vec<Value>>), ExecError> {
    let entry = cache.entry(exec, &req.sql)?;
    let version = exec.catalog_version();
    if entry.prepared.as_ref().is_none_or(|(v, _)| *v != version) {
        entry.prepared = Some(exec.prepare_pull(&entry.select));
    }
    let wait = match req.wait_timeout_ms {
        0 => sluice_database::DEFAULT_PULL_WAIT,
        ms => std::time::Duration::from_millis(u64::from(ms)),
    };
    if let Some((_, Some(prep))) = &entry.prepared
        && let Some(key) = prepared_key(prep, &req.params)
    {
        if req.min_position > 0 {
            exec.engine
                .await_position(&prep.plan.table, req.min_position, wait)
                .await?;
        }
        // One point read: in place, as `Executor::run_pull` does for a few keys.
        let rows = exec
            .engine
            .pull_with(&prep.plan, &PullAccess::Keys(vec![key]))
            .map_err(ExecError::from)?;
        let columns = match req.with_columns {
            true => pb_columns(&prep.columns),
            false => Vec::new(),
        };
        return Ok((columns, rows));
    }
    let mut select = entry.select.clone();
    let params = req
        .params
        .iter()
        .enumerate()
        .map(|(i, v)| param(v).map_err(|m| ExecError::invalid(format!("parameter {}: {m}", i + 1))))
        .collect::<Result<Vec<_>, _>>()?;
    sluice_sql::bind_params(&mut select, &params)?;
    let planned = exec.plan_query(&select, &HashMap::new())?;
    exec.await_position(&planned.kind, req.min_position, wait)
        .await?;
    let columns = match req.with_columns {
        true => pb_columns(&planned.columns),
        false => Vec::new(),
    };
    let rows = match planned.kind {
        QueryKind::Pull(plan) => exec.run_pull(plan).await?,
        QueryKind::StreamPull(plan) => exec.collect_stream_pull(plan).await?,
        QueryKind::Push(_) | QueryKind::AggregatePush(_) => {
            return Err(ExecError::internal(
                "a SELECT without EMIT CHANGES planned as a push query",
            ));
        }
    };
    Ok((columns, rows))
}

/// A Pull parameter as the SQL literal it stands for.
fn param(v: &pb::Value) -> Result<sluice_sql::Param, String> {
    use pb::value::Kind;
    use sluice_sql::Param;
    Ok(match &v.kind {
        None | Some(Kind::Null(_)) => Param::Null,
        Some(Kind::Boolean(b)) => Param::Boolean(*b),
        Some(Kind::Int(n)) => Param::Number(n.to_string()),
        Some(Kind::Bigint(n)) => Param::Number(n.to_string()),
        Some(Kind::Double(d)) if d.is_finite() => Param::Number(format!("{d:?}")),
        Some(Kind::Double(d)) => return Err(format!("{d} has no SQL literal")),
        // f64's parser also takes "NaN" and "inf", which are no SQL numbers.
        Some(Kind::Decimal(d)) if d.parse::<f64>().is_ok_and(f64::is_finite) => {
            Param::Number(d.clone())
        }
        Some(Kind::Decimal(d)) => return Err(format!("'{d}' is not a decimal number")),
        Some(Kind::String(s)) => Param::String(s.clone()),
        Some(_) => {
            return Err(
                "only null, boolean, int, bigint, double, decimal and string values can be parameters"
                    .into(),
            );
        }
    })
}

impl SluiceService {
    async fn run_query(
        &self,
        req: pb::QueryRequest,
        role: Option<Role>,
        peer: Option<std::net::SocketAddr>,
    ) -> Result<Response<BoxStream<pb::QueryResponse>>, Status> {
        self.limits.check_statement(&req.sql)?;
        let mut statements = self.exec.parse(&req.sql).or_status()?;
        if statements.len() != 1 {
            return Err(crate::status::status(
                tonic::Code::InvalidArgument,
                format!(
                    "the Query RPC takes exactly one statement, got {}",
                    statements.len()
                ),
            ));
        }
        let stmt = statements.remove(0);
        crate::auth::authorize(role, &stmt)?;
        let earliest = req.properties.iter().any(|(k, v)| {
            k.eq_ignore_ascii_case("auto.offset.reset") && v.eq_ignore_ascii_case("earliest")
        });
        match stmt.kind {
            StatementKind::Select(select) => {
                let planned = self.exec.plan_query(&select, &req.properties).or_status()?;
                if req.min_position > 0 {
                    let wait = sluice_database::pull_wait_timeout(&req.properties).or_status()?;
                    self.exec
                        .await_position(&planned.kind, req.min_position, wait)
                        .await
                        .or_status()?;
                }
                let latest = planned.config.offset_reset_latest;
                let id = planned.id;
                let cols = planned
                    .columns
                    .iter()
                    .map(|c| column(&c.name, &c.data_type.to_string(), c.role.label()))
                    .collect();
                let plan = match planned.kind {
                    QueryKind::Push(plan) => Ok(plan),
                    QueryKind::AggregatePush(plan) => Err(plan),
                    QueryKind::StreamPull(plan) => {
                        let rx = self
                            .exec
                            .engine
                            .scan_stream(plan, self.exec.pull_limits)
                            .or_status()?;
                        let rows = ScanRows { rx, rows: 0 };
                        let out = tokio_stream::once(Ok(header(&id, cols, false))).chain(rows);
                        return Ok(Response::new(Box::pin(out)));
                    }
                    QueryKind::Pull(plan) => {
                        let rows = self.exec.run_pull(plan).await.or_status()?;
                        let mut out = Vec::with_capacity(rows.len() + 2);
                        out.push(Ok(header(&id, cols, false)));
                        let n = rows.len() as u64;
                        for r in rows {
                            out.push(Ok(row_msg(&r, 0, 0, false)));
                        }
                        out.push(Ok(final_msg("", n)));
                        return Ok(Response::new(Box::pin(tokio_stream::iter(out))));
                    }
                };
                let start = if let Some(after) = req.start_after {
                    PushStart::After(after)
                } else if !req.start_from.is_empty() {
                    PushStart::Positions(
                        req.start_from
                            .iter()
                            .map(|p| (p.partition.max(0) as u32, p.offset.max(0) as u64))
                            .collect(),
                    )
                } else if latest {
                    PushStart::Latest
                } else {
                    PushStart::Earliest
                };
                let slot = self.pushes.acquire(&self.limits, peer)?;
                let (rx, start_after) = match plan {
                    Ok(plan) => self.exec.engine.push_from(plan, start),
                    Err(plan) => self
                        .exec
                        .engine
                        .push_aggregate(plan, start, sluice_database::TRANSIENT_AGGREGATION_GROUPS)
                        .map(|rx| (rx, 0)),
                }
                .or_status()?;
                tracing::info!(query = %id, "push query started");
                let rows = PushRows::new(rx, id.clone(), slot, req.max_rows_per_message);
                // The header goes out only after `push` returned, which fixes the positions
                // read from: clients take the header as the sign that the subscription is
                // live (records written after it are seen).
                let out =
                    tokio_stream::once(Ok(header_at(&id, cols, true, start_after))).chain(rows);
                Ok(Response::new(Box::pin(out)))
            }
            StatementKind::Print {
                topic,
                from_beginning,
                limit,
            } => {
                let log = self.exec.log().clone();
                let t = log
                    .topic(&topic.value)
                    .or_else(|| log.topics().into_iter().find(|t| t.name.eq_ignore_ascii_case(&topic.value)))
                    .ok_or_else(|| crate::status::status(tonic::Code::NotFound, format!("Could not find topic '{}', or the KSQL user does not have permissions to list the topic. Topic names are case-sensitive.", topic.value)))?;
                // One text column: the server renders PRINT's lines, as ksqlDB's does
                // (clients print them as they come).
                let columns = vec![column(crate::print::COLUMN, "STRING", "")];
                let start_earliest = from_beginning || earliest;
                // Fixed before the header goes out, as for a push query: a client that waits
                // for the header sees every record written after it.
                let mut positions: Vec<u64> = (0..t.partitions)
                    .map(|p| if start_earliest { 0 } else { t.end_offset(p) })
                    .collect();
                let (tx, out) = mpsc::channel(64);
                let _ = tx.try_send(Ok(header(&transient_id(), columns, true)));
                tokio::spawn(async move {
                    let mut changed = t.subscribe();
                    let mut formatter = crate::print::RecordFormatter::default();
                    let mut formats = crate::print::FormatsTracker::default();
                    let mut n = 0u64;
                    let line = |text: String| vec![Value::String(text)];
                    loop {
                        if limit.is_some_and(|l| n >= l) {
                            let _ = tx.send(Ok(final_msg("Limit Reached", n))).await;
                            return;
                        }
                        changed.borrow_and_update();
                        let mut any = false;
                        for p in 0..t.partitions {
                            if limit.is_some_and(|l| n >= l) {
                                break;
                            }
                            let records = match log.read(&t, p, positions[p as usize], 256) {
                                Ok(r) => r,
                                Err(e) => {
                                    let _ = tx
                                        .send(Err(crate::status::status(
                                            tonic::Code::Internal,
                                            e.to_string(),
                                        )))
                                        .await;
                                    return;
                                }
                            };
                            let (Some(first), Some(last)) = (records.first(), records.last())
                            else {
                                continue;
                            };
                            positions[p as usize] = last.offset + 1;
                            any = true;
                            // The whole batch is formatted (narrowing the format guesses)
                            // even past the limit, then the format lines go before its
                            // records, as ksqlDB writes them.
                            let lines = formatter.format(&records);
                            for text in formats.update(&formatter) {
                                // A format line has no record; it carries the position of
                                // the record it precedes.
                                let msg = row_msg(&line(text), p, first.offset, false);
                                if tx.send(Ok(msg)).await.is_err() {
                                    return;
                                }
                            }
                            for (r, text) in records.iter().zip(lines) {
                                if limit.is_some_and(|l| n >= l) {
                                    break;
                                }
                                n += 1;
                                let msg = row_msg(&line(text), p, r.offset, false);
                                if tx.send(Ok(msg)).await.is_err() {
                                    return;
                                }
                            }
                        }
                        if !any && limit.is_none_or(|l| n < l) {
                            tokio::select! {
                                r = changed.changed() => if r.is_err() { return },
                                _ = tx.closed() => return,
                            }
                        }
                    }
                });
                Ok(Response::new(Box::pin(ReceiverStream::new(out))))
            }
            _ => Err(crate::status::status(
                tonic::Code::InvalidArgument,
                "the Query RPC runs SELECT and PRINT; use Execute for other statements",
            )),
        }
    }
}

#[tonic::async_trait]
impl Sluice for SluiceService {
    async fn execute(
        &self,
        request: Request<pb::ExecuteRequest>,
    ) -> Result<Response<pb::ExecuteResponse>, Status> {
        let role = request.extensions().get::<Role>().copied();
        let req = request.into_inner();
        let span = tracing::info_span!("execute", request_id = next_request_id(), sql = %truncate(&req.sql));
        async move {
            self.limits.check_statement(&req.sql)?;
            let statements = self.exec.parse(&req.sql).or_status()?;
            // All checked before any runs: a script is refused whole, not half run.
            for stmt in &statements {
                crate::auth::authorize(role, stmt)?;
            }
            let mut results = Vec::with_capacity(statements.len());
            for stmt in &statements {
                let outcome = self
                    .exec
                    .execute_with(stmt, &req.properties)
                    .await
                    .map_err(|e| {
                        tracing::info!(error = %e.message, "statement failed");
                        from_exec(e)
                    })?;
                results.push(pb::StatementResult {
                    statement: stmt.text.clone(),
                    message: outcome.message,
                    columns: outcome
                        .columns
                        .iter()
                        .map(|(n, t)| column(n, t, ""))
                        .collect(),
                    rows: outcome.rows.iter().map(|r| row_to_proto(r)).collect(),
                    query_id: outcome.query_id,
                    position: outcome.appended.as_ref().map_or(0, |a| a.seq),
                    version: outcome.appended.as_ref().and_then(|a| a.version),
                    duplicate: outcome.appended.as_ref().is_some_and(|a| a.duplicate),
                });
            }
            Ok(Response::new(pb::ExecuteResponse { results }))
        }
        .instrument(span)
        .await
    }

    type QueryStream = BoxStream<pb::QueryResponse>;

    async fn query(
        &self,
        request: Request<pb::QueryRequest>,
    ) -> Result<Response<Self::QueryStream>, Status> {
        let role = request.extensions().get::<Role>().copied();
        let peer = request.remote_addr();
        let req = request.into_inner();
        let span =
            tracing::info_span!("query", request_id = next_request_id(), sql = %truncate(&req.sql));
        // Instrumented, not entered: a guard held across an await leaves the span entered on
        // whichever thread polls next, and under load tracing then panics on a closed span.
        let response = self.run_query(req, role, peer).instrument(span).await;
        self.draining(response)
    }

    type PullStream = BoxStream<pb::PullResponse>;

    async fn pull(
        &self,
        request: Request<Streaming<pb::PullRequest>>,
    ) -> Result<Response<Self::PullStream>, Status> {
        let mut input = request.into_inner();
        let exec = self.exec.clone();
        let limits = self.limits.clone();
        let (out_tx, out) = mpsc::channel::<Result<pb::PullResponse, Status>>(256);
        tokio::spawn(
            async move {
                let mut served = 0u64;
                let mut cache = PullCache::default();
                while let Some(msg) = input.next().await {
                    let req = match msg {
                        Ok(r) => r,
                        Err(e) => {
                            tracing::info!(error = %e, "pull stream ended by the client");
                            break;
                        }
                    };
                    let mut resp = pb::PullResponse {
                        id: req.id,
                        ..Default::default()
                    };
                    let outcome = match limits.check_statement(&req.sql) {
                        Ok(()) => run_one_pull(&exec, &mut cache, &req).await,
                        Err(status) => Err(ExecError::new(
                            sluice_database::ErrorCode::InvalidArgument,
                            status.message(),
                        )),
                    };
                    match outcome {
                        Ok((columns, rows)) => {
                            resp.columns = columns;
                            resp.rows = rows.iter().map(|r| row_to_proto(r)).collect();
                        }
                        Err(e) => {
                            tracing::debug!(id = req.id, error = %e.message, "pull failed");
                            resp.error_code = grpc_code(e.code) as i32;
                            resp.error = e.message;
                        }
                    }
                    served += 1;
                    if out_tx.send(Ok(resp)).await.is_err() {
                        break;
                    }
                }
                tracing::debug!(served, "pull stream closed");
            }
            .instrument(tracing::info_span!(
                "pull_stream",
                request_id = next_request_id()
            )),
        );
        self.draining(Ok(Response::new(Box::pin(ReceiverStream::new(out)))))
    }

    type BulkInsertStream = BoxStream<pb::BulkInsertResponse>;

    async fn bulk_insert(
        &self,
        request: Request<Streaming<pb::BulkInsertRequest>>,
    ) -> Result<Response<Self::BulkInsertStream>, Status> {
        let mut input = request.into_inner();
        let exec = self.exec.clone();
        let limits = self.limits.clone();
        // Commits are pipelined: a batch is queued for the next group commit while earlier
        // ones are still being made durable; acknowledgements go out in order.
        let (ack_tx, mut ack_rx) = mpsc::channel::<(
            u64,
            Result<(sluice_storage::CommitTicket, bool, bool), Status>,
        )>(32);
        let (out_tx, out) = mpsc::channel::<Result<pb::BulkInsertResponse, Status>>(32);
        tokio::spawn(
            async move {
                let mut targets: HashMap<String, Target> = HashMap::new();
                while let Some(msg) = input.next().await {
                    let req = match msg {
                        Ok(r) => r,
                        Err(e) => {
                            tracing::info!(error = %e, "bulk insert stream ended by the client");
                            break;
                        }
                    };
                    let ticket = limits
                        .check_bulk_rows(req.batch_id, req.rows.len())
                        .and_then(|()| prepare_batch(&exec, &mut targets, &req))
                        .map(|p| (exec.log().submit(p.txn), p.versions, p.duplicates));
                    let failed = ticket.is_err();
                    if ack_tx.send((req.batch_id, ticket)).await.is_err() || failed {
                        break;
                    }
                }
            }
            .instrument(tracing::info_span!(
                "bulk_insert",
                request_id = next_request_id()
            )),
        );
        tokio::spawn(async move {
            while let Some((batch_id, ticket)) = ack_rx.recv().await {
                let reply = match ticket {
                    Err(status) => Err(status),
                    Ok((t, versions, duplicates)) => match t.appended().await {
                        Ok(acks) => Ok(pb::BulkInsertResponse {
                            batch_id,
                            rows: acks.len() as u64,
                            partitions: acks.iter().map(|a| a.partition as i32).collect(),
                            offsets: acks.iter().map(|a| a.offset as i64).collect(),
                            versions: if versions {
                                acks.iter().map(|a| a.version.unwrap_or(0)).collect()
                            } else {
                                vec![]
                            },
                            duplicates: if duplicates {
                                acks.iter().map(|a| a.duplicate).collect()
                            } else {
                                vec![]
                            },
                            position: acks.iter().map(|a| a.seq).max().unwrap_or(0),
                        }),
                        Err(e) => {
                            let mut status = from_exec(ExecError::from(e));
                            if status.code() == tonic::Code::Aborted {
                                status = crate::status::status(
                                    tonic::Code::Aborted,
                                    format!("batch {batch_id}: {}", status.message()),
                                );
                            }
                            Err(status)
                        }
                    },
                };
                let stop = reply.is_err();
                if out_tx.send(reply).await.is_err() || stop {
                    break;
                }
            }
        });
        self.draining(Ok(Response::new(Box::pin(ReceiverStream::new(out)))))
    }

    async fn produce(
        &self,
        request: Request<pb::ProduceRequest>,
    ) -> Result<Response<pb::ProduceResponse>, Status> {
        let req = request.into_inner();
        let span = tracing::info_span!("produce", request_id = next_request_id(), topic = %req.topic, records = req.records.len());
        async move {
            let topic = self
                .exec
                .log()
                .topic(&req.topic)
                .ok_or_else(|| crate::status::status(tonic::Code::NotFound, format!("Topic '{}' does not exist", req.topic)))?;
            let mut txn = Txn::new();
            let now = now_ms();
            for (i, r) in req.records.into_iter().enumerate() {
                let partition = match r.partition {
                    Some(p) if p < 0 || p as u32 >= topic.partitions => {
                        return Err(crate::status::status(tonic::Code::OutOfRange, format!("record {i}: partition {p} does not exist; topic '{}' has {} partitions", topic.name, topic.partitions)));
                    }
                    Some(p) => p as u32,
                    None => topic.partition_for(r.key.as_deref()),
                };
                let record = Record {
                    key: r.key,
                    value: r.value,
                    timestamp: r.timestamp.filter(|t| *t != 0).unwrap_or(now),
                    headers: r.headers.into_iter().map(|h| (h.key, h.value)).collect(),
                };
                txn.append(&topic, partition, record);
            }
            let appended = self.exec.log().submit(txn).appended().await.or_status()?;
            Ok(Response::new(pb::ProduceResponse {
                position: appended.iter().map(|a| a.seq).max().unwrap_or(0),
                positions: appended.into_iter().map(|a| pb::RecordPosition { partition: a.partition as i32, offset: a.offset as i64 }).collect(),
            }))
        }
        .instrument(span)
        .await
    }

    type ConsumeStream = BoxStream<pb::ConsumeResponse>;

    async fn consume(
        &self,
        request: Request<pb::ConsumeRequest>,
    ) -> Result<Response<Self::ConsumeStream>, Status> {
        let req = request.into_inner();
        let log = self.exec.log().clone();
        let topic = log.topic(&req.topic).ok_or_else(|| {
            crate::status::status(
                tonic::Code::NotFound,
                format!("Topic '{}' does not exist", req.topic),
            )
        })?;
        if req.partition < 0 || req.partition as u32 >= topic.partitions {
            return Err(crate::status::status(
                tonic::Code::OutOfRange,
                format!(
                    "partition {} does not exist; topic '{}' has {} partitions",
                    req.partition, topic.name, topic.partitions
                ),
            ));
        }
        let partition = req.partition as u32;
        let mut next = if req.offset < 0 {
            topic.end_offset(partition)
        } else {
            req.offset as u64
        };
        let (tx, out) = mpsc::channel(16);
        tokio::spawn(async move {
            let mut changed = topic.subscribe();
            let mut sent = 0u64;
            loop {
                changed.borrow_and_update();
                let want = if req.max_records > 0 {
                    (req.max_records - sent).min(500) as usize
                } else {
                    500
                };
                let records = match log.read(&topic, partition, next, want) {
                    Ok(r) => r,
                    Err(e) => {
                        let _ = tx
                            .send(Err(crate::status::status(
                                tonic::Code::Internal,
                                e.to_string(),
                            )))
                            .await;
                        return;
                    }
                };
                if let Some(last) = records.last() {
                    next = last.offset + 1;
                    sent += records.len() as u64;
                    let msg = pb::ConsumeResponse {
                        records: records
                            .into_iter()
                            .map(|r| pb::ConsumedRecord {
                                partition: r.partition as i32,
                                offset: r.offset as i64,
                                timestamp: r.record.timestamp,
                                key: r.record.key,
                                value: r.record.value,
                                headers: r
                                    .record
                                    .headers
                                    .into_iter()
                                    .map(|(k, v)| pb::RecordHeader { key: k, value: v })
                                    .collect(),
                            })
                            .collect(),
                    };
                    if tx.send(Ok(msg)).await.is_err() {
                        return;
                    }
                    if req.max_records > 0 && sent >= req.max_records {
                        return;
                    }
                    continue;
                }
                if !req.follow {
                    return;
                }
                tokio::select! {
                    r = changed.changed() => if r.is_err() { return },
                    _ = tx.closed() => return,
                }
            }
        });
        self.draining(Ok(Response::new(Box::pin(ReceiverStream::new(out)))))
    }
}

/// A bulk-insert target resolved once per stream: its definition, topic and column map.
struct Target {
    /// The catalog version `def` was read at: after any DDL the target is looked up
    /// again, so a dropped or re-created stream is not written with its old definition.
    version: u64,
    def: sluice_common::SourceDef,
    topic: Arc<sluice_storage::Topic>,
    /// For each request column, its index in the schema.
    positions: Vec<usize>,
    columns_key: Vec<String>,
}

fn prepare_batch(
    exec: &Executor,
    targets: &mut HashMap<String, Target>,
    req: &pb::BulkInsertRequest,
) -> Result<Prepared, Status> {
    let name = if req.target.starts_with('`') {
        req.target.trim_matches('`').to_string()
    } else {
        req.target.to_ascii_uppercase()
    };
    // Read before the definition: a change in between leaves an older version beside a
    // newer definition, which only costs one more lookup.
    let version = exec.catalog_version();
    let stale = targets
        .get(&name)
        .is_none_or(|t| t.columns_key != req.columns || t.version != version);
    if stale {
        let def = exec.source(&name).ok_or_else(|| {
            crate::status::status(tonic::Code::NotFound, format!("{name} does not exist."))
        })?;
        if let Some(refusal) = def.insert_refusal() {
            return Err(crate::status::status(tonic::Code::InvalidArgument, refusal));
        }
        let topic = exec.log().topic(&def.topic).ok_or_else(|| {
            crate::status::status(
                tonic::Code::Internal,
                format!("topic {} is missing", def.topic),
            )
        })?;
        let positions = if req.columns.is_empty() {
            (0..def.schema.len()).collect()
        } else {
            let mut v = Vec::with_capacity(req.columns.len());
            for c in &req.columns {
                let n = if c.starts_with('`') {
                    c.trim_matches('`').to_string()
                } else {
                    c.to_ascii_uppercase()
                };
                v.push(def.schema.index_of(&n).ok_or_else(|| {
                    crate::status::status(
                        tonic::Code::InvalidArgument,
                        format!("Column name {n} does not exist in {name}."),
                    )
                })?);
            }
            v
        };
        targets.insert(
            name.clone(),
            Target {
                version,
                def,
                topic,
                positions,
                columns_key: req.columns.clone(),
            },
        );
    }
    let target = targets.get(&name).ok_or_else(|| {
        crate::status::status(tonic::Code::Internal, "bulk insert target vanished")
    })?;
    let rows = req.rows.len();
    for (field, len) in [
        ("event_ids", req.event_ids.len()),
        ("expected_versions", req.expected_versions.len()),
    ] {
        if len != 0 && len != rows {
            return Err(crate::status::status(
                tonic::Code::InvalidArgument,
                format!(
                    "batch {}: {field} has {len} entries for {rows} rows; give one per row or none",
                    req.batch_id
                ),
            ));
        }
    }
    let checked = !req.event_ids.is_empty() || !req.expected_versions.is_empty();
    if !req.expected_versions.is_empty() && !target.topic.is_indexed() {
        return Err(crate::status::status(
            tonic::Code::FailedPrecondition,
            format!(
                "batch {}: expected_versions needs {}'s events indexed by key, which Sluice does for streams declared with CREATE STREAM",
                req.batch_id, target.def.name
            ),
        ));
    }
    let now = now_ms();
    let mut txn = Txn::new();
    if !req.expected_versions.is_empty() {
        txn.want_versions();
    }
    let width = target.def.schema.len();
    for (ri, r) in req.rows.iter().enumerate() {
        if r.values.len() != target.positions.len() {
            return Err(crate::status::status(
                tonic::Code::InvalidArgument,
                format!(
                    "batch {}: row {ri} has {} values, expected {}",
                    req.batch_id,
                    r.values.len(),
                    target.positions.len()
                ),
            ));
        }
        // Not `vec![Value::Null; width]`: that clones through `Value::clone` per cell
        // (2% of ingest's server CPU).
        let mut row: Vec<Value> = (0..width).map(|_| Value::Null).collect();
        for (v, &idx) in r.values.iter().zip(&target.positions) {
            let col = &target.def.schema.columns[idx];
            row[idx] = from_proto(v, &col.data_type).map_err(|e| {
                crate::status::status(
                    tonic::Code::InvalidArgument,
                    format!("batch {}: row {ri}, column {}: {e}", req.batch_id, col.name),
                )
            })?;
        }
        let record = encode_row_record(&target.def, &row, now, false).map_err(|e| {
            crate::status::status(
                tonic::Code::InvalidArgument,
                format!("batch {}: row {ri}: {e}", req.batch_id),
            )
        })?;
        let partition = target.topic.partition_for(record.key.as_deref());
        if !checked {
            txn.append(&target.topic, partition, record);
            continue;
        }
        let event_id = match req.event_ids.get(ri).map(String::as_str) {
            None | Some("") => None,
            Some(id) if id.len() > sluice_planner::insert::MAX_EVENT_ID_BYTES => {
                return Err(crate::status::status(
                    tonic::Code::InvalidArgument,
                    format!(
                        "batch {}: row {ri}: event id is {} bytes, more than the limit of {}",
                        req.batch_id,
                        id.len(),
                        sluice_planner::insert::MAX_EVENT_ID_BYTES
                    ),
                ));
            }
            Some(id) => Some(id.as_bytes().to_vec()),
        };
        let expected_version = match req.expected_versions.get(ri).copied() {
            None | Some(-1) => None,
            Some(v) if v < 0 => {
                return Err(crate::status::status(
                    tonic::Code::InvalidArgument,
                    format!(
                        "batch {}: row {ri}: expected version {v} is negative (-1 means no check)",
                        req.batch_id
                    ),
                ));
            }
            Some(v) => {
                if record.key.is_none() {
                    return Err(crate::status::status(
                        tonic::Code::InvalidArgument,
                        format!(
                            "batch {}: row {ri}: an expected version needs a key, but the row's key is NULL",
                            req.batch_id
                        ),
                    ));
                }
                Some(v as u64)
            }
        };
        txn.append_checked(
            &target.topic,
            partition,
            record,
            sluice_storage::AppendCheck {
                event_id,
                expected_version,
            },
        );
    }
    Ok(Prepared {
        txn,
        versions: !req.expected_versions.is_empty(),
        duplicates: !req.event_ids.is_empty(),
    })
}

/// A BulkInsert request ready to commit, and which optional fields its acknowledgement has.
struct Prepared {
    txn: Txn,
    versions: bool,
    duplicates: bool,
}

fn truncate(sql: &str) -> String {
    if sql.len() > 200 {
        let mut end = 200;
        while !sql.is_char_boundary(end) {
            end -= 1;
        }
        format!("{}...", &sql[..end])
    } else {
        sql.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(n: i64) -> PushEvent {
        PushEvent::Row {
            row: vec![Value::BigInt(n)],
            partition: 0,
            offset: n as u64,
            position: n as u64 + 1,
            tombstone: false,
        }
    }

    fn stream(events: Vec<PushEvent>, per_message: u32) -> PushRows {
        let (tx, rx) = mpsc::channel(64);
        for ev in events {
            tx.try_send(ev).expect("room in the channel");
        }
        drop(tx);
        let limits = crate::limits::Limits::default();
        let slot = crate::limits::PushCount::default()
            .acquire(&limits, None)
            .expect("a push slot");
        PushRows::new(rx, "q".into(), slot, per_message)
    }

    /// Each message's rows as their offsets, and the final message's row count (None:
    /// an error ended the stream).
    async fn messages(rows: PushRows) -> (Vec<Vec<u64>>, Option<u64>) {
        let all: Vec<_> = rows.collect().await;
        let mut out = Vec::new();
        let mut last = None;
        for m in all {
            match m.map(|m| m.kind) {
                Ok(Some(pb::query_response::Kind::Row(r))) => out.push(vec![r.offset as u64]),
                Ok(Some(pb::query_response::Kind::Rows(rs))) => {
                    out.push(rs.rows.iter().map(|r| r.offset as u64).collect())
                }
                Ok(Some(pb::query_response::Kind::Final(f))) => last = Some(f.rows),
                Err(_) => last = None,
                other => panic!("unexpected {other:?}"),
            }
        }
        (out, last)
    }

    #[tokio::test]
    async fn ready_rows_are_packed_up_to_the_bound_and_the_final_message_follows_them() {
        let mut events: Vec<PushEvent> = (0..7).map(row).collect();
        events.insert(
            3,
            PushEvent::Skipped {
                partition: 0,
                offset: 99,
                message: "bad record".into(),
            },
        );
        events.push(PushEvent::LimitReached);
        let (msgs, last) = messages(stream(events, 3)).await;
        // A skipped record leaves no gap in a message; the final message is not swallowed
        // by the message being filled when it arrived, and counts every row.
        assert_eq!(msgs, vec![vec![0, 1, 2], vec![3, 4, 5], vec![6]]);
        assert_eq!(last, Some(7));
    }

    #[tokio::test]
    async fn without_max_rows_per_message_each_row_is_its_own_query_row() {
        let events: Vec<PushEvent> = (0..3).map(row).chain([PushEvent::LimitReached]).collect();
        for per_message in [0, 1] {
            let all: Vec<_> = stream(events.clone(), per_message).collect().await;
            assert!(
                all[..3].iter().all(|m| matches!(
                    m.as_ref().map(|m| &m.kind),
                    Ok(Some(pb::query_response::Kind::Row(_)))
                )),
                "{all:?}"
            );
            let (msgs, last) = messages(stream(events.clone(), per_message)).await;
            assert_eq!(msgs, vec![vec![0], vec![1], vec![2]]);
            assert_eq!(last, Some(3));
        }
    }

    #[tokio::test]
    async fn a_failure_after_packed_rows_ends_the_stream_with_its_error() {
        let mut events: Vec<PushEvent> = (0..2).map(row).collect();
        events.push(PushEvent::Failed {
            message: "disk gone".into(),
            kind: sluice_engine::FailureKind::Internal,
        });
        let all: Vec<_> = stream(events, 100).collect().await;
        assert_eq!(all.len(), 2, "{all:?}");
        assert!(matches!(
            all[0].as_ref().map(|m| &m.kind),
            Ok(Some(pb::query_response::Kind::Rows(rs))) if rs.rows.len() == 2
        ));
        let e = all[1].as_ref().expect_err("the failure");
        assert!(e.message().contains("disk gone"), "{e:?}");
    }

    #[tokio::test]
    async fn a_message_stops_taking_rows_at_its_byte_bound() {
        let big = "x".repeat(MAX_ROWS_MESSAGE_BYTES / 4);
        let events: Vec<PushEvent> = (0..10)
            .map(|n| PushEvent::Row {
                row: vec![Value::String(big.clone())],
                partition: 0,
                offset: n,
                position: n + 1,
                tombstone: false,
            })
            .collect();
        let (msgs, _) = messages(stream(events, 512)).await;
        // Each row is a little over a quarter of the bound: the fourth reaches it.
        assert_eq!(msgs, vec![vec![0, 1, 2, 3], vec![4, 5, 6, 7], vec![8, 9]]);
    }
}
