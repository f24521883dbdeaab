//! `RunPodSandbox`: pinned namespaces, per-pod files and the CNI network.

use crius_proto::{ContainerEventType, RunPodSandboxRequest, RunPodSandboxResponse};

use crate::Cri;
use crate::cri::detached;
use crate::error::Error;
use crate::runtime::sandbox_status;

impl Cri {
    pub(crate) async fn run_pod_sandbox(
        &self,
        req: RunPodSandboxRequest,
    ) -> Result<RunPodSandboxResponse, Error> {
        let config = req.config.ok_or(Error::InvalidArgument {
            what: "RunPodSandboxRequest",
            message: "config is missing".into(),
        })?;
        let sandboxes = self.sandboxes.clone();
        let events = self.events.clone();
        let sandbox = detached(async move {
            let sandbox = sandboxes.run(&config, &req.runtime_handler).await?;
            let status = sandbox_status(&sandbox);
            events.sandbox_event(status.clone(), ContainerEventType::ContainerCreatedEvent);
            events.sandbox_event(status, ContainerEventType::ContainerStartedEvent);
            Ok(sandbox)
        })
        .await?;
        tracing::info!(id = sandbox.id(), name = %sandbox.spec().metadata.reserved_name(), "pod sandbox ready");
        Ok(RunPodSandboxResponse {
            pod_sandbox_id: sandbox.id().to_string(),
        })
    }
}
