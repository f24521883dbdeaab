//! The cAdvisor-style metrics behind `ListMetricDescriptors` and
//! `ListPodSandboxMetrics` (the kubelet's `PodAndContainerStatsFromCRI`
//! mode serves them on /metrics/cadvisor). They are read from the same
//! cgroup and netns counters as the CRI stats; every metric is labelled
//! `id`, `name`, `image` (for the pod itself: its id, `POD`, empty), plus
//! the keys listed per descriptor. The CRI carries integers only, so CPU
//! time is in whole seconds as the name says.

use crius_proto::{
    ContainerMetrics, ContainerStats, CpuUsage, MemoryUsage, Metric, MetricDescriptor, MetricType,
    PodSandboxMetrics, PodSandboxStats, UInt64Value,
};

const BASE_LABELS: [&str; 3] = ["id", "name", "image"];
const NANOS_PER_SECOND: u64 = 1_000_000_000;

struct Desc {
    name: &'static str,
    help: &'static str,
    extra_labels: &'static [&'static str],
}

const DESCRIPTORS: &[Desc] = &[
    Desc {
        name: "container_cpu_usage_seconds_total",
        help: "Cumulative CPU time consumed in seconds.",
        extra_labels: &[],
    },
    Desc {
        name: "container_memory_usage_bytes",
        help: "Current memory usage in bytes, including all memory regardless of when it was accessed.",
        extra_labels: &[],
    },
    Desc {
        name: "container_memory_working_set_bytes",
        help: "Current working set in bytes.",
        extra_labels: &[],
    },
    Desc {
        name: "container_memory_rss",
        help: "Size of RSS in bytes.",
        extra_labels: &[],
    },
    Desc {
        name: "container_memory_failures_total",
        help: "Cumulative count of memory allocation failures.",
        extra_labels: &["failure_type", "scope"],
    },
    Desc {
        name: "container_memory_swap",
        help: "Container swap usage in bytes.",
        extra_labels: &[],
    },
    Desc {
        name: "container_network_receive_bytes_total",
        help: "Cumulative count of bytes received.",
        extra_labels: &["interface"],
    },
    Desc {
        name: "container_network_receive_errors_total",
        help: "Cumulative count of errors encountered while receiving.",
        extra_labels: &["interface"],
    },
    Desc {
        name: "container_network_transmit_bytes_total",
        help: "Cumulative count of bytes transmitted.",
        extra_labels: &["interface"],
    },
    Desc {
        name: "container_network_transmit_errors_total",
        help: "Cumulative count of errors encountered while transmitting.",
        extra_labels: &["interface"],
    },
    Desc {
        name: "container_processes",
        help: "Number of processes running inside the container.",
        extra_labels: &[],
    },
    Desc {
        name: "container_last_seen",
        help: "Last time a container was seen by the exporter, in seconds since the epoch.",
        extra_labels: &[],
    },
];

pub(super) fn descriptors() -> Vec<MetricDescriptor> {
    DESCRIPTORS
        .iter()
        .map(|d| MetricDescriptor {
            name: d.name.into(),
            help: d.help.into(),
            label_keys: BASE_LABELS
                .iter()
                .chain(d.extra_labels)
                .map(|k| k.to_string())
                .collect(),
        })
        .collect()
}

/// Collects metrics for one subject (a pod or a container).
struct Sink {
    base: [String; 3],
    now: i64,
    out: Vec<Metric>,
}

impl Sink {
    fn new(id: &str, name: &str, image: &str, now: i64) -> Sink {
        Sink {
            base: [id.into(), name.into(), image.into()],
            now,
            out: Vec::new(),
        }
    }

    fn push(&mut self, name: &'static str, kind: MetricType, extra: &[&str], value: Option<u64>) {
        let Some(value) = value else { return };
        debug_assert!(
            DESCRIPTORS
                .iter()
                .any(|d| d.name == name && d.extra_labels.len() == extra.len())
        );
        self.out.push(Metric {
            name: name.into(),
            timestamp: self.now,
            metric_type: kind as i32,
            label_values: self
                .base
                .iter()
                .cloned()
                .chain(extra.iter().map(|v| v.to_string()))
                .collect(),
            value: Some(UInt64Value { value }),
        });
    }

    fn cpu_and_memory(&mut self, cpu: Option<&CpuUsage>, memory: Option<&MemoryUsage>) {
        use MetricType::{Counter, Gauge};
        let v = |x: &Option<UInt64Value>| x.as_ref().map(|x| x.value);
        self.push(
            "container_cpu_usage_seconds_total",
            Counter,
            &[],
            cpu.and_then(|c| v(&c.usage_core_nano_seconds))
                .map(|n| n / NANOS_PER_SECOND),
        );
        if let Some(m) = memory {
            self.push(
                "container_memory_usage_bytes",
                Gauge,
                &[],
                v(&m.usage_bytes),
            );
            self.push(
                "container_memory_working_set_bytes",
                Gauge,
                &[],
                v(&m.working_set_bytes),
            );
            self.push("container_memory_rss", Gauge, &[], v(&m.rss_bytes));
            let scope = if self.base[1] == "POD" {
                "hierarchy"
            } else {
                "container"
            };
            self.push(
                "container_memory_failures_total",
                Counter,
                &["pgfault", scope],
                v(&m.page_faults),
            );
            self.push(
                "container_memory_failures_total",
                Counter,
                &["pgmajfault", scope],
                v(&m.major_page_faults),
            );
        }
        self.push(
            "container_last_seen",
            Gauge,
            &[],
            u64::try_from(self.now).ok().map(|n| n / NANOS_PER_SECOND),
        );
    }
}

/// The metrics of one pod from its stats; `image_of` names a container's
/// image.
pub(super) fn pod_metrics(
    stats: &PodSandboxStats,
    now: i64,
    image_of: impl Fn(&str) -> String,
) -> PodSandboxMetrics {
    use MetricType::{Counter, Gauge};
    let id = stats
        .attributes
        .as_ref()
        .map(|a| a.id.clone())
        .unwrap_or_default();
    let mut pod = Sink::new(&id, "POD", "", now);
    let mut container_metrics = Vec::new();
    if let Some(linux) = &stats.linux {
        pod.cpu_and_memory(linux.cpu.as_ref(), linux.memory.as_ref());
        if let Some(net) = &linux.network {
            for i in &net.interfaces {
                let v = |x: &Option<UInt64Value>| x.as_ref().map(|x| x.value);
                let name = i.name.as_str();
                pod.push(
                    "container_network_receive_bytes_total",
                    Counter,
                    &[name],
                    v(&i.rx_bytes),
                );
                pod.push(
                    "container_network_receive_errors_total",
                    Counter,
                    &[name],
                    v(&i.rx_errors),
                );
                pod.push(
                    "container_network_transmit_bytes_total",
                    Counter,
                    &[name],
                    v(&i.tx_bytes),
                );
                pod.push(
                    "container_network_transmit_errors_total",
                    Counter,
                    &[name],
                    v(&i.tx_errors),
                );
            }
        }
        pod.push(
            "container_processes",
            Gauge,
            &[],
            linux
                .process
                .as_ref()
                .and_then(|p| p.process_count.as_ref())
                .map(|c| c.value),
        );
        container_metrics = linux
            .containers
            .iter()
            .map(|c| container_metrics_of(c, now, &image_of))
            .collect();
    }
    PodSandboxMetrics {
        pod_sandbox_id: id,
        metrics: pod.out,
        container_metrics,
    }
}

fn container_metrics_of(
    stats: &ContainerStats,
    now: i64,
    image_of: &impl Fn(&str) -> String,
) -> ContainerMetrics {
    let attrs = stats.attributes.clone().unwrap_or_default();
    let name = attrs.metadata.map(|m| m.name).unwrap_or_default();
    let mut sink = Sink::new(&attrs.id, &name, &image_of(&attrs.id), now);
    sink.cpu_and_memory(stats.cpu.as_ref(), stats.memory.as_ref());
    sink.push(
        "container_memory_swap",
        MetricType::Gauge,
        &[],
        stats
            .swap
            .as_ref()
            .and_then(|s| s.swap_usage_bytes.as_ref())
            .map(|s| s.value),
    );
    ContainerMetrics {
        container_id: attrs.id,
        metrics: sink.out,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crius_proto::{
        ContainerAttributes, ContainerMetadata, LinuxPodSandboxStats, NetworkInterfaceUsage,
        NetworkUsage, PodSandboxAttributes,
    };

    fn u(value: u64) -> Option<UInt64Value> {
        Some(UInt64Value { value })
    }

    fn find<'a>(metrics: &'a [Metric], name: &str, extra: &[&str]) -> &'a Metric {
        metrics
            .iter()
            .find(|m| m.name == name && m.label_values[3..] == *extra)
            .unwrap_or_else(|| panic!("no {name} {extra:?} in {metrics:#?}"))
    }

    #[test]
    fn pod_stats_become_labelled_metrics_matching_their_descriptors() {
        let stats = PodSandboxStats {
            attributes: Some(PodSandboxAttributes {
                id: "pod1".into(),
                ..Default::default()
            }),
            linux: Some(LinuxPodSandboxStats {
                cpu: Some(CpuUsage {
                    usage_core_nano_seconds: u(3_500_000_000),
                    ..Default::default()
                }),
                memory: Some(MemoryUsage {
                    working_set_bytes: u(4096),
                    usage_bytes: u(8192),
                    page_faults: u(7),
                    ..Default::default()
                }),
                network: Some(NetworkUsage {
                    interfaces: vec![NetworkInterfaceUsage {
                        name: "eth0".into(),
                        rx_bytes: u(100),
                        tx_bytes: u(200),
                        ..Default::default()
                    }],
                    ..Default::default()
                }),
                process: Some(crius_proto::ProcessUsage {
                    process_count: u(2),
                    ..Default::default()
                }),
                containers: vec![ContainerStats {
                    attributes: Some(ContainerAttributes {
                        id: "c1".into(),
                        metadata: Some(ContainerMetadata {
                            name: "app".into(),
                            attempt: 0,
                        }),
                        ..Default::default()
                    }),
                    cpu: Some(CpuUsage {
                        usage_core_nano_seconds: u(1_999_999_999),
                        ..Default::default()
                    }),
                    ..Default::default()
                }],
            }),
            windows: None,
        };
        let now = 1_700_000_000 * NANOS_PER_SECOND as i64;
        let m = pod_metrics(&stats, now, |id| format!("image-of-{id}"));
        assert_eq!(m.pod_sandbox_id, "pod1");
        let cpu = find(&m.metrics, "container_cpu_usage_seconds_total", &[]);
        assert_eq!(cpu.value.as_ref().unwrap().value, 3);
        assert_eq!(cpu.label_values, ["pod1", "POD", ""]);
        assert_eq!(cpu.metric_type, MetricType::Counter as i32);
        assert_eq!(
            find(&m.metrics, "container_memory_working_set_bytes", &[]).value,
            u(4096)
        );
        assert_eq!(
            find(
                &m.metrics,
                "container_memory_failures_total",
                &["pgfault", "hierarchy"]
            )
            .value,
            u(7)
        );
        assert_eq!(
            find(
                &m.metrics,
                "container_network_transmit_bytes_total",
                &["eth0"]
            )
            .value,
            u(200)
        );
        assert_eq!(find(&m.metrics, "container_processes", &[]).value, u(2));
        assert_eq!(
            find(&m.metrics, "container_last_seen", &[]).value,
            u(1_700_000_000)
        );
        // Absent figures are left out rather than reported as zero.
        assert!(m.metrics.iter().all(|x| x.name != "container_memory_rss"));

        let [c] = &m.container_metrics[..] else {
            panic!("{m:?}")
        };
        assert_eq!(c.container_id, "c1");
        let cpu = find(&c.metrics, "container_cpu_usage_seconds_total", &[]);
        assert_eq!(cpu.label_values, ["c1", "app", "image-of-c1"]);
        assert_eq!(cpu.value, u(1));

        // Every metric has as many label values as its descriptor has keys.
        let descs = descriptors();
        for metric in m.metrics.iter().chain(&c.metrics) {
            let d = descs
                .iter()
                .find(|d| d.name == metric.name)
                .expect("described");
            assert_eq!(d.label_keys.len(), metric.label_values.len(), "{metric:?}");
        }
    }
}
