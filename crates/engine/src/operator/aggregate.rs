//! Aggregate: GROUP BY with its aggregates, HAVING and projection, over a stream or a
//! table (whose updates retract the row's previous version from its group). Windowed
//! aggregation (tumbling, hopping, session windows, EMIT FINAL, retention) is in
//! `window.rs`.

use super::{Change, Cx, Operator, Sink};
use crate::keys::{agg_key, pending_final_key, source_row_key, table_key, window_expiry_key};
use crate::query::Batch;
use crate::{EngineError, Result};
use sluice_common::{SourceKind, Value};
use sluice_plan::{Operator as OperatorPlan, QueryPlan, WindowPlan};
use std::sync::Arc;

/// The window a windowed aggregation folds a record into, and the partition of its group.
#[derive(Clone, Copy)]
pub(super) struct WindowAt {
    pub start: i64,
    pub end: i64,
    pub partition: u32,
}

/// Where an aggregate query keeps each group's state.
#[derive(Clone, Copy, PartialEq, Debug)]
pub(crate) enum StateLayout {
    /// Under its own key (`'A'`), beside the sink table's row.
    Separate,
    /// Appended to the sink table's row (`'T'`), after its `row_len` values: one RocksDB
    /// write per group update instead of two. Used when the sink's key is the group key,
    /// no HAVING can hide a group, and the state has a fixed size (pull queries decode the
    /// whole row).
    InSinkRow { row_len: usize },
}

pub(crate) struct Aggregate {
    pub(super) plan: Arc<QueryPlan>,
    pub(super) layout: StateLayout,
    pub(super) sink: Arc<Sink>,
}

/// An output row, of a window when there is one.
pub(super) fn emit(
    out: &mut Vec<Change>,
    row: Vec<Value>,
    rowtime: i64,
    tombstone: bool,
    window: Option<(i64, i64)>,
) -> Result<()> {
    let mut change = Change::output(row, rowtime, tombstone);
    change.window = window;
    out.push(change);
    Ok(())
}

impl Operator for Aggregate {
    fn on_change(&self, cx: &mut Cx<'_, '_>, src: Change, emitted: &mut Vec<Change>) -> Result<()> {
        let plan = &*self.plan;
        let OperatorPlan::Aggregate {
            filter,
            group_by,
            window,
            ..
        } = &plan.op
        else {
            return Ok(());
        };
        let b = &mut *cx.b;
        let rowtime = src.rowtime;

        let passes = |row: &[Value]| filter.as_ref().is_none_or(|f| f.test(row));
        let group_of =
            |row: &[Value]| -> Vec<Value> { group_by.iter().map(|e| e.eval(row)).collect() };
        let new_group = if src.tombstone || !passes(&src.row) {
            None
        } else {
            let g = group_of(&src.row);
            if g.iter().any(Value::is_null) {
                return Err(EngineError::Invalid(
                    "GROUP BY key is NULL; record dropped".into(),
                ));
            }
            Some(g)
        };
        if let Some(w) = window {
            return match new_group {
                Some(g) => self.fold_windowed(w, &g, &src.row, rowtime, b, emitted),
                None => Ok(()),
            };
        }
        if plan.source.kind == SourceKind::Table {
            // A table update replaces the row: retract the previous version from
            // its group and add the new one. Within one group that is a single
            // change (one output); across groups, two, as in ksqlDB.
            let nkeys = plan.source.schema.key_count();
            let prev_key = source_row_key(plan.num, &src.row[..nkeys]);
            let prev = b.state.get(&prev_key)?.filter(|p| passes(p));
            b.state
                .set(prev_key, (!src.tombstone).then(|| src.row.clone()));
            let old_group = prev
                .as_ref()
                .map(|p| group_of(p))
                .filter(|g| !g.iter().any(Value::is_null));
            match (old_group, new_group) {
                (Some(og), Some(ng)) if og == ng => {
                    return self.fold(
                        &ng,
                        prev.as_deref(),
                        Some(&src.row),
                        rowtime,
                        b,
                        emitted,
                        None,
                    );
                }
                (old, new) => {
                    if let Some(og) = old {
                        self.fold(&og, prev.as_deref(), None, rowtime, b, emitted, None)?;
                    }
                    if let Some(ng) = new {
                        self.fold(&ng, None, Some(&src.row), rowtime, b, emitted, None)?;
                    }
                    return Ok(());
                }
            }
        }
        match new_group {
            Some(g) => self.fold(&g, None, Some(&src.row), rowtime, b, emitted, None),
            None => Ok(()),
        }
    }

    fn on_time(&self, cx: &mut Cx<'_, '_>, _out: &mut Vec<Change>) -> Result<()> {
        if let OperatorPlan::Aggregate {
            window: Some(w), ..
        } = &self.plan.op
        {
            self.expire_windows(w, cx)?;
        }
        Ok(())
    }

    fn name(&self) -> &'static str {
        "Aggregate"
    }
}

impl Aggregate {
    pub(crate) fn new(plan: Arc<QueryPlan>, layout: StateLayout, sink: Arc<Sink>) -> Aggregate {
        Aggregate { plan, layout, sink }
    }

    /// Adds (or retracts) one row into its group's aggregate state and emits the group's
    /// new result. HAVING hides a group: a group that stops passing is deleted downstream,
    /// one that never passed emits nothing.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn fold(
        &self,
        group: &[Value],
        retract: Option<&[Value]>,
        add: Option<&[Value]>,
        rowtime: i64,
        b: &mut Batch,
        emitted: &mut Vec<Change>,
        window: Option<WindowAt>,
    ) -> Result<()> {
        let plan = &*self.plan;
        let OperatorPlan::Aggregate {
            aggregates,
            having,
            projection,
            ..
        } = &plan.op
        else {
            return Ok(());
        };
        let key = match (window, self.layout) {
            // A group's state per window: the window's start follows the group key.
            (Some(w), _) => {
                let mut k = group.to_vec();
                k.push(Value::BigInt(w.start));
                agg_key(plan.num, &k)
            }
            (None, StateLayout::Separate) => agg_key(plan.num, group),
            (None, StateLayout::InSinkRow { .. }) => table_key(plan.sink.id, group),
        };
        // Taken out of the state store, not cloned: a group's state can be large (COLLECT_LIST,
        // COUNT_DISTINCT, HISTOGRAM), and copying it for every event made a hot group's
        // updates quadratic. Nothing below returns early before it is put back.
        // The pull-visible columns of an in-sink-row state's row, as stored.
        let mut visible: Option<Vec<Value>> = None;
        let mut existing = b.state.take(&key)?;
        if let (StateLayout::InSinkRow { row_len }, Some(row)) = (self.layout, &mut existing) {
            if row.len() < row_len {
                let message = format!(
                    "stored row of {} has {} values, fewer than its {row_len} columns",
                    plan.sink.name,
                    row.len()
                );
                b.state.set(key, existing);
                return Err(EngineError::Invalid(message));
            }
            visible = Some(row.drain(..row_len).collect::<Vec<Value>>());
        }
        // State is decoded by position: a stored state of another shape (written by another
        // plan of this query, or damaged) must not be read as this one's.
        let slots: usize = aggregates.iter().map(|a| a.slots()).sum();
        // A window's state ends with its timestamp: the highest ROWTIME folded into it,
        // which its results carry, as Kafka Streams' timestamped window store keeps it.
        let extra = usize::from(window.is_some());
        if let Some(state) = &existing
            && state.len() != slots + extra
        {
            let message = format!(
                "stored aggregate state of {} has {} values where this query's aggregates keep {}; record skipped",
                plan.sink.name,
                state.len(),
                slots + extra
            );
            // Put the entry back as it was stored (the row's visible part included).
            let restored = existing.map(|state| match visible {
                Some(mut row) => {
                    row.extend(state);
                    row
                }
                None => state,
            });
            b.state.set(key, restored);
            return Err(EngineError::Invalid(message));
        }
        let rowtime = match (window, &existing) {
            (Some(_), Some(state)) => state
                .last()
                .and_then(Value::as_i64)
                .map_or(rowtime, |t| t.max(rowtime)),
            _ => rowtime,
        };
        let bounds = window.map(|w| (w.start, w.end));
        let result_row = |state: &[Value]| aggregate_row(group, rowtime, bounds, aggregates, state);
        let was_visible = match (&existing, having) {
            (None, _) => false,
            (Some(_), None) => true,
            (Some(old), Some(h)) => h.test(&result_row(old)),
        };
        if let (Some(w), None) = (window, &existing) {
            // A new window: listed by start, so retention can expire it.
            let mut bounds = group.to_vec();
            bounds.extend([Value::BigInt(w.start), Value::BigInt(w.end)]);
            b.state.put(
                window_expiry_key(plan.num, w.partition, w.start, group),
                bounds,
            );
        }
        let mut state = match existing {
            Some(s) => s,
            None => {
                let mut s = Vec::new();
                for a in aggregates {
                    a.init(&mut s);
                }
                if window.is_some() {
                    s.push(Value::BigInt(rowtime));
                }
                s
            }
        };
        if window.is_some()
            && let Some(ts) = state.last_mut()
        {
            *ts = Value::BigInt(rowtime);
        }
        let mut slot = 0;
        for a in aggregates {
            let n = a.slots();
            if let Some(old) = retract {
                a.retract(&mut state[slot..slot + n], old);
            }
            if let Some(new) = add {
                a.update(&mut state[slot..slot + n], new);
            }
            slot += n;
        }
        let agg_row = result_row(&state);
        if let StateLayout::InSinkRow { .. } = self.layout {
            // No HAVING in this layout: every group is visible.
            let mut row: Vec<Value> = projection.iter().map(|e| e.eval(&agg_row)).collect();
            let emitted = self.sink.emit_record(b, &row, rowtime, false);
            let mut row = match &emitted {
                Ok(ts) => {
                    row.extend([Value::BigInt(*ts), Value::Null, Value::Null]);
                    row
                }
                // The output record was not written, so pull queries must not see the new
                // result either (as with separate state, where the sink row is only written
                // with its record): the row keeps what it showed, or is hidden if the group
                // had never been shown. The state still counts the record.
                Err(_) => match visible {
                    Some(shown) => shown,
                    None => {
                        row.extend([Value::BigInt(rowtime), HIDDEN_ROW, Value::Null]);
                        row
                    }
                },
            };
            row.extend(state);
            b.state.put(key, row);
            return emitted.map(|_| ());
        }
        b.state.put(key, state);
        let visible = having.as_ref().is_none_or(|h| h.test(&agg_row));
        if !visible && !was_visible {
            return Ok(());
        }
        let out: Vec<Value> = projection.iter().map(|e| e.eval(&agg_row)).collect();
        if let (
            Some(w),
            OperatorPlan::Aggregate {
                window:
                    Some(WindowPlan {
                        emit_final: true, ..
                    }),
                ..
            },
        ) = (window, &plan.op)
        {
            // EMIT FINAL: the window's latest result waits, in the state store, for the
            // window to close. A result HAVING hides was never shown: nothing is pending.
            let key = pending_final_key(plan.num, w.partition, w.start, group);
            let pending = visible.then(|| {
                let mut v = vec![
                    Value::BigInt(w.start),
                    Value::BigInt(w.end),
                    Value::BigInt(rowtime),
                ];
                v.extend(out);
                v
            });
            b.state.set(key, pending);
            return Ok(());
        }
        emit(
            emitted,
            out,
            rowtime,
            !visible,
            window.map(|w| (w.start, w.end)),
        )
    }
}

/// The row an aggregation's HAVING and projection read: `[group values..., ROWTIME,
/// (WINDOWSTART, WINDOWEND,) aggregate results...]`, the results computed from `state`'s
/// slots in order.
pub(crate) fn aggregate_row(
    group: &[Value],
    rowtime: i64,
    window: Option<(i64, i64)>,
    aggregates: &[sluice_expr::AggCall],
    state: &[Value],
) -> Vec<Value> {
    let mut r = Vec::with_capacity(group.len() + 3 + aggregates.len());
    r.extend_from_slice(group);
    r.push(Value::BigInt(rowtime));
    if let Some((start, end)) = window {
        r.extend([Value::BigInt(start), Value::BigInt(end)]);
    }
    let mut slot = 0;
    for a in aggregates {
        let n = a.slots();
        r.push(a.result(state.get(slot..slot + n).unwrap_or_default()));
        slot += n;
    }
    r
}

/// In a table row's ROWPARTITION slot (which stores leave NULL), marks a row that holds
/// an aggregate's state but no result yet: pull queries skip it.
pub(crate) const HIDDEN_ROW: Value = Value::Boolean(true);

/// The in-sink-row layout when `plan` allows it: an aggregation into a table, without
/// HAVING, whose key columns are its group values in order (so the group key is the table
/// key), and whose aggregates keep fixed-size state.
pub(crate) fn in_sink_row_layout(plan: &QueryPlan) -> Option<StateLayout> {
    let OperatorPlan::Aggregate {
        group_by,
        aggregates,
        having: None,
        projection,
        window: None,
        ..
    } = &plan.op
    else {
        return None;
    };
    let sink = &plan.sink;
    let keys = sink.schema.key_count();
    if sink.kind != SourceKind::Table
        || keys != group_by.len()
        || projection.len() != sink.schema.len()
        || (0..keys).any(|i| !matches!(projection[i], sluice_expr::Expr::Column(c) if c == i))
    {
        return None;
    }
    let mut state = Vec::new();
    for a in aggregates {
        a.init(&mut state);
    }
    if state
        .iter()
        .any(|v| matches!(v, Value::Array(_) | Value::Map(_) | Value::Struct(_)))
    {
        return None;
    }
    Some(StateLayout::InSinkRow {
        row_len: sink.schema.len() + 3,
    })
}
