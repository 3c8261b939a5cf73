//! Crash points for fault-injection tests.
//!
//! `SLUICE_TEST_CRASH_AT=NAME:N` makes the process abort the Nth time it reaches the crash
//! point NAME, as abruptly as `kill -9`: no destructor, flush or shutdown hook runs. A
//! test picks a point inside the write path (between building a commit and writing it,
//! between writing it and acknowledging it, between the steps of a DDL statement) and
//! checks that after a restart nothing acknowledged is lost and nothing is half done.
//!
//! Unset, a crash point costs one load of an initialised `OnceLock`. The points are
//! compiled into every build, rather than behind a cargo feature, so the suite tests the
//! binary it ships instead of building a second one.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

/// The environment variable naming the point and the hit to abort on.
pub const ENV: &str = "SLUICE_TEST_CRASH_AT";

struct Armed {
    name: String,
    remaining: AtomicU64,
}

fn armed() -> Option<&'static Armed> {
    static ARMED: OnceLock<Option<Armed>> = OnceLock::new();
    ARMED
        .get_or_init(|| {
            let spec = std::env::var(ENV).ok()?;
            let (name, n) = spec.rsplit_once(':').unwrap_or((spec.as_str(), "1"));
            Some(Armed {
                name: name.to_string(),
                remaining: AtomicU64::new(n.parse().unwrap_or(1).max(1)),
            })
        })
        .as_ref()
}

/// Aborts the process here if this is the armed point's chosen hit.
pub fn point(name: &str) {
    let Some(a) = armed() else { return };
    if a.name != name {
        return;
    }
    if a.remaining.fetch_sub(1, Ordering::SeqCst) == 1 {
        use std::io::Write;
        // Written straight to stderr: the process is about to vanish, a logger's buffer
        // would go with it.
        let _ = writeln!(std::io::stderr(), "crash point {name} reached; aborting");
        std::process::abort();
    }
}
