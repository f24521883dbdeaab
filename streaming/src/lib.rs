//! The CRI streaming server: exec, attach and port-forward sessions that the
//! kubelet (or crictl) opens on the URL an Exec/Attach/PortForward RPC
//! returned, spoken over SPDY/3.1 or WebSocket as the Kubernetes client
//! libraries do.
//!
//! The crate knows nothing about containers: the session ends call a
//! [`Backend`] that the daemon implements.
//!
//! # Wiring it into the daemon
//!
//! ```no_run
//! # use std::sync::Arc;
//! # async fn wire(backend: Arc<dyn streaming::Backend>) -> Result<(), streaming::Error> {
//! // At startup, from --streaming-address/--streaming-port (port 0 = any):
//! let server = streaming::StreamingServer::start(
//!     streaming::Config {
//!         addr: "127.0.0.1:0".parse().unwrap(),
//!         ..Default::default()
//!     },
//!     backend,
//! )
//! .await?;
//!
//! // In the Exec RPC, after checking the container exists and runs:
//! let req = crius_proto::ExecRequest::default();
//! let url = server.register_exec(req)?; // -> ExecResponse { url }
//!
//! // On daemon shutdown: ends every session, drops their backend futures.
//! server.shutdown().await;
//! # Ok(()) }
//! ```
//!
//! # Protocols
//!
//! | transport | exec / attach | port-forward |
//! |-----------|---------------|--------------|
//! | SPDY/3.1 (`X-Stream-Protocol-Version`) | `v4.channel.k8s.io`, `v3.`, `v2.`, `channel.k8s.io` | `portforward.k8s.io` |
//! | WebSocket (`Sec-WebSocket-Protocol`) | `v5.channel.k8s.io`, `v4.channel.k8s.io`, `v4.base64.channel.k8s.io`, `channel.k8s.io`, `base64.channel.k8s.io` | `SPDY/3.1+portforward.k8s.io` (tunnel), `v4.channel.k8s.io`, `v4.base64.channel.k8s.io` |
#![deny(unsafe_code)]

mod backend;
mod error;
mod over_spdy;
mod over_ws;
mod remotecommand;
mod server;
pub mod spdy;
mod tokens;

pub use backend::{
    Backend, BackendError, BoxReader, BoxWriter, DuplexIo, ExitStatus, Streams, TerminalSize,
};
pub use error::Error;
pub use server::{Config, StreamingServer, TlsFiles};

/// WebSocket channel framing, public for test clients.
pub mod ws {
    pub use crate::over_ws::{CLOSE, ERROR, RESIZE, STDERR, STDIN, STDOUT, decode, encode, tunnel};
}
