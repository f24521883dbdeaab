//! Container lifecycle benchmark over CRI (issues 5 and 6): in one pod,
//! N times CreateContainer (busybox `sleep 1000`) + StartContainer +
//! StopContainer (timeout 0) + RemoveContainer, one container at a time,
//! with median and p95 per call and for the whole lifecycle; then K
//! containers running at once and the latency of ListContainerStats over
//! them. Reports the runtime's RSS and that of its helper processes (conmon,
//! shims) with one and with K containers running.
//!
//! The runtime is chosen as in `sandbox-bench` (crius started here from
//! `$CRIUS_BIN`, or `--socket PATH --pid PID`; see `crius_e2e::bench`).
//! The image, `--image REF`, defaults to `$CRIUS_TEST_REGISTRY/busybox`
//! (hack/test-registry.sh) and is pulled over CRI first. One lifecycle
//! (`--warmup`, default 1) runs before the measured ones.
//!
//! Must run as root. Prints Markdown tables. Run with `RUST_LOG=warn` so
//! that the daemon's debug log (the harness default) does not skew it.

use std::time::Duration;

use crius_e2e::bench::{
    Target, TargetArgs, latency_cells, ms, parse_flags, pss_kib, rss_kib, timed,
};
use crius_e2e::require_root;
use crius_proto::image_service_client::ImageServiceClient;
use crius_proto::runtime_service_client::RuntimeServiceClient;
use crius_proto::*;
use tonic::transport::Channel;

struct Args {
    runs: usize,
    warmup: usize,
    containers: usize,
    stats_runs: usize,
    image: Option<String>,
    target: TargetArgs,
}

fn parse_args() -> Args {
    let (mut runs, mut warmup, mut containers, mut stats_runs) = (100, 1, 100, 100);
    let mut image = None;
    let target = parse_flags(|flag, value| {
        let count = |text: String| -> usize {
            text.parse()
                .unwrap_or_else(|_| panic!("{flag} needs a number"))
        };
        match flag {
            "--runs" => runs = count(value()),
            "--warmup" => warmup = count(value()),
            "--containers" => containers = count(value()),
            "--stats-runs" => stats_runs = count(value()),
            "--image" => image = Some(value()),
            _ => return false,
        }
        true
    });
    Args {
        runs,
        warmup,
        containers,
        stats_runs,
        image,
        target,
    }
}

/// One pod and the image its containers run, as the kubelet sends them.
struct Bench {
    client: RuntimeServiceClient<Channel>,
    pod_id: String,
    pod: PodSandboxConfig,
    image: String,
}

/// Latencies of the four calls of one container lifecycle.
#[derive(Default)]
struct Lifecycle {
    create: Vec<Duration>,
    start: Vec<Duration>,
    stop: Vec<Duration>,
    remove: Vec<Duration>,
    total: Vec<Duration>,
}

impl Bench {
    async fn create_and_start(&mut self, name: &str) -> (String, Duration, Duration) {
        let config = ContainerConfig {
            metadata: Some(ContainerMetadata {
                name: name.into(),
                attempt: 0,
            }),
            image: Some(ImageSpec {
                image: self.image.clone(),
                ..Default::default()
            }),
            command: vec!["sleep".into(), "1000".into()],
            log_path: format!("{name}.log"),
            linux: Some(LinuxContainerConfig::default()),
            ..Default::default()
        };
        let (created, create) = timed(self.client.create_container(CreateContainerRequest {
            pod_sandbox_id: self.pod_id.clone(),
            config: Some(config),
            sandbox_config: Some(self.pod.clone()),
        }))
        .await;
        let id = created.into_inner().container_id;
        let (_, start) = timed(self.client.start_container(StartContainerRequest {
            container_id: id.clone(),
        }))
        .await;
        (id, create, start)
    }

    async fn stop_and_remove(&mut self, id: &str) -> (Duration, Duration) {
        let (_, stop) = timed(self.client.stop_container(StopContainerRequest {
            container_id: id.into(),
            timeout: 0,
        }))
        .await;
        let (_, remove) = timed(self.client.remove_container(RemoveContainerRequest {
            container_id: id.into(),
        }))
        .await;
        (stop, remove)
    }

    async fn lifecycle(&mut self, name: &str, into: &mut Lifecycle) {
        let (id, create, start) = self.create_and_start(name).await;
        let (stop, remove) = self.stop_and_remove(&id).await;
        into.create.push(create);
        into.start.push(start);
        into.stop.push(stop);
        into.remove.push(remove);
        into.total.push(create + start + stop + remove);
    }
}

#[tokio::main]
async fn main() {
    require_root();
    let args = parse_args();
    let image = args.image.clone().unwrap_or_else(|| {
        let registry = std::env::var("CRIUS_TEST_REGISTRY").expect(
            "--image or CRIUS_TEST_REGISTRY (eval \"$(hack/test-registry.sh up)\") is needed",
        );
        format!("{registry}/busybox")
    });
    // crius' helpers: one conmon per container, started with paths under
    // this daemon's dirs.
    let target = Target::start(args.target, |dirs| {
        vec!["conmon".into(), dirs.base.path().display().to_string()]
    })
    .await;
    let pid = target.pid;
    let idle_rss = rss_kib(pid);

    let (_, pull) = timed(ImageServiceClient::new(target.channel.clone()).pull_image(
        PullImageRequest {
            image: Some(ImageSpec {
                image: image.clone(),
                ..Default::default()
            }),
            ..Default::default()
        },
    ))
    .await;

    let log_dir = target.dirs.base.path().join("pod-logs");
    std::fs::create_dir_all(&log_dir).expect("create pod log dir");
    let pod = PodSandboxConfig {
        metadata: Some(PodSandboxMetadata {
            name: "container-bench".into(),
            uid: "uid-container-bench".into(),
            namespace: "bench".into(),
            attempt: 0,
        }),
        hostname: "container-bench".into(),
        log_directory: log_dir.display().to_string(),
        linux: Some(LinuxPodSandboxConfig::default()),
        ..Default::default()
    };
    let mut client = RuntimeServiceClient::new(target.channel.clone());
    let (ran, _) = timed(client.run_pod_sandbox(RunPodSandboxRequest {
        config: Some(pod.clone()),
        runtime_handler: String::new(),
    }))
    .await;
    let mut bench = Bench {
        client,
        pod_id: ran.into_inner().pod_sandbox_id,
        pod,
        image,
    };

    // Warm-up, and the memory with one container running.
    let mut warm = Lifecycle::default();
    for i in 0..args.warmup {
        bench.lifecycle(&format!("warmup-{i}"), &mut warm).await;
    }
    let (one, ..) = bench.create_and_start("one").await;
    let one_rss = rss_kib(pid);
    let one_helpers = target.helpers_memory();
    bench.stop_and_remove(&one).await;

    let mut measured = Lifecycle::default();
    for i in 0..args.runs {
        bench.lifecycle(&format!("bench-{i}"), &mut measured).await;
    }
    let after_rss = rss_kib(pid);

    // K containers running, then ListContainerStats over them.
    let mut ids = Vec::with_capacity(args.containers);
    for i in 0..args.containers {
        ids.push(bench.create_and_start(&format!("many-{i}")).await.0);
    }
    let many_rss = rss_kib(pid);
    let many_pss = pss_kib(pid);
    let many_helpers = target.helpers_memory();
    let mut stats = Vec::with_capacity(args.stats_runs);
    for _ in 0..args.stats_runs {
        let (resp, d) = timed(
            bench
                .client
                .list_container_stats(ListContainerStatsRequest::default()),
        )
        .await;
        let n = resp.into_inner().stats.len();
        assert_eq!(n, ids.len(), "ListContainerStats returned {n} containers");
        stats.push(d);
    }
    for id in &ids {
        bench.stop_and_remove(id).await;
    }
    timed(bench.client.stop_pod_sandbox(StopPodSandboxRequest {
        pod_sandbox_id: bench.pod_id.clone(),
    }))
    .await;
    timed(bench.client.remove_pod_sandbox(RemovePodSandboxRequest {
        pod_sandbox_id: bench.pod_id.clone(),
    }))
    .await;

    println!(
        "### {} — {} container lifecycles (busybox `sleep 1000`), {} containers for stats\n",
        target.label, args.runs, args.containers
    );
    println!("| operation | median ms | p95 ms | max ms |");
    println!("|---|---|---|---|");
    for (name, samples) in [
        ("CreateContainer", &mut measured.create),
        ("StartContainer", &mut measured.start),
        ("StopContainer (timeout 0)", &mut measured.stop),
        ("RemoveContainer", &mut measured.remove),
        ("**create+start+stop+remove**", &mut measured.total),
    ] {
        println!("| {name} | {} |", latency_cells(samples));
    }
    println!(
        "| ListContainerStats, {} running ({} calls) | {} |",
        ids.len(),
        stats.len(),
        latency_cells(&mut stats)
    );
    println!("\nPullImage (first, before the runs): {} ms\n", ms(pull));
    println!("| memory | KiB |");
    println!("|---|---|");
    println!("| daemon RSS, before the pull and the pod | {idle_rss} |");
    println!("| daemon RSS, 1 container running | {one_rss} |");
    println!(
        "| daemon RSS, after {} lifecycles | {after_rss} |",
        args.runs
    );
    println!(
        "| daemon RSS, {} containers running | {many_rss} |",
        ids.len()
    );
    println!(
        "| daemon PSS, {} containers running | {many_pss} |",
        ids.len()
    );
    for (running, helpers) in [(1, one_helpers), (ids.len(), many_helpers)] {
        if let Some((count, rss, pss)) = helpers {
            println!("| helper processes ({count}), summed RSS, {running} running | {rss} |");
            println!("| helper processes ({count}), summed PSS, {running} running | {pss} |");
        }
    }
}
