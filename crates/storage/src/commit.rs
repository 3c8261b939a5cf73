//! The committer: one thread that owns every write to the database.
//!
//! Producers hand it [`Txn`]s through a channel and wait on a [`CommitTicket`]. The thread
//! drains whatever is queued (up to a bound), assigns offsets, writes one `WriteBatch` with
//! `sync = true` and then answers every transaction in it. Under load many transactions
//! share one fsync (group commit); when idle a lone transaction is written at once.

use crate::index::{self, AppendCheck, Conflict, Dup, EventPosition, EventStore};
use crate::log::{Topic, TopicMeta, log_key};
use crate::record::{BatchBuilder, Record};
use crate::{Cf, Result, StorageError};
use rocksdb::{DB, WriteBatch, WriteOptions};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::sync::{mpsc, oneshot};

/// Transactions drained into one write batch at most; bounds batch size and latency.
const MAX_GROUP: usize = 4096;

/// Bounds of one log entry (a run of records of one partition): reading from an offset
/// decodes the entry holding it, so entries stay small enough to make that cheap.
const MAX_BATCH_RECORDS: u32 = 1024;
const MAX_BATCH_BYTES: usize = 256 * 1024;

/// An atomic unit of writes: log appends plus puts/deletes in other column families.
#[derive(Default)]
pub struct Txn {
    pub(crate) appends: Vec<(Arc<Topic>, u32, Record)>,
    pub(crate) writes: Vec<(Cf, Vec<u8>, Option<Vec<u8>>)>,
    /// Event-store checks of some appends (by index into `appends`).
    pub(crate) checks: Vec<(usize, AppendCheck)>,
    /// Whether the acknowledgement should carry each keyed append's version.
    pub(crate) want_versions: bool,
    /// Topics to index from now on (their existing records first).
    pub(crate) index: Vec<Arc<Topic>>,
}

impl Txn {
    pub fn new() -> Txn {
        Txn::default()
    }

    pub fn append(&mut self, topic: &Arc<Topic>, partition: u32, record: Record) {
        self.appends.push((topic.clone(), partition, record));
    }

    /// Appends `record` only if `check` holds (see [`AppendCheck`]); a failed version check
    /// fails the whole transaction with [`StorageError::Conflict`].
    pub fn append_checked(
        &mut self,
        topic: &Arc<Topic>,
        partition: u32,
        record: Record,
        check: AppendCheck,
    ) {
        if check != AppendCheck::default() {
            self.checks.push((self.appends.len(), check));
        }
        self.appends.push((topic.clone(), partition, record));
    }

    /// Asks for the version of every keyed append's key in the acknowledgement.
    pub fn want_versions(&mut self) {
        self.want_versions = true;
    }

    /// Makes `topic` indexed by key (every keyed record's position kept in the `index`
    /// family, its existing records included), atomically with the rest of the transaction.
    pub fn index_topic(&mut self, topic: &Arc<Topic>) {
        self.index.push(topic.clone());
    }

    pub fn put(&mut self, cf: Cf, key: Vec<u8>, value: Vec<u8>) {
        self.writes.push((cf, key, Some(value)));
    }

    pub fn delete(&mut self, cf: Cf, key: Vec<u8>) {
        self.writes.push((cf, key, None));
    }

    pub fn is_empty(&self) -> bool {
        self.appends.is_empty() && self.writes.is_empty() && self.index.is_empty()
    }

    pub fn append_count(&self) -> usize {
        self.appends.len()
    }

    /// Gives the records appended since `from` these headers: outputs carry the headers
    /// of the input record they were derived from, as in Kafka Streams.
    pub fn stamp_headers(&mut self, from: usize, headers: &[(String, Option<Vec<u8>>)]) {
        if headers.is_empty() {
            return;
        }
        for (_, _, record) in self.appends.iter_mut().skip(from) {
            record.headers = headers.to_vec();
        }
    }
}

/// How one append was acknowledged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Appended {
    pub partition: u32,
    pub offset: u64,
    /// Its position in the whole log (see [`crate::StoredRecord::seq`]): the token a reader
    /// waits for to see this write.
    pub seq: u64,
    /// The number of events under the record's key once it is stored, when asked for
    /// ([`Txn::want_versions`] or an expected version) and the topic is indexed.
    pub version: Option<u64>,
    /// The append carried an event id the topic already held: nothing was appended, and
    /// the position is the earlier append's.
    pub duplicate: bool,
}

#[derive(Clone)]
enum Failure {
    Write(String),
    Conflict(Box<Conflict>),
    /// The group was refused: the data directory's filesystem is below its reserve.
    DiskFull {
        dir: std::path::PathBuf,
        free: u64,
        reserve: u64,
    },
}

type Reply = std::result::Result<Vec<Appended>, Failure>;

/// An index entry's value, held inline until the group's entries are sorted and written
/// (no allocation per appended record).
enum IndexValue {
    /// A key entry's partition and offset.
    Key([u8; 12]),
    /// An event id's position.
    Id([u8; 20]),
}

pub(crate) struct Pending {
    txn: Txn,
    reply: oneshot::Sender<Reply>,
}

/// Resolves once the transaction is durable, with the (partition, offset) of each append in
/// order.
pub struct CommitTicket(oneshot::Receiver<Reply>);

fn answer(reply: std::result::Result<Reply, oneshot::error::RecvError>) -> Result<Vec<Appended>> {
    match reply {
        Ok(Ok(p)) => Ok(p),
        Ok(Err(Failure::Write(e))) => Err(StorageError::CommitFailed(e)),
        Ok(Err(Failure::Conflict(c))) => Err(StorageError::Conflict(c)),
        Ok(Err(Failure::DiskFull { dir, free, reserve })) => Err(StorageError::DiskFull {
            dir,
            free_mib: free >> 20,
            reserve_mib: reserve >> 20,
        }),
        Err(_) => Err(StorageError::Closed),
    }
}

fn positions(appended: Vec<Appended>) -> Vec<(u32, u64)> {
    appended.iter().map(|a| (a.partition, a.offset)).collect()
}

impl CommitTicket {
    pub async fn wait(self) -> Result<Vec<(u32, u64)>> {
        self.appended().await.map(positions)
    }

    /// Waits, and returns how each append was acknowledged.
    pub async fn appended(self) -> Result<Vec<Appended>> {
        answer(self.0.await)
    }

    /// For callers outside the async runtime (tests, recovery).
    pub fn wait_blocking(self) -> Result<Vec<(u32, u64)>> {
        self.appended_blocking().map(positions)
    }

    pub fn appended_blocking(self) -> Result<Vec<Appended>> {
        answer(self.0.blocking_recv())
    }
}

pub(crate) struct Committer {
    tx: Option<mpsc::UnboundedSender<Pending>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Committer {
    /// Closes the queue and waits for the thread, so the database is closed (and its lock
    /// released) when the log is dropped, not at some later point.
    fn drop(&mut self) {
        self.tx.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Committer {
    /// `committed` is kept at the log position after the last durable record.
    pub(crate) fn start(
        db: Arc<DB>,
        next_seq: u64,
        committed: Arc<AtomicU64>,
        stats: Arc<crate::CommitStats>,
        disk: crate::disk::DiskGuard,
    ) -> Committer {
        let (tx, rx) = mpsc::unbounded_channel();
        committed.store(next_seq, Ordering::Release);
        let thread = std::thread::Builder::new()
            .name("sluice-commit".into())
            .spawn(move || run(db, rx, next_seq, committed, stats, disk))
            .expect("spawning the committer thread at startup");
        Committer {
            tx: Some(tx),
            thread: Some(thread),
        }
    }

    pub(crate) fn submit(&self, txn: Txn) -> CommitTicket {
        let (reply, rx) = oneshot::channel();
        // If the thread is gone the ticket resolves to Closed when `reply` drops.
        if let Some(tx) = &self.tx {
            let _ = tx.send(Pending { txn, reply });
        }
        CommitTicket(rx)
    }
}

/// Where the next log position is kept (in the catalog family), updated by every commit.
const NEXT_SEQ_KEY: &[u8] = b"log/next_seq";

/// The log position the next appended record gets: one more than the last committed.
pub(crate) fn stored_next_seq(db: &DB) -> std::result::Result<u64, rocksdb::Error> {
    Ok(db
        .get_cf(cf(db, Cf::Catalog), NEXT_SEQ_KEY)?
        .and_then(|b| <[u8; 8]>::try_from(b.as_slice()).ok())
        .map_or(1, u64::from_be_bytes))
}

fn run(
    db: Arc<DB>,
    mut rx: mpsc::UnboundedReceiver<Pending>,
    mut next_seq: u64,
    committed: Arc<AtomicU64>,
    stats: Arc<crate::CommitStats>,
    disk: crate::disk::DiskGuard,
) {
    let mut sync = WriteOptions::default();
    sync.set_sync(true);
    // Offsets assigned but possibly not yet durable; the topic's high watermark trails it.
    let mut next: HashMap<(u32, u32), u64> = HashMap::new();
    let mut store = EventStore::default();
    while let Some(first) = rx.blocking_recv() {
        let mut group = vec![first];
        while group.len() < MAX_GROUP {
            match rx.try_recv() {
                Ok(p) => group.push(p),
                Err(_) => break,
            }
        }
        let mut batch = WriteBatch::default();
        let committed_seq = next_seq;
        let mut outcomes: Vec<Reply> = Vec::with_capacity(group.len());
        let mut touched: HashMap<(u32, u32), Arc<Topic>> = HashMap::new();
        // Per partition, the batch entry being filled and the offset of its first record.
        let mut open: HashMap<(u32, u32), (u64, BatchBuilder)> = HashMap::new();
        store.begin_group(group.iter().any(|p| {
            p.txn.want_versions
                || p.txn
                    .checks
                    .iter()
                    .any(|(_, c)| c.expected_version.is_some())
        }));
        // Topics indexed from this group on: their records so far are indexed first, from
        // RocksDB, which holds every record before this group.
        let mut newly_indexed: Vec<Arc<Topic>> = Vec::new();
        let mut group_error = None;
        // The group's index entries, written in key order: the memtable's skip list then
        // inserts each next to the one before (its search starts from there) instead of
        // searching from the top for keys scattered over the whole index.
        let mut index_puts: Vec<(Vec<u8>, IndexValue)> = Vec::new();
        for p in &group {
            for topic in &p.txn.index {
                if topic.is_indexed() || newly_indexed.iter().any(|t| t.id == topic.id) {
                    continue;
                }
                match backfill_index(&db, &mut batch, topic) {
                    Ok(()) => {
                        topic.set_indexed(true);
                        newly_indexed.push(topic.clone());
                    }
                    Err(e) => group_error = Some(e.to_string()),
                }
            }
        }
        for p in &group {
            let checked = if p.txn.checks.is_empty() && !p.txn.want_versions {
                Ok(Ok(None))
            } else {
                store
                    .check(&db, &p.txn.appends, &p.txn.checks, p.txn.want_versions)
                    .map(|r| r.map(Some))
            };
            let dups = match checked {
                Ok(Ok(dups)) => dups,
                Ok(Err(conflict)) => {
                    outcomes.push(Err(Failure::Conflict(Box::new(conflict))));
                    continue;
                }
                Err(e) => {
                    outcomes.push(Err(Failure::Write(e.to_string())));
                    continue;
                }
            };
            let mut ids = p.txn.checks.iter().peekable();
            let mut acks: Vec<Appended> = Vec::with_capacity(p.txn.appends.len());
            for (i, (topic, partition, record)) in p.txn.appends.iter().enumerate() {
                let mut event_id = None;
                while let Some((j, check)) = ids.peek() {
                    if *j > i {
                        break;
                    }
                    if *j == i {
                        event_id = check.event_id.as_deref();
                    }
                    ids.next();
                }
                match dups.as_ref().map_or(Dup::New, |d| d[i]) {
                    Dup::Earlier(at, version) => {
                        acks.push(Appended {
                            partition: at.partition,
                            offset: at.offset,
                            seq: at.seq,
                            version,
                            duplicate: true,
                        });
                        continue;
                    }
                    Dup::SameAs(j) => {
                        let first = acks[j];
                        acks.push(Appended {
                            duplicate: true,
                            ..first
                        });
                        continue;
                    }
                    Dup::New => {}
                }
                let tp = (topic.id, *partition);
                let n = next
                    .entry(tp)
                    .or_insert_with(|| topic.end_offset(*partition));
                let (_, builder) = open.entry(tp).or_insert_with(|| (*n, BatchBuilder::new()));
                builder.push(record, next_seq);
                let at = EventPosition {
                    partition: *partition,
                    offset: *n,
                    seq: next_seq,
                };
                next_seq += 1;
                *n += 1;
                if (builder.len() >= MAX_BATCH_RECORDS || builder.bytes() >= MAX_BATCH_BYTES)
                    && let Some((base, full)) = open.remove(&tp)
                {
                    batch.put_cf(cf(&db, Cf::Log), log_key(tp.0, tp.1, base), full.finish());
                }
                if topic.is_indexed()
                    && let Some(key) = record.key.as_deref()
                {
                    index_puts.push((
                        index::key_entry(topic.id, key, at.seq),
                        IndexValue::Key(index::key_value(at.partition, at.offset)),
                    ));
                }
                if let Some(id) = event_id {
                    index_puts.push((index::id_entry(topic.id, id), IndexValue::Id(at.encode())));
                }
                let version = store.appended(topic, record.key.as_deref(), event_id, at);
                acks.push(Appended {
                    partition: at.partition,
                    offset: at.offset,
                    seq: at.seq,
                    version,
                    duplicate: false,
                });
                touched.entry(tp).or_insert_with(|| topic.clone());
            }
            for (family, key, value) in &p.txn.writes {
                match value {
                    Some(v) => batch.put_cf(cf(&db, *family), key, v),
                    None => batch.delete_cf(cf(&db, *family), key),
                }
            }
            outcomes.push(Ok(acks));
        }
        index_puts.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        for (key, value) in &index_puts {
            let value: &[u8] = match value {
                IndexValue::Key(v) => v,
                IndexValue::Id(v) => v,
            };
            batch.put_cf(cf(&db, Cf::Index), key, value);
        }
        for ((topic, partition), (base, builder)) in open {
            batch.put_cf(
                cf(&db, Cf::Log),
                log_key(topic, partition, base),
                builder.finish(),
            );
        }
        if next_seq != committed_seq {
            batch.put_cf(cf(&db, Cf::Catalog), NEXT_SEQ_KEY, next_seq.to_be_bytes());
        }
        let written = match (group_error, disk.short()) {
            (Some(e), _) => Err(Failure::Write(e)),
            (None, Some(free)) => Err(Failure::DiskFull {
                dir: disk.dir.clone(),
                free,
                reserve: disk.reserve,
            }),
            (None, None) => {
                sluice_common::crash::point("commit.before_write");
                let started = std::time::Instant::now();
                let r = db.write_opt(batch, &sync).map_err(|e| {
                    // Space ran out under the reserve's guard (it was too small, or
                    // something else filled the disk): RocksDB now refuses every write
                    // until it is reopened.
                    let text = e.to_string();
                    if text.contains("No space left") {
                        Failure::Write(format!(
                            "{text} (RocksDB refuses writes from now on: free space on the disk holding {} and restart the server; raise SLUICE_DISK_RESERVE_MB to keep this from recurring)",
                            disk.dir.display()
                        ))
                    } else {
                        Failure::Write(text)
                    }
                });
                stats.write_seconds.observe(started.elapsed().as_secs_f64());
                r
            }
        };
        match &written {
            Ok(()) => stats
                .group_records
                .observe(next_seq.saturating_sub(committed_seq) as f64),
            Err(_) => {
                stats
                    .failed_groups
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
        }
        match written {
            Ok(()) => {
                // Durable, but no one has been told: the clients see the connection drop.
                sluice_common::crash::point("commit.after_write");
                store.group_written();
                let mut topics: HashMap<u32, Arc<Topic>> = HashMap::new();
                for ((id, partition), topic) in touched {
                    topic.set_end_offset(partition, next[&(id, partition)]);
                    topics.insert(id, topic);
                }
                // After the ends move and before any reply: whoever sees a position
                // committed also sees its record in its topic's end offset.
                committed.store(next_seq, Ordering::Release);
                for topic in topics.values() {
                    topic.notify();
                }
                for (p, outcome) in group.into_iter().zip(outcomes) {
                    let _ = p.reply.send(outcome);
                }
            }
            Err(failure) => {
                match &failure {
                    Failure::DiskFull { free, .. } => tracing::warn!(
                        free_mib = free >> 20,
                        reserve_mib = disk.reserve >> 20,
                        "disk almost full; writes refused"
                    ),
                    Failure::Write(msg) => {
                        tracing::error!(error = %msg, "commit failed; the batch is not acknowledged")
                    }
                    Failure::Conflict(_) => {}
                }
                store.group_failed();
                for topic in newly_indexed {
                    topic.set_indexed(false);
                }
                next_seq = committed_seq;
                for (key, topic) in touched {
                    next.insert(key, topic.end_offset(key.1));
                }
                for p in group {
                    let _ = p.reply.send(Err(failure.clone()));
                }
            }
        }
    }
}

/// Indexes the records `topic` holds (all committed: the committer wrote them) and marks
/// it indexed in its stored metadata, all in `batch`.
fn backfill_index(
    db: &DB,
    batch: &mut WriteBatch,
    topic: &Topic,
) -> std::result::Result<(), StorageError> {
    const CHUNK: usize = 4096;
    for partition in 0..topic.partitions {
        let end = topic.end_offset(partition);
        let mut from = 0;
        while from < end {
            let records = crate::log::read_records(db, topic, partition, from, end, CHUNK)?;
            let Some(last) = records.last() else { break };
            from = last.offset + 1;
            for r in &records {
                if let Some(key) = r.record.key.as_deref() {
                    // Records from before the log numbered them have no position; their
                    // offset orders them, ahead of every numbered record of their key.
                    let order = if r.seq == 0 { r.offset } else { r.seq };
                    batch.put_cf(
                        cf(db, Cf::Index),
                        index::key_entry(topic.id, key, order),
                        index::key_value(partition, r.offset),
                    );
                }
            }
        }
    }
    let meta = TopicMeta {
        id: topic.id,
        partitions: topic.partitions,
        indexed: true,
    };
    let json = serde_json::to_vec(&meta).map_err(|e| StorageError::Corrupt {
        what: "topic metadata",
        detail: e.to_string(),
    })?;
    batch.put_cf(cf(db, Cf::Catalog), format!("topic/{}", topic.name), json);
    Ok(())
}

fn cf(db: &DB, family: Cf) -> &rocksdb::ColumnFamily {
    // Every family in Cf::ALL is created when the database opens.
    db.cf_handle(family.name())
        .expect("column family created at open")
}
