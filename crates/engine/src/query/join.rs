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
use crate::keys::join_key;
use crate::rows::{SourceRow, decode_record};
use sluice_common::{SourceDef, SourceKind, Value};
use sluice_plan::{JoinPlan, JoinType, Operator, QueryPlan, source_row_len};
use sluice_storage::StoredRecord;

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
                &key,
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
            has_result(join.kind, l, r)
                .then(|| joined_row(join, side, &key, this, found.as_deref(), rowtime, position))
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
                let mut row = joined_row(join, side, &key, None, None, rowtime, position);
                row.tombstone = true;
                row
            });
            return self.process_row(row, rowtime, b);
        }
        Ok(())
    }
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
    key: &Value,
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
    row.push(key.clone());
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
