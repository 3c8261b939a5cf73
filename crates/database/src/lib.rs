//! The database layer: one open database's catalog (streams, tables, types, persistent
//! queries), statement execution (DDL, INSERT, SHOW / DESCRIBE / EXPLAIN, TERMINATE),
//! recovery at start-up, and query planning handed to the engine. The gRPC server and the
//! test runner both sit on it; it knows no wire protocol, so its errors carry an
//! [`ErrorCode`] that the server maps to a gRPC status in one place.

mod error;
mod exec;

pub use error::{ErrorCode, ExecError};
pub use exec::{
    DEFAULT_PULL_WAIT, Executor, PROCESSING_LOG_STREAM, PULL_WAIT_PROPERTY, PlannedQuery,
    QueryKind, TRANSIENT_AGGREGATION_GROUPS, now_ms, pull_wait_timeout, transient_id,
};
