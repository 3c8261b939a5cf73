//! Statement execution: the catalog, DDL, inserts, query lifecycle. The gRPC layer calls
//! into this; nothing here knows about the wire format beyond result tables.

use crate::error::{ErrorCode, ExecError};
use sluice_common::{
    Column, ColumnRole, DataType, FormatKind, FormatSpec, QueryDef, Replacement, Schema, SourceDef,
    SourceKind, Value,
};
use sluice_engine::{Engine, PROCESSING_LOG_TOPIC, encode_row_record};
use sluice_plan::{AggregatePushPlan, PullPlan, PushPlan, QueryPlan};
use sluice_planner::pull::{PreparedPull, PullKind};
use sluice_planner::query::{NewIds, OutputColumn, PushKind, plan_create_as, plan_insert_select};
use sluice_planner::{Catalog, PlanError, PlanErrorKind, QueryConfig};
use sluice_sql::{ExplainTarget, Name, Select, ShowWhat, Statement, StatementKind};
use sluice_storage::{Cf, EmbeddedLog, Log, Txn};
use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

mod recovery;
mod replace;
mod show;
use recovery::replan;
use show::describe_function;

/// How long a read-your-writes pull waits for its view by default, and the request
/// property that changes it.
pub const DEFAULT_PULL_WAIT: std::time::Duration = std::time::Duration::from_secs(10);
pub const PULL_WAIT_PROPERTY: &str = "sluice.pull.wait.timeout.ms";

/// The wait a request's properties ask for (`sluice.pull.wait.timeout.ms`), else the
/// default; a value that is no number of milliseconds is an error naming the property.
pub fn pull_wait_timeout(
    properties: &std::collections::HashMap<String, String>,
) -> Result<std::time::Duration, ExecError> {
    let Some((_, v)) = properties
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(PULL_WAIT_PROPERTY))
    else {
        return Ok(DEFAULT_PULL_WAIT);
    };
    v.trim()
        .parse::<u64>()
        .map(std::time::Duration::from_millis)
        .map_err(|_| {
            ExecError::invalid(format!(
                "Invalid value '{v}' for property {PULL_WAIT_PROPERTY}: a number of milliseconds is expected"
            ))
        })
}

/// Key lookups a pull query may do on the async worker itself (see `run_pull`).
const INLINE_LOOKUPS: usize = 16;

/// Name of the stream over the processing log (record-level errors of queries).
pub const PROCESSING_LOG_STREAM: &str = "SLUICE_PROCESSING_LOG";
const SYSTEM_SOURCE_ID: u64 = 0;

/// A planned SELECT: its transient query id, output columns and plan.
pub struct PlannedQuery {
    pub id: String,
    pub columns: Vec<OutputColumn>,
    pub kind: QueryKind,
    /// The settings it was planned with: the server's, with the request's overrides.
    pub config: QueryConfig,
}

pub enum QueryKind {
    /// A pull query on a table.
    Pull(PullPlan),
    /// A pull query on a stream: what its topic holds now (its keys' events, by the index,
    /// when the WHERE clause pins the key).
    StreamPull(sluice_plan::StreamPullPlan),
    Push(PushPlan),
    /// An aggregating push query: a transient aggregation.
    AggregatePush(AggregatePushPlan),
}

/// Most state entries (groups, windows with their index entries, a table's source rows)
/// an aggregating push query keeps in memory; past that it fails rather than grow
/// without bound.
pub const TRANSIENT_AGGREGATION_GROUPS: usize = 100_000;

fn next_query_number() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

pub fn transient_id() -> String {
    format!("transient_{}", next_query_number())
}

/// ksqlDB names scalable push queries `SCALABLE_PUSH_QUERY_<id>`.
fn scalable_push_id() -> String {
    format!("SCALABLE_PUSH_QUERY_{}", next_query_number())
}

/// The outcome of one statement, as a message and an optional table.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    pub message: String,
    pub columns: Vec<(String, String)>,
    pub rows: Vec<Vec<Value>>,
    pub query_id: String,
    /// INSERT: how the event was acknowledged.
    pub appended: Option<sluice_storage::Appended>,
}

impl Outcome {
    fn message(m: impl Into<String>) -> Outcome {
        Outcome {
            message: m.into(),
            ..Outcome::default()
        }
    }
}

#[derive(Default)]
struct CatalogState {
    sources: BTreeMap<String, SourceDef>,
    queries: BTreeMap<String, QueryDef>,
    /// Replacements being built (CREATE OR REPLACE ... AS SELECT), by sink name.
    replacements: BTreeMap<String, Replacement>,
    /// CREATE TYPE aliases.
    types: BTreeMap<String, DataType>,
    next_id: u64,
    /// Bumped whenever the catalog is taken for writing, so plans cached across requests
    /// (prepared pull queries) know to re-plan.
    version: u64,
}

impl Catalog for CatalogState {
    fn source(&self, name: &str) -> Option<SourceDef> {
        self.sources.get(name).cloned()
    }

    fn source_names(&self) -> Vec<String> {
        self.sources.keys().cloned().collect()
    }
}

pub struct Executor {
    pub engine: Arc<Engine>,
    log: Arc<EmbeddedLog>,
    catalog: Arc<RwLock<CatalogState>>,
    /// Serializes catalog changes so check-then-write is atomic.
    ddl: Arc<tokio::sync::Mutex<()>>,
    /// How many replacements (CREATE OR REPLACE ... AS SELECT) are still being built.
    replacing: Arc<tokio::sync::watch::Sender<usize>>,
    /// What one pull query may take (rows, bytes, time).
    pub pull_limits: sluice_plan::PullLimits,
    /// The server's pull and push query settings; requests may override them.
    pub query_config: QueryConfig,
}

fn processing_log_source() -> SourceDef {
    let col = |n: &str, t: DataType| Column {
        name: n.into(),
        data_type: t,
        role: ColumnRole::Value,
    };
    SourceDef {
        id: SYSTEM_SOURCE_ID,
        name: PROCESSING_LOG_STREAM.into(),
        kind: SourceKind::Stream,
        schema: Schema::new(vec![
            col("QUERY_ID", DataType::String),
            col("TOPIC", DataType::String),
            col("PARTITION", DataType::Int),
            col("OFFSET", DataType::BigInt),
            col("MESSAGE", DataType::String),
        ]),
        topic: PROCESSING_LOG_TOPIC.into(),
        key_format: FormatSpec::new(FormatKind::None),
        value_format: FormatSpec::new(FormatKind::Json),
        timestamp_column: None,
        timestamp_format: None,
        headers: Vec::new(),
        written_by: None,
        sql: String::new(),
        read_only: false,
        window: None,
    }
}

/// The catalog for writing, its version bumped (see `CatalogState::version`).
fn write_catalog(catalog: &RwLock<CatalogState>) -> std::sync::RwLockWriteGuard<'_, CatalogState> {
    let mut cat = catalog.write().unwrap_or_else(|p| p.into_inner());
    cat.version += 1;
    cat
}

fn json_err(e: serde_json::Error) -> ExecError {
    ExecError::internal(format!("catalog encoding: {e}"))
}

impl Executor {
    /// Loads the catalog and restarts every materializer and persistent query.
    pub async fn open(
        log: Arc<EmbeddedLog>,
        pull_limits: sluice_plan::PullLimits,
    ) -> Result<Executor, ExecError> {
        let engine = Arc::new(Engine::new(log.clone())?);
        let mut state = CatalogState::default();
        // One unreadable catalog entry must not keep the database from starting: it is
        // reported (and a query listed in ERROR) while everything else starts.
        let entry_name = |k: &[u8], prefix: &str| {
            String::from_utf8_lossy(k.get(prefix.len()..).unwrap_or_default()).into_owned()
        };
        let mut unreadable_queries = Vec::new();
        for (k, v) in log.scan_prefix(Cf::Catalog, b"source/")? {
            match serde_json::from_slice::<SourceDef>(&v) {
                Ok(def) => {
                    state.sources.insert(def.name.clone(), def);
                }
                Err(e) => tracing::error!(
                    source = %entry_name(&k, "source/"),
                    "catalog entry unreadable, source not loaded: {e}"
                ),
            }
        }
        for (k, v) in log.scan_prefix(Cf::Catalog, b"query/")? {
            match serde_json::from_slice::<QueryDef>(&v) {
                Ok(def) => {
                    state.queries.insert(def.id.clone(), def);
                }
                Err(e) => unreadable_queries.push((
                    entry_name(&k, "query/"),
                    format!("its catalog entry is unreadable: {e}"),
                )),
            }
        }
        for (k, v) in log.scan_prefix(Cf::Catalog, b"replace/")? {
            match serde_json::from_slice::<Replacement>(&v) {
                Ok(r) => {
                    state.replacements.insert(r.sink.name.clone(), r);
                }
                Err(e) => unreadable_queries.push((
                    entry_name(&k, "replace/"),
                    format!("its replacement's catalog entry is unreadable: {e}"),
                )),
            }
        }
        for (k, v) in log.scan_prefix(Cf::Catalog, b"type/")? {
            let name = entry_name(&k, "type/");
            match serde_json::from_slice(&v) {
                Ok(t) => {
                    state.types.insert(name, t);
                }
                Err(e) => {
                    tracing::error!(r#type = %name, "catalog entry unreadable, type not loaded: {e}")
                }
            }
        }
        state.next_id = match log.get(Cf::Catalog, b"meta/next_id")? {
            Some(b) if b.len() == 8 => {
                u64::from_be_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]])
            }
            _ => 1,
        };
        // Declared streams of a database from before the event-store index: index their
        // topics now, once (their existing events included).
        let mut txn = Txn::new();
        for def in state.sources.values() {
            if def.kind == SourceKind::Stream
                && def.written_by.is_none()
                && let Some(topic) = log.topic(&def.topic)
                && !topic.is_indexed()
            {
                txn.index_topic(&topic);
            }
        }
        if !txn.is_empty() {
            log.submit(txn).wait().await?;
        }
        state
            .sources
            .insert(PROCESSING_LOG_STREAM.into(), processing_log_source());
        let exec = Executor {
            engine,
            log,
            catalog: Arc::new(RwLock::new(state)),
            ddl: Arc::new(tokio::sync::Mutex::new(())),
            replacing: Arc::new(tokio::sync::watch::channel(0).0),
            pull_limits,
            query_config: QueryConfig::default(),
        };
        for (id, reason) in unreadable_queries {
            exec.engine.register_failed(&id, reason);
        }
        exec.restart_all();
        Ok(exec)
    }

    pub fn log(&self) -> &Arc<EmbeddedLog> {
        &self.log
    }

    /// An unknown source, with ksqlDB's hint when the name exists in another case.
    fn not_found(&self, name: &Name) -> ExecError {
        let catalog = self.catalog.read().unwrap_or_else(|p| p.into_inner());
        PlanError::at_name(
            sluice_planner::unknown_source_message(&*catalog, &name.value),
            name,
        )
        .with_kind(PlanErrorKind::NotFound)
        .into()
    }

    pub fn source(&self, name: &str) -> Option<SourceDef> {
        self.catalog
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .sources
            .get(name)
            .cloned()
    }

    /// Parses SQL with the registered CREATE TYPE aliases resolvable. (A script that
    /// creates a type and uses it must send them as separate statements.)
    pub fn parse(&self, sql: &str) -> Result<Vec<Statement>, sluice_sql::ParseError> {
        let types = self
            .catalog
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .types
            .clone();
        sluice_sql::with_type_aliases(&types, || sluice_sql::parse(sql))
    }

    /// The CREATE TYPE aliases a statement's text resolves, with their current types.
    fn types_used(&self, sql: &str) -> BTreeMap<String, DataType> {
        let types = self
            .catalog
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .types
            .clone();
        sluice_sql::with_type_aliases_used(&types, || sluice_sql::parse(sql)).1
    }

    pub fn catalog_snapshot(&self) -> BTreeMap<String, SourceDef> {
        self.catalog
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .sources
            .clone()
    }

    /// Plans a SELECT the way the Query RPC runs it: a push query with EMIT CHANGES, else
    /// a pull query, with the request's `properties` over the server's settings. The Query
    /// RPC and `sluice test` both call this so they run the same plans.
    pub fn plan_query(
        &self,
        select: &Select,
        properties: &std::collections::HashMap<String, String>,
    ) -> Result<PlannedQuery, ExecError> {
        let config = self.query_config.with_overrides(properties);
        let cat = self.catalog.read().unwrap_or_else(|p| p.into_inner());
        if select.emit_changes {
            let (kind, columns) = sluice_planner::query::plan_push(select, &*cat)?;
            let mut plan = match kind {
                PushKind::Plain(plan) => plan,
                PushKind::Aggregate(plan) => {
                    return Ok(PlannedQuery {
                        id: transient_id(),
                        columns,
                        kind: QueryKind::AggregatePush(plan),
                        config,
                    });
                }
            };
            let writers = cat
                .queries
                .values()
                .filter(|q| q.sink == plan.source.name)
                .count();
            let scalable = sluice_planner::query::is_scalable_push(select, &config, writers);
            plan.skip_null_keys = scalable;
            Ok(PlannedQuery {
                id: if scalable {
                    scalable_push_id()
                } else {
                    transient_id()
                },
                columns,
                kind: QueryKind::Push(plan),
                config,
            })
        } else {
            let planned =
                sluice_planner::pull::plan_pull(select, &*cat, &config, self.pull_limits)?;
            Ok(PlannedQuery {
                id: transient_id(),
                columns: planned.columns,
                kind: match planned.kind {
                    PullKind::Table(plan) => QueryKind::Pull(plan),
                    PullKind::Stream(plan) => QueryKind::StreamPull(plan),
                },
                config,
            })
        }
    }

    /// Read your writes: waits until what a pull query reads reflects log `position`
    /// (see `Engine::await_position`). Push queries do not wait (they read from where
    /// they start), and position 0 means no wait.
    pub async fn await_position(
        &self,
        kind: &QueryKind,
        position: u64,
        timeout: std::time::Duration,
    ) -> Result<(), ExecError> {
        let source = match kind {
            _ if position == 0 => return Ok(()),
            QueryKind::Pull(plan) => &plan.table,
            QueryKind::StreamPull(plan) => &plan.scan.source,
            QueryKind::Push(_) | QueryKind::AggregatePush(_) => return Ok(()),
        };
        let span = tracing::debug_span!("await_position", source = %source.name, position);
        use tracing::Instrument;
        Ok(self
            .engine
            .await_position(source, position, timeout)
            .instrument(span)
            .await?)
    }

    /// Runs a pull query on a stream to the end and returns its rows (at most the pull
    /// row cap, else an error). Callers that can stream rows use `Engine::scan_stream`.
    pub async fn collect_stream_pull(
        &self,
        plan: sluice_plan::StreamPullPlan,
    ) -> Result<Vec<Vec<Value>>, ExecError> {
        let mut rx = self.engine.scan_stream(plan, self.pull_limits)?;
        let mut rows = Vec::new();
        while let Some(ev) = rx.recv().await {
            match ev {
                sluice_engine::ScanEvent::Row(r) => rows.push(r),
                sluice_engine::ScanEvent::Done { .. } => break,
                sluice_engine::ScanEvent::Failed(e) => return Err(e.into()),
            }
        }
        Ok(rows)
    }

    /// Runs a pull plan. A few key lookups run in place: point reads served from the
    /// memtable or block cache take microseconds, less than handing the work to the
    /// blocking pool and back (two thread wake-ups). Ranges and scans, which may read many
    /// blocks from disk, run off the async workers.
    pub async fn run_pull(&self, plan: PullPlan) -> Result<Vec<Vec<Value>>, ExecError> {
        if matches!(&plan.access, sluice_plan::PullAccess::Keys(k) if k.len() <= INLINE_LOOKUPS) {
            return Ok(self.engine.pull(&plan)?);
        }
        let engine = self.engine.clone();
        let rows = tokio::task::spawn_blocking(move || engine.pull(&plan))
            .await
            .map_err(|e| ExecError::internal(e.to_string()))??;
        Ok(rows)
    }

    fn catalog_write(&self) -> std::sync::RwLockWriteGuard<'_, CatalogState> {
        write_catalog(&self.catalog)
    }

    /// Prepares a pull query with `?` parameters for repeated execution (see
    /// `sluice_planner::query::prepare_pull`), with the catalog version it was planned
    /// against. `None` when the query's shape has no prepared form, or does not plan:
    /// the ordinary path then reports the error.
    pub fn prepare_pull(&self, select: &Select) -> (u64, Option<PreparedPull>) {
        let cat = self.catalog.read().unwrap_or_else(|p| p.into_inner());
        let prepared =
            sluice_planner::pull::prepare_pull(select, &*cat, &self.query_config, self.pull_limits)
                .ok()
                .flatten();
        (cat.version, prepared)
    }

    pub fn catalog_version(&self) -> u64 {
        self.catalog
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .version
    }

    /// Plans a CREATE ... AS SELECT under new ids (allocated in `txn`): the query and its
    /// sink, and the query's catalog entry.
    fn plan_create_as(
        &self,
        stmt: &Statement,
        properties_in: &std::collections::HashMap<String, String>,
        txn: &mut Txn,
    ) -> Result<(sluice_planner::query::PlannedQuery, QueryDef), ExecError> {
        let StatementKind::CreateAs {
            kind,
            name,
            properties,
            query,
            ..
        } = &stmt.kind
        else {
            return Err(ExecError::internal("not a CREATE ... AS SELECT"));
        };
        let cfg = sluice_planner::SessionConfig::from_properties(properties_in);
        let first = self.alloc_ids(2, txn);
        let prefix = if *kind == SourceKind::Stream {
            "CSAS"
        } else {
            "CTAS"
        };
        let query_id = format!("{prefix}_{}_{}", name.value, first + 1);
        let ids = NewIds {
            sink_id: first,
            query_num: first + 1,
            query_id: query_id.clone(),
        };
        let planned = {
            let cat = self.catalog.read().unwrap_or_else(|p| p.into_inner());
            plan_create_as(ids, *kind, name, properties, query, &*cat, &stmt.text, &cfg)?
        };
        if planned.plan.source.id == SYSTEM_SOURCE_ID
            && planned.plan.source.name != PROCESSING_LOG_STREAM
        {
            return Err(ExecError::internal("source id collision"));
        }
        let qdef = QueryDef {
            id: query_id,
            num: planned.plan.num,
            sql: stmt.text.clone(),
            sink: planned.sink.name.clone(),
            sources: planned
                .plan
                .inputs()
                .iter()
                .map(|s| s.name.clone())
                .collect(),
            properties: stored_properties(properties_in),
            types: Some(self.types_used(&stmt.text)),
            state_layout: Some(sluice_engine::state_layout_for(&planned.plan)),
            state_version: sluice_engine::STATE_VERSION,
        };
        Ok((planned, qdef))
    }

    fn alloc_ids(&self, n: u64, txn: &mut Txn) -> u64 {
        let mut cat = self.catalog_write();
        let first = cat.next_id;
        cat.next_id += n;
        txn.put(
            Cf::Catalog,
            b"meta/next_id".to_vec(),
            cat.next_id.to_be_bytes().to_vec(),
        );
        first
    }

    pub async fn execute(&self, stmt: &Statement) -> Result<Outcome, ExecError> {
        self.execute_with(stmt, &std::collections::HashMap::new())
            .await
    }

    /// Runs a statement with request properties (e.g. `ksql.persistence.default.format.value`).
    pub async fn execute_with(
        &self,
        stmt: &Statement,
        properties: &std::collections::HashMap<String, String>,
    ) -> Result<Outcome, ExecError> {
        let properties_in = properties;
        let cfg = sluice_planner::SessionConfig::from_properties(properties);
        match &stmt.kind {
            StatementKind::CreateSource {
                kind,
                name,
                or_replace,
                if_not_exists,
                read_only,
                columns,
                properties,
            } => {
                let _guard = self.ddl.lock().await;
                let replaces_read_only = self.source(&name.value).is_some_and(|e| e.read_only);
                if *or_replace && (*read_only || replaces_read_only) {
                    let k = kind.to_string().to_lowercase();
                    return Err(ExecError::invalid(format!(
                        "Cannot add {k} '{}': CREATE OR REPLACE is not supported on source {k}s.",
                        name.value
                    )));
                }
                if let Some(existing) = self.source(&name.value) {
                    if *if_not_exists {
                        return Ok(Outcome::message(format!(
                            "{} {} already exists",
                            existing.kind, name.value
                        )));
                    }
                    if !*or_replace || existing.kind != *kind {
                        return Err(exists(&existing, name));
                    }
                }
                let mut txn = Txn::new();
                let id = self.alloc_ids(1, &mut txn);
                let (mut def, partitions) = sluice_planner::ddl::plan_create_source(
                    id, *kind, name, columns, properties, &stmt.text, &cfg,
                )?;
                def.read_only = *read_only;
                if let Some(existing) = self.source(&name.value) {
                    // CREATE OR REPLACE: only a compatible redefinition keeps the source's state.
                    if existing.schema != def.schema || existing.topic != def.topic {
                        return Err(ExecError::invalid(format!(
                            "Cannot replace {} {}: changing its columns or topic is not supported",
                            existing.kind, name.value
                        )));
                    }
                    def.id = existing.id;
                }
                let topic = match self.log.topic(&def.topic) {
                    Some(t) => {
                        if let Some(p) = partitions
                            && p != t.partitions
                        {
                            return Err(ExecError::new(
                                ErrorCode::FailedPrecondition,
                                format!(
                                    "A Kafka topic with the name '{}' already exists, with different partition count. Expected partitions: {p}, actual partitions: {}",
                                    def.topic, t.partitions
                                ),
                            ));
                        }
                        t
                    }
                    None => self.log.create_topic(&def.topic, partitions.unwrap_or(1))?,
                };
                if def.kind == SourceKind::Stream {
                    // A declared stream is an event store: its events are indexed by key
                    // (history and versions), in the same commit as its definition.
                    txn.index_topic(&topic);
                }
                txn.put(
                    Cf::Catalog,
                    format!("source/{}", def.name).into_bytes(),
                    serde_json::to_vec(&def).map_err(json_err)?,
                );
                self.log.submit(txn).wait().await?;
                let replaced = self
                    .catalog_write()
                    .sources
                    .insert(def.name.clone(), def.clone());
                if def.kind == SourceKind::Table && replaced.is_none() {
                    self.engine.start_materializer(def.clone())?;
                }
                Ok(Outcome::message(format!(
                    "{} created",
                    if *kind == SourceKind::Stream {
                        "Stream"
                    } else {
                        "Table"
                    }
                )))
            }
            StatementKind::CreateAs {
                name,
                or_replace,
                if_not_exists,
                ..
            } => {
                let _guard = self.ddl.lock().await;
                if let Some(existing) = self.source(&name.value) {
                    if *if_not_exists {
                        return Ok(Outcome::message(format!(
                            "{} {} already exists",
                            existing.kind, name.value
                        )));
                    }
                    if !*or_replace {
                        return Err(exists(&existing, name));
                    }
                    return self.replace_query(existing, stmt, properties_in).await;
                }
                let mut txn = Txn::new();
                let (planned, qdef) = self.plan_create_as(stmt, properties_in, &mut txn)?;
                let query_id = qdef.id.clone();
                let source_topic = self
                    .log
                    .topic(&planned.plan.inputs()[0].topic)
                    .ok_or_else(|| ExecError::internal("source topic missing"))?;
                let partitions = planned.partitions.unwrap_or(source_topic.partitions);
                if let Some(t) = self.log.topic(&planned.sink.topic)
                    && t.partitions != partitions
                {
                    return Err(ExecError::new(
                        ErrorCode::FailedPrecondition,
                        format!(
                            "A Kafka topic with the name '{}' already exists, with different partition count. Expected partitions: {partitions}, actual partitions: {}",
                            planned.sink.topic, t.partitions
                        ),
                    ));
                }
                self.log.create_topic(&planned.sink.topic, partitions)?;
                // The sink's topic exists, the catalog does not know it yet.
                sluice_common::crash::point("ddl.after_topic");
                txn.put(
                    Cf::Catalog,
                    format!("source/{}", planned.sink.name).into_bytes(),
                    serde_json::to_vec(&planned.sink).map_err(json_err)?,
                );
                txn.put(
                    Cf::Catalog,
                    format!("query/{query_id}").into_bytes(),
                    serde_json::to_vec(&qdef).map_err(json_err)?,
                );
                self.log.submit(txn).wait().await?;
                // In the catalog, but its query not started and the client not answered.
                sluice_common::crash::point("ddl.after_catalog");
                let qdef_layout = qdef.state_layout;
                {
                    let mut cat = self.catalog_write();
                    cat.sources
                        .insert(planned.sink.name.clone(), planned.sink.clone());
                    cat.queries.insert(query_id.clone(), qdef);
                }
                self.engine.start_stored_query(planned.plan, qdef_layout)?;
                Ok(Outcome {
                    message: format!("Created query with ID {query_id}"),
                    query_id,
                    ..Outcome::default()
                })
            }
            StatementKind::InsertSelect { target, query } => {
                let _guard = self.ddl.lock().await;
                let target_def = self
                    .source(&target.value)
                    .ok_or_else(|| self.not_found(target))?;
                if target_def.read_only && target_def.kind == SourceKind::Stream {
                    return Err(ExecError::invalid(format!(
                        "Cannot insert into read-only stream: {}",
                        target_def.name
                    )));
                }
                let mut txn = Txn::new();
                let num = self.alloc_ids(1, &mut txn);
                let query_id = format!("INSERTQUERY_{num}");
                let plan = {
                    let cat = self.catalog.read().unwrap_or_else(|p| p.into_inner());
                    plan_insert_select(
                        NewIds {
                            sink_id: target_def.id,
                            query_num: num,
                            query_id: query_id.clone(),
                        },
                        &target_def,
                        query,
                        &*cat,
                        &cfg,
                    )?
                };
                let qdef = QueryDef {
                    id: query_id.clone(),
                    num,
                    sql: stmt.text.clone(),
                    sink: target_def.name.clone(),
                    sources: plan.inputs().iter().map(|s| s.name.clone()).collect(),
                    properties: stored_properties(properties_in),
                    types: Some(self.types_used(&stmt.text)),
                    state_layout: Some(sluice_engine::state_layout_for(&plan)),
                    state_version: sluice_engine::STATE_VERSION,
                };
                let qdef_layout = qdef.state_layout;
                txn.put(
                    Cf::Catalog,
                    format!("query/{query_id}").into_bytes(),
                    serde_json::to_vec(&qdef).map_err(json_err)?,
                );
                self.log.submit(txn).wait().await?;
                self.catalog_write().queries.insert(query_id.clone(), qdef);
                self.engine.start_stored_query(plan, qdef_layout)?;
                Ok(Outcome {
                    message: format!("Created query with ID {query_id}"),
                    query_id,
                    ..Outcome::default()
                })
            }
            StatementKind::InsertValues {
                target,
                columns,
                values,
                properties,
            } => {
                let def = self
                    .source(&target.value)
                    .ok_or_else(|| self.not_found(target))?;
                if def.id == SYSTEM_SOURCE_ID {
                    return Err(ExecError::invalid(format!(
                        "Cannot insert into {}: it is written by Sluice itself",
                        def.name
                    )));
                }
                if let Some(refusal) = def.insert_refusal() {
                    return Err(ExecError::invalid(refusal));
                }
                let row = sluice_planner::insert::plan_insert_values(
                    &def,
                    target,
                    columns.as_deref(),
                    values,
                )?;
                let options =
                    sluice_planner::insert::plan_insert_options(&def, target, properties)?;
                let ts = row.rowtime.unwrap_or_else(now_ms);
                let record = encode_row_record(&def, &row.row, ts, false)?;
                let topic = self.log.topic(&def.topic).ok_or_else(|| {
                    ExecError::internal(format!("topic {} is missing", def.topic))
                })?;
                let key_text = || {
                    row.row[..def.schema.key_count()]
                        .iter()
                        .map(|v| v.to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                };
                if let Some(expected) = options.expected_version {
                    if !topic.is_indexed() {
                        return Err(ExecError::new(
                            ErrorCode::FailedPrecondition,
                            format!(
                                "EXPECTED_VERSION needs {}'s events indexed by key, which Sluice does for streams declared with CREATE STREAM; {} is written by a query",
                                def.name, def.name
                            ),
                        ));
                    }
                    if record.key.is_none() {
                        return Err(ExecError::invalid(format!(
                            "EXPECTED_VERSION = {expected} needs a key, but the inserted key is NULL"
                        )));
                    }
                }
                let partition = topic.partition_for(record.key.as_deref());
                let mut txn = Txn::new();
                txn.want_versions();
                txn.append_checked(
                    &topic,
                    partition,
                    record,
                    sluice_storage::AppendCheck {
                        event_id: options.event_id.map(String::into_bytes),
                        expected_version: options.expected_version,
                    },
                );
                let appended = match self.log.submit(txn).appended().await {
                    Ok(a) => a,
                    Err(sluice_storage::StorageError::Conflict(c)) => {
                        return Err(ExecError::new(
                            ErrorCode::Aborted,
                            format!(
                                "Wrong expected version for key {} of {}: expected {}, actual {}",
                                key_text(),
                                def.name,
                                c.expected,
                                c.actual
                            ),
                        ));
                    }
                    Err(e) => return Err(e.into()),
                };
                Ok(Outcome {
                    appended: appended.into_iter().next(),
                    ..Outcome::default()
                })
            }
            StatementKind::Delete { target, selection } => {
                let def = self
                    .source(&target.value)
                    .ok_or_else(|| self.not_found(target))?;
                if def.kind != sluice_common::SourceKind::Table {
                    return Err(ExecError::invalid(format!(
                        "Cannot delete from {}: it is a stream, whose events are never deleted (DELETE deletes rows of a table)",
                        def.name
                    )));
                }
                if def.read_only || def.id == SYSTEM_SOURCE_ID {
                    return Err(ExecError::invalid(format!(
                        "Cannot delete from read-only table {}",
                        def.name
                    )));
                }
                if let Some(query) = &def.written_by {
                    return Err(ExecError::invalid(format!(
                        "Cannot delete from {}: its rows are what query {query} computes; delete from the tables it reads instead",
                        def.name
                    )));
                }
                let keys = sluice_planner::delete::plan_delete_keys(&def, selection)?;
                let topic = self.log.topic(&def.topic).ok_or_else(|| {
                    ExecError::internal(format!("topic {} is missing", def.topic))
                })?;
                // A tombstone per key: the table's materializer and every view over the
                // table retract the row, as they do for a tombstone produced to the topic.
                let ts = now_ms();
                let mut txn = Txn::new();
                for key in &keys {
                    let mut row = key.clone();
                    row.resize(def.schema.len(), sluice_common::Value::Null);
                    let record = encode_row_record(&def, &row, ts, true)?;
                    let partition = topic.partition_for(record.key.as_deref());
                    txn.append(&topic, partition, record);
                }
                if !keys.is_empty() {
                    self.log.submit(txn).wait().await?;
                }
                Ok(Outcome::message(format!(
                    "Deleted {} key{} from {}",
                    keys.len(),
                    if keys.len() == 1 { "" } else { "s" },
                    def.name
                )))
            }
            StatementKind::Alter { kind, name, .. } => {
                let def = self
                    .source(&name.value)
                    .ok_or_else(|| self.not_found(name))?;
                let k = kind.to_string().to_lowercase();
                if def.kind != *kind {
                    return Err(ExecError::invalid(format!(
                        "Incompatible data source type is {}, but statement was ALTER {kind}",
                        def.kind
                    )));
                }
                if def.read_only {
                    return Err(ExecError::invalid(format!(
                        "Cannot alter {k} '{}': ALTER operations are not supported on source {k}s.",
                        def.name
                    )));
                }
                Err(ExecError::new(
                    ErrorCode::Unimplemented,
                    "ALTER ... ADD COLUMN is not supported yet",
                ))
            }
            StatementKind::Show(what) => Ok(self.show(what)),
            StatementKind::Describe { name, extended } => self.describe(name, *extended),
            StatementKind::DescribeFunction(name) => describe_function(name),
            StatementKind::Explain(target) => self.explain(target),
            StatementKind::Drop {
                kind,
                name,
                if_exists,
                delete_topic,
            } => {
                let _guard = self.ddl.lock().await;
                let Some(def) = self.source(&name.value) else {
                    if *if_exists {
                        return Ok(Outcome::message(format!(
                            "{kind} {} does not exist",
                            name.value
                        )));
                    }
                    let kind = if *kind == SourceKind::Stream {
                        "Stream"
                    } else {
                        "Table"
                    };
                    let message = {
                        let catalog = self.catalog.read().unwrap_or_else(|p| p.into_inner());
                        sluice_planner::unknown_source_message(&*catalog, &name.value)
                    };
                    return Err(ExecError::new(
                        ErrorCode::NotFound,
                        format!("{kind} {message}"),
                    ));
                };
                if def.kind != *kind {
                    return Err(ExecError::invalid(format!(
                        "Incompatible data source type is {}, but statement was DROP {kind}",
                        def.kind
                    )));
                }
                if def.id == SYSTEM_SOURCE_ID {
                    return Err(ExecError::new(
                        ErrorCode::FailedPrecondition,
                        format!("Cannot drop {}: it is a system stream", def.name),
                    ));
                }
                if *delete_topic && def.read_only {
                    return Err(ExecError::invalid(format!(
                        "Cannot delete topic for read-only source: {}",
                        def.name
                    )));
                }
                if *delete_topic {
                    return Err(ExecError::new(
                        ErrorCode::Unimplemented,
                        "DROP ... DELETE TOPIC is not supported yet; drop without DELETE TOPIC keeps the topic",
                    ));
                }
                let (readers, writers) = {
                    let cat = self.catalog.read().unwrap_or_else(|p| p.into_inner());
                    let readers: Vec<String> = cat
                        .queries
                        .values()
                        .filter(|q| q.sources.contains(&def.name))
                        .map(|q| q.id.clone())
                        .collect();
                    let writers: Vec<String> = cat
                        .queries
                        .values()
                        .filter(|q| q.sink == def.name)
                        .map(|q| q.id.clone())
                        .collect();
                    (readers, writers)
                };
                if !readers.is_empty() || !writers.is_empty() {
                    let mut msg = format!("Cannot drop {}.", def.name);
                    if !readers.is_empty() {
                        msg.push_str(&format!(
                            "\nThe following queries read from this source: [{}].",
                            readers.join(", ")
                        ));
                    }
                    if !writers.is_empty() {
                        msg.push_str(&format!(
                            "\nThe following queries write into this source: [{}].",
                            writers.join(", ")
                        ));
                    }
                    msg.push_str("\nYou need to terminate them before dropping ");
                    msg.push_str(&def.name);
                    msg.push('.');
                    return Err(ExecError::new(ErrorCode::FailedPrecondition, msg));
                }
                if def.kind == SourceKind::Table {
                    self.engine.stop_materializer(def.id).await;
                }
                let mut txn = Txn::new();
                txn.delete(Cf::Catalog, format!("source/{}", def.name).into_bytes());
                self.log.submit(txn).wait().await?;
                self.catalog_write().sources.remove(&def.name);
                Ok(Outcome::message(format!(
                    "Source `{}` (topic: {}) was dropped.",
                    def.name, def.topic
                )))
            }
            StatementKind::Terminate(target) => {
                let _guard = self.ddl.lock().await;
                // A replacement still being built is cancelled by its id; terminating the
                // query it would replace (or all queries) cancels it too.
                let replacing: Vec<(String, String, String)> = self
                    .catalog
                    .read()
                    .unwrap_or_else(|p| p.into_inner())
                    .replacements
                    .values()
                    .map(|r| (r.sink.name.clone(), r.query.id.clone(), r.replaces.clone()))
                    .collect();
                if let Some(id) = target
                    && let Some((sink, new_id, old_id)) = replacing
                        .iter()
                        .find(|(_, new_id, _)| new_id.eq_ignore_ascii_case(&id.value))
                {
                    self.cancel_replacement(sink).await?;
                    return Ok(Outcome::message(format!(
                        "Query terminated: {new_id} no longer replaces {old_id}, which goes on writing {sink}."
                    )));
                }
                for (sink, _, old_id) in &replacing {
                    if target
                        .as_ref()
                        .is_none_or(|id| old_id.eq_ignore_ascii_case(&id.value))
                    {
                        self.cancel_replacement(sink).await?;
                    }
                }
                let ids: Vec<String> = match target {
                    Some(id) => {
                        let cat = self.catalog.read().unwrap_or_else(|p| p.into_inner());
                        let found = cat
                            .queries
                            .keys()
                            .find(|k| k.eq_ignore_ascii_case(&id.value))
                            .cloned();
                        let materializes = cat.sources.values().find(|d| {
                            d.kind == SourceKind::Table
                                && d.written_by.is_none()
                                && sluice_engine::materializer_id(&d.name)
                                    .eq_ignore_ascii_case(&id.value)
                        });
                        match (found, materializes) {
                            (Some(k), _) => vec![k],
                            (None, Some(table)) => {
                                return Err(ExecError::new(
                                    ErrorCode::FailedPrecondition,
                                    format!(
                                        "{} keeps table {}'s store current and stops when the table is dropped (DROP TABLE {}).",
                                        id.value, table.name, table.name
                                    ),
                                ));
                            }
                            (None, None) => {
                                return Err(ExecError::new(
                                    ErrorCode::NotFound,
                                    format!("Unknown queryId: {}", id.value),
                                ));
                            }
                        }
                    }
                    None => self
                        .catalog
                        .read()
                        .unwrap_or_else(|p| p.into_inner())
                        .queries
                        .keys()
                        .cloned()
                        .collect(),
                };
                for id in &ids {
                    self.engine.stop_query(id).await;
                    let mut txn = Txn::new();
                    txn.delete(Cf::Catalog, format!("query/{id}").into_bytes());
                    let sink = self
                        .catalog
                        .read()
                        .unwrap_or_else(|p| p.into_inner())
                        .queries
                        .get(id)
                        .map(|q| q.sink.clone());
                    if let Some(mut s) = sink
                        .and_then(|s| self.source(&s))
                        .filter(|s| s.written_by.as_deref() == Some(id.as_str()))
                    {
                        s.written_by = None;
                        txn.put(
                            Cf::Catalog,
                            format!("source/{}", s.name).into_bytes(),
                            serde_json::to_vec(&s).map_err(json_err)?,
                        );
                        self.catalog_write().sources.insert(s.name.clone(), s);
                    }
                    self.log.submit(txn).wait().await?;
                    self.catalog_write().queries.remove(id);
                }
                Ok(Outcome::message(if ids.len() == 1 {
                    format!("Query {} terminated.", ids[0])
                } else {
                    format!("{} queries terminated.", ids.len())
                }))
            }
            StatementKind::CreateType {
                name,
                data_type,
                if_not_exists,
            } => {
                let _guard = self.ddl.lock().await;
                if let Some(existing) = self
                    .catalog
                    .read()
                    .unwrap_or_else(|p| p.into_inner())
                    .types
                    .get(&name.value)
                {
                    if *if_not_exists {
                        return Ok(Outcome::message(format!(
                            "Type {} already exists",
                            name.value
                        )));
                    }
                    return Err(ExecError::new(
                        ErrorCode::AlreadyExists,
                        format!(
                            "Cannot register custom type '{}' since it is already registered with type: {existing}",
                            name.value
                        ),
                    ));
                }
                let mut txn = Txn::new();
                txn.put(
                    Cf::Catalog,
                    format!("type/{}", name.value).into_bytes(),
                    serde_json::to_vec(data_type).map_err(json_err)?,
                );
                self.log.submit(txn).wait().await?;
                self.catalog_write()
                    .types
                    .insert(name.value.clone(), data_type.clone());
                Ok(Outcome::message(format!(
                    "Registered custom type with name '{}' and SQL type {data_type}",
                    name.value
                )))
            }
            StatementKind::DropType { name, if_exists } => {
                let _guard = self.ddl.lock().await;
                let known = self
                    .catalog
                    .read()
                    .unwrap_or_else(|p| p.into_inner())
                    .types
                    .contains_key(&name.value);
                if !known {
                    if *if_exists {
                        return Ok(Outcome::message(format!(
                            "Type {} does not exist",
                            name.value
                        )));
                    }
                    return Err(ExecError::new(
                        ErrorCode::NotFound,
                        format!("Type {} does not exist.", name.value),
                    ));
                }
                let users: Vec<String> = {
                    let cat = self.catalog.read().unwrap_or_else(|p| p.into_inner());
                    cat.queries
                        .values()
                        .filter(|q| match &q.types {
                            Some(used) => used.contains_key(&name.value),
                            // Recorded by no entry: does the statement need the type?
                            None => sluice_sql::with_type_aliases_used(&cat.types, || {
                                sluice_sql::parse(&q.sql)
                            })
                            .1
                            .contains_key(&name.value),
                        })
                        .map(|q| q.id.clone())
                        .collect()
                };
                if !users.is_empty() {
                    return Err(ExecError::new(
                        ErrorCode::FailedPrecondition,
                        format!(
                            "Cannot drop type '{}': the following queries use it: [{}]. Terminate them first.",
                            name.value,
                            users.join(", ")
                        ),
                    ));
                }
                let mut txn = Txn::new();
                txn.delete(Cf::Catalog, format!("type/{}", name.value).into_bytes());
                self.log.submit(txn).wait().await?;
                self.catalog_write().types.remove(&name.value);
                Ok(Outcome::message(format!("Dropped type '{}'", name.value)))
            }
            StatementKind::Set { key, value } => Ok(Outcome::message(format!(
                "Property '{key}' set to '{value}' for this request"
            ))),
            StatementKind::Unset { key } => Ok(Outcome::message(format!("Property '{key}' unset"))),
            StatementKind::Select(_) | StatementKind::Print { .. } => Err(ExecError::new(
                ErrorCode::InvalidArgument,
                "SELECT and PRINT stream rows: run them with the Query RPC (the shell does this for you)",
            )),
        }
    }
}

fn exists(existing: &SourceDef, name: &Name) -> ExecError {
    let kind = existing.kind.to_string().to_lowercase();
    let e = PlanError::at_name(
        format!(
            "Cannot add {kind} '{}': A {kind} with the same name already exists",
            name.value
        ),
        name,
    )
    .with_kind(PlanErrorKind::AlreadyExists);
    e.into()
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// The request properties a persistent query is stored with (sorted, for a stable
/// catalog entry).
fn stored_properties(
    properties: &std::collections::HashMap<String, String>,
) -> BTreeMap<String, String> {
    properties
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}
