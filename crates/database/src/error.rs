//! Statement errors with a protocol-neutral code; the server maps [`ErrorCode`] to gRPC
//! status codes in one place (crates/server/src/status.rs).

/// What kind of failure an error is, in the terms a client acts on. The variants are the
/// gRPC status codes the API documents for statements, so the server's mapping is total.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    /// The statement or its input is wrong: fix it and try again.
    InvalidArgument,
    /// A named object (source, query, topic, type) does not exist.
    NotFound,
    /// The object being created exists already.
    AlreadyExists,
    /// The statement is valid but the database's state refuses it (a source in use, ...).
    FailedPrecondition,
    /// A partition or position beyond what exists.
    OutOfRange,
    /// An optimistic-concurrency check failed: nothing was written; re-read and retry.
    Aborted,
    /// A limit was reached (rows, groups, ...).
    ResourceExhausted,
    /// Valid ksqlDB that Sluice does not support (yet).
    Unimplemented,
    /// The database is shutting down.
    Unavailable,
    /// A wait ran out of time (a read-your-writes pull whose view is behind); retry.
    DeadlineExceeded,
    /// A fault of Sluice's or of its storage, not of the request.
    Internal,
    /// A data file is damaged (a checksum or size check failed): nothing was read from it.
    DataLoss,
}

#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct ExecError {
    pub code: ErrorCode,
    pub message: String,
}

impl ExecError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> ExecError {
        ExecError {
            code,
            message: message.into(),
        }
    }

    pub fn invalid(message: impl Into<String>) -> ExecError {
        ExecError::new(ErrorCode::InvalidArgument, message)
    }

    pub fn internal(message: impl Into<String>) -> ExecError {
        ExecError::new(ErrorCode::Internal, message)
    }
}

/// Prefixes a syntax error with its SQL position, as ksqlDB's parser does: `line 2:40: ...`.
fn positioned(message: &str, line: u64, column: u64) -> String {
    if line > 0 {
        format!("line {line}:{column}: {message}")
    } else {
        message.to_string()
    }
}

/// Prefixes a semantic error with its SQL position, as ksqlDB's analyzer does:
/// `Line: 1, Col: 21: ...`.
fn located(message: &str, line: u64, column: u64) -> String {
    if line > 0 {
        format!("Line: {line}, Col: {column}: {message}")
    } else {
        message.to_string()
    }
}

impl From<sluice_sql::ParseError> for ExecError {
    fn from(e: sluice_sql::ParseError) -> ExecError {
        ExecError::invalid(positioned(
            &format!("Syntax Error\n{}", e.message),
            e.line,
            e.column,
        ))
    }
}

impl From<sluice_planner::PlanError> for ExecError {
    fn from(e: sluice_planner::PlanError) -> ExecError {
        use sluice_planner::PlanErrorKind as K;
        let code = match e.kind {
            K::Invalid | K::BadLiteral => ErrorCode::InvalidArgument,
            K::NotFound => ErrorCode::NotFound,
            K::AlreadyExists => ErrorCode::AlreadyExists,
        };
        let message = match e.kind {
            // ksqlDB rejects these while preparing the statement (building its syntax
            // tree), so they are positioned like syntax errors; its exception adds one to
            // the (already 1-based) column.
            K::BadLiteral => format!(
                "Failed to prepare statement: {}",
                positioned(&e.message, e.line, e.column + u64::from(e.line > 0))
            ),
            _ => located(&e.message, e.line, e.column),
        };
        ExecError::new(code, message)
    }
}

impl From<sluice_storage::StorageError> for ExecError {
    fn from(e: sluice_storage::StorageError) -> ExecError {
        use sluice_storage::StorageError as S;
        match e {
            S::UnknownTopic(_) => ExecError::new(ErrorCode::NotFound, e.to_string()),
            S::UnknownPartition { .. } => ExecError::new(ErrorCode::OutOfRange, e.to_string()),
            S::TopicMismatch { .. } => ExecError::new(ErrorCode::FailedPrecondition, e.to_string()),
            S::Closed => ExecError::new(ErrorCode::Unavailable, e.to_string()),
            S::Conflict(_) => ExecError::new(ErrorCode::Aborted, e.to_string()),
            S::DiskFull { .. } => ExecError::new(ErrorCode::ResourceExhausted, e.to_string()),
            S::Corruption { .. } => ExecError::new(ErrorCode::DataLoss, e.to_string()),
            S::CommitFailed(ref m) if m.contains("No space left") => {
                ExecError::new(ErrorCode::ResourceExhausted, e.to_string())
            }
            _ => ExecError::internal(e.to_string()),
        }
    }
}

impl From<sluice_engine::EngineError> for ExecError {
    fn from(e: sluice_engine::EngineError) -> ExecError {
        match e {
            sluice_engine::EngineError::Storage(s) => s.into(),
            sluice_engine::EngineError::Format(f) => ExecError::invalid(f.to_string()),
            sluice_engine::EngineError::Invalid(m) | sluice_engine::EngineError::Late(m) => {
                ExecError::new(ErrorCode::FailedPrecondition, m)
            }
            e @ sluice_engine::EngineError::PositionAhead { .. } => {
                ExecError::new(ErrorCode::OutOfRange, e.to_string())
            }
            sluice_engine::EngineError::NotCaughtUp(m) => {
                ExecError::new(ErrorCode::DeadlineExceeded, m)
            }
            sluice_engine::EngineError::LimitExceeded(m) => {
                ExecError::new(ErrorCode::ResourceExhausted, m)
            }
        }
    }
}

impl From<sluice_format::FormatError> for ExecError {
    fn from(e: sluice_format::FormatError) -> ExecError {
        ExecError::invalid(e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_planner::{PlanError, PlanErrorKind};

    #[test]
    fn errors_are_positioned_the_way_ksqldb_positions_them() {
        let syntax = ExecError::from(sluice_sql::ParseError {
            message: "Unknown statement 'RUN'".into(),
            line: 1,
            column: 1,
        });
        assert_eq!(
            syntax.message,
            "line 1:1: Syntax Error\nUnknown statement 'RUN'"
        );
        let semantic = ExecError::from(PlanError::new("Column 'X' cannot be resolved.", 2, 8));
        assert_eq!(
            semantic.message,
            "Line: 2, Col: 8: Column 'X' cannot be resolved."
        );
        let literal = ExecError::from(
            PlanError::new("Invalid numeric literal: 9", 2, 39)
                .with_kind(PlanErrorKind::BadLiteral),
        );
        assert_eq!(
            literal.message,
            "Failed to prepare statement: line 2:40: Invalid numeric literal: 9"
        );
        assert_eq!(literal.code, ErrorCode::InvalidArgument);
        let unplaced = ExecError::from(PlanError::new("bad", 0, 0));
        assert_eq!(unplaced.message, "bad");
    }
}
