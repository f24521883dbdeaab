//! Pod sandboxes, CRI-O style: a sandbox is a set of pinned namespaces (no
//! pause image), per-pod hostname/hosts/resolv.conf/shm, and a CNI network
//! attachment, persisted so that crius can restart under running pods.
//!
//! [`Sandboxes`] is the entry point: run, stop, remove, look up and list.
//! The container work uses [`Sandbox`]: its [`Spec`] holds the namespace
//! paths, pod files, cgroup parent and log directory; [`Sandbox::pidns`]
//! gives the pod PID namespace; `stop_with`/`remove_with` take a hook that
//! stops the sandbox's containers first.

pub mod cni;
pub mod files;
pub mod infra;
pub mod loopback;
mod manager;
pub mod ns;
pub mod persist;
mod sandbox;

use std::path::PathBuf;

use crius_proto::ErrorKind;

pub use manager::{BoxError, Options, Sandboxes};
pub use sandbox::{
    Metadata, Namespaces, NsMode, PortMapping, RECORD_VERSION, Record, Sandbox, Spec, State, Status,
};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid pod sandbox config: {0}")]
    InvalidConfig(String),
    #[error("unknown runtime handler {handler:?}; configured handlers: {configured:?}")]
    UnknownHandler {
        handler: String,
        configured: Vec<String>,
    },
    #[error("pod sandbox name {name:?} is already reserved for sandbox {id}")]
    NameReserved { name: String, id: String },
    #[error("pod sandbox {id:?} not found")]
    NotFound { id: String },
    #[error("pod sandbox id prefix {prefix:?} is ambiguous: matches {ids:?}")]
    Ambiguous { prefix: String, ids: Vec<String> },
    #[error("network is not ready")]
    NetworkNotReady(#[source] cni::CniConfigError),
    #[error("failed to set up or tear down the network of sandbox {id}")]
    Network {
        id: String,
        #[source]
        source: cni::CniError,
    },
    #[error("failed to prepare the namespace pin directory")]
    PinDir(#[source] ns::NsError),
    #[error("failed to create namespaces of sandbox {id}")]
    Namespaces {
        id: String,
        #[source]
        source: ns::NsError,
    },
    #[error("failed to mount /dev/shm of sandbox {id} at {path:?}")]
    Shm {
        id: String,
        path: PathBuf,
        #[source]
        source: nix::Error,
    },
    #[error("failed to stop the infra process of sandbox {id}")]
    Infra {
        id: String,
        #[source]
        source: std::io::Error,
    },
    #[error("failed to stop the containers of sandbox {id}")]
    Containers {
        id: String,
        #[source]
        source: BoxError,
    },
    #[error("failed to {what} {path:?}")]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid sandbox record {path:?}: {message}")]
    Record { path: PathBuf, message: String },
}

impl Error {
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::InvalidConfig(_) | Error::UnknownHandler { .. } | Error::Ambiguous { .. } => {
                ErrorKind::InvalidArgument
            }
            Error::NameReserved { .. } => ErrorKind::AlreadyExists,
            Error::NotFound { .. } => ErrorKind::NotFound,
            Error::NetworkNotReady(_) => ErrorKind::FailedPrecondition,
            Error::Network { source, .. } => source.kind(),
            Error::Namespaces { source, .. } => match source {
                ns::NsError::Timeout { .. } => ErrorKind::DeadlineExceeded,
                _ => ErrorKind::Internal,
            },
            Error::PinDir(_)
            | Error::Shm { .. }
            | Error::Infra { .. }
            | Error::Containers { .. }
            | Error::Io { .. }
            | Error::Record { .. } => ErrorKind::Internal,
        }
    }
}
