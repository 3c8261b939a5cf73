//! The ends of a pipeline: the sink, which appends a query's output records to its topic
//! and keeps a table sink's rows for pull queries, and the materializer of a source
//! table's rows.

use super::{Change, Cx, Operator};
use crate::keys::table_key;
use crate::query::Batch;
use crate::rows::{encode_row_record, string_timestamp};
use crate::{EngineError, Result};
use sluice_common::{SourceDef, SourceKind, Value};
use sluice_plan::{Operator as OperatorPlan, QueryPlan};
use sluice_storage::Topic;
use std::sync::Arc;

/// Where a query's outputs go: its sink topic, and the sink's table rows.
pub(crate) struct Sink {
    plan: Arc<QueryPlan>,
    topic: Option<Arc<Topic>>,
}

impl Sink {
    pub(crate) fn new(plan: Arc<QueryPlan>, topic: Option<Arc<Topic>>) -> Sink {
        Sink { plan, topic }
    }

    /// Appends one output row to the sink topic, and upserts or deletes it in the sink's
    /// table store when the sink is a table. A row of a window `(start, end)` has the
    /// window in the record's key and the table row's key.
    pub(crate) fn emit(&self, b: &mut Batch, change: Change) -> Result<()> {
        let Change {
            row: mut out,
            rowtime,
            tombstone,
            window,
            ..
        } = change;
        let plan = &*self.plan;
        let sink = &plan.sink;
        let bounds = window.map(|(s, e)| [Value::BigInt(s), Value::BigInt(e)]);
        if let Some(bounds) = &bounds {
            out.truncate(sink.schema.len());
            out.extend(bounds.iter().cloned());
        }
        let rowtime = self.emit_record(b, &out, rowtime, tombstone)?;
        if sink.kind == SourceKind::Table {
            let nkeys = sink.schema.key_count();
            let key = match &bounds {
                Some(bounds) => {
                    let mut k = out[..nkeys].to_vec();
                    k.extend(bounds.iter().cloned());
                    table_key(sink.id, &k)
                }
                None => table_key(sink.id, &out[..nkeys]),
            };
            let row = (!tombstone).then(|| {
                // Position of the output record is not known until commit; pull queries
                // expose ROWTIME only. A windowed row's bounds come after them.
                if bounds.is_some() {
                    out.truncate(sink.schema.len());
                }
                out.push(Value::BigInt(rowtime));
                out.push(Value::Null);
                out.push(Value::Null);
                out.extend(bounds.into_iter().flatten());
                out
            });
            b.state.set(key, row);
        }
        Ok(())
    }

    /// Appends one output row to the sink topic; returns the record's timestamp.
    pub(crate) fn emit_record(
        &self,
        b: &mut Batch,
        out: &[Value],
        rowtime: i64,
        tombstone: bool,
    ) -> Result<i64> {
        let plan = &*self.plan;
        let sink = &plan.sink;
        // A sink WITH (TIMESTAMP='col') stamps its records with that column.
        let rowtime = match sink
            .timestamp_column
            .as_ref()
            .and_then(|c| sink.schema.index_of(c))
        {
            Some(i) => match out.get(i) {
                Some(Value::Timestamp(t)) => *t,
                // A string column is read with the sink's TIMESTAMP_FORMAT; a record whose
                // text does not parse is not written, as in ksqlDB.
                Some(Value::String(text)) => {
                    string_timestamp(text, sink.timestamp_format.as_deref()).ok_or_else(|| {
                        EngineError::Invalid(format!(
                            "cannot parse output timestamp '{text}'; record not written"
                        ))
                    })?
                }
                Some(v) => v.as_i64().unwrap_or(rowtime),
                None => rowtime,
            },
            None => rowtime,
        };
        if rowtime < 0 {
            return Err(EngineError::Invalid(format!(
                "output timestamp {rowtime} is negative; record not written"
            )));
        }
        let mut record = encode_row_record(sink, out, rowtime, tombstone)?;
        // A stream query that does not re-key passes a record's key through, so a record
        // without one stays without one (as in ksqlDB), rather than getting a key of NULLs.
        if b.null_key && passes_key_through(plan) {
            record.key = None;
        }
        let topic = self
            .topic
            .as_ref()
            .ok_or_else(|| EngineError::Invalid("query has no sink topic".into()))?;
        // A windowed key is partitioned by its key without the window, as Kafka Streams'
        // WindowedStreamPartitioner does: every window of a group goes to the group's
        // partition (the one its stream time is kept for).
        let key = match (&sink.window, record.key.as_deref()) {
            (Some(spec), Some(bytes)) if topic.partitions > 1 => {
                Some(sluice_format::split_window(bytes, spec)?.0)
            }
            (_, key) => key,
        };
        let partition = topic.partition_for(key);
        // A replacement being built keeps its store and state only: the query it
        // replaces is still writing the topic (see `replace.rs`).
        if b.emit {
            b.txn.append(topic, partition, record);
        }
        Ok(rowtime)
    }

    /// The sink partition a group's records go to: the partition of its stream time.
    pub(crate) fn group_partition(&self, group: &[Value]) -> Result<u32> {
        let plan = &*self.plan;
        let Some(topic) = self.topic.as_ref().filter(|t| t.partitions > 1) else {
            return Ok(0);
        };
        let sink = &plan.sink;
        let key = sluice_format::encode_key(&sink.key_format, sink.schema.keys(), group)?;
        Ok(topic.partition_for(key.as_deref()))
    }
}

/// Whether the sink's key is the source's key, column for column, as a projection that
/// neither re-partitions nor groups leaves it.
fn passes_key_through(plan: &QueryPlan) -> bool {
    let OperatorPlan::Select { projection, .. } = &plan.op else {
        return false;
    };
    let keys = plan.source.schema.key_count();
    keys > 0
        && plan.sink.schema.key_count() == keys
        && (0..keys)
            .all(|i| matches!(projection.get(i), Some(sluice_expr::Expr::Column(c)) if *c == i))
}

/// Keeps a source table's rows (by key, and window for a windowed table) in its store,
/// for pull queries.
pub(crate) struct Materialize {
    table: SourceDef,
}

impl Materialize {
    pub(crate) fn new(table: SourceDef) -> Materialize {
        Materialize { table }
    }
}

impl Operator for Materialize {
    fn on_change(&self, cx: &mut Cx<'_, '_>, change: Change, _: &mut Vec<Change>) -> Result<()> {
        let table = &self.table;
        let nkeys = table.schema.key_count();
        let row = change.row;
        let key = if table.window.is_some() {
            // A windowed table has a row per key and window.
            let at = table.schema.len() + 3;
            let mut k: Vec<Value> = row.get(..nkeys).unwrap_or_default().to_vec();
            k.extend(row.get(at..at + 2).unwrap_or_default().iter().cloned());
            table_key(table.id, &k)
        } else {
            table_key(table.id, row.get(..nkeys).unwrap_or_default())
        };
        cx.b.state.set(key, (!change.tombstone).then_some(row));
        Ok(())
    }

    fn name(&self) -> &'static str {
        "Materialize"
    }
}
