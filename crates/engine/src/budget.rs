//! What one pull query may take: rows, bytes and time (`sluice_plan::PullLimits`). Table
//! pulls and stream scans charge every row they return and check the clock as they read,
//! so a query stops at its limit instead of reading the whole source first.

use crate::{EngineError, Result};
use sluice_common::Value;
use sluice_plan::PullLimits;
use std::time::Instant;

/// Rows read between two looks at the clock: a look costs tens of nanoseconds, a row
/// a microsecond or more, so a check per 64 rows keeps the overshoot far under a millisecond.
const CLOCK_EVERY: u32 = 64;

pub(crate) struct PullBudget<'a> {
    limits: PullLimits,
    source: &'a str,
    started: Instant,
    rows: u64,
    bytes: u64,
    reads: u32,
}

impl<'a> PullBudget<'a> {
    pub(crate) fn new(limits: PullLimits, source: &'a str) -> PullBudget<'a> {
        PullBudget {
            limits,
            source,
            started: Instant::now(),
            rows: 0,
            bytes: 0,
            reads: 0,
        }
    }

    /// One stored row or record read (returned or not): fails once the query has run
    /// past its time limit.
    pub(crate) fn read(&mut self) -> Result<()> {
        self.reads = self.reads.wrapping_add(1);
        if self.reads.is_multiple_of(CLOCK_EVERY) {
            self.check_time()?;
        }
        Ok(())
    }

    pub(crate) fn check_time(&self) -> Result<()> {
        if self.started.elapsed() > self.limits.timeout {
            return Err(EngineError::LimitExceeded(format!(
                "Pull query on {} ran longer than {} ms, the server's limit pull-timeout-ms; add a narrower WHERE clause or a LIMIT, or raise the limit",
                self.source,
                self.limits.timeout.as_millis()
            )));
        }
        Ok(())
    }

    /// A row about to be returned: fails if it would take the result past the row or
    /// byte limit.
    pub(crate) fn charge(&mut self, row: &[Value]) -> Result<()> {
        if self.rows >= self.limits.max_rows {
            return Err(EngineError::LimitExceeded(format!(
                "Pull query on {} would return more than {} rows, the server's limit pull-max-rows; add a LIMIT or a narrower WHERE clause, or raise the limit",
                self.source, self.limits.max_rows
            )));
        }
        let room = self.limits.max_bytes.saturating_sub(self.bytes);
        let room_usize = usize::try_from(room).unwrap_or(usize::MAX);
        let size = row.iter().fold(0usize, |n, v| {
            n.saturating_add(v.size_within(room_usize.saturating_sub(n)))
        });
        let size = u64::try_from(size).unwrap_or(u64::MAX);
        if size > room {
            return Err(EngineError::LimitExceeded(format!(
                "Pull query on {} would return more than {} bytes, the server's limit pull-max-bytes; select fewer columns or rows, or raise the limit",
                self.source, self.limits.max_bytes
            )));
        }
        self.rows += 1;
        self.bytes += size;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn rows_bytes_and_time_are_each_a_named_limit() {
        let limits = PullLimits {
            max_rows: 3,
            max_bytes: 100,
            timeout: Duration::from_secs(60),
        };
        let mut b = PullBudget::new(limits, "T");
        let small = [Value::String("abc".into())];
        for _ in 0..3 {
            b.charge(&small).unwrap();
        }
        let e = b.charge(&small).unwrap_err().to_string();
        assert!(
            e.contains("more than 3 rows") && e.contains("pull-max-rows"),
            "{e}"
        );

        let mut b = PullBudget::new(limits, "T");
        b.charge(&[Value::String("x".repeat(60))]).unwrap();
        let e = b.charge(&[Value::String("x".repeat(60))]).unwrap_err();
        assert!(
            e.to_string()
                .contains("100 bytes, the server's limit pull-max-bytes"),
            "{e}"
        );

        let b = PullBudget::new(
            PullLimits {
                timeout: Duration::ZERO,
                ..limits
            },
            "T",
        );
        // Past a zero timeout as soon as the clock moves at all.
        let e = loop {
            if let Err(e) = b.check_time() {
                break e.to_string();
            }
        };
        assert!(
            e.contains("longer than 0 ms") && e.contains("pull-timeout-ms"),
            "{e}"
        );
    }
}
