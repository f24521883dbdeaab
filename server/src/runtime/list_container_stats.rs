//! `ListContainerStats`: stats of the running and created containers,
//! filtered by id prefix, sandbox id prefix and label selector.

use crius_proto::{ListContainerStatsRequest, ListContainerStatsResponse};

use crate::Cri;
use crate::error::Error;

impl Cri {
    pub(crate) async fn list_container_stats(
        &self,
        req: ListContainerStatsRequest,
    ) -> Result<ListContainerStatsResponse, Error> {
        let containers = self.containers.clone();
        // File reads and the upper-dir walk are blocking work.
        let stats = tokio::task::spawn_blocking(move || containers.list_stats(req.filter.as_ref()))
            .await
            .map_err(|_| Error::Aborted)?;
        Ok(ListContainerStatsResponse { stats })
    }
}
