//! `PodSandboxStats`: the pod cgroup's CPU and memory (the sum of its
//! containers when it has no cgroup parent), network counters per interface
//! read inside the pod's network namespace, process count and the stats of
//! each container. Unknown id -> NotFound.

use container::manager::{cpu_usage, memory_usage, u64v};
use container::stats::{CgroupUsage, InterfaceUsage, MemoryUsage};
use crius_proto::{
    LinuxPodSandboxStats, NetworkInterfaceUsage, NetworkUsage, PodSandboxAttributes,
    PodSandboxStats, PodSandboxStatsRequest, PodSandboxStatsResponse, ProcessUsage,
};
use pod_sandbox::Sandbox;

use super::pod_sandbox_status::metadata;
use crate::Cri;
use crate::error::Error;

/// The interface kubelet treats as the pod's own.
const DEFAULT_INTERFACE: &str = "eth0";

impl Cri {
    pub(crate) async fn pod_sandbox_stats(
        &self,
        req: PodSandboxStatsRequest,
    ) -> Result<PodSandboxStatsResponse, Error> {
        let sandbox = self.sandboxes.get(&req.pod_sandbox_id)?;
        let containers = self.containers.clone();
        let stats = tokio::task::spawn_blocking(move || sandbox_stats(&containers, &sandbox))
            .await
            .map_err(|_| Error::Aborted)?;
        Ok(PodSandboxStatsResponse { stats: Some(stats) })
    }
}

pub(super) fn sandbox_stats(
    containers: &container::ContainerManager,
    sandbox: &Sandbox,
) -> PodSandboxStats {
    sandbox_stats_and_interfaces(containers, sandbox).0
}

/// The pod's stats and, in full, the interface counters they summarize.
pub(super) fn sandbox_stats_and_interfaces(
    containers: &container::ContainerManager,
    sandbox: &Sandbox,
) -> (PodSandboxStats, Vec<InterfaceUsage>) {
    let spec = sandbox.spec();
    let now = container::manager::now_nanos();
    let filter = crius_proto::ContainerStatsFilter {
        pod_sandbox_id: sandbox.id().to_string(),
        ..Default::default()
    };
    let ctr_stats = containers.list_stats(Some(&filter));
    let usage = if spec.cgroup_parent.is_empty() {
        // No pod cgroup: the pod is the sum of its containers.
        let mut sum = CgroupUsage::default();
        for id in containers.containers_of_sandbox(sandbox.id()) {
            let Ok(c) = containers.get(&id) else { continue };
            add(&mut sum, &containers.cgroups().usage(&c.meta.cgroups_path));
        }
        sum
    } else {
        containers.cgroups().usage(&spec.cgroup_parent)
    };
    let interfaces = spec
        .netns
        .as_deref()
        .filter(|p| p.exists())
        .and_then(container::stats::net_dev_of_netns);
    let network = interfaces.clone().map(|ifaces| network_usage(now, ifaces));
    let stats = PodSandboxStats {
        attributes: Some(PodSandboxAttributes {
            id: sandbox.id().to_string(),
            metadata: Some(metadata(sandbox)),
            labels: spec.labels.clone(),
            annotations: spec.annotations.clone(),
        }),
        linux: Some(LinuxPodSandboxStats {
            cpu: Some(cpu_usage(
                containers.cpu_samples(),
                &format!("pod:{}", sandbox.id()),
                now,
                usage.cpu_usage_ns,
                spec.created_at,
            )),
            memory: Some(memory_usage(now, usage.memory.as_ref())),
            network,
            process: Some(ProcessUsage {
                timestamp: now,
                process_count: usage.pids.map(u64v),
            }),
            containers: ctr_stats,
        }),
        windows: None,
    };
    (stats, interfaces.unwrap_or_default())
}

fn add(sum: &mut CgroupUsage, u: &CgroupUsage) {
    fn plus(a: Option<u64>, b: Option<u64>) -> Option<u64> {
        match (a, b) {
            (None, None) => None,
            (a, b) => Some(a.unwrap_or(0) + b.unwrap_or(0)),
        }
    }
    sum.cpu_usage_ns = plus(sum.cpu_usage_ns, u.cpu_usage_ns);
    sum.pids = plus(sum.pids, u.pids);
    if let Some(m) = &u.memory {
        let s = sum.memory.get_or_insert_with(MemoryUsage::default);
        s.usage += m.usage;
        s.working_set += m.working_set;
        s.rss += m.rss;
        s.page_faults += m.page_faults;
        s.major_page_faults += m.major_page_faults;
    }
}

fn network_usage(now: i64, ifaces: Vec<InterfaceUsage>) -> NetworkUsage {
    let to_cri = |i: &InterfaceUsage| NetworkInterfaceUsage {
        name: i.name.clone(),
        rx_bytes: Some(u64v(i.rx_bytes)),
        rx_errors: Some(u64v(i.rx_errors)),
        tx_bytes: Some(u64v(i.tx_bytes)),
        tx_errors: Some(u64v(i.tx_errors)),
    };
    let default = ifaces
        .iter()
        .find(|i| i.name == DEFAULT_INTERFACE)
        .or_else(|| ifaces.iter().find(|i| i.name != "lo"))
        .map(to_cri);
    NetworkUsage {
        timestamp: now,
        default_interface: default,
        interfaces: ifaces.iter().map(to_cri).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_interface_is_eth0_else_first_non_loopback() {
        let i = |n: &str| InterfaceUsage {
            name: n.into(),
            rx_bytes: 1,
            ..Default::default()
        };
        let n = network_usage(1, vec![i("lo"), i("net1"), i("eth0")]);
        assert_eq!(n.default_interface.unwrap().name, "eth0");
        assert_eq!(n.interfaces.len(), 3);
        let n = network_usage(1, vec![i("lo"), i("net1")]);
        assert_eq!(n.default_interface.unwrap().name, "net1");
        assert!(network_usage(1, vec![i("lo")]).default_interface.is_none());
    }

    #[test]
    fn sums_container_usage() {
        let mut s = CgroupUsage::default();
        let u = CgroupUsage {
            cpu_usage_ns: Some(5),
            memory: Some(MemoryUsage {
                usage: 10,
                working_set: 8,
                ..Default::default()
            }),
            pids: Some(2),
            swap: None,
        };
        add(&mut s, &u);
        add(&mut s, &u);
        add(&mut s, &CgroupUsage::default());
        assert_eq!(s.cpu_usage_ns, Some(10));
        assert_eq!(s.pids, Some(4));
        assert_eq!(s.memory.unwrap().working_set, 16);
    }
}
