//! The one table from crius errors to gRPC status codes.
//!
//! Libraries report an [`ErrorKind`]; this module is the only place that
//! turns a kind into a `tonic::Code`. The match is exhaustive on purpose: a
//! new kind must be given a code here before anything compiles.

use crius_proto::ErrorKind;
use tonic::{Code, Status};

/// Errors returned by RPC handlers.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{rpc} is not implemented by crius yet")]
    Unimplemented { rpc: &'static str },
    #[error("invalid {what}: {message}")]
    InvalidArgument { what: &'static str, message: String },
    #[error(transparent)]
    Image(#[from] image_service::Error),
    #[error(transparent)]
    Sandbox(#[from] pod_sandbox::Error),
    #[error(transparent)]
    Container(#[from] container::Error),
    #[error("image {image:?} not found: pull it first")]
    ImageNotFound { image: String },
    #[error("pod sandbox {id} is not ready: cannot {op}")]
    SandboxNotReady { id: String, op: &'static str },
    #[error("request aborted: crius is shutting down")]
    Aborted,
    #[error(transparent)]
    Streaming(#[from] streaming::Error),
    #[error("the streaming server is not running")]
    StreamingNotStarted,
}

impl Error {
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Unimplemented { .. } => ErrorKind::Unimplemented,
            Error::InvalidArgument { .. } => ErrorKind::InvalidArgument,
            Error::Image(err) => err.kind(),
            Error::Sandbox(err) => err.kind(),
            Error::Container(err) => err.kind(),
            Error::ImageNotFound { .. } => ErrorKind::NotFound,
            Error::SandboxNotReady { .. } => ErrorKind::FailedPrecondition,
            Error::Aborted | Error::StreamingNotStarted => ErrorKind::Unavailable,
            Error::Streaming(err) => err.kind(),
        }
    }
}

/// The gRPC code for each kind.
pub fn code(kind: ErrorKind) -> Code {
    match kind {
        ErrorKind::NotFound => Code::NotFound,
        ErrorKind::AlreadyExists => Code::AlreadyExists,
        ErrorKind::InvalidArgument => Code::InvalidArgument,
        ErrorKind::FailedPrecondition => Code::FailedPrecondition,
        ErrorKind::DeadlineExceeded => Code::DeadlineExceeded,
        ErrorKind::Unavailable => Code::Unavailable,
        ErrorKind::Unimplemented => Code::Unimplemented,
        ErrorKind::Internal => Code::Internal,
    }
}

/// The error and its whole source chain, so that a runc or plugin message
/// deep in the chain reaches the client.
pub fn message(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

impl From<Error> for Status {
    fn from(err: Error) -> Status {
        Status::new(code(err.kind()), message(&err))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_has_its_code() {
        let table = [
            (ErrorKind::NotFound, Code::NotFound),
            (ErrorKind::AlreadyExists, Code::AlreadyExists),
            (ErrorKind::InvalidArgument, Code::InvalidArgument),
            (ErrorKind::FailedPrecondition, Code::FailedPrecondition),
            (ErrorKind::DeadlineExceeded, Code::DeadlineExceeded),
            (ErrorKind::Unavailable, Code::Unavailable),
            (ErrorKind::Unimplemented, Code::Unimplemented),
            (ErrorKind::Internal, Code::Internal),
        ];
        for (kind, expected) in table {
            assert_eq!(code(kind), expected, "{kind:?}");
        }
    }

    #[test]
    fn unimplemented_names_the_rpc() {
        let status = Status::from(Error::Unimplemented { rpc: "Attach" });
        assert_eq!(status.code(), Code::Unimplemented);
        assert_eq!(status.message(), "Attach is not implemented by crius yet");
    }

    #[test]
    fn image_errors_keep_their_kind_and_object() {
        let err = Error::from(image_service::Error::InvalidReference {
            reference: "Bad".into(),
            reason: "repository name must be lowercase".into(),
        });
        let status = Status::from(err);
        assert_eq!(status.code(), Code::InvalidArgument);
        assert!(status.message().contains("\"Bad\""), "{}", status.message());
    }

    #[test]
    fn sandbox_errors_keep_their_kind() {
        let status = Status::from(Error::from(pod_sandbox::Error::NameReserved {
            name: "web_default_u1_0".into(),
            id: "abc".into(),
        }));
        assert_eq!(status.code(), Code::AlreadyExists);
        assert!(status.message().contains("abc"), "{}", status.message());
        let status = Status::from(Error::from(pod_sandbox::Error::NotFound { id: "x".into() }));
        assert_eq!(status.code(), Code::NotFound);
    }

    #[test]
    fn message_keeps_the_source_chain() {
        #[derive(Debug, thiserror::Error)]
        #[error("failed to start container \"abc\"")]
        struct Outer(#[source] std::io::Error);
        let err = Outer(std::io::Error::other("runc: exec format error"));
        assert_eq!(
            message(&err),
            "failed to start container \"abc\": runc: exec format error"
        );
    }

    #[test]
    fn streaming_errors_keep_their_kind() {
        let status = Status::from(Error::StreamingNotStarted);
        assert_eq!(status.code(), Code::Unavailable);
        let err = Error::from(streaming::Error::InvalidRequest {
            what: "port",
            value: "0".into(),
        });
        assert_eq!(Status::from(err).code(), Code::InvalidArgument);
        let err = Error::SandboxNotReady {
            id: "p".into(),
            op: "port-forward to it",
        };
        let status = Status::from(err);
        assert_eq!(status.code(), Code::FailedPrecondition);
        assert_eq!(
            status.message(),
            "pod sandbox p is not ready: cannot port-forward to it"
        );
    }
}
