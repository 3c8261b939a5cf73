//! Process-wide limits on what evaluating an expression may build, set once at start-up
//! from the server's flags (`--max-value-bytes`, `--max-regex-bytes`, `--max-in-list`).
//! They are global rather than passed down because every operator, pull query and planner
//! call evaluates expressions, and a limit must hold for all of them alike.

use std::sync::atomic::{AtomicUsize, Ordering};

/// The limits and their defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExprLimits {
    /// Largest value a function call may take in (all arguments together) or give back;
    /// over it the call is NULL. Default 4 MiB, four times Kafka's default largest message.
    pub max_value_bytes: usize,
    /// Largest compiled program of a regular expression (the regex crate's size limit,
    /// also its lazy DFA's cache bound); a pattern over it does not match (NULL), and a
    /// literal pattern over it is refused when the statement is planned. Default 1 MiB.
    pub max_regex_bytes: usize,
    /// Most values an IN list may hold; more is refused when the statement is planned.
    /// Default 50,000.
    pub max_in_list: usize,
}

const DEFAULTS: ExprLimits = ExprLimits {
    max_value_bytes: 4 << 20,
    max_regex_bytes: 1 << 20,
    max_in_list: 50_000,
};

impl Default for ExprLimits {
    fn default() -> ExprLimits {
        DEFAULTS
    }
}

static MAX_VALUE_BYTES: AtomicUsize = AtomicUsize::new(DEFAULTS.max_value_bytes);
static MAX_REGEX_BYTES: AtomicUsize = AtomicUsize::new(DEFAULTS.max_regex_bytes);
static MAX_IN_LIST: AtomicUsize = AtomicUsize::new(DEFAULTS.max_in_list);

/// Sets the limits for the whole process (before any query runs). Zero keeps a default.
pub fn set(limits: ExprLimits) {
    let d = DEFAULTS;
    let or = |v: usize, d: usize| if v == 0 { d } else { v };
    MAX_VALUE_BYTES.store(
        or(limits.max_value_bytes, d.max_value_bytes),
        Ordering::Relaxed,
    );
    MAX_REGEX_BYTES.store(
        or(limits.max_regex_bytes, d.max_regex_bytes),
        Ordering::Relaxed,
    );
    MAX_IN_LIST.store(or(limits.max_in_list, d.max_in_list), Ordering::Relaxed);
}

pub fn max_value_bytes() -> usize {
    MAX_VALUE_BYTES.load(Ordering::Relaxed)
}

pub fn max_regex_bytes() -> usize {
    MAX_REGEX_BYTES.load(Ordering::Relaxed)
}

pub fn max_in_list() -> usize {
    MAX_IN_LIST.load(Ordering::Relaxed)
}
