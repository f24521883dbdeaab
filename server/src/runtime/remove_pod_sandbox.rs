//! `RemovePodSandbox`: stops if needed, unpins the namespaces and deletes
//! every trace of the sandbox. Idempotent like Stop (api.proto: "must not
//! return an error if the sandbox has already been removed").

use crius_proto::{RemovePodSandboxRequest, RemovePodSandboxResponse};

use crate::Cri;
use crate::cri::detached;
use crate::error::Error;

impl Cri {
    pub(crate) async fn remove_pod_sandbox(
        &self,
        req: RemovePodSandboxRequest,
    ) -> Result<RemovePodSandboxResponse, Error> {
        let sandboxes = self.sandboxes.clone();
        detached(async move { Ok(sandboxes.remove(&req.pod_sandbox_id).await?) }).await?;
        Ok(RemovePodSandboxResponse {})
    }
}
