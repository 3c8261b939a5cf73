//! Push queries: a subscriber reads the source topic from a position at its own pace and
//! receives each matching row. Memory is bounded by the channel: when the subscriber is
//! slow, the reader waits instead of buffering, and the log holds what it has not read.
//! A subscriber reads the log on its own only while it catches up; once it has read
//! everything it follows the topic's shared reader (see [`crate::tail`]).

use crate::query::Engine;
use crate::rows::decode_record;
use crate::tail::TailBatch;
use crate::{EngineError, Result};
use sluice_common::Value;
use sluice_format::decode_key;
use sluice_plan::PushPlan;
use sluice_storage::{Log, StoredRecord};
use std::collections::VecDeque;
use std::sync::Arc;
use tokio::sync::{broadcast, mpsc};

/// Rows buffered between the reader and a subscriber's connection.
pub const CHANNEL: usize = 512;
const READ_BATCH: usize = 512;
/// Records behind the end at most for a read on the async worker instead of the blocking
/// pool.
const INLINE_READ: u64 = 256;

#[derive(Debug, Clone, PartialEq)]
pub enum PushEvent {
    Row {
        row: Vec<Value>,
        partition: u32,
        offset: u64,
        /// The log position of the record it came from (0 where the row has no single
        /// source record: aggregations and joins).
        position: u64,
        tombstone: bool,
    },
    /// A record could not be decoded; it was skipped.
    Skipped {
        partition: u32,
        offset: u64,
        message: String,
    },
    /// LIMIT reached; the stream ends after this.
    LimitReached,
    /// The query cannot go on: its reader could not read the log, or a transient
    /// aggregation outgrew its bound. The stream ends after this with an error, never as
    /// if it had completed.
    Failed { message: String, kind: FailureKind },
}

/// Why a push query stopped, so the server can answer with the matching status code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// A bug or an unexpected I/O error.
    Internal,
    /// A bound was reached: transient state outgrew its limit, or the subscriber stopped
    /// reading.
    ResourceExhausted,
    /// The log could not be read because a data file is damaged.
    DataLoss,
}

impl FailureKind {
    /// The kind of failure a log read's error is.
    pub fn of_read(e: &sluice_storage::StorageError) -> Self {
        match e {
            sluice_storage::StorageError::Corruption { .. } => FailureKind::DataLoss,
            _ => FailureKind::Internal,
        }
    }
}

#[derive(Debug, Clone)]
pub enum PushStart {
    /// Only records appended from now on.
    Latest,
    Earliest,
    /// Per partition, the next offset to read; partitions not listed start at the end.
    Positions(Vec<(u32, u64)>),
    /// Every record appended after this log position (a position token: an insert's
    /// acknowledgement, or the last row a subscriber received).
    After(u64),
}

impl Engine {
    /// Starts a push query. Dropping the receiver stops it.
    pub fn push(&self, plan: PushPlan, start: PushStart) -> Result<mpsc::Receiver<PushEvent>> {
        Ok(self.push_from(plan, start)?.0)
    }

    /// Starts a push query and says the log position it starts after: a subscriber that
    /// resumes from it (before any row arrived) misses nothing and sees nothing twice. 0
    /// when the start was given as offsets or the query reads a join.
    ///
    /// A plain push query delivers its source's records in log-position order across
    /// partitions, each row carrying its record's position, so the last position received
    /// is a complete resume point: every record at or before it was delivered or filtered.
    pub fn push_from(
        &self,
        plan: PushPlan,
        start: PushStart,
    ) -> Result<(mpsc::Receiver<PushEvent>, u64)> {
        if plan.join.is_some() {
            return Ok((self.push_join(plan, start)?, 0));
        }
        let log = self.log().clone();
        let topic = log.topic(&plan.source.topic).ok_or_else(|| {
            EngineError::Invalid(format!("topic {} does not exist", plan.source.topic))
        })?;
        let (mut positions, start_after) =
            start_offsets(&log, std::slice::from_ref(&topic), &start)?;
        if let PushStart::Positions(list) = &start {
            for (p, o) in list {
                topic.check_partition(*p)?;
                positions[*p as usize] = *o;
            }
        }
        let (tx, rx) = mpsc::channel(CHANNEL);
        let key_only = key_only_filter(&plan);
        let plan = Arc::new(plan);
        let stall = stall_timeout();
        let tails = self.tails.clone();
        tokio::spawn(async move {
            let n = topic.partitions as usize;
            let mut changed = topic.subscribe();
            let mut sent = 0u64;
            // Read but not yet delivered, per partition, in offset (and position) order.
            let mut buffered: Vec<VecDeque<Arc<StoredRecord>>> = vec![VecDeque::new(); n];
            // Following the topic's shared reader, once caught up; `None` while reading on
            // its own.
            let mut following: Option<broadcast::Receiver<Arc<TailBatch>>> = None;
            // Per partition, the offset after the last record the subscriber has been
            // given (or that it would not be given), and the highest such record's log
            // position: where it resumes if it is closed.
            let mut resume = positions.clone();
            let mut resume_after = start_after;
            if plan.limit == Some(0) {
                let _ = tx.send(PushEvent::LimitReached).await;
                return;
            }
            loop {
                changed.borrow_and_update();
                let mut read_any = false;
                let bound;
                if let Some(rx) = &mut following {
                    let got = tokio::select! {
                        r = rx.recv() => r,
                        _ = tx.closed() => return,
                    };
                    match got {
                        Ok(batch) if take_batch(&batch, &mut positions, &mut buffered) => {
                            bound = batch.bound;
                            read_any = true;
                        }
                        // A gap (we joined as it read, or fell behind it), a lag, or the
                        // shared reader gone: read on our own from where we are.
                        _ => {
                            following = None;
                            continue;
                        }
                    }
                } else {
                    // Every record before this position is inside the end offsets read below
                    // (the committer moves the ends before it publishes the position), so a
                    // record before it can be delivered once no partition may hold an earlier
                    // one unread.
                    bound = log.next_seq();
                    for p in 0..n {
                        let from = positions[p];
                        let behind = topic.end_offset(p as u32).saturating_sub(from);
                        if behind == 0 || !buffered[p].is_empty() {
                            continue;
                        }
                        // A subscriber keeping up reads a few records from the memtable, which
                        // is cheaper done here than handed to the blocking pool (a thread
                        // handoff per commit, and a blocking thread per busy subscriber).
                        // Catching up reads whole entries, possibly from disk, so it goes to
                        // the blocking pool, through a gate that bounds its threads.
                        let read = if behind <= INLINE_READ {
                            Ok(log.read(&topic, p as u32, from, READ_BATCH))
                        } else {
                            let (log2, topic2) = (log.clone(), topic.clone());
                            crate::blocking::run(move || {
                                log2.read(&topic2, p as u32, from, READ_BATCH)
                            })
                            .await
                        };
                        let records: Vec<StoredRecord> = match read {
                            Ok(Ok(r)) => r,
                            Ok(Err(e)) => {
                                tracing::error!(error = %e, "push query read failed");
                                let _ = tx
                                    .send(PushEvent::Failed {
                                        message: format!("reading {}: {e}", topic.name),
                                        kind: FailureKind::of_read(&e),
                                    })
                                    .await;
                                return;
                            }
                            Err(e) => {
                                let _ = tx
                                    .send(PushEvent::Failed {
                                        message: format!("reading {}: {e}", topic.name),
                                        kind: FailureKind::Internal,
                                    })
                                    .await;
                                return;
                            }
                        };
                        if let Some(last) = records.last() {
                            positions[p] = last.offset + 1;
                            read_any = true;
                        }
                        buffered[p].extend(records.into_iter().map(Arc::new));
                    }
                }
                let mut delivered_any = false;
                // The earliest buffered record in log order.
                while let Some(p) = (0..n)
                    .filter(|&p| !buffered[p].is_empty())
                    .min_by_key(|&p| buffered[p].front().map_or(u64::MAX, |r| r.seq))
                {
                    // Every record before `bound` was inside the end offsets when the
                    // partitions were read above, so a partition with nothing buffered
                    // holds no earlier unread record unless it was drained here (below).
                    if buffered[p].front().is_none_or(|r| r.seq >= bound) {
                        break;
                    }
                    let Some(rec) = buffered[p].pop_front() else {
                        break;
                    };
                    // Its partition's later records are unread: deliver this one (they
                    // all come after it), then read them before choosing the next.
                    let drained =
                        buffered[p].is_empty() && positions[p] < topic.end_offset(p as u32);
                    delivered_any = true;
                    // A panic evaluating one record skips that record, as a decoding
                    // error does; it must not end the subscription.
                    let evaluated = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        evaluate(&plan, key_only, &rec)
                    }))
                    .unwrap_or_else(|payload| {
                        let message = payload
                            .downcast_ref::<&str>()
                            .map(|s| s.to_string())
                            .or_else(|| payload.downcast_ref::<String>().cloned())
                            .unwrap_or_else(|| "unknown panic".into());
                        Some(PushEvent::Skipped {
                            partition: rec.partition,
                            offset: rec.offset,
                            message: format!("internal error evaluating the record: {message}"),
                        })
                    });
                    let Some(event) = evaluated else {
                        resume[p] = rec.offset + 1;
                        resume_after = resume_after.max(rec.seq);
                        if drained {
                            break;
                        }
                        continue;
                    };
                    let is_row = matches!(event, PushEvent::Row { .. });
                    // A subscriber that reads nothing for `stall` is closed with where
                    // to resume, so it holds no reader (nor a place in the log's
                    // memory) forever. Events wait for two free places, so the one
                    // that closes it always fits.
                    // Room at once is the common case: no timer for it.
                    let reserved = match tx.try_reserve_many(2) {
                        Ok(permits) => Ok(Ok(permits)),
                        Err(mpsc::error::TrySendError::Closed(())) => return,
                        Err(mpsc::error::TrySendError::Full(())) => {
                            tokio::time::timeout(stall, tx.reserve_many(2)).await
                        }
                    };
                    match reserved {
                        Ok(Ok(mut permits)) => {
                            if let Some(permit) = permits.next() {
                                permit.send(event);
                            }
                        }
                        Ok(Err(_)) => return,
                        Err(_) => {
                            let at: Vec<String> = resume
                                .iter()
                                .enumerate()
                                .map(|(p, o)| format!("{p}:{o}"))
                                .collect();
                            tracing::info!(topic = %topic.name, "closing a push query whose subscriber stopped reading");
                            let _ = tx.try_send(PushEvent::Failed {
                                message: format!(
                                    "the subscriber read nothing for {} s, so the query was closed; resume after position {resume_after} (start_after), or from the start positions (partition:offset) {}",
                                    stall.as_secs_f64(),
                                    at.join(", ")
                                ),
                                kind: FailureKind::ResourceExhausted,
                            });
                            return;
                        }
                    }
                    resume[p] = rec.offset + 1;
                    resume_after = resume_after.max(rec.seq);
                    if is_row {
                        sent += 1;
                        if plan.limit.is_some_and(|l| sent >= l) {
                            let _ = tx.send(PushEvent::LimitReached).await;
                            return;
                        }
                    }
                    if drained {
                        break;
                    }
                }
                if following.is_none() && !read_any && !delivered_any {
                    // Caught up: follow the shared reader instead of reading on our own.
                    if buffered.iter().all(VecDeque::is_empty) {
                        following = Some(tails.follow(&log, &topic));
                        continue;
                    }
                    tokio::select! {
                        r = changed.changed() => if r.is_err() { return },
                        _ = tx.closed() => return,
                    }
                }
            }
        });
        Ok((rx, start_after))
    }
}

/// Takes a shared reader's batch into a subscriber at `positions` (per partition, the
/// next offset it has not read), buffering the records it has not read yet. False, taking
/// nothing, when the batch starts past a position: records between were missed, and the
/// subscriber must read them on its own.
fn take_batch(
    batch: &TailBatch,
    positions: &mut [u64],
    buffered: &mut [VecDeque<Arc<StoredRecord>>],
) -> bool {
    if batch.from.iter().zip(positions.iter()).any(|(f, p)| f > p) {
        return false;
    }
    for (p, have) in positions.iter_mut().enumerate() {
        if let (Some(records), Some(buf)) = (batch.records.get(p), buffered.get_mut(p)) {
            buf.extend(records.iter().filter(|r| r.offset >= *have).cloned());
        }
        if let Some(&to) = batch.to.get(p) {
            *have = (*have).max(to);
        }
    }
    true
}

/// Where readers of `topics` start, per partition in topic order, and the log position
/// they start after (0 for the earliest records or explicit offsets, which the caller
/// applies). The latest records are those after the last committed position, so a
/// subscriber resuming from it misses nothing written while it started.
pub(crate) fn start_offsets(
    log: &sluice_storage::EmbeddedLog,
    topics: &[Arc<sluice_storage::Topic>],
    start: &PushStart,
) -> Result<(Vec<u64>, u64)> {
    let after = match start {
        PushStart::Earliest => {
            let n = topics.iter().map(|t| t.partitions as usize).sum();
            return Ok((vec![0; n], 0));
        }
        PushStart::Positions(_) => {
            let ends = topics
                .iter()
                .flat_map(|t| (0..t.partitions).map(move |p| t.end_offset(p)))
                .collect();
            return Ok((ends, 0));
        }
        PushStart::Latest => log.next_seq().saturating_sub(1),
        PushStart::After(after) => {
            let next = log.next_seq();
            if *after >= next {
                return Err(EngineError::PositionAhead {
                    position: *after,
                    committed: next.saturating_sub(1),
                });
            }
            *after
        }
    };
    let mut offsets = Vec::new();
    for t in topics {
        for p in 0..t.partitions {
            offsets.push(log.offset_after(t, p, after)?);
        }
    }
    Ok((offsets, after))
}

/// How long a push subscriber may read nothing before its query is closed: 60 s, or
/// `SLUICE_PUSH_STALL_SECS`.
fn stall_timeout() -> std::time::Duration {
    let secs = std::env::var("SLUICE_PUSH_STALL_SECS")
        .ok()
        .and_then(|v| v.trim().parse::<f64>().ok())
        .filter(|s| *s > 0.0)
        .unwrap_or(60.0);
    std::time::Duration::from_secs_f64(secs)
}

/// Whether a record has no key where its source needs one: a table row without a key is
/// invalid and dropped, as ksqlDB drops it; scalable push queries skip such stream records
/// too.
fn without_key(plan: &PushPlan, rec: &StoredRecord) -> bool {
    rec.record.key.is_none()
        && plan.source.schema.key_count() > 0
        && (plan.source.kind == sluice_common::SourceKind::Table || plan.skip_null_keys)
}

/// Whether the filter reads key columns only: then a record whose key fails it is skipped
/// before its value is decoded. A push query filtering one key of a busy table (the fanout
/// shape: one subscriber per entity) then decodes only the values it sends.
pub(crate) fn key_only_filter(plan: &PushPlan) -> bool {
    let keys = plan.source.schema.key_count();
    plan.filter
        .as_ref()
        .is_some_and(|f| f.reads_only(&|i| i < keys))
}

/// False when the record's key alone shows the filter rejects it. Tombstones and keys that
/// fail to decode go the full way, which reports them as the full decode would.
fn key_passes(plan: &PushPlan, rec: &StoredRecord) -> bool {
    let (Some(filter), Some(_)) = (&plan.filter, &rec.record.value) else {
        return true;
    };
    let source = &plan.source;
    match decode_key(
        &source.key_format,
        source.schema.keys(),
        rec.record.key.as_deref(),
    ) {
        Ok(mut row) => {
            // Key columns first, then everything else (NULL: the filter does not read it).
            row.resize(source.schema.len() + 3, Value::Null);
            filter.test(&row)
        }
        Err(_) => true,
    }
}

pub(crate) fn evaluate(plan: &PushPlan, key_only: bool, rec: &StoredRecord) -> Option<PushEvent> {
    if without_key(plan, rec) {
        return None;
    }
    if key_only && !key_passes(plan, rec) {
        return None;
    }
    let src = match decode_record(&plan.source, rec) {
        Ok(s) => s,
        Err(e) => {
            return Some(PushEvent::Skipped {
                partition: rec.partition,
                offset: rec.offset,
                message: e.to_string(),
            });
        }
    };
    // A stream record without a value carries nothing to push; only tables delete rows.
    if src.tombstone && plan.source.kind == sluice_common::SourceKind::Stream {
        return None;
    }
    if !src.tombstone && !plan.filter.as_ref().is_none_or(|f| f.test(&src.row)) {
        return None;
    }
    let row = plan.projection.iter().map(|e| e.eval(&src.row)).collect();
    Some(PushEvent::Row {
        row,
        partition: rec.partition,
        offset: rec.offset,
        position: rec.seq,
        tombstone: src.tombstone,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scan::tests::stream;
    use proptest::prelude::*;
    use sluice_expr::Expr;
    use sluice_storage::{EmbeddedLog, Record, Txn};

    /// Appends values `from..` to the partitions given, a transaction per `txn_size`;
    /// returns each value's log position.
    async fn append(
        log: &EmbeddedLog,
        topic: &Arc<sluice_storage::Topic>,
        from: usize,
        partitions: &[u32],
        txn_size: usize,
    ) -> Vec<u64> {
        let mut out = Vec::new();
        for (c, chunk) in partitions.chunks(txn_size).enumerate() {
            let mut txn = Txn::new();
            for (i, p) in chunk.iter().enumerate() {
                let n = from + c * txn_size + i;
                txn.append(
                    topic,
                    *p,
                    Record {
                        key: None,
                        value: Some(format!("{{\"V\": {n}}}").into_bytes()),
                        timestamp: 0,
                        headers: Vec::new(),
                    },
                );
            }
            out.extend(
                log.submit(txn)
                    .appended()
                    .await
                    .unwrap()
                    .iter()
                    .map(|a| a.seq),
            );
        }
        out
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]
        /// A push query started after any position delivers exactly the records appended
        /// after it, history then live, in log order with their positions: the same as
        /// filtering the whole log by position.
        #[test]
        fn a_push_after_a_position_equals_the_log_after_it_in_order(
            history in proptest::collection::vec(0u32..3, 0..120),
            live in proptest::collection::vec(0u32..3, 0..60),
            txn_size in 1usize..20,
            cut in 0usize..130,
        ) {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            rt.block_on(async {
                let dir = tempfile::tempdir().unwrap();
                let log = Arc::new(EmbeddedLog::open(dir.path()).unwrap());
                let engine = Engine::new(log.clone()).unwrap();
                let topic = log.create_topic("s", 3).unwrap();
                let mut seqs = append(&log, &topic, 0, &history, txn_size).await;
                // After the cut-th record of the history (or after none of it).
                let after = match cut.min(seqs.len()) {
                    0 => 0,
                    k => seqs[k - 1],
                };
                let skip = cut.min(seqs.len());
                let expected = history.len() + live.len() - skip;
                let plan = PushPlan {
                    source: stream(),
                    filter: None,
                    projection: vec![Expr::Column(0)],
                    limit: Some(expected as u64),
                    skip_null_keys: false,
                    join: None,
                };
                let (mut rx, start) = engine.push_from(plan, PushStart::After(after)).unwrap();
                prop_assert_eq!(start, after);
                seqs.extend(append(&log, &topic, history.len(), &live, txn_size).await);
                let mut got = Vec::new();
                if expected > 0 {
                    while let Some(ev) = rx.recv().await {
                        match ev {
                            PushEvent::Row { row, position, .. } => got.push((row, position)),
                            PushEvent::LimitReached => break,
                            other => panic!("unexpected {other:?}"),
                        }
                    }
                }
                let want: Vec<(Vec<Value>, u64)> = (skip..seqs.len())
                    .map(|n| (vec![Value::BigInt(n as i64)], seqs[n]))
                    .collect();
                prop_assert_eq!(got, want);
                Ok(())
            })?;
        }
    }

    /// Subscribers that have caught up share one reader per topic. Each still gets every
    /// record after its start exactly once, in log order: one that joined as the reader
    /// ran, and one whose client stopped reading for a while (its channel full, so it
    /// missed the shared reader's batches and read on its own again). The reader ends with
    /// its last subscriber.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn subscribers_share_one_reader_and_each_gets_every_record_once_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let log = Arc::new(EmbeddedLog::open(dir.path()).unwrap());
        let engine = Engine::new(log.clone()).unwrap();
        let topic = log.create_topic("s", 3).unwrap();
        let parts = |n: usize, salt: usize| -> Vec<u32> {
            (0..n).map(|i| ((i * 7 + salt) % 3) as u32).collect()
        };
        let mut seqs = append(&log, &topic, 0, &parts(30, 1), 4).await;
        let live = 2 * CHANNEL;
        let total = 30 + live;
        let plan = |limit: usize| PushPlan {
            source: stream(),
            filter: None,
            projection: vec![Expr::Column(0)],
            limit: Some(limit as u64),
            skip_null_keys: false,
            join: None,
        };
        // (receiver, index of the first record it should get)
        let mut subs = Vec::new();
        for (start, first) in [
            (PushStart::After(0), 0),
            (PushStart::After(seqs[9]), 10),
            (PushStart::Latest, 30),
            (PushStart::Latest, 30),
        ] {
            let (rx, _) = engine.push_from(plan(total - first), start).unwrap();
            subs.push((rx, first));
        }
        // Joins while the shared reader is running.
        seqs.extend(append(&log, &topic, 30, &parts(live / 2, 2), 3).await);
        let (rx, _) = engine
            .push_from(plan(total - 30), PushStart::After(seqs[29]))
            .unwrap();
        subs.push((rx, 30));
        seqs.extend(append(&log, &topic, 30 + live / 2, &parts(live / 2, 3), 5).await);
        // All but the last are read as they arrive; the last is read only now, so it has
        // fallen behind the shared reader.
        let mut got_all = Vec::new();
        for (mut rx, first) in subs {
            let mut got = Vec::new();
            let wait = std::time::Duration::from_secs(30);
            while let Some(ev) = tokio::time::timeout(wait, rx.recv())
                .await
                .unwrap_or_else(|_| {
                    panic!(
                        "subscriber from {first}: no row for 30 s after {}",
                        got.len()
                    )
                })
            {
                match ev {
                    PushEvent::Row { row, position, .. } => got.push((row, position)),
                    PushEvent::LimitReached => break,
                    other => panic!("unexpected {other:?}"),
                }
            }
            let want: Vec<(Vec<Value>, u64)> = (first..total)
                .map(|n| (vec![Value::BigInt(n as i64)], seqs[n]))
                .collect();
            assert_eq!(got.len(), want.len(), "subscriber from {first}");
            assert!(
                got == want,
                "subscriber from {first}: out of order or wrong"
            );
            got_all.push(got.len());
        }
        assert_eq!(got_all.len(), 5);
        // Every subscriber has ended (its limit reached), so the reader stops.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while engine.push_shared_readers() > 0 {
            assert!(
                std::time::Instant::now() < deadline,
                "the shared reader outlived its subscribers"
            );
            tokio::task::yield_now().await;
        }
    }

    /// A batch overlapping what a subscriber has read gives it only the rest; one that
    /// starts past its position is refused whole.
    #[test]
    fn a_shared_batch_gives_only_unread_records_and_a_gap_is_refused() {
        let rec = |partition: u32, offset: u64| {
            Arc::new(StoredRecord {
                partition,
                offset,
                seq: offset * 2 + u64::from(partition),
                record: Record {
                    key: None,
                    value: None,
                    timestamp: 0,
                    headers: Vec::new(),
                },
            })
        };
        let batch = TailBatch {
            from: vec![3, 5],
            to: vec![6, 7],
            bound: 100,
            records: vec![
                (3..6).map(|o| rec(0, o)).collect(),
                (5..7).map(|o| rec(1, o)).collect(),
            ],
        };
        let offsets = |b: &[VecDeque<Arc<StoredRecord>>]| -> Vec<Vec<u64>> {
            b.iter()
                .map(|q| q.iter().map(|r| r.offset).collect())
                .collect()
        };
        // Partition 0 read up to 4 on its own, partition 1 exactly up to the batch.
        let mut positions = vec![5, 5];
        let mut buffered = vec![VecDeque::new(), VecDeque::new()];
        assert!(take_batch(&batch, &mut positions, &mut buffered));
        assert_eq!(offsets(&buffered), vec![vec![5], vec![5, 6]]);
        assert_eq!(positions, vec![6, 7]);
        // Ahead of the whole batch: nothing to take, positions kept.
        let mut positions = vec![9, 9];
        let mut buffered = vec![VecDeque::new(), VecDeque::new()];
        assert!(take_batch(&batch, &mut positions, &mut buffered));
        assert_eq!(offsets(&buffered), vec![Vec::<u64>::new(), vec![]]);
        assert_eq!(positions, vec![9, 9]);
        // Partition 1 is at 4: offset 4 is in no batch it has, so it takes nothing.
        let mut positions = vec![3, 4];
        let mut buffered = vec![VecDeque::new(), VecDeque::new()];
        assert!(!take_batch(&batch, &mut positions, &mut buffered));
        assert_eq!(offsets(&buffered), vec![Vec::<u64>::new(), vec![]]);
        assert_eq!(positions, vec![3, 4]);
    }

    #[tokio::test]
    async fn a_position_past_the_log_is_refused_and_latest_starts_after_the_last() {
        let dir = tempfile::tempdir().unwrap();
        let log = Arc::new(EmbeddedLog::open(dir.path()).unwrap());
        let engine = Engine::new(log.clone()).unwrap();
        let topic = log.create_topic("s", 2).unwrap();
        let seqs = append(&log, &topic, 0, &[0, 1, 1], 2).await;
        let plan = || PushPlan {
            source: stream(),
            filter: None,
            projection: vec![Expr::Column(0)],
            limit: None,
            skip_null_keys: false,
            join: None,
        };
        let last = *seqs.last().unwrap();
        assert!(matches!(
            engine.push_from(plan(), PushStart::After(last + 1)),
            Err(EngineError::PositionAhead { .. })
        ));
        let (_rx, start) = engine.push_from(plan(), PushStart::Latest).unwrap();
        assert_eq!(start, last);
    }
}
