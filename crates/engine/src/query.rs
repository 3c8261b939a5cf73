//! Persistent queries and table materializers: long-running workers that read a source
//! topic in batches and commit each batch's effects atomically.

use crate::cache::{Budget, StateCache};
use crate::changelog::{self, Overlay, StateLog};
use crate::keys::{
    agg_key, join_prefix, join_time_key, offset_key, source_row_key, stream_time_key, table_prefix,
};
use crate::operator::{Change, Cx, Env, Pipeline, StateLayout, in_sink_row_layout};
use crate::rows::{SourceRow, decode_record};
use crate::state::{BatchState, StateStore};
use crate::{EngineError, PROCESSING_LOG_TOPIC, Result};
use sluice_common::{SourceDef, SourceKind, StateLayoutKind, Value};
use sluice_expr::AggKind;
use sluice_plan::{Operator, QueryPlan};
use sluice_storage::{Cf, EmbeddedLog, Log, StoredRecord, Topic, Txn};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::Instrument;

/// Records read per partition per batch: large enough to amortize the commit, small enough
/// to keep a batch's memory and latency low.
pub(crate) const BATCH: usize = 2048;

#[derive(Default)]
pub(crate) struct Stats {
    pub processed: AtomicU64,
    pub errors: AtomicU64,
    /// Records dropped for arriving after their window's grace period.
    pub late: AtomicU64,
    pub failed: Mutex<Option<String>>,
}

#[derive(Debug, Clone)]
pub struct QueryStatus {
    pub id: String,
    pub state: String,
    pub processed: u64,
    pub errors: u64,
    /// Records dropped for arriving after their window closed (the grace period).
    pub late: u64,
    /// Records in the source not yet processed.
    pub lag: u64,
}

pub(crate) struct Running {
    stop: watch::Sender<bool>,
    /// Whether it emits, or builds in the shadow of the query it is to replace.
    pub(crate) mode: Arc<watch::Sender<Mode>>,
    handle: JoinHandle<()>,
    stats: Arc<Stats>,
    /// Each input's topic, with the committed positions of all their partitions in
    /// input order.
    sources: Vec<Arc<Topic>>,
    pub(crate) positions: watch::Receiver<Vec<u64>>,
    /// The topic it appends to (queries; a materializer writes only its store).
    sink: Option<String>,
    /// Its id in SHOW QUERIES.
    label: String,
    /// The key ranges of its state, for its size ([`crate::keys::worker_state_ranges`]).
    state_ranges: Vec<crate::keys::KeyRange>,
    /// The table whose rows it writes, if any, and its overlay (registered for pulls).
    overlay: (Option<u64>, Arc<Overlay>),
}

/// How a worker runs: live, or as the replacement of a running query (see `replace.rs`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Mode {
    /// Reads everything its inputs hold and appends its output records to its sink topic.
    Live,
    /// Builds its state and store but appends nothing to its sink topic, and reads no
    /// input partition past the position given for it (in [`slots`] order): those of the
    /// query it replaces, which goes on emitting meanwhile.
    Shadow(Vec<u64>),
}

/// What read-your-writes needs of a running worker (see `freshness.rs`).
pub(crate) struct Watched {
    pub(crate) label: String,
    pub(crate) sink: Option<String>,
    pub(crate) sources: Vec<Arc<Topic>>,
    pub(crate) positions: watch::Receiver<Vec<u64>>,
    pub(crate) failed: Option<String>,
}

/// Whom a read waits for, in [`Engine::watched`]'s order: the query with this id or the
/// materializer of this source table.
pub(crate) enum WorkerRef<'a> {
    Query(&'a str),
    Materializer(u64),
}

/// Runs and tracks every persistent query and table materializer of one server.
pub struct Engine {
    log: Arc<EmbeddedLog>,
    pub(crate) proc_log: Arc<Topic>,
    pub(crate) queries: Mutex<HashMap<String, Running>>,
    materializers: Mutex<HashMap<u64, Running>>,
    /// Memory for aggregate state kept by all queries together.
    state_cache_budget: Budget,
    /// Stored rows pull queries have read, matching or not (a measure of their cost).
    pub(crate) pull_rows_read: AtomicU64,
    /// Queries that could not be started (their stored definition no longer plans, say),
    /// with the reason: listed in ERROR, so one bad query never stops the server's start.
    failed: Mutex<HashMap<String, String>>,
    /// Each table's rows changed since its writer's last checkpoint, by the table's
    /// source id, for pull queries (see [`crate::changelog`]).
    pub(crate) overlays: RwLock<HashMap<u64, Arc<Overlay>>>,
    /// Memory for state changes not yet checkpointed, all workers together.
    checkpoint_budget: changelog::CheckpointBudget,
    /// Each topic's shared reader for the push subscribers following it.
    pub(crate) tails: Arc<crate::tail::Tails>,
}

/// The version of the aggregate state encoding new queries write. State is decoded by
/// position, so a change to what an accumulator keeps in its slots bumps this, and
/// [`state_compatible`] says which older states a plan can still read.
///
/// - 0 and 1: queries stored before versions were recorded, and the first recorded
///   encoding; they encode alike.
/// - 2: STDDEV_SAMP and VARIANCE keep ksqlDB's `(SUM, COUNT, M2)` instead of Welford's
///   `(COUNT, MEAN, M2)`; AVG keeps its sum in the argument's type (an older DOUBLE sum
///   still reads and folds correctly, so AVG alone does not make old state unreadable).
pub const STATE_VERSION: u32 = 2;

/// Whether state written with encoding `version` can be read by `plan`'s accumulators.
/// A state that cannot be is refused rather than misread: the query would otherwise go
/// on from numbers that mean something else, and its results would be silently wrong.
pub fn state_compatible(plan: &QueryPlan, version: u32) -> Result<()> {
    if version > STATE_VERSION {
        return Err(EngineError::Invalid(format!(
            "query {} keeps state written by a newer version of Sluice (state version {version}, this build reads up to {STATE_VERSION})",
            plan.id
        )));
    }
    if version < 2
        && let Operator::Aggregate { aggregates, .. } = &plan.op
        && let Some(call) = aggregates
            .iter()
            .find(|a| matches!(a.kind, AggKind::StddevSamp | AggKind::VarianceSamp))
    {
        return Err(EngineError::Invalid(format!(
            "query {} keeps {} state in the encoding of an older version of Sluice (state version {version}, this build reads 2 and later for it); terminate the query and create it again to recompute it from its source",
            plan.id,
            call.kind.name()
        )));
    }
    Ok(())
}

/// Where a new query would keep its aggregate state.
pub fn state_layout_for(plan: &QueryPlan) -> StateLayoutKind {
    match in_sink_row_layout(plan) {
        Some(_) => StateLayoutKind::InSinkRow,
        None => StateLayoutKind::Separate,
    }
}

enum Kind {
    Query(Arc<QueryPlan>),
    /// Keeps a source table's store current for pull queries.
    Materialize(Box<SourceDef>),
}

/// A topic a worker reads: a query's source, or one side of a join.
struct Input {
    def: SourceDef,
    topic: Arc<Topic>,
    /// The tag of its committed offsets' keys, and what their partition numbers start
    /// at (a join's third input and later share the second's tag).
    tag: u8,
    slot_base: u32,
}

/// A query's inputs, each with the tag and partition range its offsets are kept under: a
/// join's later inputs keep theirs under their own tag, each in its own range.
pub(crate) fn plan_inputs(plan: &QueryPlan) -> Vec<(SourceDef, u8, u32)> {
    plan.inputs()
        .into_iter()
        .enumerate()
        .map(|(k, d)| match k {
            0 => (d.clone(), b'O', 0),
            k => (d.clone(), b'R', (k as u32 - 1) << 16),
        })
        .collect()
}

/// The committed positions of worker `id` over `inputs` (tag, partition base, topic), in
/// [`slots`] order: where it resumes, 0 where it has committed none.
pub(crate) fn committed_positions(
    log: &EmbeddedLog,
    inputs: &[(u8, u32, &Topic)],
    id: u64,
    label: &str,
) -> Result<Vec<u64>> {
    let mut positions = Vec::new();
    for (tag, base, topic) in inputs {
        for p in 0..topic.partitions {
            positions.push(match log.get(Cf::State, &offset_key(*tag, id, base + p))? {
                Some(b) if b.len() == 8 => {
                    u64::from_be_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]])
                }
                Some(_) => {
                    return Err(EngineError::Invalid(format!(
                        "corrupt committed offset for {label}"
                    )));
                }
                None => 0,
            });
        }
    }
    Ok(positions)
}

/// Where each input's partitions sit in the worker's positions: `(input, partition)`
/// in input order.
fn slots(inputs: &[Input]) -> Vec<(usize, u32)> {
    inputs
        .iter()
        .enumerate()
        .flat_map(|(i, input)| (0..input.topic.partitions).map(move |p| (i, p)))
        .collect()
}

struct Worker {
    log: Arc<EmbeddedLog>,
    kind: Kind,
    inputs: Vec<Input>,
    sink: Option<Arc<Topic>>,
    /// The next offset to read of every partition of every input, as [`slots`] orders them.
    positions: Vec<u64>,
    /// Live, or a shadow bounded by the positions of the query it replaces.
    mode: watch::Receiver<Mode>,
    /// Committed aggregate state, to spare RocksDB reads.
    cache: StateCache,
    /// The state changes committed since the last checkpoint, and their changelog.
    statelog: StateLog,
    /// Whether the cache has been loaded with the query's committed state.
    warmed: bool,
    /// The key prefixes of the state the cache holds (see [`BatchState`]).
    cached: Vec<Vec<u8>>,
    /// The query's operators, built with the state layout once the state is loaded.
    pipeline: Option<Pipeline>,
    /// What the operators need of the worker: its processing log and counters.
    env: Env,
    /// Where an aggregation keeps its groups' state (decided when the cache is loaded).
    layout: StateLayout,
    /// The layout recorded with the query when it was created, if it was.
    stored_layout: Option<StateLayoutKind>,
    /// Records whose processing panicked, by (slot, offset), with the panic's
    /// message: the batch is redone without them, and they go to the processing log. An
    /// entry is dropped once the committed positions have passed it.
    poison: HashMap<(u32, u64), String>,
    /// A windowed aggregation's committed stream time per partition of its groups (the
    /// highest ROWTIME seen there; `i64::MIN` before any).
    stream_times: Vec<i64>,
    /// EMIT FINAL: per partition, the close time up to which windows have been emitted
    /// (`i64::MIN` before any emission).
    last_emits: Vec<i64>,
    /// Each stream-stream join's committed stream time of each side, two per join by
    /// nesting depth: the highest record time seen there (`i64::MIN` before any). A
    /// join's stream time is the higher of its two.
    join_times: Vec<i64>,
}

/// One processed batch, ready to commit: the transaction, the source positions it moves
/// to, its record count, the encoded aggregate states it writes (for the cache once
/// durable) and all its state changes (for the overlay once durable), and the stream
/// times it moves to.
type Step = (
    Txn,
    Vec<u64>,
    u64,
    (crate::state::CacheUpdates, Vec<changelog::Change>),
    (Vec<i64>, Vec<i64>, Vec<i64>),
);

impl Engine {
    pub fn new(log: Arc<EmbeddedLog>) -> Result<Engine> {
        let proc_log = log.create_topic(PROCESSING_LOG_TOPIC, 1)?;
        Ok(Engine {
            log,
            proc_log,
            queries: Mutex::new(HashMap::new()),
            materializers: Mutex::new(HashMap::new()),
            state_cache_budget: Budget::from_env(),
            pull_rows_read: AtomicU64::new(0),
            failed: Mutex::new(HashMap::new()),
            overlays: RwLock::new(HashMap::new()),
            checkpoint_budget: changelog::CheckpointBudget::from_env(),
            tails: Arc::default(),
        })
    }

    pub fn log(&self) -> &Arc<EmbeddedLog> {
        &self.log
    }

    /// Topics whose caught-up push subscribers share one reader now (see [`crate::tail`]).
    pub fn push_shared_readers(&self) -> usize {
        self.tails.count()
    }

    /// Stored rows read by pull queries since start, matching their WHERE clause or not.
    pub fn pull_rows_read(&self) -> u64 {
        self.pull_rows_read.load(Ordering::Relaxed)
    }

    /// Starts a persistent query; it resumes from its committed offsets, or reads from the
    /// source's earliest offset on first start. Its state layout is decided from what is
    /// stored; see [`Engine::start_stored_query`].
    pub fn start_query(&self, plan: QueryPlan) -> Result<()> {
        self.start_stored_query(plan, None)
    }

    /// Starts a persistent query whose state layout was recorded when it was created.
    /// Refuses a plan that can no longer keep state where the stored state is.
    pub fn start_stored_query(
        &self,
        plan: QueryPlan,
        layout: Option<StateLayoutKind>,
    ) -> Result<()> {
        self.start_in_mode(plan, layout, Mode::Live)
    }

    /// Starts a persistent query live, or in the shadow of another (see `replace.rs`).
    pub(crate) fn start_in_mode(
        &self,
        plan: QueryPlan,
        layout: Option<StateLayoutKind>,
        mode: Mode,
    ) -> Result<()> {
        if layout == Some(StateLayoutKind::InSinkRow) && in_sink_row_layout(&plan).is_none() {
            return Err(EngineError::Invalid(format!(
                "query {} keeps its aggregate state in the rows of {}, which its plan no longer allows",
                plan.id, plan.sink.name
            )));
        }
        let id = plan.id.clone();
        let num = plan.num;
        // A join's later inputs keep their offsets under their own tag, each in its own
        // range of partition numbers.
        let inputs = plan_inputs(&plan);
        // The sink topic usually exists (created with its PARTITIONS); else it gets the
        // source's partition count.
        let sink = match self.log.topic(&plan.sink.topic) {
            Some(t) => t,
            None => self
                .log
                .create_topic(&plan.sink.topic, self.partitions_of(plan.inputs()[0])?)?,
        };
        let running = self.spawn(
            Kind::Query(Arc::new(plan)),
            inputs,
            Some(sink),
            num,
            &id,
            (layout, mode),
        )?;
        self.failed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&id);
        self.queries
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id, running);
        Ok(())
    }

    /// Starts keeping `table`'s store current from its topic.
    pub fn start_materializer(&self, table: SourceDef) -> Result<()> {
        let id = table.id;
        let label = format!("materialize {}", table.name);
        let running = self.spawn(
            Kind::Materialize(Box::new(table.clone())),
            vec![(table, b'M', 0)],
            None,
            id,
            &label,
            (None, Mode::Live),
        )?;
        self.materializers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id, running);
        Ok(())
    }

    fn partitions_of(&self, def: &SourceDef) -> Result<u32> {
        self.log
            .topic(&def.topic)
            .map(|t| t.partitions)
            .ok_or_else(|| {
                EngineError::Invalid(format!(
                    "topic {} of {} does not exist",
                    def.topic, def.name
                ))
            })
    }

    fn spawn(
        &self,
        kind: Kind,
        inputs: Vec<(SourceDef, u8, u32)>,
        sink: Option<Arc<Topic>>,
        id: u64,
        label: &str,
        (layout, mode): (Option<StateLayoutKind>, Mode),
    ) -> Result<Running> {
        let mut worker_inputs = Vec::with_capacity(inputs.len());
        for (def, tag, slot_base) in inputs {
            let topic = self.log.topic(&def.topic).ok_or_else(|| {
                EngineError::Invalid(format!(
                    "topic {} of {} does not exist",
                    def.topic, def.name
                ))
            })?;
            worker_inputs.push(Input {
                def,
                topic,
                tag,
                slot_base,
            });
        }
        let kept: Vec<(u8, u32, &Topic)> = worker_inputs
            .iter()
            .map(|i| (i.tag, i.slot_base, &*i.topic))
            .collect();
        let positions = committed_positions(&self.log, &kept, id, label)?;
        let sources: Vec<Arc<Topic>> = worker_inputs.iter().map(|i| i.topic.clone()).collect();
        let sink_name = sink.as_ref().map(|t| t.name.clone());
        let label_id = match &kind {
            Kind::Query(p) => p.id.clone(),
            Kind::Materialize(t) => materializer_id(&t.name),
        };
        let (query_num, table) = match &kind {
            Kind::Query(p) => (
                Some(id),
                (p.sink.kind == SourceKind::Table).then_some(p.sink.id),
            ),
            Kind::Materialize(t) => (None, Some(t.id)),
        };
        let state_ranges = crate::keys::worker_state_ranges(query_num, table);
        // Replayed before the worker is registered, so a pull never reads the table
        // without the changes its writer committed since its last checkpoint.
        let statelog = StateLog::recover(
            &self.log,
            crate::keys::changelog_prefix(query_num, table),
            &self.checkpoint_budget,
        )?;
        let overlay = statelog.overlay().clone();
        if let Some(t) = table {
            self.overlays
                .write()
                .unwrap_or_else(|p| p.into_inner())
                .insert(t, overlay.clone());
        }
        let stats = Arc::new(Stats::default());
        let (shared_positions, positions_rx) = watch::channel(positions.clone());
        let env = Env {
            query_id: match &kind {
                Kind::Query(p) => p.id.clone(),
                Kind::Materialize(t) => materializer_id(&t.name),
            },
            source_topic: worker_inputs
                .first()
                .map(|i| i.topic.name.clone())
                .unwrap_or_default(),
            proc_log: self.proc_log.clone(),
            stats: stats.clone(),
        };
        let (mode_tx, mode_rx) = watch::channel(mode);
        let worker = Worker {
            log: self.log.clone(),
            kind,
            inputs: worker_inputs,
            sink,
            positions,
            mode: mode_rx,
            cache: StateCache::new(self.state_cache_budget.clone(), false),
            statelog,
            warmed: false,
            cached: Vec::new(),
            pipeline: None,
            env,
            layout: StateLayout::Separate,
            stored_layout: layout,
            poison: HashMap::new(),
            stream_times: Vec::new(),
            last_emits: Vec::new(),
            join_times: Vec::new(),
        };
        let (stop, stop_rx) = watch::channel(false);
        let span = tracing::info_span!("query", id = %label);
        let handle = tokio::spawn(run(worker, id, stop_rx, shared_positions).instrument(span));
        Ok(Running {
            stop,
            mode: Arc::new(mode_tx),
            handle,
            stats,
            sources,
            positions: positions_rx,
            sink: sink_name,
            label: label_id,
            state_ranges,
            overlay: (table, overlay),
        })
    }

    /// Stops a persistent query and waits for its in-flight batch to finish. Its committed
    /// state and offsets stay in the database; nothing reclaims them yet.
    pub async fn stop_query(&self, id: &str) -> bool {
        let was_failed = self
            .failed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(id)
            .is_some();
        let running = self
            .queries
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(id);
        match running {
            Some(r) => {
                let _ = r.stop.send(true);
                let _ = r.handle.await;
                self.release_overlay(&r.overlay);
                true
            }
            None => was_failed,
        }
    }

    /// Unregisters a stopped worker's overlay once its final checkpoint has emptied it
    /// (else pulls keep reading it: its changes are committed, only not checkpointed).
    fn release_overlay(&self, (table, overlay): &(Option<u64>, Arc<Overlay>)) {
        let Some(t) = table else { return };
        if !overlay.is_empty() {
            return;
        }
        let mut all = self.overlays.write().unwrap_or_else(|p| p.into_inner());
        if all.get(t).is_some_and(|o| Arc::ptr_eq(o, overlay)) {
            all.remove(t);
        }
    }

    /// The overlay of the worker writing table `table`'s rows, if one runs.
    pub(crate) fn overlay_of(&self, table: u64) -> Option<Arc<Overlay>> {
        self.overlays
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&table)
            .cloned()
    }

    /// Records a query that could not be started, so it is listed in ERROR with the
    /// reason instead of missing (or stopping the server's start).
    pub fn register_failed(&self, id: &str, reason: String) {
        tracing::error!(query = %id, "query not started: {reason}");
        self.failed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id.to_string(), reason);
    }

    pub async fn stop_materializer(&self, source_id: u64) {
        let running = self
            .materializers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&source_id);
        if let Some(r) = running {
            let _ = r.stop.send(true);
            let _ = r.handle.await;
            self.release_overlay(&r.overlay);
        }
    }

    /// Stops everything, letting in-flight batches commit.
    pub async fn shutdown(&self) {
        let ids: Vec<String> = self
            .queries
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .keys()
            .cloned()
            .collect();
        for id in ids {
            self.stop_query(&id).await;
        }
        let ids: Vec<u64> = self
            .materializers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .keys()
            .cloned()
            .collect();
        for id in ids {
            self.stop_materializer(id).await;
        }
    }

    pub fn statuses(&self) -> Vec<QueryStatus> {
        let queries = self.queries.lock().unwrap_or_else(|p| p.into_inner());
        let mut out: Vec<QueryStatus> = queries.iter().map(|(id, r)| status(id, r)).collect();
        out.extend(
            self.failed
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .iter()
                .map(|(id, reason)| failed_status(id, reason)),
        );
        out.sort_by(|a, b| a.id.cmp(&b.id));
        out
    }

    /// Each running persistent query's state size: RocksDB's estimate of the bytes its
    /// entries take in table files (compressed, on disk), plus the bytes of the changes
    /// it holds in memory since its last checkpoint. Entries only in a memtable are not
    /// counted (RocksDB's API here sizes files only); they are in the memtable figure.
    pub fn state_sizes(&self) -> Vec<(String, u64)> {
        let ranges: Vec<(String, Vec<crate::keys::KeyRange>, Arc<Overlay>)> = {
            let queries = self.queries.lock().unwrap_or_else(|p| p.into_inner());
            queries
                .iter()
                .map(|(id, r)| (id.clone(), r.state_ranges.clone(), r.overlay.1.clone()))
                .collect()
        };
        // Plus the changes held in memory since the last checkpoint.
        let mut out: Vec<(String, u64)> = ranges
            .into_iter()
            .map(|(id, r, o)| (id, self.log.approximate_state_bytes(&r) + o.bytes() as u64))
            .collect();
        out.sort();
        out
    }

    pub fn status(&self, id: &str) -> Option<QueryStatus> {
        if let Some(reason) = self
            .failed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(id)
        {
            return Some(failed_status(id, reason));
        }
        self.queries
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(id)
            .map(|r| status(id, r))
    }

    /// Every running worker, for read-your-writes, and the index of `start` among them.
    pub(crate) fn watched(&self, start: Option<WorkerRef<'_>>) -> (Vec<Watched>, Option<usize>) {
        // A replacement being built appends nothing, so no read waits for it.
        let watch = |r: &Running| Watched {
            label: r.label.clone(),
            sink: match *r.mode.borrow() {
                Mode::Live => r.sink.clone(),
                Mode::Shadow(_) => None,
            },
            sources: r.sources.clone(),
            positions: r.positions.clone(),
            failed: r
                .stats
                .failed
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone(),
        };
        let queries = self.queries.lock().unwrap_or_else(|p| p.into_inner());
        let materializers = self.materializers.lock().unwrap_or_else(|p| p.into_inner());
        let start = match start {
            Some(WorkerRef::Query(q)) => queries.get(q),
            Some(WorkerRef::Materializer(m)) => materializers.get(&m),
            None => None,
        };
        let all: Vec<&Running> = queries.values().chain(materializers.values()).collect();
        let found = start.and_then(|s| all.iter().position(|r| std::ptr::eq(*r, s)));
        let out = all.into_iter().map(watch).collect();
        (out, found)
    }

    /// Status of a source table's materializer (the worker keeping its store current for
    /// pull queries), under the id its processing-log entries carry.
    pub fn materializer_status(&self, source_id: u64, table: &str) -> Option<QueryStatus> {
        self.materializers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&source_id)
            .map(|r| status(&materializer_id(table), r))
    }

    /// Lag of a source table's materializer (0 when it has none).
    pub fn materializer_lag(&self, source_id: u64) -> u64 {
        self.materializers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&source_id)
            .map_or(0, lag)
    }
}

/// The id a table materializer goes by in SHOW QUERIES and the processing log.
pub fn materializer_id(table: &str) -> String {
    format!("MATERIALIZE_{table}")
}

fn lag(r: &Running) -> u64 {
    let positions = r.positions.borrow();
    let slots = r
        .sources
        .iter()
        .flat_map(|t| (0..t.partitions).map(move |p| (t, p)));
    slots
        .zip(positions.iter())
        .map(|((t, p), pos)| t.end_offset(p).saturating_sub(*pos))
        .sum()
}

fn failed_status(id: &str, reason: &str) -> QueryStatus {
    QueryStatus {
        id: id.to_string(),
        state: format!("ERROR: {reason}"),
        processed: 0,
        errors: 0,
        late: 0,
        lag: 0,
    }
}

fn status(id: &str, r: &Running) -> QueryStatus {
    let failed = r
        .stats
        .failed
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    QueryStatus {
        id: id.to_string(),
        state: match (failed, &*r.mode.borrow()) {
            (Some(e), _) => format!("ERROR: {e}"),
            (None, Mode::Live) => "RUNNING".into(),
            (None, Mode::Shadow(cap)) => format!(
                "CATCHING UP ({} records behind the query it replaces)",
                crate::replace::behind(cap, &r.positions.borrow())
            ),
        },
        processed: r.stats.processed.load(Ordering::Relaxed),
        errors: r.stats.errors.load(Ordering::Relaxed),
        late: r.stats.late.load(Ordering::Relaxed),
        lag: lag(r),
    }
}

async fn run(
    mut worker: Worker,
    id: u64,
    mut stop: watch::Receiver<bool>,
    shared: watch::Sender<Vec<u64>>,
) {
    let mut changed: Vec<_> = worker.inputs.iter().map(|i| i.topic.subscribe()).collect();
    let mut mode = worker.mode.clone();
    let log = worker.log.clone();
    let stats = worker.env.stats.clone();
    loop {
        if *stop.borrow() {
            break;
        }
        // Marked seen before reading, so an append racing with this batch still wakes us.
        for c in &mut changed {
            c.borrow_and_update();
        }
        mode.borrow_and_update();
        let stepped = tokio::task::spawn_blocking(move || {
            // A panic processing one record is caught per record (see `step`); one outside
            // that (loading state, preparing the commit) must not lose the worker either:
            // it becomes a failed batch, retried from the same positions, with the query
            // in ERROR until it succeeds.
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| worker.step(id)))
                .unwrap_or_else(|payload| {
                    worker.warmed = false;
                    Err(EngineError::Invalid(format!(
                        "internal error: {}",
                        panic_message(payload.as_ref())
                    )))
                });
            (worker, r)
        })
        .await;
        let result;
        (worker, result) = match stepped {
            Ok(pair) => pair,
            Err(e) => {
                // Only a cancelled blocking task gets here (the runtime shutting down).
                tracing::error!(error = %e, "query worker lost; query stopped");
                *stats.failed.lock().unwrap_or_else(|p| p.into_inner()) =
                    Some(format!("worker lost: {e}"));
                return;
            }
        };
        match result {
            Ok(Some((txn, positions, n, (states, changes), stream_times))) => {
                match log.submit(txn).wait().await {
                    Ok(_) => {
                        for (key, state) in states.iter().filter_map(|&i| changes.get(i)) {
                            worker.cache.insert(key, state.as_deref());
                        }
                        worker.statelog.committed(changes);
                        (worker.stream_times, worker.last_emits, worker.join_times) = stream_times;
                        worker
                            .poison
                            .retain(|(p, offset), _| *offset >= positions[*p as usize]);
                        worker.positions = positions.clone();
                        shared.send_replace(positions);
                        stats.processed.fetch_add(n, Ordering::Relaxed);
                        *stats.failed.lock().unwrap_or_else(|p| p.into_inner()) = None;
                    }
                    Err(e) => {
                        // Nothing of the batch is durable; retry it from the same positions.
                        tracing::error!(error = %e, "commit failed; retrying the batch");
                        *stats.failed.lock().unwrap_or_else(|p| p.into_inner()) =
                            Some(e.to_string());
                        tokio::time::sleep(Duration::from_millis(500)).await;
                    }
                }
            }
            Ok(None) => {
                // A shadow's bound moving (or its going live) is new input too. The
                // sender lives as long as the worker is tracked.
                let holding = !worker.statelog.overlay().is_empty();
                tokio::select! {
                    _ = any_changed(&mut changed) => {}
                    _ = stop.changed() => {}
                    Ok(()) = mode.changed() => {}
                    _ = tokio::time::sleep(changelog::IDLE_CHECKPOINT), if holding => {
                        worker.statelog.request_checkpoint();
                    }
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "query batch failed; retrying");
                *stats.failed.lock().unwrap_or_else(|p| p.into_inner()) = Some(e.to_string());
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    }
    // Stopping (a drop, a replacement's cut-over, a shutdown): the changes in memory go
    // into RocksDB, so the next start has no changelog to replay. If that fails the
    // changelog records stay, and the next start replays them.
    let done = tokio::task::spawn_blocking(move || {
        let Worker { statelog, log, .. } = &mut worker;
        statelog.checkpoint(log)
    })
    .await;
    if let Ok(Err(e)) = done {
        tracing::warn!(error = %e, "final state checkpoint failed; the next start replays the changelog");
    }
}

/// A source's record as a row and its event time (the TIMESTAMP column when the source
/// names one); `None` for a table record without a key: a table's rows are identified by
/// their key, so it is no row (ksqlDB, like Kafka Streams, skips it).
pub(crate) fn decode_input(
    def: &SourceDef,
    rec: &StoredRecord,
) -> Result<Option<(SourceRow, i64)>> {
    if def.kind == SourceKind::Table && def.schema.key_count() > 0 && rec.record.key.is_none() {
        return Ok(None);
    }
    let src = decode_record(def, rec)?;
    let rowtime = src
        .row
        .get(def.schema.len())
        .and_then(Value::as_i64)
        .unwrap_or(rec.record.timestamp);
    Ok(Some((src, rowtime)))
}

/// The order to process a batch's records in, as `(slot, index)` pairs: the order they
/// were appended to the log, across every partition of every input. A stream record then
/// joins a table as it was when the record arrived; a windowed aggregation over several
/// partitions sees its records in arrival order rather than one partition's batch after
/// another's (which made the later partition's records late once the first had moved
/// stream time past their windows: Kafka Streams, likewise, takes a task's partitions'
/// records in timestamp order); and a restart replays the same order. A slot whose read
/// was cut at the batch size may hold unread records older than another's, so nothing
/// appended after its last record read is processed in this batch (`batch`: the most
/// records read per slot).
pub(crate) fn processing_order(read: &[Vec<StoredRecord>], batch: usize) -> Vec<(usize, usize)> {
    let mut filled = read.iter().enumerate().filter(|(_, recs)| !recs.is_empty());
    if let (Some((s, recs)), None) = (filled.next(), filled.next()) {
        return (0..recs.len()).map(|i| (s, i)).collect();
    }
    let limit = read
        .iter()
        .filter(|recs| recs.len() >= batch)
        .filter_map(|recs| recs.last().map(|r| r.seq))
        .min()
        .unwrap_or(u64::MAX);
    let mut order: Vec<(u64, usize, usize)> = read
        .iter()
        .enumerate()
        .flat_map(|(s, recs)| recs.iter().enumerate().map(move |(i, r)| (r.seq, s, i)))
        .filter(|(seq, _, _)| *seq <= limit)
        .collect();
    // Within a partition, offsets already follow log positions (and records written
    // before positions were kept, all 0, keep their offset order).
    order.sort_unstable();
    order.into_iter().map(|(_, s, i)| (s, i)).collect()
}

/// Resolves once any of the inputs' topics has new records (a join has several inputs).
pub(crate) async fn any_changed(changed: &mut [watch::Receiver<u64>]) {
    type Changed<'a> = std::pin::Pin<
        Box<
            dyn std::future::Future<Output = std::result::Result<(), watch::error::RecvError>>
                + Send
                + 'a,
        >,
    >;
    let mut waits: Vec<Changed<'_>> = changed
        .iter_mut()
        .map(|c| Box::pin(c.changed()) as Changed<'_>)
        .collect();
    std::future::poll_fn(|cx| {
        if waits.iter_mut().any(|w| w.as_mut().poll(cx).is_ready()) {
            std::task::Poll::Ready(())
        } else {
            std::task::Poll::Pending
        }
    })
    .await
}

/// What one batch has produced so far.
pub(crate) struct Batch<'a> {
    pub(crate) txn: Txn,
    /// Every operator's state, as this batch sees and changes it.
    pub(crate) state: &'a mut dyn StateStore,
    /// Whether output records go to the sink topic (not while building a replacement).
    pub(crate) emit: bool,
    /// The record being processed had no key (its key columns all read as NULL).
    pub(crate) null_key: bool,
    /// Stream time per partition of a windowed aggregation's groups, as of this batch.
    pub(crate) stream_times: Vec<i64>,
    /// EMIT FINAL's last emission close time per partition, as of this batch.
    pub(crate) last_emits: Vec<i64>,
    /// The processing sequence of the record being processed: the source positions
    /// consumed before it, so it grows in processing order and survives a restart.
    pub(crate) seq: i64,
    /// Each stream-stream join's stream time of each side as of this batch (see
    /// `Worker::join_times`).
    pub(crate) join_times: Vec<i64>,
    /// The record whose buffered join rows `join_sub` numbers, and how many it has.
    pub(crate) join_seq_of: i64,
    pub(crate) join_sub: i64,
}

impl Batch<'_> {
    /// The stream times of the two sides of the join nested `depth` deep.
    pub(crate) fn join_times_of(&mut self, depth: usize) -> &mut [i64] {
        let need = 2 * (depth + 1);
        if self.join_times.len() < need {
            self.join_times.resize(need, i64::MIN);
        }
        &mut self.join_times[2 * depth..need]
    }

    /// A number for a row a stream-stream join buffers, unique across batches and
    /// restarts: the record's processing sequence, then its rows in order (a record can
    /// buffer several through nested joins).
    pub(crate) fn next_join_seq(&mut self) -> i64 {
        if self.join_seq_of != self.seq {
            self.join_seq_of = self.seq;
            self.join_sub = 0;
        }
        self.join_sub += 1;
        self.seq
            .saturating_mul(1 << 16)
            .saturating_add(self.join_sub)
    }
}

impl Worker {
    /// Reads and processes one batch. Returns the transaction to commit, the positions it
    /// moves to and the number of records, or None when there is nothing new.
    fn step(&mut self, id: u64) -> Result<Option<Step>> {
        if !self.warmed {
            self.warm(id)?;
        }
        if self.statelog.due() {
            self.statelog.checkpoint(&self.log)?;
        }
        // A record whose processing panics may leave the batch half-updated (a state taken
        // out of the store and not put back, say), so the whole batch is redone without it. Each redo marks one
        // more record, so this ends.
        loop {
            if let Some(step) = self.try_step(id)? {
                return Ok(step);
            }
        }
    }

    /// One attempt at a batch: `None` when a record panicked (it is now in `poison`).
    fn try_step(&mut self, id: u64) -> Result<Option<Option<Step>>> {
        let mut state = BatchState::new(
            &self.log,
            &self.cache,
            &self.cached,
            self.statelog.overlay(),
        );
        let mut b = Batch {
            seq: self.positions.iter().sum::<u64>() as i64,
            stream_times: self.stream_times.clone(),
            last_emits: self.last_emits.clone(),
            join_times: self.join_times.clone(),
            txn: Txn::default(),
            state: &mut state,
            emit: true,
            null_key: false,
            join_seq_of: 0,
            join_sub: 0,
        };
        let slots = slots(&self.inputs);
        let mut positions = self.positions.clone();
        let mut n = 0u64;
        let mut read = Vec::with_capacity(slots.len());
        // A shadow reads no further than the query it replaces has committed, and emits
        // nothing; the mode is taken once, so a batch is all one or all the other.
        let cap = match &*self.mode.borrow() {
            Mode::Live => None,
            Mode::Shadow(cap) => Some(cap.clone()),
        };
        b.emit = cap.is_none();
        for (s, &(i, p)) in slots.iter().enumerate() {
            let max = match &cap {
                None => BATCH,
                Some(cap) => {
                    let left = cap
                        .get(s)
                        .copied()
                        .unwrap_or(0)
                        .saturating_sub(positions[s]);
                    usize::try_from(left).unwrap_or(BATCH).min(BATCH)
                }
            };
            read.push(if max == 0 {
                Vec::new()
            } else {
                self.log.read(&self.inputs[i].topic, p, positions[s], max)?
            });
        }
        for (s, at) in self.processing_order(&read) {
            let rec = &read[s][at];
            let (input, p) = slots[s];
            positions[s] = rec.offset + 1;
            n += 1;
            if let Some(message) = self.poison.get(&(s as u32, rec.offset)) {
                let message = message.clone();
                self.processing_error(&mut b.txn, input, rec, &message)?;
                continue;
            }
            b.seq += 1;
            let before = b.txn.append_count();
            let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                self.process(input, rec, &mut b)
            }));
            let result = match result {
                Ok(r) => r,
                Err(payload) => {
                    let message = format!(
                        "internal error processing the record: {}",
                        panic_message(payload.as_ref())
                    );
                    tracing::error!(
                        partition = p,
                        offset = rec.offset,
                        "{message}; the record is skipped"
                    );
                    self.env.stats.errors.fetch_add(1, Ordering::Relaxed);
                    self.poison.insert((s as u32, rec.offset), message);
                    return Ok(None);
                }
            };
            b.txn.stamp_headers(before, &rec.record.headers);
            if let Err(e) = result {
                let counter = match e {
                    EngineError::Late(_) => &self.env.stats.late,
                    _ => &self.env.stats.errors,
                };
                counter.fetch_add(1, Ordering::Relaxed);
                self.processing_error(&mut b.txn, input, rec, &e.to_string())?;
            }
        }
        for (s, &(i, p)) in slots.iter().enumerate() {
            if positions[s] != self.positions[s] {
                b.txn.put(
                    Cf::State,
                    offset_key(self.inputs[i].tag, id, self.inputs[i].slot_base + p),
                    positions[s].to_be_bytes().to_vec(),
                );
            }
        }
        if n == 0 {
            return Ok(Some(None));
        }
        // Stream time has moved: windows close, retention expires state.
        if let Some(pipeline) = &self.pipeline {
            let cx = &mut Cx {
                b: &mut b,
                env: &self.env,
            };
            pipeline.on_time(cx, &mut Vec::new())?;
        }
        if let Kind::Query(plan) = &self.kind
            && plan.join.is_some()
            && b.join_times != self.join_times
        {
            let v: Vec<u8> = b.join_times.iter().flat_map(|t| t.to_be_bytes()).collect();
            b.txn.put(Cf::State, join_time_key(plan.num), v);
        }
        if let Kind::Query(plan) = &self.kind
            && let Operator::Aggregate {
                window: Some(_), ..
            } = &plan.op
        {
            for (p, st) in b.stream_times.iter().enumerate() {
                let emitted = b.last_emits.get(p).copied().unwrap_or(i64::MIN);
                let changed = self.stream_times.get(p) != Some(st)
                    || self.last_emits.get(p).copied().unwrap_or(i64::MIN) != emitted;
                if *st != i64::MIN && changed {
                    let mut v = st.to_be_bytes().to_vec();
                    v.extend_from_slice(&emitted.to_be_bytes());
                    b.txn.put(Cf::State, stream_time_key(plan.num, p as u32), v);
                }
            }
        }
        let Batch {
            mut txn,
            stream_times,
            last_emits,
            join_times,
            ..
        } = b;
        let (states, changes) = state.commit();
        self.statelog.record(&mut txn, &changes);
        Ok(Some(Some((
            txn,
            positions,
            n,
            (states, changes),
            (stream_times, last_emits, join_times),
        ))))
    }

    fn processing_order(&self, read: &[Vec<StoredRecord>]) -> Vec<(usize, usize)> {
        processing_order(read, BATCH)
    }

    /// Loads the query's committed aggregate state into the cache, as far as the budget
    /// allows. When all of it fits (or there is none), the cache is complete and groups it
    /// does not hold need no RocksDB read.
    fn warm(&mut self, id: u64) -> Result<()> {
        self.warmed = true;
        let plan = match &self.kind {
            Kind::Query(plan) => plan.clone(),
            Kind::Materialize(table) => {
                self.pipeline = Some(Pipeline::for_table((**table).clone()));
                return Ok(());
            }
        };
        if plan.join.is_some() {
            self.join_times = match self.log.get(Cf::State, &join_time_key(id))? {
                None => Vec::new(),
                Some(b) if b.len() % 8 == 0 => b
                    .chunks_exact(8)
                    .filter_map(|c| <[u8; 8]>::try_from(c).ok())
                    .map(i64::from_be_bytes)
                    .collect(),
                Some(_) => {
                    return Err(EngineError::Invalid(format!(
                        "corrupt join stream time of query {}",
                        plan.id
                    )));
                }
            };
        }
        if !matches!(plan.op, Operator::Aggregate { .. }) {
            if plan.join.is_some() {
                self.cached = vec![join_prefix(id)];
            }
            self.pipeline = Some(Pipeline::for_query(
                &plan,
                self.sink.clone(),
                StateLayout::Separate,
            ));
            return Ok(());
        }
        if let Operator::Aggregate {
            window: Some(_), ..
        } = &plan.op
        {
            let partitions = self.sink.as_ref().map_or(1, |t| t.partitions);
            self.stream_times = Vec::with_capacity(partitions as usize);
            self.last_emits = Vec::with_capacity(partitions as usize);
            for p in 0..partitions {
                let stored = self.log.get(Cf::State, &stream_time_key(id, p))?;
                let at = |b: &[u8], i: usize| {
                    b.get(i..i + 8)
                        .and_then(|s| <[u8; 8]>::try_from(s).ok())
                        .map(i64::from_be_bytes)
                };
                let (st, emitted) = match stored.as_deref() {
                    None => (i64::MIN, i64::MIN),
                    Some(b) if b.len() == 16 => {
                        (at(b, 0).unwrap_or(i64::MIN), at(b, 8).unwrap_or(i64::MIN))
                    }
                    Some(_) => {
                        return Err(EngineError::Invalid(format!(
                            "corrupt stream time of query {} (partition {p})",
                            plan.id
                        )));
                    }
                };
                self.stream_times.push(st);
                self.last_emits.push(emitted);
            }
        }
        // Queries created by builds that kept state apart keep doing so.
        let mut legacy = false;
        let (from, to) = changelog::prefix_range(&agg_key(id, &[]));
        changelog::visit_range(
            &self.log,
            Some(self.statelog.overlay()),
            &from,
            &to,
            |_, _| {
                legacy = true;
                false
            },
        )?;
        self.layout = match (self.stored_layout, in_sink_row_layout(&plan)) {
            (Some(StateLayoutKind::Separate), _) => StateLayout::Separate,
            (Some(StateLayoutKind::InSinkRow), Some(layout)) => layout,
            (Some(StateLayoutKind::InSinkRow), None) => {
                return Err(EngineError::Invalid(format!(
                    "query keeps its aggregate state in the rows of {}, which its plan no longer allows",
                    plan.sink.name
                )));
            }
            // Recorded by no catalog entry: decided from what is stored.
            (None, Some(layout)) if !legacy => layout,
            (None, _) => StateLayout::Separate,
        };
        let state_prefix = match self.layout {
            StateLayout::Separate => agg_key(id, &[]),
            StateLayout::InSinkRow { .. } => table_prefix(plan.sink.id),
        };
        let mut cache = StateCache::new(self.cache.budget().clone(), true);
        let mut fits = true;
        let mut prefixes = vec![state_prefix, source_row_key(id, &[])];
        if plan.join.is_some() {
            // A complete cache answers for every key, so it must hold the join's too.
            prefixes.push(join_prefix(id));
        }
        for prefix in &prefixes {
            if !fits {
                break;
            }
            let (from, to) = changelog::prefix_range(prefix);
            fits = changelog::visit_range(
                &self.log,
                Some(self.statelog.overlay()),
                &from,
                &to,
                |k, v| {
                    cache.insert(k, Some(v));
                    cache.is_complete()
                },
            )?;
        }
        self.cached = prefixes;
        self.pipeline = Some(Pipeline::for_query(&plan, self.sink.clone(), self.layout));
        if let Some(p) = &self.pipeline {
            tracing::debug!(operators = ?p.names(), "pipeline built");
        }
        tracing::debug!(complete = cache.is_complete(), layout = ?self.layout, "aggregate state loaded");
        self.cache = cache;
        Ok(())
    }

    /// Writes a record's error to the processing log (with the batch).
    fn processing_error(
        &self,
        txn: &mut Txn,
        input: usize,
        rec: &StoredRecord,
        message: &str,
    ) -> Result<()> {
        let topic = &self.inputs[input].topic.name;
        let at = Some((rec.partition, rec.offset));
        self.env.processing_log(txn, topic, at, message)
    }

    /// Processes one record of input `input` through the query's pipeline.
    fn process(&self, input: usize, rec: &StoredRecord, b: &mut Batch) -> Result<()> {
        let Some(pipeline) = &self.pipeline else {
            return Err(EngineError::Invalid("query worker has no pipeline".into()));
        };
        let Some((src, rowtime)) = decode_input(&self.inputs[input].def, rec)? else {
            return Ok(());
        };
        // A joined row's key is the join key, never missing.
        b.null_key = self.inputs.len() == 1 && rec.record.key.is_none();
        let change = Change {
            row: src.row,
            tombstone: src.tombstone,
            rowtime,
            input,
            position: (rec.partition, rec.offset),
            window: None,
        };
        let mut cx = Cx { b, env: &self.env };
        // The pipeline ends in the sink, which emits nothing further.
        pipeline.process(&mut cx, change, &mut Vec::new())
    }
}

/// The text of a caught panic.
fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "unknown panic".to_string()
    }
}

pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use sluice_common::{Column, ColumnRole, DataType, FormatKind, FormatSpec, Schema};
    use sluice_expr::AggCall;
    use sluice_expr::functions::ScalarFunction;
    use sluice_plan::WindowPlan;
    use sluice_storage::Record;

    /// A function that panics on one value: a stand-in for any bug a record's content can
    /// reach (the byte-sliced error text of issue #11 was one).
    static PANICS_ON_BOOM: ScalarFunction = ScalarFunction {
        name: "PANICS_ON_BOOM",
        sigs: &[],
        signature: "PANICS_ON_BOOM(s STRING)",
        description: "test only",
        return_type: |_| Ok(DataType::String),
        eval: |args| match args.first() {
            Some(Value::String(s)) if s == "boom" => panic!("boom reached the function"),
            Some(v) => v.clone(),
            None => Value::Null,
        },
    };

    pub(crate) fn source(id: u64, name: &str, topic: &str) -> SourceDef {
        let col = |n: &str, t: DataType, role: ColumnRole| Column {
            name: n.into(),
            data_type: t,
            role,
        };
        SourceDef {
            id,
            name: name.into(),
            kind: SourceKind::Stream,
            schema: Schema::new(vec![
                col("K", DataType::String, ColumnRole::Key),
                col("V", DataType::String, ColumnRole::Value),
            ]),
            topic: topic.into(),
            key_format: FormatSpec::new(FormatKind::Kafka),
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

    pub(crate) async fn append(log: &EmbeddedLog, topic: &Arc<Topic>, values: &[&str]) {
        let mut txn = Txn::new();
        for v in values {
            txn.append(
                topic,
                0,
                Record {
                    key: Some(b"k".to_vec()),
                    value: Some(serde_json::to_vec(&serde_json::json!({ "V": v })).unwrap()),
                    timestamp: 1,
                    headers: Vec::new(),
                },
            );
        }
        log.submit(txn).wait().await.unwrap();
    }

    pub(crate) async fn wait_processed(engine: &Engine, id: &str, n: u64) -> QueryStatus {
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        loop {
            let status = engine.status(id).expect("query is registered");
            if status.processed >= n || std::time::Instant::now() > deadline {
                return status;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_record_that_panics_is_skipped_and_the_query_carries_on() {
        let dir = tempfile::tempdir().unwrap();
        let log = Arc::new(EmbeddedLog::open(dir.path()).unwrap());
        let input = log.create_topic("input", 1).unwrap();
        let engine = Engine::new(log.clone()).unwrap();
        let plan = QueryPlan {
            id: "CSAS_OUT_2".into(),
            num: 2,
            source: source(1, "INPUT", "input"),
            sink: source(3, "OUT", "out"),
            op: Operator::Select {
                filter: None,
                projection: vec![
                    sluice_expr::Expr::Column(0),
                    sluice_expr::Expr::Call {
                        func: &PANICS_ON_BOOM,
                        args: vec![sluice_expr::Expr::Column(1)],
                    },
                ],
                table_functions: Vec::new(),
            },
            join: None,
        };
        engine.start_query(plan).unwrap();
        append(&log, &input, &["a", "boom", "b"]).await;
        let status = wait_processed(&engine, "CSAS_OUT_2", 3).await;
        assert_eq!(status.processed, 3, "{status:?}");
        assert_eq!(status.state, "RUNNING", "{status:?}");
        assert_eq!(status.errors, 1, "{status:?}");
        append(&log, &input, &["c"]).await;
        let status = wait_processed(&engine, "CSAS_OUT_2", 4).await;
        assert_eq!(status.processed, 4, "{status:?}");

        // The sink has the three good records in order; the processing log names the bad one.
        let out = log.topic("out").unwrap();
        let values: Vec<String> = log
            .read(&out, 0, 0, 100)
            .unwrap()
            .iter()
            .map(|r| {
                String::from_utf8_lossy(r.record.value.as_deref().unwrap_or_default()).into_owned()
            })
            .collect();
        assert_eq!(values.len(), 3, "{values:?}");
        assert!(
            values[0].contains("\"a\"")
                && values[1].contains("\"b\"")
                && values[2].contains("\"c\"")
        );
        let proc_log = log.topic(PROCESSING_LOG_TOPIC).unwrap();
        let entries = log.read(&proc_log, 0, 0, 100).unwrap();
        assert_eq!(entries.len(), 1);
        let entry: serde_json::Value =
            serde_json::from_slice(entries[0].record.value.as_deref().unwrap()).unwrap();
        assert_eq!(entry["OFFSET"], 1);
        assert!(
            entry["MESSAGE"]
                .as_str()
                .unwrap()
                .contains("boom reached the function"),
            "{entry}"
        );
        engine.shutdown().await;
    }

    /// `COUNT(*) ... WINDOW TUMBLING (SIZE 1 SECOND, RETENTION r, GRACE PERIOD 0) GROUP BY K`.
    fn windowed_count(retention_ms: i64, emit_final: bool) -> QueryPlan {
        let mut sink = source(3, "COUNTS", "counts");
        sink.kind = SourceKind::Table;
        sink.schema = Schema::new(vec![
            Column {
                name: "K".into(),
                data_type: DataType::String,
                role: ColumnRole::PrimaryKey,
            },
            Column {
                name: "N".into(),
                data_type: DataType::BigInt,
                role: ColumnRole::Value,
            },
        ]);
        sink.window = Some(sluice_common::WindowSpec {
            kind: sluice_common::WindowKind::Tumbling,
            size_ms: Some(1000),
        });
        QueryPlan {
            id: "CTAS_COUNTS_2".into(),
            num: 2,
            source: source(1, "INPUT", "input"),
            sink,
            op: Operator::Aggregate {
                filter: None,
                group_by: vec![sluice_expr::Expr::Column(0)],
                aggregates: vec![AggCall::new(AggKind::CountStar, None, None)],
                having: None,
                // [K, ROWTIME, WINDOWSTART, WINDOWEND, COUNT]
                projection: vec![sluice_expr::Expr::Column(0), sluice_expr::Expr::Column(4)],
                window: Some(WindowPlan {
                    kind: sluice_common::WindowKind::Tumbling,
                    size_ms: 1000,
                    advance_ms: 1000,
                    grace_ms: 0,
                    retention_ms,
                    emit_final,
                }),
            },
            join: None,
        }
    }

    /// Appends (key, value, timestamp) records to partition 0, in one transaction.
    async fn append_records(
        log: &EmbeddedLog,
        topic: &Arc<Topic>,
        records: impl IntoIterator<Item = (Vec<u8>, Vec<u8>, i64)>,
    ) {
        let mut txn = Txn::new();
        for (key, value, timestamp) in records {
            txn.append(
                topic,
                0,
                Record {
                    key: Some(key),
                    value: Some(value),
                    timestamp,
                    headers: Vec::new(),
                },
            );
        }
        log.submit(txn).wait().await.unwrap();
    }

    async fn append_at(log: &EmbeddedLog, topic: &Arc<Topic>, times: impl Iterator<Item = i64>) {
        let records = times.map(|ts| (b"k".to_vec(), br#"{"V":"x"}"#.to_vec(), ts));
        append_records(log, topic, records).await;
    }

    /// Entries under `prefix` as the query "CTAS_COUNTS_2" sees its state: its changes
    /// since the last checkpoint over RocksDB.
    fn count_prefix(engine: &Engine, log: &EmbeddedLog, prefix: &[u8]) -> usize {
        let overlay = engine
            .queries
            .lock()
            .unwrap()
            .get("CTAS_COUNTS_2")
            .map(|r| r.overlay.1.clone());
        let (from, to) = changelog::prefix_range(prefix);
        let mut n = 0;
        changelog::visit_range(log, overlay.as_deref(), &from, &to, |_, _| {
            n += 1;
            true
        })
        .unwrap();
        n
    }

    /// A million events over 10,000 s of event time (100 per 1 s window), a 5 s retention:
    /// the state never holds more than the windows retention keeps, however long the
    /// stream runs, checked after every 100,000 events.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn window_state_stays_bounded_over_a_million_events() {
        const EVENTS: i64 = 1_000_000;
        const CHUNK: i64 = 100_000;
        let dir = tempfile::tempdir().unwrap();
        let log = Arc::new(EmbeddedLog::open(dir.path()).unwrap());
        let input = log.create_topic("input", 1).unwrap();
        let engine = Engine::new(log.clone()).unwrap();
        engine.start_query(windowed_count(5_000, false)).unwrap();
        for chunk in 0..EVENTS / CHUNK {
            let from = chunk * CHUNK;
            append_at(&log, &input, (from..from + CHUNK).map(|i| i * 10)).await;
            let status = wait_processed(&engine, "CTAS_COUNTS_2", (from + CHUNK) as u64).await;
            assert_eq!(status.processed, (from + CHUNK) as u64, "{status:?}");
            assert_eq!((status.errors, status.late), (0, 0), "{status:?}");
            for (what, prefix) in [
                ("aggregate states", agg_key(2, &[])),
                ("table rows", table_prefix(3)),
                ("expiry entries", offset_key(b'W', 2, 0)),
            ] {
                let n = count_prefix(&engine, &log, &prefix);
                assert!(
                    (5..=6).contains(&n),
                    "{n} {what} after {} events with a 5 s retention",
                    from + CHUNK
                );
            }
        }
        engine.shutdown().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn window_state_stays_bounded_by_retention_and_late_records_are_counted() {
        const EVENTS: i64 = 20_000;
        let dir = tempfile::tempdir().unwrap();
        let log = Arc::new(EmbeddedLog::open(dir.path()).unwrap());
        let input = log.create_topic("input", 1).unwrap();
        let engine = Engine::new(log.clone()).unwrap();
        let plan = windowed_count(5_000, false);
        engine.start_query(plan.clone()).unwrap();
        // One event per second of event time, 20,000 windows in all, a 5 s retention.
        append_at(&log, &input, (0..EVENTS).map(|i| i * 1000)).await;
        let status = wait_processed(&engine, "CTAS_COUNTS_2", EVENTS as u64).await;
        assert_eq!(status.errors, 0, "{status:?}");
        let out = log.topic("counts").unwrap();
        assert_eq!(out.end_offset(0), EVENTS as u64, "one update per event");
        // Windows starting at or after stream time - retention are kept: 6 of 20,000.
        for (what, prefix) in [
            ("aggregate states", agg_key(2, &[])),
            ("table rows", table_prefix(3)),
            ("expiry entries", offset_key(b'W', 2, 0)),
        ] {
            let n = count_prefix(&engine, &log, &prefix);
            assert!(
                n <= 6,
                "{n} {what} kept after 20,000 windows with a 5 s retention"
            );
            assert!(n >= 5, "{n} {what}: the recent windows must stay");
        }

        // A record for a closed window is dropped, counted and logged.
        append_at(&log, &input, [1000].into_iter()).await;
        let status = wait_processed(&engine, "CTAS_COUNTS_2", EVENTS as u64 + 1).await;
        assert_eq!((status.errors, status.late), (0, 1), "{status:?}");
        assert_eq!(
            out.end_offset(0),
            EVENTS as u64,
            "a late record emits nothing"
        );
        let proc_log = log.topic(PROCESSING_LOG_TOPIC).unwrap();
        let entries = log.read(&proc_log, 0, 0, 10).unwrap();
        let entry =
            String::from_utf8_lossy(entries[0].record.value.as_deref().unwrap()).into_owned();
        assert!(entry.contains("late record dropped"), "{entry}");

        // Stream time survives a restart: the same late record is still late.
        engine.shutdown().await;
        let engine = Engine::new(log.clone()).unwrap();
        engine.start_query(plan).unwrap();
        append_at(&log, &input, [2000].into_iter()).await;
        let status = wait_processed(&engine, "CTAS_COUNTS_2", 1).await;
        assert_eq!((status.errors, status.late), (0, 1), "{status:?}");
        assert_eq!(out.end_offset(0), EVENTS as u64);
        engine.shutdown().await;
    }

    /// Stream time is per partition of the groups, as ksqlDB's repartition by the group
    /// key makes it: a group far ahead in event time does not make another partition's
    /// groups late.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn stream_time_is_kept_per_partition_of_the_groups() {
        let dir = tempfile::tempdir().unwrap();
        let log = Arc::new(EmbeddedLog::open(dir.path()).unwrap());
        let input = log.create_topic("input", 2).unwrap();
        let engine = Engine::new(log.clone()).unwrap();
        engine
            .start_query(windowed_count(1_000_000, false))
            .unwrap();
        let out = log.topic("counts").unwrap();
        assert_eq!(out.partitions, 2);
        // Two keys whose output records go to different partitions.
        let part = |k: &str| out.partition_for(Some(k.as_bytes()));
        let a = "a".to_string();
        let b = (0..100)
            .map(|i| format!("b{i}"))
            .find(|k| part(k) != part(&a))
            .unwrap();
        let records = [(&a, 100_000), (&b, 1_000), (&a, 1_000), (&a, 200_000)]
            .map(|(key, ts)| (key.as_bytes().to_vec(), br#"{"V":"x"}"#.to_vec(), ts));
        append_records(&log, &input, records).await;
        let status = wait_processed(&engine, "CTAS_COUNTS_2", 4).await;
        // Only a's own late record: b's partition has seen nothing past 1,000.
        assert_eq!((status.errors, status.late), (0, 1), "{status:?}");
        assert_eq!(out.end_offset(0) + out.end_offset(1), 3);
        // Both of a's windows went to a's partition: windowed keys are partitioned by the
        // key without its window, as Kafka Streams does.
        assert_eq!(out.end_offset(part(&a)), 2);
        assert_eq!(out.end_offset(part(&b)), 1);
        engine.shutdown().await;
    }

    /// Records of one group spread over two partitions, appended in event-time order, are
    /// taken in that (log) order: none is late. Taking one partition's batch after the
    /// other's would move stream time past the second partition's windows first.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn partitions_are_merged_in_log_order_so_in_order_records_are_not_late() {
        let dir = tempfile::tempdir().unwrap();
        let log = Arc::new(EmbeddedLog::open(dir.path()).unwrap());
        let input = log.create_topic("input", 2).unwrap();
        for i in 0..20i64 {
            let mut txn = Txn::new();
            txn.append(
                &input,
                (i % 2) as u32,
                Record {
                    key: Some(b"a".to_vec()),
                    value: Some(br#"{"V":"x"}"#.to_vec()),
                    timestamp: 500 * i,
                    headers: Vec::new(),
                },
            );
            log.submit(txn).wait().await.unwrap();
        }
        let engine = Engine::new(log.clone()).unwrap();
        engine
            .start_query(windowed_count(1_000_000, false))
            .unwrap();
        let status = wait_processed(&engine, "CTAS_COUNTS_2", 20).await;
        assert_eq!((status.processed, status.late), (20, 0), "{status:?}");
        engine.shutdown().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn emit_final_emits_each_closed_window_once_across_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let log = Arc::new(EmbeddedLog::open(dir.path()).unwrap());
        let input = log.create_topic("input", 1).unwrap();
        let engine = Engine::new(log.clone()).unwrap();
        let plan = windowed_count(5_000, true);
        engine.start_query(plan.clone()).unwrap();
        // Windows [1000, 2000) (3 events) and [2000, 3000) (1): with no grace period the
        // record at 2000 closes the first; the second waits.
        append_at(&log, &input, [1000, 1500, 1999].into_iter()).await;
        wait_processed(&engine, "CTAS_COUNTS_2", 3).await;
        let out = log.topic("counts").unwrap();
        assert_eq!(out.end_offset(0), 0, "nothing before a window closes");
        append_at(&log, &input, [2000].into_iter()).await;
        wait_processed(&engine, "CTAS_COUNTS_2", 4).await;
        assert_eq!(out.end_offset(0), 1, "the first window closed");
        engine.shutdown().await;
        // The pending results are in the store, not in memory: a restart keeps them.
        let engine = Engine::new(log.clone()).unwrap();
        engine.start_query(plan).unwrap();
        append_at(&log, &input, [3500].into_iter()).await;
        wait_processed(&engine, "CTAS_COUNTS_2", 1).await;
        let records = log.read(&out, 0, 0, 10).unwrap();
        let values: Vec<String> = records
            .iter()
            .map(|r| String::from_utf8_lossy(r.record.value.as_deref().unwrap()).into_owned())
            .collect();
        assert_eq!(values, [r#"{"N":3}"#, r#"{"N":1}"#], "{values:?}");
        assert_eq!(
            records[0].record.timestamp, 1999,
            "a window's ROWTIME is its highest"
        );
        // Emitted windows are not pending any more.
        assert_eq!(
            count_prefix(&engine, &log, &offset_key(b'F', 2, 0)),
            1,
            "only [3000, 4000) waits"
        );
        engine.shutdown().await;
    }

    /// A windowed `COUNT(*), SUM(V)` over `(K STRING KEY, V BIGINT)`, and the records fed
    /// to it, in chunks (each chunk one or more batches), with a restart after one chunk.
    mod windowed_property {
        use super::*;
        use proptest::prelude::*;
        use std::collections::BTreeMap;

        #[derive(Debug, Clone)]
        struct Case {
            window: WindowPlan,
            /// (key, timestamp, value), in log order.
            events: Vec<(u8, i64, i64)>,
            /// Chunk boundaries (events appended, then processed, per chunk).
            chunks: Vec<usize>,
            /// The server restarts after this chunk.
            restart_after: usize,
        }

        fn case() -> impl Strategy<Value = Case> {
            (1i64..20, 0i64..10, 0i64..20, 0u8..3)
                .prop_flat_map(|(size, grace, extra, kind)| {
                    let advance = if kind == 1 {
                        (1..=size).boxed()
                    } else {
                        Just(size).boxed()
                    };
                    (
                        Just((size, grace, extra, kind)),
                        advance,
                        prop::collection::vec((0u8..3, 0i64..300, -5i64..50), 1..60),
                        prop::collection::vec(1usize..20, 1..8),
                        0usize..8,
                    )
                })
                .prop_map(
                    |((size, grace, extra, kind), advance, events, sizes, restart)| {
                        let mut chunks = Vec::new();
                        let mut at = 0;
                        for n in sizes {
                            at = (at + n).min(events.len());
                            chunks.push(at);
                        }
                        chunks.push(events.len());
                        chunks.dedup();
                        let restart_after = restart % chunks.len();
                        Case {
                            window: WindowPlan {
                                kind: match kind {
                                    2 => sluice_common::WindowKind::Session,
                                    _ if advance == size => sluice_common::WindowKind::Tumbling,
                                    _ => sluice_common::WindowKind::Hopping,
                                },
                                size_ms: size,
                                advance_ms: advance,
                                grace_ms: grace,
                                retention_ms: size + grace + extra,
                                emit_final: false,
                            },
                            events,
                            chunks,
                            restart_after,
                        }
                    },
                )
        }

        fn plan(w: WindowPlan) -> QueryPlan {
            let mut p = windowed_count(w.retention_ms, false);
            p.source.schema.columns[1].data_type = DataType::BigInt;
            p.sink.schema.columns.push(Column {
                name: "S".into(),
                data_type: DataType::BigInt,
                role: ColumnRole::Value,
            });
            p.sink.window = Some(sluice_common::WindowSpec {
                kind: w.kind,
                size_ms: (w.kind != sluice_common::WindowKind::Session).then_some(w.size_ms),
            });
            if let Operator::Aggregate {
                aggregates,
                projection,
                window,
                ..
            } = &mut p.op
            {
                aggregates.push(AggCall::new(
                    AggKind::Sum,
                    Some(sluice_expr::Expr::Column(1)),
                    Some(DataType::BigInt),
                ));
                // [K, ROWTIME, WINDOWSTART, WINDOWEND, COUNT, SUM]
                projection.push(sluice_expr::Expr::Column(5));
                *window = Some(w);
            }
            p
        }

        /// The windows' (count, sum, ROWTIME) recomputed from scratch over the whole input,
        /// by the rules in docs/sql.md, and the number of late records.
        /// Per (key, window start): count, sum, ROWTIME.
        type Windows = BTreeMap<(String, i64), (i64, i64, i64)>;

        fn recompute(c: &Case) -> (Windows, u64) {
            if c.window.kind == sluice_common::WindowKind::Session {
                return recompute_sessions(c);
            }
            let w = &c.window;
            let mut stream_time = i64::MIN;
            let mut late = 0;
            let mut windows = Windows::new();
            for (k, ts, v) in &c.events {
                stream_time = stream_time.max(*ts);
                let close = stream_time - w.grace_ms;
                let mut any_late = false;
                for (start, end) in w.windows_for(*ts) {
                    if end > close {
                        let e = windows
                            .entry((format!("k{k}"), start))
                            .or_insert((0, 0, *ts));
                        *e = (e.0 + 1, e.1 + v, e.2.max(*ts));
                    } else {
                        any_late = true;
                    }
                }
                late += u64::from(any_late);
            }
            windows.retain(|(_, start), _| *start >= stream_time - w.retention_ms);
            (windows, late)
        }

        /// Kafka Streams' session rules over the whole input: a record merges the key's
        /// sessions within the gap of it (among those retention still keeps) into one.
        fn recompute_sessions(c: &Case) -> (Windows, u64) {
            let (gap, grace, retention) =
                (c.window.size_ms, c.window.grace_ms, c.window.retention_ms);
            let mut stream_time = i64::MIN;
            let mut late = 0;
            // (key, start) -> (count, sum, end)
            let mut sessions = Windows::new();
            for (k, ts, v) in &c.events {
                let key = format!("k{k}");
                stream_time = stream_time.max(*ts);
                let close = stream_time - grace - gap;
                let lowest_end = (ts - gap).max(stream_time - retention);
                let merged: Vec<(i64, (i64, i64, i64))> = sessions
                    .iter()
                    .filter(|((sk, start), (_, _, end))| {
                        *sk == key && *end >= lowest_end && *start <= ts + gap
                    })
                    .map(|((_, start), s)| (*start, *s))
                    .collect();
                let start = merged.iter().map(|m| m.0).fold(*ts, i64::min);
                let end = merged.iter().map(|m| m.1.2).fold(*ts, i64::max);
                if end < close {
                    late += 1;
                    continue;
                }
                let (mut n, mut sum) = (1, *v);
                for (s, (mn, msum, _)) in merged {
                    sessions.remove(&(key.clone(), s));
                    n += mn;
                    sum += msum;
                }
                sessions.insert((key, start), (n, sum, end));
            }
            sessions.retain(|_, (_, _, end)| *end >= stream_time - retention);
            (sessions, late)
        }

        async fn feed(log: &EmbeddedLog, topic: &Arc<Topic>, events: &[(u8, i64, i64)]) {
            let records = events.iter().map(|(k, ts, v)| {
                let value = format!(r#"{{"V":{v}}}"#).into_bytes();
                (format!("k{k}").into_bytes(), value, *ts)
            });
            append_records(log, topic, records).await;
        }

        /// An emitted final result: key, window start, window end, count, sum.
        type Emitted = (String, i64, i64, i64, i64);

        /// EMIT FINAL's output recomputed from scratch: the windows (or sessions) as
        /// above, and after every record Kafka Streams' emit-on-close rule (docs/sql.md),
        /// with the windows retention expired unsent counted as errors.
        fn replay_final(c: &Case) -> (Vec<Emitted>, u64) {
            let w = &c.window;
            let session = w.kind == sluice_common::WindowKind::Session;
            let mut stream_time = i64::MIN;
            let mut errors = 0;
            let mut last: Option<i64> = None;
            // (key, start) -> (count, sum, end, emitted)
            let mut windows: BTreeMap<(String, i64), (i64, i64, i64, bool)> = BTreeMap::new();
            let mut out = Vec::new();
            for (k, ts, v) in &c.events {
                let key = format!("k{k}");
                stream_time = stream_time.max(*ts);
                if session {
                    let (gap, grace) = (w.size_ms, w.grace_ms);
                    let close = stream_time - grace - gap;
                    let lowest_end = (ts - gap).max(stream_time - w.retention_ms);
                    let merged: Vec<(i64, (i64, i64, i64, bool))> = windows
                        .iter()
                        .filter(|((sk, start), s)| {
                            *sk == key && s.2 >= lowest_end && *start <= ts + gap
                        })
                        .map(|((_, start), s)| (*start, *s))
                        .collect();
                    let start = merged.iter().map(|m| m.0).fold(*ts, i64::min);
                    let end = merged.iter().map(|m| m.1.2).fold(*ts, i64::max);
                    if end < close {
                        errors += 1;
                    } else {
                        let (mut n, mut sum) = (1, *v);
                        for (s, m) in merged {
                            windows.remove(&(key.clone(), s));
                            n += m.0;
                            sum += m.1;
                        }
                        windows.insert((key, start), (n, sum, end, false));
                    }
                    let close = stream_time - w.grace_ms - w.size_ms;
                    if last.is_none_or(|l| l < close) && close > 0 {
                        let lower = last.map_or(0, |l| l.max(0));
                        last = Some(close);
                        for ((k, start), s) in windows.iter_mut() {
                            if !s.3 && s.2 >= lower && s.2 < close {
                                s.3 = true;
                                out.push((k.clone(), *start, s.2, s.0, s.1));
                            }
                        }
                    }
                } else {
                    let close = stream_time - w.grace_ms;
                    let mut late = false;
                    for (start, end) in w.windows_for(*ts) {
                        if end > close {
                            let e = windows
                                .entry((key.clone(), start))
                                .or_insert((0, 0, end, false));
                            e.0 += 1;
                            e.1 += v;
                        } else {
                            late = true;
                        }
                    }
                    errors += u64::from(late);
                    let upper = close - w.size_ms;
                    if last.is_none_or(|l| l < close) && upper >= 0 {
                        let lower_excl = last.map_or(-1, |l| (l - w.size_ms).max(0));
                        let same =
                            last.is_some() && w.windows_for(upper).eq(w.windows_for(lower_excl));
                        if !same {
                            last = Some(close);
                            let from = (lower_excl + 1).max(stream_time - w.retention_ms);
                            for ((k, start), s) in windows.iter_mut() {
                                if !s.3 && *start >= from && *start <= upper {
                                    s.3 = true;
                                    out.push((k.clone(), *start, s.2, s.0, s.1));
                                }
                            }
                        }
                    }
                }
            }
            let kept_from = stream_time - w.retention_ms;
            errors += windows
                .iter()
                .filter(|((_, start), s)| !s.3 && if session { s.2 } else { *start } < kept_from)
                .count() as u64;
            (out, errors)
        }

        async fn run(c: &Case) -> (Windows, u64) {
            let (windows, errors, _) = run_plan(c, plan(c.window)).await;
            (windows, errors)
        }

        async fn run_plan(c: &Case, plan: QueryPlan) -> (Windows, u64, Vec<Emitted>) {
            let dir = tempfile::tempdir().unwrap();
            let log = Arc::new(EmbeddedLog::open(dir.path()).unwrap());
            let input = log.create_topic("input", 1).unwrap();
            let mut engine = Engine::new(log.clone()).unwrap();
            engine.start_query(plan.clone()).unwrap();
            let (mut from, mut processed, mut errors) = (0, 0, 0);
            for (i, to) in c.chunks.iter().enumerate() {
                feed(&log, &input, &c.events[from..*to]).await;
                processed += (*to - from) as u64;
                from = *to;
                let status = wait_processed(&engine, "CTAS_COUNTS_2", processed).await;
                assert_eq!(status.processed, processed, "{status:?}");
                if i == c.restart_after {
                    errors += status.errors + status.late;
                    processed = 0;
                    engine.shutdown().await;
                    engine = Engine::new(log.clone()).unwrap();
                    engine.start_query(plan.clone()).unwrap();
                }
            }
            let status = engine.status("CTAS_COUNTS_2").unwrap();
            errors += status.errors + status.late;
            engine.shutdown().await;
            let mut windows = BTreeMap::new();
            log.visit_prefix(Cf::State, &table_prefix(3), |_, v| {
                let row = sluice_common::codec::decode_row(v).unwrap();
                // [K, N, S, ROWTIME, -, -, WINDOWSTART, WINDOWEND]
                let int = |i: usize| row[i].as_i64().unwrap();
                windows.insert((row[0].to_string(), int(6)), (int(1), int(2), int(3)));
                true
            })
            .unwrap();
            let sink = log.topic("counts").unwrap();
            let emitted = log
                .read(&sink, 0, 0, 100_000)
                .unwrap()
                .iter()
                // EMIT CHANGES deletes merged-away sessions with tombstones.
                .filter(|r| r.record.value.is_some())
                .map(|r| {
                    let row = decode_record(&plan.sink, r).unwrap().row;
                    // [K, N, S, ROWTIME, ROWPARTITION, ROWOFFSET, WINDOWSTART, WINDOWEND]
                    let int = |i: usize| row[i].as_i64().unwrap();
                    (row[0].to_string(), int(6), int(7), int(1), int(2))
                })
                .collect();
            (windows, errors, emitted)
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(24))]

            /// Incremental (batches, commits, the state cache, expiry at batch ends, a
            /// restart) equals a recompute from scratch over the same input.
            #[test]
            fn windowed_aggregation_equals_a_recompute(c in case()) {
                let rt = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .enable_all()
                    .build()
                    .unwrap();
                let got = rt.block_on(run(&c));
                prop_assert_eq!(got, recompute(&c));
            }

            /// EMIT FINAL: what is emitted, in order, and the windows lost unsent, equal a
            /// replay of the emission rule over the same input, whatever the batches and
            /// the restart (pending results and the last close time are state).
            #[test]
            fn emit_final_equals_a_replay(c in case()) {
                let rt = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .enable_all()
                    .build()
                    .unwrap();
                let mut c = c;
                c.window.emit_final = true;
                let mut p = plan(c.window);
                if let Operator::Aggregate { window: Some(w), .. } = &mut p.op {
                    w.emit_final = true;
                }
                let (_, errors, emitted) = rt.block_on(run_plan(&c, p));
                prop_assert_eq!((emitted, errors), replay_final(&c));
            }
        }
    }

    #[test]
    fn state_of_an_older_encoding_is_refused_where_it_would_be_misread() {
        let plan = |kind: AggKind| QueryPlan {
            id: "CTAS_T_1".into(),
            num: 1,
            source: source(1, "INPUT", "input"),
            sink: source(2, "T", "t"),
            op: Operator::Aggregate {
                filter: None,
                group_by: vec![sluice_expr::Expr::Column(0)],
                aggregates: vec![AggCall::new(
                    kind,
                    Some(sluice_expr::Expr::Column(1)),
                    Some(DataType::Int),
                )],
                having: None,
                window: None,
                projection: vec![sluice_expr::Expr::Column(0), sluice_expr::Expr::Column(2)],
            },
            join: None,
        };
        // STDDEV's slots changed meaning in version 2: old state would be misread.
        for version in [0, 1] {
            let err = state_compatible(&plan(AggKind::StddevSamp), version)
                .unwrap_err()
                .to_string();
            assert!(
                err.contains("older version of Sluice") && err.contains("create it again"),
                "{err}"
            );
        }
        assert!(state_compatible(&plan(AggKind::StddevSamp), 2).is_ok());
        // AVG's older DOUBLE sum still folds correctly, and COUNT never changed.
        assert!(state_compatible(&plan(AggKind::Avg), 1).is_ok());
        assert!(state_compatible(&plan(AggKind::Count), 0).is_ok());
        assert!(state_compatible(&plan(AggKind::Count), STATE_VERSION + 1).is_err());
    }
}
