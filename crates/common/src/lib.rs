//! Common types shared by every Sluice layer: SQL data types, values, rows, schemas, the
//! catalog's descriptions of sources and queries, and the order-preserving key encoding.
//!
//! This crate does no I/O. Everything above it (formats, expressions, storage, engine,
//! planner, server) speaks these types, so a value means the same thing in every layer.

pub mod catalog;
pub mod civil;
pub mod codec;
pub mod crash;
pub mod keycodec;
pub mod schema;
pub mod types;
pub mod value;

pub use catalog::{FormatKind, FormatSpec, QueryDef, Replacement, SourceDef, SourceKind};
pub use catalog::{StateLayoutKind, WindowKind, WindowSpec};
pub use schema::{Column, ColumnRole, Schema};
pub use types::{ArithOp, DataType};
pub use value::{Row, Value};

/// Names of the pseudo columns every source exposes after its declared columns.
pub const ROWTIME: &str = "ROWTIME";
pub const ROWPARTITION: &str = "ROWPARTITION";
pub const ROWOFFSET: &str = "ROWOFFSET";
/// A windowed source's window bounds (epoch milliseconds), after ROWOFFSET in its rows.
pub const WINDOWSTART: &str = "WINDOWSTART";
pub const WINDOWEND: &str = "WINDOWEND";

/// Errors of decoding values this crate encoded (state, keys).
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum CodecError {
    #[error("corrupt encoded value: {0}")]
    Corrupt(String),
}
