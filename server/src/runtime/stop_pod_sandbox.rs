//! `StopPodSandbox`: tears the network down and stops the infra process.
//!
//! The CRI says StopPodSandbox must be idempotent and succeed for a sandbox
//! that is already gone (api.proto: "If there are any running containers in
//! the sandbox, they must be forcibly terminated ... This call is
//! idempotent, and must not return an error if all relevant resources have
//! already been reclaimed"), so an unknown id is success.

use crius_proto::{StopPodSandboxRequest, StopPodSandboxResponse};

use crate::Cri;
use crate::cri::detached;
use crate::error::Error;

impl Cri {
    pub(crate) async fn stop_pod_sandbox(
        &self,
        req: StopPodSandboxRequest,
    ) -> Result<StopPodSandboxResponse, Error> {
        // Containers do not exist yet; their stop hook goes here.
        let sandboxes = self.sandboxes.clone();
        detached(async move { Ok(sandboxes.stop(&req.pod_sandbox_id).await?) }).await?;
        Ok(StopPodSandboxResponse {})
    }
}
