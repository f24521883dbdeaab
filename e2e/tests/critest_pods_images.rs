//! What the CRI validation suite (critest, kubernetes-sigs/cri-tools
//! `pkg/validate`) sends and asserts for runtime info, pod sandboxes,
//! networking, images, image identifiers and idempotence, replayed against
//! the real daemon. Each test names the critest specs it mirrors; images
//! critest pulls from gcr.io map to the local test registry
//! (hack/test-registry.sh). docs/critest.md has the full spec table.
//!
//! Needs `eval "$(hack/test-registry.sh up)"` first.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crius_e2e::pods::{
    BridgeNet, container_config, create, create_and_start, daemon, exec, image, metric_descriptors,
    metrics_of_pod, remove_pod, run_pod, run_pod_config, run_pod_with, status, stop_pod, teardown,
};
use crius_e2e::{Daemon, Dirs};
use crius_proto::image_service_client::ImageServiceClient;
use crius_proto::runtime_service_client::RuntimeServiceClient;
use crius_proto::*;
use tonic::Code;
use tonic::codegen::http;
use tonic::transport::Channel;

/// An id nothing has, shaped like the UUIDs critest makes up.
const MISSING_ID: &str = "5b0a4e3c-8f0e-4a57-9d8b-6a1f3c2e7d90";

fn spec(image: &str) -> Option<ImageSpec> {
    Some(ImageSpec {
        image: image.to_owned(),
        ..Default::default()
    })
}

async fn pull(client: &mut ImageServiceClient<Channel>, name: &str) -> String {
    client
        .pull_image(PullImageRequest {
            image: spec(name),
            ..Default::default()
        })
        .await
        .unwrap_or_else(|e| panic!("pull {name}: {e}"))
        .into_inner()
        .image_ref
}

async fn image_status(client: &mut ImageServiceClient<Channel>, name: &str) -> Option<Image> {
    client
        .image_status(ImageStatusRequest {
            image: spec(name),
            verbose: false,
        })
        .await
        .unwrap_or_else(|e| panic!("image status {name}: {e}"))
        .into_inner()
        .image
}

/// critest's `removeImage`: look the image up, remove it by id if present.
async fn remove_by_id(client: &mut ImageServiceClient<Channel>, name: &str) {
    if let Some(img) = image_status(client, name).await {
        client
            .remove_image(RemoveImageRequest {
                image: spec(&img.id),
            })
            .await
            .unwrap_or_else(|e| panic!("remove {}: {e}", img.id));
    }
}

async fn list_images(client: &mut ImageServiceClient<Channel>) -> Vec<Image> {
    client
        .list_images(ListImagesRequest::default())
        .await
        .expect("list images")
        .into_inner()
        .images
}

/// critest's pod metadata for `name`.
fn metadata(name: &str) -> Option<PodSandboxMetadata> {
    Some(PodSandboxMetadata {
        name: name.into(),
        uid: format!("cri-test-uid-{name}"),
        namespace: format!("cri-test-namespace-{name}"),
        attempt: 0,
    })
}

async fn pod_status(client: &mut RuntimeServiceClient<Channel>, id: &str) -> PodSandboxStatus {
    client
        .pod_sandbox_status(PodSandboxStatusRequest {
            pod_sandbox_id: id.into(),
            verbose: false,
        })
        .await
        .expect("pod sandbox status")
        .into_inner()
        .status
        .expect("status present")
}

async fn list_pods_by_id(client: &mut RuntimeServiceClient<Channel>, id: &str) -> Vec<PodSandbox> {
    client
        .list_pod_sandbox(ListPodSandboxRequest {
            filter: Some(PodSandboxFilter {
                id: id.into(),
                ..Default::default()
            }),
        })
        .await
        .expect("list pod sandbox")
        .into_inner()
        .items
}

async fn remove_container(client: &mut RuntimeServiceClient<Channel>, id: &str) {
    client
        .remove_container(RemoveContainerRequest {
            container_id: id.into(),
        })
        .await
        .unwrap_or_else(|e| panic!("remove container {id}: {e}"));
}

/// Runs `cmd` in the container; asserts exit 0 and an empty stderr as
/// critest's checks do, and returns stdout.
async fn exec_ok(client: &mut RuntimeServiceClient<Channel>, id: &str, cmd: &[&str]) -> String {
    let out = exec(client, id, cmd, 10)
        .await
        .unwrap_or_else(|e| panic!("exec {cmd:?}: {e}"));
    assert_eq!(out.exit_code, 0, "{cmd:?}: {out:?}");
    assert!(out.stderr.is_empty(), "{cmd:?} stderr: {out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

// ------------------------------------------------------------ runtime info

/// critest "Runtime info": "runtime should return version info" and
/// "runtime should return runtime conditions" (also status.go).
#[tokio::test]
async fn runtime_info_version_and_ready_conditions() {
    let daemon = daemon(&[]).await;
    let mut client = daemon.runtime().await;
    // critest asks with its own API version string, "0.1.0".
    let version = client
        .version(VersionRequest {
            version: "0.1.0".into(),
        })
        .await
        .expect("version")
        .into_inner();
    for (field, value) in [
        ("version", &version.version),
        ("runtime_name", &version.runtime_name),
        ("runtime_version", &version.runtime_version),
        ("runtime_api_version", &version.runtime_api_version),
    ] {
        assert!(!value.is_empty(), "{field} is empty: {version:?}");
    }
    let status = client
        .status(StatusRequest { verbose: false })
        .await
        .expect("status")
        .into_inner()
        .status
        .expect("runtime status");
    for wanted in ["RuntimeReady", "NetworkReady"] {
        assert!(
            status
                .conditions
                .iter()
                .any(|c| c.r#type == wanted && c.status),
            "{wanted} not true: {status:?}"
        );
    }
}

// ------------------------------------------------------------- pod sandbox

/// critest "PodSandbox": "runtime should support running PodSandbox",
/// "... stopping PodSandbox", "... removing PodSandbox"; and "Idempotence"
/// "StopPodSandbox should not return an error if already stopped" / "if not
/// found", "RemovePodSandbox should not return an error if not found".
#[tokio::test]
async fn pod_sandbox_run_stop_remove_and_idempotence() {
    let daemon = daemon(&[]).await;
    let mut client = daemon.runtime().await;
    let pod = run_pod(&daemon, "PodSandbox-for-create-test").await;

    assert_eq!(
        pod_status(&mut client, &pod.id).await.state,
        PodSandboxState::SandboxReady as i32
    );
    let listed = list_pods_by_id(&mut client, &pod.id).await;
    assert!(listed.iter().any(|p| p.id == pod.id), "{listed:?}");

    // Stopped twice: both succeed and the pod is NotReady.
    for _ in 0..2 {
        stop_pod(&mut client, &pod.id).await;
        assert_eq!(
            pod_status(&mut client, &pod.id).await.state,
            PodSandboxState::SandboxNotready as i32
        );
    }
    remove_pod(&mut client, &pod.id).await;
    let listed = list_pods_by_id(&mut client, &pod.id).await;
    assert!(!listed.iter().any(|p| p.id == pod.id), "{listed:?}");

    // Objects that never existed: Stop and Remove succeed.
    stop_pod(&mut client, MISSING_ID).await;
    remove_pod(&mut client, MISSING_ID).await;
    teardown(&daemon, &pod).await;
}

/// critest "PodSandbox": "runtime should support preserving PodSandbox
/// attributes": metadata, labels and annotations come back unchanged from
/// PodSandboxStatus and from ListPodSandbox filtered by id.
#[tokio::test]
async fn pod_sandbox_attributes_are_preserved() {
    let daemon = daemon(&[]).await;
    let mut client = daemon.runtime().await;
    let name = "PodSandbox-with-attributes-6a1f";
    let metadata = PodSandboxMetadata {
        name: name.into(),
        uid: "cri-test-uid-6a1f".into(),
        namespace: "cri-test-namespace-6a1f".into(),
        attempt: 0,
    };
    let labels: HashMap<String, String> = [
        ("foo", "bar"),
        ("io.kubernetes.pod.name", name),
        ("io.kubernetes.pod.namespace", "cri-test-namespace-6a1f"),
        ("io.kubernetes.pod.uid", "cri-test-uid-6a1f"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let annotations: HashMap<String, String> = [("abc".to_string(), "def".to_string())].into();
    let config = PodSandboxConfig {
        metadata: Some(metadata.clone()),
        labels: labels.clone(),
        annotations: annotations.clone(),
        linux: Some(LinuxPodSandboxConfig::default()),
        ..Default::default()
    };
    let pod = run_pod_config(&daemon, config).await;
    let id = pod.id.clone();

    let subset = |have: &HashMap<String, String>, want: &HashMap<String, String>| {
        for (k, v) in want {
            assert_eq!(have.get(k), Some(v), "{k} in {have:?}");
        }
    };
    let status = pod_status(&mut client, &id).await;
    assert_eq!(status.metadata.as_ref(), Some(&metadata));
    subset(&status.labels, &labels);
    subset(&status.annotations, &annotations);

    let listed = list_pods_by_id(&mut client, &id).await;
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0].metadata.as_ref(), Some(&metadata));
    subset(&listed[0].labels, &labels);
    subset(&listed[0].annotations, &annotations);

    teardown(&daemon, &pod).await;
}

/// The metric names critest's pod.go expects (kubelet with CRI-O and
/// cAdvisor), minus those it lists as not yet implemented by all runtimes.
const EXPECTED_METRICS: &[&str] = &[
    "container_blkio_device_usage_total",
    "container_cpu_cfs_periods_total",
    "container_cpu_cfs_throttled_periods_total",
    "container_cpu_cfs_throttled_seconds_total",
    "container_cpu_system_seconds_total",
    "container_cpu_usage_seconds_total",
    "container_cpu_user_seconds_total",
    "container_file_descriptors",
    "container_fs_inodes_free",
    "container_fs_inodes_total",
    "container_fs_limit_bytes",
    "container_fs_reads_bytes_total",
    "container_fs_reads_total",
    "container_fs_usage_bytes",
    "container_fs_writes_bytes_total",
    "container_fs_writes_total",
    "container_last_seen",
    "container_memory_cache",
    "container_memory_failcnt",
    "container_memory_failures_total",
    "container_memory_kernel_usage",
    "container_memory_mapped_file",
    "container_memory_max_usage_bytes",
    "container_memory_rss",
    "container_memory_swap",
    "container_memory_usage_bytes",
    "container_memory_working_set_bytes",
    "container_network_receive_bytes_total",
    "container_network_receive_errors_total",
    "container_network_receive_packets_dropped_total",
    "container_network_receive_packets_total",
    "container_network_transmit_bytes_total",
    "container_network_transmit_errors_total",
    "container_network_transmit_packets_dropped_total",
    "container_network_transmit_packets_total",
    "container_oom_events_total",
    "container_processes",
    "container_sockets",
    "container_spec_cpu_period",
    "container_spec_cpu_shares",
    "container_spec_memory_limit_bytes",
    "container_spec_memory_swap_limit_bytes",
    "container_start_time_seconds",
    "container_threads",
    "container_threads_max",
];

/// Metrics critest lets be absent from ListPodSandboxMetrics (blkio
/// accounting depends on the disk under the overlay).
const OPTIONAL_METRIC_VALUES: &[&str] = &[
    "container_blkio_device_usage_total",
    "container_fs_reads_bytes_total",
    "container_fs_reads_total",
    "container_fs_writes_bytes_total",
    "container_fs_writes_total",
];

/// critest "PodSandbox": "runtime should support returning metrics
/// descriptors" and "runtime should support listing pod sandbox metrics".
#[tokio::test]
async fn metric_descriptors_and_pod_sandbox_metrics_cover_critest_names() {
    let daemon = daemon(&["busybox"]).await;
    let mut client = daemon.runtime().await;
    let descriptors = metric_descriptors(&mut client).await;
    for d in &descriptors {
        assert!(!d.help.is_empty(), "{} has no help", d.name);
        assert!(!d.label_keys.is_empty(), "{} has no label keys", d.name);
    }
    let missing: Vec<&&str> = EXPECTED_METRICS
        .iter()
        .filter(|name| !descriptors.iter().any(|d| d.name == **name))
        .collect();
    assert!(missing.is_empty(), "descriptors missing: {missing:?}");

    let pod = run_pod(&daemon, "metrics-pod").await;
    let mut config = container_config("container-for-metrics", "busybox", &["top"]);
    config.linux = Some(LinuxContainerConfig {
        resources: Some(LinuxContainerResources {
            cpu_period: 100_000,
            cpu_quota: 20_000,
            cpu_shares: 1024,
            memory_limit_in_bytes: 64 << 20,
            memory_swap_limit_in_bytes: 64 << 20,
            ..Default::default()
        }),
        ..Default::default()
    });
    let id = create_and_start(&mut client, &pod, config).await;
    exec_ok(
        &mut client,
        &id,
        &[
            "/bin/sh",
            "-c",
            "mkdir -p /var/lib/mydisktest && for i in $(seq 1 10); do echo hi >> /var/lib/mydisktest/inode_test_file_$i; done; sync",
        ],
    )
    .await;

    let pod_metrics = metrics_of_pod(&mut client, &pod.id).await;
    // As critest: the label values of the first sample of each name.
    let mut found: HashMap<&str, &[String]> = HashMap::new();
    let samples = pod_metrics.metrics.iter().chain(
        pod_metrics
            .container_metrics
            .iter()
            .flat_map(|c| &c.metrics),
    );
    for m in samples {
        let entry = found.entry(m.name.as_str()).or_default();
        if entry.is_empty() {
            *entry = &m.label_values;
        }
    }
    let missing: Vec<&&str> = EXPECTED_METRICS
        .iter()
        .filter(|n| !OPTIONAL_METRIC_VALUES.contains(n))
        .filter(|n| found.get(**n).is_none_or(|v| v.is_empty()))
        .collect();
    assert!(missing.is_empty(), "pod metrics missing: {missing:?}");
    let mismatched: Vec<&str> = descriptors
        .iter()
        .filter(|d| !OPTIONAL_METRIC_VALUES.contains(&d.name.as_str()))
        .filter(|d| {
            found
                .get(d.name.as_str())
                .is_none_or(|v| v.len() != d.label_keys.len())
        })
        .map(|d| d.name.as_str())
        .collect();
    assert!(
        mismatched.is_empty(),
        "described but absent, or labels differ: {mismatched:?}"
    );
    teardown(&daemon, &pod).await;
}

/// critest "PodSandbox": "should support unsafe sysctls" (fs.mqueue.msg_max).
/// "should support safe sysctls" (kernel.shm_rmid_forced) is
/// security.rs `pod_sysctls_are_seen_by_its_containers`.
#[tokio::test]
async fn unsafe_sysctl_is_set_in_the_pod() {
    let daemon = daemon(&["busybox"]).await;
    let pod = run_pod_with(
        &daemon,
        "pod-sandbox-with-sysctls",
        Some(LinuxPodSandboxConfig {
            sysctls: [("fs.mqueue.msg_max".to_string(), "100".to_string())].into(),
            ..Default::default()
        }),
    )
    .await;
    let mut client = daemon.runtime().await;
    let id = create_and_start(
        &mut client,
        &pod,
        container_config("container-fs-mqueue-msg-max", "busybox", &["top"]),
    )
    .await;
    let value = exec_ok(&mut client, &id, &["cat", "/proc/sys/fs/mqueue/msg_max"]).await;
    assert_eq!(value.trim(), "100");
    teardown(&daemon, &pod).await;
}

// -------------------------------------------------------------- networking

/// critest "Networking": "runtime should support DNS config" and "runtime
/// should support set hostname".
#[tokio::test]
async fn dns_config_and_hostname_reach_the_container() {
    let daemon = daemon(&["busybox"]).await;
    let mut client = daemon.runtime().await;
    let config = PodSandboxConfig {
        metadata: metadata("create-PodSandbox-with-DNS-config"),
        hostname: "test-hostname".into(),
        dns_config: Some(DnsConfig {
            servers: vec!["10.10.10.10".into()],
            searches: vec!["google.com".into()],
            options: vec!["ndots:8".into()],
        }),
        linux: Some(LinuxPodSandboxConfig::default()),
        ..Default::default()
    };
    let pod = run_pod_config(&daemon, config).await;
    let id = create_and_start(
        &mut client,
        &pod,
        container_config("container-for-DNS-config-test", "busybox", &["top"]),
    )
    .await;
    let resolv = exec_ok(&mut client, &id, &["cat", "/etc/resolv.conf"]).await;
    for line in [
        "nameserver 10.10.10.10",
        "search google.com",
        "options ndots:8",
    ] {
        assert!(resolv.contains(line), "{line:?} not in {resolv:?}");
    }
    let hostname = exec_ok(&mut client, &id, &["hostname"]).await;
    assert!(
        hostname.trim().eq_ignore_ascii_case("test-hostname"),
        "{hostname:?}"
    );
    teardown(&daemon, &pod).await;
}

// ------------------------------------------------------------------ images

/// critest "Image Manager": "public image with tag should be pulled and
/// removed", "... without tag ...", "... with digest ...", and "image status
/// should support all kinds of references". critest's gcr.io test images
/// are the local registry's busybox.
#[tokio::test]
async fn images_pulled_by_tag_without_tag_and_by_digest_then_removed() {
    let daemon = daemon(&[]).await;
    let mut client = daemon.images().await;

    let with_tag = image("busybox:1.0");
    let without_tag = image("busybox");
    let id = pull(&mut client, &with_tag).await;
    let img = image_status(&mut client, &with_tag)
        .await
        .expect("status after pull by tag");
    assert_eq!(img.id, id);
    assert!(img.size > 0, "{img:?}");
    assert_eq!(img.repo_tags, std::slice::from_ref(&with_tag));
    let digest_ref = img
        .repo_digests
        .first()
        .cloned()
        .expect("a repo digest after pull");

    // All kinds of references give the same status.
    for reference in [id.clone(), digest_ref.clone()] {
        assert_eq!(
            image_status(&mut client, &reference).await.as_ref(),
            Some(&img),
            "status by {reference}"
        );
    }
    remove_by_id(&mut client, &with_tag).await;
    assert_eq!(image_status(&mut client, &with_tag).await, None);

    pull(&mut client, &without_tag).await;
    let img = image_status(&mut client, &without_tag)
        .await
        .expect("status after pull without tag");
    assert_eq!(img.repo_tags, [format!("{without_tag}:latest")]);
    remove_by_id(&mut client, &without_tag).await;
    assert_eq!(image_status(&mut client, &without_tag).await, None);

    pull(&mut client, &digest_ref).await;
    let img = image_status(&mut client, &digest_ref)
        .await
        .expect("status after pull by digest");
    assert!(img.repo_tags.is_empty(), "{img:?}");
    assert_eq!(img.repo_digests, std::slice::from_ref(&digest_ref));
    remove_by_id(&mut client, &digest_ref).await;
    assert_eq!(image_status(&mut client, &digest_ref).await, None);
}

/// critest "Image Manager": "public image should timeout if requested": a
/// pull whose deadline (1ms) passes answers DeadlineExceeded, not the
/// Cancelled tonic's server would say. Over a bare HTTP/2 connection:
/// tonic's Channel would end the call itself at the deadline (calling it
/// Cancelled), and what counts here is the daemon's own answer.
#[tokio::test]
async fn pull_past_its_deadline_is_deadline_exceeded() {
    let daemon = daemon(&[]).await;
    let stream = tokio::net::UnixStream::connect(daemon.dirs.socket())
        .await
        .expect("connect");
    let (send, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(stream),
    )
    .await
    .expect("http2 handshake");
    tokio::spawn(conn);
    let origin = "http://localhost".parse().unwrap();
    let mut client = ImageServiceClient::with_origin(Http2(send), origin);
    let mut request = tonic::Request::new(PullImageRequest {
        image: spec(&image("busybox-large")),
        ..Default::default()
    });
    request.set_timeout(Duration::from_millis(1));
    let err = client
        .pull_image(request)
        .await
        .expect_err("a 1ms pull succeeded");
    assert_eq!(err.code(), Code::DeadlineExceeded, "{err:?}");
}

/// A gRPC transport with no deadline handling of its own.
#[derive(Clone)]
struct Http2(hyper::client::conn::http2::SendRequest<tonic::body::Body>);

impl tower::Service<http::Request<tonic::body::Body>> for Http2 {
    type Response = http::Response<hyper::body::Incoming>;
    type Error = hyper::Error;
    type Future = std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<Self::Response, hyper::Error>> + Send>,
    >;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), hyper::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<tonic::body::Body>) -> Self::Future {
        Box::pin(self.0.send_request(req))
    }
}

/// critest "Image Manager": "image status get image fields should not have
/// Uid|Username empty", the "Username only" case (busybox-user runs as
/// `tester`); the other cases are unit-tested in server/src/image/mod.rs.
#[tokio::test]
async fn image_status_reports_the_image_user() {
    let daemon = daemon(&[]).await;
    let mut client = daemon.images().await;
    let name = image("busybox-user");
    pull(&mut client, &name).await;
    let img = image_status(&mut client, &name).await.expect("status");
    assert_eq!(img.username, "tester");
    assert_eq!(img.uid.map(|u| u.value).unwrap_or(0), 0, "{img:?}");
    remove_by_id(&mut client, &name).await;
}

/// critest "Image Manager": "listImage should get exactly 3 image in the
/// result list" (three names, three images, one tag each) and "listImage
/// should get exactly 3 repoTags in the result image" (three names of one
/// image: two tags here and the same image from the auth registry), which is
/// also "Image Identifier Consistency": "should return the same image
/// identifier when pulled from different registries".
#[tokio::test]
async fn list_images_by_tag_and_same_image_under_three_names() {
    let daemon = daemon(&[]).await;
    let mut client = daemon.images().await;

    let different = [
        image("busybox"),
        image("busybox-user"),
        image("busybox-entrypoint"),
    ];
    let mut ids = Vec::new();
    for name in &different {
        ids.push(pull(&mut client, name).await);
    }
    let mut unique = ids.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), 3, "{ids:?}");
    let images = list_images(&mut client).await;
    for (id, name) in ids.iter().zip(&different) {
        let img = images.iter().find(|i| &i.id == id).expect("listed");
        assert_eq!(img.repo_tags, [format!("{name}:latest")]);
    }
    for name in &different {
        remove_by_id(&mut client, name).await;
    }

    let auth_registry = std::env::var("CRIUS_TEST_AUTH_REGISTRY")
        .expect("CRIUS_TEST_AUTH_REGISTRY is not set: run hack/test-registry.sh up");
    let same = [
        image("busybox:latest"),
        image("busybox:1.0"),
        format!("{auth_registry}/busybox:latest"),
    ];
    let mut ids = Vec::new();
    for name in &same[..2] {
        ids.push(pull(&mut client, name).await);
    }
    let auth = AuthConfig {
        username: std::env::var("CRIUS_TEST_AUTH_USER").expect("CRIUS_TEST_AUTH_USER"),
        password: std::env::var("CRIUS_TEST_AUTH_PASSWORD").expect("CRIUS_TEST_AUTH_PASSWORD"),
        ..Default::default()
    };
    ids.push(
        client
            .pull_image(PullImageRequest {
                image: spec(&same[2]),
                auth: Some(auth),
                sandbox_config: None,
            })
            .await
            .expect("pull from the auth registry")
            .into_inner()
            .image_ref,
    );
    assert!(ids.iter().all(|id| *id == ids[0]), "{ids:?}");
    for name in &same {
        assert_eq!(
            image_status(&mut client, name).await.map(|i| i.id),
            Some(ids[0].clone()),
            "{name}"
        );
    }
    let images = list_images(&mut client).await;
    let img = images.iter().find(|i| i.id == ids[0]).expect("listed");
    let mut tags = img.repo_tags.clone();
    tags.sort();
    let mut want = same.to_vec();
    want.sort();
    assert_eq!(tags, want);
    remove_by_id(&mut client, &same[0]).await;
    assert!(list_images(&mut client).await.is_empty());
}

/// critest "Image Consistency": "should list and get image status
/// immediately after pulling", "should not list or get image status
/// immediately after removal" and "should not fail on simultaneous
/// RemoveImage calls" (five removals by id at once all succeed and each
/// sees the image gone).
#[tokio::test]
async fn image_consistency_after_pull_remove_and_concurrent_removes() {
    let daemon = daemon(&[]).await;
    let mut client = daemon.images().await;
    let name = image("busybox:1.0");
    let listed = |images: &[Image]| images.iter().any(|i| i.repo_tags.contains(&name));

    pull(&mut client, &name).await;
    assert!(listed(&list_images(&mut client).await));
    assert!(image_status(&mut client, &name).await.is_some());
    remove_by_id(&mut client, &name).await;
    assert!(!listed(&list_images(&mut client).await));
    assert_eq!(image_status(&mut client, &name).await, None);

    let id = pull(&mut client, &name).await;
    let mut tasks = Vec::new();
    for _ in 0..5 {
        let mut client = daemon.images().await;
        let id = id.clone();
        tasks.push(tokio::spawn(async move {
            let removed = client
                .remove_image(RemoveImageRequest { image: spec(&id) })
                .await;
            let after = image_status(&mut client, &id).await;
            (removed.map(|_| ()), after)
        }));
    }
    for task in tasks {
        let (removed, after) = task.await.unwrap();
        removed.expect("concurrent RemoveImage");
        assert_eq!(after, None, "image still there after RemoveImage returned");
    }
    assert_eq!(image_status(&mut client, &id).await, None);
}

/// critest "Image Identifier Consistency": "should return the same image
/// identifier across all APIs": PullImageResponse.image_ref, Image.id,
/// ContainerStatus.image_id and Container.image_id agree for a container
/// created from the image_ref with the user's name beside it. critest then
/// removes the still running container before stopping the pod.
#[tokio::test]
async fn image_identifier_is_the_same_across_apis() {
    let daemon = daemon(&[]).await;
    let mut images = daemon.images().await;
    let name = image("busybox-entrypoint:latest");
    let image_ref = pull(&mut images, &name).await;
    assert!(!image_ref.is_empty());
    let img = image_status(&mut images, &name).await.expect("status");
    assert_eq!(img.id, image_ref);

    let pod = run_pod(&daemon, "id-consistency").await;
    let mut client = daemon.runtime().await;
    let mut config = container_config("id-consistency", "busybox-entrypoint", &[]);
    config.image = Some(ImageSpec {
        image: image_ref.clone(),
        user_specified_image: name.clone(),
        ..Default::default()
    });
    let id = create_and_start(&mut client, &pod, config).await;
    let st = status(&mut client, &id).await;
    assert_eq!(st.image_id, image_ref, "{st:?}");
    let listed = client
        .list_containers(ListContainersRequest {
            filter: Some(ContainerFilter {
                id: id.clone(),
                ..Default::default()
            }),
        })
        .await
        .expect("list containers")
        .into_inner()
        .containers;
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0].image_id, image_ref);

    remove_container(&mut client, &id).await;
    teardown(&daemon, &pod).await;
    remove_by_id(&mut images, &name).await;
}

// ------------------------------------------------------------- idempotence

/// critest "Idempotence": "StopContainer should not return an error if not
/// found" / "if already stopped" (which stops, then removes twice),
/// "RemoveContainer should not return an error if not found" and
/// "RemoveImage should not return an error if not found" (an id of 64
/// zeros, twice).
#[tokio::test]
async fn stop_and_remove_of_missing_or_gone_objects_succeed() {
    let daemon = daemon(&["busybox"]).await;
    let mut client = daemon.runtime().await;
    client
        .stop_container(StopContainerRequest {
            container_id: MISSING_ID.into(),
            timeout: 0,
        })
        .await
        .expect("stop missing container");
    remove_container(&mut client, MISSING_ID).await;
    let mut images = daemon.images().await;
    for _ in 0..2 {
        images
            .remove_image(RemoveImageRequest {
                image: spec(&"0".repeat(64)),
            })
            .await
            .expect("remove missing image");
    }

    let pod = run_pod(&daemon, "idempotence-pod").await;
    let id = create_and_start(
        &mut client,
        &pod,
        container_config("idempotence-container", "busybox", &["sh", "-c", "top"]),
    )
    .await;
    client
        .stop_container(StopContainerRequest {
            container_id: id.clone(),
            timeout: 10,
        })
        .await
        .expect("stop container");
    assert_eq!(
        status(&mut client, &id).await.state,
        ContainerState::ContainerExited as i32
    );
    remove_container(&mut client, &id).await;
    remove_container(&mut client, &id).await;
    let err = create(
        &mut client,
        &pod,
        container_config("idempotence-container", "missing-image", &["true"]),
    )
    .await
    .expect_err("create from an image never pulled");
    assert_eq!(err.code(), Code::NotFound, "{err:?}");
    teardown(&daemon, &pod).await;
}

// ----------------------------------------------------- port mapping (bridge)

/// critest "Networking": "runtime should support port mapping with only
/// container port" (the pod IP from PodSandboxStatus serves on port 80) and
/// "... with host port and container port" (127.0.0.1:<host port> reaches
/// the same server), over a bridge + portmap network on 10.88.40.0/24.
#[tokio::test]
async fn port_mapping_reaches_a_web_server_by_pod_ip_and_host_port() {
    let dirs = Dirs::new();
    let net = BridgeNet::new(&dirs, 40);
    let daemon = Daemon::start_with(dirs.clone(), &["--cni-plugin-dir", "/usr/lib/cni"]).await;
    let mut images = daemon.images().await;
    pull(&mut images, &image("busybox")).await;
    let mut client = daemon.runtime().await;

    let host_port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let config = PodSandboxConfig {
        metadata: metadata("create-PodSandbox-with-port-mapping"),
        port_mappings: vec![PortMapping {
            protocol: Protocol::Tcp as i32,
            container_port: 80,
            host_port: host_port.into(),
            host_ip: String::new(),
        }],
        linux: Some(LinuxPodSandboxConfig::default()),
        ..Default::default()
    };
    let pod = run_pod_config(&daemon, config).await;
    create_and_start(
        &mut client,
        &pod,
        container_config(
            "container-for-port-mapping",
            "busybox",
            &[
                "sh",
                "-c",
                "mkdir -p /www && echo critest > /www/index.html && exec httpd -f -p 80 -h /www",
            ],
        ),
    )
    .await;
    let ip = pod_status(&mut client, &pod.id)
        .await
        .network
        .map(|n| n.ip)
        .unwrap_or_default();
    assert!(ip.starts_with(&net.prefix()), "pod ip {ip:?}");
    for addr in [format!("{ip}:80"), format!("127.0.0.1:{host_port}")] {
        let page = http_get(&addr).await;
        assert!(
            page.starts_with("HTTP/1.0 200") || page.starts_with("HTTP/1.1 200"),
            "{addr}: {page}"
        );
        assert!(page.contains("critest"), "{addr}: {page}");
    }
    teardown(&daemon, &pod).await;
    drop(daemon);
    net.assert_clean();
}

/// GET / from `addr`, retried for up to a minute as critest does.
async fn http_get(addr: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let attempt = async {
            let mut stream = tokio::net::TcpStream::connect(addr).await?;
            stream
                .write_all(b"GET / HTTP/1.0\r\nHost: critest\r\n\r\n")
                .await?;
            let mut out = Vec::new();
            stream.read_to_end(&mut out).await?;
            std::io::Result::Ok(String::from_utf8_lossy(&out).into_owned())
        };
        match tokio::time::timeout(Duration::from_secs(5), attempt).await {
            Ok(Ok(page)) if !page.is_empty() => return page,
            other => assert!(Instant::now() < deadline, "GET {addr}: {other:?}"),
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
