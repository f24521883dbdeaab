//! Containers for crius: the OCI runtime spec, the overlay rootfs, runc and
//! conmon, the container store and the lifecycle built on them.
//!
//! The crate takes plain inputs ([`ImageInfo`], [`SandboxInfo`], the CRI
//! `ContainerConfig`) so it depends on neither the image store nor the
//! sandbox store; `server/` wires them together.
//!
//! # Wiring (server/)
//!
//! - Build one [`RuntimeConfig`] from the daemon config (state dir ->
//!   `root`, run dir -> `runroot`, `runtime_path`, `conmon_path`) and one
//!   [`ContainerManager`]; call [`ContainerManager::recover`] once at start,
//!   before serving, and after the sandbox store has recovered.
//! - CreateContainer: resolve the image (by reference or id) in the image
//!   store into an [`ImageInfo`] (NotFound if not pulled), the sandbox into a
//!   [`SandboxInfo`], then [`ContainerManager::create`].
//! - StopPodSandbox / RemovePodSandbox: [`ContainerManager::containers_of_sandbox`]
//!   then `stop` / `remove` each.
//! - Errors carry a [`crius_proto::ErrorKind`] via [`Error::kind`].

pub mod cdi;
pub mod devices;
pub mod error;
pub mod events;
pub mod exec;
pub mod hooks;
pub mod manager;
pub mod monitor;
pub mod rootfs;
pub mod runtime;
pub mod seccomp;
pub mod signal;
pub mod spec;
pub mod stats;
pub mod store;
pub mod timeout;
pub mod types;
pub mod user;

pub use error::{Error, Result};
pub use events::{ContainerEvent, EventKind};
pub use exec::ExecGuard;
pub use manager::{ContainerManager, ExecSyncOutput, RecoveryReport, StreamExec};
pub use store::{Container, ContainerMeta, State, Status};
pub use types::{CgroupManager, ImageConfig, ImageInfo, RuntimeConfig, SandboxInfo};
