//! Push queries over joins (`SELECT ... FROM a JOIN b ... EMIT CHANGES`): the join
//! operator a persistent query runs, over state held in memory for the life of the
//! subscription ([`MemoryState`]), bounded by [`TRANSIENT_JOIN_STATE_ENTRIES`]. Its inputs
//! are read as a persistent query's are, in log order, so a stream record meets a table as
//! it was when the record arrived; each joined row is then filtered and projected as a
//! push query's source row is.

use crate::operator::{Change, Cx, Env, Join, Pipeline};
use crate::push::{PushEvent, PushStart};
use crate::query::{Batch, Engine, Stats, any_changed, decode_input, processing_order};
use crate::state::MemoryState;
use crate::{EngineError, Result};
use sluice_common::{SourceDef, Value};
use sluice_plan::PushPlan;
use sluice_storage::{EmbeddedLog, Log, Topic, Txn};
use std::sync::Arc;
use tokio::sync::mpsc;

/// Most state entries (table rows, buffered stream records, index entries) a push query
/// over a join keeps in memory; past that it fails rather than grow without bound.
pub const TRANSIENT_JOIN_STATE_ENTRIES: usize = 1_000_000;

/// Rows buffered between the join and a subscriber's connection.
const CHANNEL: usize = 512;
/// Records read per partition per step.
const READ: usize = 512;

/// A running push query over a join: what it has read and what it holds.
struct Run {
    plan: PushPlan,
    defs: Vec<SourceDef>,
    topics: Vec<Arc<Topic>>,
    /// `(input, partition)` of every partition of every input, in input order.
    slots: Vec<(usize, u32)>,
    /// The next offset to read of each slot.
    positions: Vec<u64>,
    pipeline: Pipeline,
    env: Env,
    state: MemoryState,
    /// Each stream-stream join's stream time of each side (see the worker's).
    join_times: Vec<i64>,
    /// Records processed, numbering the rows stream-stream joins buffer.
    seq: i64,
}

/// What one step produced: the events to send, whether anything was read, and whether
/// the query must stop after sending them.
struct Stepped {
    events: Vec<PushEvent>,
    read: bool,
    stop: bool,
}

impl Engine {
    /// Starts a push query over a join (`plan.join`). Dropping the receiver stops it.
    pub(crate) fn push_join(
        &self,
        plan: PushPlan,
        start: PushStart,
    ) -> Result<mpsc::Receiver<PushEvent>> {
        let join = plan
            .join
            .as_deref()
            .cloned()
            .ok_or_else(|| EngineError::Invalid("push query has no join".into()))?;
        if let PushStart::Positions(_) = start {
            return Err(EngineError::Invalid(
                "start positions name the partitions of one topic, and a push query over a join reads several: start it from the earliest or the latest records".into(),
            ));
        }
        let log = self.log().clone();
        let defs: Vec<SourceDef> = join.sources().into_iter().cloned().collect();
        let mut topics = Vec::with_capacity(defs.len());
        for def in &defs {
            topics.push(log.topic(&def.topic).ok_or_else(|| {
                EngineError::Invalid(format!(
                    "topic {} of {} does not exist",
                    def.topic, def.name
                ))
            })?);
        }
        let slots: Vec<(usize, u32)> = topics
            .iter()
            .enumerate()
            .flat_map(|(i, t)| (0..t.partitions).map(move |p| (i, p)))
            .collect();
        // Every input starts at the same point, as a Kafka Streams topology's sources
        // share one offset reset policy in ksqlDB.
        let positions = slots
            .iter()
            .map(|&(i, p)| match start {
                PushStart::Earliest => 0,
                _ => topics[i].end_offset(p),
            })
            .collect();
        let env = Env {
            label: "transient join".into(),
            source_topic: defs.first().map(|d| d.topic.clone()).unwrap_or_default(),
            proc_log: self.proc_log.clone(),
            stats: Arc::new(Stats::default()),
        };
        let filter = plan.filter.clone();
        let mut run = Run {
            plan,
            defs,
            topics,
            slots,
            positions,
            // State keys carry a query number; this state is the subscription's own.
            pipeline: Pipeline::for_join(Join::new(0, join, filter)),
            env,
            state: MemoryState::new(TRANSIENT_JOIN_STATE_ENTRIES),
            join_times: Vec::new(),
            seq: 0,
        };
        let (tx, rx) = mpsc::channel(CHANNEL);
        tokio::spawn(async move {
            let limit = run.plan.limit;
            if limit == Some(0) {
                let _ = tx.send(PushEvent::LimitReached).await;
                return;
            }
            let mut changed: Vec<_> = run.topics.iter().map(|t| t.subscribe()).collect();
            let mut sent = 0u64;
            loop {
                for c in &mut changed {
                    c.borrow_and_update();
                }
                let log2 = log.clone();
                let joined = tokio::task::spawn_blocking(move || -> (Run, Stepped) {
                    let stepped = step(&mut run, &log2);
                    (run, stepped)
                })
                .await;
                let stepped: Stepped;
                (run, stepped) = match joined {
                    Ok(pair) => pair,
                    // Only a cancelled blocking task gets here (the runtime shutting down).
                    Err(_) => return,
                };
                for event in stepped.events {
                    let is_row = matches!(event, PushEvent::Row { .. });
                    if tx.send(event).await.is_err() {
                        return;
                    }
                    if is_row {
                        sent += 1;
                        if limit.is_some_and(|l| sent >= l) {
                            let _ = tx.send(PushEvent::LimitReached).await;
                            return;
                        }
                    }
                }
                if stepped.stop {
                    return;
                }
                if !stepped.read {
                    tokio::select! {
                        _ = any_changed(&mut changed) => {}
                        _ = tx.closed() => return,
                    }
                }
            }
        });
        Ok(rx)
    }
}

fn failed(message: String, resource_exhausted: bool) -> Stepped {
    Stepped {
        events: vec![PushEvent::Failed {
            message,
            resource_exhausted,
        }],
        read: true,
        stop: true,
    }
}

/// Reads what the inputs have next and runs it through the join, in log order.
fn step(run: &mut Run, log: &EmbeddedLog) -> Stepped {
    let mut read = Vec::with_capacity(run.slots.len());
    for (s, &(i, p)) in run.slots.iter().enumerate() {
        match log.read(&run.topics[i], p, run.positions[s], READ) {
            Ok(records) => read.push(records),
            Err(e) => return failed(format!("reading {}: {e}", run.topics[i].name), false),
        }
    }
    let order = processing_order(&read, true, READ);
    let mut events = Vec::new();
    let mut batch = Batch {
        txn: Txn::default(),
        state: &mut run.state,
        null_key: false,
        stream_times: Vec::new(),
        last_emits: Vec::new(),
        seq: run.seq,
        join_times: std::mem::take(&mut run.join_times),
        join_seq_of: 0,
        join_sub: 0,
    };
    let mut joined = Vec::new();
    for &(s, at) in &order {
        let rec = &read[s][at];
        let input = run.slots[s].0;
        run.positions[s] = rec.offset + 1;
        batch.seq += 1;
        let (src, rowtime) = match decode_input(&run.defs[input], rec) {
            Ok(Some(decoded)) => decoded,
            Ok(None) => continue,
            Err(e) => {
                events.push(PushEvent::Skipped {
                    partition: rec.partition,
                    offset: rec.offset,
                    message: e.to_string(),
                });
                continue;
            }
        };
        let change = Change {
            row: src.row,
            tombstone: src.tombstone,
            rowtime,
            input,
            position: (rec.partition, rec.offset),
            window: None,
        };
        // A panic may leave the in-memory state half-updated, and there is no committed
        // state to go back to: the query stops with the reason rather than go on from it.
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let mut cx = Cx {
                b: &mut batch,
                env: &run.env,
            };
            run.pipeline.process(&mut cx, change, &mut joined)
        }));
        match result {
            Ok(Ok(())) => {}
            Ok(Err(e)) => events.push(PushEvent::Skipped {
                partition: rec.partition,
                offset: rec.offset,
                message: e.to_string(),
            }),
            Err(_) => {
                return failed(
                    format!(
                        "internal error joining the record at partition {}, offset {} of {}; the push query stopped",
                        rec.partition, rec.offset, run.topics[input].name
                    ),
                    false,
                );
            }
        }
        rows(&run.plan, joined.drain(..), &mut events);
        if batch.state.exhausted() {
            return failed(
                format!(
                    "The push query over a join holds more than {} state entries in memory; create a stream or table AS SELECT the join, and query that instead",
                    TRANSIENT_JOIN_STATE_ENTRIES
                ),
                true,
            );
        }
    }
    if !order.is_empty() {
        // Stream time has moved: stream-stream join buffers expire.
        let mut cx = Cx {
            b: &mut batch,
            env: &run.env,
        };
        if let Err(e) = run.pipeline.on_time(&mut cx, &mut joined) {
            return failed(e.to_string(), false);
        }
        rows(&run.plan, joined.drain(..), &mut events);
    }
    run.seq = batch.seq;
    run.join_times = batch.join_times;
    Stepped {
        events,
        read: !order.is_empty(),
        stop: false,
    }
}

/// The joined rows the query's WHERE keeps, projected. A table-table join's deletes pass,
/// as a push query over a table passes its tombstones.
fn rows(plan: &PushPlan, joined: impl Iterator<Item = Change>, events: &mut Vec<PushEvent>) {
    for c in joined {
        if !c.tombstone && !plan.filter.as_ref().is_none_or(|f| f.test(&c.row)) {
            continue;
        }
        let row: Vec<Value> = plan.projection.iter().map(|e| e.eval(&c.row)).collect();
        events.push(PushEvent::Row {
            row,
            partition: c.position.0,
            offset: c.position.1,
            tombstone: c.tombstone,
        });
    }
}
