//! `ListPodSandboxStats`: stats of the ready pods, filtered by id prefix and
//! label selector.

use crius_proto::{ListPodSandboxStatsRequest, ListPodSandboxStatsResponse};

use super::pod_sandbox_stats::sandbox_stats;
use crate::Cri;
use crate::error::Error;

impl Cri {
    pub(crate) async fn list_pod_sandbox_stats(
        &self,
        req: ListPodSandboxStatsRequest,
    ) -> Result<ListPodSandboxStatsResponse, Error> {
        let filter = req.filter.unwrap_or_default();
        let sandboxes: Vec<_> = self
            .sandboxes
            .list()
            .into_iter()
            .filter(|s| s.status().state == pod_sandbox::State::Ready)
            .filter(|s| s.id().starts_with(&filter.id))
            .filter(|s| {
                filter
                    .label_selector
                    .iter()
                    .all(|(k, v)| s.spec().labels.get(k) == Some(v))
            })
            .collect();
        let containers = self.containers.clone();
        let stats = tokio::task::spawn_blocking(move || {
            sandboxes
                .iter()
                .map(|s| sandbox_stats(&containers, s))
                .collect()
        })
        .await
        .map_err(|_| Error::Aborted)?;
        Ok(ListPodSandboxStatsResponse { stats })
    }
}
