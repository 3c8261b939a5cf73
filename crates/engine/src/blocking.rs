//! Blocking work done for push subscribers (catch-up reads, transient query steps), with
//! a bound on how much of it runs at once.
//!
//! tokio's blocking pool starts a new thread whenever every existing one is busy, up to
//! 512. A hundred subscribers that fall behind at once (a burst of inserts on a loaded
//! machine) would each take one, and each thread keeps its stack and allocator cache
//! after its work is done: measured in a debug build under load, about 150 threads and
//! 1.2 GB of RSS. Subscriber work is CPU- and disk-bound, so more of it at once than a
//! few per core only adds threads, not throughput; waiting here for a permit is fair
//! (tokio's semaphore is FIFO) and costs a subscriber a little latency, never memory.
//!
//! Persistent query workers and pull scans do not go through this gate: a worker is one
//! thread per query already, and a scan waits on its client while it holds a thread, so
//! capping scans would let slow clients starve everyone else.

use std::sync::OnceLock;
use tokio::sync::Semaphore;

/// Permits per CPU core.
const PER_CORE: usize = 4;

fn gate() -> &'static Semaphore {
    static GATE: OnceLock<Semaphore> = OnceLock::new();
    GATE.get_or_init(|| {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        Semaphore::new(cores * PER_CORE)
    })
}

/// Runs `f` on the blocking pool once one of the gate's permits is free.
pub(crate) async fn run<T, F>(f: F) -> Result<T, tokio::task::JoinError>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    // The semaphore is never closed, so acquiring only waits.
    let _permit = gate().acquire().await;
    tokio::task::spawn_blocking(f).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// However many subscribers ask at once, no more than the gate's permits run.
    #[test]
    fn no_more_run_at_once_than_the_gate_allows() {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .build()
            .unwrap();
        let (running, most) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        rt.block_on(async {
            let tasks: Vec<_> = (0..200)
                .map(|_| {
                    let (running, most) = (running.clone(), most.clone());
                    tokio::spawn(run(move || {
                        let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                        most.fetch_max(now, Ordering::SeqCst);
                        std::thread::sleep(std::time::Duration::from_millis(2));
                        running.fetch_sub(1, Ordering::SeqCst);
                    }))
                })
                .collect();
            for t in tasks {
                t.await.unwrap().unwrap();
            }
        });
        let limit = gate().available_permits();
        let seen = most.load(Ordering::SeqCst);
        assert!(seen <= limit, "{seen} ran at once, the gate allows {limit}");
        assert!(seen > 1, "the work ran one at a time");
    }
}
