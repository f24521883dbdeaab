//! `ListPodSandboxMetrics`: cAdvisor-style metrics of every ready pod and
//! its containers, read when asked (see `metrics.rs`).

use crius_proto::{ListPodSandboxMetricsRequest, ListPodSandboxMetricsResponse};

use std::collections::HashMap;

use crius_proto::PodSandboxStats;

use super::metrics::{ContainerExtra, Extra, pod_metrics};
use super::pod_sandbox_stats::sandbox_stats_and_interfaces;
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
            sandboxes
                .iter()
                .map(|s| {
                    let (stats, interfaces) = sandbox_stats_and_interfaces(&containers, s);
                    let extra = Extra {
                        interfaces,
                        containers: container_extras(&containers, &stats),
                    };
                    pod_metrics(&stats, &extra, now)
                })
                .collect()
        })
        .await
        .map_err(|_| Error::Aborted)?;
        Ok(ListPodSandboxMetricsResponse { pod_metrics })
    }
}

/// Per container of the pod's stats: what its metrics add to them.
fn container_extras(
    containers: &container::ContainerManager,
    stats: &PodSandboxStats,
) -> HashMap<String, ContainerExtra> {
    let listed = stats.linux.iter().flat_map(|l| &l.containers);
    listed
        .filter_map(|s| {
            let c = containers.get(&s.attributes.as_ref()?.id).ok()?;
            let cgroups = containers.cgroups();
            let fs_capacity = s
                .writable_layer
                .as_ref()
                .and_then(|l| l.fs_id.as_ref())
                .and_then(|f| container::stats::filesystem_capacity(f.mountpoint.as_ref()));
            let extra = ContainerExtra {
                image: c.meta.image.clone(),
                detail: cgroups.detail(&c.meta.cgroups_path),
                open_files: cgroups.open_files(&c.meta.cgroups_path),
                started_at: c.status().started_at,
                fs_capacity,
            };
            Some((c.meta.id.clone(), extra))
        })
        .collect()
}
