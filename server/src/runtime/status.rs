//! `Status`: RuntimeReady and NetworkReady, checked afresh on every call so
//! that a CNI config dropped in later turns the node ready without a restart.

use crius_proto::{
    RuntimeCondition, RuntimeFeatures, RuntimeHandler, RuntimeHandlerFeatures, RuntimeStatus,
    StatusRequest, StatusResponse,
};

use crate::Cri;
use crate::error::Error;

pub const RUNTIME_READY: &str = "RuntimeReady";
pub const NETWORK_READY: &str = "NetworkReady";

impl Cri {
    pub(crate) async fn status(&self, req: StatusRequest) -> Result<StatusResponse, Error> {
        let runtime = match &self.runtime_binary {
            Some(_) => condition(RUNTIME_READY, Ok(())),
            None => condition(
                RUNTIME_READY,
                Err((
                    "RuntimeBinaryNotFound",
                    format!(
                        "OCI runtime {:?} not found",
                        self.config.runtime.runtime_path
                    ),
                )),
            ),
        };
        let network = self.network_condition();
        let mut info = std::collections::HashMap::new();
        if req.verbose {
            let config =
                serde_json::to_string(&self.config).map_err(|e| Error::InvalidArgument {
                    what: "config",
                    message: e.to_string(),
                })?;
            info.insert("config".to_string(), config);
            let cidrs = self.pod_cidrs.read().unwrap_or_else(|e| e.into_inner());
            info.insert(
                "podCIDRs".to_string(),
                serde_json::Value::from(cidrs.clone()).to_string(),
            );
        }
        Ok(StatusResponse {
            status: Some(RuntimeStatus {
                conditions: vec![runtime, network],
            }),
            info,
            // SupplementalGroupsPolicy Strict is honoured and ContainerStatus
            // reports the resolved user, which is what this feature promises.
            features: Some(RuntimeFeatures {
                supplemental_groups_policy: true,
            }),
            // One handler, the default (empty name): the kubelet only sends
            // recursive read-only mounts to a handler that says it can.
            runtime_handlers: vec![RuntimeHandler {
                name: String::new(),
                features: Some(RuntimeHandlerFeatures {
                    recursive_read_only_mounts: self.containers.supports_recursive_read_only(),
                    user_namespaces: false,
                }),
            }],
        })
    }

    fn network_condition(&self) -> RuntimeCondition {
        let net = &self.config.network;
        let ready = pod_sandbox::cni::load_network(&net.cni_config_dir)
            .and_then(|list| list.check_plugins(&net.cni_plugin_dirs))
            .map_err(|e| ("NetworkPluginNotReady", crate::error::message(&e)));
        condition(NETWORK_READY, ready)
    }
}

fn condition(kind: &str, state: Result<(), (&str, String)>) -> RuntimeCondition {
    match state {
        Ok(()) => RuntimeCondition {
            r#type: kind.into(),
            status: true,
            ..Default::default()
        },
        Err((reason, message)) => RuntimeCondition {
            r#type: kind.into(),
            status: false,
            reason: reason.into(),
            message,
        },
    }
}
