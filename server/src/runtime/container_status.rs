//! `ContainerStatus`: state, times, exit code and reason, image, mounts and
//! log path; `verbose` adds the pid, sandbox id and runtime spec.

use crius_proto::{ContainerStatusRequest, ContainerStatusResponse};

use crate::Cri;
use crate::error::Error;

impl Cri {
    pub(crate) async fn container_status(
        &self,
        req: ContainerStatusRequest,
    ) -> Result<ContainerStatusResponse, Error> {
        let (status, info) = self.containers.status(&req.container_id, req.verbose)?;
        Ok(ContainerStatusResponse {
            status: Some(status),
            info: info.into_iter().collect(),
        })
    }
}
