//! crius's image service: references, registries configuration, registry
//! credentials, pulling (digest-verified, parallel, streamed into the
//! unpacker), hostile-safe layer unpacking into overlay lower dirs, and the
//! persistent image store.
//!
//! # For the container code
//!
//! - [`ImageService::rootfs`] looks an image up by tag, digest, id or unique
//!   id prefix (as `CreateContainer` receives it) and returns its layer dirs,
//!   lowest first, and its [`RuntimeConfig`] (env, entrypoint, cmd, user,
//!   working dir, stop signal, labels). [`ImageRootfs::lowerdir`] formats
//!   them for an overlay mount; whiteouts are already overlay whiteouts.
//! - [`ImageService::hold`] / [`ImageService::release`] register a
//!   container being created as holding an image, so `RemoveImage`
//!   refuses it with `FailedPrecondition` while the create runs; existing
//!   containers are named by the `used_by` closure of
//!   [`ImageService::remove`], checked under the same lock.

#![deny(unsafe_code)]

pub mod auth;
mod error;
pub mod manifest;
mod pull;
pub mod reference;
pub mod registries;
mod service;
pub mod store;
pub mod unpack;

pub use error::{BoxError, Error, Result};
pub use service::{FsUsage, ImageRootfs, ImageService, Options};
pub use store::{ImageRecord, RuntimeConfig};

/// The error and its causes on one line, for logs.
pub fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
