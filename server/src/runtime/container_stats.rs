//! `ContainerStats`: CPU, memory and writable-layer usage of one container,
//! read from its cgroup and overlay upper dir. Unknown id -> NotFound.

use crius_proto::{ContainerStatsRequest, ContainerStatsResponse};

use crate::Cri;
use crate::error::Error;

impl Cri {
    pub(crate) async fn container_stats(
        &self,
        req: ContainerStatsRequest,
    ) -> Result<ContainerStatsResponse, Error> {
        let containers = self.containers.clone();
        let stats = tokio::task::spawn_blocking(move || containers.stats(&req.container_id))
            .await
            .map_err(|_| Error::Aborted)??;
        Ok(ContainerStatsResponse { stats: Some(stats) })
    }
}
