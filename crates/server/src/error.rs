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

/// Prefixes a message with its SQL position, as ksqlDB does: `line 2:40: ...`.
fn positioned(message: &str, line: u64, column: u64) -> String {
    if line > 0 {
        format!("line {line}:{column}: {message}")
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
        let code = match e.kind {
            sluice_planner::PlanErrorKind::Invalid => Code::InvalidArgument,
            sluice_planner::PlanErrorKind::NotFound => Code::NotFound,
            sluice_planner::PlanErrorKind::AlreadyExists => Code::AlreadyExists,
        };
        ExecError::new(code, positioned(&e.message, e.line, e.column))
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
