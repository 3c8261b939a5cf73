//! Statement errors and their gRPC status codes, mapped in one place.

use tonic::{Code, Status};

#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct ExecError {
    pub code: Code,
    pub message: String,
}

impl ExecError {
    pub fn new(code: Code, message: impl Into<String>) -> ExecError {
        ExecError {
            code,
            message: message.into(),
        }
    }

    pub fn invalid(message: impl Into<String>) -> ExecError {
        ExecError::new(Code::InvalidArgument, message)
    }

    pub fn internal(message: impl Into<String>) -> ExecError {
        ExecError::new(Code::Internal, message)
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
            K::Invalid | K::BadLiteral => Code::InvalidArgument,
            K::NotFound => Code::NotFound,
            K::AlreadyExists => Code::AlreadyExists,
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
            S::UnknownTopic(_) => ExecError::new(Code::NotFound, e.to_string()),
            S::UnknownPartition { .. } => ExecError::new(Code::OutOfRange, e.to_string()),
            S::TopicMismatch { .. } => ExecError::new(Code::FailedPrecondition, e.to_string()),
            S::Closed => ExecError::new(Code::Unavailable, e.to_string()),
            _ => ExecError::internal(e.to_string()),
        }
    }
}

impl From<sluice_engine::EngineError> for ExecError {
    fn from(e: sluice_engine::EngineError) -> ExecError {
        match e {
            sluice_engine::EngineError::Storage(s) => s.into(),
            sluice_engine::EngineError::Format(f) => ExecError::invalid(f.to_string()),
            sluice_engine::EngineError::Invalid(m) => ExecError::new(Code::FailedPrecondition, m),
        }
    }
}

impl From<sluice_format::FormatError> for ExecError {
    fn from(e: sluice_format::FormatError) -> ExecError {
        ExecError::invalid(e.to_string())
    }
}

/// gRPC carries the message in a header; clients refuse headers past a few KiB (and drop
/// the connection), so a message that echoes a huge input is shortened.
const MAX_STATUS_MESSAGE: usize = 4096;

/// A status whose message is shortened like every other error's.
pub fn status(code: Code, message: impl Into<String>) -> Status {
    ExecError::new(code, message).into()
}

impl From<ExecError> for Status {
    fn from(e: ExecError) -> Status {
        let mut message = e.message;
        if message.len() > MAX_STATUS_MESSAGE {
            let mut end = MAX_STATUS_MESSAGE;
            while !message.is_char_boundary(end) {
                end -= 1;
            }
            message.truncate(end);
            message.push_str("… (message truncated)");
        }
        Status::new(e.code, message)
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
        assert_eq!(literal.code, Code::InvalidArgument);
        let unplaced = ExecError::from(PlanError::new("bad", 0, 0));
        assert_eq!(unplaced.message, "bad");
    }
}
