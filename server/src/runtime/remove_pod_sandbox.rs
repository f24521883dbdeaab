//! `RemovePodSandbox`: stops if needed, removes the pod's containers,
//! unpins the namespaces and deletes every trace of the sandbox. Idempotent
//! like Stop (api.proto: "must not return an error if the sandbox has
//! already been removed").

use std::sync::Arc;

use crius_proto::{
    ContainerEventType, PodSandboxState, RemovePodSandboxRequest, RemovePodSandboxResponse,
};
use pod_sandbox::BoxError;

use crate::Cri;
use crate::cri::detached;
use crate::error::Error;
use crate::runtime::sandbox_status;

impl Cri {
    pub(crate) async fn remove_pod_sandbox(
        &self,
        req: RemovePodSandboxRequest,
    ) -> Result<RemovePodSandboxResponse, Error> {
        let sandboxes = self.sandboxes.clone();
        let containers = self.containers.clone();
        let events = self.events.clone();
        detached(async move {
            // The event carries the pod's last status: after the removal
            // there is none to read.
            let last = sandboxes.get(&req.pod_sandbox_id).ok().map(|s| {
                let mut status = sandbox_status(&s);
                status.state = PodSandboxState::SandboxNotready as i32;
                status
            });
            let remove =
                |sandbox: Arc<pod_sandbox::Sandbox>| remove_containers(containers, sandbox);
            sandboxes.remove_with(&req.pod_sandbox_id, remove).await?;
            if let Some(status) = last {
                events.sandbox_event(status, ContainerEventType::ContainerDeletedEvent);
            }
            Ok(())
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
