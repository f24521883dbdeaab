//! `RuntimeConfig`: the cgroup driver the kubelet must match.

use crius_proto::{
    CgroupDriver, LinuxRuntimeConfiguration, RuntimeConfigRequest, RuntimeConfigResponse,
};

use crate::Cri;
use crate::config::CgroupManager;
use crate::error::Error;

impl Cri {
    pub(crate) async fn runtime_config(
        &self,
        _req: RuntimeConfigRequest,
    ) -> Result<RuntimeConfigResponse, Error> {
        let driver = match self.config.runtime.cgroup_manager {
            CgroupManager::Cgroupfs => CgroupDriver::Cgroupfs,
            CgroupManager::Systemd => CgroupDriver::Systemd,
        };
        Ok(RuntimeConfigResponse {
            linux: Some(LinuxRuntimeConfiguration {
                cgroup_driver: driver as i32,
            }),
        })
    }
}
