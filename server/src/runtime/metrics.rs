//! The cAdvisor-style metrics behind `ListMetricDescriptors` and
//! `ListPodSandboxMetrics` (the kubelet's `PodAndContainerStatsFromCRI`
//! mode serves them on /metrics/cadvisor). They are read from the same
//! cgroup and netns counters as the CRI stats, plus what cAdvisor adds and
//! the CRI stats lack ([`Extra`]: CFS throttling, cache, limits, threads,
//! open files, block I/O, packets, filesystem capacity, start time), so
//! that the names critest expects are all there; every metric is labelled
//! `id`, `name`, `image` (for the pod itself: its id, `POD`, empty), plus
//! the keys listed per descriptor. The CRI carries integers only, so CPU
//! time is in whole seconds as the name says.

use std::collections::HashMap;

use container::stats::{CgroupDetail, InterfaceUsage};
use crius_proto::{
    ContainerMetrics, ContainerStats, CpuUsage, MemoryUsage, Metric, MetricDescriptor, MetricType,
    PodSandboxMetrics, PodSandboxStats, UInt64Value,
};

/// What the metrics need beyond the CRI stats, read by the caller: the
/// pod's interface counters in full, and per container id its cgroup
/// detail, open files and start.
#[derive(Debug, Default)]
pub(super) struct Extra {
    pub interfaces: Vec<InterfaceUsage>,
    pub containers: HashMap<String, ContainerExtra>,
}

#[derive(Debug, Default)]
pub(super) struct ContainerExtra {
    pub image: String,
    pub detail: CgroupDetail,
    /// Open file descriptors and sockets.
    pub open_files: Option<(u64, u64)>,
    /// Nanoseconds since the epoch; 0 if not started.
    pub started_at: i64,
    /// Size, inodes and free inodes of the writable layer's filesystem.
    pub fs_capacity: Option<(u64, u64, u64)>,
}

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
    Desc {
        name: "container_cpu_cfs_periods_total",
        help: "Number of elapsed enforcement period intervals.",
        extra_labels: &[],
    },
    Desc {
        name: "container_cpu_cfs_throttled_periods_total",
        help: "Number of throttled period intervals.",
        extra_labels: &[],
    },
    Desc {
        name: "container_cpu_cfs_throttled_seconds_total",
        help: "Total time duration the container has been throttled.",
        extra_labels: &[],
    },
    Desc {
        name: "container_cpu_user_seconds_total",
        help: "Cumulative user CPU time consumed in seconds.",
        extra_labels: &[],
    },
    Desc {
        name: "container_cpu_system_seconds_total",
        help: "Cumulative system CPU time consumed in seconds.",
        extra_labels: &[],
    },
    Desc {
        name: "container_memory_cache",
        help: "Number of bytes of page cache memory.",
        extra_labels: &[],
    },
    Desc {
        name: "container_memory_mapped_file",
        help: "Size of memory mapped files in bytes.",
        extra_labels: &[],
    },
    Desc {
        name: "container_memory_kernel_usage",
        help: "Size of kernel memory allocated in bytes.",
        extra_labels: &[],
    },
    Desc {
        name: "container_memory_max_usage_bytes",
        help: "Maximum memory usage recorded in bytes.",
        extra_labels: &[],
    },
    Desc {
        name: "container_memory_failcnt",
        help: "Number of memory usage hits limits.",
        extra_labels: &[],
    },
    Desc {
        name: "container_oom_events_total",
        help: "Count of out of memory events observed for the container.",
        extra_labels: &[],
    },
    Desc {
        name: "container_spec_cpu_period",
        help: "CPU period of the container.",
        extra_labels: &[],
    },
    Desc {
        name: "container_spec_cpu_shares",
        help: "CPU share of the container.",
        extra_labels: &[],
    },
    Desc {
        name: "container_spec_memory_limit_bytes",
        help: "Memory limit for the container.",
        extra_labels: &[],
    },
    Desc {
        name: "container_spec_memory_swap_limit_bytes",
        help: "Memory swap limit for the container.",
        extra_labels: &[],
    },
    Desc {
        name: "container_threads",
        help: "Number of threads running inside the container.",
        extra_labels: &[],
    },
    Desc {
        name: "container_threads_max",
        help: "Maximum number of threads allowed inside the container, infinity if value is zero.",
        extra_labels: &[],
    },
    Desc {
        name: "container_file_descriptors",
        help: "Number of open file descriptors for the container.",
        extra_labels: &[],
    },
    Desc {
        name: "container_sockets",
        help: "Number of open sockets for the container.",
        extra_labels: &[],
    },
    Desc {
        name: "container_start_time_seconds",
        help: "Start time of the container since unix epoch in seconds.",
        extra_labels: &[],
    },
    Desc {
        name: "container_fs_usage_bytes",
        help: "Number of bytes that are consumed by the container on this filesystem.",
        extra_labels: &["device"],
    },
    Desc {
        name: "container_fs_limit_bytes",
        help: "Number of bytes that can be consumed by the container on this filesystem.",
        extra_labels: &["device"],
    },
    Desc {
        name: "container_fs_inodes_total",
        help: "Number of Inodes.",
        extra_labels: &["device"],
    },
    Desc {
        name: "container_fs_inodes_free",
        help: "Number of available Inodes.",
        extra_labels: &["device"],
    },
    Desc {
        name: "container_blkio_device_usage_total",
        help: "Blkio device bytes usage.",
        extra_labels: &["device", "major", "minor", "operation"],
    },
    Desc {
        name: "container_fs_reads_bytes_total",
        help: "Cumulative count of bytes read.",
        extra_labels: &["device"],
    },
    Desc {
        name: "container_fs_writes_bytes_total",
        help: "Cumulative count of bytes written.",
        extra_labels: &["device"],
    },
    Desc {
        name: "container_fs_reads_total",
        help: "Cumulative count of reads completed.",
        extra_labels: &["device"],
    },
    Desc {
        name: "container_fs_writes_total",
        help: "Cumulative count of writes completed.",
        extra_labels: &["device"],
    },
    Desc {
        name: "container_network_receive_packets_total",
        help: "Cumulative count of packets received.",
        extra_labels: &["interface"],
    },
    Desc {
        name: "container_network_receive_packets_dropped_total",
        help: "Cumulative count of packets dropped while receiving.",
        extra_labels: &["interface"],
    },
    Desc {
        name: "container_network_transmit_packets_total",
        help: "Cumulative count of packets transmitted.",
        extra_labels: &["interface"],
    },
    Desc {
        name: "container_network_transmit_packets_dropped_total",
        help: "Cumulative count of packets dropped while transmitting.",
        extra_labels: &["interface"],
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

impl Sink {
    /// The cgroup counters and limits of [`CgroupDetail`].
    fn detail(&mut self, d: &CgroupDetail) {
        use MetricType::{Counter, Gauge};
        let secs = |ns: Option<u64>| ns.map(|n| n / NANOS_PER_SECOND);
        let counters = [
            ("container_cpu_cfs_periods_total", d.cfs_periods),
            (
                "container_cpu_cfs_throttled_periods_total",
                d.cfs_throttled_periods,
            ),
            (
                "container_cpu_cfs_throttled_seconds_total",
                secs(d.cfs_throttled_ns),
            ),
            ("container_cpu_user_seconds_total", secs(d.cpu_user_ns)),
            ("container_cpu_system_seconds_total", secs(d.cpu_system_ns)),
            ("container_memory_failcnt", d.memory_failcnt),
            ("container_oom_events_total", d.oom_kills),
        ];
        for (name, value) in counters {
            self.push(name, Counter, &[], value);
        }
        let gauges = [
            ("container_memory_cache", d.memory_cache),
            ("container_memory_mapped_file", d.memory_mapped_file),
            ("container_memory_kernel_usage", d.memory_kernel),
            ("container_memory_max_usage_bytes", d.memory_max_usage),
            ("container_spec_cpu_period", d.cpu_period_us),
            ("container_spec_cpu_shares", d.cpu_shares),
            ("container_spec_memory_limit_bytes", d.memory_limit),
            ("container_spec_memory_swap_limit_bytes", d.swap_limit),
            ("container_threads", d.threads),
            ("container_threads_max", d.threads_max),
        ];
        for (name, value) in gauges {
            self.push(name, Gauge, &[], value);
        }
    }
}

/// The metrics of one pod from its stats and what `extra` adds.
pub(super) fn pod_metrics(stats: &PodSandboxStats, extra: &Extra, now: i64) -> PodSandboxMetrics {
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
        for i in &extra.interfaces {
            let name = [i.name.as_str()];
            for (metric, value) in [
                ("container_network_receive_packets_total", i.rx_packets),
                (
                    "container_network_receive_packets_dropped_total",
                    i.rx_dropped,
                ),
                ("container_network_transmit_packets_total", i.tx_packets),
                (
                    "container_network_transmit_packets_dropped_total",
                    i.tx_dropped,
                ),
            ] {
                pod.push(metric, Counter, &name, Some(value));
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
            .map(|c| {
                let id = c.attributes.as_ref().map(|a| a.id.as_str()).unwrap_or("");
                let none = ContainerExtra::default();
                container_metrics_of(c, extra.containers.get(id).unwrap_or(&none), now)
            })
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
    extra: &ContainerExtra,
    now: i64,
) -> ContainerMetrics {
    let attrs = stats.attributes.clone().unwrap_or_default();
    let name = attrs.metadata.map(|m| m.name).unwrap_or_default();
    let mut sink = Sink::new(&attrs.id, &name, &extra.image, now);
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
    sink.detail(&extra.detail);
    use MetricType::{Counter, Gauge};
    if let Some((fds, sockets)) = extra.open_files {
        sink.push("container_file_descriptors", Gauge, &[], Some(fds));
        sink.push("container_sockets", Gauge, &[], Some(sockets));
    }
    sink.push(
        "container_start_time_seconds",
        Gauge,
        &[],
        u64::try_from(extra.started_at)
            .ok()
            .filter(|t| *t > 0)
            .map(|t| t / NANOS_PER_SECOND),
    );
    if let Some(layer) = &stats.writable_layer {
        let device = layer
            .fs_id
            .as_ref()
            .map(|f| f.mountpoint.as_str())
            .unwrap_or_default();
        sink.push(
            "container_fs_usage_bytes",
            Gauge,
            &[device],
            layer.used_bytes.as_ref().map(|b| b.value),
        );
        if let Some((bytes, inodes, free)) = extra.fs_capacity {
            sink.push("container_fs_limit_bytes", Gauge, &[device], Some(bytes));
            sink.push("container_fs_inodes_total", Gauge, &[device], Some(inodes));
            sink.push("container_fs_inodes_free", Gauge, &[device], Some(free));
        }
    }
    for io in &extra.detail.io {
        let (major, minor) = (io.major.to_string(), io.minor.to_string());
        let device = format!("{major}:{minor}");
        for (op, value) in [("Read", io.read_bytes), ("Write", io.write_bytes)] {
            sink.push(
                "container_blkio_device_usage_total",
                Counter,
                &[&device, &major, &minor, op],
                Some(value),
            );
        }
        let d = [device.as_str()];
        sink.push(
            "container_fs_reads_bytes_total",
            Counter,
            &d,
            Some(io.read_bytes),
        );
        sink.push(
            "container_fs_writes_bytes_total",
            Counter,
            &d,
            Some(io.write_bytes),
        );
        sink.push("container_fs_reads_total", Counter, &d, Some(io.reads));
        sink.push("container_fs_writes_total", Counter, &d, Some(io.writes));
    }
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

    /// A pod with one container `c1`, some figures left out.
    fn sample_stats() -> PodSandboxStats {
        PodSandboxStats {
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
        }
    }

    #[test]
    fn pod_stats_become_labelled_metrics_matching_their_descriptors() {
        let stats = sample_stats();
        let now = 1_700_000_000 * NANOS_PER_SECOND as i64;
        let extra = Extra {
            containers: [(
                "c1".to_string(),
                ContainerExtra {
                    image: "image-of-c1".into(),
                    ..Default::default()
                },
            )]
            .into(),
            ..Default::default()
        };
        let m = pod_metrics(&stats, &extra, now);
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

    #[test]
    fn extra_counters_cover_every_descriptor() {
        use container::stats::DeviceIo;
        use crius_proto::{FilesystemIdentifier, FilesystemUsage};
        let mut stats = sample_stats();
        let linux = stats.linux.as_mut().unwrap();
        let memory = linux.memory.as_mut().unwrap();
        memory.rss_bytes = u(1);
        memory.major_page_faults = u(1);
        let eth0 = &mut linux.network.as_mut().unwrap().interfaces[0];
        eth0.rx_errors = u(1);
        eth0.tx_errors = u(1);
        let c1 = &mut linux.containers[0];
        c1.writable_layer = Some(FilesystemUsage {
            fs_id: Some(FilesystemIdentifier {
                mountpoint: "/upper".into(),
            }),
            used_bytes: u(4096),
            ..Default::default()
        });
        c1.swap = Some(crius_proto::SwapUsage {
            swap_usage_bytes: u(0),
            ..Default::default()
        });
        let some = Some(1);
        let detail = CgroupDetail {
            cfs_periods: some,
            cfs_throttled_periods: some,
            cfs_throttled_ns: Some(2_500_000_000),
            cpu_user_ns: some,
            cpu_system_ns: some,
            cpu_period_us: Some(100_000),
            cpu_shares: Some(1024),
            memory_cache: some,
            memory_mapped_file: some,
            memory_kernel: some,
            memory_max_usage: some,
            memory_failcnt: some,
            oom_kills: some,
            memory_limit: Some(64 << 20),
            swap_limit: Some(0),
            threads: Some(3),
            threads_max: Some(0),
            io: vec![DeviceIo {
                major: 8,
                minor: 0,
                read_bytes: 10,
                ..Default::default()
            }],
        };
        let extra = Extra {
            interfaces: vec![InterfaceUsage {
                name: "eth0".into(),
                rx_packets: 5,
                ..Default::default()
            }],
            containers: [(
                "c1".to_string(),
                ContainerExtra {
                    image: "img".into(),
                    detail,
                    open_files: Some((7, 2)),
                    started_at: 1_700_000_000 * NANOS_PER_SECOND as i64,
                    fs_capacity: Some((1 << 30, 1000, 900)),
                },
            )]
            .into(),
        };
        let m = pod_metrics(&stats, &extra, 1);
        let c = &m.container_metrics[0].metrics;
        assert_eq!(
            find(
                &m.metrics,
                "container_network_receive_packets_total",
                &["eth0"]
            )
            .value,
            u(5)
        );
        assert_eq!(
            find(c, "container_cpu_cfs_throttled_seconds_total", &[]).value,
            u(2)
        );
        assert_eq!(
            find(c, "container_spec_memory_limit_bytes", &[]).value,
            u(64 << 20)
        );
        assert_eq!(find(c, "container_sockets", &[]).value, u(2));
        assert_eq!(
            find(c, "container_start_time_seconds", &[]).value,
            u(1_700_000_000)
        );
        assert_eq!(
            find(c, "container_fs_inodes_free", &["/upper"]).value,
            u(900)
        );
        assert_eq!(
            find(
                c,
                "container_blkio_device_usage_total",
                &["8:0", "8", "0", "Read"]
            )
            .value,
            u(10)
        );
        // Every descriptor is served, with as many values as label keys.
        for d in descriptors() {
            let metric = m
                .metrics
                .iter()
                .chain(c)
                .find(|x| x.name == d.name)
                .unwrap_or_else(|| panic!("{} not served", d.name));
            assert_eq!(metric.label_values.len(), d.label_keys.len(), "{}", d.name);
        }
    }
}
