//! Blocking work done for push subscribers (catch-up reads, transient query steps), on a
//! fixed pool of threads.
//!
//! tokio's blocking pool starts a new thread whenever every existing one is busy, up to
//! 512. A hundred subscribers that fall behind at once (a burst of inserts on a loaded
//! machine) would each take one, and each thread keeps its stack and allocator cache
//! after its work is done: measured in a debug build under load, about 150 threads and
//! 1.2 GB of RSS. A semaphore in front of `spawn_blocking` bounded the work running at
//! once but not the threads: a finishing task gives its permit back a moment before its
//! thread is idle again, so the next task found no idle thread and got a new one, and
//! once there, the extra threads never idled for tokio's 10 s keep-alive because each was
//! handed work in turn. The soak test caught it in about one run of three: 8 threads
//! became 31-44, and RSS +60-100 MiB (mimalloc keeps a heap per thread). So the work goes
//! to `PER_CORE` threads per core, started once and named `sluice-push`; a queue in front
//! of them is FIFO, so waiting is fair and costs a subscriber a little latency, never
//! memory.
//!
//! Persistent query workers and pull scans do not go through this pool: a worker is one
//! thread per query already, and a scan waits on its client while it holds a thread, so
//! sharing a few threads would let slow clients starve everyone else.

use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Mutex, OnceLock};

/// Threads per CPU core.
const PER_CORE: usize = 4;

type Job = Box<dyn FnOnce() + Send>;

/// The work `f` panicked (the thread survives; the subscriber's query ends).
#[derive(Debug)]
pub(crate) struct Panicked;

impl std::fmt::Display for Panicked {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the push query's blocking work panicked")
    }
}

fn threads() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get()) * PER_CORE
}

fn pool() -> &'static Mutex<Sender<Job>> {
    static POOL: OnceLock<Mutex<Sender<Job>>> = OnceLock::new();
    POOL.get_or_init(|| {
        let (tx, rx) = channel::<Job>();
        let rx: &'static Mutex<Receiver<Job>> = Box::leak(Box::new(Mutex::new(rx)));
        for i in 0..threads() {
            let spawned = std::thread::Builder::new()
                .name("sluice-push".into())
                .spawn(move || {
                    loop {
                        // The lock is held only to take one job, not to run it.
                        let job = rx.lock().unwrap_or_else(|p| p.into_inner()).recv();
                        match job {
                            Ok(job) => job(),
                            Err(_) => return,
                        }
                    }
                });
            if let Err(e) = spawned {
                // Fewer threads only means more waiting; none at all is reported by
                // `run` (its job is never answered).
                tracing::error!(error = %e, thread = i, "cannot start a push worker thread");
            }
        }
        Mutex::new(tx)
    })
}

/// Runs `f` on one of the pool's threads and waits for its result.
pub(crate) async fn run<T, F>(f: F) -> Result<T, Panicked>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    let (tx, rx) = tokio::sync::oneshot::channel();
    let job: Job = Box::new(move || {
        let out = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
        let _ = tx.send(out);
    });
    if pool()
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .send(job)
        .is_err()
    {
        return Err(Panicked);
    }
    match rx.await {
        Ok(Ok(v)) => Ok(v),
        _ => Err(Panicked),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// However many subscribers ask at once, no more than the pool's threads run the
    /// work, and no thread is started beyond them however often work comes and goes.
    #[test]
    fn the_work_runs_on_a_fixed_set_of_threads() {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .build()
            .unwrap();
        let (running, most) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let names = Arc::new(Mutex::new(std::collections::HashSet::new()));
        rt.block_on(async {
            for _round in 0..5 {
                let tasks: Vec<_> = (0..200)
                    .map(|_| {
                        let (running, most, names) = (running.clone(), most.clone(), names.clone());
                        tokio::spawn(run(move || {
                            let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                            most.fetch_max(now, Ordering::SeqCst);
                            names.lock().unwrap().insert(std::thread::current().id());
                            std::thread::sleep(std::time::Duration::from_micros(200));
                            running.fetch_sub(1, Ordering::SeqCst);
                        }))
                    })
                    .collect();
                for t in tasks {
                    t.await.unwrap().unwrap();
                }
            }
        });
        let limit = threads();
        let seen = most.load(Ordering::SeqCst);
        assert!(
            seen <= limit,
            "{seen} ran at once, the pool has {limit} threads"
        );
        assert!(seen > 1, "the work ran one at a time");
        let used = names.lock().unwrap().len();
        assert!(
            used <= limit,
            "{used} threads ran the work, the pool has {limit}"
        );
    }

    /// A panic in the work is an error for its caller, and the thread lives on.
    #[test]
    fn a_panicking_job_is_an_error_and_the_pool_carries_on() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(async {
            for _ in 0..threads() * 2 {
                assert!(run(|| panic!("boom")).await.is_err());
            }
            assert_eq!(run(|| 7).await.unwrap(), 7);
        });
    }
}
