//! The join in front of a query's operator: stream-table and primary-key table-table
//! joins of two inputs, producing the joined rows the operator reads.
//!
//! A table side's rows are kept by join key under `'J'` (see [`crate::keys`]), written
//! through the batch's overlay like any other state, so they commit with the batch's
//! outputs and offsets. A stream side keeps nothing: its record joins the table rows as
//! they are when it is processed, which the worker's timestamp-ordered merge of the two
//! inputs makes "as of its own time".

use super::{Batch, Worker};
use crate::Result;
use crate::keys::{join_entry_key, join_key};
use crate::rows::{SourceRow, decode_record};
use sluice_common::{SourceDef, SourceKind, Value};
use sluice_plan::{JoinPlan, JoinType, JoinWindow, Operator, QueryPlan, source_row_len};
use sluice_storage::{Cf, StoredRecord};

/// A foreign-key join's left rows, by left key.
const FK_LEFT: u8 = 10;
/// A foreign-key join's index of left keys by foreign key.
const FK_INDEX: u8 = 8;

/// Which input of the join a record comes from.
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

/// Whether the join has a result for a key whose left and right rows are present or not.
fn has_result(kind: JoinType, left: bool, right: bool) -> bool {
    match kind {
        JoinType::Inner => left && right,
        JoinType::Left => left,
        JoinType::Right => right,
        JoinType::Full => left || right,
    }
}

impl Worker {
    pub(super) fn process_join(
        &self,
        plan: &QueryPlan,
        join: &JoinPlan,
        input: usize,
        rec: &StoredRecord,
        b: &mut Batch,
    ) -> Result<()> {
        let side = if input == 0 { Side::Left } else { Side::Right };
        let (def, key_expr) = match side {
            Side::Left => (&join.left, &join.left_key),
            Side::Right => (&join.right, &join.right_key),
        };
        let is_table = def.kind == SourceKind::Table;
        if is_table && def.schema.key_count() > 0 && rec.record.key.is_none() {
            return Ok(());
        }
        let src = decode_record(def, rec)?;
        let rowtime = row_time(def, &src.row, rec.record.timestamp);
        let key = key_expr.eval(&src.row);
        if let Some(window) = &join.within {
            return self.process_windowed(plan, join, window, side, src, key, rowtime, rec, b);
        }
        if join.foreign_key {
            return self.process_foreign_key(plan, join, side, src, key, rowtime, rec, b);
        }
        if key.is_null() {
            // No row of the other side can match a NULL key, and a result keyed by NULL
            // could not be written: ksqlDB (Kafka Streams) drops such records too.
            return Err(crate::EngineError::Invalid(
                "join key is NULL; record dropped".into(),
            ));
        }
        let other = side.other();
        let other_def = match other {
            Side::Left => &join.left,
            Side::Right => &join.right,
        };
        let position = (rec.partition, rec.offset);
        if !is_table {
            // A stream record joins the table's current row; a record without a value
            // joins nothing.
            if src.tombstone {
                return Ok(());
            }
            let found = self.load(&b.overlay, &join_key(plan.num, other.tag(), &key))?;
            let (l, r) = match side {
                Side::Left => (true, found.is_some()),
                Side::Right => (found.is_some(), true),
            };
            if !has_result(join.kind, l, r) {
                return Ok(());
            }
            let row = joined_row(
                join,
                side,
                std::slice::from_ref(&key),
                Some(&src.row),
                found.as_deref(),
                rowtime,
                position,
            );
            return self.process_row(row, rowtime, b);
        }

        // A table update: keep the new row, then, when the other side is a table too,
        // emit the key's new result (or delete the one it had).
        let state_key = join_key(plan.num, side.tag(), &key);
        let before = self.load(&b.overlay, &state_key)?;
        let new = (!src.tombstone).then(|| src.row.clone());
        b.overlay.insert(state_key, new.clone());
        if other_def.kind != SourceKind::Table {
            // A table update does not trigger a stream-table join.
            return Ok(());
        }
        let found = self.load(&b.overlay, &join_key(plan.num, other.tag(), &key))?;
        // The result's time is the later of the two rows' times, as in Kafka Streams.
        let rowtime = found
            .as_deref()
            .map_or(rowtime, |o| rowtime.max(row_time(other_def, o, rowtime)));
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
                    found.as_deref(),
                    rowtime,
                    position,
                )
            })
        };
        // A result the query's WHERE clause drops is no row of the result table: a key
        // whose result neither passed before nor passes now changes nothing downstream
        // (Kafka Streams' table filter, which sees the old result, forwards nothing).
        let filter = match &plan.op {
            Operator::Select { filter, .. } => filter.as_ref(),
            Operator::Aggregate { .. } => None,
        };
        let passes = |r: &Option<SourceRow>| {
            r.as_ref()
                .is_some_and(|r| filter.is_none_or(|f| f.test(&r.row)))
        };
        let (now, was) = (result(new.as_deref()), result(before.as_deref()));
        if passes(&now) || passes(&was) {
            let row = now.unwrap_or_else(|| {
                let mut row = joined_row(
                    join,
                    side,
                    std::slice::from_ref(&key),
                    None,
                    None,
                    rowtime,
                    position,
                );
                row.tombstone = true;
                row
            });
            return self.process_row(row, rowtime, b);
        }
        Ok(())
    }
}

impl Worker {
    /// A foreign-key table-table join's record (Kafka Streams' KTable foreign-key join):
    /// a left row joins the right row its foreign key names, and is indexed under that
    /// key so a right update reaches every left row referring to it. The result is keyed
    /// by the left row's key. `key` is the record's join expression: the foreign key of
    /// a left row, the key of a right one.
    #[allow(clippy::too_many_arguments)]
    fn process_foreign_key(
        &self,
        plan: &QueryPlan,
        join: &JoinPlan,
        side: Side,
        src: SourceRow,
        key: Value,
        t: i64,
        rec: &StoredRecord,
        b: &mut Batch,
    ) -> Result<()> {
        let position = (rec.partition, rec.offset);
        let tombstone = |left_key: &[Value]| {
            let mut row = joined_row(join, Side::Left, left_key, None, None, t, position);
            row.tombstone = true;
            row
        };
        let index_key = |fk: &Value, left_key: &[Value]| {
            let mut values = vec![fk.clone()];
            values.extend(left_key.iter().cloned());
            join_entry_key(plan.num, FK_INDEX, &values)
        };
        match side {
            Side::Left => {
                let nkeys = join.left.schema.key_count();
                let left_key: Vec<Value> = src.row.iter().take(nkeys).cloned().collect();
                let state_key = join_entry_key(plan.num, FK_LEFT, &left_key);
                let old = self.load(&b.overlay, &state_key)?;
                let new = (!src.tombstone).then(|| src.row.clone());
                // The index follows the row's foreign key.
                if let Some(o) = &old {
                    let old_fk = join.left_key.eval(o);
                    if !old_fk.is_null() {
                        let k = index_key(&old_fk, &left_key);
                        b.join_keys.insert(k.clone());
                        b.overlay.insert(k, None);
                    }
                }
                if new.is_some() && !key.is_null() {
                    let k = index_key(&key, &left_key);
                    b.join_keys.insert(k.clone());
                    b.overlay.insert(k, Some(left_key.clone()));
                }
                b.overlay.insert(state_key, new.clone());
                let Some(new) = new else {
                    // A deleted left row deletes its result.
                    return match old {
                        Some(_) => self.process_row(tombstone(&left_key), t, b),
                        None => Ok(()),
                    };
                };
                let found = if key.is_null() {
                    None
                } else {
                    self.load(&b.overlay, &join_key(plan.num, Side::Right.tag(), &key))?
                };
                let row = match (found, join.kind) {
                    (Some(r), _) => {
                        joined_row(join, side, &left_key, Some(&new), Some(&r), t, position)
                    }
                    (None, JoinType::Left) => {
                        joined_row(join, side, &left_key, Some(&new), None, t, position)
                    }
                    // An inner join's updated row that no longer matches deletes its
                    // result; a new one that does not match has none.
                    (None, _) if old.is_some() => tombstone(&left_key),
                    (None, _) => return Ok(()),
                };
                self.process_row(row, t, b)
            }
            Side::Right => {
                if key.is_null() {
                    return Ok(());
                }
                let new = (!src.tombstone).then(|| src.row.clone());
                b.overlay
                    .insert(join_key(plan.num, Side::Right.tag(), &key), new.clone());
                let lo = join_entry_key(plan.num, FK_INDEX, std::slice::from_ref(&key));
                let hi =
                    sluice_storage::prefix_end(&lo).unwrap_or_else(|| vec![0xff; lo.len() + 1]);
                for (_, left_key) in self.join_range(b, &lo, &hi)? {
                    let Some(left) =
                        self.load(&b.overlay, &join_entry_key(plan.num, FK_LEFT, &left_key))?
                    else {
                        continue;
                    };
                    let row = match (&new, join.kind) {
                        (Some(r), _) => joined_row(
                            join,
                            Side::Left,
                            &left_key,
                            Some(&left),
                            Some(r),
                            t,
                            position,
                        ),
                        (None, JoinType::Left) => {
                            joined_row(join, Side::Left, &left_key, Some(&left), None, t, position)
                        }
                        (None, _) => tombstone(&left_key),
                    };
                    self.process_row(row, t, b)?;
                }
                Ok(())
            }
        }
    }

    /// A stream-stream join's record: it joins the other side's buffered rows of its
    /// key within the window, then waits in its own buffer for later ones, as Kafka
    /// Streams' KStreamKStreamJoin does (see ../shared/ksql-docs' join semantics).
    #[allow(clippy::too_many_arguments)]
    fn process_windowed(
        &self,
        plan: &QueryPlan,
        join: &JoinPlan,
        window: &JoinWindow,
        side: Side,
        src: SourceRow,
        key: Value,
        t: i64,
        rec: &StoredRecord,
        b: &mut Batch,
    ) -> Result<()> {
        let position = (rec.partition, rec.offset);
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
        let own = &mut b.join_times[side.tag() as usize];
        *own = (*own).max(t);
        let own_time = *own;
        let other_time = b.join_times[side.other().tag() as usize];
        let stream_time = own_time.max(other_time);
        if src.tombstone {
            return Ok(());
        }
        if key.is_null() {
            if outer {
                let row = joined_row(
                    join,
                    side,
                    std::slice::from_ref(&key),
                    Some(&src.row),
                    None,
                    t,
                    position,
                );
                return self.process_row(row, t, b);
            }
            return Err(crate::EngineError::Invalid(
                "join key is NULL; record dropped".into(),
            ));
        }
        if window.grace_ms.is_some() && t == stream_time {
            self.emit_closed_outer_rows(plan, join, after, grace, stream_time, b)?;
        }
        let (from, to) = (
            t.saturating_sub(before).max(0),
            t.saturating_add(after).max(0),
        );
        // Rows the other side has already expired are not joined, whether deleted yet
        // or not.
        let from = from.max(other_time.saturating_sub(retention).saturating_add(1));
        let other = side.other();
        let lo = join_entry_key(
            plan.num,
            2 + other.tag(),
            &[key.clone(), Value::BigInt(from)],
        );
        let hi = join_entry_key(
            plan.num,
            2 + other.tag(),
            &[key.clone(), Value::BigInt(to.saturating_add(1))],
        );
        let matches = self.join_range(b, &lo, &hi)?;
        for (_, stored) in &matches {
            let (other_time, seq) = time_seq(stored, 0);
            let row = stored.get(2..).unwrap_or_default();
            // A matched row no longer waits to be emitted NULL-joined.
            let pending = join_entry_key(
                plan.num,
                6,
                &[
                    Value::BigInt(other_time),
                    Value::Int(other.tag() as i32),
                    Value::BigInt(seq),
                ],
            );
            b.join_keys.insert(pending.clone());
            b.overlay.insert(pending, None);
            let ts = t.max(other_time);
            let joined = joined_row(
                join,
                side,
                std::slice::from_ref(&key),
                Some(&src.row),
                Some(row),
                ts,
                position,
            );
            self.process_row(joined, ts, b)?;
        }
        // Kept while a record of the other side may still join it (Kafka Streams' window
        // store keeps records for the window and the grace period).
        if t > own_time.saturating_sub(retention) {
            let seq = Value::BigInt(b.seq);
            let buffered = join_entry_key(
                plan.num,
                2 + side.tag(),
                &[key.clone(), Value::BigInt(t), seq.clone()],
            );
            let expiry = join_entry_key(plan.num, 4 + side.tag(), &[Value::BigInt(t), seq.clone()]);
            let mut row = vec![Value::BigInt(t), seq.clone()];
            row.extend(src.row.iter().cloned());
            let index = vec![key.clone(), Value::BigInt(t), seq];
            for (k, v) in [(buffered, row), (expiry, index)] {
                b.join_keys.insert(k.clone());
                b.overlay.insert(k, Some(v));
            }
        }
        if outer && matches.is_empty() {
            if window.grace_ms.is_none() || to < stream_time {
                // Without a grace period (or once its window has closed), a record that
                // matched nothing is emitted NULL-joined at once.
                let row = joined_row(
                    join,
                    side,
                    std::slice::from_ref(&key),
                    Some(&src.row),
                    None,
                    t,
                    position,
                );
                return self.process_row(row, t, b);
            }
            let pending = join_entry_key(
                plan.num,
                6,
                &[
                    Value::BigInt(t),
                    Value::Int(side.tag() as i32),
                    Value::BigInt(b.seq),
                ],
            );
            let mut value = vec![
                Value::Int(side.tag() as i32),
                key,
                Value::BigInt(t),
                Value::BigInt(b.seq),
            ];
            value.extend(src.row);
            b.join_keys.insert(pending.clone());
            b.overlay.insert(pending, Some(value));
        }
        Ok(())
    }

    /// Emits, NULL-joined, the rows waiting for a match whose window has closed by
    /// `stream_time` (their time plus `after` and the grace period), oldest first.
    fn emit_closed_outer_rows(
        &self,
        plan: &QueryPlan,
        join: &JoinPlan,
        after: i64,
        grace: i64,
        stream_time: i64,
        b: &mut Batch,
    ) -> Result<()> {
        let lo = join_entry_key(plan.num, 6, &[]);
        let cutoff = stream_time.saturating_sub(after).saturating_sub(grace);
        let hi = join_entry_key(plan.num, 6, &[Value::BigInt(cutoff)]);
        for (entry, value) in self.join_range(b, &lo, &hi)? {
            let (t, _) = time_seq(&value, 2);
            let (Some(Value::Int(tag)), Some(key)) = (value.first(), value.get(1)) else {
                continue;
            };
            let side = if *tag == 0 { Side::Left } else { Side::Right };
            let stored = value.get(4..).unwrap_or_default();
            let row = joined_row(
                join,
                side,
                std::slice::from_ref(key),
                Some(stored),
                None,
                t,
                (0, 0),
            );
            b.join_keys.insert(entry.clone());
            b.overlay.insert(entry, None);
            self.process_row(row, t, b)?;
        }
        Ok(())
    }

    /// Deletes buffered rows no later record can join: once their side's time has passed
    /// them by the window and the grace period. Join state stays bounded by the window.
    pub(super) fn expire_join_rows(
        &self,
        plan: &QueryPlan,
        window: &JoinWindow,
        b: &mut Batch,
    ) -> Result<()> {
        let grace = window.grace_ms.unwrap_or(sluice_plan::DEFAULT_GRACE_MS);
        let retention = window.before_ms + window.after_ms + grace;
        for side in [Side::Left, Side::Right] {
            // Up to and including `side time - retention`: those rows no longer join.
            let cutoff = b.join_times[side.tag() as usize]
                .saturating_sub(retention)
                .saturating_add(1);
            let lo = join_entry_key(plan.num, 4 + side.tag(), &[]);
            let hi = join_entry_key(plan.num, 4 + side.tag(), &[Value::BigInt(cutoff)]);
            for (entry, value) in self.join_range(b, &lo, &hi)? {
                let (t, seq) = time_seq(&value, 1);
                if let Some(key) = value.first() {
                    let buffered = join_entry_key(
                        plan.num,
                        2 + side.tag(),
                        &[key.clone(), Value::BigInt(t), Value::BigInt(seq)],
                    );
                    b.join_keys.insert(buffered.clone());
                    b.overlay.insert(buffered, None);
                }
                b.join_keys.insert(entry.clone());
                b.overlay.insert(entry, None);
            }
        }
        Ok(())
    }

    /// The join entries in `[from, to)`, committed or written by this batch, as this
    /// batch sees them, in key order.
    fn join_range(&self, b: &Batch, from: &[u8], to: &[u8]) -> Result<Vec<(Vec<u8>, Vec<Value>)>> {
        if from >= to {
            return Ok(Vec::new());
        }
        let mut keys: std::collections::BTreeSet<Vec<u8>> = std::collections::BTreeSet::new();
        self.log.visit_range(Cf::State, from, to, |k, _| {
            keys.insert(k.to_vec());
            true
        })?;
        keys.extend(b.join_keys.range(from.to_vec()..to.to_vec()).cloned());
        let mut out = Vec::with_capacity(keys.len());
        for k in keys {
            if let Some(v) = self.load(&b.overlay, &k)? {
                out.push((k, v));
            }
        }
        Ok(out)
    }
}

/// The (time, seq) a join entry's value holds at `at`.
fn time_seq(value: &[Value], at: usize) -> (i64, i64) {
    let get = |i: usize| value.get(i).and_then(Value::as_i64).unwrap_or(0);
    (get(at), get(at + 1))
}

/// A source row's event time: its ROWTIME slot (the TIMESTAMP column's value when the
/// source names one), else the record's timestamp.
fn row_time(def: &SourceDef, row: &[Value], fallback: i64) -> i64 {
    row.get(def.schema.len())
        .and_then(Value::as_i64)
        .unwrap_or(fallback)
}

/// The row the query's operator reads: `[key, left row, right row, ROWTIME, ROWPARTITION,
/// ROWOFFSET]`, a missing side's row all NULLs (see [`JoinPlan`]).
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
    row.extend(key.iter().cloned());
    for (part, def) in [(left, &join.left), (right, &join.right)] {
        let len = source_row_len(def);
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
    SourceRow {
        row,
        tombstone: false,
    }
}
