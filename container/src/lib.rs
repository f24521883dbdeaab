//! Containers for crius: the OCI runtime spec, the overlay rootfs, runc and
//! conmon, the container store and the lifecycle built on them.
//!
//! The crate takes plain inputs ([`ImageInfo`], [`SandboxInfo`], the CRI
//! `ContainerConfig`) so it depends on neither the image store nor the
//! sandbox store; `server/` wires them together.

pub mod error;
pub mod manager;
pub mod monitor;
pub mod rootfs;
pub mod runtime;
pub mod spec;
pub mod store;
pub mod types;
pub mod user;

pub use error::{Error, Result};
pub use manager::{ContainerManager, ExecSyncOutput, RecoveryReport};
pub use store::{Container, ContainerMeta, State, Status};
pub use types::{CgroupManager, ImageConfig, ImageInfo, RuntimeConfig, SandboxInfo};
