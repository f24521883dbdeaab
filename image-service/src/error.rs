//! The image service's error type: every variant names the object (reference,
//! digest, path) and keeps its cause, and reports an [`ErrorKind`] for the
//! server's one status table.

use std::path::PathBuf;

use crius_proto::ErrorKind;

pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid image reference {reference:?}: {reason}")]
    InvalidReference { reference: String, reason: String },
    #[error("registry {registry} is blocked by {path:?}")]
    Blocked { registry: String, path: PathBuf },
    #[error("registry {registry} is unavailable while fetching {what}")]
    RegistryUnavailable {
        registry: String,
        what: String,
        #[source]
        source: BoxError,
    },
    #[error("{what} not found in registry {registry}")]
    NotFoundInRegistry {
        registry: String,
        what: String,
        #[source]
        source: BoxError,
    },
    #[error("registry {registry} refused credentials for {what}")]
    Unauthorized {
        registry: String,
        what: String,
        #[source]
        source: BoxError,
    },
    #[error("registry {registry} failed to serve {what}")]
    Registry {
        registry: String,
        what: String,
        #[source]
        source: BoxError,
    },
    #[error("image {reference} has no manifest for platform {platform}")]
    NoMatchingPlatform { reference: String, platform: String },
    #[error("unsupported media type {media_type:?} in {reference}")]
    UnsupportedMediaType {
        reference: String,
        media_type: String,
    },
    #[error("invalid {what} {digest} of {reference}: {reason}")]
    InvalidContent {
        reference: String,
        what: &'static str,
        digest: String,
        reason: String,
    },
    #[error("blob {expected} failed verification: got digest {actual}")]
    DigestMismatch { expected: String, actual: String },
    #[error("blob {digest} has the wrong size: expected {expected} bytes, got {actual}")]
    SizeMismatch {
        digest: String,
        expected: u64,
        actual: u64,
    },
    #[error("layer {digest} does not unpack to diff id {expected}: got {actual}")]
    DiffIdMismatch {
        digest: String,
        expected: String,
        actual: String,
    },
    #[error("layer {digest} is unsafe: entry {entry:?} {reason}")]
    UnsafeLayer {
        digest: String,
        entry: PathBuf,
        reason: &'static str,
    },
    #[error("{what} from registry {registry} is larger than {limit} bytes")]
    TooLarge {
        registry: String,
        what: String,
        limit: u64,
    },
    #[error("layer {digest} exceeds a limit: {reason} (raise {key} to allow it)")]
    LayerLimit {
        digest: String,
        key: &'static str,
        reason: String,
    },
    #[error("failed to unpack layer {digest} at entry {entry:?}")]
    Unpack {
        digest: String,
        entry: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("failed to download blob {digest} from {registry}")]
    Download {
        registry: String,
        digest: String,
        #[source]
        source: std::io::Error,
    },
    #[error("download of blob {digest} from registry {registry} made no progress for {secs} s")]
    DownloadStalled {
        registry: String,
        digest: String,
        secs: u64,
    },
    #[error("pull of {reference} was cancelled")]
    Cancelled { reference: String },
    #[error("image {image} is in use by {users:?}")]
    InUse { image: String, users: Vec<String> },
    #[error("failed to {action} {path:?}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("corrupt record {path:?}")]
    Record {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("invalid registries config {path:?}: {message}")]
    RegistriesConf { path: PathBuf, message: String },
    #[error("invalid auth file {path:?}: {message}")]
    AuthFile { path: PathBuf, message: String },
    #[error("invalid credentials for {registry}: {message}")]
    Credentials { registry: String, message: String },
    #[error("pull of {reference} failed")]
    Task {
        reference: String,
        #[source]
        source: tokio::task::JoinError,
    },
}

impl Error {
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::InvalidReference { .. }
            | Error::Credentials { .. }
            | Error::LayerLimit { .. }
            | Error::TooLarge { .. } => ErrorKind::InvalidArgument,
            Error::Blocked { .. }
            | Error::Unauthorized { .. }
            | Error::InUse { .. }
            | Error::UnsupportedMediaType { .. } => ErrorKind::FailedPrecondition,
            Error::RegistryUnavailable { .. }
            | Error::Registry { .. }
            | Error::Download { .. }
            | Error::Cancelled { .. } => ErrorKind::Unavailable,
            Error::DownloadStalled { .. } => ErrorKind::DeadlineExceeded,
            Error::NotFoundInRegistry { .. } | Error::NoMatchingPlatform { .. } => {
                ErrorKind::NotFound
            }
            Error::InvalidContent { .. }
            | Error::DigestMismatch { .. }
            | Error::SizeMismatch { .. }
            | Error::DiffIdMismatch { .. }
            | Error::UnsafeLayer { .. }
            | Error::Unpack { .. }
            | Error::Io { .. }
            | Error::Record { .. }
            | Error::RegistriesConf { .. }
            | Error::AuthFile { .. }
            | Error::Task { .. } => ErrorKind::Internal,
        }
    }

    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
        source: std::io::Error,
    ) -> Self {
        Error::Io {
            action,
            path: path.into(),
            source,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
