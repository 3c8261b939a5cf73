//! A bounded in-memory cache of a query's committed aggregate state, so that updating a
//! group does not pay a RocksDB point read (a memtable skiplist search, then SST blocks)
//! for every event. RocksDB stays the source of truth: the cache only ever holds values
//! that are committed, and a miss reads RocksDB.
//!
//! Two generations bound it without per-entry bookkeeping: writes go to the young map; when
//! that holds half the capacity, the old map is dropped and the young one takes its place.
//! Every group update writes its new state, so recently updated groups stay cached.

use sluice_common::Value;
use std::collections::HashMap;

/// Entries per query: about 300 bytes each for a typical aggregate, so ~75 MiB at most.
pub(crate) const DEFAULT_CAPACITY: usize = 256 * 1024;

pub(crate) struct StateCache {
    young: HashMap<Vec<u8>, Option<Vec<Value>>>,
    old: HashMap<Vec<u8>, Option<Vec<Value>>>,
    capacity: usize,
}

impl StateCache {
    pub(crate) fn new(capacity: usize) -> StateCache {
        StateCache {
            young: HashMap::new(),
            old: HashMap::new(),
            capacity: capacity.max(2),
        }
    }

    /// `Some(None)` means known absent; `None` means not cached.
    pub(crate) fn get(&self, key: &[u8]) -> Option<&Option<Vec<Value>>> {
        self.young.get(key).or_else(|| self.old.get(key))
    }

    /// Records committed state (or its absence) for `key`.
    pub(crate) fn insert(&mut self, key: Vec<u8>, state: Option<Vec<Value>>) {
        if self.young.len() >= self.capacity / 2 && !self.young.contains_key(&key) {
            self.old = std::mem::take(&mut self.young);
        }
        self.young.insert(key, state);
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.young.len() + self.old.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_and_keeps_recent_writes() {
        let mut c = StateCache::new(4);
        for i in 0u8..10 {
            c.insert(vec![i], Some(vec![Value::Int(i as i32)]));
            assert!(c.len() <= 4);
        }
        assert_eq!(c.get(&[9]), Some(&Some(vec![Value::Int(9)])));
        assert_eq!(c.get(&[8]), Some(&Some(vec![Value::Int(8)])));
        assert_eq!(c.get(&[0]), None);
        c.insert(vec![9], None);
        assert_eq!(c.get(&[9]), Some(&None));
    }
}
