//! crius's image service: references, registries configuration, registry
//! credentials, pulling (digest-verified, parallel, streamed into the
//! unpacker), hostile-safe layer unpacking into overlay lower dirs, and the
//! persistent image store.

#![deny(unsafe_code)]

pub mod auth;
mod error;
pub mod reference;
pub mod registries;
pub mod unpack;

pub use error::{BoxError, Error, Result};
