//! The one place statement errors become gRPC statuses.

use sluice_database::{ErrorCode, ExecError};
use sluice_engine::FailureKind;
use tonic::{Code, Status};

/// gRPC carries the message in a header; clients refuse headers past a few KiB (and drop
/// the connection), so a message that echoes a huge input is shortened.
const MAX_STATUS_MESSAGE: usize = 4096;

pub fn grpc_code(code: ErrorCode) -> Code {
    match code {
        ErrorCode::InvalidArgument => Code::InvalidArgument,
        ErrorCode::NotFound => Code::NotFound,
        ErrorCode::AlreadyExists => Code::AlreadyExists,
        ErrorCode::FailedPrecondition => Code::FailedPrecondition,
        ErrorCode::OutOfRange => Code::OutOfRange,
        ErrorCode::ResourceExhausted => Code::ResourceExhausted,
        ErrorCode::Aborted => Code::Aborted,
        ErrorCode::Unimplemented => Code::Unimplemented,
        ErrorCode::Unavailable => Code::Unavailable,
        ErrorCode::DeadlineExceeded => Code::DeadlineExceeded,
        ErrorCode::Internal => Code::Internal,
        ErrorCode::DataLoss => Code::DataLoss,
    }
}

/// The status a push query that stopped ends with.
pub fn push_failure_code(kind: FailureKind) -> Code {
    match kind {
        FailureKind::Internal => Code::Internal,
        FailureKind::ResourceExhausted => Code::ResourceExhausted,
        FailureKind::DataLoss => Code::DataLoss,
    }
}

/// A status whose message is shortened like every other error's.
pub fn status(code: Code, message: impl Into<String>) -> Status {
    let mut message = message.into();
    if message.len() > MAX_STATUS_MESSAGE {
        let mut end = MAX_STATUS_MESSAGE;
        while !message.is_char_boundary(end) {
            end -= 1;
        }
        message.truncate(end);
        message.push_str("… (message truncated)");
    }
    Status::new(code, message)
}

/// A statement error as the status the client receives.
pub fn from_exec(e: ExecError) -> Status {
    status(grpc_code(e.code), e.message)
}

/// `?` for statement errors in RPC handlers: `exec.plan_query(..).or_status()?`.
pub trait OrStatus<T> {
    fn or_status(self) -> Result<T, Status>;
}

impl<T, E: Into<ExecError>> OrStatus<T> for Result<T, E> {
    fn or_status(self) -> Result<T, Status> {
        self.map_err(|e| from_exec(e.into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_messages_are_cut_on_a_char_boundary() {
        let s = from_exec(ExecError::invalid("é".repeat(5000)));
        assert_eq!(s.code(), Code::InvalidArgument);
        assert!(s.message().ends_with("… (message truncated)"));
        assert!(s.message().len() < MAX_STATUS_MESSAGE + 40);
    }
}
