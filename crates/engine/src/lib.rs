//! The streaming engine: persistent queries, table materialization, push subscriptions
//! and pull reads, over the storage layer. It knows nothing of SQL: the planner hands it
//! [`QueryPlan`]s, [`PushPlan`]s and [`PullPlan`]s made of bound expressions.
//!
//! ```text
//!  source topic ──read batch──▶ decode ─▶ filter ─▶ project | aggregate ─▶ encode ─┐
//!        ▲                                                                         │
//!        │              one Txn: sink appends + state + store rows + offsets ◀─────┘
//!        └── resumes from the offsets committed in that same Txn after a restart
//! ```
//!
//! Every source row has the layout: key columns, value columns, ROWTIME, ROWPARTITION,
//! ROWOFFSET. Table stores keep the same layout, so pull queries bind like any other read.

mod blocking;
mod budget;
mod cache;
mod changelog;
mod freshness;
mod keys;
mod operator;
mod pull;
mod push;
mod query;
mod replace;
mod rows;
mod scan;
mod state;
mod tail;
mod transient;

pub use push::{CHANNEL as PUSH_CHANNEL, FailureKind, PushEvent, PushStart};
pub use query::{
    Engine, QueryStatus, STATE_VERSION, materializer_id, state_compatible, state_layout_for,
};
pub use replace::Replaced;
pub use rows::{SourceRow, decode_record, encode_row_record};
pub use scan::ScanEvent;
pub use transient::TRANSIENT_JOIN_STATE_ENTRIES;

use sluice_storage::StorageError;

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error("{0}")]
    Format(#[from] sluice_format::FormatError),
    #[error("{0}")]
    Invalid(String),
    /// A record later than its window's grace period: dropped, counted apart from errors
    /// (SHOW QUERIES' `Late`), and written to the processing log.
    #[error("{0}")]
    Late(String),
    /// A read asked to see a log position the log has not reached.
    #[error(
        "position {position} is beyond the end of the log (the last committed position is {committed})"
    )]
    PositionAhead { position: u64, committed: u64 },
    /// A read's wait for its view to reach a position ran out of time.
    #[error("{0}")]
    NotCaughtUp(String),
    /// A pull query went past one of its limits (rows, bytes, time); the message names it.
    #[error("{0}")]
    LimitExceeded(String),
}

pub type Result<T> = std::result::Result<T, EngineError>;

/// The topic every query's record-level errors go to, readable as a stream.
pub const PROCESSING_LOG_TOPIC: &str = "sluice_processing_log";
