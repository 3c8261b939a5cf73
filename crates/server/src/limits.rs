//! Limits on what one client can ask of the server, each a named, configurable setting:
//! going over one answers with the limit's name and value, and the server carries on.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use tonic::{Code, Status};

/// The server's limits (`sluice server --max-...`).
#[derive(Debug, Clone)]
pub struct Limits {
    /// Most bytes of SQL one request may carry (`--max-statement-bytes`).
    pub max_statement_bytes: usize,
    /// Most push queries open at once, all clients together (`--max-push-queries`).
    pub max_push_queries: usize,
    /// Most rows one BulkInsert request message may carry (`--max-bulk-rows`): a batch is
    /// decoded, encoded and committed whole, so its size is memory held at once.
    pub max_bulk_rows: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_statement_bytes: 1 << 20,
            max_push_queries: 1000,
            max_bulk_rows: 100_000,
        }
    }
}

impl Limits {
    /// RESOURCE_EXHAUSTED when a BulkInsert batch has more than `max_bulk_rows` rows.
    pub(crate) fn check_bulk_rows(&self, batch_id: u64, rows: usize) -> Result<(), Status> {
        if rows > self.max_bulk_rows {
            return Err(crate::status::status(
                Code::ResourceExhausted,
                format!(
                    "batch {batch_id} has {rows} rows, more than the server's limit max-bulk-rows = {}: split it into smaller batches (none of it was written)",
                    self.max_bulk_rows
                ),
            ));
        }
        Ok(())
    }

    /// INVALID_ARGUMENT when `sql` is longer than `max_statement_bytes`.
    pub(crate) fn check_statement(&self, sql: &str) -> Result<(), Status> {
        if sql.len() > self.max_statement_bytes {
            return Err(crate::status::status(
                Code::InvalidArgument,
                format!(
                    "the statement is {} bytes, more than the server's limit max-statement-bytes = {}",
                    sql.len(),
                    self.max_statement_bytes
                ),
            ));
        }
        Ok(())
    }
}

/// The push queries open now, against `max_push_queries`.
#[derive(Clone, Default)]
pub(crate) struct PushCount(Arc<AtomicUsize>);

/// One open push query's place in the count, given back when dropped.
pub(crate) struct PushSlot(Arc<AtomicUsize>);

impl Drop for PushSlot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl PushCount {
    /// Push queries open now.
    pub(crate) fn open(&self) -> usize {
        self.0.load(Ordering::Acquire)
    }

    /// A slot for a new push query, or RESOURCE_EXHAUSTED naming the limit.
    pub(crate) fn acquire(&self, max: usize) -> Result<PushSlot, Status> {
        let mut open = self.0.load(Ordering::Acquire);
        loop {
            if open >= max {
                return Err(crate::status::status(
                    Code::ResourceExhausted,
                    format!(
                        "{open} push queries are open, the server's limit max-push-queries = {max}: close one, or raise the limit"
                    ),
                ));
            }
            match self
                .0
                .compare_exchange(open, open + 1, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => return Ok(PushSlot(self.0.clone())),
                Err(now) => open = now,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn push_slots_are_counted_and_given_back() {
        let count = PushCount::default();
        let a = count.acquire(2).unwrap();
        let _b = count.acquire(2).unwrap();
        let e = count.acquire(2).err().unwrap();
        assert_eq!(e.code(), Code::ResourceExhausted);
        assert!(
            e.message().contains("max-push-queries = 2"),
            "{}",
            e.message()
        );
        drop(a);
        assert!(count.acquire(2).is_ok());
    }

    #[test]
    fn a_statement_over_the_limit_is_refused_with_its_name() {
        let limits = Limits {
            max_statement_bytes: 10,
            ..Limits::default()
        };
        assert!(limits.check_statement("SHOW TOPICS;").is_err());
        assert!(limits.check_statement("SHOW;").is_ok());
        let e = limits.check_statement(&"x".repeat(11)).unwrap_err();
        assert!(
            e.message().contains("max-statement-bytes = 10"),
            "{}",
            e.message()
        );
    }
}
