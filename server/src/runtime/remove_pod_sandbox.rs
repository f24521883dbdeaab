//! `RemovePodSandbox`: stops if needed, removes the pod's containers,
//! unpins the namespaces and deletes every trace of the sandbox. Idempotent
//! like Stop (api.proto: "must not return an error if the sandbox has
//! already been removed").

use std::sync::Arc;

use crius_proto::{RemovePodSandboxRequest, RemovePodSandboxResponse};
use pod_sandbox::BoxError;

use crate::Cri;
use crate::cri::detached;
use crate::error::Error;

impl Cri {
    pub(crate) async fn remove_pod_sandbox(
        &self,
        req: RemovePodSandboxRequest,
    ) -> Result<RemovePodSandboxResponse, Error> {
        let sandboxes = self.sandboxes.clone();
        let containers = self.containers.clone();
        detached(async move {
            let remove =
                |sandbox: Arc<pod_sandbox::Sandbox>| remove_containers(containers, sandbox);
            Ok(sandboxes.remove_with(&req.pod_sandbox_id, remove).await?)
        })
        .await?;
        Ok(RemovePodSandboxResponse {})
    }
}

async fn remove_containers(
    containers: Arc<container::ContainerManager>,
    sandbox: Arc<pod_sandbox::Sandbox>,
) -> Result<(), BoxError> {
    for id in containers.containers_of_sandbox(sandbox.id()) {
        containers.remove(&id).await?;
    }
    Ok(())
}
