//! Transient push queries that keep state: aggregations (`SELECT k, COUNT(*) FROM s
//! GROUP BY k EMIT CHANGES`, windowed or not) and joins (`SELECT ... FROM a JOIN b ...
//! EMIT CHANGES`), and aggregations over joins. They run the operators a persistent query
//! runs (`crate::operator`: Join, Aggregate), over state held in memory for the life of the
//! subscription ([`MemoryState`]), bounded in entries: past the bound the query fails
//! with RESOURCE_EXHAUSTED instead of growing. Their inputs are read as a persistent
//! query's are, in log order, so a stream record meets a table as it was when the record
//! arrived. A join's rows are then filtered and projected as a push query's source rows
//! are; an aggregation sends every update of a group, as ksqlDB sends them without
//! output caching (a group leaving HAVING as a tombstone with its key columns only).

use crate::operator::{Change, Cx, Env, Join, Pipeline};
use crate::push::{FailureKind, PushEvent, PushStart};
use crate::query::{Batch, Engine, Stats, any_changed, decode_input, processing_order};
use crate::state::MemoryState;
use crate::{EngineError, Result};
use sluice_common::{SourceDef, SourceKind, Value};
use sluice_expr::Expr;
use sluice_plan::{AggregatePushPlan, Operator, PushPlan, QueryPlan};
use sluice_storage::{EmbeddedLog, Log, Topic, Txn};
use std::sync::Arc;
use tokio::sync::mpsc;

/// Most state entries (table rows, buffered stream records, index entries) a push query
/// over a join keeps in memory; past that it fails rather than grow without bound.
pub const TRANSIENT_JOIN_STATE_ENTRIES: usize = 1_000_000;

/// Rows buffered between the query and a subscriber's connection.
const CHANNEL: usize = 512;
/// Records read per partition per step.
const READ: usize = 512;

/// What a transient query does with what its pipeline emits.
enum Output {
    /// A join's rows: filtered and projected by the push query's plan over the joined row.
    Project(Box<PushPlan>),
    /// An aggregation's rows, as its projection made them; `key_columns` marks the
    /// columns a tombstone keeps (the grouping keys), the rest are NULL in it.
    Aggregated { key_columns: Vec<bool> },
}

/// A running transient query: what it has read and what it holds.
struct Run {
    output: Output,
    limit: Option<u64>,
    /// What its failures name: "the push query on S" / "over a join".
    what: String,
    defs: Vec<SourceDef>,
    topics: Vec<Arc<Topic>>,
    /// `(input, partition)` of every partition of every input, in input order.
    slots: Vec<(usize, u32)>,
    /// The next offset to read of each slot.
    positions: Vec<u64>,
    pipeline: Pipeline,
    env: Env,
    state: MemoryState,
    bound: usize,
    /// A windowed aggregation's stream time and EMIT FINAL's last close (see the
    /// worker's), and each stream-stream join's stream time of each side.
    stream_times: Vec<i64>,
    last_emits: Vec<i64>,
    join_times: Vec<i64>,
    /// Records processed, numbering the rows stream-stream joins buffer.
    seq: i64,
}

/// What one step produced: the events to send, whether anything was read, and whether
/// the query must stop after sending them.
struct Stepped {
    events: Vec<PushEvent>,
    read: bool,
    stop: bool,
}

impl Engine {
    /// Starts a push query over a join (`plan.join`). Dropping the receiver stops it.
    pub(crate) fn push_join(
        &self,
        plan: PushPlan,
        start: PushStart,
    ) -> Result<mpsc::Receiver<PushEvent>> {
        let join = plan
            .join
            .as_deref()
            .cloned()
            .ok_or_else(|| EngineError::Invalid("push query has no join".into()))?;
        let defs: Vec<SourceDef> = join.sources().into_iter().cloned().collect();
        // State keys carry a query number; this state is the subscription's own.
        let pipeline = Pipeline::for_join(Join::new(0, join, plan.filter.clone()));
        let limit = plan.limit;
        self.transient(
            defs,
            pipeline,
            Output::Project(Box::new(plan)),
            limit,
            start,
            TRANSIENT_JOIN_STATE_ENTRIES,
            "The push query over a join".into(),
        )
    }

    /// Starts an aggregating push query (over a source, or a join): the Aggregate operator
    /// of a persistent query, on state in memory of at most `max_entries` entries (groups,
    /// windows, a table's source rows). Dropping the receiver stops it.
    pub fn push_aggregate(
        &self,
        plan: AggregatePushPlan,
        start: PushStart,
        max_entries: usize,
    ) -> Result<mpsc::Receiver<PushEvent>> {
        let keys = plan.group_by.len();
        let key_columns = plan
            .projection
            .iter()
            .map(|e| matches!(e, Expr::Column(i) if *i < keys))
            .collect();
        let what = match &plan.join {
            Some(_) => "The push query over a join".to_string(),
            None => format!("The push query on {}", plan.source.name),
        };
        let limit = plan.limit;
        let mut sink = plan.source.clone();
        sink.kind = SourceKind::Table;
        sink.topic = String::new();
        let query = Arc::new(QueryPlan {
            id: "transient".into(),
            num: 0,
            source: plan.source,
            sink,
            op: Operator::Aggregate {
                filter: plan.filter,
                group_by: plan.group_by,
                aggregates: plan.aggregates,
                having: plan.having,
                projection: plan.projection,
                window: plan.window,
            },
            join: plan.join.map(|j| *j),
        });
        let defs: Vec<SourceDef> = query.inputs().into_iter().cloned().collect();
        self.transient(
            defs,
            Pipeline::for_transient(&query),
            Output::Aggregated { key_columns },
            limit,
            start,
            max_entries,
            what,
        )
    }

    /// Starts a transient query reading `defs` (in log order) through `pipeline`.
    #[allow(clippy::too_many_arguments)]
    fn transient(
        &self,
        defs: Vec<SourceDef>,
        pipeline: Pipeline,
        output: Output,
        limit: Option<u64>,
        start: PushStart,
        bound: usize,
        what: String,
    ) -> Result<mpsc::Receiver<PushEvent>> {
        let log = self.log().clone();
        let mut topics = Vec::with_capacity(defs.len());
        for def in &defs {
            topics.push(log.topic(&def.topic).ok_or_else(|| {
                EngineError::Invalid(format!(
                    "topic {} of {} does not exist",
                    def.topic, def.name
                ))
            })?);
        }
        let slots: Vec<(usize, u32)> = topics
            .iter()
            .enumerate()
            .flat_map(|(i, t)| (0..t.partitions).map(move |p| (i, p)))
            .collect();
        // Every input starts at the same point, as a Kafka Streams topology's sources
        // share one offset reset policy in ksqlDB.
        let (mut positions, _) = crate::push::start_offsets(&log, &topics, &start)?;
        if let PushStart::Positions(list) = &start {
            if topics.len() > 1 {
                return Err(EngineError::Invalid(
                    "start positions name the partitions of one topic, and a push query over a join reads several: start it from the earliest or the latest records".into(),
                ));
            }
            for (p, o) in list {
                topics[0].check_partition(*p)?;
                positions[*p as usize] = *o;
            }
        }
        let env = Env {
            query_id: "transient".into(),
            source_topic: defs.first().map(|d| d.topic.clone()).unwrap_or_default(),
            proc_log: self.proc_log.clone(),
            stats: Arc::new(Stats::default()),
        };
        let mut run = Run {
            output,
            limit,
            what,
            defs,
            topics,
            slots,
            positions,
            pipeline,
            env,
            state: MemoryState::new(bound),
            bound,
            stream_times: Vec::new(),
            last_emits: Vec::new(),
            join_times: Vec::new(),
            seq: 0,
        };
        let (tx, rx) = mpsc::channel(CHANNEL);
        tokio::spawn(async move {
            let limit = run.limit;
            if limit == Some(0) {
                let _ = tx.send(PushEvent::LimitReached).await;
                return;
            }
            let mut changed: Vec<_> = run.topics.iter().map(|t| t.subscribe()).collect();
            let mut sent = 0u64;
            loop {
                for c in &mut changed {
                    c.borrow_and_update();
                }
                let log2 = log.clone();
                let joined = crate::blocking::run(move || -> (Run, Stepped) {
                    let stepped = step(&mut run, &log2);
                    (run, stepped)
                })
                .await;
                let stepped: Stepped;
                (run, stepped) = match joined {
                    Ok(pair) => pair,
                    // Only a cancelled blocking task gets here (the runtime shutting down).
                    Err(_) => return,
                };
                for event in stepped.events {
                    let is_row = matches!(event, PushEvent::Row { .. });
                    if tx.send(event).await.is_err() {
                        return;
                    }
                    if is_row {
                        sent += 1;
                        if limit.is_some_and(|l| sent >= l) {
                            let _ = tx.send(PushEvent::LimitReached).await;
                            return;
                        }
                    }
                }
                if stepped.stop {
                    return;
                }
                if !stepped.read {
                    tokio::select! {
                        _ = any_changed(&mut changed) => {}
                        _ = tx.closed() => return,
                    }
                }
            }
        });
        Ok(rx)
    }
}

/// Ends the query: what it produced so far, then the failure.
fn failed(mut events: Vec<PushEvent>, message: String, kind: FailureKind) -> Stepped {
    events.push(PushEvent::Failed { message, kind });
    Stepped {
        events,
        read: true,
        stop: true,
    }
}

/// Reads what the inputs have next and runs it through the pipeline, in log order.
fn step(run: &mut Run, log: &EmbeddedLog) -> Stepped {
    let mut read = Vec::with_capacity(run.slots.len());
    for (s, &(i, p)) in run.slots.iter().enumerate() {
        match log.read(&run.topics[i], p, run.positions[s], READ) {
            Ok(records) => read.push(records),
            Err(e) => {
                let message = format!("reading {}: {e}", run.topics[i].name);
                return failed(Vec::new(), message, FailureKind::of_read(&e));
            }
        }
    }
    let order = processing_order(&read, READ);
    let mut events = Vec::new();
    let mut batch = Batch {
        txn: Txn::default(),
        state: &mut run.state,
        emit: true,
        null_key: false,
        stream_times: std::mem::take(&mut run.stream_times),
        last_emits: std::mem::take(&mut run.last_emits),
        seq: run.seq,
        join_times: std::mem::take(&mut run.join_times),
        join_seq_of: 0,
        join_sub: 0,
    };
    let mut emitted = Vec::new();
    for &(s, at) in &order {
        let rec = &read[s][at];
        let input = run.slots[s].0;
        run.positions[s] = rec.offset + 1;
        batch.seq += 1;
        let (src, rowtime) = match decode_input(&run.defs[input], rec) {
            Ok(Some(decoded)) => decoded,
            Ok(None) => continue,
            Err(e) => {
                events.push(PushEvent::Skipped {
                    partition: rec.partition,
                    offset: rec.offset,
                    message: e.to_string(),
                });
                continue;
            }
        };
        let change = Change {
            row: src.row,
            tombstone: src.tombstone,
            rowtime,
            input,
            position: (rec.partition, rec.offset),
            window: None,
        };
        // A panic may leave the in-memory state half-updated, and there is no committed
        // state to go back to: the query stops with the reason rather than go on from it.
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let mut cx = Cx {
                b: &mut batch,
                env: &run.env,
            };
            run.pipeline.process(&mut cx, change, &mut emitted)
        }));
        match result {
            Ok(Ok(())) => {}
            // A late record, a NULL key: skipped, as a persistent query skips it.
            Ok(Err(e)) => events.push(PushEvent::Skipped {
                partition: rec.partition,
                offset: rec.offset,
                message: e.to_string(),
            }),
            Err(_) => {
                return failed(
                    events,
                    format!(
                        "internal error processing the record at partition {}, offset {} of {}; the push query stopped",
                        rec.partition, rec.offset, run.topics[input].name
                    ),
                    FailureKind::Internal,
                );
            }
        }
        // Past the bound, the record's rows are not sent: the query stops before it.
        if batch.state.exhausted() {
            return failed(
                events,
                exhausted(&run.what, run.bound),
                FailureKind::ResourceExhausted,
            );
        }
        rows(
            &run.output,
            (rec.partition, rec.offset),
            emitted.drain(..),
            &mut events,
        );
    }
    if !order.is_empty() {
        // Stream time has moved: expired windows and join buffers go.
        let mut cx = Cx {
            b: &mut batch,
            env: &run.env,
        };
        if let Err(e) = run.pipeline.on_time(&mut cx, &mut emitted) {
            return failed(events, e.to_string(), FailureKind::Internal);
        }
        rows(&run.output, (0, 0), emitted.drain(..), &mut events);
    }
    run.seq = batch.seq;
    run.stream_times = batch.stream_times;
    run.last_emits = batch.last_emits;
    run.join_times = batch.join_times;
    Stepped {
        events,
        read: !order.is_empty(),
        stop: false,
    }
}

fn exhausted(what: &str, bound: usize) -> String {
    format!(
        "{what} holds more than {bound} state entries (groups, windows, table rows) in memory; create a table or stream AS SELECT it and push-query that instead"
    )
}

/// The rows a transient query sends for what its pipeline emitted while processing the
/// record at `position`.
fn rows(
    output: &Output,
    position: (u32, u64),
    emitted: impl Iterator<Item = Change>,
    events: &mut Vec<PushEvent>,
) {
    for c in emitted {
        let row = match output {
            // A table-table join's deletes pass, as a push query over a table passes its
            // tombstones.
            Output::Project(plan) => {
                if !c.tombstone && !plan.filter.as_ref().is_none_or(|f| f.test(&c.row)) {
                    continue;
                }
                plan.projection.iter().map(|e| e.eval(&c.row)).collect()
            }
            // A tombstone carries the group's key columns only, as a table's tombstones
            // do in push queries.
            Output::Aggregated { key_columns } if c.tombstone => c
                .row
                .into_iter()
                .zip(key_columns.iter().chain(std::iter::repeat(&false)))
                .map(|(v, key)| if *key { v } else { Value::Null })
                .collect(),
            Output::Aggregated { .. } => c.row,
        };
        events.push(PushEvent::Row {
            row,
            partition: position.0,
            offset: position.1,
            position: 0,
            tombstone: c.tombstone,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_common::{Column, ColumnRole, DataType, FormatKind, FormatSpec, Schema, WindowKind};
    use sluice_expr::{AggCall, AggKind, BinaryOp};
    use sluice_plan::WindowPlan;
    use sluice_storage::Record;
    use std::time::Duration;

    /// A JSON source `S (K STRING key, G STRING)` on topic `s`.
    pub(super) fn source(kind: SourceKind) -> SourceDef {
        let col = |n: &str, t: DataType, role: ColumnRole| Column {
            name: n.into(),
            data_type: t,
            role,
        };
        let key_role = match kind {
            SourceKind::Table => ColumnRole::PrimaryKey,
            SourceKind::Stream => ColumnRole::Key,
        };
        SourceDef {
            id: 1,
            name: "S".into(),
            kind,
            schema: Schema::new(vec![
                col("K", DataType::String, key_role),
                col("G", DataType::String, ColumnRole::Value),
            ]),
            topic: "s".into(),
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

    /// `SELECT G, COUNT(*) FROM S GROUP BY G [HAVING COUNT(*) > 1]`: the row the
    /// projection reads is `[G, ROWTIME, COUNT]`.
    pub(super) fn count_by_g(kind: SourceKind, having: bool) -> AggregatePushPlan {
        AggregatePushPlan {
            source: source(kind),
            filter: None,
            group_by: vec![Expr::Column(1)],
            aggregates: vec![AggCall::new(AggKind::CountStar, None, None)],
            having: having.then(|| Expr::Binary {
                op: BinaryOp::Gt,
                left: Box::new(Expr::Column(2)),
                right: Box::new(Expr::Literal(Value::BigInt(1))),
            }),
            projection: vec![Expr::Column(0), Expr::Column(2)],
            limit: None,
            window: None,
            join: None,
        }
    }

    /// Writes `(key, G or a delete, timestamp)` records to topic `s`, runs the push
    /// aggregation from the earliest records and returns its first `n` events.
    async fn run(
        plan: AggregatePushPlan,
        records: &[(&str, Option<&str>, i64)],
        max_entries: usize,
        n: usize,
    ) -> Vec<PushEvent> {
        let dir = tempfile::tempdir().unwrap();
        let log = Arc::new(EmbeddedLog::open(dir.path()).unwrap());
        let topic = log.create_topic("s", 1).unwrap();
        let mut txn = Txn::new();
        for (k, g, ts) in records {
            txn.append(
                &topic,
                0,
                Record {
                    key: Some(k.as_bytes().to_vec()),
                    value: g.map(|g| format!(r#"{{"G":"{g}"}}"#).into_bytes()),
                    timestamp: *ts,
                    headers: Vec::new(),
                },
            );
        }
        log.submit(txn).wait().await.unwrap();
        let engine = Engine::new(log.clone()).unwrap();
        let mut rx = engine
            .push_aggregate(plan, PushStart::Earliest, max_entries)
            .unwrap();
        let mut events = Vec::new();
        while events.len() < n {
            match tokio::time::timeout(Duration::from_secs(20), rx.recv()).await {
                Ok(Some(e)) => events.push(e),
                _ => break,
            }
        }
        events
    }

    /// The rows of `events`, as (G, COUNT or NULL, tombstone).
    fn rows(events: &[PushEvent]) -> Vec<(String, Option<i64>, bool)> {
        events
            .iter()
            .filter_map(|e| match e {
                PushEvent::Row { row, tombstone, .. } => {
                    Some((row[0].to_string(), row[1].as_i64(), *tombstone))
                }
                _ => None,
            })
            .collect()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_update_is_sent_and_a_table_row_moving_groups_retracts_first() {
        let records = [
            ("1", Some("x"), 1),
            ("2", Some("x"), 2),
            ("1", Some("y"), 3),
        ];
        let stream = run(count_by_g(SourceKind::Stream, false), &records, 100, 3).await;
        assert_eq!(
            rows(&stream),
            [
                ("x".into(), Some(1), false),
                ("x".into(), Some(2), false),
                ("y".into(), Some(1), false)
            ]
        );
        // Over a table, key 1 moving from x to y takes itself out of x first.
        let table = run(count_by_g(SourceKind::Table, false), &records, 100, 4).await;
        assert_eq!(
            rows(&table),
            [
                ("x".into(), Some(1), false),
                ("x".into(), Some(2), false),
                ("x".into(), Some(1), false),
                ("y".into(), Some(1), false)
            ]
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_group_leaving_having_is_a_tombstone_with_its_key_only() {
        let records = [("1", Some("x"), 1), ("2", Some("x"), 2), ("2", None, 3)];
        let events = run(count_by_g(SourceKind::Table, true), &records, 100, 2).await;
        assert_eq!(
            rows(&events),
            [("x".into(), Some(2), false), ("x".into(), None, true)]
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn state_beyond_its_bound_fails_the_query() {
        let records = [
            ("1", Some("x"), 1),
            ("2", Some("y"), 2),
            ("3", Some("z"), 3),
        ];
        let events = run(count_by_g(SourceKind::Stream, false), &records, 2, 4).await;
        // The third group is past the bound: its row is not sent.
        assert_eq!(rows(&events).len(), 2, "{events:?}");
        match events.last() {
            Some(PushEvent::Failed {
                message,
                kind: FailureKind::ResourceExhausted,
            }) => assert!(message.contains("more than 2 state entries"), "{message}"),
            other => panic!("{other:?}"),
        }
    }

    /// Session windows run as the persistent aggregation's do: a record bridging two
    /// sessions merges them, and the merged-away session is deleted (a tombstone).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sessions_merge_and_the_merged_away_session_is_deleted() {
        let mut plan = count_by_g(SourceKind::Stream, false);
        plan.window = Some(WindowPlan {
            kind: WindowKind::Session,
            size_ms: 10,
            advance_ms: 10,
            grace_ms: 1_000,
            retention_ms: 10_000,
            emit_final: false,
        });
        // [G, ROWTIME, WINDOWSTART, WINDOWEND, COUNT]
        plan.projection = vec![Expr::Column(0), Expr::Column(4), Expr::Column(2)];
        let records = [
            ("1", Some("x"), 100),
            ("2", Some("x"), 120),
            ("3", Some("x"), 110),
        ];
        let events = run(plan, &records, 100, 5).await;
        let got: Vec<(Option<i64>, Option<i64>, bool)> = events
            .iter()
            .filter_map(|e| match e {
                PushEvent::Row { row, tombstone, .. } => {
                    Some((row[1].as_i64(), row[2].as_i64(), *tombstone))
                }
                _ => None,
            })
            .collect();
        assert_eq!(
            got,
            [
                (Some(1), Some(100), false),
                (Some(1), Some(120), false),
                // 110 bridges [100] and [120]: both go, one session of three remains.
                (None, None, true),
                (None, None, true),
                (Some(3), Some(100), false),
            ]
        );
    }
}

/// Differential property test: a push aggregation (state in memory) sends exactly the
/// records the persistent aggregation over the same input writes (durable state): one
/// Aggregate operator behind two state stores.
#[cfg(test)]
mod property {
    use super::tests::{count_by_g, source};
    use super::*;
    use proptest::prelude::*;
    use sluice_common::{Column, ColumnRole, DataType, Schema};
    use sluice_storage::Record;
    use std::time::Duration;

    /// (key 0..3, group 0..3 or a delete, timestamp)
    type Event = (u8, Option<u8>, i64);

    fn persistent_plan(kind: SourceKind, having: bool) -> QueryPlan {
        let push = count_by_g(kind, having);
        let mut sink = source(SourceKind::Table);
        sink.id = 7;
        sink.name = "OUT".into();
        sink.topic = "out".into();
        sink.schema = Schema::new(vec![
            Column {
                name: "G".into(),
                data_type: DataType::String,
                role: ColumnRole::PrimaryKey,
            },
            Column {
                name: "N".into(),
                data_type: DataType::BigInt,
                role: ColumnRole::Value,
            },
        ]);
        QueryPlan {
            id: "Q".into(),
            num: 9,
            source: push.source.clone(),
            sink,
            op: Operator::Aggregate {
                filter: push.filter,
                group_by: push.group_by,
                aggregates: push.aggregates,
                having: push.having,
                projection: push.projection,
                window: None,
            },
            join: None,
        }
    }

    async fn both(
        kind: SourceKind,
        having: bool,
        events: &[Event],
    ) -> (Vec<(String, Option<i64>)>, Vec<(String, Option<i64>)>) {
        let dir = tempfile::tempdir().unwrap();
        let log = Arc::new(EmbeddedLog::open(dir.path()).unwrap());
        let topic = log.create_topic("s", 1).unwrap();
        let mut txn = Txn::new();
        for (k, g, ts) in events {
            txn.append(
                &topic,
                0,
                Record {
                    key: Some(format!("k{k}").into_bytes()),
                    value: g.map(|g| format!(r#"{{"G":"g{g}"}}"#).into_bytes()),
                    timestamp: *ts,
                    headers: Vec::new(),
                },
            );
        }
        log.submit(txn).wait().await.unwrap();
        let engine = Engine::new(log.clone()).unwrap();
        let plan = persistent_plan(kind, having);
        engine.start_query(plan.clone()).unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while (engine.status("Q").unwrap().processed as usize) < events.len()
            && std::time::Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        let out = log.topic("out").unwrap();
        let persistent: Vec<(String, Option<i64>)> = log
            .read(&out, 0, 0, 100_000)
            .unwrap()
            .iter()
            .map(|r| {
                let src = crate::rows::decode_record(&plan.sink, r).unwrap();
                let n = if src.tombstone {
                    None
                } else {
                    src.row[1].as_i64()
                };
                (src.row[0].to_string(), n)
            })
            .collect();
        let mut push = count_by_g(kind, having);
        push.limit = Some(persistent.len() as u64);
        let mut rx = engine
            .push_aggregate(push, PushStart::Earliest, 10_000)
            .unwrap();
        let mut pushed = Vec::new();
        while let Some(event) = tokio::time::timeout(Duration::from_secs(20), rx.recv())
            .await
            .unwrap()
        {
            match event {
                PushEvent::Row { row, tombstone, .. } => {
                    let n = if tombstone { None } else { row[1].as_i64() };
                    pushed.push((row[0].to_string(), n));
                }
                PushEvent::LimitReached => break,
                PushEvent::Skipped { .. } => {}
                PushEvent::Failed { message, .. } => panic!("{message}"),
            }
        }
        engine.shutdown().await;
        (persistent, pushed)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]

        #[test]
        fn a_push_aggregation_sends_what_the_persistent_one_writes(
            events in prop::collection::vec(
                (0u8..3, prop::option::weighted(0.8, 0u8..3), 0i64..1000),
                1..40,
            ),
            table in any::<bool>(),
            having in any::<bool>(),
        ) {
            let kind = if table { SourceKind::Table } else { SourceKind::Stream };
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            let (persistent, pushed) = rt.block_on(both(kind, having, &events));
            prop_assert_eq!(pushed, persistent);
        }
    }
}
