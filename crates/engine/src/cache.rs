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
//! stay cached. At the switch the complete map is dropped, so the cache never holds more
//! than its budget. All queries' caches draw from one budget: a cache that would take it
//! over sheds its own older generation.

use hashbrown::HashTable;
use hashbrown::hash_table::Entry as Slot;
use std::hash::BuildHasher;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Per-entry bytes beyond key and value: the hash table's slot (hash and pointer) and
/// control byte at its load factor, the entry's header and allocator rounding.
const ENTRY_OVERHEAD: usize = 56;

/// Bytes of cached state, all queries together, unless `SLUICE_STATE_CACHE_MB` says
/// otherwise: 1M groups of a five-aggregate view take about 170 MiB.
pub(crate) const DEFAULT_BUDGET: usize = 192 << 20;

/// The memory budget every query's state cache draws from, so that the server's
/// footprint does not grow with the number of aggregating queries.
#[derive(Clone)]
pub(crate) struct Budget {
    limit: usize,
    used: Arc<AtomicUsize>,
}

impl Budget {
    pub(crate) fn new(limit: usize) -> Budget {
        Budget {
            limit: limit.max(1),
            used: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// The budget from `SLUICE_STATE_CACHE_MB`, or the default.
    pub(crate) fn from_env() -> Budget {
        Budget::new(
            std::env::var("SLUICE_STATE_CACHE_MB")
                .ok()
                .and_then(|v| v.trim().parse::<usize>().ok())
                .map_or(DEFAULT_BUDGET, |mb| mb << 20),
        )
    }

    fn over(&self, extra: usize) -> bool {
        self.used.load(Ordering::Relaxed) + extra > self.limit
    }

    fn take(&self, bytes: usize) {
        self.used.fetch_add(bytes, Ordering::Relaxed);
    }

    fn give(&self, bytes: usize) {
        self.used.fetch_sub(bytes, Ordering::Relaxed);
    }
}

/// One allocation per entry: key length (u32), a presence byte, the key, the state. A
/// table slot is then one fat pointer, and a million groups cost one allocation each.
struct Entry(Box<[u8]>);

impl Entry {
    fn new(key: &[u8], state: Option<&[u8]>) -> Entry {
        let value = state.unwrap_or_default();
        let mut b = Vec::with_capacity(5 + key.len() + value.len());
        b.extend_from_slice(&(key.len() as u32).to_le_bytes());
        b.push(state.is_some() as u8);
        b.extend_from_slice(key);
        b.extend_from_slice(value);
        Entry(b.into_boxed_slice())
    }

    fn key(&self) -> &[u8] {
        let n = u32::from_le_bytes([self.0[0], self.0[1], self.0[2], self.0[3]]) as usize;
        &self.0[5..5 + n]
    }

    fn state(&self) -> Option<&[u8]> {
        (self.0[4] == 1).then(|| &self.0[5 + self.key().len()..])
    }

    fn cost(&self) -> usize {
        self.0.len() + ENTRY_OVERHEAD
    }
}

/// A table of entries with their keys' hashes: comparing the stored hash first means a
/// probe dereferences (a cache miss, for a cold entry) only the entry it is after, and a
/// resize none.
type Map = HashTable<(u64, Entry)>;

pub(crate) struct StateCache {
    hasher: foldhash::fast::RandomState,
    young: Map,
    old: Map,
    young_bytes: usize,
    old_bytes: usize,
    budget: Budget,
    complete: bool,
}

impl Drop for StateCache {
    fn drop(&mut self) {
        self.budget.give(self.young_bytes + self.old_bytes);
    }
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
    pub(crate) fn new(budget: Budget, complete: bool) -> StateCache {
        StateCache {
            hasher: foldhash::fast::RandomState::default(),
            young: Map::default(),
            old: Map::default(),
            young_bytes: 0,
            old_bytes: 0,
            budget,
            complete,
        }
    }

    pub(crate) fn budget(&self) -> &Budget {
        &self.budget
    }

    pub(crate) fn get(&self, key: &[u8]) -> Cached<'_> {
        let hash = self.hasher.hash_one(key);
        let eq = |(h, e): &(u64, Entry)| *h == hash && e.key() == key;
        match self
            .young
            .find(hash, eq)
            .or_else(|| self.old.find(hash, eq))
        {
            Some((_, e)) => Cached::Known(e.state()),
            None if self.complete => Cached::Known(None),
            None => Cached::Unknown,
        }
    }

    pub(crate) fn is_complete(&self) -> bool {
        self.complete
    }

    /// Records committed state (or its absence) for `key`.
    pub(crate) fn insert(&mut self, key: &[u8], state: Option<&[u8]>) {
        let entry = Entry::new(key, state);
        let cost = entry.cost();
        let hash = self.hasher.hash_one(key);
        let slot = self.young.entry(
            hash,
            |(h, e): &(u64, Entry)| *h == hash && e.key() == key,
            |(h, _)| *h,
        );
        if let Slot::Occupied(mut o) = slot {
            let (_, previous) = o.get_mut();
            self.budget.give(previous.cost());
            self.budget.take(cost);
            self.young_bytes = self.young_bytes + cost - previous.cost();
            *previous = entry;
            return;
        }
        if self.complete {
            if self.budget.over(cost) {
                // Leaving completeness: drop everything rather than keep a full map as the
                // old generation, so the budget holds; the next updates repopulate it.
                self.budget.give(self.young_bytes);
                self.young = Map::default();
                self.young_bytes = 0;
                self.complete = false;
            }
        } else if self.budget.over(cost) || self.young_bytes + cost > self.budget.limit / 2 {
            // Generations of at most half the budget each; under pressure from other
            // queries' caches, this one sheds its older half (and more if still over).
            self.budget.give(self.old_bytes);
            self.old = std::mem::take(&mut self.young);
            self.old_bytes = std::mem::take(&mut self.young_bytes);
            if self.budget.over(cost) {
                self.budget.give(self.old_bytes);
                self.old = Map::default();
                self.old_bytes = 0;
            }
        }
        // An older copy in the old map is shadowed (lookups try the young map first) and
        // dropped with it at the next rotation.
        self.young_bytes += cost;
        self.budget.take(cost);
        self.young.insert_unique(hash, (hash, entry), |(h, _)| *h);
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
        // Each entry costs 5 + 1 + 20 + overhead bytes; the budget holds four.
        let mut c = StateCache::new(Budget::new(4 * (26 + ENTRY_OVERHEAD)), false);
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
        let mut c = StateCache::new(Budget::new(3 * (26 + ENTRY_OVERHEAD)), true);
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
        // The full map was dropped; the newest entry is cached.
        assert!(c.len() <= 1);
        assert!(matches!(c.get(&[3]), Cached::Known(Some(_))));
    }

    #[test]
    fn caches_share_one_budget() {
        let per_entry = 26 + ENTRY_OVERHEAD;
        let budget = Budget::new(6 * per_entry);
        let mut a = StateCache::new(budget.clone(), false);
        let mut b = StateCache::new(budget.clone(), false);
        for i in 0u8..40 {
            let (k, v) = entry(i);
            // Interleaved, with the first cache inserting twice as often.
            if i % 3 == 2 {
                b.insert(&k, Some(&v));
            } else {
                a.insert(&k, Some(&v));
            }
            let used = budget.used.load(Ordering::Relaxed);
            assert!(used <= 6 * per_entry + per_entry, "{used} bytes after {i}");
            assert_eq!(
                used,
                a.young_bytes + a.old_bytes + b.young_bytes + b.old_bytes
            );
        }
        assert!(matches!(b.get(&[38]), Cached::Known(Some(_))));
        drop(a);
        drop(b);
        assert_eq!(budget.used.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn a_key_rewritten_after_rotation_is_not_stale() {
        let mut c = StateCache::new(Budget::new(4 * (26 + ENTRY_OVERHEAD)), false);
        c.insert(&[1], Some(&[1u8; 20]));
        c.insert(&[2], Some(&[2u8; 20]));
        c.insert(&[3], Some(&[3u8; 20])); // rotates: [1], [2] are old
        c.insert(&[1], None);
        c.insert(&[4], Some(&[4u8; 20]));
        c.insert(&[5], Some(&[5u8; 20])); // rotates again: old = {3, 1: None, 4}
        assert_ne!(c.get(&[1]), Cached::Known(Some(&[1u8; 20][..])));
    }
}
