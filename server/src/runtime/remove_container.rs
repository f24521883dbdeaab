//! `RemoveContainer`: kills if running, `runc delete`, unmounts the rootfs
//! and removes every trace. Idempotent (api.proto: "must not return an
//! error if the container has already been removed").

use crius_proto::{RemoveContainerRequest, RemoveContainerResponse};

use crate::Cri;
use crate::cri::detached;
use crate::error::Error;

impl Cri {
    pub(crate) async fn remove_container(
        &self,
        req: RemoveContainerRequest,
    ) -> Result<RemoveContainerResponse, Error> {
        let containers = self.containers.clone();
        detached(async move {
            match containers.remove(&req.container_id).await {
                Err(container::Error::NotFound(_)) => Ok(()),
                other => Ok(other?),
            }
        })
        .await?;
        Ok(RemoveContainerResponse {})
    }
}
