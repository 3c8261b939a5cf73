//! A byte-bounded in-memory cache of a query's committed aggregate state, so that
//! updating a group does not pay a RocksDB point read (memtable skiplist searches, then
//! SST blocks) for every event. RocksDB stays the source of truth: the cache only ever
//! holds values that are committed, and when it cannot answer, RocksDB is read.
//!
//! States are kept encoded (the codec row RocksDB holds): a decoded `Vec<Value>` costs
//! several times the bytes, and decoding a small state is cheap next to a point read.
//!
//! While everything the query has committed fits, the cache is *complete*: a key it does
//! not hold has no state, so a new group costs no read at all. A query starts complete
//! when it has no state yet, or when all of its state was loaded at start-up within the
//! budget. Once the budget is exceeded the cache turns generational: writes go to the
//! young map; when that holds half the budget, the old map is dropped and the young one
//! takes its place. Every group update writes its new state, so recently updated groups
//! stay cached. At the switch the old map briefly holds a full budget, so the peak is
//! 1.5 times the budget.

use std::collections::HashMap;

/// Per-entry bytes beyond key and value: two boxed slices, the hash table's bucket and
/// control byte at its load factor, and allocator rounding.
const ENTRY_OVERHEAD: usize = 80;

/// Bytes of cached state per query unless `SLUICE_STATE_CACHE_MB` says otherwise: about
/// 1.5M groups of a five-aggregate query.
pub(crate) const DEFAULT_BUDGET: usize = 256 << 20;

type Map = HashMap<Box<[u8]>, Option<Box<[u8]>>, foldhash::fast::RandomState>;

pub(crate) struct StateCache {
    young: Map,
    old: Map,
    young_bytes: usize,
    budget: usize,
    complete: bool,
}

/// What the cache knows about a key.
#[derive(Debug, PartialEq)]
pub(crate) enum Cached<'a> {
    /// Committed state, or `None` when the key is known to have none.
    Known(Option<&'a [u8]>),
    /// Not cached: RocksDB must be read.
    Unknown,
}

impl StateCache {
    /// An empty cache; `complete` says whether the query has no committed state at all.
    pub(crate) fn new(budget: usize, complete: bool) -> StateCache {
        StateCache {
            young: Map::default(),
            old: Map::default(),
            young_bytes: 0,
            budget: budget.max(1),
            complete,
        }
    }

    /// The budget from `SLUICE_STATE_CACHE_MB`, or the default.
    pub(crate) fn budget_from_env() -> usize {
        std::env::var("SLUICE_STATE_CACHE_MB")
            .ok()
            .and_then(|v| v.trim().parse::<usize>().ok())
            .map_or(DEFAULT_BUDGET, |mb| mb << 20)
    }

    pub(crate) fn get(&self, key: &[u8]) -> Cached<'_> {
        match self.young.get(key).or_else(|| self.old.get(key)) {
            Some(v) => Cached::Known(v.as_deref()),
            None if self.complete => Cached::Known(None),
            None => Cached::Unknown,
        }
    }

    pub(crate) fn budget(&self) -> usize {
        self.budget
    }

    pub(crate) fn is_complete(&self) -> bool {
        self.complete
    }

    /// Records committed state (or its absence) for `key`.
    pub(crate) fn insert(&mut self, key: &[u8], state: Option<&[u8]>) {
        let cost = key.len() + state.map_or(0, <[u8]>::len) + ENTRY_OVERHEAD;
        if let Some(slot) = self.young.get_mut(key) {
            self.young_bytes = self.young_bytes + cost
                - (key.len() + slot.as_deref().map_or(0, <[u8]>::len) + ENTRY_OVERHEAD);
            *slot = state.map(Box::from);
            return;
        }
        let limit = if self.complete {
            self.budget
        } else {
            self.budget / 2
        };
        if self.young_bytes + cost > limit {
            self.old = std::mem::take(&mut self.young);
            self.young_bytes = 0;
            self.complete = false;
        }
        // An older copy in the old map is shadowed (lookups try the young map first) and
        // dropped with it at the next rotation.
        self.young_bytes += cost;
        self.young.insert(Box::from(key), state.map(Box::from));
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.young.len() + self.old.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(i: u8) -> (Vec<u8>, Vec<u8>) {
        (vec![i], vec![i; 20])
    }

    #[test]
    fn bounded_and_keeps_recent_writes() {
        // Each entry costs 1 + 20 + overhead bytes; the budget holds four.
        let mut c = StateCache::new(4 * (21 + ENTRY_OVERHEAD), false);
        for i in 0u8..10 {
            let (k, v) = entry(i);
            c.insert(&k, Some(&v));
            assert!(c.len() <= 4, "{} entries", c.len());
        }
        assert_eq!(c.get(&[9]), Cached::Known(Some(&[9u8; 20][..])));
        assert_eq!(c.get(&[8]), Cached::Known(Some(&[8u8; 20][..])));
        assert_eq!(c.get(&[0]), Cached::Unknown);
        c.insert(&[9], None);
        assert_eq!(c.get(&[9]), Cached::Known(None));
    }

    #[test]
    fn complete_until_the_budget_is_exceeded() {
        let mut c = StateCache::new(3 * (21 + ENTRY_OVERHEAD), true);
        assert_eq!(
            c.get(&[1]),
            Cached::Known(None),
            "complete: a miss is absent"
        );
        for i in 0u8..3 {
            let (k, v) = entry(i);
            c.insert(&k, Some(&v));
        }
        // Updating a cached key does not grow it.
        c.insert(&[0], Some(&[7u8; 20]));
        assert!(c.is_complete());
        assert_eq!(c.get(&[0]), Cached::Known(Some(&[7u8; 20][..])));
        let (k, v) = entry(3);
        c.insert(&k, Some(&v));
        assert!(!c.is_complete());
        assert_eq!(c.get(&[200]), Cached::Unknown, "no longer complete");
        // Everything inserted is still answered until the next rotation.
        for i in 0u8..4 {
            assert!(matches!(c.get(&[i]), Cached::Known(Some(_))), "{i}");
        }
    }

    #[test]
    fn a_key_rewritten_after_rotation_is_not_stale() {
        let mut c = StateCache::new(4 * (21 + ENTRY_OVERHEAD), false);
        c.insert(&[1], Some(&[1u8; 20]));
        c.insert(&[2], Some(&[2u8; 20]));
        c.insert(&[3], Some(&[3u8; 20])); // rotates: [1], [2] are old
        c.insert(&[1], None);
        c.insert(&[4], Some(&[4u8; 20]));
        c.insert(&[5], Some(&[5u8; 20])); // rotates again: old = {3, 1: None, 4}
        assert_ne!(c.get(&[1]), Cached::Known(Some(&[1u8; 20][..])));
    }
}
