//! Restart recovery benchmark: for each N of `--pods` (default
//! `100,300,500`), N pods each with one running busybox `sleep`, then
//! crius is killed with SIGKILL and started again on the same dirs. It
//! measures how soon the new daemon answers Version, how soon
//! ListPodSandbox and ListContainers show all N Ready / Running, and the
//! daemon's RSS idle, with N pods, and after the recovery. Everything is
//! torn down after each N (CNI DEL for every pod, then the bridge).
//!
//! crius (`$CRIUS_BIN`, build with `cargo build --release` for real
//! numbers) runs in temp dirs with a bridge conflist on `crius-rbench0` /
//! 10.88.252.0/22 (room for 1 000 pods; no other test or bench uses it).
//! The image, `--image REF`, defaults to `$CRIUS_TEST_REGISTRY/busybox`.
//! Pods are created `--parallel P` (default 8) at a time.
//!
//! Must run as root. Prints a Markdown table. Run with `RUST_LOG=warn` so
//! that the daemon's debug log (the harness default) does not skew it.

use std::process::Command;
use std::time::{Duration, Instant};

use crius_e2e::bench::{ms, rss_kib};
use crius_e2e::{Daemon, Dirs, connect, require_root};
use crius_proto::image_service_client::ImageServiceClient;
use crius_proto::runtime_service_client::RuntimeServiceClient;
use crius_proto::*;
use futures_util::StreamExt as _;
use tonic::transport::Channel;

const BRIDGE: &str = "crius-rbench0";
const SUBNET: &str = "10.88.252.0/22";

/// How long one restart may take before the bench gives up.
const RECOVERY_TIMEOUT: Duration = Duration::from_secs(120);

struct Args {
    pods: Vec<usize>,
    parallel: usize,
    image: Option<String>,
}

fn parse_args() -> Args {
    let mut args = Args {
        pods: vec![100, 300, 500],
        parallel: 8,
        image: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().unwrap_or_else(|| panic!("{flag} needs a value"));
        match flag.as_str() {
            "--pods" => {
                args.pods = value()
                    .split(',')
                    .map(|n| n.trim().parse().expect("--pods N[,N...]"))
                    .collect()
            }
            "--parallel" => args.parallel = value().parse().expect("--parallel P"),
            "--image" => args.image = Some(value()),
            _ => panic!("unknown flag {flag}"),
        }
    }
    args
}

fn conflist(dirs: &Dirs) -> String {
    serde_json::json!({
        "cniVersion": "1.0.0",
        "name": BRIDGE,
        "plugins": [
            {
                "type": "bridge", "bridge": BRIDGE, "isGateway": true, "ipMasq": true,
                "ipam": {
                    "type": "host-local", "dataDir": dirs.base.path().join("ipam"),
                    "routes": [{"dst": "0.0.0.0/0"}],
                    "ranges": [[{"subnet": SUBNET}]]
                }
            },
            {"type": "portmap", "capabilities": {"portMappings": true}},
            {"type": "loopback"}
        ]
    })
    .to_string()
}

fn pod_config(dirs: &Dirs, i: usize) -> PodSandboxConfig {
    let log_dir = dirs.base.path().join("pod-logs").join(i.to_string());
    std::fs::create_dir_all(&log_dir).expect("create pod log dir");
    PodSandboxConfig {
        metadata: Some(PodSandboxMetadata {
            name: format!("rbench-{i}"),
            uid: format!("uid-rbench-{i}"),
            namespace: "bench".into(),
            attempt: 0,
        }),
        hostname: format!("rbench-{i}"),
        log_directory: log_dir.display().to_string(),
        linux: Some(LinuxPodSandboxConfig::default()),
        ..Default::default()
    }
}

/// RunPodSandbox + CreateContainer (`sleep 100000`) + StartContainer.
async fn run_one(mut client: RuntimeServiceClient<Channel>, pod: PodSandboxConfig, image: String) {
    let pod_id = client
        .run_pod_sandbox(RunPodSandboxRequest {
            config: Some(pod.clone()),
            runtime_handler: String::new(),
        })
        .await
        .expect("RunPodSandbox")
        .into_inner()
        .pod_sandbox_id;
    let config = ContainerConfig {
        metadata: Some(ContainerMetadata {
            name: "sleep".into(),
            attempt: 0,
        }),
        image: Some(ImageSpec {
            image,
            ..Default::default()
        }),
        command: vec!["sleep".into(), "100000".into()],
        log_path: "sleep.log".into(),
        linux: Some(LinuxContainerConfig::default()),
        ..Default::default()
    };
    let id = client
        .create_container(CreateContainerRequest {
            pod_sandbox_id: pod_id,
            config: Some(config),
            sandbox_config: Some(pod),
        })
        .await
        .expect("CreateContainer")
        .into_inner()
        .container_id;
    client
        .start_container(StartContainerRequest { container_id: id })
        .await
        .expect("StartContainer");
}

/// StopPodSandbox + RemovePodSandbox (which takes its containers along).
async fn remove_one(mut client: RuntimeServiceClient<Channel>, pod_id: String) {
    client
        .stop_pod_sandbox(StopPodSandboxRequest {
            pod_sandbox_id: pod_id.clone(),
        })
        .await
        .expect("StopPodSandbox");
    client
        .remove_pod_sandbox(RemovePodSandboxRequest {
            pod_sandbox_id: pod_id,
        })
        .await
        .expect("RemovePodSandbox");
}

/// Pods Ready and containers Running, as the lists show them.
async fn ready_counts(client: &mut RuntimeServiceClient<Channel>) -> (usize, usize) {
    let pods = client
        .list_pod_sandbox(ListPodSandboxRequest::default())
        .await
        .expect("ListPodSandbox")
        .into_inner()
        .items;
    let ctrs = client
        .list_containers(ListContainersRequest::default())
        .await
        .expect("ListContainers")
        .into_inner()
        .containers;
    (
        pods.iter()
            .filter(|p| p.state == PodSandboxState::SandboxReady as i32)
            .count(),
        ctrs.iter()
            .filter(|c| c.state == ContainerState::ContainerRunning as i32)
            .count(),
    )
}

struct Row {
    pods: usize,
    create: Duration,
    idle_rss: u64,
    loaded_rss: u64,
    answer: Duration,
    reconciled: Duration,
    recovered_rss: u64,
}

async fn measure(n: usize, parallel: usize, image: &str) -> Row {
    let dirs = Dirs::new();
    std::fs::write(
        dirs.cni_config_dir().join("10-rbench.conflist"),
        conflist(&dirs),
    )
    .expect("write bench conflist");
    let mut daemon = Daemon::start_with(dirs.clone(), &["--cni-plugin-dir", "/usr/lib/cni"]).await;
    let channel = daemon.channel().await;
    // Let the start settle (the runtime's threads, the first allocations).
    tokio::time::sleep(Duration::from_millis(500)).await;
    let idle_rss = rss_kib(daemon.pid());
    ImageServiceClient::new(channel.clone())
        .pull_image(PullImageRequest {
            image: Some(ImageSpec {
                image: image.into(),
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .expect("PullImage");

    let started = Instant::now();
    let client = RuntimeServiceClient::new(channel.clone());
    futures_util::stream::iter(0..n)
        .map(|i| run_one(client.clone(), pod_config(&dirs, i), image.to_string()))
        .buffer_unordered(parallel)
        .collect::<Vec<()>>()
        .await;
    let create = started.elapsed();
    let loaded_rss = rss_kib(daemon.pid());
    drop(client);
    drop(channel);

    daemon.stop_with(nix::sys::signal::Signal::SIGKILL);
    let spawned = Instant::now();
    daemon.respawn_no_wait();
    let deadline = spawned + RECOVERY_TIMEOUT;
    let mut client = loop {
        if let Ok(channel) = connect(&dirs.socket()).await {
            let mut client = RuntimeServiceClient::new(channel);
            if client.version(VersionRequest::default()).await.is_ok() {
                break client;
            }
        }
        assert!(
            Instant::now() < deadline,
            "crius did not answer after restart:\n{}",
            daemon.log()
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    };
    let answer = spawned.elapsed();
    loop {
        if ready_counts(&mut client).await == (n, n) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not all {n} pods and containers came back Ready/Running:\n{}",
            daemon.log()
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let reconciled = spawned.elapsed();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let recovered_rss = rss_kib(daemon.pid());

    let pod_ids: Vec<String> = client
        .list_pod_sandbox(ListPodSandboxRequest::default())
        .await
        .expect("ListPodSandbox")
        .into_inner()
        .items
        .into_iter()
        .map(|p| p.id)
        .collect();
    futures_util::stream::iter(pod_ids)
        .map(|id| remove_one(client.clone(), id))
        .buffer_unordered(parallel)
        .collect::<Vec<()>>()
        .await;
    drop(daemon);
    let _ = Command::new("ip").args(["link", "del", BRIDGE]).output();
    Row {
        pods: n,
        create,
        idle_rss,
        loaded_rss,
        answer,
        reconciled,
        recovered_rss,
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
    let mut rows = Vec::new();
    for &n in &args.pods {
        rows.push(measure(n, args.parallel, &image).await);
    }
    println!("### crius — restart recovery after SIGKILL (busybox `sleep`, one container a pod)\n");
    println!(
        "| pods | create all (s) | socket answers (ms) | all Ready/Running (ms) | RSS idle KiB | RSS at N KiB | RSS after recovery KiB |"
    );
    println!("|---|---|---|---|---|---|---|");
    for r in rows {
        println!(
            "| {} | {:.1} | {} | {} | {} | {} | {} |",
            r.pods,
            r.create.as_secs_f64(),
            ms(r.answer),
            ms(r.reconciled),
            r.idle_rss,
            r.loaded_rss,
            r.recovered_rss
        );
    }
}
