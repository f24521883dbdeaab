//! `StopPodSandbox`: stops the pod's containers, tears the network down and
//! stops the infra process.
//!
//! The CRI says StopPodSandbox must be idempotent and succeed for a sandbox
//! that is already gone (api.proto: "If there are any running containers in
//! the sandbox, they must be forcibly terminated ... This call is
//! idempotent, and must not return an error if all relevant resources have
//! already been reclaimed"), so an unknown id is success.

use std::sync::Arc;

use crius_proto::{ContainerEventType, StopPodSandboxRequest, StopPodSandboxResponse};
use pod_sandbox::BoxError;

use crate::Cri;
use crate::cri::detached;
use crate::error::Error;
use crate::runtime::sandbox_status;

impl Cri {
    pub(crate) async fn stop_pod_sandbox(
        &self,
        req: StopPodSandboxRequest,
    ) -> Result<StopPodSandboxResponse, Error> {
        let sandboxes = self.sandboxes.clone();
        let containers = self.containers.clone();
        let events = self.events.clone();
        detached(async move {
            let was_ready = sandboxes
                .get(&req.pod_sandbox_id)
                .is_ok_and(|s| s.status().state == pod_sandbox::State::Ready);
            let stop = |sandbox: Arc<pod_sandbox::Sandbox>| stop_containers(containers, sandbox);
            sandboxes.stop_with(&req.pod_sandbox_id, stop).await?;
            if was_ready && let Ok(sandbox) = sandboxes.get(&req.pod_sandbox_id) {
                events.sandbox_event(
                    sandbox_status(&sandbox),
                    ContainerEventType::ContainerStoppedEvent,
                );
            }
            Ok(())
        })
        .await?;
        Ok(StopPodSandboxResponse {})
    }
}

/// "Forcibly terminated": no grace period, the kubelet already gave one.
pub(crate) async fn stop_containers(
    containers: Arc<container::ContainerManager>,
    sandbox: Arc<pod_sandbox::Sandbox>,
) -> Result<(), BoxError> {
    for id in containers.containers_of_sandbox(sandbox.id()) {
        containers.stop(&id, 0).await?;
    }
    Ok(())
}
