//! `UpdateContainerResources`: CPU and memory limits changed live with
//! `runc update` (in-place pod resize), then reported by ContainerStatus.

use crius_proto::{UpdateContainerResourcesRequest, UpdateContainerResourcesResponse};

use crate::Cri;
use crate::error::Error;

impl Cri {
    pub(crate) async fn update_container_resources(
        &self,
        req: UpdateContainerResourcesRequest,
    ) -> Result<UpdateContainerResourcesResponse, Error> {
        let linux = req.linux.ok_or(Error::InvalidArgument {
            what: "request",
            message: "linux resources are required".to_string(),
        })?;
        self.containers
            .update_resources(&req.container_id, &linux)
            .await?;
        Ok(UpdateContainerResourcesResponse {})
    }
}
