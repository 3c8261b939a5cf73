//! Limits on what one client can ask of the server, each a named, configurable setting:
//! going over one answers with the limit's name and value, and the server carries on.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use tonic::{Code, Status};

/// The server's limits (`sluice server --max-...`).
#[derive(Debug, Clone)]
pub struct Limits {
    /// Most bytes of SQL one request may carry (`--max-statement-bytes`).
    pub max_statement_bytes: usize,
    /// Most push queries open at once, all clients together (`--max-push-queries`).
    pub max_push_queries: usize,
    /// Most push queries open at once on one client connection
    /// (`--max-push-queries-per-connection`): one client cannot take every slot.
    pub max_push_queries_per_connection: usize,
    /// Most rows one BulkInsert request message may carry (`--max-bulk-rows`): a batch is
    /// decoded, encoded and committed whole, so its size is memory held at once.
    pub max_bulk_rows: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_statement_bytes: 1 << 20,
            max_push_queries: 1000,
            max_push_queries_per_connection: 100,
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

/// The push queries open now, against `max_push_queries` and, per client connection
/// (its peer address: one TCP connection each), `max_push_queries_per_connection`.
#[derive(Clone, Default)]
pub(crate) struct PushCount(Arc<Mutex<Open>>);

#[derive(Default)]
struct Open {
    total: usize,
    by_connection: HashMap<SocketAddr, usize>,
}

/// One open push query's place in the counts, given back when dropped.
pub(crate) struct PushSlot {
    count: Arc<Mutex<Open>>,
    connection: Option<SocketAddr>,
}

impl Drop for PushSlot {
    fn drop(&mut self) {
        let mut open = self.count.lock().unwrap_or_else(|p| p.into_inner());
        open.total = open.total.saturating_sub(1);
        if let Some(c) = self.connection
            && let Some(n) = open.by_connection.get_mut(&c)
        {
            *n = n.saturating_sub(1);
            if *n == 0 {
                open.by_connection.remove(&c);
            }
        }
    }
}

impl PushCount {
    /// Push queries open now.
    pub(crate) fn open(&self) -> usize {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).total
    }

    /// A slot for a new push query on `connection`, or RESOURCE_EXHAUSTED naming the limit
    /// it would pass.
    pub(crate) fn acquire(
        &self,
        limits: &Limits,
        connection: Option<SocketAddr>,
    ) -> Result<PushSlot, Status> {
        let mut open = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let max = limits.max_push_queries;
        if open.total >= max {
            return Err(crate::status::status(
                Code::ResourceExhausted,
                format!(
                    "{} push queries are open, the server's limit max-push-queries = {max}: close one, or raise the limit",
                    open.total
                ),
            ));
        }
        if let Some(c) = connection {
            let here = open.by_connection.get(&c).copied().unwrap_or(0);
            let max = limits.max_push_queries_per_connection;
            if here >= max {
                return Err(crate::status::status(
                    Code::ResourceExhausted,
                    format!(
                        "{here} push queries are open on this connection, the server's limit max-push-queries-per-connection = {max}: close one, open another connection, or raise the limit"
                    ),
                ));
            }
            *open.by_connection.entry(c).or_insert(0) += 1;
        }
        open.total += 1;
        Ok(PushSlot {
            count: self.0.clone(),
            connection,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn push_slots_are_counted_and_given_back() {
        let limits = Limits {
            max_push_queries: 3,
            max_push_queries_per_connection: 2,
            ..Limits::default()
        };
        let (one, two) = (
            Some(([127, 0, 0, 1], 1).into()),
            Some(([127, 0, 0, 1], 2).into()),
        );
        let count = PushCount::default();
        let a = count.acquire(&limits, one).unwrap();
        let _b = count.acquire(&limits, one).unwrap();
        let e = count.acquire(&limits, one).err().unwrap();
        assert_eq!(e.code(), Code::ResourceExhausted);
        assert!(
            e.message().contains("max-push-queries-per-connection = 2"),
            "{}",
            e.message()
        );
        let _c = count.acquire(&limits, two).unwrap();
        let e = count.acquire(&limits, two).err().unwrap();
        assert!(
            e.message().contains("max-push-queries = 3"),
            "{}",
            e.message()
        );
        assert_eq!(count.open(), 3);
        drop(a);
        assert!(count.acquire(&limits, one).is_ok());
        assert_eq!(count.0.lock().unwrap().by_connection.len(), 2);
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
