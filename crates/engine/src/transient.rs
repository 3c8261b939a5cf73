//! Aggregating push queries (`SELECT k, COUNT(*) FROM s GROUP BY k EMIT CHANGES`): a
//! transient aggregation. Its state lives in memory for the life of the subscription only
//! and is bounded: past `max_groups` groups (and, over a table, source rows kept for
//! retraction) the query fails with a clear error instead of growing. Every update of a
//! group is sent as a row, as ksqlDB sends them without output caching.

use crate::Result;
use crate::push::{PushEvent, PushStart};
use crate::query::Engine;
use sluice_common::keycodec::encode_key_vec;
use sluice_common::{SourceKind, Value};
use sluice_expr::Expr;
use sluice_plan::{AggregatePushPlan, PushPlan};
use std::collections::HashMap;
use tokio::sync::mpsc;

/// Rows buffered between the aggregation and a subscriber's connection.
const CHANNEL: usize = 512;

/// One group's aggregate state (per window, in a windowed aggregation).
struct Group {
    values: Vec<Value>,
    state: Vec<Value>,
    /// The window `(start, end)`, in a windowed aggregation.
    window: Option<(i64, i64)>,
    /// The highest ROWTIME folded into a window: its results' ROWTIME.
    rowtime: i64,
}

/// Records between sweeps of the windows retention has expired.
const SWEEP_EVERY: u64 = 1024;

/// The aggregation: per group its state, and over a table each key's current row (to
/// retract it when the key's row changes).
struct Aggregation {
    plan: AggregatePushPlan,
    groups: HashMap<Vec<u8>, Group>,
    rows: HashMap<Vec<u8>, Vec<Value>>,
    max_groups: usize,
    /// A windowed aggregation's stream time: the highest ROWTIME seen.
    stream_time: i64,
    /// Records folded, to sweep expired windows every [`SWEEP_EVERY`].
    folded: u64,
}

impl Aggregation {
    fn passes(&self, row: &[Value]) -> bool {
        self.plan.filter.as_ref().is_none_or(|f| f.test(row))
    }

    fn group_of(&self, row: &[Value]) -> Option<Vec<Value>> {
        let g: Vec<Value> = self.plan.group_by.iter().map(|e| e.eval(row)).collect();
        // ksqlDB drops a record whose grouping key is NULL.
        (!g.iter().any(Value::is_null)).then_some(g)
    }

    fn result_row(
        &self,
        group: &[Value],
        state: &[Value],
        rowtime: i64,
        window: Option<(i64, i64)>,
    ) -> Vec<Value> {
        crate::operator::aggregate_row(group, rowtime, window, &self.plan.aggregates, state)
    }

    fn too_large(&self) -> String {
        format!(
            "The push query on {} holds more than {} groups (or source rows) in its transient aggregation; aggregate with CREATE TABLE ... AS SELECT and push-query that table instead",
            self.plan.source.name, self.max_groups
        )
    }

    /// Retracts and/or adds a row in one group; returns the row to send, if any, and
    /// whether it is a tombstone (the group stopped passing HAVING).
    fn fold(
        &mut self,
        group: &[Value],
        retract: Option<&[Value]>,
        add: Option<&[Value]>,
        rowtime: i64,
        window: Option<(i64, i64)>,
    ) -> std::result::Result<Option<(Vec<Value>, bool)>, String> {
        let key = match window {
            Some((start, _)) => {
                let mut k = group.to_vec();
                k.push(Value::BigInt(start));
                encode_key_vec(&k)
            }
            None => encode_key_vec(group),
        };
        if !self.groups.contains_key(&key) && self.groups.len() >= self.max_groups {
            return Err(self.too_large());
        }
        let existing = self.groups.remove(&key);
        let was_visible = match (&existing, &self.plan.having) {
            (None, _) => false,
            (Some(_), None) => true,
            (Some(g), Some(h)) => h.test(&self.result_row(group, &g.state, g.rowtime, window)),
        };
        let mut entry = existing.unwrap_or_else(|| {
            let mut state = Vec::new();
            for a in &self.plan.aggregates {
                a.init(&mut state);
            }
            Group {
                values: group.to_vec(),
                state,
                window,
                rowtime,
            }
        });
        // A window's results carry the highest ROWTIME folded into it.
        if window.is_some() {
            entry.rowtime = entry.rowtime.max(rowtime);
        } else {
            entry.rowtime = rowtime;
        }
        let mut slot = 0;
        for a in &self.plan.aggregates {
            let n = a.slots();
            if let Some(s) = entry.state.get_mut(slot..slot + n) {
                if let Some(old) = retract {
                    a.retract(s, old);
                }
                if let Some(new) = add {
                    a.update(s, new);
                }
            }
            slot += n;
        }
        let agg_row = self.result_row(&entry.values, &entry.state, entry.rowtime, window);
        self.groups.insert(key, entry);
        let visible = self.plan.having.as_ref().is_none_or(|h| h.test(&agg_row));
        if !visible && !was_visible {
            return Ok(None);
        }
        // A tombstone carries the group's key columns only, as a table's tombstones do in
        // push queries.
        let keys = self.plan.group_by.len();
        let out = self
            .plan
            .projection
            .iter()
            .map(|e| match e {
                Expr::Column(i) if *i < keys => e.eval(&agg_row),
                _ if visible => e.eval(&agg_row),
                _ => Value::Null,
            })
            .collect();
        Ok(Some((out, !visible)))
    }

    /// Applies one source row (a table's tombstone deletes its key's row); returns the
    /// rows to send, in order.
    fn apply(
        &mut self,
        row: &[Value],
        tombstone: bool,
    ) -> std::result::Result<Vec<(Vec<Value>, bool)>, String> {
        let columns = self.plan.source.schema.len();
        let rowtime = match row.get(columns) {
            Some(Value::BigInt(t)) => *t,
            _ => 0,
        };
        let new_group = if tombstone || !self.passes(row) {
            None
        } else {
            self.group_of(row)
        };
        let mut out = Vec::new();
        if let Some(w) = self.plan.window {
            // Time windows, as a persistent windowed aggregation folds them; late records
            // are dropped (a transient query has no processing log to name them in).
            let Some(g) = new_group else {
                return Ok(out);
            };
            self.stream_time = self.stream_time.max(rowtime);
            let close = self.stream_time.saturating_sub(w.grace_ms);
            for (start, end) in w.windows_for(rowtime) {
                if end > close {
                    out.extend(self.fold(&g, None, Some(row), rowtime, Some((start, end)))?);
                }
            }
            self.folded += 1;
            if self.folded.is_multiple_of(SWEEP_EVERY) {
                // State stays bounded by retention, as the persistent store's does.
                let oldest_kept = self.stream_time.saturating_sub(w.retention_ms);
                self.groups
                    .retain(|_, g| g.window.is_none_or(|(start, _)| start >= oldest_kept));
            }
            return Ok(out);
        }
        if self.plan.source.kind != SourceKind::Table {
            if let Some(g) = new_group {
                out.extend(self.fold(&g, None, Some(row), rowtime, None)?);
            }
            return Ok(out);
        }
        // A table update replaces its key's row: retract the previous version, add the
        // new one; within one group that is a single change, across groups two.
        let nkeys = self.plan.source.schema.key_count();
        let key = encode_key_vec(row.get(..nkeys).unwrap_or_default());
        let prev = if tombstone {
            self.rows.remove(&key)
        } else {
            if !self.rows.contains_key(&key) && self.rows.len() >= self.max_groups {
                return Err(self.too_large());
            }
            self.rows.insert(key, row.to_vec())
        };
        let prev = prev.filter(|p| self.passes(p));
        let old_group = prev.as_ref().and_then(|p| self.group_of(p));
        match (old_group, new_group) {
            (Some(og), Some(ng)) if og == ng => {
                out.extend(self.fold(&ng, prev.as_deref(), Some(row), rowtime, None)?);
            }
            (old, new) => {
                if let Some(og) = old {
                    out.extend(self.fold(&og, prev.as_deref(), None, rowtime, None)?);
                }
                if let Some(ng) = new {
                    out.extend(self.fold(&ng, None, Some(row), rowtime, None)?);
                }
            }
        }
        Ok(out)
    }
}

impl Engine {
    /// Starts an aggregating push query. It reads the source as [`Engine::push`] does and
    /// folds each row into its in-memory state; dropping the receiver stops it.
    pub fn push_aggregate(
        &self,
        plan: AggregatePushPlan,
        start: PushStart,
        max_groups: usize,
    ) -> Result<mpsc::Receiver<PushEvent>> {
        // The whole source row: key and value columns, then ROWTIME, ROWPARTITION,
        // ROWOFFSET. Filtering waits for the aggregation, which must see a table row
        // leave the filter to retract it.
        let width = plan.source.schema.len() + 3;
        let source = PushPlan {
            source: plan.source.clone(),
            filter: None,
            projection: (0..width).map(Expr::Column).collect(),
            limit: None,
            skip_null_keys: false,
            join: None,
        };
        let mut input = self.push(source, start)?;
        let (tx, rx) = mpsc::channel(CHANNEL);
        let limit = plan.limit;
        let mut agg = Aggregation {
            plan,
            groups: HashMap::new(),
            rows: HashMap::new(),
            max_groups,
            stream_time: i64::MIN,
            folded: 0,
        };
        tokio::spawn(async move {
            if limit == Some(0) {
                let _ = tx.send(PushEvent::LimitReached).await;
                return;
            }
            let mut sent = 0u64;
            loop {
                let ev = tokio::select! {
                    ev = input.recv() => ev,
                    _ = tx.closed() => return,
                };
                let Some(ev) = ev else { return };
                let (row, partition, offset, tombstone) = match ev {
                    PushEvent::Row {
                        row,
                        partition,
                        offset,
                        tombstone,
                    } => (row, partition, offset, tombstone),
                    other => {
                        if tx.send(other).await.is_err() {
                            return;
                        }
                        continue;
                    }
                };
                let outputs = match agg.apply(&row, tombstone) {
                    Ok(o) => o,
                    Err(message) => {
                        let _ = tx
                            .send(PushEvent::Failed {
                                message,
                                resource_exhausted: true,
                            })
                            .await;
                        return;
                    }
                };
                for (row, tombstone) in outputs {
                    let ev = PushEvent::Row {
                        row,
                        partition,
                        offset,
                        tombstone,
                    };
                    if tx.send(ev).await.is_err() {
                        return;
                    }
                    sent += 1;
                    if limit.is_some_and(|l| sent >= l) {
                        let _ = tx.send(PushEvent::LimitReached).await;
                        return;
                    }
                }
            }
        });
        Ok(rx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_common::{Column, ColumnRole, DataType, FormatKind, FormatSpec, Schema, SourceDef};
    use sluice_expr::{AggCall, AggKind, BinaryOp};

    /// Source rows `[K, G, ROWTIME, ROWPARTITION, ROWOFFSET]`; `SELECT G, COUNT(*) ... GROUP
    /// BY G [HAVING COUNT(*) > 1]`.
    fn aggregation(kind: SourceKind, having: bool, max_groups: usize) -> Aggregation {
        let col = |n: &str, t: DataType, role: ColumnRole| Column {
            name: n.into(),
            data_type: t,
            role,
        };
        let key_role = match kind {
            SourceKind::Table => ColumnRole::PrimaryKey,
            SourceKind::Stream => ColumnRole::Key,
        };
        let source = SourceDef {
            id: 1,
            name: "S".into(),
            kind,
            schema: Schema::new(vec![
                col("K", DataType::Int, key_role),
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
        };
        Aggregation {
            plan: AggregatePushPlan {
                source,
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
            },
            groups: HashMap::new(),
            rows: HashMap::new(),
            max_groups,
            stream_time: i64::MIN,
            folded: 0,
        }
    }

    #[test]
    fn windowed_groups_drop_late_records_and_expire_with_retention() {
        let mut agg = aggregation(SourceKind::Stream, false, 10_000);
        agg.plan.window = Some(sluice_plan::WindowPlan {
            kind: sluice_common::WindowKind::Tumbling,
            size_ms: 10,
            advance_ms: 10,
            grace_ms: 0,
            retention_ms: 10,
            emit_final: false,
        });
        // [G, ROWTIME, WINDOWSTART, WINDOWEND, COUNT]
        agg.plan.projection = vec![Expr::Column(0), Expr::Column(2), Expr::Column(4)];
        let at = |ts: i64| {
            let mut r = row(1, "a");
            r[2] = Value::BigInt(ts);
            r
        };
        let counts = |out: Vec<(Vec<Value>, bool)>| -> Vec<(i64, i64)> {
            out.into_iter()
                .map(|(r, _)| (r[1].as_i64().unwrap(), r[2].as_i64().unwrap()))
                .collect()
        };
        assert_eq!(counts(agg.apply(&at(0), false).unwrap()), [(0, 1)]);
        assert_eq!(counts(agg.apply(&at(5), false).unwrap()), [(0, 2)]);
        assert_eq!(counts(agg.apply(&at(10), false).unwrap()), [(10, 1)]);
        assert!(
            agg.apply(&at(3), false).unwrap().is_empty(),
            "late: [0, 10) closed"
        );
        // Thousands of windows later, only the retained ones are held.
        for i in 2..3000 {
            agg.apply(&at(i * 10), false).unwrap();
        }
        assert!(
            agg.groups.len() <= SWEEP_EVERY as usize + 2,
            "{}",
            agg.groups.len()
        );
    }

    fn row(k: i32, g: &str) -> Vec<Value> {
        vec![
            Value::Int(k),
            Value::String(g.into()),
            Value::BigInt(0),
            Value::Int(0),
            Value::BigInt(0),
        ]
    }

    fn out(g: &str, n: i64, tombstone: bool) -> (Vec<Value>, bool) {
        (vec![Value::String(g.into()), Value::BigInt(n)], tombstone)
    }

    #[test]
    fn every_update_of_a_group_is_sent() {
        let mut a = aggregation(SourceKind::Stream, false, 10);
        assert_eq!(a.apply(&row(1, "x"), false).unwrap(), [out("x", 1, false)]);
        assert_eq!(a.apply(&row(2, "x"), false).unwrap(), [out("x", 2, false)]);
        assert_eq!(a.apply(&row(1, "y"), false).unwrap(), [out("y", 1, false)]);
        // A NULL grouping key drops the record.
        let mut null = row(3, "z");
        null[1] = Value::Null;
        assert!(a.apply(&null, false).unwrap().is_empty());
    }

    #[test]
    fn a_table_row_moving_between_groups_retracts_then_adds() {
        let mut a = aggregation(SourceKind::Table, false, 10);
        a.apply(&row(1, "x"), false).unwrap();
        a.apply(&row(2, "x"), false).unwrap();
        assert_eq!(
            a.apply(&row(1, "y"), false).unwrap(),
            [out("x", 1, false), out("y", 1, false)]
        );
        // A tombstone retracts the key's row.
        assert_eq!(a.apply(&row(2, ""), true).unwrap(), [out("x", 0, false)]);
    }

    #[test]
    fn having_hides_groups_and_a_group_leaving_it_is_a_tombstone() {
        let mut a = aggregation(SourceKind::Table, true, 10);
        assert!(a.apply(&row(1, "x"), false).unwrap().is_empty());
        assert_eq!(a.apply(&row(2, "x"), false).unwrap(), [out("x", 2, false)]);
        assert_eq!(
            a.apply(&row(2, ""), true).unwrap(),
            [(vec![Value::String("x".into()), Value::Null], true)]
        );
    }

    #[test]
    fn state_beyond_its_bound_fails_the_query() {
        let mut a = aggregation(SourceKind::Stream, false, 2);
        a.apply(&row(1, "x"), false).unwrap();
        a.apply(&row(1, "y"), false).unwrap();
        a.apply(&row(1, "x"), false).unwrap();
        let e = a.apply(&row(1, "z"), false).unwrap_err();
        assert!(e.contains("more than 2 groups"), "{e}");
    }
}
