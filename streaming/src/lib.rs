//! The CRI streaming server: exec, attach and port-forward sessions that the
//! kubelet (or crictl) opens on the URL an Exec/Attach/PortForward RPC
//! returned, spoken over SPDY/3.1 or WebSocket as the Kubernetes client
//! libraries do.
//!
//! The crate knows nothing about containers: the session ends call a
//! [`Backend`] that the daemon implements.
#![deny(unsafe_code)]

mod error;
pub mod spdy;

pub use error::Error;
