//! The joins in front of a query's operator: stream-table, table-table (on the key or a
//! foreign key) and stream-stream joins, nested on the left for joins of more than two
//! sources, producing the joined rows the operator reads.
//!
//! Every join's state lives under `'J'` (see [`crate::keys`]), each nested join in its
//! own range of tags, written through the state store like any other state, so it
//! commits with the batch's outputs and offsets. A stream side of a stream-table join
//! keeps nothing: its record joins the table rows as they are when it is processed, which
//! the worker's log-order merge of the inputs makes "as of the record's arrival".

use super::{Change, Cx, Operator};
use crate::Result;
use crate::keys::join_entry_key;
use crate::query::Batch;
use crate::rows::SourceRow;
use sluice_common::{SourceDef, SourceKind, Value};
use sluice_expr::Expr;
use sluice_plan::{
    JoinInput, JoinPlan, JoinType, JoinWindow, Operator as OperatorPlan, QueryPlan, source_row_len,
};

/// Which input of the join a change comes from.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Side {
    Left,
    Right,
}

impl Side {
    fn tag(self) -> u8 {
        match self {
            Side::Left => 0,
            Side::Right => 1,
        }
    }

    fn other(self) -> Side {
        match self {
            Side::Left => Side::Right,
            Side::Right => Side::Left,
        }
    }
}

// The kinds of a join's entries; a join nested `d` levels deep adds `16 * d`.
/// A table side's row, by join key (0 left, 1 right).
const TABLE_ROW: u8 = 0;
/// A stream-stream join's buffered record (2 left, 3 right).
const BUFFERED: u8 = 2;
/// A stream-stream join's expiry index (4 left, 5 right).
const EXPIRY: u8 = 4;
/// An outer stream-stream join's record waiting for its window to close.
const PENDING: u8 = 6;
/// A foreign-key join's index of left keys by foreign key.
const FK_INDEX: u8 = 8;
/// A foreign-key join's left rows, by left key.
const FK_LEFT: u8 = 10;

/// One change of a join's side: a source's record, or a row of the join nested on the
/// left.
struct SideChange {
    /// The side's row: a source row, or the nested join's `rows`.
    row: Vec<Value>,
    tombstone: bool,
    rowtime: i64,
    /// The record it came from, for the joined row's ROWPARTITION and ROWOFFSET.
    position: (u32, u64),
    /// The side is a table: its changes replace the row of their key.
    table: bool,
    /// The key of a nested join's result: a table result's rows are replaced (or
    /// deleted, all NULL) by it.
    nested_key: Option<Value>,
}

/// What a join emits: joined rows (laid out as [`JoinPlan`] says) and their times.
type Out = Vec<(SourceRow, i64)>;

/// Whether the join has a result for a key whose left and right rows are present or not.
fn has_result(kind: JoinType, left: bool, right: bool) -> bool {
    match kind {
        JoinType::Inner => left && right,
        JoinType::Left => left,
        JoinType::Right => right,
        JoinType::Full => left || right,
    }
}

/// The state tag of an entry kind of `join`.
fn tag(join: &JoinPlan, kind: u8) -> u8 {
    kind + 16 * join.depth() as u8
}

/// A table side's stored row: its time, then the row.
fn stored(rowtime: i64, row: &[Value]) -> Vec<Value> {
    let mut v = Vec::with_capacity(row.len() + 1);
    v.push(Value::BigInt(rowtime));
    v.extend(row.iter().cloned());
    v
}

/// A stored table row's time and row.
fn unstored(v: &[Value]) -> (i64, &[Value]) {
    (
        v.first().and_then(Value::as_i64).unwrap_or(0),
        v.get(1..).unwrap_or_default(),
    )
}

/// The joins of a query, as one operator: a chain of joins nested on the left, which
/// takes the changes of every input (each of [`JoinPlan::sources`]) and emits joined rows.
pub(crate) struct Join {
    /// The number its state is keyed under (the query's).
    num: u64,
    join: JoinPlan,
    /// The query's WHERE clause, which decides which results of a table-table join are
    /// rows of the result table at all (see `table_change`).
    filter: Option<Expr>,
}

impl Join {
    /// The joins of a persistent query.
    pub(crate) fn of_query(plan: &QueryPlan) -> Option<Join> {
        let filter = match &plan.op {
            OperatorPlan::Select { filter, .. } => filter.clone(),
            OperatorPlan::Aggregate { .. } => None,
        };
        Some(Join::new(plan.num, plan.join.clone()?, filter))
    }

    pub(crate) fn new(num: u64, join: JoinPlan, filter: Option<Expr>) -> Join {
        Join { num, join, filter }
    }
}

impl Operator for Join {
    fn on_change(&self, cx: &mut Cx<'_, '_>, change: Change, out: &mut Vec<Change>) -> Result<()> {
        let mut joined = Vec::new();
        self.join_input(&self.join, &change, cx.b, self.filter.as_ref(), &mut joined)?;
        out.extend(joined.into_iter().map(|(row, t)| {
            let mut c = Change::output(row.row, t, row.tombstone);
            c.position = change.position;
            c
        }));
        Ok(())
    }

    /// Deletes the buffered rows of stream-stream joins that no later record can join.
    fn on_time(&self, cx: &mut Cx<'_, '_>, _out: &mut Vec<Change>) -> Result<()> {
        self.expire_join_rows(&self.join, cx.b)
    }

    fn name(&self) -> &'static str {
        "Join"
    }
}

impl Join {
    /// Routes a record through `join`: to the join nested on its left, whose results are
    /// changes of this join's left side, or to one of its sides.
    #[allow(clippy::too_many_arguments)]
    fn join_input(
        &self,
        join: &JoinPlan,
        change: &Change,
        b: &mut Batch,
        filter: Option<&Expr>,
        out: &mut Out,
    ) -> Result<()> {
        // The sources before this join's right one: one per nested join, and the first.
        let left_inputs = join.depth() + 1;
        if change.input >= left_inputs {
            let c = source_change(&join.right, change);
            return self.join_change(join, Side::Right, c, b, filter, out);
        }
        match &join.left {
            JoinInput::Source(def) => {
                let c = source_change(def, change);
                self.join_change(join, Side::Left, c, b, filter, out)
            }
            JoinInput::Join(inner) => {
                let mut inner_out = Vec::new();
                self.join_input(inner, change, b, None, &mut inner_out)?;
                // The inner joined row: key, rows, then ROWTIME, ROWPARTITION, ROWOFFSET.
                let (from, to) = (inner.key_len(), inner.key_len() + inner.rows_len());
                for (row, t) in inner_out {
                    let meta = |i: usize| row.row.get(to + i).and_then(Value::as_i64).unwrap_or(0);
                    let position = (meta(1) as u32, meta(2) as u64);
                    let change = SideChange {
                        row: row.row.get(from..to).unwrap_or_default().to_vec(),
                        tombstone: row.tombstone,
                        rowtime: t,
                        position,
                        table: inner.is_table(),
                        nested_key: row.row.first().cloned(),
                    };
                    self.join_change(join, Side::Left, change, b, filter, out)?;
                }
                Ok(())
            }
        }
    }

    /// One change of one side of `join`.
    #[allow(clippy::too_many_arguments)]
    fn join_change(
        &self,
        join: &JoinPlan,
        side: Side,
        change: SideChange,
        b: &mut Batch,
        filter: Option<&Expr>,
        out: &mut Out,
    ) -> Result<()> {
        let key = match (side, &change.nested_key) {
            // A nested table join's result is joined on its key (table-table joins are on
            // the left's key), which its deletes carry too.
            (Side::Left, Some(k)) if change.table => k.clone(),
            (Side::Left, _) => join.left_key.eval(&change.row),
            (Side::Right, _) => join.right_key.eval(&change.row),
        };
        // Rows of windowed sources match on key and window (their windowed keys).
        let key = match window_of(join, side, &change.row) {
            Some((start, end)) if !key.is_null() => Value::Array(vec![key, start, end]),
            _ => key,
        };
        if let Some(window) = &join.within {
            return self.windowed_change(join, window, side, change, key, b, out);
        }
        if join.foreign_key {
            return self.foreign_key_change(join, side, change, key, b, out);
        }
        if key.is_null() {
            // No row of the other side can match a NULL key, and a result keyed by NULL
            // could not be written: ksqlDB (Kafka Streams) drops such records too.
            return Err(crate::EngineError::Invalid(
                "join key is NULL; record dropped".into(),
            ));
        }
        let other = side.other();
        let other_is_table = match other {
            Side::Left => join.left_is_table(),
            Side::Right => join.right.kind == SourceKind::Table,
        };
        let other_key = join_entry_key(
            self.num,
            tag(join, TABLE_ROW + other.tag()),
            std::slice::from_ref(&key),
        );
        let (t, position) = (change.rowtime, change.position);
        if !change.table {
            // A stream record joins the table's current row; a record without a value
            // joins nothing.
            if change.tombstone {
                return Ok(());
            }
            let found = b.state.get(&other_key)?;
            let found_row = found.as_deref().map(|v| unstored(v).1);
            let (l, r) = match side {
                Side::Left => (true, found.is_some()),
                Side::Right => (found.is_some(), true),
            };
            if has_result(join.kind, l, r) {
                let row = joined_row(
                    join,
                    side,
                    &[key],
                    Some(&change.row),
                    found_row,
                    t,
                    position,
                );
                out.push((row, t));
            }
            return Ok(());
        }

        // A table update: keep the new row, then, when the other side is a table too,
        // emit the key's new result (or delete the one it had).
        let state_key = join_entry_key(
            self.num,
            tag(join, TABLE_ROW + side.tag()),
            std::slice::from_ref(&key),
        );
        let before = b.state.get(&state_key)?;
        let new = (!change.tombstone).then(|| change.row.clone());
        b.state.set(state_key, new.as_deref().map(|r| stored(t, r)));
        if !other_is_table {
            // A table update does not trigger a stream-table join.
            return Ok(());
        }
        let found = b.state.get(&other_key)?;
        let found = found.as_deref().map(unstored);
        // The result's time is the later of the two rows' times, as in Kafka Streams.
        let t = found.map_or(t, |(other_t, _)| t.max(other_t));
        let result = |this: Option<&[Value]>| {
            let (l, r) = match side {
                Side::Left => (this.is_some(), found.is_some()),
                Side::Right => (found.is_some(), this.is_some()),
            };
            has_result(join.kind, l, r).then(|| {
                joined_row(
                    join,
                    side,
                    std::slice::from_ref(&key),
                    this,
                    found.map(|f| f.1),
                    t,
                    position,
                )
            })
        };
        // A result the query's WHERE clause drops is no row of the result table: a key
        // whose result neither passed before nor passes now changes nothing downstream
        // (Kafka Streams' table filter, which sees the old result, forwards nothing).
        let passes = |r: &Option<SourceRow>| {
            r.as_ref()
                .is_some_and(|r| filter.is_none_or(|f| f.test(&r.row)))
        };
        let before_row = before.as_deref().map(|v| unstored(v).1);
        let (now, was) = (result(new.as_deref()), result(before_row));
        if passes(&now) || passes(&was) {
            let row = now.unwrap_or_else(|| tombstone_row(join, &[key], t, position));
            out.push((row, t));
        }
        Ok(())
    }

    /// A foreign-key table-table join's change (Kafka Streams' KTable foreign-key join):
    /// a left row joins the right row its foreign key names, and is indexed under that
    /// key so a right update reaches every left row referring to it. The result is keyed
    /// by the left row's key. `key` is the change's join expression: the foreign key of
    /// a left row, the key of a right one.
    #[allow(clippy::too_many_arguments)]
    fn foreign_key_change(
        &self,
        join: &JoinPlan,
        side: Side,
        change: SideChange,
        key: Value,
        b: &mut Batch,
        out: &mut Out,
    ) -> Result<()> {
        let (t, position) = (change.rowtime, change.position);
        let index_key = |fk: &Value, left_key: &[Value]| {
            let mut values = vec![fk.clone()];
            values.extend(left_key.iter().cloned());
            join_entry_key(self.num, tag(join, FK_INDEX), &values)
        };
        let right_key = |k: &Value| {
            join_entry_key(
                self.num,
                tag(join, TABLE_ROW + Side::Right.tag()),
                std::slice::from_ref(k),
            )
        };
        match side {
            Side::Left => {
                let nkeys = join.left_source().map_or(1, |d| d.schema.key_count());
                let left_key: Vec<Value> = change.row.iter().take(nkeys).cloned().collect();
                let state_key = join_entry_key(self.num, tag(join, FK_LEFT), &left_key);
                let old = b.state.get(&state_key)?;
                let new = (!change.tombstone).then(|| change.row.clone());
                // The index follows the row's foreign key.
                if let Some(o) = &old {
                    let old_fk = join.left_key.eval(unstored(o).1);
                    if !old_fk.is_null() {
                        let k = index_key(&old_fk, &left_key);
                        b.state.delete(k);
                    }
                }
                if new.is_some() && !key.is_null() {
                    let k = index_key(&key, &left_key);
                    b.state.put(k, left_key.clone());
                }
                b.state.set(state_key, new.as_deref().map(|r| stored(t, r)));
                let Some(new) = new else {
                    // A deleted left row deletes its result.
                    if old.is_some() {
                        out.push((tombstone_row(join, &left_key, t, position), t));
                    }
                    return Ok(());
                };
                let found = if key.is_null() {
                    None
                } else {
                    b.state.get(&right_key(&key))?
                };
                let found = found.as_deref().map(|v| unstored(v).1);
                let row = match (found, join.kind) {
                    (Some(r), _) => {
                        joined_row(join, side, &left_key, Some(&new), Some(r), t, position)
                    }
                    (None, JoinType::Left) => {
                        joined_row(join, side, &left_key, Some(&new), None, t, position)
                    }
                    // An inner join's updated row that no longer matches deletes its
                    // result; a new one that does not match has none.
                    (None, _) if old.is_some() => tombstone_row(join, &left_key, t, position),
                    (None, _) => return Ok(()),
                };
                out.push((row, t));
                Ok(())
            }
            Side::Right => {
                if key.is_null() {
                    return Ok(());
                }
                let new = (!change.tombstone).then(|| change.row.clone());
                b.state
                    .set(right_key(&key), new.as_deref().map(|r| stored(t, r)));
                let lo = join_entry_key(self.num, tag(join, FK_INDEX), std::slice::from_ref(&key));
                let hi =
                    sluice_storage::prefix_end(&lo).unwrap_or_else(|| vec![0xff; lo.len() + 1]);
                for (_, left_key) in b.state.range(&lo, &hi)? {
                    let left_row = join_entry_key(self.num, tag(join, FK_LEFT), &left_key);
                    let Some(left) = b.state.get(&left_row)? else {
                        continue;
                    };
                    let left = unstored(&left).1;
                    let row = match (&new, join.kind) {
                        (Some(r), _) => joined_row(
                            join,
                            Side::Left,
                            &left_key,
                            Some(left),
                            Some(r),
                            t,
                            position,
                        ),
                        (None, JoinType::Left) => {
                            joined_row(join, Side::Left, &left_key, Some(left), None, t, position)
                        }
                        (None, _) => tombstone_row(join, &left_key, t, position),
                    };
                    out.push((row, t));
                }
                Ok(())
            }
        }
    }

    /// A stream-stream join's change: it joins the other side's buffered rows of its
    /// key within the window, then waits in its own buffer for later ones, as Kafka
    /// Streams' KStreamKStreamJoin does (see ../shared/ksql-docs' join semantics).
    #[allow(clippy::too_many_arguments)]
    fn windowed_change(
        &self,
        join: &JoinPlan,
        window: &JoinWindow,
        side: Side,
        change: SideChange,
        key: Value,
        b: &mut Batch,
        out: &mut Out,
    ) -> Result<()> {
        let (t, position) = (change.rowtime, change.position);
        // This side's view of the window: how far before and after its record's time
        // the other side's records join it.
        let (before, after) = match side {
            Side::Left => (window.before_ms, window.after_ms),
            Side::Right => (window.after_ms, window.before_ms),
        };
        let outer = matches!(
            (side, join.kind),
            (_, JoinType::Full) | (Side::Left, JoinType::Left) | (Side::Right, JoinType::Right)
        );
        let grace = window.grace_ms.unwrap_or(sluice_plan::DEFAULT_GRACE_MS);
        // Each side's buffer holds its records for the window and the grace period,
        // measured by the latest time that side has seen (as each side's window store
        // in Kafka Streams); the join's stream time, for closing outer results, is the
        // later of the two.
        let retention = window.before_ms + window.after_ms + grace;
        let times = b.join_times_of(join.depth());
        times[side.tag() as usize] = times[side.tag() as usize].max(t);
        let own_time = times[side.tag() as usize];
        let other_time = times[side.other().tag() as usize];
        let stream_time = own_time.max(other_time);
        if change.tombstone {
            return Ok(());
        }
        if key.is_null() {
            if outer {
                let row = joined_row(join, side, &[key], Some(&change.row), None, t, position);
                out.push((row, t));
                return Ok(());
            }
            return Err(crate::EngineError::Invalid(
                "join key is NULL; record dropped".into(),
            ));
        }
        if window.grace_ms.is_some() && t == stream_time {
            self.emit_closed_outer_rows(join, after, grace, stream_time, b, out)?;
        }
        let (from, to) = (
            t.saturating_sub(before).max(0),
            t.saturating_add(after).max(0),
        );
        // Rows the other side has already expired are not joined, whether deleted yet
        // or not.
        let from = from.max(other_time.saturating_sub(retention).saturating_add(1));
        let other = side.other();
        let buffer = |s: Side| tag(join, BUFFERED + s.tag());
        let lo = join_entry_key(self.num, buffer(other), &[key.clone(), Value::BigInt(from)]);
        let hi = join_entry_key(
            self.num,
            buffer(other),
            &[key.clone(), Value::BigInt(to.saturating_add(1))],
        );
        let matches = b.state.range(&lo, &hi)?;
        for (_, kept) in &matches {
            let (other_t, seq) = time_seq(kept, 0);
            let row = kept.get(2..).unwrap_or_default();
            // A matched row no longer waits to be emitted NULL-joined.
            let pending = join_entry_key(
                self.num,
                tag(join, PENDING),
                &[
                    Value::BigInt(other_t),
                    Value::Int(other.tag() as i32),
                    Value::BigInt(seq),
                ],
            );
            b.state.delete(pending);
            let ts = t.max(other_t);
            let joined = joined_row(
                join,
                side,
                std::slice::from_ref(&key),
                Some(&change.row),
                Some(row),
                ts,
                position,
            );
            out.push((joined, ts));
        }
        let seq = b.next_join_seq();
        // Kept while a record of the other side may still join it (Kafka Streams' window
        // store keeps records for the window and the grace period).
        if t > own_time.saturating_sub(retention) {
            let seq = Value::BigInt(seq);
            let buffered = join_entry_key(
                self.num,
                buffer(side),
                &[key.clone(), Value::BigInt(t), seq.clone()],
            );
            let expiry = join_entry_key(
                self.num,
                tag(join, EXPIRY + side.tag()),
                &[Value::BigInt(t), seq.clone()],
            );
            let mut row = vec![Value::BigInt(t), seq.clone()];
            row.extend(change.row.iter().cloned());
            let index = vec![key.clone(), Value::BigInt(t), seq];
            for (k, v) in [(buffered, row), (expiry, index)] {
                b.state.put(k, v);
            }
        }
        if outer && matches.is_empty() {
            if window.grace_ms.is_none() || to < stream_time {
                // Without a grace period (or once its window has closed), a record that
                // matched nothing is emitted NULL-joined at once.
                let row = joined_row(join, side, &[key], Some(&change.row), None, t, position);
                out.push((row, t));
                return Ok(());
            }
            let pending = join_entry_key(
                self.num,
                tag(join, PENDING),
                &[
                    Value::BigInt(t),
                    Value::Int(side.tag() as i32),
                    Value::BigInt(seq),
                ],
            );
            let mut value = vec![
                Value::Int(side.tag() as i32),
                key,
                Value::BigInt(t),
                Value::BigInt(seq),
            ];
            value.extend(change.row);
            b.state.put(pending, value);
        }
        Ok(())
    }

    /// Emits, NULL-joined, the rows waiting for a match whose window has closed by
    /// `stream_time` (their time plus `after` and the grace period), oldest first.
    #[allow(clippy::too_many_arguments)]
    fn emit_closed_outer_rows(
        &self,
        join: &JoinPlan,
        after: i64,
        grace: i64,
        stream_time: i64,
        b: &mut Batch,
        out: &mut Out,
    ) -> Result<()> {
        let lo = join_entry_key(self.num, tag(join, PENDING), &[]);
        let cutoff = stream_time.saturating_sub(after).saturating_sub(grace);
        let hi = join_entry_key(self.num, tag(join, PENDING), &[Value::BigInt(cutoff)]);
        for (entry, value) in b.state.range(&lo, &hi)? {
            let (t, _) = time_seq(&value, 2);
            let (Some(Value::Int(side)), Some(key)) = (value.first(), value.get(1)) else {
                continue;
            };
            let side = if *side == 0 { Side::Left } else { Side::Right };
            let kept = value.get(4..).unwrap_or_default();
            let row = joined_row(
                join,
                side,
                std::slice::from_ref(key),
                Some(kept),
                None,
                t,
                (0, 0),
            );
            b.state.delete(entry);
            out.push((row, t));
        }
        Ok(())
    }

    /// Deletes the buffered rows of `join` (and the joins nested in it) that no later
    /// record can join: once their side's time has passed them by the window and the
    /// grace period. Join state stays bounded by the window.
    fn expire_join_rows(&self, join: &JoinPlan, b: &mut Batch) -> Result<()> {
        if let JoinInput::Join(inner) = &join.left {
            self.expire_join_rows(inner, b)?;
        }
        let Some(window) = &join.within else {
            return Ok(());
        };
        let grace = window.grace_ms.unwrap_or(sluice_plan::DEFAULT_GRACE_MS);
        let retention = window.before_ms + window.after_ms + grace;
        for side in [Side::Left, Side::Right] {
            // Up to and including `side time - retention`: those rows no longer join.
            let cutoff = b.join_times_of(join.depth())[side.tag() as usize]
                .saturating_sub(retention)
                .saturating_add(1);
            let expiry = tag(join, EXPIRY + side.tag());
            let lo = join_entry_key(self.num, expiry, &[]);
            let hi = join_entry_key(self.num, expiry, &[Value::BigInt(cutoff)]);
            for (entry, value) in b.state.range(&lo, &hi)? {
                let (t, seq) = time_seq(&value, 1);
                if let Some(key) = value.first() {
                    let buffered = join_entry_key(
                        self.num,
                        tag(join, BUFFERED + side.tag()),
                        &[key.clone(), Value::BigInt(t), Value::BigInt(seq)],
                    );
                    b.state.delete(buffered);
                }
                b.state.delete(entry);
            }
        }
        Ok(())
    }
}

/// A source's change as a change of a join side.
fn source_change(def: &SourceDef, change: &Change) -> SideChange {
    SideChange {
        row: change.row.clone(),
        tombstone: change.tombstone,
        rowtime: change.rowtime,
        position: change.position,
        table: def.kind == SourceKind::Table,
        nested_key: None,
    }
}

/// A windowed side's row's window bounds (after its ROWTIME, ROWPARTITION, ROWOFFSET).
fn window_of(join: &JoinPlan, side: Side, row: &[Value]) -> Option<(Value, Value)> {
    let def = match side {
        Side::Left => join.left_source()?,
        Side::Right => &join.right,
    };
    def.window?;
    let at = def.schema.len() + 3;
    Some((row.get(at)?.clone(), row.get(at + 1)?.clone()))
}

/// The (time, seq) a join entry's value holds at `at`.
fn time_seq(value: &[Value], at: usize) -> (i64, i64) {
    let get = |i: usize| value.get(i).and_then(Value::as_i64).unwrap_or(0);
    (get(at), get(at + 1))
}

/// A deleted result: the key, everything else NULL.
fn tombstone_row(join: &JoinPlan, key: &[Value], rowtime: i64, position: (u32, u64)) -> SourceRow {
    let mut row = joined_row(join, Side::Left, key, None, None, rowtime, position);
    row.tombstone = true;
    row
}

/// The row the join emits: `[key, left rows, right row, ROWTIME, ROWPARTITION,
/// ROWOFFSET]`, a missing side's rows all NULLs (see [`JoinPlan`]).
fn joined_row(
    join: &JoinPlan,
    side: Side,
    key: &[Value],
    this: Option<&[Value]>,
    other: Option<&[Value]>,
    rowtime: i64,
    (partition, offset): (u32, u64),
) -> SourceRow {
    let (left, right) = match side {
        Side::Left => (this, other),
        Side::Right => (other, this),
    };
    let mut row = Vec::with_capacity(join.row_len());
    // A windowed join matches on (key, start, end); the row holds the key, and ends with
    // the window.
    let mut bounds = None;
    match key {
        [Value::Array(parts)] if join.windowed() && parts.len() == 3 => {
            row.push(parts[0].clone());
            bounds = Some((parts[1].clone(), parts[2].clone()));
        }
        _ => row.extend(key.iter().cloned()),
    }
    for (part, len) in [
        (left, join.left_len()),
        (right, source_row_len(&join.right)),
    ] {
        match part {
            Some(values) => {
                row.extend(values.iter().take(len).cloned());
                row.extend((values.len()..len).map(|_| Value::Null));
            }
            None => row.extend((0..len).map(|_| Value::Null)),
        }
    }
    row.push(Value::BigInt(rowtime));
    row.push(Value::Int(partition as i32));
    row.push(Value::BigInt(offset as i64));
    if join.windowed() {
        let (start, end) = bounds
            .or_else(|| window_of(join, Side::Left, left?))
            .or_else(|| window_of(join, Side::Right, right?))
            .unwrap_or((Value::Null, Value::Null));
        row.push(start);
        row.push(end);
    }
    SourceRow {
        row,
        tombstone: false,
    }
}

/// Differential property tests: a join maintained incrementally (batches, commits,
/// a restart in between) equals the join recomputed from scratch over the same input.
#[cfg(test)]
mod property {
    use crate::keys::table_prefix;
    use crate::query::Engine;
    use proptest::prelude::*;
    use sluice_common::codec::decode_row;
    use sluice_common::{
        Column, ColumnRole, DataType, FormatKind, FormatSpec, Schema, SourceDef, SourceKind, Value,
    };
    use sluice_expr::Expr;
    use sluice_plan::{JoinInput, JoinPlan, JoinType, JoinWindow, Operator, QueryPlan};
    use sluice_storage::{Cf, EmbeddedLog, Log, Record, Topic, Txn};
    use std::collections::{BTreeMap, BTreeSet};
    use std::sync::Arc;
    use std::time::Duration;

    fn def(id: u64, name: &str, kind: SourceKind) -> SourceDef {
        let role = match kind {
            SourceKind::Table => ColumnRole::PrimaryKey,
            SourceKind::Stream => ColumnRole::Key,
        };
        SourceDef {
            id,
            name: name.into(),
            kind,
            schema: Schema::new(vec![
                Column {
                    name: "K".into(),
                    data_type: DataType::String,
                    role,
                },
                Column {
                    name: "V".into(),
                    data_type: DataType::BigInt,
                    role: ColumnRole::Value,
                },
            ]),
            topic: name.to_lowercase(),
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

    /// `[K, L.V, R.V]` of a join of L and R on K: in the joined row, the key, then
    /// L's row (K, V, ROWTIME, ROWPARTITION, ROWOFFSET) at 1, R's at 6.
    fn plan(kind: JoinType, sides: SourceKind, within: Option<JoinWindow>) -> QueryPlan {
        let (left, right) = (def(1, "L", sides), def(2, "R", sides));
        let mut sink = def(3, "OUT", sides);
        sink.schema.columns.push(Column {
            name: "W".into(),
            data_type: DataType::BigInt,
            role: ColumnRole::Value,
        });
        let mut source = def(4, "JOINED", sides);
        source.topic = String::new();
        QueryPlan {
            id: "Q".into(),
            num: 9,
            source,
            sink,
            op: Operator::Select {
                filter: None,
                projection: vec![Expr::Column(0), Expr::Column(2), Expr::Column(7)],
                table_functions: Vec::new(),
            },
            join: Some(JoinPlan {
                kind,
                left: JoinInput::Source(Box::new(left)),
                right,
                left_key: Expr::Column(0),
                right_key: Expr::Column(0),
                within,
                foreign_key: false,
            }),
        }
    }

    /// An input event: (side 0 left / 1 right, key, value or a delete, timestamp).
    type Event = (u8, u8, Option<i64>, i64);

    fn events() -> impl Strategy<Value = (Vec<Event>, Vec<usize>, usize)> {
        (
            prop::collection::vec(
                (
                    0u8..2,
                    0u8..3,
                    prop::option::weighted(0.8, 0i64..100),
                    0i64..100,
                ),
                1..40,
            ),
            prop::collection::vec(1usize..10, 1..6),
            0usize..6,
        )
    }

    async fn feed(log: &EmbeddedLog, topics: &[Arc<Topic>; 2], events: &[Event]) {
        let mut txn = Txn::new();
        for (side, k, v, ts) in events {
            txn.append(
                &topics[*side as usize],
                0,
                Record {
                    key: Some(format!("k{k}").into_bytes()),
                    value: v.map(|v| format!(r#"{{"V":{v}}}"#).into_bytes()),
                    timestamp: *ts,
                    headers: Vec::new(),
                },
            );
        }
        log.submit(txn).wait().await.unwrap();
    }

    /// Runs the plan over the events in chunks, restarting the engine after one; returns
    /// the sink table's rows (tables) or the sink's records (streams), as (K, L.V, R.V).
    async fn run(
        plan: QueryPlan,
        events: &[Event],
        sizes: &[usize],
        restart: usize,
    ) -> Vec<(String, Option<i64>, Option<i64>)> {
        let dir = tempfile::tempdir().unwrap();
        let log = Arc::new(EmbeddedLog::open(dir.path()).unwrap());
        let topics = [
            log.create_topic("l", 1).unwrap(),
            log.create_topic("r", 1).unwrap(),
        ];
        let mut engine = Engine::new(log.clone()).unwrap();
        engine.start_query(plan.clone()).unwrap();
        let (mut from, mut processed) = (0usize, 0u64);
        let mut chunks: Vec<usize> = sizes
            .iter()
            .scan(0, |at, n| {
                *at = (*at + n).min(events.len());
                Some(*at)
            })
            .collect();
        chunks.push(events.len());
        chunks.dedup();
        for (i, to) in chunks.iter().enumerate() {
            feed(&log, &topics, &events[from..*to]).await;
            processed += (*to - from) as u64;
            from = *to;
            let deadline = std::time::Instant::now() + Duration::from_secs(20);
            while engine.status("Q").unwrap().processed < processed
                && std::time::Instant::now() < deadline
            {
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            if i == restart % chunks.len() {
                processed = 0;
                engine.shutdown().await;
                engine = Engine::new(log.clone()).unwrap();
                engine.start_query(plan.clone()).unwrap();
            }
        }
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while engine.status("Q").unwrap().lag > 0 && std::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        engine.shutdown().await;
        let int = |v: &Value| v.as_i64();
        let mut out = Vec::new();
        if plan.sink.kind == SourceKind::Table {
            log.visit_prefix(Cf::State, &table_prefix(plan.sink.id), |_, v| {
                let row = decode_row(v).unwrap();
                out.push((row[0].to_string(), int(&row[1]), int(&row[2])));
                true
            })
            .unwrap();
        } else {
            let sink = log.topic("out").unwrap();
            for r in log.read(&sink, 0, 0, 100_000).unwrap() {
                let row = crate::rows::decode_record(&plan.sink, &r).unwrap().row;
                out.push((row[0].to_string(), int(&row[1]), int(&row[2])));
            }
        }
        out.sort();
        out
    }

    /// What a persistent query over the events wrote to its sink topic, in order, and
    /// what a push query over the same join (state in memory) sends, as (K, L.V, R.V,
    /// delete): the transient join must send exactly the persistent one's records.
    async fn persistent_and_push(
        plan: QueryPlan,
        events: &[Event],
    ) -> (
        Vec<(String, Option<i64>, Option<i64>, bool)>,
        Vec<(String, Option<i64>, Option<i64>, bool)>,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let log = Arc::new(EmbeddedLog::open(dir.path()).unwrap());
        let topics = [
            log.create_topic("l", 1).unwrap(),
            log.create_topic("r", 1).unwrap(),
        ];
        feed(&log, &topics, events).await;
        let engine = Engine::new(log.clone()).unwrap();
        engine.start_query(plan.clone()).unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while (engine.status("Q").unwrap().processed as usize) < events.len()
            && std::time::Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        let int = |v: &Value| v.as_i64();
        let sink = log.topic("out").unwrap();
        let persistent: Vec<_> = log
            .read(&sink, 0, 0, 100_000)
            .unwrap()
            .iter()
            .map(|r| {
                let src = crate::rows::decode_record(&plan.sink, r).unwrap();
                let row = src.row;
                (
                    row[0].to_string(),
                    int(&row[1]),
                    int(&row[2]),
                    src.tombstone,
                )
            })
            .collect();
        let Operator::Select { projection, .. } = &plan.op else {
            panic!("a select plan");
        };
        let push = sluice_plan::PushPlan {
            source: plan.source.clone(),
            filter: None,
            projection: projection.clone(),
            limit: Some(persistent.len() as u64),
            skip_null_keys: false,
            join: plan.join.clone().map(Box::new),
        };
        let mut rx = engine.push(push, crate::push::PushStart::Earliest).unwrap();
        let mut pushed = Vec::new();
        while let Some(event) = tokio::time::timeout(Duration::from_secs(20), rx.recv())
            .await
            .unwrap()
        {
            match event {
                crate::push::PushEvent::Row { row, tombstone, .. } => {
                    pushed.push((row[0].to_string(), int(&row[1]), int(&row[2]), tombstone))
                }
                crate::push::PushEvent::LimitReached => break,
                crate::push::PushEvent::Skipped { .. } => {}
                crate::push::PushEvent::Failed { message, .. } => panic!("{message}"),
            }
        }
        engine.shutdown().await;
        (persistent, pushed)
    }

    /// A record on the third input of an n-way join alone wakes the idle worker.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_record_on_any_input_of_an_n_way_join_is_processed() {
        let dir = tempfile::tempdir().unwrap();
        let log = Arc::new(EmbeddedLog::open(dir.path()).unwrap());
        let topics = ["l", "m", "r"].map(|t| log.create_topic(t, 1).unwrap());
        let mut p = plan(JoinType::Inner, SourceKind::Table, None);
        let j = p.join.take().expect("a join plan");
        // (L JOIN M ON K) JOIN R ON L.K: rows [key, L row, M row, R row, ...], five each.
        let mut r = def(5, "R", SourceKind::Table);
        r.topic = "r".into();
        let mut m = j.right.clone();
        m.topic = "m".into();
        p.join = Some(JoinPlan {
            kind: JoinType::Inner,
            left: JoinInput::Join(Box::new(JoinPlan { right: m, ..j })),
            right: r,
            left_key: Expr::Column(0),
            right_key: Expr::Column(0),
            within: None,
            foreign_key: false,
        });
        p.op = Operator::Select {
            filter: None,
            projection: vec![Expr::Column(0), Expr::Column(2), Expr::Column(12)],
            table_functions: Vec::new(),
        };
        let engine = Engine::new(log.clone()).unwrap();
        engine.start_query(p.clone()).unwrap();
        let lm = [topics[0].clone(), topics[1].clone()];
        feed(&log, &lm, &[(0, 1, Some(10), 0), (1, 1, Some(20), 0)]).await;
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while engine.status("Q").unwrap().processed < 2 && std::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        // Only the third input gets a record now.
        feed(
            &log,
            &[topics[2].clone(), topics[2].clone()],
            &[(0, 1, Some(30), 0)],
        )
        .await;
        while engine.status("Q").unwrap().processed < 3 && std::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        assert_eq!(engine.status("Q").unwrap().processed, 3);
        engine.shutdown().await;
        let mut rows = Vec::new();
        log.visit_prefix(Cf::State, &table_prefix(p.sink.id), |_, v| {
            rows.push(decode_row(v).unwrap());
            true
        })
        .unwrap();
        assert_eq!(rows.len(), 1, "{rows:?}");
        assert_eq!(
            (rows[0][1].as_i64(), rows[0][2].as_i64()),
            (Some(10), Some(30))
        );
    }

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap()
    }

    fn kind_of(k: u8) -> JoinType {
        [
            JoinType::Inner,
            JoinType::Left,
            JoinType::Right,
            JoinType::Full,
        ][k as usize % 4]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]

        /// A table-table join's result table equals the join of the two tables' final
        /// states, for every join type, whatever the batches and the restart.
        #[test]
        fn table_table_join_equals_a_recompute(
            (events, sizes, restart) in events(),
            kind in 0u8..4,
        ) {
            let kind = kind_of(kind);
            let got = runtime().block_on(run(plan(kind, SourceKind::Table, None), &events, &sizes, restart));
            let mut tables: [BTreeMap<String, i64>; 2] = Default::default();
            for (side, k, v, _) in &events {
                let t = &mut tables[*side as usize];
                match v {
                    Some(v) => t.insert(format!("k{k}"), *v),
                    None => t.remove(&format!("k{k}")),
                };
            }
            let keys: BTreeSet<&String> = tables[0].keys().chain(tables[1].keys()).collect();
            let mut want: Vec<(String, Option<i64>, Option<i64>)> = keys
                .into_iter()
                .filter_map(|k| {
                    let (l, r) = (tables[0].get(k).copied(), tables[1].get(k).copied());
                    let keep = match kind {
                        JoinType::Inner => l.is_some() && r.is_some(),
                        JoinType::Left => l.is_some(),
                        JoinType::Right => r.is_some(),
                        JoinType::Full => true,
                    };
                    keep.then(|| (k.clone(), l, r))
                })
                .collect();
            want.sort();
            prop_assert_eq!(got, want);
        }

        /// A push query over a join, its state in memory, sends exactly the records a
        /// persistent query over the same join writes with durable state: the two state
        /// stores behind one interface give one result.
        #[test]
        fn a_push_query_over_a_join_sends_what_the_persistent_query_writes(
            (events, _, _) in events(),
            kind in 0u8..4,
            streams in any::<bool>(),
            before in 0i64..30,
            after in 0i64..30,
        ) {
            let kind = kind_of(kind);
            let p = if streams {
                let window = JoinWindow { before_ms: before, after_ms: after, grace_ms: Some(1_000) };
                plan(kind, SourceKind::Stream, Some(window))
            } else {
                plan(kind, SourceKind::Table, None)
            };
            let (persistent, pushed) = runtime().block_on(persistent_and_push(p, &events));
            prop_assert_eq!(pushed, persistent);
        }

        /// A stream-stream inner join emits each pair of records of one key within the
        /// window exactly once (a grace period longer than the input, so nothing is late),
        /// whatever the order, the batches and the restart.
        #[test]
        fn stream_stream_inner_join_emits_each_pair_once(
            (events, sizes, restart) in events(),
            before in 0i64..30,
            after in 0i64..30,
        ) {
            let window = JoinWindow { before_ms: before, after_ms: after, grace_ms: Some(1_000) };
            let p = plan(JoinType::Inner, SourceKind::Stream, Some(window));
            let got = runtime().block_on(run(p, &events, &sizes, restart));
            let side = |s: u8| events.iter().filter(move |e| e.0 == s && e.2.is_some());
            let mut want = Vec::new();
            for (_, lk, lv, lt) in side(0) {
                for (_, rk, rv, rt) in side(1) {
                    if lk == rk && *rt >= lt - before && *rt <= lt + after {
                        want.push((format!("k{lk}"), *lv, *rv));
                    }
                }
            }
            want.sort();
            prop_assert_eq!(got, want);
        }
    }
}
