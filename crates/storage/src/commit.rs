//! The committer: one thread that owns every write to the database.
//!
//! Producers hand it [`Txn`]s through a channel and wait on a [`CommitTicket`]. The thread
//! drains whatever is queued (up to a bound), assigns offsets, writes one `WriteBatch` with
//! `sync = true` and then answers every transaction in it. Under load many transactions
//! share one fsync (group commit); when idle a lone transaction is written at once.

use crate::log::{Topic, log_key};
use crate::record::{BatchBuilder, Record};
use crate::{Cf, Result, StorageError};
use rocksdb::{DB, WriteBatch, WriteOptions};
use std::collections::HashMap;
use std::sync::Arc;
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
}

impl Txn {
    pub fn new() -> Txn {
        Txn::default()
    }

    pub fn append(&mut self, topic: &Arc<Topic>, partition: u32, record: Record) {
        self.appends.push((topic.clone(), partition, record));
    }

    pub fn put(&mut self, cf: Cf, key: Vec<u8>, value: Vec<u8>) {
        self.writes.push((cf, key, Some(value)));
    }

    pub fn delete(&mut self, cf: Cf, key: Vec<u8>) {
        self.writes.push((cf, key, None));
    }

    pub fn is_empty(&self) -> bool {
        self.appends.is_empty() && self.writes.is_empty()
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

pub(crate) struct Pending {
    txn: Txn,
    reply: oneshot::Sender<std::result::Result<Vec<(u32, u64)>, String>>,
}

/// Resolves once the transaction is durable, with the (partition, offset) of each append in
/// order.
pub struct CommitTicket(oneshot::Receiver<std::result::Result<Vec<(u32, u64)>, String>>);

impl CommitTicket {
    pub async fn wait(self) -> Result<Vec<(u32, u64)>> {
        match self.0.await {
            Ok(Ok(p)) => Ok(p),
            Ok(Err(e)) => Err(StorageError::Corrupt {
                what: "commit",
                detail: e,
            }),
            Err(_) => Err(StorageError::Closed),
        }
    }

    /// For callers outside the async runtime (tests, recovery).
    pub fn wait_blocking(self) -> Result<Vec<(u32, u64)>> {
        match self.0.blocking_recv() {
            Ok(Ok(p)) => Ok(p),
            Ok(Err(e)) => Err(StorageError::Corrupt {
                what: "commit",
                detail: e,
            }),
            Err(_) => Err(StorageError::Closed),
        }
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
    pub(crate) fn start(db: Arc<DB>, next_seq: u64) -> Committer {
        let (tx, rx) = mpsc::unbounded_channel();
        let thread = std::thread::Builder::new()
            .name("sluice-commit".into())
            .spawn(move || run(db, rx, next_seq))
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

fn run(db: Arc<DB>, mut rx: mpsc::UnboundedReceiver<Pending>, mut next_seq: u64) {
    let mut sync = WriteOptions::default();
    sync.set_sync(true);
    // Offsets assigned but possibly not yet durable; the topic's high watermark trails it.
    let mut next: HashMap<(u32, u32), u64> = HashMap::new();
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
        let mut positions: Vec<Vec<(u32, u64)>> = Vec::with_capacity(group.len());
        let mut touched: HashMap<(u32, u32), Arc<Topic>> = HashMap::new();
        // Per partition, the batch entry being filled and the offset of its first record.
        let mut open: HashMap<(u32, u32), (u64, BatchBuilder)> = HashMap::new();
        for p in &group {
            let mut pos = Vec::with_capacity(p.txn.appends.len());
            for (topic, partition, record) in &p.txn.appends {
                let tp = (topic.id, *partition);
                let n = next
                    .entry(tp)
                    .or_insert_with(|| topic.end_offset(*partition));
                let (_, builder) = open.entry(tp).or_insert_with(|| (*n, BatchBuilder::new()));
                builder.push(record, next_seq);
                next_seq += 1;
                pos.push((*partition, *n));
                *n += 1;
                if (builder.len() >= MAX_BATCH_RECORDS || builder.bytes() >= MAX_BATCH_BYTES)
                    && let Some((base, full)) = open.remove(&tp)
                {
                    batch.put_cf(cf(&db, Cf::Log), log_key(tp.0, tp.1, base), full.finish());
                }
                touched.entry(tp).or_insert_with(|| topic.clone());
            }
            for (family, key, value) in &p.txn.writes {
                match value {
                    Some(v) => batch.put_cf(cf(&db, *family), key, v),
                    None => batch.delete_cf(cf(&db, *family), key),
                }
            }
            positions.push(pos);
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
        match db.write_opt(batch, &sync) {
            Ok(()) => {
                let mut topics: HashMap<u32, Arc<Topic>> = HashMap::new();
                for ((id, partition), topic) in touched {
                    topic.set_end_offset(partition, next[&(id, partition)]);
                    topics.insert(id, topic);
                }
                for topic in topics.values() {
                    topic.notify();
                }
                for (p, pos) in group.into_iter().zip(positions) {
                    let _ = p.reply.send(Ok(pos));
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "commit failed; the batch is not acknowledged");
                next_seq = committed_seq;
                for (key, topic) in touched {
                    next.insert(key, topic.end_offset(key.1));
                }
                let msg = e.to_string();
                for p in group {
                    let _ = p.reply.send(Err(msg.clone()));
                }
            }
        }
    }
}

fn cf(db: &DB, family: Cf) -> &rocksdb::ColumnFamily {
    // Every family in Cf::ALL is created when the database opens.
    db.cf_handle(family.name())
        .expect("column family created at open")
}
