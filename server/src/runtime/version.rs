//! `Version`: who we are and which CRI version we speak.

use crius_proto::{VersionRequest, VersionResponse};

use crate::Cri;
use crate::error::Error;

/// The CRI API version crius implements.
pub const RUNTIME_API_VERSION: &str = "v1";

impl Cri {
    pub(crate) async fn version(&self, _req: VersionRequest) -> Result<VersionResponse, Error> {
        Ok(VersionResponse {
            // The CRI asks for the kubelet API version here; kubelet and
            // crictl both expect "0.1.0".
            version: "0.1.0".into(),
            runtime_name: "crius".into(),
            runtime_version: env!("CARGO_PKG_VERSION").into(),
            runtime_api_version: RUNTIME_API_VERSION.into(),
        })
    }
}
