//! Hostile or careless requests through the whole daemon: each must end in
//! a clear answer, bounded in time and memory, with nothing left behind
//! (no reserved name, no mount, no process, no record). See the "Requests"
//! section of docs/threat-model.md.

use std::time::{Duration, Instant};

use crius_e2e::mounts_under;
use crius_e2e::pods::*;
use crius_proto::runtime_service_client::RuntimeServiceClient;
use crius_proto::*;
use tonic::Code;
use tonic::transport::Channel;

/// The ExecSync output cap documented in docs/threat-model.md: stdout and
/// stderr together, 64 KiB under the 16 MiB gRPC message limit.
const EXEC_OUTPUT_CAP: usize = 16 * 1024 * 1024 - 64 * 1024;

/// A client that accepts replies up to 16 MiB, as the kubelet does (the
/// tonic default is 4 MiB).
async fn big_client(daemon: &crius_e2e::Daemon) -> RuntimeServiceClient<Channel> {
    daemon
        .runtime()
        .await
        .max_decoding_message_size(16 * 1024 * 1024)
}

/// Overlay mounts (container rootfs) left under the test's dirs.
fn overlays_left(daemon: &crius_e2e::Daemon) -> Vec<String> {
    let base = daemon.dirs.base.path().to_string_lossy().into_owned();
    std::fs::read_to_string("/proc/mounts")
        .unwrap()
        .lines()
        .filter(|l| l.starts_with("overlay ") && l.contains(&base))
        .map(String::from)
        .collect()
}

/// A busybox container that exits as soon as it gets SIGTERM (a shell as
/// PID 1 ignores TERM unless it traps it).
fn exits_on_term(name: &str) -> ContainerConfig {
    container_config(
        name,
        "busybox",
        &[
            "sh",
            "-c",
            "trap 'exit 0' TERM; echo ready; while true; do sleep 0.1; done",
        ],
    )
}

/// Waits until the container's log has its first line (its trap is set).
async fn wait_ready(pod: &Pod, name: &str) {
    let log = pod.log_dir.join(format!("{name}.log"));
    let deadline = Instant::now() + Duration::from_secs(10);
    while !std::fs::read_to_string(&log).is_ok_and(|t| t.contains("ready")) {
        assert!(Instant::now() < deadline, "container {name} never got ready");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn stop_with_the_largest_timeout_stops_and_answers() {
    let daemon = daemon(&["busybox"]).await;
    let pod = run_pod(&daemon, "huge-timeout").await;
    let mut client = daemon.runtime().await;
    let id = create_and_start(&mut client, &pod, exits_on_term("polite")).await;
    wait_ready(&pod, "polite").await;
    // `crictl stop --timeout 9223372036854775807`: the old code panicked
    // computing the deadline (the call ended in RST_STREAM) and the
    // container was never signalled.
    let stop = client.stop_container(StopContainerRequest {
        container_id: id.clone(),
        timeout: i64::MAX,
    });
    tokio::time::timeout(Duration::from_secs(30), stop)
        .await
        .expect("StopContainer with i64::MAX did not answer")
        .unwrap_or_else(|e| panic!("StopContainer with i64::MAX: {e}\n{}", daemon.log()));
    let st = status(&mut client, &id).await;
    assert_eq!(st.state, ContainerState::ContainerExited as i32, "{st:?}");
    assert_eq!(st.exit_code, 0, "stopped by its TERM trap: {st:?}");

    // The same extreme values elsewhere are answered too.
    let sleeper = create_and_start(
        &mut client,
        &pod,
        container_config("sleeper", "busybox", &["sleep", "1000"]),
    )
    .await;
    for timeout in [i64::MAX, i64::MIN, -1] {
        let out = exec(&mut client, &sleeper, &["echo", "hi"], timeout)
            .await
            .unwrap_or_else(|e| panic!("ExecSync timeout {timeout}: {e}"));
        assert_eq!(out.stdout, b"hi\n");
    }
    client
        .stop_container(StopContainerRequest {
            container_id: sleeper.clone(),
            timeout: i64::MIN,
        })
        .await
        .expect("StopContainer with i64::MIN kills at once");
    assert!(daemon.log().find("panicked").is_none(), "{}", daemon.log());
    teardown(&daemon, &pod).await;
}

#[tokio::test]
async fn exec_sync_output_is_capped_to_fit_one_reply() {
    let daemon = daemon(&["busybox"]).await;
    let pod = run_pod(&daemon, "big-exec").await;
    let mut client = big_client(&daemon).await;
    let id = create_and_start(
        &mut client,
        &pod,
        container_config("sleeper", "busybox", &["sleep", "1000"]),
    )
    .await;
    // 20 MB on stdout: the old code captured 16 MiB, which with the reply's
    // framing no longer fit the 16 MiB encoder limit (OutOfRange).
    let out = exec(
        &mut client,
        &id,
        &["sh", "-c", "head -c 20000000 /dev/zero; exit 3"],
        60,
    )
    .await
    .unwrap_or_else(|e| panic!("ExecSync of 20 MB: {e}\n{}", daemon.log()));
    assert_eq!(out.stdout.len(), EXEC_OUTPUT_CAP);
    assert!(out.stdout.iter().all(|b| *b == 0));
    assert!(out.stderr.is_empty());
    assert_eq!(out.exit_code, 3, "the exit code survives truncation");

    // Both streams share the cap.
    let out = exec(
        &mut client,
        &id,
        &[
            "sh",
            "-c",
            "head -c 12000000 /dev/zero; head -c 12000000 /dev/zero >&2",
        ],
        60,
    )
    .await
    .unwrap_or_else(|e| panic!("ExecSync of 2x12 MB: {e}\n{}", daemon.log()));
    assert_eq!(out.stdout.len() + out.stderr.len(), EXEC_OUTPUT_CAP);
    assert_eq!(out.exit_code, 0);
    teardown(&daemon, &pod).await;
}

#[tokio::test]
async fn a_fifo_as_etc_passwd_fails_the_create_and_leaves_nothing() {
    let daemon = daemon(&["busybox", "hostile-fifo-passwd"]).await;
    let pod = run_pod(&daemon, "fifo-passwd").await;
    let mut client = daemon.runtime().await;
    let by_name = |image_name: &str| ContainerConfig {
        linux: Some(LinuxContainerConfig {
            security_context: Some(LinuxContainerSecurityContext {
                run_as_username: "root".into(),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..container_config("app", image_name, &["sleep", "1000"])
    };
    // The old code blocked forever opening the FIFO.
    let err = tokio::time::timeout(
        Duration::from_secs(60),
        create(&mut client, &pod, by_name("hostile-fifo-passwd")),
    )
    .await
    .expect("CreateContainer hung on a FIFO /etc/passwd")
    .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    assert!(
        err.message()
            .contains("/etc/passwd in the image is a fifo, not a regular file"),
        "{err:?}"
    );
    assert!(err.message().contains("root"), "{err:?}");
    let overlays = overlays_left(&daemon);
    assert!(overlays.is_empty(), "rootfs left mounted: {overlays:?}");
    // The name is free again: the same name with a sound image works.
    let id = create(&mut client, &pod, by_name("busybox"))
        .await
        .unwrap_or_else(|e| panic!("retry under the same name: {e}"));
    client
        .remove_container(RemoveContainerRequest { container_id: id })
        .await
        .unwrap();
    teardown(&daemon, &pod).await;
    assert!(mounts_under(daemon.dirs.base.path()).is_empty());
}

#[tokio::test]
async fn a_second_daemon_on_a_live_socket_refuses_and_leaves_it() {
    let first = crius_e2e::Daemon::start().await;
    let socket = first.dirs.socket();
    // Another state dir and runroot, so the runroot lock does not stop it;
    // only the socket path is shared.
    let other = crius_e2e::Dirs::new();
    std::fs::write(other.base.path().join("crius.toml"), "").unwrap();
    let mut args = other.args();
    let listen = args.iter().position(|a| a == "--listen").unwrap();
    args[listen + 1] = socket.to_string_lossy().into_owned();
    let out = std::fs::File::create(other.base.path().join("second.log")).unwrap();
    let mut second = std::process::Command::new(crius_e2e::crius_bin())
        .args(&args)
        .stdin(std::process::Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .spawn()
        .unwrap();
    // The old code unlinked the live socket and served on its own.
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = second.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = second.kill();
            let _ = second.wait();
            panic!("second crius did not refuse the live socket");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let output = std::fs::read_to_string(other.base.path().join("second.log")).unwrap();
    assert!(!status.success(), "{output}");
    assert!(
        output.contains(&format!("socket {socket:?} is in use")),
        "{output}"
    );
    // The first daemon still answers on its socket, from a new connection.
    first
        .runtime()
        .await
        .version(VersionRequest::default())
        .await
        .unwrap();
}

/// Entries of a directory (empty if it does not exist).
fn entries(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    std::fs::read_dir(dir)
        .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default()
}

#[tokio::test]
async fn pod_names_that_would_inject_cni_args_are_refused_with_nothing_created() {
    let daemon = daemon(&[]).await;
    let mut client = daemon.runtime().await;
    let log_dir = daemon.dirs.base.path().join("pods");
    std::fs::create_dir_all(&log_dir).unwrap();
    // CNI_ARGS `IP=` picks the address with host-local or static IPAM.
    let injected = "web;IP=10.88.0.99";
    for field in ["name", "namespace", "uid"] {
        let mut md = PodSandboxMetadata {
            name: "web".into(),
            namespace: "e2e".into(),
            uid: "uid-web".into(),
            attempt: 0,
        };
        match field {
            "name" => md.name = injected.into(),
            "namespace" => md.namespace = injected.into(),
            _ => md.uid = injected.into(),
        }
        let err = client
            .run_pod_sandbox(RunPodSandboxRequest {
                config: Some(PodSandboxConfig {
                    metadata: Some(md),
                    hostname: "web".into(),
                    log_directory: log_dir.to_string_lossy().into_owned(),
                    ..Default::default()
                }),
                runtime_handler: String::new(),
            })
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{field}: {err:?}");
        assert!(
            err.message()
                .contains(&format!("metadata.{field} {injected:?} is not a valid name")),
            "{err:?}"
        );
    }
    let pods = client
        .list_pod_sandbox(ListPodSandboxRequest::default())
        .await
        .unwrap()
        .into_inner()
        .items;
    assert!(pods.is_empty(), "{pods:?}");
    let records = entries(&daemon.dirs.root().join("sandboxes"));
    assert!(records.is_empty(), "sandbox records left: {records:?}");
    let mounts = mounts_under(daemon.dirs.base.path());
    assert!(mounts.is_empty(), "mounts left: {mounts:?}");
    // A sound name works (the refusals reserved nothing).
    let pod = run_pod(&daemon, "web").await;
    teardown(&daemon, &pod).await;
}
