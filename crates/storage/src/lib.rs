//! Storage: everything Sluice keeps on disk, in one RocksDB database.
//!
//! ```text
//!   column family  key                                       value
//!   log            topic_id u32 BE · partition u32 BE · offset u64 BE   record (see record.rs)
//!   state          owner-defined, order-preserving                      owner-defined
//!   catalog        "topic/NAME" · "source/NAME" · "query/ID" · "replace/NAME" · "meta/…"  JSON
//!   index          'k' · topic · key · seq  /  'e' · topic · event id    position (see index.rs)
//! ```
//!
//! Every write but a topic's creation (a synchronous catalog put) goes through one
//! committer thread ([`commit`]): it takes transactions
//! ([`Txn`]) from many producers, assigns log offsets, writes them all in one RocksDB
//! `WriteBatch` with `sync = true` (group commit), and only then acknowledges them and
//! advances the partitions' high watermarks. A transaction is atomic: a persistent query's
//! output records, state changes and consumed offsets become durable together or not at all,
//! which is what makes restart exactly-once without any recovery protocol.
//!
//! Readers only see offsets below a partition's high watermark, so they never observe a
//! record whose batch could still fail.

mod commit;
mod disk;
mod index;
mod log;
mod record;
mod stats;

pub use commit::{Appended, CommitTicket, Txn};
pub use index::{AppendCheck, Conflict, EventPosition};
pub use log::{EmbeddedLog, Log, Topic};
pub use record::{Record, StoredRecord};
pub use stats::{CommitStats, Histogram, HistogramSnapshot};

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("storage error: {0}")]
    Rocks(rocksdb::Error),
    /// A data file failed a checksum or size check. Never answered as rows: the read (or
    /// the start) fails, naming the file where RocksDB says which it was.
    #[error(
        "data file damaged: {detail}{}. Nothing was read from the damaged part; restore the data directory from a backup (docs/operations.md, \"Damaged data files\")",
        .file.as_ref().map(|f| format!(" (in {})", f.display())).unwrap_or_default()
    )]
    Corruption {
        detail: String,
        /// The damaged file, when RocksDB's message does not already name it.
        file: Option<std::path::PathBuf>,
    },
    #[error("corrupt data in {what}: {detail}")]
    Corrupt { what: &'static str, detail: String },
    #[error("Topic '{0}' does not exist")]
    UnknownTopic(String),
    #[error("Topic '{topic}' has {partitions} partitions; partition {partition} does not exist")]
    UnknownPartition {
        topic: String,
        partition: u32,
        partitions: u32,
    },
    #[error("Topic '{name}' already exists with {existing} partitions, not {requested}")]
    TopicMismatch {
        name: String,
        existing: u32,
        requested: u32,
    },
    #[error("the storage committer has stopped")]
    Closed,
    /// RocksDB could not write a group commit: nothing of it is durable or acknowledged.
    #[error("the commit failed, nothing of it was written: {0}")]
    CommitFailed(String),
    #[error(
        "the disk holding {dir} has {free_mib} MiB free, less than the {reserve_mib} MiB Sluice keeps for RocksDB (SLUICE_DISK_RESERVE_MB): writes are refused until space is freed; reads go on"
    )]
    DiskFull {
        dir: std::path::PathBuf,
        free_mib: u64,
        reserve_mib: u64,
    },
    #[error(
        "Wrong expected version for key {} of topic '{}': expected {}, actual {}",
        String::from_utf8_lossy(&.0.key), .0.topic, .0.expected, .0.actual
    )]
    Conflict(Box<Conflict>),
}

pub type Result<T> = std::result::Result<T, StorageError>;

impl From<rocksdb::Error> for StorageError {
    fn from(e: rocksdb::Error) -> StorageError {
        if e.kind() == rocksdb::ErrorKind::Corruption {
            StorageError::Corruption {
                detail: e.into_string(),
                file: None,
            }
        } else {
            StorageError::Rocks(e)
        }
    }
}

/// Column families of the database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cf {
    Log,
    State,
    Catalog,
    Index,
    /// Operator state changes committed since their worker's last checkpoint, one record
    /// per batch (the engine's changelog.rs). Apart from `state`, so that a checkpoint's
    /// ingested file, which overlaps `state`'s memtable and makes RocksDB flush it first,
    /// does not also flush the records it is about to delete.
    Changelog,
}

impl Cf {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Cf::Log => "log",
            Cf::State => "state",
            Cf::Catalog => "catalog",
            Cf::Index => "index",
            Cf::Changelog => "changelog",
        }
    }

    pub(crate) const ALL: [Cf; 5] = [Cf::Log, Cf::State, Cf::Catalog, Cf::Index, Cf::Changelog];
}

/// Returns the smallest key greater than every key starting with `prefix` (for range upper
/// bounds), or None when no such key exists (prefix of all 0xFF).
pub fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last != 0xff {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}
