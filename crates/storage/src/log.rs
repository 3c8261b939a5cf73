//! The embedded, partitioned topic log and the database handle around it.

use crate::commit::{CommitTicket, Committer, Txn};
use crate::record::{Entry, StoredRecord};
use crate::{Cf, Result, StorageError, prefix_end};
use rocksdb::{ColumnFamilyDescriptor, DB, Direction, IteratorMode, Options, ReadOptions};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use tokio::sync::watch;

/// The seam between the engine and where topics live. The embedded implementation keeps
/// them in RocksDB beside state, so a commit spans both; a Kafka-backed log will implement
/// the same calls with transactional produce.
pub trait Log: Send + Sync {
    /// Creates a topic, or returns the existing one when the partition count matches.
    fn create_topic(&self, name: &str, partitions: u32) -> Result<Arc<Topic>>;
    fn topic(&self, name: &str) -> Option<Arc<Topic>>;
    fn topics(&self) -> Vec<Arc<Topic>>;
    /// Reads committed records of one partition from `from`, at most `max` of them.
    fn read(
        &self,
        topic: &Topic,
        partition: u32,
        from: u64,
        max: usize,
    ) -> Result<Vec<StoredRecord>>;
    /// Queues a transaction for the next group commit.
    fn submit(&self, txn: Txn) -> CommitTicket;
}

/// A topic and the live state of its partitions.
pub struct Topic {
    pub id: u32,
    pub name: String,
    pub partitions: u32,
    /// Per partition: one past the last durable offset.
    ends: Vec<AtomicU64>,
    /// Bumped after every commit that appends to this topic; readers wait on it.
    changed: watch::Sender<u64>,
    round_robin: AtomicU64,
    /// Whether every keyed record's position is kept by key (see index.rs).
    indexed: AtomicBool,
}

impl Topic {
    fn new(id: u32, name: String, partitions: u32, ends: Vec<u64>, indexed: bool) -> Topic {
        Topic {
            id,
            name,
            partitions,
            ends: ends.into_iter().map(AtomicU64::new).collect(),
            changed: watch::channel(0).0,
            round_robin: AtomicU64::new(0),
            indexed: AtomicBool::new(indexed),
        }
    }

    /// Whether the topic's records are indexed by key: a key's history and version
    /// (its number of events) are then a prefix scan away.
    pub fn is_indexed(&self) -> bool {
        self.indexed.load(Ordering::Acquire)
    }

    pub(crate) fn set_indexed(&self, indexed: bool) {
        self.indexed.store(indexed, Ordering::Release);
    }

    /// One past the last durable offset of `partition` (0 for an unknown partition).
    pub fn end_offset(&self, partition: u32) -> u64 {
        self.ends
            .get(partition as usize)
            .map_or(0, |e| e.load(Ordering::Acquire))
    }

    pub(crate) fn set_end_offset(&self, partition: u32, end: u64) {
        if let Some(e) = self.ends.get(partition as usize) {
            e.store(end, Ordering::Release);
        }
    }

    pub(crate) fn notify(&self) {
        self.changed.send_modify(|v| *v = v.wrapping_add(1));
    }

    /// A receiver that sees a change whenever new records become readable.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }

    /// Kafka's default partitioner: murmur2 of the key bytes; round robin without a key.
    pub fn partition_for(&self, key: Option<&[u8]>) -> u32 {
        if self.partitions <= 1 {
            return 0;
        }
        match key {
            Some(k) => (murmur2(k) & 0x7fff_ffff) % self.partitions,
            None => {
                (self.round_robin.fetch_add(1, Ordering::Relaxed) % self.partitions as u64) as u32
            }
        }
    }

    pub fn check_partition(&self, partition: u32) -> Result<()> {
        if partition < self.partitions {
            Ok(())
        } else {
            Err(StorageError::UnknownPartition {
                topic: self.name.clone(),
                partition,
                partitions: self.partitions,
            })
        }
    }
}

/// Kafka's murmur2 (org.apache.kafka.common.utils.Utils.murmur2), so keys land in the
/// partitions Kafka would put them in.
pub fn murmur2(data: &[u8]) -> u32 {
    const SEED: u32 = 0x9747_b28c;
    const M: u32 = 0x5bd1_e995;
    const R: u32 = 24;
    let len = data.len();
    let mut h = SEED ^ len as u32;
    let chunks = data.chunks_exact(4);
    let tail = chunks.remainder();
    for c in chunks {
        let mut k = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    if tail.len() >= 3 {
        h ^= (tail[2] as u32) << 16;
    }
    if tail.len() >= 2 {
        h ^= (tail[1] as u32) << 8;
    }
    if !tail.is_empty() {
        h ^= tail[0] as u32;
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h
}

pub(crate) fn log_key(topic: u32, partition: u32, offset: u64) -> [u8; 16] {
    let mut k = [0u8; 16];
    k[..4].copy_from_slice(&topic.to_be_bytes());
    k[4..8].copy_from_slice(&partition.to_be_bytes());
    k[8..].copy_from_slice(&offset.to_be_bytes());
    k
}

#[derive(Serialize, Deserialize)]
pub(crate) struct TopicMeta {
    pub(crate) id: u32,
    pub(crate) partitions: u32,
    /// Absent in topics written before the index existed.
    #[serde(default)]
    pub(crate) indexed: bool,
}

/// The embedded log: RocksDB with the log, state and catalog column families.
pub struct EmbeddedLog {
    db: Arc<DB>,
    committer: Committer,
    topics: RwLock<BTreeMap<String, Arc<Topic>>>,
    create_lock: Mutex<()>,
    /// The log position after the last durable record (see [`EmbeddedLog::next_seq`]).
    committed: Arc<AtomicU64>,
    /// The committer's counters, for metrics.
    stats: Arc<crate::CommitStats>,
    /// The data directory and the free space kept on it.
    disk: crate::disk::DiskGuard,
}

/// RocksDB memory and WAL budgets, in MiB. Each can be overridden by an environment
/// variable (docs/operations.md); the defaults keep a server with a few million keys of
/// state well under 512 MiB resident.
struct Tuning {
    block_cache_mb: usize,
    write_buffer_mb: usize,
    memtables_mb: usize,
    wal_mb: usize,
    /// Free space the committer keeps on the data directory's filesystem (see disk.rs).
    disk_reserve_mb: usize,
    /// `SLUICE_WAL_RECOVERY=point-in-time`: open despite a damaged write-ahead log, with
    /// the records before the damage (see `open`).
    wal_point_in_time: bool,
}

impl Tuning {
    fn from_env() -> Tuning {
        let get = |name: &str, default: usize| {
            std::env::var(name)
                .ok()
                .and_then(|v| v.parse().ok())
                .filter(|v| *v > 0)
                .unwrap_or(default)
        };
        Tuning {
            // 64 and 128 MiB measured the same for groupby over 1M keys (sluice bench).
            block_cache_mb: get("SLUICE_ROCKSDB_BLOCK_CACHE_MB", 64),
            write_buffer_mb: get("SLUICE_ROCKSDB_WRITE_BUFFER_MB", 32),
            // 96 rather than 128: an aggregate view over 10M groups peaked at 518 MiB
            // resident with 128 and 465 MiB with 96; groupby, ingest and freshness measured
            // the same with either (sluice bench, back to back).
            memtables_mb: get("SLUICE_ROCKSDB_MEMTABLES_MB", 96),
            // Bounds the WAL a restart replays: recovery of 2M events and a 1M-key view
            // answered its first pull 0.9 s after SIGKILL.
            wal_mb: get("SLUICE_ROCKSDB_WAL_MB", 128),
            disk_reserve_mb: get("SLUICE_DISK_RESERVE_MB", 128),
            wal_point_in_time: std::env::var("SLUICE_WAL_RECOVERY")
                .is_ok_and(|v| v.eq_ignore_ascii_case("point-in-time")),
        }
    }
}

/// An error opening the database. A damaged write-ahead log is reported by RocksDB
/// without the file's name, which only its info log (`LOG` in the data directory, written
/// afresh by every open) records: it is looked up there so the operator knows which file.
fn opening_error(dir: &Path, e: rocksdb::Error) -> StorageError {
    match StorageError::from(e) {
        StorageError::Corruption { detail, file: None }
            if !detail.contains(".sst") && !detail.contains(".log") =>
        {
            StorageError::Corruption {
                file: damaged_file_in_info_log(dir),
                detail,
            }
        }
        other => other,
    }
}

/// The file of the last `<file>: dropping N bytes; Corruption: ...` line of RocksDB's
/// info log, which is how its WAL recovery reports a damaged record.
fn damaged_file_in_info_log(dir: &Path) -> Option<std::path::PathBuf> {
    let log = std::fs::read_to_string(dir.join("LOG")).ok()?;
    log.lines()
        .filter(|l| l.contains("Corruption"))
        .filter_map(|l| l.split_once(": dropping ").map(|(before, _)| before))
        .filter_map(|before| before.rsplit_once("] ").map(|(_, file)| file))
        .next_back()
        .map(std::path::PathBuf::from)
}

/// Where [`EmbeddedLog::ingest_state`] writes a table file before RocksDB takes it in;
/// anything left there was never ingested (a crash mid-write) and is removed at open.
const INGEST_DIR: &str = "ingest";

impl EmbeddedLog {
    /// Opens (creating if needed) the database under `dir` and recovers the topics' ends.
    pub fn open(dir: &Path) -> Result<EmbeddedLog> {
        let tuning = Tuning::from_env();
        let mut opts = Options::default();
        opts.create_if_missing(true);
        opts.create_missing_column_families(true);
        // A damaged write-ahead log must stop the start, not be replayed up to the damage:
        // RocksDB's default (point-in-time recovery) drops every record after a bad one,
        // acknowledged events included, and opens as if nothing happened. This mode
        // tolerates only what a crash leaves, an incomplete last record, and refuses any
        // other corruption. The MANIFEST also records each finished WAL's size, so a
        // missing or truncated one is found at start-up too.
        opts.set_wal_recovery_mode(rocksdb::DBRecoveryMode::TolerateCorruptedTailRecords);
        opts.set_track_and_verify_wals_in_manifest(true);
        // Checksums are checked on every read and the files' sizes against the MANIFEST
        // when the database opens (RocksDB's default, stated because it matters).
        opts.set_paranoid_checks(true);
        opts.set_max_background_jobs(2);
        opts.set_compression_type(rocksdb::DBCompressionType::Lz4);
        // Memory: all memtables together stay under one budget, and the WAL is kept short
        // (RocksDB flushes the column families holding its oldest part), which also bounds
        // what a restart after a crash must replay.
        opts.set_db_write_buffer_size(tuning.memtables_mb << 20);
        opts.set_max_total_wal_size((tuning.wal_mb as u64) << 20);
        let cache = rocksdb::Cache::new_lru_cache(tuning.block_cache_mb << 20);
        let cfs = Cf::ALL.iter().map(|c| {
            let mut table = rocksdb::BlockBasedOptions::default();
            table.set_block_cache(&cache);
            if *c == Cf::State {
                // The state family's index and filter blocks stay pinned beside their
                // table files rather than in the LRU cache: cached, they were evicted by
                // data blocks under random group updates and re-read constantly (groupby
                // over 1M keys ran 5x slower). Their size follows the live state, which
                // the state budget already bounds.
                table.set_cache_index_and_filter_blocks(false);
            } else {
                // The other families grow with every event (the log, and the event-store
                // index's one entry and bloom bits per keyed record): pinned, their index
                // and filter blocks made memory grow with the data on disk, ~1.8 bytes
                // per indexed event forever (the soak: +5 MiB of table readers in 10
                // minutes at 5,000 events/s). In the cache, at high priority so data
                // blocks do not push them out, they share its fixed budget; the newest
                // files' stay pinned, as they are the ones read.
                table.set_cache_index_and_filter_blocks(true);
                table.set_cache_index_and_filter_blocks_with_high_priority(true);
                table.set_pin_l0_filter_and_index_blocks_in_cache(true);
            }
            if matches!(*c, Cf::State | Cf::Index) {
                // Point reads of keys that are not there yet (a new group, a new table
                // row) stop at the filter instead of reading a block from every level.
                table.set_bloom_filter(10.0, false);
            }
            let mut o = Options::default();
            if *c == Cf::State {
                // A bloom filter over the memtable's keys: a point read of a key the
                // memtable lacks (most pull lookups, on a table larger than it) skips the
                // skiplist search, which was 7% of a lookup's server CPU.
                o.set_memtable_whole_key_filtering(true);
                o.set_memtable_prefix_bloom_ratio(0.02);
            }
            o.set_compression_type(rocksdb::DBCompressionType::Lz4);
            // Flushed files (L0) are not compressed: they are rewritten by the next
            // compaction within seconds under load, and compressing them cost ~4% of the
            // server's CPU in the groupby profile. Compaction output is compressed.
            use rocksdb::DBCompressionType::{Lz4, None as Plain};
            o.set_compression_per_level(&[Plain, Lz4, Lz4, Lz4, Lz4, Lz4, Lz4]);
            o.set_write_buffer_size(tuning.write_buffer_mb << 20);
            o.set_block_based_table_factory(&table);
            ColumnFamilyDescriptor::new(c.name(), o)
        });
        if tuning.wal_point_in_time {
            // The operator's choice, after a refused start: open with what precedes the
            // damage (docs/operations.md).
            tracing::warn!(
                "SLUICE_WAL_RECOVERY=point-in-time: a damaged write-ahead log is replayed up to the damage and the records after it are dropped"
            );
            opts.set_wal_recovery_mode(rocksdb::DBRecoveryMode::PointInTime);
        }
        let db =
            Arc::new(DB::open_cf_descriptors(&opts, dir, cfs).map_err(|e| opening_error(dir, e))?);
        let _ = std::fs::remove_dir_all(dir.join(INGEST_DIR));
        let mut topics = BTreeMap::new();
        for (key, value) in scan_prefix(&db, Cf::Catalog, b"topic/")? {
            let name = String::from_utf8_lossy(&key["topic/".len()..]).to_string();
            let meta: TopicMeta =
                serde_json::from_slice(&value).map_err(|e| StorageError::Corrupt {
                    what: "topic metadata",
                    detail: e.to_string(),
                })?;
            let ends = (0..meta.partitions)
                .map(|p| recover_end(&db, meta.id, p))
                .collect::<Result<Vec<u64>>>()?;
            topics.insert(
                name.clone(),
                Arc::new(Topic::new(
                    meta.id,
                    name,
                    meta.partitions,
                    ends,
                    meta.indexed,
                )),
            );
        }
        let next_seq = crate::commit::stored_next_seq(&db)?;
        let committed = Arc::new(AtomicU64::new(next_seq));
        let stats = Arc::new(crate::CommitStats::default());
        let disk = crate::disk::DiskGuard {
            dir: dir.to_path_buf(),
            reserve: (tuning.disk_reserve_mb as u64) << 20,
        };
        let committer = Committer::start(
            db.clone(),
            next_seq,
            committed.clone(),
            stats.clone(),
            disk.clone(),
        );
        Ok(EmbeddedLog {
            disk,
            db,
            committer,
            stats,
            topics: RwLock::new(topics),
            create_lock: Mutex::new(()),
            committed,
        })
    }

    /// The position the next appended record will get: every position below it is
    /// committed (durable and visible to readers). Positions are the tokens inserts
    /// acknowledge with ([`crate::Appended::seq`]).
    pub fn next_seq(&self) -> u64 {
        self.committed.load(Ordering::Acquire)
    }

    /// Bytes free on the data directory's filesystem, and the reserve below which writes
    /// are refused; `None` for the free space when the filesystem does not say.
    pub fn disk_space(&self) -> (Option<u64>, u64) {
        (self.disk.free(), self.disk.reserve)
    }

    /// The committer's group sizes, write latency and failures.
    pub fn commit_stats(&self) -> &crate::CommitStats {
        &self.stats
    }

    /// RocksDB's memory and background-work figures, summed over the column families:
    /// (metric name, help, value). A property RocksDB does not report is left out.
    pub fn rocksdb_figures(&self) -> Vec<(&'static str, &'static str, u64)> {
        const PER_CF: &[(&str, &str, &str)] = &[
            (
                "rocksdb.cur-size-all-mem-tables",
                "rocksdb_memtable_bytes",
                "Bytes in RocksDB memtables (active and not yet flushed)",
            ),
            (
                "rocksdb.estimate-pending-compaction-bytes",
                "rocksdb_pending_compaction_bytes",
                "Bytes RocksDB estimates compaction must rewrite to settle the LSM shape",
            ),
            (
                "rocksdb.estimate-table-readers-mem",
                "rocksdb_table_readers_bytes",
                "Memory of RocksDB's table readers (index and filter blocks not in the block cache)",
            ),
            (
                "rocksdb.total-sst-files-size",
                "rocksdb_sst_bytes",
                "Bytes of RocksDB's SST files",
            ),
        ];
        // Database-wide: every family reports the same value, so each is read once.
        const SHARED: &[(&str, &str, &str)] = &[
            (
                "rocksdb.block-cache-usage",
                "rocksdb_block_cache_bytes",
                "Bytes in RocksDB's shared block cache",
            ),
            (
                "rocksdb.num-running-compactions",
                "rocksdb_running_compactions",
                "Compactions running now",
            ),
        ];
        let mut out = Vec::new();
        for (property, name, help) in PER_CF {
            let mut total = None;
            for family in Cf::ALL {
                if let Ok(Some(v)) = self.db.property_int_value_cf(self.cf(family), *property) {
                    *total.get_or_insert(0) += v;
                }
            }
            if let Some(v) = total {
                out.push((*name, *help, v));
            }
        }
        for (property, name, help) in SHARED {
            if let Ok(Some(v)) = self.db.property_int_value_cf(self.cf(Cf::State), *property) {
                out.push((*name, *help, v));
            }
        }
        out
    }

    /// RocksDB's estimate of the bytes the state family's entries in `ranges` (`[from,
    /// to)` each) take in table files; entries only in the memtable are not counted.
    /// Writes `entries` (strictly ascending keys; `None` deletes) into the state family
    /// as one sorted table file, ingested whole: no memtable insert, WAL write or flush
    /// per key, which is what a per-key write costs (the checkpoints of operator state,
    /// issue #13). Ingestion is atomic: after a crash the file is in the database or not
    /// at all. The ingested entries are newer than anything already in the family, so
    /// the caller must hold the latest value of every key it passes.
    pub fn ingest_state<'a>(
        &self,
        entries: impl IntoIterator<Item = (&'a [u8], Option<&'a [u8]>)>,
    ) -> Result<()> {
        if let Some(free) = self.disk.short() {
            return Err(StorageError::DiskFull {
                dir: self.disk.dir.clone(),
                free_mib: free >> 20,
                reserve_mib: self.disk.reserve >> 20,
            });
        }
        let staging = self.disk.dir.join(INGEST_DIR);
        std::fs::create_dir_all(&staging).map_err(|e| {
            StorageError::CommitFailed(format!("cannot create {}: {e}", staging.display()))
        })?;
        static NEXT_FILE: AtomicU64 = AtomicU64::new(0);
        let path = staging.join(format!(
            "state-{}-{}.sst",
            std::process::id(),
            NEXT_FILE.fetch_add(1, Ordering::Relaxed)
        ));
        let mut opts = Options::default();
        let mut table = rocksdb::BlockBasedOptions::default();
        // The same filter as the family's own files: point reads of absent keys stop there.
        table.set_bloom_filter(10.0, false);
        opts.set_block_based_table_factory(&table);
        // Like a flush's output: compaction rewrites (and compresses) it soon.
        opts.set_compression_type(rocksdb::DBCompressionType::None);
        let mut writer = rocksdb::SstFileWriter::create(&opts);
        let written = (|| -> std::result::Result<bool, rocksdb::Error> {
            writer.open(&path)?;
            let mut any = false;
            for (k, v) in entries {
                match v {
                    Some(v) => writer.put(k, v)?,
                    None => writer.delete(k)?,
                }
                any = true;
            }
            if any {
                writer.finish()?;
            }
            Ok(any)
        })();
        let ingested = match written {
            Ok(true) => {
                let mut io = rocksdb::IngestExternalFileOptions::default();
                io.set_move_files(true);
                self.db
                    .ingest_external_file_cf_opts(self.cf(Cf::State), &io, vec![&path])
                    .map_err(StorageError::from)
            }
            Ok(false) => Ok(()),
            Err(e) => Err(StorageError::from(e)),
        };
        // Moved into the database when ingested; otherwise a partial file to drop.
        let _ = std::fs::remove_file(&path);
        ingested
    }

    pub fn approximate_state_bytes(&self, ranges: &[(Vec<u8>, Vec<u8>)]) -> u64 {
        let ranges: Vec<rocksdb::Range> = ranges
            .iter()
            .map(|(from, to)| rocksdb::Range::new(from, to))
            .collect();
        self.db
            .get_approximate_sizes_cf(self.cf(Cf::State), &ranges)
            .iter()
            .sum()
    }

    fn cf(&self, family: Cf) -> &rocksdb::ColumnFamily {
        self.db
            .cf_handle(family.name())
            .expect("column family created at open")
    }

    pub fn get(&self, family: Cf, key: &[u8]) -> Result<Option<Vec<u8>>> {
        Ok(self.db.get_cf(self.cf(family), key)?)
    }

    /// Keys and values in `[from, to)` in key order, at most `limit`.
    pub fn scan(
        &self,
        family: Cf,
        from: &[u8],
        to: &[u8],
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let mut ro = ReadOptions::default();
        ro.set_iterate_upper_bound(to.to_vec());
        let iter = self.db.iterator_cf_opt(
            self.cf(family),
            ro,
            IteratorMode::From(from, Direction::Forward),
        );
        let mut out = Vec::new();
        for item in iter.take(limit) {
            let (k, v) = item?;
            out.push((k.to_vec(), v.to_vec()));
        }
        Ok(out)
    }

    pub fn scan_prefix(&self, family: Cf, prefix: &[u8]) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        scan_prefix(&self.db, family, prefix)
    }

    /// Calls `visit` with every key and value under `prefix` in key order, without
    /// collecting them, until it returns false. Returns whether the whole prefix was seen.
    pub fn visit_prefix(
        &self,
        family: Cf,
        prefix: &[u8],
        visit: impl FnMut(&[u8], &[u8]) -> bool,
    ) -> Result<bool> {
        visit_prefix(&self.db, family, prefix, visit)
    }

    /// Calls `visit` with every key and value in `[from, to)` in key order, without
    /// collecting them, until it returns false. For reads that stop early (a pull query's
    /// LIMIT or row cap), so a large table is never loaded to return a few rows.
    pub fn visit_range(
        &self,
        family: Cf,
        from: &[u8],
        to: &[u8],
        mut visit: impl FnMut(&[u8], &[u8]) -> bool,
    ) -> Result<()> {
        let mut ro = ReadOptions::default();
        ro.set_iterate_upper_bound(to.to_vec());
        let mut it = self.db.raw_iterator_cf_opt(self.cf(family), ro);
        it.seek(from);
        while let (Some(k), Some(v)) = (it.key(), it.value()) {
            if !visit(k, v) {
                return Ok(());
            }
            it.next();
        }
        it.status()?;
        Ok(())
    }

    /// The positions of `key`'s events in an indexed topic, in log order, after log
    /// position `after_seq` (0: from the first), at most `max`; only committed ones.
    pub fn key_history(
        &self,
        topic: &Topic,
        key: &[u8],
        after_seq: u64,
        max: usize,
    ) -> Result<Vec<crate::EventPosition>> {
        let mut out = Vec::new();
        if max == 0 {
            return Ok(out);
        }
        crate::index::visit_key(&self.db, topic.id, key, after_seq, |p| {
            if p.offset < topic.end_offset(p.partition) {
                out.push(p);
            }
            out.len() < max
        })?;
        Ok(out)
    }

    /// The record at one position (committed), if the partition holds it.
    pub fn read_at(
        &self,
        topic: &Topic,
        partition: u32,
        offset: u64,
    ) -> Result<Option<StoredRecord>> {
        topic.check_partition(partition)?;
        Ok(read_records(
            &self.db,
            topic,
            partition,
            offset,
            topic.end_offset(partition),
            1,
        )?
        .into_iter()
        .next())
    }

    /// The first offset of `partition` whose record was appended after log position
    /// `after` (the partition's end offset if none was): where a reader resuming after a
    /// position starts. Positions grow with offsets within a partition, so this is a
    /// binary search, a few point reads. Records from before positions were kept (0)
    /// count as earlier than any position.
    pub fn offset_after(&self, topic: &Topic, partition: u32, after: u64) -> Result<u64> {
        topic.check_partition(partition)?;
        let end = topic.end_offset(partition);
        // The usual case, a subscription from the latest records: the last record is
        // already at or before the position, one read instead of a search.
        match end.checked_sub(1) {
            None => return Ok(0),
            Some(last) => {
                if self
                    .read_at(topic, partition, last)?
                    .is_none_or(|r| r.seq <= after)
                {
                    return Ok(end);
                }
            }
        }
        let (mut lo, mut hi) = (0u64, end);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            match self.read_at(topic, partition, mid)? {
                Some(r) if r.seq > after => hi = mid,
                _ => lo = mid + 1,
            }
        }
        Ok(lo)
    }

    /// Writes outside the log synchronously; for catalog changes that must be durable before
    /// the statement returns and that need no offsets.
    pub fn commit(&self, txn: Txn) -> CommitTicket {
        self.committer.submit(txn)
    }
}

fn scan_prefix(db: &DB, family: Cf, prefix: &[u8]) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
    let mut out = Vec::new();
    visit_prefix(db, family, prefix, |k, v| {
        out.push((k.to_vec(), v.to_vec()));
        true
    })?;
    Ok(out)
}

fn visit_prefix(
    db: &DB,
    family: Cf,
    prefix: &[u8],
    mut visit: impl FnMut(&[u8], &[u8]) -> bool,
) -> Result<bool> {
    let handle = db
        .cf_handle(family.name())
        .expect("column family created at open");
    let mut ro = ReadOptions::default();
    if let Some(end) = prefix_end(prefix) {
        ro.set_iterate_upper_bound(end);
    }
    // One-off sweeps (catalog at open, a query's state at start): keep them from evicting
    // the blocks that serve point reads.
    ro.fill_cache(false);
    let mut it = db.raw_iterator_cf_opt(handle, ro);
    it.seek(prefix);
    while let (Some(k), Some(v)) = (it.key(), it.value()) {
        if !visit(k, v) {
            return Ok(false);
        }
        it.next();
    }
    it.status()?;
    Ok(true)
}

/// One past the last offset of a partition: the last entry's first offset plus its length.
fn recover_end(db: &DB, topic: u32, partition: u32) -> Result<u64> {
    let handle = db
        .cf_handle(Cf::Log.name())
        .expect("column family created at open");
    let mut ro = ReadOptions::default();
    ro.set_iterate_lower_bound(log_key(topic, partition, 0).to_vec());
    let mut it = db.iterator_cf_opt(
        handle,
        ro,
        IteratorMode::From(&log_key(topic, partition, u64::MAX), Direction::Reverse),
    );
    match it.next() {
        None => Ok(0),
        Some(item) => {
            let (k, v) = item?;
            if k.len() == 16 && k[..8] == log_key(topic, partition, 0)[..8] {
                Ok(key_offset(&k) + Entry::parse(&v)?.len())
            } else {
                Ok(0)
            }
        }
    }
}

/// Records of one partition in `[from, end)`, at most `max`.
pub(crate) fn read_records(
    db: &DB,
    topic: &Topic,
    partition: u32,
    from: u64,
    end: u64,
    max: usize,
) -> Result<Vec<StoredRecord>> {
    if from >= end || max == 0 {
        return Ok(Vec::new());
    }
    let handle = db
        .cf_handle(Cf::Log.name())
        .expect("column family created at open");
    let mut ro = ReadOptions::default();
    ro.set_iterate_lower_bound(log_key(topic.id, partition, 0).to_vec());
    ro.set_iterate_upper_bound(log_key(topic.id, partition, end).to_vec());
    let mut it = db.raw_iterator_cf_opt(handle, ro);
    // The entry holding `from` starts at or before it.
    it.seek_for_prev(log_key(topic.id, partition, from));
    if !it.valid() {
        it.seek(log_key(topic.id, partition, from));
    }
    let mut out = Vec::with_capacity(max.min((end - from) as usize));
    while out.len() < max {
        let (Some(k), Some(v)) = (it.key(), it.value()) else {
            break;
        };
        let mut entry = Entry::parse(v)?;
        let mut offset = key_offset(k);
        if offset < from {
            entry.skip(from - offset)?;
            offset = from;
        }
        while out.len() < max && offset < end {
            let Some((record, seq)) = entry.next_record()? else {
                break;
            };
            out.push(StoredRecord {
                partition,
                offset,
                seq,
                record,
            });
            offset += 1;
        }
        it.next();
    }
    it.status()?;
    Ok(out)
}

fn key_offset(k: &[u8]) -> u64 {
    let mut o = [0u8; 8];
    o.copy_from_slice(&k[8..16]);
    u64::from_be_bytes(o)
}

impl Log for EmbeddedLog {
    fn create_topic(&self, name: &str, partitions: u32) -> Result<Arc<Topic>> {
        let _guard = self.create_lock.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(t) = self.topic(name) {
            if t.partitions != partitions {
                return Err(StorageError::TopicMismatch {
                    name: name.to_string(),
                    existing: t.partitions,
                    requested: partitions,
                });
            }
            return Ok(t);
        }
        let id = self
            .topics
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .map(|t| t.id + 1)
            .max()
            .unwrap_or(1);
        let meta = serde_json::to_vec(&TopicMeta {
            id,
            partitions,
            indexed: false,
        })
        .map_err(|e| StorageError::Corrupt {
            what: "topic metadata",
            detail: e.to_string(),
        })?;
        // Written directly, not through the committer: no offsets are involved, and the
        // caller may be on the async runtime, where waiting on a ticket would block it.
        let mut sync = rocksdb::WriteOptions::default();
        sync.set_sync(true);
        self.db
            .put_cf_opt(self.cf(Cf::Catalog), format!("topic/{name}"), meta, &sync)?;
        let topic = Arc::new(Topic::new(
            id,
            name.to_string(),
            partitions,
            vec![0; partitions as usize],
            false,
        ));
        self.topics
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(name.to_string(), topic.clone());
        Ok(topic)
    }

    fn topic(&self, name: &str) -> Option<Arc<Topic>> {
        self.topics
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(name)
            .cloned()
    }

    fn topics(&self) -> Vec<Arc<Topic>> {
        self.topics
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect()
    }

    fn read(
        &self,
        topic: &Topic,
        partition: u32,
        from: u64,
        max: usize,
    ) -> Result<Vec<StoredRecord>> {
        topic.check_partition(partition)?;
        read_records(
            &self.db,
            topic,
            partition,
            from,
            topic.end_offset(partition),
            max,
        )
    }

    fn submit(&self, txn: Txn) -> CommitTicket {
        self.committer.submit(txn)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::Record;

    fn rec(v: &str) -> Record {
        Record {
            key: Some(b"k".to_vec()),
            value: Some(v.as_bytes().to_vec()),
            timestamp: 1,
            headers: vec![],
        }
    }

    /// RocksDB names a damaged WAL only in its info log; the last such line is the one.
    #[test]
    fn the_damaged_wal_is_read_from_the_info_log() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(damaged_file_in_info_log(dir.path()), None);
        std::fs::write(
            dir.path().join("LOG"),
            "2026/12/06-19:25:24.900 1 [db/db_impl/db_impl_open.cc:1168] /d/000003.log: dropping 10 bytes; Corruption: checksum mismatch\n\
             2026/12/06-19:25:24.900 1 [WARN] [db/db_impl/db_impl_open.cc:1168] /d/000004.log: dropping 7424 bytes; Corruption: checksum mismatch\n\
             2026/12/06-19:25:24.900 1 [WARN] [db/db_impl/db_impl_open.cc:2969] DB::Open() failed: Corruption: checksum mismatch\n",
        )
        .unwrap();
        assert_eq!(
            damaged_file_in_info_log(dir.path()),
            Some(std::path::PathBuf::from("/d/000004.log"))
        );
    }

    #[test]
    fn murmur2_matches_kafka() {
        // Values from Kafka's UtilsTest.testMurmur2.
        assert_eq!(murmur2(b"21") as i32, -973932308);
        assert_eq!(murmur2(b"foobar") as i32, -790332482);
        assert_eq!(murmur2(b"a-little-bit-long-string") as i32, -985981536);
        assert_eq!(murmur2(b"a-little-bit-longer-string") as i32, -1486304829);
        assert_eq!(
            murmur2(b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8") as i32,
            -58897971
        );
        assert_eq!(murmur2(b"abc") as i32, 479470107);
    }

    #[test]
    fn appends_are_durable_ordered_and_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let log = EmbeddedLog::open(dir.path()).unwrap();
            let t = log.create_topic("t", 2).unwrap();
            let mut txn = Txn::new();
            txn.append(&t, 0, rec("a"));
            txn.append(&t, 0, rec("b"));
            txn.append(&t, 1, rec("c"));
            txn.put(Cf::State, b"s".to_vec(), b"1".to_vec());
            let pos = log.submit(txn).wait_blocking().unwrap();
            assert_eq!(pos, vec![(0, 0), (0, 1), (1, 0)]);
            let read = log.read(&t, 0, 1, 10).unwrap();
            assert_eq!(read.len(), 1);
            assert_eq!(read[0].offset, 1);
            assert_eq!(read[0].record.value.as_deref(), Some(&b"b"[..]));
        }
        let log = EmbeddedLog::open(dir.path()).unwrap();
        let t = log.topic("t").unwrap();
        assert_eq!((t.end_offset(0), t.end_offset(1)), (2, 1));
        assert_eq!(log.get(Cf::State, b"s").unwrap(), Some(b"1".to_vec()));
        assert!(log.create_topic("t", 3).is_err());
        assert!(log.read(&t, 5, 0, 1).is_err());
    }

    #[test]
    fn next_seq_passes_every_acknowledged_position_and_survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let last = {
            let log = EmbeddedLog::open(dir.path()).unwrap();
            let t = log.create_topic("t", 2).unwrap();
            let start = log.next_seq();
            let mut txn = Txn::new();
            txn.append(&t, 0, rec("a"));
            txn.append(&t, 1, rec("b"));
            let appended = block_on(log.submit(txn).appended()).unwrap();
            let last = appended.iter().map(|a| a.seq).max().unwrap();
            assert!(appended.iter().all(|a| a.seq >= start));
            assert_eq!(log.next_seq(), last + 1);
            // A transaction without appends moves no position.
            let mut txn = Txn::new();
            txn.put(Cf::State, b"s".to_vec(), b"1".to_vec());
            log.submit(txn).wait_blocking().unwrap();
            assert_eq!(log.next_seq(), last + 1);
            last
        };
        assert_eq!(EmbeddedLog::open(dir.path()).unwrap().next_seq(), last + 1);
    }

    #[test]
    fn offset_after_finds_where_a_position_resumes_in_each_partition() {
        let dir = tempfile::tempdir().unwrap();
        let log = EmbeddedLog::open(dir.path()).unwrap();
        let t = log.create_topic("t", 3).unwrap();
        // Appends spread unevenly over the partitions, several per transaction.
        let mut seqs: Vec<(u32, u64, u64)> = Vec::new();
        for round in 0..40u32 {
            let mut txn = Txn::new();
            for i in 0..(round % 4 + 1) {
                txn.append(&t, (round * 7 + i) % 3, rec("x"));
            }
            for a in block_on(log.submit(txn).appended()).unwrap() {
                seqs.push((a.partition, a.offset, a.seq));
            }
        }
        let last = seqs.iter().map(|s| s.2).max().unwrap();
        for after in 0..=last + 1 {
            for p in 0..3 {
                let want = seqs
                    .iter()
                    .filter(|(q, _, seq)| *q == p && *seq <= after)
                    .count() as u64;
                assert_eq!(
                    log.offset_after(&t, p, after).unwrap(),
                    want,
                    "p{p} after {after}"
                );
            }
        }
        assert!(log.offset_after(&t, 3, 0).is_err());
    }

    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(f)
    }

    #[test]
    fn reads_start_inside_batch_entries_and_span_several() {
        let dir = tempfile::tempdir().unwrap();
        let total = 2500u64;
        {
            let log = EmbeddedLog::open(dir.path()).unwrap();
            let t = log.create_topic("t", 1).unwrap();
            // One large transaction (split into several entries) and a few small ones.
            let mut txn = Txn::new();
            for i in 0..total - 3 {
                txn.append(&t, 0, rec(&i.to_string()));
            }
            log.submit(txn).wait_blocking().unwrap();
            for i in total - 3..total {
                let mut txn = Txn::new();
                txn.append(&t, 0, rec(&i.to_string()));
                assert_eq!(log.submit(txn).wait_blocking().unwrap(), vec![(0, i)]);
            }
            for from in [0, 1, 1023, 1024, 1025, 2047, 2496, 2497, 2499] {
                let got = log.read(&t, 0, from, 700).unwrap();
                let want: Vec<u64> = (from..(from + 700).min(total)).collect();
                assert_eq!(got.iter().map(|r| r.offset).collect::<Vec<_>>(), want);
                for r in &got {
                    assert_eq!(r.record.value, Some(r.offset.to_string().into_bytes()));
                }
            }
            assert!(log.read(&t, 0, total, 10).unwrap().is_empty());
        }
        let log = EmbeddedLog::open(dir.path()).unwrap();
        let t = log.topic("t").unwrap();
        assert_eq!(t.end_offset(0), total);
        assert_eq!(log.read(&t, 0, total - 1, 10).unwrap()[0].offset, total - 1);
    }
}
