//! `StartContainer`: `runc start` on a created container.

use crius_proto::{StartContainerRequest, StartContainerResponse};

use crate::Cri;
use crate::error::Error;

impl Cri {
    pub(crate) async fn start_container(
        &self,
        req: StartContainerRequest,
    ) -> Result<StartContainerResponse, Error> {
        self.containers.start(&req.container_id).await?;
        Ok(StartContainerResponse {})
    }
}
