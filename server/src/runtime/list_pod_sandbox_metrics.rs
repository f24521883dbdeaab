//! `ListPodSandboxMetrics`: cAdvisor-style metrics of every ready pod and
//! its containers, read when asked (see `metrics.rs`).

use crius_proto::{ListPodSandboxMetricsRequest, ListPodSandboxMetricsResponse};

use super::metrics::pod_metrics;
use super::pod_sandbox_stats::sandbox_stats;
use crate::Cri;
use crate::error::Error;

impl Cri {
    pub(crate) async fn list_pod_sandbox_metrics(
        &self,
        _req: ListPodSandboxMetricsRequest,
    ) -> Result<ListPodSandboxMetricsResponse, Error> {
        let sandboxes: Vec<_> = self
            .sandboxes
            .list()
            .into_iter()
            .filter(|s| s.status().state == pod_sandbox::State::Ready)
            .collect();
        let containers = self.containers.clone();
        let pod_metrics = tokio::task::spawn_blocking(move || {
            let now = container::manager::now_nanos();
            let image_of = |id: &str| {
                containers
                    .get(id)
                    .map(|c| c.meta.image.clone())
                    .unwrap_or_default()
            };
            sandboxes
                .iter()
                .map(|s| pod_metrics(&sandbox_stats(&containers, s), now, image_of))
                .collect()
        })
        .await
        .map_err(|_| Error::Aborted)?;
        Ok(ListPodSandboxMetricsResponse { pod_metrics })
    }
}
