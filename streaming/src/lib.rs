//! The CRI streaming server: exec, attach and port-forward sessions that the
//! kubelet (or crictl) opens on the URL an Exec/Attach/PortForward RPC
//! returned, spoken over SPDY/3.1 or WebSocket as the Kubernetes client
//! libraries do.
//!
//! The crate knows nothing about containers: the session ends call a
//! [`Backend`] that the daemon implements.
#![deny(unsafe_code)]

mod backend;
mod error;
mod over_spdy;
mod over_ws;
mod remotecommand;
mod server;
pub mod spdy;
pub mod tokens;

pub use backend::{
    Backend, BackendError, BoxReader, BoxWriter, DuplexIo, ExitStatus, Streams, TerminalSize,
};
pub use error::Error;
pub use server::{Config, StreamingServer};

/// WebSocket channel framing, public for test clients.
pub mod ws {
    pub use crate::over_ws::{CLOSE, ERROR, RESIZE, STDERR, STDIN, STDOUT, decode, encode, tunnel};
}
