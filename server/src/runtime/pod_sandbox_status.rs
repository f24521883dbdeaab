//! `PodSandboxStatus`: what the store knows, without waiting for any
//! operation in progress on the sandbox. Unknown id -> NotFound.

use std::collections::HashMap;

use crius_proto::{
    LinuxPodSandboxStatus, Namespace, NamespaceOption, PodIp, PodSandboxMetadata,
    PodSandboxNetworkStatus, PodSandboxState, PodSandboxStatus, PodSandboxStatusRequest,
    PodSandboxStatusResponse,
};
use pod_sandbox::{Sandbox, State};

use crate::Cri;
use crate::error::Error;

impl Cri {
    pub(crate) async fn pod_sandbox_status(
        &self,
        req: PodSandboxStatusRequest,
    ) -> Result<PodSandboxStatusResponse, Error> {
        let sandbox = self.sandboxes.get(&req.pod_sandbox_id)?;
        let mut info = HashMap::new();
        if req.verbose {
            info.insert("info".to_string(), verbose_info(&sandbox));
        }
        Ok(PodSandboxStatusResponse {
            status: Some(sandbox_status(&sandbox)),
            info,
            ..Default::default()
        })
    }
}

/// The CRI status of one sandbox (also sent with container events).
pub(crate) fn sandbox_status(sandbox: &Sandbox) -> PodSandboxStatus {
    let spec = sandbox.spec();
    let status = sandbox.status();
    let mut ips = status.ips.iter();
    let network = PodSandboxNetworkStatus {
        ip: ips.next().cloned().unwrap_or_default(),
        additional_ips: ips.map(|ip| PodIp { ip: ip.clone() }).collect(),
    };
    PodSandboxStatus {
        id: sandbox.id().to_string(),
        metadata: Some(metadata(sandbox)),
        state: cri_state(status.state),
        created_at: spec.created_at,
        network: Some(network),
        linux: Some(LinuxPodSandboxStatus {
            namespaces: Some(Namespace {
                options: Some(NamespaceOption {
                    network: spec.namespaces.network.to_cri(),
                    pid: spec.namespaces.pid.to_cri(),
                    ipc: spec.namespaces.ipc.to_cri(),
                    target_id: spec.namespaces.target_id.clone(),
                    ..Default::default()
                }),
            }),
        }),
        labels: spec.labels.clone(),
        annotations: spec.annotations.clone(),
        runtime_handler: spec.runtime_handler.clone(),
    }
}

pub(super) fn metadata(sandbox: &Sandbox) -> PodSandboxMetadata {
    let meta = &sandbox.spec().metadata;
    PodSandboxMetadata {
        name: meta.name.clone(),
        uid: meta.uid.clone(),
        namespace: meta.namespace.clone(),
        attempt: meta.attempt,
    }
}

/// A sandbox being created is not ready yet (and is never listed anyway).
pub(super) fn cri_state(state: State) -> i32 {
    match state {
        State::Ready => PodSandboxState::SandboxReady as i32,
        State::Creating | State::NotReady => PodSandboxState::SandboxNotready as i32,
    }
}

/// `crictl inspectp`'s "info": the pinned namespaces, pod files, infra
/// process and CNI result, as JSON.
fn verbose_info(sandbox: &Sandbox) -> String {
    let spec = sandbox.spec();
    let status = sandbox.status();
    serde_json::json!({
        "id": sandbox.id(),
        "state": status.state,
        "namespaces": {
            "network": spec.netns,
            "ipc": spec.ipcns,
            "uts": spec.utsns,
            "pid": sandbox.pidns(),
        },
        "infraPid": status.infra.map(|i| i.pid),
        "hostname": spec.hostname,
        "files": spec.files,
        "cgroupParent": spec.cgroup_parent,
        "logDirectory": spec.log_directory,
        "sysctls": spec.sysctls,
        "portMappings": spec.port_mappings,
        "cniNetwork": status.cni_network,
        "cniResult": status.cni_result,
    })
    .to_string()
}
