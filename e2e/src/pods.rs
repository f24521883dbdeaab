//! Pods and containers for e2e tests that drive the whole daemon: a daemon
//! with a loopback-only CNI network (or a test's own bridge network) and
//! images pulled from the local registry (hack/test-registry.sh), pods with
//! a log directory in the test's temp dir, and the CRI calls the tests
//! repeat.

use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crius_proto::runtime_service_client::RuntimeServiceClient;
use crius_proto::*;
use tonic::transport::Channel;

use crate::{Daemon, Dirs, mounts_under};

pub fn registry() -> String {
    std::env::var("CRIUS_TEST_REGISTRY").unwrap_or_else(|_| {
        panic!("CRIUS_TEST_REGISTRY is not set: run `eval \"$(hack/test-registry.sh up)\"` first")
    })
}
pub fn image(name: &str) -> String {
    format!("{}/{name}", registry())
}
/// A daemon whose CNI network is loopback only, with `images` pulled.
pub async fn daemon(images: &[&str]) -> Daemon {
    daemon_with(images, &[]).await
}

/// A daemon as [`daemon`] with extra command line flags.
pub async fn daemon_with(images: &[&str], flags: &[&str]) -> Daemon {
    let dirs = Dirs::new();
    std::fs::write(
        dirs.cni_config_dir().join("10-lo.conflist"),
        r#"{"cniVersion":"1.0.0","name":"lo-only","plugins":[{"type":"loopback"}]}"#,
    )
    .unwrap();
    daemon_in(dirs, images, flags).await
}

/// A daemon on `dirs`, whose CNI config dir the test has filled (e.g. with
/// a [`BridgeNet`]), with Debian's CNI plugins, extra `flags` and `images`
/// pulled.
pub async fn daemon_in(dirs: Arc<Dirs>, images: &[&str], flags: &[&str]) -> Daemon {
    let mut args = vec!["--cni-plugin-dir", "/usr/lib/cni"];
    args.extend_from_slice(flags);
    let daemon = Daemon::start_with(dirs, &args).await;
    let mut client = daemon.images().await;
    for name in images {
        client
            .pull_image(PullImageRequest {
                image: Some(ImageSpec {
                    image: image(name),
                    ..Default::default()
                }),
                ..Default::default()
            })
            .await
            .unwrap_or_else(|e| panic!("pull {name}: {e}\n{}", daemon.log()));
    }
    daemon
}
/// A bridge + host-local + portmap network on 10.88.<n>.0/24 on the bridge
/// `crius-crit<n>`, written into a test's CNI config dir; the bridge goes
/// when this is dropped. Each test picks an `n` no other test uses.
pub struct BridgeNet {
    pub n: u8,
}

impl BridgeNet {
    /// With the `loopback` plugin last in the chain.
    pub fn new(dirs: &Arc<Dirs>, n: u8) -> BridgeNet {
        BridgeNet::write(dirs, n, true)
    }

    /// Without the `loopback` plugin, as the conflists of Calico, Flannel
    /// and Cilium are: `lo` is up only if crius brings it up.
    pub fn without_loopback(dirs: &Arc<Dirs>, n: u8) -> BridgeNet {
        BridgeNet::write(dirs, n, false)
    }

    fn write(dirs: &Arc<Dirs>, n: u8, loopback: bool) -> BridgeNet {
        let net = BridgeNet { n };
        let mut plugins = vec![
            serde_json::json!({
                "type": "bridge",
                "bridge": net.bridge(),
                "isGateway": true,
                "ipMasq": true,
                "ipam": {
                    "type": "host-local",
                    "dataDir": dirs.base.path().join("ipam"),
                    "routes": [{"dst": "0.0.0.0/0"}],
                    "ranges": [[{"subnet": format!("10.88.{n}.0/24")}]],
                },
            }),
            serde_json::json!({"type": "portmap", "capabilities": {"portMappings": true}}),
        ];
        if loopback {
            plugins.push(serde_json::json!({"type": "loopback"}));
        }
        let conflist = serde_json::json!({
            "cniVersion": "1.0.0",
            "name": net.bridge(),
            "plugins": plugins,
        });
        std::fs::write(
            dirs.cni_config_dir().join("10-critest.conflist"),
            conflist.to_string(),
        )
        .unwrap();
        net
    }

    pub fn bridge(&self) -> String {
        format!("crius-crit{}", self.n)
    }

    pub fn prefix(&self) -> String {
        format!("10.88.{}.", self.n)
    }

    /// No veth on the bridge and no iptables rule for the subnet is left.
    pub fn assert_clean(&self) {
        let out = |program: &str, args: &[&str]| {
            let o = Command::new(program).args(args).output().unwrap();
            String::from_utf8_lossy(&o.stdout).into_owned()
        };
        let veths = out("ip", &["-o", "link", "show", "master", &self.bridge()]);
        assert!(veths.trim().is_empty(), "veths left: {veths}");
        let rules = out("iptables-save", &[]);
        let left: Vec<&str> = rules
            .lines()
            .filter(|l| l.contains(&self.prefix()))
            .collect();
        assert!(left.is_empty(), "iptables rules left: {left:#?}");
    }
}

impl Drop for BridgeNet {
    /// Deletes the bridge; after a panic also the NAT rules the bridge
    /// plugin tagged with this network's name, which a pod the test did
    /// not get to tear down leaves behind.
    fn drop(&mut self) {
        if std::thread::panicking() {
            let rules = Command::new("iptables-save")
                .args(["-t", "nat"])
                .output()
                .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
                .unwrap_or_default();
            let tag = format!("name: \\\"{}\\\"", self.bridge());
            let mut chains = Vec::new();
            for rule in rules.lines().filter(|l| l.contains(&tag)) {
                // `-A CHAIN <match> -m comment --comment "<quoted>" -j T`:
                // the comment is the one quoted part.
                let Some((head, rest)) = rule.split_once(" -m comment --comment \"") else {
                    continue;
                };
                let Some((comment, target)) = rest.rsplit_once("\" ") else {
                    continue;
                };
                let Some(spec) = head.strip_prefix("-A ") else {
                    continue;
                };
                let target: Vec<&str> = target.split_whitespace().collect();
                if let [.., "-j", chain] = target[..]
                    && chain.starts_with("CNI-")
                {
                    chains.push(chain.to_string());
                }
                let _ = Command::new("iptables")
                    .args(["-t", "nat", "-D"])
                    .args(spec.split_whitespace())
                    .args(["-m", "comment", "--comment", &comment.replace("\\\"", "\"")])
                    .args(&target)
                    .output();
            }
            for chain in chains {
                for op in ["-F", "-X"] {
                    let _ = Command::new("iptables")
                        .args(["-t", "nat", op, &chain])
                        .output();
                }
            }
        }
        let _ = Command::new("ip")
            .args(["link", "del", &self.bridge()])
            .output();
    }
}

/// A running pod with a log directory in the test's temp dir.
pub struct Pod {
    pub id: String,
    pub config: PodSandboxConfig,
    pub log_dir: PathBuf,
}
pub async fn run_pod(daemon: &Daemon, name: &str) -> Pod {
    run_pod_with(daemon, name, None).await
}
/// A running pod as [`run_pod`] with the given Linux pod config (namespace
/// modes, sysctls, cgroup parent).
pub async fn run_pod_with(
    daemon: &Daemon,
    name: &str,
    linux: Option<LinuxPodSandboxConfig>,
) -> Pod {
    let config = PodSandboxConfig {
        metadata: Some(PodSandboxMetadata {
            name: name.into(),
            uid: format!("uid-{name}"),
            namespace: "e2e".into(),
            attempt: 0,
        }),
        hostname: name.into(),
        linux,
        ..Default::default()
    };
    run_pod_config(daemon, config).await
}
/// A running pod from a config the test wrote itself; its log directory is
/// set to one in the test's temp dir, named after the pod.
pub async fn run_pod_config(daemon: &Daemon, mut config: PodSandboxConfig) -> Pod {
    let name = config
        .metadata
        .as_ref()
        .map(|m| m.name.clone())
        .unwrap_or_default();
    let log_dir = daemon.dirs.base.path().join("pods").join(name);
    std::fs::create_dir_all(&log_dir).unwrap();
    config.log_directory = log_dir.to_string_lossy().into_owned();
    let id = daemon
        .runtime()
        .await
        .run_pod_sandbox(RunPodSandboxRequest {
            config: Some(config.clone()),
            runtime_handler: String::new(),
        })
        .await
        .unwrap_or_else(|e| panic!("run pod: {e}\n{}", daemon.log()))
        .into_inner()
        .pod_sandbox_id;
    Pod {
        id,
        config,
        log_dir,
    }
}
/// ListMetricDescriptors.
pub async fn metric_descriptors(
    client: &mut RuntimeServiceClient<Channel>,
) -> Vec<MetricDescriptor> {
    client
        .list_metric_descriptors(ListMetricDescriptorsRequest {})
        .await
        .expect("ListMetricDescriptors")
        .into_inner()
        .descriptors
}
/// The ListPodSandboxMetrics entry of the pod `id`.
pub async fn metrics_of_pod(
    client: &mut RuntimeServiceClient<Channel>,
    id: &str,
) -> PodSandboxMetrics {
    client
        .list_pod_sandbox_metrics(ListPodSandboxMetricsRequest {})
        .await
        .expect("ListPodSandboxMetrics")
        .into_inner()
        .pod_metrics
        .into_iter()
        .find(|m| m.pod_sandbox_id == id)
        .unwrap_or_else(|| panic!("no metrics of pod {id}"))
}
pub fn container_config(name: &str, image_name: &str, command: &[&str]) -> ContainerConfig {
    ContainerConfig {
        metadata: Some(ContainerMetadata {
            name: name.into(),
            attempt: 0,
        }),
        image: Some(ImageSpec {
            image: image(image_name),
            ..Default::default()
        }),
        command: command.iter().map(|s| s.to_string()).collect(),
        log_path: format!("{name}.log"),
        ..Default::default()
    }
}
pub async fn create(
    client: &mut RuntimeServiceClient<Channel>,
    pod: &Pod,
    config: ContainerConfig,
) -> Result<String, tonic::Status> {
    client
        .create_container(CreateContainerRequest {
            pod_sandbox_id: pod.id.clone(),
            config: Some(config),
            sandbox_config: Some(pod.config.clone()),
        })
        .await
        .map(|r| r.into_inner().container_id)
}
pub async fn create_and_start(
    client: &mut RuntimeServiceClient<Channel>,
    pod: &Pod,
    config: ContainerConfig,
) -> String {
    let id = create(client, pod, config).await.expect("create container");
    client
        .start_container(StartContainerRequest {
            container_id: id.clone(),
        })
        .await
        .expect("start container");
    id
}
pub async fn status(client: &mut RuntimeServiceClient<Channel>, id: &str) -> ContainerStatus {
    client
        .container_status(ContainerStatusRequest {
            container_id: id.into(),
            verbose: false,
        })
        .await
        .expect("container status")
        .into_inner()
        .status
        .expect("status present")
}
/// Polls ContainerStatus until the container is in state `want`; fails
/// the test if it is not there within `within`.
pub async fn wait_state(
    client: &mut RuntimeServiceClient<Channel>,
    id: &str,
    want: ContainerState,
    within: Duration,
) -> ContainerStatus {
    let deadline = Instant::now() + within;
    loop {
        let st = status(client, id).await;
        if st.state == want as i32 {
            return st;
        }
        assert!(
            Instant::now() < deadline,
            "container {id} never reached {want:?} within {within:?}: {st:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
pub async fn exec(
    client: &mut RuntimeServiceClient<Channel>,
    id: &str,
    cmd: &[&str],
    timeout: i64,
) -> Result<ExecSyncResponse, tonic::Status> {
    client
        .exec_sync(ExecSyncRequest {
            container_id: id.into(),
            cmd: cmd.iter().map(|s| s.to_string()).collect(),
            timeout,
        })
        .await
        .map(|r| r.into_inner())
}
/// StopPodSandbox, which must succeed.
pub async fn stop_pod(client: &mut RuntimeServiceClient<Channel>, id: &str) {
    client
        .stop_pod_sandbox(StopPodSandboxRequest {
            pod_sandbox_id: id.into(),
        })
        .await
        .unwrap_or_else(|e| panic!("stop pod {id}: {e}"));
}
/// RemovePodSandbox, which must succeed.
pub async fn remove_pod(client: &mut RuntimeServiceClient<Channel>, id: &str) {
    client
        .remove_pod_sandbox(RemovePodSandboxRequest {
            pod_sandbox_id: id.into(),
        })
        .await
        .unwrap_or_else(|e| panic!("remove pod {id}: {e}"));
}
/// Stops and removes the pod and checks no container and nothing mounted
/// is left in the whole daemon.
pub async fn teardown(daemon: &Daemon, pod: &Pod) {
    let mut client = daemon.runtime().await;
    stop_pod(&mut client, &pod.id).await;
    remove_pod(&mut client, &pod.id).await;
    let left = client
        .list_containers(ListContainersRequest::default())
        .await
        .unwrap()
        .into_inner()
        .containers;
    assert!(
        left.is_empty(),
        "containers left after pod removal: {left:?}"
    );
    let mounts = mounts_under(daemon.dirs.base.path());
    assert!(mounts.is_empty(), "mounts left: {mounts:?}");
}

/// Runs a container that allocates 128 MiB under a 16 MiB memory limit and
/// returns its status once it has exited (the kernel's OOM killer ends it).
pub async fn run_memory_hog(
    client: &mut RuntimeServiceClient<Channel>,
    pod: &Pod,
) -> ContainerStatus {
    let mut c = container_config(
        "hog",
        "busybox",
        &[
            "sh",
            "-c",
            "a=$(dd if=/dev/zero bs=1M count=128 2>/dev/null | tr '\\0' x); sleep 60",
        ],
    );
    c.linux = Some(LinuxContainerConfig {
        resources: Some(LinuxContainerResources {
            memory_limit_in_bytes: 16 << 20,
            ..Default::default()
        }),
        security_context: None,
    });
    let id = create_and_start(client, pod, c).await;
    wait_state(
        client,
        &id,
        ContainerState::ContainerExited,
        Duration::from_secs(30),
    )
    .await
}
