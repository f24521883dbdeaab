//! Errors of the streaming server.

use crius_proto::ErrorKind;
use thiserror::Error;

/// What can go wrong while serving a streaming session.
#[derive(Debug, Error)]
pub enum Error {
    #[error("failed to bind streaming server to {addr}")]
    Bind {
        addr: std::net::SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("failed to load tls {what} from {path:?}")]
    TlsFile {
        what: &'static str,
        path: std::path::PathBuf,
        #[source]
        source: tokio_rustls::rustls::pki_types::pem::Error,
    },
    #[error("invalid tls certificate or key")]
    TlsConfig(#[source] tokio_rustls::rustls::Error),
    #[error("streaming connection i/o failed")]
    Io(#[source] std::io::Error),
    #[error("invalid spdy frame")]
    SpdyFrame(#[source] crate::spdy::FrameError),
    #[error("spdy frame of {0} bytes is larger than allowed")]
    SpdyFrameTooLarge(usize),
    #[error("invalid spdy header block")]
    SpdyHeaders(#[source] crate::spdy::compress::HeaderError),
    #[error("too many streaming sessions waiting for their client")]
    TooManySessions,
    #[error("invalid {what} {value:?}")]
    InvalidRequest { what: &'static str, value: String },
}

impl Error {
    /// The crius-wide kind of this error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Bind { .. } => ErrorKind::Unavailable,
            Error::TlsFile { .. } | Error::TlsConfig(_) => ErrorKind::InvalidArgument,
            Error::Io(_) => ErrorKind::Unavailable,
            Error::SpdyFrame(_)
            | Error::SpdyFrameTooLarge(_)
            | Error::SpdyHeaders(_)
            | Error::InvalidRequest { .. } => ErrorKind::InvalidArgument,
            Error::TooManySessions => ErrorKind::Unavailable,
        }
    }
}
