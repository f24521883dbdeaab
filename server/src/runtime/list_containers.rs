//! `ListContainers`: filtered by id prefix, state, sandbox and labels.

use crius_proto::{ListContainersRequest, ListContainersResponse};

use crate::Cri;
use crate::error::Error;

impl Cri {
    pub(crate) async fn list_containers(
        &self,
        req: ListContainersRequest,
    ) -> Result<ListContainersResponse, Error> {
        Ok(ListContainersResponse {
            containers: self.containers.list(req.filter.as_ref()),
        })
    }
}
