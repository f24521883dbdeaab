//! The CRI v1 API: generated message types, service traits and clients.
//!
//! crius serves `runtime.v1` only; the types come from the `k8s-cri` crate so
//! that the wire format follows the upstream `api.proto` exactly. Re-exported
//! here so the rest of the workspace has one place to import them from, and so
//! that vendoring a newer `api.proto` later changes one crate.

pub use k8s_cri::v1::*;

pub mod fs;

/// What went wrong, in the vocabulary every crius library shares.
///
/// Library error enums expose a `kind()`; the server maps each kind to one
/// gRPC code in a single table, so a library never picks wire codes itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The named object does not exist.
    NotFound,
    /// A name or id is already taken.
    AlreadyExists,
    /// The request itself is malformed; retrying it unchanged cannot help.
    InvalidArgument,
    /// The object is not in a state that allows the operation.
    FailedPrecondition,
    /// The operation did not finish in time.
    DeadlineExceeded,
    /// A dependency (registry, plugin, runtime) could not be reached.
    Unavailable,
    /// The operation is not supported by crius (yet).
    Unimplemented,
    /// Anything else: a bug or an unexpected system failure.
    Internal,
}
