//! Operator state in memory, made durable by a changelog and checkpoints (issue #13).
//!
//! A batch's state changes used to be one RocksDB put per changed key, in the batch's
//! transaction: a memtable insert, and later a flush and compactions, for every event of
//! a view over many keys. Now the batch writes them as *one* changelog record (one key,
//! `'D'`, holding every change of the batch), still in the transaction that appends the
//! batch's outputs and moves its input offsets, so exactly-once holds as before. The
//! records live in their own column family, `changelog`. The
//! changes themselves stay in memory, in the worker's [`Overlay`], until a *checkpoint*
//! writes the overlay into the state family as one sorted table file (ingested whole:
//! no per-key memtable insert) and deletes the changelog records it covers. This is
//! Kafka Streams' changelogged store, with the changelog batched per commit.
//!
//! Reads go overlay first, then RocksDB: the overlay holds the newest committed value
//! (or deletion) of every key changed since the last checkpoint. Pull queries read the
//! overlay of the table's writer the same way, so they see exactly what is committed.
//!
//! Crash safety: the changelog records are the truth for everything after the last
//! checkpoint. A restart replays them, in order, into the overlay. A crash after a
//! checkpoint's file was ingested but before its changelog records were deleted replays
//! records whose values the file already holds; each record holds whole values, not
//! increments, so replaying them again gives the same state.

use crate::{EngineError, Result};
use sluice_storage::{Cf, EmbeddedLog, Txn, prefix_end};
use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock, RwLockReadGuard};

/// A changed key's committed value, or `None` for a deletion.
pub(crate) type Change = (Vec<u8>, Option<Vec<u8>>);

/// Per-entry bytes beyond key and value in the overlay's B-tree (node slot, two vectors'
/// headers, allocator rounding), for its budget.
const ENTRY_OVERHEAD: usize = 64;

/// Bytes of changes all workers together keep in memory before the one committing
/// checkpoints, unless `SLUICE_STATE_CHECKPOINT_MB` says otherwise. Bounds both the
/// memory and what a restart replays (at several hundred MB/s).
pub(crate) const DEFAULT_CHECKPOINT_BYTES: usize = 32 << 20;

/// A worker with changes in memory that has had no input for this long checkpoints, so
/// an idle view holds no memory for them and a restart has nothing to replay; a trickle
/// of events makes at most one small checkpoint per interval.
pub(crate) const IDLE_CHECKPOINT: std::time::Duration = std::time::Duration::from_secs(5);

/// A worker whose changelog records since its last checkpoint hold more than
/// `LOG_PER_OVERLAY` times its overlay's bytes, and at least `LOG_FLOOR`, checkpoints.
/// Without it a view over few keys under steady input never reaches the memory budget
/// nor goes idle, and its changelog (disk, and what a restart replays) grows without
/// bound: 200 events a batch over 1,000 keys logged ~200 KB/s for an overlay of ~100 KB.
/// With it, a checkpoint writes at most half the bytes logged since the one before
/// (amortised write cost), and a restart replays at most about twice the overlay.
const LOG_PER_OVERLAY: usize = 2;
const LOG_FLOOR: usize = if cfg!(test) { 4 << 10 } else { 8 << 20 };

/// The memory every worker's overlay draws from: past `limit`, a worker checkpoints at
/// its next batch.
#[derive(Clone)]
pub(crate) struct CheckpointBudget {
    limit: usize,
    used: Arc<AtomicUsize>,
}

impl CheckpointBudget {
    pub(crate) fn new(limit: usize) -> CheckpointBudget {
        CheckpointBudget {
            limit: limit.max(1),
            used: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// The budget from `SLUICE_STATE_CHECKPOINT_MB` (0: a checkpoint before every batch
    /// that follows one with changes; for tests), or the default.
    pub(crate) fn from_env() -> CheckpointBudget {
        CheckpointBudget::new(
            std::env::var("SLUICE_STATE_CHECKPOINT_MB")
                .ok()
                .and_then(|v| v.trim().parse::<usize>().ok())
                .map_or(DEFAULT_CHECKPOINT_BYTES, |mb| mb << 20),
        )
    }

    fn over(&self) -> bool {
        self.used.load(Ordering::Relaxed) >= self.limit
    }
}

/// The changelog format's version byte, first in every record.
const FORMAT: u8 = 1;

/// The changes of one worker's committed batches since its last checkpoint, readable by
/// the worker and by pull queries.
pub(crate) struct Overlay {
    entries: RwLock<Entries>,
    /// Held (shared) by range reads from other threads for as long as they read, and
    /// (exclusive) by a checkpoint while it drops the entries it wrote: a range read's
    /// RocksDB iterator sees the database as it was when it started, so entries must not
    /// leave the overlay for RocksDB under it.
    scans: RwLock<()>,
    /// The budget's count of bytes held, which this overlay's `bytes` are part of.
    used: Arc<AtomicUsize>,
}

impl Drop for Overlay {
    fn drop(&mut self) {
        let held = self.read().bytes;
        self.used.fetch_sub(held, Ordering::Relaxed);
    }
}

#[derive(Default)]
struct Entries {
    map: BTreeMap<Vec<u8>, Option<Vec<u8>>>,
    bytes: usize,
}

fn cost(key: &[u8], value: &Option<Vec<u8>>) -> usize {
    key.len() + value.as_ref().map_or(0, Vec::len) + ENTRY_OVERHEAD
}

impl Overlay {
    pub(crate) fn new(budget: &CheckpointBudget) -> Overlay {
        Overlay {
            entries: RwLock::default(),
            scans: RwLock::default(),
            used: budget.used.clone(),
        }
    }

    fn read(&self) -> RwLockReadGuard<'_, Entries> {
        self.entries.read().unwrap_or_else(|p| p.into_inner())
    }

    /// `f` of the overlay's value for `key`: `None` when the overlay does not know the
    /// key (read RocksDB), `Some(f(None))` when it holds the key's deletion.
    pub(crate) fn with<R>(&self, key: &[u8], f: impl FnOnce(Option<&[u8]>) -> R) -> Option<R> {
        self.read().map.get(key).map(|v| f(v.as_deref()))
    }

    /// Takes a committed batch's changes.
    fn apply(&self, changes: Vec<Change>) {
        let mut e = self.entries.write().unwrap_or_else(|p| p.into_inner());
        let before = e.bytes;
        for (k, v) in changes {
            let klen = k.len();
            e.bytes += cost(&k, &v);
            if let Some(old) = e.map.insert(k, v) {
                e.bytes = e
                    .bytes
                    .saturating_sub(klen + old.as_ref().map_or(0, Vec::len) + ENTRY_OVERHEAD);
            }
        }
        if e.bytes >= before {
            self.used.fetch_add(e.bytes - before, Ordering::Relaxed);
        } else {
            self.used.fetch_sub(before - e.bytes, Ordering::Relaxed);
        }
    }

    pub(crate) fn bytes(&self) -> usize {
        self.read().bytes
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.read().map.is_empty()
    }

    /// Up to `n` entries after `after` (from `from` when `None`) and below `to`.
    fn chunk(&self, from: &[u8], after: Option<&[u8]>, to: &[u8], n: usize) -> Vec<Change> {
        let lower = match after {
            Some(a) => Bound::Excluded(a),
            None => Bound::Included(from),
        };
        self.read()
            .map
            .range::<[u8], _>((lower, Bound::Excluded(to)))
            .take(n)
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    /// Holds off checkpoints' removals while a range read from another thread runs.
    pub(crate) fn scan_guard(&self) -> RwLockReadGuard<'_, ()> {
        self.scans.read().unwrap_or_else(|p| p.into_inner())
    }
}

/// Calls `visit` with every key and value in `[from, to)` of the state family as the
/// overlay (when there is one) amends it, in key order, until it returns false.
/// Returns whether every entry was visited.
pub(crate) fn visit_range(
    log: &EmbeddedLog,
    overlay: Option<&Overlay>,
    from: &[u8],
    to: &[u8],
    mut visit: impl FnMut(&[u8], &[u8]) -> bool,
) -> Result<bool> {
    let Some(overlay) = overlay else {
        let mut all = true;
        log.visit_range(Cf::State, from, to, |k, v| {
            all = visit(k, v);
            all
        })?;
        return Ok(all);
    };
    // Small under test, so the tests cross many chunk boundaries.
    const CHUNK: usize = if cfg!(test) { 3 } else { 256 };
    let mut pending = overlay.chunk(from, None, to, CHUNK).into_iter().peekable();
    let mut last: Option<Vec<u8>> = None;
    let mut drained = false;
    let mut stopped = false;
    // The next overlay entry, refilling the chunk as it runs out.
    let next_entry = |pending: &mut std::iter::Peekable<std::vec::IntoIter<Change>>,
                      last: &mut Option<Vec<u8>>,
                      drained: &mut bool|
     -> Option<Vec<u8>> {
        if pending.peek().is_none() && !*drained {
            let more = overlay.chunk(from, last.as_deref(), to, CHUNK);
            *drained = more.len() < CHUNK;
            *pending = more.into_iter().peekable();
        }
        pending.peek().map(|(k, _)| k.clone())
    };
    // The first chunk may already be the whole range.
    if pending.len() < CHUNK {
        drained = true;
    }
    log.visit_range(Cf::State, from, to, |k, v| {
        while let Some(head) = next_entry(&mut pending, &mut last, &mut drained) {
            if head.as_slice() > k {
                break;
            }
            let Some((ok, ov)) = pending.next() else {
                break;
            };
            let same = ok.as_slice() == k;
            let go_on = match &ov {
                Some(ov) => visit(&ok, ov),
                None => true,
            };
            last = Some(ok);
            if !go_on {
                stopped = true;
                return false;
            }
            if same {
                // The overlay's value replaces (or deletes) the stored one.
                return true;
            }
        }
        if visit(k, v) {
            true
        } else {
            stopped = true;
            false
        }
    })?;
    if stopped {
        return Ok(false);
    }
    while next_entry(&mut pending, &mut last, &mut drained).is_some() {
        let Some((ok, ov)) = pending.next() else {
            break;
        };
        let go_on = match &ov {
            Some(ov) => visit(&ok, ov),
            None => true,
        };
        last = Some(ok);
        if !go_on {
            return Ok(false);
        }
    }
    Ok(true)
}

/// [`visit_range`] with a visitor that can fail: the first error stops the read and is
/// returned. Returns whether every entry was visited.
pub(crate) fn try_visit_range(
    log: &EmbeddedLog,
    overlay: Option<&Overlay>,
    from: &[u8],
    to: &[u8],
    mut visit: impl FnMut(&[u8], &[u8]) -> Result<bool>,
) -> Result<bool> {
    let mut failed = None;
    let all = visit_range(log, overlay, from, to, |k, v| match visit(k, v) {
        Ok(more) => more,
        Err(e) => {
            failed = Some(e);
            false
        }
    })?;
    match failed {
        Some(e) => Err(e),
        None => Ok(all),
    }
}

/// One worker's changelog: the records of its batches since the last checkpoint, the
/// overlay they are applied to, and when to checkpoint.
pub(crate) struct StateLog {
    /// The key prefix of this worker's changelog records ([`crate::keys::changelog_prefix`]).
    prefix: Vec<u8>,
    /// The sequence number the next record gets.
    next: u64,
    /// The oldest record not yet covered by a checkpoint (records `[oldest, next)` exist).
    oldest: u64,
    overlay: Arc<Overlay>,
    budget: CheckpointBudget,
    /// A checkpoint is wanted at the next step whatever the budget says (idle).
    requested: bool,
    /// Bytes of the records `[oldest, next)`.
    logged: usize,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn record_key(prefix: &[u8], seq: u64) -> Vec<u8> {
    let mut k = Vec::with_capacity(prefix.len() + 8);
    k.extend_from_slice(prefix);
    k.extend_from_slice(&seq.to_be_bytes());
    k
}

/// The length of [`encode`]'s record of `changes`.
fn encoded_len(changes: &[Change]) -> usize {
    1 + changes
        .iter()
        .map(|(k, v)| 9 + k.len() + v.as_ref().map_or(0, Vec::len))
        .sum::<usize>()
}

fn encode(changes: &[Change]) -> Vec<u8> {
    let mut out = Vec::with_capacity(encoded_len(changes));
    out.push(FORMAT);
    for (k, v) in changes {
        out.extend_from_slice(&(k.len() as u32).to_le_bytes());
        out.extend_from_slice(k);
        match v {
            Some(v) => {
                out.push(1);
                out.extend_from_slice(&(v.len() as u32).to_le_bytes());
                out.extend_from_slice(v);
            }
            None => out.push(0),
        }
    }
    out
}

fn decode(bytes: &[u8], at: &[u8]) -> Result<Vec<Change>> {
    let corrupt = |what: &str| {
        EngineError::Invalid(format!(
            "corrupt state changelog record {}: {what}",
            hex(at)
        ))
    };
    let mut rest = match bytes.split_first() {
        Some((&FORMAT, rest)) => rest,
        Some((v, _)) => return Err(corrupt(&format!("unknown format {v}"))),
        None => return Err(corrupt("empty")),
    };
    let take = |n: usize, rest: &mut &[u8]| -> Result<Vec<u8>> {
        if rest.len() < n {
            return Err(corrupt("cut short"));
        }
        let (head, tail) = rest.split_at(n);
        *rest = tail;
        Ok(head.to_vec())
    };
    let len = |b: Vec<u8>| -> usize {
        <[u8; 4]>::try_from(b.as_slice()).map_or(0, |b| u32::from_le_bytes(b) as usize)
    };
    let mut out = Vec::new();
    while !rest.is_empty() {
        let n = len(take(4, &mut rest)?);
        let key = take(n, &mut rest)?;
        let flag = take(1, &mut rest)?;
        let value = match flag[0] {
            0 => None,
            1 => {
                let n = len(take(4, &mut rest)?);
                Some(take(n, &mut rest)?)
            }
            f => return Err(corrupt(&format!("bad flag {f}"))),
        };
        out.push((key, value));
    }
    Ok(out)
}

impl StateLog {
    /// Opens the changelog under `prefix`, replaying its records (everything committed
    /// since the last checkpoint) into a new overlay.
    pub(crate) fn recover(
        log: &EmbeddedLog,
        prefix: Vec<u8>,
        budget: &CheckpointBudget,
    ) -> Result<StateLog> {
        let overlay = Arc::new(Overlay::new(budget));
        let mut first = None;
        let mut next = 0u64;
        let mut logged = 0usize;
        let mut failed = None;
        log.visit_prefix(Cf::Changelog, &prefix, |k, v| {
            let seq = k
                .get(prefix.len()..)
                .and_then(|s| <[u8; 8]>::try_from(s).ok())
                .map(u64::from_be_bytes);
            let Some(seq) = seq else {
                failed = Some(EngineError::Invalid(format!(
                    "corrupt state changelog key {}",
                    hex(k)
                )));
                return false;
            };
            match decode(v, k) {
                Ok(changes) => {
                    logged += v.len();
                    overlay.apply(changes);
                    first.get_or_insert(seq);
                    next = seq + 1;
                    true
                }
                Err(e) => {
                    failed = Some(e);
                    false
                }
            }
        })?;
        if let Some(e) = failed {
            return Err(e);
        }
        Ok(StateLog {
            prefix,
            oldest: first.unwrap_or(next),
            next,
            overlay,
            budget: budget.clone(),
            requested: false,
            logged,
        })
    }

    pub(crate) fn overlay(&self) -> &Arc<Overlay> {
        &self.overlay
    }

    /// Puts a batch's changes (sorted by key) into its transaction as one record.
    pub(crate) fn record(&self, txn: &mut Txn, changes: &[Change]) {
        if !changes.is_empty() {
            txn.put(
                Cf::Changelog,
                record_key(&self.prefix, self.next),
                encode(changes),
            );
        }
    }

    /// The batch whose changes [`StateLog::record`] put into a transaction has committed:
    /// they join the overlay.
    pub(crate) fn committed(&mut self, changes: Vec<Change>) {
        if !changes.is_empty() {
            self.next += 1;
            self.logged += encoded_len(&changes);
            self.overlay.apply(changes);
        }
    }

    /// Whether to checkpoint before the next batch, when this overlay holds changes: the
    /// overlays together have outgrown their budget, or this worker's changelog has
    /// outgrown its overlay (see [`LOG_PER_OVERLAY`]), or a checkpoint was asked for.
    pub(crate) fn due(&self) -> bool {
        !self.overlay.is_empty()
            && (self.requested
                || self.budget.over()
                || self.logged >= LOG_FLOOR.max(LOG_PER_OVERLAY * self.overlay.bytes()))
    }

    /// Asks for a checkpoint before the next batch (the worker has been idle).
    pub(crate) fn request_checkpoint(&mut self) {
        self.requested = true;
    }

    /// Writes the overlay into the state family and deletes the changelog records it
    /// covers. Blocks on file writes and a commit. On failure nothing is lost: the
    /// records stay, and so does the overlay.
    pub(crate) fn checkpoint(&mut self, log: &EmbeddedLog) -> Result<()> {
        if self.overlay.is_empty() && self.oldest == self.next {
            return Ok(());
        }
        sluice_common::crash::point("checkpoint.before_ingest");
        {
            let entries = self.overlay.read();
            log.ingest_state(
                entries
                    .map
                    .iter()
                    .map(|(k, v)| (k.as_slice(), v.as_deref())),
            )?;
        }
        sluice_common::crash::point("checkpoint.after_ingest");
        let mut txn = Txn::new();
        for seq in self.oldest..self.next {
            txn.delete(Cf::Changelog, record_key(&self.prefix, seq));
        }
        log.commit(txn).wait_blocking()?;
        self.oldest = self.next;
        self.logged = 0;
        // RocksDB now holds every entry; readers that find a key missing from the
        // overlay from here on read it there.
        let _scans = self
            .overlay
            .scans
            .write()
            .unwrap_or_else(|p| p.into_inner());
        let mut e = self
            .overlay
            .entries
            .write()
            .unwrap_or_else(|p| p.into_inner());
        e.map.clear();
        self.overlay.used.fetch_sub(e.bytes, Ordering::Relaxed);
        e.bytes = 0;
        self.requested = false;
        tracing::debug!("state checkpoint written");
        Ok(())
    }
}

/// The range `[from, to)` of every key under `prefix`.
pub(crate) fn prefix_range(prefix: &[u8]) -> (Vec<u8>, Vec<u8>) {
    let to = prefix_end(prefix).unwrap_or_else(|| vec![0xff; prefix.len() + 1]);
    (prefix.to_vec(), to)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    fn open() -> (tempfile::TempDir, EmbeddedLog) {
        let dir = tempfile::tempdir().expect("temp dir");
        let log = EmbeddedLog::open(dir.path()).expect("open");
        (dir, log)
    }

    fn store(log: &EmbeddedLog, entries: &BTreeMap<Vec<u8>, Vec<u8>>) {
        let mut txn = Txn::new();
        for (k, v) in entries {
            txn.put(Cf::State, k.clone(), v.clone());
        }
        log.commit(txn).wait_blocking().expect("commit");
    }

    /// Keys from a small alphabet, so stored keys and overlay keys collide often.
    fn key() -> impl Strategy<Value = Vec<u8>> {
        proptest::collection::vec(0u8..4, 1..4)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// The merged read equals the model: RocksDB's entries with the overlay's
        /// changes applied, in key order, and stops where the visitor stops.
        #[test]
        fn a_merged_range_read_equals_the_stored_state_with_the_changes_applied(
            stored in proptest::collection::btree_map(key(), key(), 0..40),
            changes in proptest::collection::vec((key(), proptest::option::of(key())), 0..600),
            from in key(),
            span in 0u8..4,
            stop_after in 0usize..50,
        ) {
            let (_dir, log) = open();
            store(&log, &stored);
            let overlay = Overlay::new(&CheckpointBudget::new(1 << 20));
            let mut model = stored.clone();
            for (k, v) in &changes {
                match v {
                    Some(v) => { model.insert(k.clone(), v.clone()); }
                    None => { model.remove(k); }
                }
            }
            overlay.apply(changes);
            let mut to = from.clone();
            to[0] = to[0].saturating_add(span);
            to.push(9);
            let want: Vec<(Vec<u8>, Vec<u8>)> = model
                .range(from.clone()..to.clone())
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            let mut got = Vec::new();
            let all = visit_range(&log, Some(&overlay), &from, &to, |k, v| {
                got.push((k.to_vec(), v.to_vec()));
                true
            }).expect("visit");
            prop_assert!(all);
            prop_assert_eq!(&got, &want);
            // Stopping early gives a prefix of the same order.
            let mut some = Vec::new();
            visit_range(&log, Some(&overlay), &from, &to, |k, v| {
                some.push((k.to_vec(), v.to_vec()));
                some.len() < stop_after.max(1)
            }).expect("visit");
            let n = want.len().min(stop_after.max(1));
            prop_assert_eq!(&some[..], &want[..n]);
        }
    }

    /// A crash after a checkpoint's file went in but before its changelog records were
    /// deleted replays records whose values the file already holds: the state is the
    /// same as if the checkpoint had finished.
    #[test]
    fn replaying_records_a_checkpoint_already_covers_gives_the_same_state() {
        let (_dir, log) = open();
        let prefix = b"D\x00\x00\x00\x00\x00\x00\x00\x00\x07".to_vec();
        let mut statelog = StateLog::recover(&log, prefix.clone(), &CheckpointBudget::new(1 << 20))
            .expect("recover");
        let batches: Vec<Vec<Change>> = vec![
            vec![
                (b"a".to_vec(), Some(b"1".to_vec())),
                (b"b".to_vec(), Some(b"2".to_vec())),
            ],
            vec![(b"a".to_vec(), None), (b"c".to_vec(), Some(b"3".to_vec()))],
            vec![(b"b".to_vec(), Some(b"20".to_vec()))],
        ];
        for changes in batches {
            let mut txn = Txn::new();
            statelog.record(&mut txn, &changes);
            log.commit(txn).wait_blocking().expect("commit");
            statelog.committed(changes);
        }
        let read = |overlay: &Overlay| {
            let mut out = Vec::new();
            visit_range(&log, Some(overlay), b"a", b"z", |k, v| {
                out.push((k.to_vec(), v.to_vec()));
                true
            })
            .expect("visit");
            out
        };
        let want = vec![
            (b"b".to_vec(), b"20".to_vec()),
            (b"c".to_vec(), b"3".to_vec()),
        ];
        assert_eq!(read(statelog.overlay()), want);
        // Only the file goes in, as if the process died right after.
        {
            let e = statelog.overlay().read();
            log.ingest_state(e.map.iter().map(|(k, v)| (k.as_slice(), v.as_deref())))
                .expect("ingest");
        }
        let replayed = StateLog::recover(&log, prefix.clone(), &CheckpointBudget::new(1 << 20))
            .expect("recover");
        assert_eq!(replayed.next, 3);
        assert_eq!(read(replayed.overlay()), want);
        assert_eq!(
            read(&Overlay::new(&CheckpointBudget::new(1 << 20))),
            want,
            "RocksDB alone"
        );
        // Finishing the checkpoint leaves no record to replay.
        let mut replayed = replayed;
        replayed.checkpoint(&log).expect("checkpoint");
        let last =
            StateLog::recover(&log, prefix, &CheckpointBudget::new(1 << 20)).expect("recover");
        assert!(last.overlay().is_empty());
        assert_eq!(last.next, last.oldest);
        assert_eq!(read(last.overlay()), want);
    }

    /// The budget is shared: one worker's changes past it make every worker holding
    /// changes checkpoint at its next batch, and a checkpoint gives its bytes back.
    #[test]
    fn the_checkpoint_budget_is_shared_and_given_back() {
        let (_dir, log) = open();
        let budget = CheckpointBudget::new(1000);
        let mut a = StateLog::recover(&log, b"Da".to_vec(), &budget).expect("recover");
        let mut b = StateLog::recover(&log, b"Db".to_vec(), &budget).expect("recover");
        let commit = |s: &mut StateLog, changes: Vec<Change>| {
            let mut txn = Txn::new();
            s.record(&mut txn, &changes);
            log.commit(txn).wait_blocking().expect("commit");
            s.committed(changes);
        };
        assert!(!a.due() && !b.due(), "nothing held");
        commit(&mut b, vec![(b"k".to_vec(), Some(b"v".to_vec()))]);
        assert!(!b.due(), "under the budget");
        commit(&mut a, vec![(b"big".to_vec(), Some(vec![7; 2000]))]);
        assert!(a.due() && b.due(), "over it, both checkpoint");
        a.checkpoint(&log).expect("checkpoint");
        assert!(!a.due() && !b.due(), "the bytes were given back");
        // Overwriting a key counts its new size only.
        commit(&mut a, vec![(b"big".to_vec(), Some(vec![1; 10]))]);
        commit(&mut a, vec![(b"big".to_vec(), Some(vec![2; 10]))]);
        assert!(a.overlay().bytes() < 200, "{}", a.overlay().bytes());
        // Asked for (idle), a checkpoint is due whatever the budget.
        b.request_checkpoint();
        assert!(b.due());
        b.checkpoint(&log).expect("checkpoint");
        assert!(!b.due());
        drop(a);
        assert_eq!(
            budget.used.load(Ordering::Relaxed),
            0,
            "a dropped overlay gives back"
        );
    }

    /// A few keys changed over and over never fill the budget, and a worker under steady
    /// input never goes idle: the changelog outgrowing its overlay makes the checkpoint,
    /// so what a restart replays stays bounded.
    #[test]
    fn a_changelog_outgrowing_its_overlay_is_checkpointed() {
        let (_dir, log) = open();
        let budget = CheckpointBudget::new(1 << 30);
        let prefix = b"Dk".to_vec();
        let mut s = StateLog::recover(&log, prefix.clone(), &budget).expect("recover");
        let mut checkpoints = 0;
        for i in 0..2000u32 {
            if s.due() {
                s.checkpoint(&log).expect("checkpoint");
                checkpoints += 1;
            }
            let changes = vec![(vec![b'k', (i % 3) as u8], Some(i.to_le_bytes().to_vec()))];
            let mut txn = Txn::new();
            s.record(&mut txn, &changes);
            log.commit(txn).wait_blocking().expect("commit");
            s.committed(changes);
            assert!(s.logged <= LOG_FLOOR + 64, "{} logged", s.logged);
        }
        // Each record is 16 bytes: 2,000 of them fill the floor 7 times.
        assert!(checkpoints >= 7, "{checkpoints} checkpoints");
        let recovered = StateLog::recover(&log, prefix, &budget).expect("recover");
        assert_eq!(
            recovered.logged, s.logged,
            "a restart replays only the tail"
        );
        assert_eq!(recovered.overlay().read().map, s.overlay().read().map);
    }

    #[test]
    fn a_damaged_record_is_refused_naming_it() {
        let (_dir, log) = open();
        let prefix = b"D\x01\x00\x00\x00\x00\x00\x00\x00\x01".to_vec();
        let mut txn = Txn::new();
        let mut good = encode(&[(b"k".to_vec(), Some(b"v".to_vec()))]);
        good.truncate(good.len() - 1);
        txn.put(Cf::Changelog, record_key(&prefix, 0), good);
        log.commit(txn).wait_blocking().expect("commit");
        let err = StateLog::recover(&log, prefix, &CheckpointBudget::new(1 << 20))
            .err()
            .expect("refused");
        assert!(err.to_string().contains("cut short"), "{err}");
    }
}
