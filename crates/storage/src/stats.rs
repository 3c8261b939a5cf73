//! What the storage layer counts for operators (exported as Prometheus metrics by the
//! server): the committer's group sizes and write (fsync) latency, and RocksDB's memory
//! and compaction backlog. Plain atomics, so the commit thread pays a few relaxed adds.

use std::sync::atomic::{AtomicU64, Ordering};

/// A histogram over fixed bucket bounds (upper bounds, ascending; the last bucket is
/// unbounded), updated without locks.
#[derive(Debug)]
pub struct Histogram {
    bounds: &'static [f64],
    counts: Vec<AtomicU64>,
    /// The sum of observed values, in millionths of the unit.
    sum_micros: AtomicU64,
}

/// A histogram's counts per bucket (not cumulative; the encoder accumulates them), by
/// upper bound, the last being `f64::MAX` (written `+Inf`, as prometheus-client's own
/// histograms do), with the sum and the count.
#[derive(Debug, Clone, PartialEq)]
pub struct HistogramSnapshot {
    pub buckets: Vec<(f64, u64)>,
    pub sum: f64,
    pub count: u64,
}

impl Histogram {
    pub fn new(bounds: &'static [f64]) -> Histogram {
        Histogram {
            bounds,
            counts: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            sum_micros: AtomicU64::new(0),
        }
    }

    pub fn observe(&self, v: f64) {
        let i = self.bounds.partition_point(|b| *b < v);
        if let Some(c) = self.counts.get(i) {
            c.fetch_add(1, Ordering::Relaxed);
        }
        self.sum_micros
            .fetch_add((v.max(0.0) * 1e6) as u64, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> HistogramSnapshot {
        let mut total = 0;
        let mut buckets = Vec::with_capacity(self.counts.len());
        for (i, c) in self.counts.iter().enumerate() {
            let n = c.load(Ordering::Relaxed);
            total += n;
            buckets.push((self.bounds.get(i).copied().unwrap_or(f64::MAX), n));
        }
        HistogramSnapshot {
            buckets,
            sum: self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6,
            count: total,
        }
    }
}

/// Seconds: group commits are fsync-bound, from ~0.1 ms (page cache) to seconds (a
/// stalled disk).
const WRITE_SECONDS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];
/// Records appended per group commit.
const GROUP_RECORDS: &[f64] = &[
    0.0, 1.0, 4.0, 16.0, 64.0, 256.0, 1024.0, 4096.0, 16384.0, 65536.0,
];

/// The committer's counters.
#[derive(Debug)]
pub struct CommitStats {
    /// Time to write one group's batch with fsync.
    pub write_seconds: Histogram,
    /// Records one group appended (0 for a group of state writes only).
    pub group_records: Histogram,
    /// Groups whose write failed (nothing of them acknowledged).
    pub failed_groups: AtomicU64,
}

impl Default for CommitStats {
    fn default() -> CommitStats {
        CommitStats {
            write_seconds: Histogram::new(WRITE_SECONDS),
            group_records: Histogram::new(GROUP_RECORDS),
            failed_groups: AtomicU64::new(0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_histogram_counts_per_bucket_and_sums() {
        static B: &[f64] = &[1.0, 10.0];
        let h = Histogram::new(B);
        for v in [0.5, 1.0, 3.0, 50.0] {
            h.observe(v);
        }
        let s = h.snapshot();
        assert_eq!(s.buckets, vec![(1.0, 2), (10.0, 1), (f64::MAX, 1)]);
        assert_eq!(s.count, 4);
        assert!((s.sum - 54.5).abs() < 1e-6);
    }
}
