//! Windowed aggregation: tumbling and hopping windows, session windows, EMIT FINAL and
//! retention, as Kafka Streams' windowed aggregations (which ksqlDB runs) behave.

use super::aggregate::{Aggregate, WindowAt, aggregate_row, emit};
use super::{Change, Cx};
use crate::keys::{
    PENDING_GROUP_AT, agg_key, offset_key, pending_final_key, table_key, window_expiry_key,
};
use crate::query::Batch;
use crate::{EngineError, Result};
use sluice_common::Value;
use sluice_plan::{Operator as OperatorPlan, WindowPlan};

impl Aggregate {
    /// EMIT FINAL: emits the pending results of the windows of `partition` that closed
    /// since the last emission, by Kafka Streams' rule for windowed aggregations that emit
    /// on window close (ksqlDB's EMIT FINAL): once close time (stream time minus grace)
    /// moves past the last emission's, every window still in the store whose start lies
    /// in (last close - size, close - size] is emitted, ordered by key, then start. Nothing
    /// is emitted (or remembered) until close time reaches the window size, and windows
    /// retention has already dropped are not in the store any more, so a window stream
    /// time jumps past by more than its retention is never emitted: ksqlDB's results have
    /// both (the corpus's suppress cases), so they are kept. Kafka Streams throttles the
    /// check by wall-clock time (its emit interval); here it runs for every record, so
    /// results do not depend on timing.
    pub(super) fn emit_final_results(
        &self,
        w: &WindowPlan,
        partition: u32,
        b: &mut Batch,
        emitted: &mut Vec<Change>,
    ) -> Result<()> {
        let plan = &*self.plan;
        let p = partition as usize;
        if b.last_emits.len() <= p {
            b.last_emits.resize(p + 1, i64::MIN);
        }
        let stream_time = b.stream_times.get(p).copied().unwrap_or(i64::MIN);
        let session = w.kind == sluice_common::WindowKind::Session;
        // A session closes once stream time passes its end + gap + grace.
        let close = if session {
            stream_time
                .saturating_sub(w.grace_ms)
                .saturating_sub(w.size_ms)
        } else {
            stream_time.saturating_sub(w.grace_ms)
        };
        let last = b.last_emits[p];
        if last != i64::MIN && last >= close {
            return Ok(());
        }
        // The pending results to emit: (time from, time to), inclusive, where the time is a
        // time window's start and a session's end.
        let (from_time, upper) = if session {
            // Sessions that ended before close time and at or after the last close.
            let upper = close.saturating_sub(1);
            if upper < 0 {
                return Ok(());
            }
            b.last_emits[p] = close;
            (if last == i64::MIN { 0 } else { last.max(0) }, upper)
        } else {
            let upper = close.saturating_sub(w.size_ms);
            if upper < 0 {
                return Ok(());
            }
            let lower_exclusive = if last == i64::MIN {
                -1
            } else {
                last.saturating_sub(w.size_ms).max(0)
            };
            if last != i64::MIN && w.windows_for(upper).eq(w.windows_for(lower_exclusive)) {
                return Ok(());
            }
            b.last_emits[p] = close;
            // Windows retention expired are no longer in the store, emitted or not.
            let from = (lower_exclusive + 1).max(stream_time.saturating_sub(w.retention_ms));
            (from, upper)
        };
        if from_time > upper {
            return Ok(());
        }
        let from = pending_final_key(plan.num, partition, from_time, &[]);
        let to = pending_final_key(plan.num, partition, upper.saturating_add(1), &[]);
        let mut closed = b.state.range(&from, &to)?;
        // Key order, then window start, as a window store's range fetch returns them.
        closed.sort_by(|(a, _), (b, _)| {
            let split = |k: &[u8]| {
                (
                    k.get(PENDING_GROUP_AT..).unwrap_or_default().to_vec(),
                    k.to_vec(),
                )
            };
            split(a).cmp(&split(b))
        });
        for (key, row) in closed {
            b.state.delete(key);
            let (Some(start), Some(end), Some(rowtime)) = (
                row.first().and_then(Value::as_i64),
                row.get(1).and_then(Value::as_i64),
                row.get(2).and_then(Value::as_i64),
            ) else {
                return Err(EngineError::Invalid(format!(
                    "corrupt pending final row of query {}",
                    plan.id
                )));
            };
            let out = row.get(3..).unwrap_or_default().to_vec();
            emit(emitted, out, rowtime, false, Some((start, end)))?;
        }
        Ok(())
    }

    /// Folds a stream record into every window of `w` holding its time that is still
    /// open. Stream time (the highest ROWTIME seen) is kept per partition of the groups,
    /// as Kafka Streams keeps it per task of the repartitioned stream; a window is closed
    /// once stream time has passed its end plus the grace period, and a record for a
    /// closed window is dropped, counted and logged, never silently.
    pub(super) fn fold_windowed(
        &self,
        w: &WindowPlan,
        group: &[Value],
        row: &[Value],
        rowtime: i64,
        b: &mut Batch,
        emitted: &mut Vec<Change>,
    ) -> Result<()> {
        if w.kind == sluice_common::WindowKind::Session {
            return self.fold_session(w, group, row, rowtime, b, emitted);
        }
        let partition = self.sink.group_partition(group)?;
        let p = partition as usize;
        if b.stream_times.len() <= p {
            b.stream_times.resize(p + 1, i64::MIN);
        }
        let stream_time = b.stream_times[p].max(rowtime);
        b.stream_times[p] = stream_time;
        let close = stream_time.saturating_sub(w.grace_ms);
        let mut late = None;
        for (start, end) in w.windows_for(rowtime) {
            if end > close {
                let at = WindowAt {
                    start,
                    end,
                    partition,
                };
                self.fold(group, None, Some(row), rowtime, b, emitted, Some(at))?;
            } else if late.is_none() {
                late = Some((start, end));
            }
        }
        if w.emit_final {
            self.emit_final_results(w, partition, b, emitted)?;
        }
        match late {
            Some((start, end)) => Err(EngineError::Late(format!(
                "late record dropped: its window [{start}, {end}) closed at stream time {stream_time} (grace period {} ms)",
                w.grace_ms
            ))),
            None => Ok(()),
        }
    }

    /// Folds a stream record into its group's session, as Kafka Streams' session window
    /// aggregation does: the sessions of the group ending no earlier than `gap` before
    /// the record and starting no later than `gap` after it merge with it into one
    /// session spanning them all (each merged-away session is deleted downstream with a
    /// tombstone); a record whose merged session ended more than gap + grace before
    /// stream time is late. A session's state ends with its (start, end); its results
    /// carry its end as ROWTIME. Sessions are keyed (group, end, start), so a group's
    /// candidates are one range, and expire `retention` after their end.
    pub(super) fn fold_session(
        &self,
        w: &WindowPlan,
        group: &[Value],
        row: &[Value],
        rowtime: i64,
        b: &mut Batch,
        emitted: &mut Vec<Change>,
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
        let partition = self.sink.group_partition(group)?;
        let p = partition as usize;
        if b.stream_times.len() <= p {
            b.stream_times.resize(p + 1, i64::MIN);
        }
        let stream_time = b.stream_times[p].max(rowtime);
        b.stream_times[p] = stream_time;
        let gap = w.size_ms;
        let close = stream_time.saturating_sub(w.grace_ms).saturating_sub(gap);
        let slots: usize = aggregates.iter().map(|a| a.slots()).sum();
        let session_key = |start: i64, end: i64| {
            let mut k = group.to_vec();
            k.extend([Value::BigInt(end), Value::BigInt(start)]);
            agg_key(plan.num, &k)
        };
        // Candidates: sessions ending at or after rowtime - gap (and still retained).
        let lowest_end = rowtime
            .saturating_sub(gap)
            .max(stream_time.saturating_sub(w.retention_ms));
        let from = {
            let mut k = group.to_vec();
            k.push(Value::BigInt(lowest_end));
            agg_key(plan.num, &k)
        };
        let group_prefix = agg_key(plan.num, group);
        let to = sluice_storage::prefix_end(&group_prefix)
            .unwrap_or_else(|| vec![0xff; group_prefix.len() + 1]);
        let mut found: Vec<(Vec<u8>, Vec<Value>, i64, i64)> = Vec::new();
        for (key, state) in b.state.range(&from, &to)? {
            let bounds = (
                state.get(slots).and_then(Value::as_i64),
                state.get(slots + 1).and_then(Value::as_i64),
            );
            let (Some(start), Some(end), true) = (bounds.0, bounds.1, state.len() == slots + 2)
            else {
                return Err(EngineError::Invalid(format!(
                    "stored session state of {} has {} values where this query keeps {}; record skipped",
                    plan.sink.name,
                    state.len(),
                    slots + 2
                )));
            };
            if start <= rowtime.saturating_add(gap) {
                found.push((key, state, start, end));
            }
        }
        let start = found.iter().map(|f| f.2).fold(rowtime, i64::min);
        let end = found.iter().map(|f| f.3).fold(rowtime, i64::max);
        if end < close {
            if w.emit_final {
                self.emit_final_results(w, partition, b, emitted)?;
            }
            return Err(EngineError::Late(format!(
                "late record dropped: its session [{start}, {end}] closed at stream time {stream_time} (gap {gap} ms, grace period {} ms)",
                w.grace_ms
            )));
        }
        // A session's results carry its end as ROWTIME.
        let result_row = |state: &[Value], start: i64, end: i64| {
            aggregate_row(group, end, Some((start, end)), aggregates, state)
        };
        let shown = |r: &[Value]| having.as_ref().is_none_or(|h| h.test(r));
        let mut state = Vec::with_capacity(slots + 2);
        for a in aggregates {
            a.init(&mut state);
        }
        let new_key = session_key(start, end);
        for (key, old, old_start, old_end) in &found {
            let mut slot = 0;
            for a in aggregates {
                let n = a.slots();
                a.merge(&mut state[slot..slot + n], &old[slot..slot + n]);
                slot += n;
            }
            if *key == new_key {
                continue;
            }
            // The merged-away session leaves the table.
            b.state.delete(key.clone());
            b.state
                .delete(window_expiry_key(plan.num, partition, *old_end, group));
            if w.emit_final {
                // Nothing of it was emitted: only its pending result goes.
                let mut k = group.to_vec();
                k.push(Value::BigInt(*old_start));
                b.state
                    .delete(pending_final_key(plan.num, partition, *old_end, &k));
                continue;
            }
            let old_row = result_row(old, *old_start, *old_end);
            if shown(&old_row) {
                let out: Vec<Value> = projection.iter().map(|e| e.eval(&old_row)).collect();
                emit(emitted, out, *old_end, true, Some((*old_start, *old_end)))?;
            }
        }
        let mut slot = 0;
        for a in aggregates {
            let n = a.slots();
            a.update_at(&mut state[slot..slot + n], row, b.seq);
            slot += n;
        }
        let new_row = result_row(&state, start, end);
        state.extend([Value::BigInt(start), Value::BigInt(end)]);
        b.state.put(new_key, state);
        let mut bounds = group.to_vec();
        bounds.extend([Value::BigInt(start), Value::BigInt(end)]);
        b.state
            .put(window_expiry_key(plan.num, partition, end, group), bounds);
        let was_shown = found
            .iter()
            .any(|(k, old, s, e)| *k == session_key(start, end) && shown(&result_row(old, *s, *e)));
        let visible = shown(&new_row);
        if w.emit_final {
            let mut k = group.to_vec();
            k.push(Value::BigInt(start));
            let pending = visible.then(|| {
                let mut v = vec![Value::BigInt(start), Value::BigInt(end), Value::BigInt(end)];
                v.extend(projection.iter().map(|e| e.eval(&new_row)));
                v
            });
            b.state
                .set(pending_final_key(plan.num, partition, end, &k), pending);
            return self.emit_final_results(w, partition, b, emitted);
        }
        if !visible && !was_shown {
            return Ok(());
        }
        let out: Vec<Value> = projection.iter().map(|e| e.eval(&new_row)).collect();
        emit(emitted, out, end, !visible, Some((start, end)))
    }

    /// Deletes the windows retention has expired: those starting at or before stream
    /// time minus the retention, in each partition. Their state, their rows in the sink
    /// table (pull queries stop seeing them) and their index entries go; the sink topic
    /// gets nothing, as in ksqlDB. Runs once per batch: a window it expires closed
    /// (retention >= size + grace) before any record of this batch could reach it.
    pub(super) fn expire_windows(&self, w: &WindowPlan, cx: &mut Cx<'_, '_>) -> Result<()> {
        let plan = &*self.plan;
        for (p, st) in cx.b.stream_times.clone().into_iter().enumerate() {
            // A window is kept while its start is at least stream time minus retention.
            let oldest_kept = st.saturating_sub(w.retention_ms);
            if st == i64::MIN || oldest_kept <= 0 {
                continue;
            }
            let from = offset_key(b'W', plan.num, p as u32);
            let to = window_expiry_key(plan.num, p as u32, oldest_kept, &[]);
            // The batch's own index writes supersede what is committed under the same key
            // (a session extended to start earlier keeps its end, so its index key): each
            // entry is taken once, as the batch leaves it.
            for (index_key, bounds) in cx.b.state.range(&from, &to)? {
                if let [group @ .., start, end] = bounds.as_slice() {
                    let mut state_key = group.to_vec();
                    if w.kind == sluice_common::WindowKind::Session {
                        // Sessions are keyed (group, end, start) and indexed by end.
                        state_key.extend([end.clone(), start.clone()]);
                    } else {
                        state_key.push(start.clone());
                    }
                    cx.b.state.delete(agg_key(plan.num, &state_key));
                    cx.b.state.delete(table_key(plan.sink.id, &bounds));
                    if let (true, Some(start), Some(end)) =
                        (w.emit_final, start.as_i64(), end.as_i64())
                    {
                        // A window can expire before it is emitted, when stream time jumps
                        // past its retention in one step (Kafka Streams fetches closed
                        // windows from a store that has already dropped it, so ksqlDB
                        // loses it too): never silently.
                        let pending = if w.kind == sluice_common::WindowKind::Session {
                            let mut k = group.to_vec();
                            k.push(Value::BigInt(start));
                            pending_final_key(plan.num, p as u32, end, &k)
                        } else {
                            pending_final_key(plan.num, p as u32, start, group)
                        };
                        let unsent = cx.b.state.get(&pending)?.is_some();
                        if unsent {
                            let message = format!(
                                "window [{start}, {end}) of a group expired (stream time {st}, retention {} ms) before it closed; its final result was not emitted",
                                w.retention_ms
                            );
                            cx.state_error(&message)?;
                        }
                        cx.b.state.delete(pending);
                    }
                }
                cx.b.state.delete(index_key);
            }
        }
        Ok(())
    }
}
