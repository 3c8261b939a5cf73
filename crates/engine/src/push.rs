//! Push queries: a subscriber reads the source topic from a position at its own pace and
//! receives each matching row. Memory is bounded by the channel: when the subscriber is
//! slow, the reader waits instead of buffering, and the log holds what it has not read.

use crate::query::Engine;
use crate::rows::decode_record;
use crate::{EngineError, Result};
use sluice_common::Value;
use sluice_format::decode_key;
use sluice_plan::PushPlan;
use sluice_storage::{Log, StoredRecord};
use std::sync::Arc;
use tokio::sync::mpsc;

/// Rows buffered between the reader and a subscriber's connection.
const CHANNEL: usize = 512;
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
    /// aggregation outgrew its bound (`resource_exhausted`). The stream ends after this
    /// with an error, never as if it had completed.
    Failed {
        message: String,
        resource_exhausted: bool,
    },
}

#[derive(Debug, Clone)]
pub enum PushStart {
    /// Only records appended from now on.
    Latest,
    Earliest,
    /// Per partition, the next offset to read; partitions not listed start at the end.
    Positions(Vec<(u32, u64)>),
}

impl Engine {
    /// Starts a push query. Dropping the receiver stops it.
    pub fn push(&self, plan: PushPlan, start: PushStart) -> Result<mpsc::Receiver<PushEvent>> {
        if plan.join.is_some() {
            return self.push_join(plan, start);
        }
        let log = self.log().clone();
        let topic = log.topic(&plan.source.topic).ok_or_else(|| {
            EngineError::Invalid(format!("topic {} does not exist", plan.source.topic))
        })?;
        let mut positions: Vec<u64> = (0..topic.partitions)
            .map(|p| match &start {
                PushStart::Earliest => 0,
                _ => topic.end_offset(p),
            })
            .collect();
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
        tokio::spawn(async move {
            let mut changed = topic.subscribe();
            let mut sent = 0u64;
            // Per partition, the offset after the last record the subscriber has been
            // given (or that it would not be given): where it resumes if it is closed.
            let mut resume = positions.clone();
            if plan.limit == Some(0) {
                let _ = tx.send(PushEvent::LimitReached).await;
                return;
            }
            loop {
                changed.borrow_and_update();
                let mut any = false;
                for p in 0..topic.partitions {
                    let from = positions[p as usize];
                    let behind = topic.end_offset(p).saturating_sub(from);
                    if behind == 0 {
                        continue;
                    }
                    // A subscriber keeping up reads a few records from the memtable, which
                    // is cheaper done here than handed to the blocking pool (a thread
                    // handoff per commit, and a blocking thread per busy subscriber).
                    // Catching up reads whole entries, possibly from disk, so it stays on
                    // the blocking pool.
                    let read = if behind <= INLINE_READ {
                        Ok(log.read(&topic, p, from, READ_BATCH))
                    } else {
                        let (log2, topic2) = (log.clone(), topic.clone());
                        tokio::task::spawn_blocking(move || log2.read(&topic2, p, from, READ_BATCH))
                            .await
                    };
                    let records: Vec<StoredRecord> = match read {
                        Ok(Ok(r)) => r,
                        Ok(Err(e)) => {
                            tracing::error!(error = %e, "push query read failed");
                            let _ = tx
                                .send(PushEvent::Failed {
                                    message: format!("reading {}: {e}", topic.name),
                                    resource_exhausted: false,
                                })
                                .await;
                            return;
                        }
                        Err(e) => {
                            let _ = tx
                                .send(PushEvent::Failed {
                                    message: format!("reading {}: {e}", topic.name),
                                    resource_exhausted: false,
                                })
                                .await;
                            return;
                        }
                    };
                    if let Some(last) = records.last() {
                        positions[p as usize] = last.offset + 1;
                        any = true;
                    }
                    for rec in &records {
                        // A panic evaluating one record skips that record, as a decoding
                        // error does; it must not end the subscription.
                        let evaluated =
                            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                                evaluate(&plan, key_only, rec)
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
                                    message: format!(
                                        "internal error evaluating the record: {message}"
                                    ),
                                })
                            });
                        let Some(event) = evaluated else {
                            resume[p as usize] = rec.offset + 1;
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
                                        "the subscriber read nothing for {} s, so the query was closed; resume from the start positions (partition:offset) {}",
                                        stall.as_secs_f64(),
                                        at.join(", ")
                                    ),
                                    resource_exhausted: true,
                                });
                                return;
                            }
                        }
                        resume[p as usize] = rec.offset + 1;
                        if is_row {
                            sent += 1;
                            if plan.limit.is_some_and(|l| sent >= l) {
                                let _ = tx.send(PushEvent::LimitReached).await;
                                return;
                            }
                        }
                    }
                }
                if !any {
                    tokio::select! {
                        r = changed.changed() => if r.is_err() { return },
                        _ = tx.closed() => return,
                    }
                }
            }
        });
        Ok(rx)
    }
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
        tombstone: src.tombstone,
    })
}
