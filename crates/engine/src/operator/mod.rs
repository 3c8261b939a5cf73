//! The operator layer: what a persistent query does to its records, as a chain of
//! operators behind one trait.
//!
//! A worker (`crate::query`) reads its inputs, decodes each record into a [`Change`] and
//! pushes it through its [`Pipeline`]: every operator takes the changes its upstream
//! emitted and emits its own to the next. A query's pipeline is
//!
//! ```text
//!   [Join]  →  Select | Aggregate  →  Sink        (a persistent query)
//!   Materialize                                   (a source table's store)
//! ```
//!
//! where the join front (one operator for a chain of nested joins) is there when the query
//! joins. Operators keep their state only through [`crate::state::StateStore`] (the
//! batch's [`Cx::b`]`.state`), so where state lives is decided in one place; what they
//! write commits in the batch's one transaction with its outputs and consumed offsets.
//!
//! A new operator goes in a file of this folder and in [`Pipeline::for_query`].

mod aggregate;
mod join;
mod select;
mod sink;
mod window;

pub(crate) use aggregate::{Aggregate, HIDDEN_ROW, StateLayout, in_sink_row_layout};
pub(crate) use join::Join;
pub(crate) use sink::{Materialize, Sink};

use crate::Result;
use crate::query::{Batch, Stats};
use sluice_common::Value;
use sluice_plan::{Operator as OperatorPlan, QueryPlan};
use sluice_storage::{Record, Topic, Txn};
use std::sync::Arc;
use std::sync::atomic::Ordering;

/// One row flowing between operators: a source record decoded, a join's result, or an
/// operator's output.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Change {
    /// The row in the layout the receiving operator reads (a source's: keys, values,
    /// ROWTIME, ROWPARTITION, ROWOFFSET (, window); an output: the sink's columns).
    pub row: Vec<Value>,
    /// A delete of the row's key (a table's), or a stream record without a value.
    pub tombstone: bool,
    pub rowtime: i64,
    /// Which of the query's inputs a source change is from (0 for everything else).
    pub input: usize,
    /// The record a source change is from: (partition, offset).
    pub position: (u32, u64),
    /// An output row's window `(start, end)`, when the query is windowed.
    pub window: Option<(i64, i64)>,
}

impl Change {
    /// An operator's output row.
    pub(crate) fn output(row: Vec<Value>, rowtime: i64, tombstone: bool) -> Change {
        Change {
            row,
            tombstone,
            rowtime,
            input: 0,
            position: (0, 0),
            window: None,
        }
    }
}

/// What an operator works in: the batch (its transaction, state and stream times) and
/// the query it belongs to.
pub(crate) struct Cx<'c, 'a> {
    pub b: &'c mut Batch<'a>,
    pub env: &'c Env,
}

/// A worker's surroundings, for its operators: the processing log and the query's
/// counters.
pub(crate) struct Env {
    /// The query (or materializer) id the processing log names.
    pub query_id: String,
    /// The topic its first input reads, named in processing-log entries about state.
    pub source_topic: String,
    pub proc_log: Arc<Topic>,
    pub stats: Arc<Stats>,
}

impl Env {
    /// Writes an entry to the processing log, in `txn` (so it commits with the batch):
    /// about the record at `at` of `topic`, or (`None`) about the query's state.
    pub(crate) fn processing_log(
        &self,
        txn: &mut Txn,
        topic: &str,
        at: Option<(u32, u64)>,
        message: &str,
    ) -> Result<()> {
        let (partition, offset) = (at.map(|a| a.0), at.map(|a| a.1));
        match at {
            Some(_) => {
                tracing::warn!(query = %self.query_id, ?partition, ?offset, "skipping record: {message}")
            }
            None => tracing::warn!(query = %self.query_id, "{message}"),
        }
        let value = serde_json::json!({
            "QUERY_ID": self.query_id,
            "TOPIC": topic,
            "PARTITION": partition,
            "OFFSET": offset,
            "MESSAGE": message,
        });
        let bytes =
            serde_json::to_vec(&value).map_err(|e| crate::EngineError::Invalid(e.to_string()))?;
        txn.append(
            &self.proc_log,
            0,
            Record {
                key: None,
                value: Some(bytes),
                timestamp: crate::query::now_ms(),
                headers: Vec::new(),
            },
        );
        Ok(())
    }
}

impl Cx<'_, '_> {
    /// Counts an error about the query's state (not about one record) and writes it to
    /// the processing log: never silently.
    pub(crate) fn state_error(&mut self, message: &str) -> Result<()> {
        self.env.stats.errors.fetch_add(1, Ordering::Relaxed);
        let topic = self.env.source_topic.clone();
        self.env
            .processing_log(&mut self.b.txn, &topic, None, message)
    }
}

/// One step of a query: changes in, changes out.
pub(crate) trait Operator: Send + Sync {
    /// Processes one change from upstream, pushing what it emits to `out`. An error is
    /// about the record being processed: the worker counts it and writes it to the
    /// processing log, and the query goes on.
    fn on_change(&self, cx: &mut Cx<'_, '_>, change: Change, out: &mut Vec<Change>) -> Result<()>;

    /// Runs once per batch, after its records, when stream time has moved: windows close
    /// and state retention has passed expires here.
    fn on_time(&self, _cx: &mut Cx<'_, '_>, _out: &mut Vec<Change>) -> Result<()> {
        Ok(())
    }

    /// The operator's line in a description of the pipeline.
    fn name(&self) -> &'static str;
}

/// A query's operators in order: each takes what the one before it emitted.
pub(crate) struct Pipeline {
    ops: Vec<Box<dyn Operator>>,
}

impl Pipeline {
    /// The pipeline of a persistent query: its joins, its operator, its sink.
    pub(crate) fn for_query(
        plan: &Arc<QueryPlan>,
        sink_topic: Option<Arc<Topic>>,
        layout: StateLayout,
    ) -> Pipeline {
        let sink = Arc::new(Sink::new(plan.clone(), sink_topic));
        let mut ops: Vec<Box<dyn Operator>> = Vec::new();
        if let Some(join) = join::Join::of_query(plan) {
            ops.push(Box::new(join));
        }
        ops.push(match &plan.op {
            OperatorPlan::Select { .. } => Box::new(select::Select::new(plan.clone())),
            OperatorPlan::Aggregate { .. } => {
                Box::new(Aggregate::new(plan.clone(), layout, sink.clone()))
            }
        });
        // An aggregation keeping its state in the sink's rows also appends its records
        // through the sink itself (see [`StateLayout::InSinkRow`]).
        ops.push(Box::new(SinkOperator(sink)));
        Pipeline { ops }
    }

    /// A push query's pipeline over a join: the join alone, whose rows the push query
    /// filters and projects as it does a source's.
    pub(crate) fn for_join(join: join::Join) -> Pipeline {
        Pipeline {
            ops: vec![Box::new(join)],
        }
    }

    /// A transient aggregation's pipeline: its joins, if any, and the Aggregate, whose rows
    /// go to the subscriber rather than a sink (its sink has no topic; the aggregation
    /// keeps its state apart).
    pub(crate) fn for_transient(plan: &Arc<QueryPlan>) -> Pipeline {
        let sink = Arc::new(Sink::new(plan.clone(), None));
        let mut ops: Vec<Box<dyn Operator>> = Vec::new();
        if let Some(join) = join::Join::of_query(plan) {
            ops.push(Box::new(join));
        }
        ops.push(Box::new(Aggregate::new(
            plan.clone(),
            StateLayout::Separate,
            sink,
        )));
        Pipeline { ops }
    }

    /// The pipeline of a source table's materializer.
    pub(crate) fn for_table(table: sluice_common::SourceDef) -> Pipeline {
        Pipeline {
            ops: vec![Box::new(Materialize::new(table))],
        }
    }

    /// Pushes one source change through every operator; what the last one emits (a
    /// pipeline without a sink: a push query's) goes to `out`.
    pub(crate) fn process(
        &self,
        cx: &mut Cx<'_, '_>,
        change: Change,
        out: &mut Vec<Change>,
    ) -> Result<()> {
        // The first operator takes the change itself: no vector per record on the way in.
        let Some(first) = self.ops.first() else {
            out.push(change);
            return Ok(());
        };
        let mut emitted = Vec::new();
        let result = first.on_change(cx, change, &mut emitted);
        self.run(cx, 1, emitted, out).and(result)
    }

    /// Runs every operator's [`Operator::on_time`], passing what each emits downstream.
    pub(crate) fn on_time(&self, cx: &mut Cx<'_, '_>, out: &mut Vec<Change>) -> Result<()> {
        for (i, op) in self.ops.iter().enumerate() {
            let mut emitted = Vec::new();
            let result = op.on_time(cx, &mut emitted);
            self.run(cx, i + 1, emitted, out)?;
            result?;
        }
        Ok(())
    }

    /// Feeds `changes` to the operators from `from` on. An operator that fails part-way
    /// (a record late for one of its hopping windows, say) still passes on what it
    /// emitted before the error, as a record's outputs up to a failure are written; the
    /// error is returned once they have gone through (the later operator's, when several
    /// failed).
    fn run(
        &self,
        cx: &mut Cx<'_, '_>,
        from: usize,
        mut changes: Vec<Change>,
        last: &mut Vec<Change>,
    ) -> Result<()> {
        let mut failed = None;
        for op in self.ops.iter().skip(from) {
            if changes.is_empty() {
                break;
            }
            let mut out = Vec::new();
            for c in changes {
                if let Err(e) = op.on_change(cx, c, &mut out) {
                    failed = Some(e);
                    break;
                }
            }
            changes = out;
        }
        last.extend(changes);
        match failed {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// The operators' names, in order (for logs and tests).
    pub(crate) fn names(&self) -> Vec<&'static str> {
        self.ops.iter().map(|op| op.name()).collect()
    }
}

/// The sink as the pipeline's last operator.
struct SinkOperator(Arc<Sink>);

impl Operator for SinkOperator {
    fn on_change(&self, cx: &mut Cx<'_, '_>, change: Change, _: &mut Vec<Change>) -> Result<()> {
        self.0.emit(cx.b, change)
    }

    fn name(&self) -> &'static str {
        "Sink"
    }
}
