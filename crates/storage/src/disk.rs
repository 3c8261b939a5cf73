//! Free space on the data directory's filesystem, checked before every group commit.
//!
//! RocksDB treats running out of space while writing its WAL as a fatal background error:
//! every later write fails until the database is reopened, even once space is freed. So
//! the committer refuses a group while the filesystem has less than a reserve free (enough
//! for RocksDB to flush its memtables and compact), before RocksDB sees it: the writes are
//! answered with a clear error, reads go on, and writes succeed again as soon as space is
//! freed, without a restart.

use std::path::{Path, PathBuf};

/// The data directory and the free space to keep on its filesystem.
#[derive(Debug, Clone)]
pub(crate) struct DiskGuard {
    pub(crate) dir: PathBuf,
    pub(crate) reserve: u64,
}

impl DiskGuard {
    /// Bytes available to unprivileged writers on `dir`'s filesystem; `None` when the
    /// filesystem does not say (the write then goes ahead).
    pub(crate) fn free(&self) -> Option<u64> {
        free_bytes(&self.dir)
    }

    /// Whether a group must be refused: the space free, when below the reserve.
    pub(crate) fn short(&self) -> Option<u64> {
        self.free().filter(|f| *f < self.reserve)
    }
}

pub(crate) fn free_bytes(dir: &Path) -> Option<u64> {
    let s = rustix::fs::statvfs(dir).ok()?;
    Some(s.f_bavail.saturating_mul(s.f_frsize))
}
