//! `StopContainer`: the image's STOPSIGNAL (else SIGTERM), SIGKILL after the
//! timeout. Idempotent: the CRI says stopping an already stopped (or, as
//! CRI-O and containerd read it, a missing) container must succeed.

use crius_proto::{StopContainerRequest, StopContainerResponse};

use crate::Cri;
use crate::cri::detached;
use crate::error::Error;

impl Cri {
    pub(crate) async fn stop_container(
        &self,
        req: StopContainerRequest,
    ) -> Result<StopContainerResponse, Error> {
        let containers = self.containers.clone();
        detached(async move { Ok(containers.stop(&req.container_id, req.timeout).await?) }).await?;
        Ok(StopContainerResponse {})
    }
}
