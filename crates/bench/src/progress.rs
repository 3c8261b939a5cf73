//! A one-line progress display on stderr (only when it is a terminal, so logs and CI output
//! stay clean): done/total, rate and elapsed time.

use std::io::{IsTerminal, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

#[derive(Clone)]
pub struct Progress {
    inner: Arc<Inner>,
}

struct Inner {
    label: String,
    total: u64,
    done: AtomicU64,
    stop: AtomicBool,
    start: Instant,
}

impl Progress {
    /// Starts drawing (if stderr is a terminal) until [`Progress::finish`] or drop of all
    /// clones.
    pub fn start(label: &str, total: u64) -> Progress {
        let p = Progress {
            inner: Arc::new(Inner {
                label: label.to_string(),
                total,
                done: AtomicU64::new(0),
                stop: AtomicBool::new(false),
                start: Instant::now(),
            }),
        };
        if std::io::stderr().is_terminal() {
            let weak = Arc::downgrade(&p.inner);
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    let Some(inner) = weak.upgrade() else { break };
                    if inner.stop.load(Ordering::Relaxed) {
                        break;
                    }
                    inner.draw();
                }
            });
        }
        p
    }

    /// A counter that is never drawn, for a load running beside a drawn bar.
    pub fn hidden(total: u64) -> Progress {
        Progress {
            inner: Arc::new(Inner {
                label: String::new(),
                total,
                done: AtomicU64::new(0),
                stop: AtomicBool::new(true),
                start: Instant::now(),
            }),
        }
    }

    pub fn add(&self, n: u64) {
        self.inner.done.fetch_add(n, Ordering::Relaxed);
    }

    pub fn set(&self, n: u64) {
        self.inner.done.store(n, Ordering::Relaxed);
    }

    pub fn finish(&self) {
        self.inner.stop.store(true, Ordering::Relaxed);
        if std::io::stderr().is_terminal() {
            let mut err = std::io::stderr();
            let _ = write!(err, "\r\x1b[2K");
            let _ = err.flush();
        }
    }
}

impl Inner {
    fn draw(&self) {
        let done = self.done.load(Ordering::Relaxed);
        let secs = self.start.elapsed().as_secs_f64();
        let rate = if secs > 0.0 { done as f64 / secs } else { 0.0 };
        let pct = if self.total > 0 {
            (done as f64 / self.total as f64 * 100.0).min(100.0)
        } else {
            0.0
        };
        let width = 30usize;
        let filled = ((pct / 100.0) * width as f64) as usize;
        let bar: String = "#".repeat(filled) + &"-".repeat(width - filled);
        let mut err = std::io::stderr();
        let _ = write!(
            err,
            "\r\x1b[2K{:<12} [{bar}] {done}/{} {:>10}/s {secs:>6.1}s",
            self.label,
            self.total,
            crate::report::human(rate),
        );
        let _ = err.flush();
    }
}
