//! The C library's allocator, which RocksDB (C++) allocates through: Rust's allocations go
//! to mimalloc (`GLOBAL` in main.rs), RocksDB's memtables, block cache, table readers and
//! compaction buffers go to glibc's malloc.
//!
//! Left at its defaults, glibc kept memory that RocksDB had freed: in the 10-minute soak
//! (`tests/soak.rs`), RSS grew ~15% between the middle and last thirds of the run while
//! RocksDB's own memory counters stayed flat. glibc gives each thread that allocates under
//! contention an arena of its own (up to 8 per core), raises its mmap threshold every time
//! a large block is freed (so later large blocks come from the arenas instead of being
//! mapped), and returns an arena's free memory to the system only from its top. Freed
//! blocks in the middle of RocksDB's background threads' arenas stayed resident.
//!
//! Making mimalloc the C library's malloc too (its `override` feature) stopped the growth
//! but cost ingest about a fifth in the same session's benchmarks, so glibc stays, tuned.

/// Fewer arenas and a fixed mmap threshold: blocks of 128 KiB and more (compaction and
/// block-fetch buffers) are mapped and unmapped, so they go back to the system when freed.
/// A value the operator sets in the environment (`MALLOC_ARENA_MAX`,
/// `MALLOC_MMAP_THRESHOLD_`) wins. Runs first in `main`, before any other thread exists.
pub fn tune() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        let unset = |name: &str| std::env::var_os(name).is_none();
        // SAFETY: mallopt only changes glibc's allocator parameters, and no other thread
        // is allocating yet.
        unsafe {
            if unset("MALLOC_ARENA_MAX") {
                libc::mallopt(libc::M_ARENA_MAX, 2);
            }
            if unset("MALLOC_MMAP_THRESHOLD_") {
                libc::mallopt(libc::M_MMAP_THRESHOLD, 128 << 10);
            }
        }
    }
}

/// How often the server hands glibc's free pages back to the system
/// (`SLUICE_MALLOC_TRIM_SECS`, seconds; 0 turns it off).
const DEFAULT_TRIM_SECS: u64 = 10;

/// Starts a thread that calls `malloc_trim(0)` every few seconds. glibc returns whole free
/// pages inside its arenas only when asked (its own trimming releases only an arena's
/// top). In the 10-minute soak none of the 60 passes took 10 ms; the thread logs each pass
/// that does, at info level (every pass at debug).
pub fn spawn_trimmer() -> anyhow::Result<()> {
    let secs = match std::env::var("SLUICE_MALLOC_TRIM_SECS") {
        Ok(v) => v.trim().parse::<u64>().map_err(|_| {
            anyhow::anyhow!("SLUICE_MALLOC_TRIM_SECS must be a whole number of seconds, got {v:?}")
        })?,
        Err(_) => DEFAULT_TRIM_SECS,
    };
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if secs > 0 {
        let every = std::time::Duration::from_secs(secs);
        std::thread::Builder::new()
            .name("sluice-malloc-trim".into())
            .spawn(move || {
                loop {
                    std::thread::sleep(every);
                    let started = std::time::Instant::now();
                    // SAFETY: malloc_trim is thread-safe; it takes each arena's lock.
                    let released = unsafe { libc::malloc_trim(0) };
                    let took = started.elapsed();
                    if took > std::time::Duration::from_millis(10) {
                        tracing::info!(?took, released, "malloc_trim was slow");
                    } else {
                        tracing::debug!(?took, released, "malloc_trim");
                    }
                }
            })?;
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    let _ = secs;
    Ok(())
}
