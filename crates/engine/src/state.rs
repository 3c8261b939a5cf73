//! The one interface every operator's state goes through.
//!
//! A persistent query's operators (aggregations, windows, joins, the sink's table) keep
//! their state as codec rows under keys of the state column family (see [`crate::keys`]).
//! They never reach RocksDB themselves: they read and write through [`StateStore`], whose
//! implementation decides where state lives and how it becomes durable. Issue #13 (state
//! in memory, made durable by changelog and checkpoints) replaces [`BatchState`] behind
//! this trait, for every operator at once.
//!
//! [`BatchState`], today's implementation, is one batch's view of the state: the batch's
//! own writes in key order, over the committed state (the query's [`StateCache`], then
//! the worker's in-memory [`Overlay`] of changes since its last checkpoint, then
//! RocksDB). Its writes reach the batch's transaction at [`BatchState::commit`] as one
//! changelog record (see [`crate::changelog`]), with the batch's outputs and consumed
//! offsets, so exactly-once holds by construction.

use crate::cache::{Cached, StateCache};
use crate::changelog::{self, Change, Overlay};
use crate::{EngineError, Result};
use sluice_common::Value;
use sluice_common::codec::{decode_row, encode_row_vec};
use sluice_storage::{Cf, EmbeddedLog};
use std::collections::BTreeMap;

/// State as an operator sees it: point reads and writes, and ordered range reads, of
/// codec rows by key. Reads see the caller's earlier writes.
pub(crate) trait StateStore {
    /// The value under `key`, if any.
    fn get(&self, key: &[u8]) -> Result<Option<Vec<Value>>>;

    /// The value under `key`, moved out for an update in place: the caller puts (or
    /// deletes) it again. Spares copying a large state (COLLECT_LIST, HISTOGRAM) on every
    /// update of a hot group.
    fn take(&mut self, key: &[u8]) -> Result<Option<Vec<Value>>>;

    fn put(&mut self, key: Vec<u8>, value: Vec<Value>);

    fn delete(&mut self, key: Vec<u8>);

    /// Writes `value`, or deletes the key when it is `None`.
    fn set(&mut self, key: Vec<u8>, value: Option<Vec<Value>>) {
        match value {
            Some(v) => self.put(key, v),
            None => self.delete(key),
        }
    }

    /// Every entry with a key in `[from, to)`, in key order.
    fn range(&self, from: &[u8], to: &[u8]) -> Result<Vec<(Vec<u8>, Vec<Value>)>>;

    /// Whether a store with a bound on what it holds has outgrown it (the query using it
    /// must stop). Durable stores have none.
    fn exhausted(&self) -> bool {
        false
    }
}

/// One batch's view of a query's state: its writes (`None` deletes) in key order, over
/// the committed state.
pub(crate) struct BatchState<'a> {
    log: &'a EmbeddedLog,
    cache: &'a StateCache,
    /// The key prefixes the cache holds state of. Only these are looked up in it (a
    /// complete cache answers "none" for any key it lacks) and only these enter it.
    cached: &'a [Vec<u8>],
    /// Committed changes not yet checkpointed into RocksDB.
    overlay: &'a Overlay,
    writes: BTreeMap<Vec<u8>, Option<Vec<Value>>>,
}

/// Which of a batch's changes are under the cached prefixes (indices into them), for the
/// cache to take once the batch is durable.
pub(crate) type CacheUpdates = Vec<usize>;

/// Whether `key` is under one of the prefixes the cache holds.
fn is_cached(cached: &[Vec<u8>], key: &[u8]) -> bool {
    cached.iter().any(|p| key.starts_with(p))
}

fn decode(bytes: &[u8]) -> Result<Vec<Value>> {
    decode_row(bytes).map_err(|e| EngineError::Invalid(e.to_string()))
}

impl<'a> BatchState<'a> {
    pub(crate) fn new(
        log: &'a EmbeddedLog,
        cache: &'a StateCache,
        cached: &'a [Vec<u8>],
        overlay: &'a Overlay,
    ) -> BatchState<'a> {
        BatchState {
            log,
            cache,
            cached,
            overlay,
            writes: BTreeMap::new(),
        }
    }

    /// The committed value of `key`: from the cache when it answers, else the overlay,
    /// else RocksDB.
    fn committed(&self, key: &[u8]) -> Result<Option<Vec<Value>>> {
        if is_cached(self.cached, key) {
            match self.cache.get(key) {
                Cached::Known(Some(bytes)) => return Ok(Some(decode(bytes)?)),
                Cached::Known(None) => return Ok(None),
                Cached::Unknown => {}
            }
        }
        if let Some(v) = self.overlay.with(key, |v| v.map(decode).transpose()) {
            return v;
        }
        self.log
            .get(Cf::State, key)?
            .as_deref()
            .map(decode)
            .transpose()
    }

    /// The batch's state changes, encoded, in key order, for its changelog record (and
    /// the overlay once committed), and the part of them the cache takes once the
    /// transaction has committed.
    pub(crate) fn commit(self) -> (CacheUpdates, Vec<Change>) {
        let mut updates = Vec::new();
        let mut changes = Vec::with_capacity(self.writes.len());
        for (key, value) in self.writes {
            if is_cached(self.cached, &key) {
                updates.push(changes.len());
            }
            changes.push((key, value.as_deref().map(encode_row_vec)));
        }
        (updates, changes)
    }
}

impl StateStore for BatchState<'_> {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<Value>>> {
        match self.writes.get(key) {
            Some(v) => Ok(v.clone()),
            None => self.committed(key),
        }
    }

    fn take(&mut self, key: &[u8]) -> Result<Option<Vec<Value>>> {
        match self.writes.get_mut(key) {
            Some(v) => Ok(v.take()),
            None => self.committed(key),
        }
    }

    fn put(&mut self, key: Vec<u8>, value: Vec<Value>) {
        self.writes.insert(key, Some(value));
    }

    fn delete(&mut self, key: Vec<u8>) {
        self.writes.insert(key, None);
    }

    fn range(&self, from: &[u8], to: &[u8]) -> Result<Vec<(Vec<u8>, Vec<Value>)>> {
        if from >= to {
            return Ok(Vec::new());
        }
        let mut merged: BTreeMap<Vec<u8>, Option<Vec<Value>>> = BTreeMap::new();
        changelog::try_visit_range(self.log, Some(self.overlay), from, to, |k, v| {
            if !self.writes.contains_key(k) {
                merged.insert(k.to_vec(), Some(decode(v)?));
            }
            Ok(true)
        })?;
        for (k, v) in self.writes.range(from.to_vec()..to.to_vec()) {
            merged.insert(k.clone(), v.clone());
        }
        Ok(merged
            .into_iter()
            .filter_map(|(k, v)| v.map(|v| (k, v)))
            .collect())
    }
}

/// State held in memory only, for a transient query (a push query over a join): it lives
/// as long as the subscription and is bounded, so a query whose state outgrows
/// `limit` entries fails instead of growing.
pub(crate) struct MemoryState {
    entries: BTreeMap<Vec<u8>, Vec<Value>>,
    limit: usize,
}

impl MemoryState {
    pub(crate) fn new(limit: usize) -> MemoryState {
        MemoryState {
            entries: BTreeMap::new(),
            limit,
        }
    }
}

impl StateStore for MemoryState {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<Value>>> {
        Ok(self.entries.get(key).cloned())
    }

    fn take(&mut self, key: &[u8]) -> Result<Option<Vec<Value>>> {
        Ok(self.entries.remove(key))
    }

    fn put(&mut self, key: Vec<u8>, value: Vec<Value>) {
        self.entries.insert(key, value);
    }

    fn delete(&mut self, key: Vec<u8>) {
        self.entries.remove(&key);
    }

    fn exhausted(&self) -> bool {
        self.entries.len() > self.limit
    }

    fn range(&self, from: &[u8], to: &[u8]) -> Result<Vec<(Vec<u8>, Vec<Value>)>> {
        if from >= to {
            return Ok(Vec::new());
        }
        Ok(self
            .entries
            .range(from.to_vec()..to.to_vec())
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::Budget;
    use crate::changelog::{CheckpointBudget, StateLog};
    use sluice_storage::Txn;

    fn row(n: i64) -> Vec<Value> {
        vec![Value::BigInt(n)]
    }

    #[test]
    fn reads_see_the_batch_over_committed_state_and_ranges_merge_in_key_order() {
        let dir = tempfile::tempdir().expect("temp dir");
        let log = EmbeddedLog::open(dir.path()).expect("open");
        let mut txn = Txn::default();
        for (k, v) in [(b"a1", 1), (b"a3", 3), (b"a5", 5), (b"b1", 9)] {
            txn.put(Cf::State, k.to_vec(), encode_row_vec(&row(v)));
        }
        log.commit(txn).wait_blocking().expect("commit");
        let cache = StateCache::new(Budget::new(1 << 20), false);
        let cached = vec![b"a".to_vec()];
        let mut statelog =
            StateLog::recover(&log, b"D\0".to_vec(), &CheckpointBudget::new(1 << 20))
                .expect("recover");
        let mut state = BatchState::new(&log, &cache, &cached, statelog.overlay());
        assert_eq!(state.get(b"a3").expect("get"), Some(row(3)));
        state.put(b"a2".to_vec(), row(2));
        state.delete(b"a3".to_vec());
        state.put(b"a5".to_vec(), row(50));
        assert_eq!(state.get(b"a3").expect("get"), None);
        let keys: Vec<(Vec<u8>, Vec<Value>)> = state.range(b"a", b"b").expect("range");
        assert_eq!(
            keys,
            vec![
                (b"a1".to_vec(), row(1)),
                (b"a2".to_vec(), row(2)),
                (b"a5".to_vec(), row(50)),
            ]
        );
        // Taken out, a value is gone until it is put back.
        assert_eq!(state.take(b"a5").expect("take"), Some(row(50)));
        assert_eq!(state.get(b"a5").expect("get"), None);
        state.put(b"a5".to_vec(), row(51));
        state.put(b"b2".to_vec(), row(7));
        let (updates, changes) = state.commit();
        // Only the cached prefix's changes go to the cache, in key order.
        let keys: Vec<&[u8]> = updates.iter().map(|&i| changes[i].0.as_slice()).collect();
        assert_eq!(keys, vec![&b"a2"[..], b"a3", b"a5"]);
        let mut txn = Txn::default();
        statelog.record(&mut txn, &changes);
        log.commit(txn).wait_blocking().expect("commit");
        statelog.committed(changes);
        // Committed, the changes are read from the overlay, not RocksDB (which has none
        // of them until a checkpoint).
        assert_eq!(log.get(Cf::State, b"b2").expect("get"), None);
        let cold = StateCache::new(Budget::new(1 << 20), false);
        let next = BatchState::new(&log, &cold, &cached, statelog.overlay());
        assert_eq!(next.get(b"b2").expect("get"), Some(row(7)));
        assert_eq!(next.get(b"a3").expect("get"), None);
        let all = next.range(b"a", b"c").expect("range");
        let keys: Vec<&[u8]> = all.iter().map(|(k, _)| k.as_slice()).collect();
        assert_eq!(keys, vec![&b"a1"[..], b"a2", b"a5", b"b1", b"b2"]);
        drop(next);
        // A restart replays the changelog record into a new overlay.
        let replayed = StateLog::recover(&log, b"D\0".to_vec(), &CheckpointBudget::new(1 << 20))
            .expect("recover");
        let again = BatchState::new(&log, &cold, &cached, replayed.overlay());
        assert_eq!(again.range(b"a", b"c").expect("range"), all);
        drop(again);
        // A checkpoint moves them into RocksDB and deletes the record.
        statelog.checkpoint(&log).expect("checkpoint");
        assert!(statelog.overlay().is_empty());
        assert_eq!(log.get(Cf::State, b"a3").expect("get"), None);
        assert_eq!(
            log.get(Cf::State, b"b2").expect("get"),
            Some(encode_row_vec(&row(7)))
        );
        let after = StateLog::recover(&log, b"D\0".to_vec(), &CheckpointBudget::new(1 << 20))
            .expect("recover");
        assert!(after.overlay().is_empty());
        let last = BatchState::new(&log, &cold, &cached, after.overlay());
        assert_eq!(last.range(b"a", b"c").expect("range"), all);
    }

    #[test]
    fn a_complete_cache_is_trusted_only_for_the_prefixes_it_holds() {
        let dir = tempfile::tempdir().expect("temp dir");
        let log = EmbeddedLog::open(dir.path()).expect("open");
        let mut txn = Txn::default();
        txn.put(Cf::State, b"z1".to_vec(), encode_row_vec(&row(1)));
        log.commit(txn).wait_blocking().expect("commit");
        // Complete, and empty: it says "no state" for its prefix, nothing for others.
        let cache = StateCache::new(Budget::new(1 << 20), true);
        let cached = vec![b"a".to_vec()];
        let overlay = Overlay::new(&CheckpointBudget::new(1 << 20));
        let state = BatchState::new(&log, &cache, &cached, &overlay);
        assert_eq!(state.get(b"z1").expect("get"), Some(row(1)));
    }

    #[test]
    fn memory_state_ranges_in_key_order_and_reports_its_bound() {
        let mut state = MemoryState::new(2);
        state.put(b"b".to_vec(), row(2));
        state.put(b"a".to_vec(), row(1));
        assert!(!state.exhausted());
        state.put(b"c".to_vec(), row(3));
        assert!(state.exhausted());
        state.delete(b"b".to_vec());
        let got = state.range(b"a", b"z").expect("range");
        assert_eq!(got, vec![(b"a".to_vec(), row(1)), (b"c".to_vec(), row(3))]);
        assert_eq!(state.take(b"a").expect("take"), Some(row(1)));
        assert_eq!(state.get(b"a").expect("get"), None);
    }
}
