//! The event store's index, kept with the log in the `index` column family.
//!
//! ```text
//!   key                                                   value
//!   'k' · topic u32 BE · key length u32 BE · key · seq u64 BE    partition u32 BE · offset u64 BE
//!   'e' · topic u32 BE · event id                               partition u32 BE · offset u64 BE · seq u64 BE
//! ```
//!
//! A topic marked *indexed* (the topic of a stream declared with CREATE STREAM) has one
//! `k` entry per keyed record, written in the commit that appends the record: a key's
//! history is one prefix scan in log order, and its *version* (the number of events
//! stored under it) is the number of its entries. `e` entries remember the event ids
//! appends carried, forever, so a retried append is recognised however late it comes.
//!
//! Only the committer thread writes here, so a check ("the key has 3 events", "no event
//! has this id") and the append it guards are one atomic step: no lock, no race.

use crate::Cf;
use crate::log::Topic;
use rocksdb::{DB, ReadOptions};
use std::collections::HashMap;
use std::sync::Arc;

const KEY_TAG: u8 = b'k';
const ID_TAG: u8 = b'e';

/// Versions remembered by the committer beyond the group being written; past this the
/// map starts again (versions are recounted from the index on demand).
const MAX_CACHED_VERSIONS: usize = 100_000;

/// The prefix of every `k` entry of one key.
pub(crate) fn key_prefix(topic: u32, key: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(9 + key.len() + 8);
    k.push(KEY_TAG);
    k.extend_from_slice(&topic.to_be_bytes());
    k.extend_from_slice(&(key.len() as u32).to_be_bytes());
    k.extend_from_slice(key);
    k
}

pub(crate) fn key_entry(topic: u32, key: &[u8], seq: u64) -> Vec<u8> {
    let mut k = key_prefix(topic, key);
    k.extend_from_slice(&seq.to_be_bytes());
    k
}

pub(crate) fn key_value(partition: u32, offset: u64) -> [u8; 12] {
    let mut v = [0u8; 12];
    v[..4].copy_from_slice(&partition.to_be_bytes());
    v[4..].copy_from_slice(&offset.to_be_bytes());
    v
}

pub(crate) fn id_entry(topic: u32, id: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(5 + id.len());
    k.push(ID_TAG);
    k.extend_from_slice(&topic.to_be_bytes());
    k.extend_from_slice(id);
    k
}

/// Where an event of a key's history is: its partition, offset and log position.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventPosition {
    pub partition: u32,
    pub offset: u64,
    pub seq: u64,
}

impl EventPosition {
    pub(crate) fn encode(&self) -> [u8; 20] {
        let mut v = [0u8; 20];
        v[..12].copy_from_slice(&key_value(self.partition, self.offset));
        v[12..].copy_from_slice(&self.seq.to_be_bytes());
        v
    }

    pub(crate) fn decode(v: &[u8]) -> Option<EventPosition> {
        Some(EventPosition {
            partition: u32::from_be_bytes(v.get(..4)?.try_into().ok()?),
            offset: u64::from_be_bytes(v.get(4..12)?.try_into().ok()?),
            seq: u64::from_be_bytes(v.get(12..20)?.try_into().ok()?),
        })
    }
}

/// Decodes a `k` entry (its key and value) into the event's position.
pub(crate) fn decode_key_entry(key: &[u8], value: &[u8]) -> Option<EventPosition> {
    let seq = u64::from_be_bytes(key.get(key.len().checked_sub(8)?..)?.try_into().ok()?);
    Some(EventPosition {
        partition: u32::from_be_bytes(value.get(..4)?.try_into().ok()?),
        offset: u64::from_be_bytes(value.get(4..12)?.try_into().ok()?),
        seq,
    })
}

fn index_cf(db: &DB) -> &rocksdb::ColumnFamily {
    db.cf_handle(Cf::Index.name())
        .expect("column family created at open")
}

/// Calls `visit` with the position of each event of `key`, in log order, until it returns
/// false. Only committed entries exist in RocksDB; callers bound offsets by the topic's
/// high watermark, since an entry is visible a moment before its commit is announced.
pub(crate) fn visit_key(
    db: &DB,
    topic: u32,
    key: &[u8],
    after_seq: u64,
    mut visit: impl FnMut(EventPosition) -> bool,
) -> Result<(), rocksdb::Error> {
    let prefix = key_prefix(topic, key);
    let mut from = prefix.clone();
    if after_seq > 0 {
        from.extend_from_slice(&after_seq.saturating_add(1).to_be_bytes());
    }
    let mut ro = ReadOptions::default();
    if let Some(end) = crate::prefix_end(&prefix) {
        ro.set_iterate_upper_bound(end);
    }
    let mut it = db.raw_iterator_cf_opt(index_cf(db), ro);
    it.seek(&from);
    while let (Some(k), Some(v)) = (it.key(), it.value()) {
        // The prefix bound alone would also admit a longer key sharing these bytes; the
        // length field makes that impossible, but the entry's size says so for certain.
        if k.len() == prefix.len() + 8
            && let Some(p) = decode_key_entry(k, v)
            && !visit(p)
        {
            return Ok(());
        }
        it.next();
    }
    it.status()
}

/// The number of events stored under `key`.
fn count_key(db: &DB, topic: u32, key: &[u8]) -> Result<u64, rocksdb::Error> {
    let mut n = 0u64;
    visit_key(db, topic, key, 0, |_| {
        n += 1;
        true
    })?;
    Ok(n)
}

/// What an append asks the event store to check before it is written.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AppendCheck {
    /// Append only if no event of the topic has this id; otherwise acknowledge the
    /// earlier append's position and append nothing.
    pub event_id: Option<Vec<u8>>,
    /// Append only if the record's key has exactly this many events (with the appends
    /// before it in the same transaction).
    pub expected_version: Option<u64>,
}

/// A failed version check: the transaction appended nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conflict {
    pub topic: String,
    pub key: Vec<u8>,
    pub expected: u64,
    pub actual: u64,
}

/// The committer's memory of versions and event ids: versions of keys it was asked about
/// (counted once from the index, then kept current by every append), and the ids and
/// versions of the group being written, which RocksDB does not hold yet.
#[derive(Default)]
pub(crate) struct EventStore {
    /// Durable plus pending events per (topic, key), for keys checked recently.
    versions: HashMap<(u32, Vec<u8>), u64>,
    /// Pending events of this group for keys not in `versions`; kept only while the
    /// group has a check that may need them.
    group_new: HashMap<(u32, Vec<u8>), u64>,
    /// Event ids appended by this group: (topic, id) -> position.
    group_ids: HashMap<(u32, Vec<u8>), EventPosition>,
    /// Whether the group being written has a transaction that checks something.
    tracking: bool,
}

/// What checking found for one append.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dup {
    /// Not a duplicate: it is appended.
    New,
    /// Its event id was appended before, here: it appends nothing. With its key's version
    /// now, when versions were asked for.
    Earlier(EventPosition, Option<u64>),
    /// Its event id is that of an earlier append of the same transaction.
    SameAs(usize),
}

/// The outcome of checking one transaction, per append.
pub(crate) type Duplicates = Vec<Dup>;

impl EventStore {
    /// Starts a group; `tracking` when one of its transactions checks versions.
    pub(crate) fn begin_group(&mut self, tracking: bool) {
        if self.versions.len() > MAX_CACHED_VERSIONS {
            self.versions.clear();
        }
        self.tracking = tracking;
    }

    /// The group was written: what it held is durable now.
    pub(crate) fn group_written(&mut self) {
        self.group_new.clear();
        self.group_ids.clear();
    }

    /// The group failed: forget everything not read from RocksDB.
    pub(crate) fn group_failed(&mut self) {
        self.versions.clear();
        self.group_new.clear();
        self.group_ids.clear();
    }

    /// The version of `key` now, counting this group's pending appends, cached from then on.
    fn version(&mut self, db: &DB, topic: u32, key: &[u8]) -> Result<u64, rocksdb::Error> {
        let k = (topic, key.to_vec());
        if let Some(v) = self.versions.get(&k) {
            return Ok(*v);
        }
        let v = count_key(db, topic, key)? + self.group_new.remove(&k).unwrap_or(0);
        self.versions.insert(k, v);
        Ok(v)
    }

    /// Checks a transaction's appends: which are duplicates of earlier event ids, and
    /// whether every expected version holds. Changes nothing a failed check must undo.
    pub(crate) fn check(
        &mut self,
        db: &DB,
        appends: &[(Arc<Topic>, u32, crate::Record)],
        checks: &[(usize, AppendCheck)],
        want_versions: bool,
    ) -> Result<std::result::Result<Duplicates, Conflict>, rocksdb::Error> {
        let mut dups: Duplicates = vec![Dup::New; appends.len()];
        let mut seen_ids: HashMap<(u32, &[u8]), usize> = HashMap::new();
        for (i, check) in checks {
            let Some(id) = &check.event_id else { continue };
            let topic = &appends[*i].0;
            if let Some(first) = seen_ids.get(&(topic.id, id.as_slice())) {
                // The same id twice in one transaction: the second is the first's retry.
                dups[*i] = Dup::SameAs(*first);
                continue;
            }
            seen_ids.insert((topic.id, id.as_slice()), *i);
            let known = match self.group_ids.get(&(topic.id, id.clone())) {
                Some(p) => Some(*p),
                None => db
                    .get_cf(index_cf(db), id_entry(topic.id, id))?
                    .and_then(|v| EventPosition::decode(&v)),
            };
            if let Some(p) = known {
                dups[*i] = Dup::Earlier(p, None);
            }
        }
        let mut expected: HashMap<usize, u64> = HashMap::new();
        for (i, check) in checks {
            if let Some(v) = check.expected_version {
                expected.insert(*i, v);
            }
        }
        if expected.is_empty() && !want_versions {
            return Ok(Ok(dups));
        }
        // Versions as this transaction's appends would leave them, in order.
        let mut local: HashMap<(u32, &[u8]), u64> = HashMap::new();
        for (i, (topic, _, record)) in appends.iter().enumerate() {
            if !topic.is_indexed() {
                continue;
            }
            if let Dup::Earlier(at, _) = dups[i] {
                // A retry is told the key's version as it stands, which is what its next
                // command must expect.
                if let Some(key) = record.key.as_deref() {
                    let now = match local.get(&(topic.id, key)) {
                        Some(v) => *v,
                        None => self.version(db, topic.id, key)?,
                    };
                    dups[i] = Dup::Earlier(at, Some(now));
                }
                continue;
            }
            if dups[i] != Dup::New {
                continue;
            }
            let Some(key) = record.key.as_deref() else {
                if let Some(e) = expected.get(&i) {
                    // A keyless event has no history to check against.
                    return Ok(Err(Conflict {
                        topic: topic.name.clone(),
                        key: Vec::new(),
                        expected: *e,
                        actual: 0,
                    }));
                }
                continue;
            };
            let current = match local.get(&(topic.id, key)) {
                Some(v) => *v,
                None => self.version(db, topic.id, key)?,
            };
            if let Some(e) = expected.get(&i)
                && *e != current
            {
                return Ok(Err(Conflict {
                    topic: topic.name.clone(),
                    key: key.to_vec(),
                    expected: *e,
                    actual: current,
                }));
            }
            local.insert((topic.id, key), current + 1);
        }
        Ok(Ok(dups))
    }

    /// Records an append the group writes: its key's version moves on, its event id is
    /// taken. Returns the key's version after it when known.
    pub(crate) fn appended(
        &mut self,
        topic: &Topic,
        key: Option<&[u8]>,
        event_id: Option<&[u8]>,
        at: EventPosition,
    ) -> Option<u64> {
        if let Some(id) = event_id {
            self.group_ids.insert((topic.id, id.to_vec()), at);
        }
        let key = key.filter(|_| topic.is_indexed())?;
        if self.versions.is_empty() && !self.tracking {
            return None;
        }
        let k = (topic.id, key.to_vec());
        if let Some(v) = self.versions.get_mut(&k) {
            *v += 1;
            return Some(*v);
        }
        if self.tracking {
            *self.group_new.entry(k).or_default() += 1;
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{EmbeddedLog, Log, Record, StorageError, Txn};

    fn rec(key: &str, v: &str) -> Record {
        Record {
            key: Some(key.as_bytes().to_vec()),
            value: Some(v.as_bytes().to_vec()),
            timestamp: 1,
            headers: vec![],
        }
    }

    fn indexed(log: &EmbeddedLog, name: &str) -> Arc<Topic> {
        let t = log.create_topic(name, 2).expect("topic");
        let mut txn = Txn::new();
        txn.index_topic(&t);
        log.submit(txn).wait_blocking().expect("index");
        assert!(t.is_indexed());
        t
    }

    fn expect(
        log: &EmbeddedLog,
        t: &Arc<Topic>,
        key: &str,
        version: u64,
    ) -> crate::Result<crate::Appended> {
        let mut txn = Txn::new();
        let p = t.partition_for(Some(key.as_bytes()));
        txn.append_checked(
            t,
            p,
            rec(key, "v"),
            AppendCheck {
                event_id: None,
                expected_version: Some(version),
            },
        );
        log.submit(txn).appended_blocking().map(|a| a[0])
    }

    #[test]
    fn existing_records_are_indexed_and_versions_checked_against_them() {
        let dir = tempfile::tempdir().expect("dir");
        let log = EmbeddedLog::open(dir.path()).expect("open");
        let t = log.create_topic("events", 2).expect("topic");
        let mut txn = Txn::new();
        for (k, v) in [("c1", "a"), ("c2", "b"), ("c1", "c")] {
            txn.append(&t, t.partition_for(Some(k.as_bytes())), rec(k, v));
        }
        log.submit(txn).wait_blocking().expect("append");
        let mut txn = Txn::new();
        txn.index_topic(&t);
        log.submit(txn).wait_blocking().expect("index");
        let history = log.key_history(&t, b"c1", 0, 10).expect("history");
        let values: Vec<Vec<u8>> = history
            .iter()
            .map(|p| {
                log.read_at(&t, p.partition, p.offset)
                    .expect("read")
                    .expect("there")
                    .record
                    .value
                    .expect("value")
            })
            .collect();
        assert_eq!(values, vec![b"a".to_vec(), b"c".to_vec()]);
        match expect(&log, &t, "c1", 1) {
            Err(StorageError::Conflict(c)) => {
                assert_eq!((c.key.as_slice(), c.expected, c.actual), (&b"c1"[..], 1, 2));
            }
            other => panic!("expected a conflict, got {other:?}"),
        }
        let ok = expect(&log, &t, "c1", 2).expect("version 2 holds");
        assert_eq!(ok.version, Some(3));
        assert_eq!(
            expect(&log, &t, "new", 0).expect("a new key").version,
            Some(1)
        );
        drop(log);
        // The index and the flag survive a restart; versions are recounted from it.
        let log = EmbeddedLog::open(dir.path()).expect("reopen");
        let t = log.topic("events").expect("topic");
        assert!(t.is_indexed());
        assert!(matches!(
            expect(&log, &t, "c1", 2),
            Err(StorageError::Conflict(_))
        ));
        assert_eq!(expect(&log, &t, "c1", 3).expect("3").version, Some(4));
        assert_eq!(log.key_history(&t, b"c1", 0, 10).expect("history").len(), 4);
    }

    #[test]
    fn one_transaction_checks_its_own_appends_in_order_and_fails_whole() {
        let dir = tempfile::tempdir().expect("dir");
        let log = EmbeddedLog::open(dir.path()).expect("open");
        let t = indexed(&log, "events");
        let p = t.partition_for(Some(b"k"));
        let check = |v| AppendCheck {
            event_id: None,
            expected_version: Some(v),
        };
        let mut txn = Txn::new();
        txn.append_checked(&t, p, rec("k", "1"), check(0));
        txn.append_checked(&t, p, rec("k", "2"), check(1));
        let acks = log.submit(txn).appended_blocking().expect("0 then 1");
        assert_eq!(
            acks.iter().map(|a| a.version).collect::<Vec<_>>(),
            vec![Some(1), Some(2)]
        );
        // The second append's expectation fails: neither is appended.
        let mut txn = Txn::new();
        txn.append_checked(&t, p, rec("k", "3"), check(2));
        txn.append_checked(&t, p, rec("k", "4"), check(2));
        assert!(matches!(
            log.submit(txn).appended_blocking(),
            Err(StorageError::Conflict(_))
        ));
        assert_eq!(t.end_offset(p), 2);
        assert_eq!(log.key_history(&t, b"k", 0, 10).expect("history").len(), 2);
    }

    #[test]
    fn racing_writers_on_one_version_exactly_one_wins() {
        let dir = tempfile::tempdir().expect("dir");
        let log = EmbeddedLog::open(dir.path()).expect("open");
        let t = indexed(&log, "events");
        for version in 0..20u64 {
            // Eight writers submit before any is answered, so they share commit groups.
            let tickets: Vec<_> = (0..8)
                .map(|_| {
                    let mut txn = Txn::new();
                    txn.append_checked(
                        &t,
                        t.partition_for(Some(b"hot")),
                        rec("hot", "v"),
                        AppendCheck {
                            event_id: None,
                            expected_version: Some(version),
                        },
                    );
                    log.submit(txn)
                })
                .collect();
            let won = tickets
                .into_iter()
                .map(|t| t.appended_blocking())
                .filter(|r| r.is_ok())
                .count();
            assert_eq!(won, 1, "version {version}");
        }
        assert_eq!(
            log.key_history(&t, b"hot", 0, 100).expect("history").len(),
            20
        );
    }

    #[test]
    fn an_event_id_appends_once_however_often_it_is_retried() {
        let dir = tempfile::tempdir().expect("dir");
        let log = EmbeddedLog::open(dir.path()).expect("open");
        let t = log.create_topic("events", 1).expect("topic");
        let with_id = |txn: &mut Txn, id: &str, v: &str| {
            txn.append_checked(
                &t,
                0,
                rec("k", v),
                AppendCheck {
                    event_id: Some(id.as_bytes().to_vec()),
                    expected_version: None,
                },
            )
        };
        let mut txn = Txn::new();
        with_id(&mut txn, "e1", "first");
        with_id(&mut txn, "e1", "again, same transaction");
        with_id(&mut txn, "e2", "other");
        let acks = log.submit(txn).appended_blocking().expect("append");
        assert_eq!(
            acks.iter()
                .map(|a| (a.offset, a.duplicate))
                .collect::<Vec<_>>(),
            vec![(0, false), (0, true), (1, false)]
        );
        // Retries in one commit group and in later ones.
        let tickets: Vec<_> = (0..3)
            .map(|_| {
                let mut txn = Txn::new();
                with_id(&mut txn, "e3", "x");
                log.submit(txn)
            })
            .collect();
        let acks: Vec<crate::Appended> = tickets
            .into_iter()
            .map(|t| t.appended_blocking().expect("append")[0])
            .collect();
        assert_eq!(acks.iter().filter(|a| !a.duplicate).count(), 1);
        assert!(acks.iter().all(|a| a.offset == 2 && a.seq == acks[0].seq));
        drop(log);
        let log = EmbeddedLog::open(dir.path()).expect("reopen");
        let t = log.topic("events").expect("topic");
        let mut txn = Txn::new();
        txn.append_checked(
            &t,
            0,
            rec("k", "after restart"),
            AppendCheck {
                event_id: Some(b"e1".to_vec()),
                expected_version: None,
            },
        );
        let ack = log.submit(txn).appended_blocking().expect("append")[0];
        assert!(ack.duplicate);
        assert_eq!(ack.offset, 0);
        assert_eq!(t.end_offset(0), 3);
    }

    #[test]
    fn entries_of_one_key_never_mix_with_a_longer_key() {
        let a = key_entry(1, b"ab", 5);
        let b = key_entry(1, b"abc", 1);
        assert!(!b.starts_with(&key_prefix(1, b"ab")));
        assert!(a.starts_with(&key_prefix(1, b"ab")));
        let p = decode_key_entry(&a, &key_value(3, 9)).expect("decodes");
        assert_eq!(
            p,
            EventPosition {
                partition: 3,
                offset: 9,
                seq: 5
            }
        );
        let e = EventPosition {
            partition: 1,
            offset: 2,
            seq: 3,
        };
        assert_eq!(EventPosition::decode(&e.encode()), Some(e));
        assert_eq!(EventPosition::decode(b"short"), None);
    }
}
