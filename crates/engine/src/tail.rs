//! One reader per topic for all of its push subscribers that have caught up (fanout).
//!
//! A push subscriber used to read the log on its own: a hundred subscribers of one busy
//! table each looked up, decoded and buffered every new record, a hundred times over, and
//! the ones that fell behind for a moment took a blocking thread each to catch up. Now a
//! subscriber reads on its own only while it catches up. Once it has read everything,
//! it joins the topic's *tail*: one task that reads each new commit's records once and
//! hands the same records (shared, not copied) to every subscriber that is following.
//!
//! The tail is a bounded broadcast: a subscriber that does not keep up (its client reads
//! slowly) misses batches, notices (a lag, or a batch that starts past its position), and
//! goes back to reading on its own from where it is, so nothing is lost or seen twice;
//! the tail never waits for anyone. A tail starts with its first subscriber and ends when
//! its last one leaves.

use sluice_storage::{EmbeddedLog, Log, StoredRecord, Topic};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::sync::broadcast;

/// Batches a tail keeps for subscribers that have not taken them yet. A subscriber further
/// behind than this reads on its own. Small under test, so tests exercise that path.
const CAPACITY: usize = if cfg!(test) { 2 } else { 64 };
/// Records read per partition per batch.
const READ_BATCH: usize = 512;
/// Records behind the end at most for a read on the async worker instead of the blocking
/// pool.
const INLINE_READ: u64 = 256;

/// New records of a topic, read once for every subscriber following it.
#[derive(Debug)]
pub(crate) struct TailBatch {
    /// Per partition, the offset the batch starts at (its first record's, if any).
    pub from: Vec<u64>,
    /// Per partition, the offset after the batch's last record (`from` if none).
    pub to: Vec<u64>,
    /// Every record of the topic with a lower log position is in this batch or an earlier
    /// one (a subscriber delivers in log-position order up to it).
    pub bound: u64,
    /// Per partition, the records `from..to`.
    pub records: Vec<Vec<Arc<StoredRecord>>>,
}

struct Running {
    topic: Arc<Topic>,
    /// Weak, so that followers see the channel close when the task ends for any reason
    /// (a panic included) and read on their own.
    tx: broadcast::WeakSender<Arc<TailBatch>>,
}

/// The running tails, by topic id.
#[derive(Default)]
pub(crate) struct Tails {
    running: Mutex<HashMap<u32, Running>>,
}

impl Tails {
    /// Follows `topic`'s new records through its tail, starting one if none runs. The first
    /// batch received may start before or after the caller's position: the caller skips
    /// what it has, and reads on its own over a gap. Must be called inside the runtime.
    pub(crate) fn follow(
        self: &Arc<Self>,
        log: &Arc<EmbeddedLog>,
        topic: &Arc<Topic>,
    ) -> broadcast::Receiver<Arc<TailBatch>> {
        let mut running = self.running.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(r) = running.get(&topic.id)
            && Arc::ptr_eq(&r.topic, topic)
            && let Some(tx) = r.tx.upgrade()
        {
            return tx.subscribe();
        }
        let (tx, rx) = broadcast::channel(CAPACITY);
        running.insert(
            topic.id,
            Running {
                topic: topic.clone(),
                tx: tx.downgrade(),
            },
        );
        tokio::spawn(run(self.clone(), log.clone(), topic.clone(), tx));
        rx
    }

    /// Tails running now.
    pub(crate) fn count(&self) -> usize {
        self.running.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// Ends `tx`'s tail if nobody follows it: true when it should stop. Decided under the
    /// lock [`Tails::follow`] takes, so a subscriber joining meanwhile is never left with
    /// a tail that has stopped.
    fn retire(&self, topic: &Arc<Topic>, tx: &broadcast::Sender<Arc<TailBatch>>) -> bool {
        let mut running = self.running.lock().unwrap_or_else(|p| p.into_inner());
        if tx.receiver_count() > 0 {
            return false;
        }
        if running
            .get(&topic.id)
            .and_then(|r| r.tx.upgrade())
            .is_none_or(|t| t.same_channel(tx))
        {
            running.remove(&topic.id);
        }
        true
    }
}

/// The tail's task: reads every record appended to `topic` from the end it starts at, in
/// batches, and broadcasts them until nobody follows.
async fn run(
    tails: Arc<Tails>,
    log: Arc<EmbeddedLog>,
    topic: Arc<Topic>,
    tx: broadcast::Sender<Arc<TailBatch>>,
) {
    let n = topic.partitions as usize;
    let mut changed = topic.subscribe();
    let mut positions: Vec<u64> = (0..n).map(|p| topic.end_offset(p as u32)).collect();
    // Whether the last batch sent held records at or past its bound: they wait for a
    // batch with a higher bound, even if nothing more is appended.
    let mut held_back = false;
    loop {
        if tx.receiver_count() == 0 && tails.retire(&topic, &tx) {
            return;
        }
        // Marked seen before reading, so an append racing with the reads still wakes us.
        changed.borrow_and_update();
        // Every record before this position is inside the end offsets read below (the
        // committer moves the ends before it publishes the position).
        let bound = log.next_seq();
        let from = positions.clone();
        let mut records = vec![Vec::new(); n];
        let mut read_any = false;
        for p in 0..n {
            let behind = topic.end_offset(p as u32).saturating_sub(positions[p]);
            if behind == 0 {
                continue;
            }
            let at = positions[p];
            let read = if behind <= INLINE_READ {
                log.read(&topic, p as u32, at, READ_BATCH)
            } else {
                let (log, topic) = (log.clone(), topic.clone());
                match crate::blocking::run(move || log.read(&topic, p as u32, at, READ_BATCH)).await
                {
                    Ok(r) => r,
                    // Only a runtime shutting down cancels it.
                    Err(_) => return,
                }
            };
            match read {
                Ok(got) => {
                    if let Some(last) = got.last() {
                        positions[p] = last.offset + 1;
                        read_any = true;
                    }
                    records[p] = got.into_iter().map(Arc::new).collect();
                }
                Err(e) => {
                    // Followers read on their own again once the tail is gone, and report
                    // the error themselves if it persists.
                    tracing::warn!(topic = %topic.name, error = %e, "push tail read failed; its subscribers read on their own");
                    return;
                }
            }
        }
        if read_any || held_back {
            held_back = records.iter().flatten().any(|r| r.seq >= bound);
            // No receiver now is fine: the loop's first check retires the tail.
            let _ = tx.send(Arc::new(TailBatch {
                from,
                to: positions.clone(),
                bound,
                records,
            }));
        }
        if read_any {
            // There may be more; let the subscribers run first.
            tokio::task::yield_now().await;
            continue;
        }
        tokio::select! {
            r = changed.changed() => if r.is_err() { return },
            _ = tx.closed() => {}
        }
    }
}
