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
        assert!(
            Instant::now() < deadline,
            "container {name} never got ready"
        );
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
            err.message().contains(&format!(
                "metadata.{field} {injected:?} is not a valid name"
            )),
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

/// A CNI plugin that fails ADD or DEL while `fail-add` / `fail-del` exist
/// in `state` (and hangs DEL while `hang-del` does), and keeps an `attached-<container id>` file from ADD to a
/// successful DEL, standing for the IP and port rules a real chain holds.
fn flaky_plugin(daemon_dirs: &crius_e2e::Dirs) -> (std::path::PathBuf, std::path::PathBuf) {
    use std::os::unix::fs::PermissionsExt;
    let base = daemon_dirs.base.path();
    let (plugins, state) = (base.join("plugins"), base.join("flaky"));
    std::fs::create_dir_all(&plugins).unwrap();
    std::fs::create_dir_all(&state).unwrap();
    let script = plugins.join("flaky");
    std::fs::write(
        &script,
        format!(
            r#"#!/bin/sh
cat >/dev/null
state={state}
fail() {{ echo "{{\"cniVersion\":\"1.0.0\",\"code\":100,\"msg\":\"injected $1 failure\"}}"; exit 1; }}
case "$CNI_COMMAND" in
VERSION) echo '{{"cniVersion":"1.0.0","supportedVersions":["0.4.0","1.0.0"]}}' ;;
ADD) touch "$state/attached-$CNI_CONTAINERID"
     [ -e "$state/fail-add" ] && fail ADD
     echo '{{"cniVersion":"1.0.0","ips":[]}}' ;;
DEL) while [ -e "$state/hang-del" ]; do sleep 0.1; done
     [ -e "$state/fail-del" ] && fail DEL
     rm -f "$state/attached-$CNI_CONTAINERID" ;;
esac
exit 0
"#,
            state = state.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::write(
        daemon_dirs.cni_config_dir().join("10-flaky.conflist"),
        r#"{"cniVersion":"1.0.0","name":"flaky-net","plugins":[{"type":"flaky"}]}"#,
    )
    .unwrap();
    (plugins, state)
}

fn pod_config(daemon: &crius_e2e::Daemon, name: &str) -> PodSandboxConfig {
    let log_dir = daemon.dirs.base.path().join("pods").join(name);
    std::fs::create_dir_all(&log_dir).unwrap();
    PodSandboxConfig {
        metadata: Some(PodSandboxMetadata {
            name: name.into(),
            uid: format!("uid-{name}"),
            namespace: "e2e".into(),
            attempt: 0,
        }),
        hostname: name.into(),
        log_directory: log_dir.to_string_lossy().into_owned(),
        ..Default::default()
    }
}

async fn pods(client: &mut RuntimeServiceClient<Channel>) -> Vec<PodSandbox> {
    client
        .list_pod_sandbox(ListPodSandboxRequest::default())
        .await
        .unwrap()
        .into_inner()
        .items
}

#[tokio::test]
async fn a_failed_cni_del_in_rollback_keeps_the_sandbox_until_removed() {
    let dirs = crius_e2e::Dirs::new();
    let (plugins, state) = flaky_plugin(&dirs);
    std::fs::write(state.join("fail-add"), "").unwrap();
    std::fs::write(state.join("fail-del"), "").unwrap();
    let plugin_dir = plugins.to_string_lossy().into_owned();
    let mut daemon = crius_e2e::Daemon::start_with(dirs, &["--cni-plugin-dir", &plugin_dir]).await;
    let mut client = daemon.runtime().await;

    let err = client
        .run_pod_sandbox(RunPodSandboxRequest {
            config: Some(pod_config(&daemon, "flaky")),
            runtime_handler: String::new(),
        })
        .await
        .unwrap_err();
    assert!(err.message().contains("injected ADD failure"), "{err:?}");
    // The rollback's DEL failed: the old code deleted the record anyway,
    // and the attachment was never released.
    let listed = pods(&mut client).await;
    assert_eq!(listed.len(), 1, "failed sandbox not kept: {listed:?}");
    let id = listed[0].id.clone();
    assert_eq!(listed[0].state, PodSandboxState::SandboxNotready as i32);
    assert!(state.join(format!("attached-{id}")).exists());

    // Kept across a restart, and removal retries DEL: refused while the
    // plugin still fails, done once it works.
    daemon.restart().await;
    let mut client = daemon.runtime().await;
    assert_eq!(pods(&mut client).await.len(), 1);
    let err = client
        .remove_pod_sandbox(RemovePodSandboxRequest {
            pod_sandbox_id: id.clone(),
        })
        .await
        .unwrap_err();
    assert!(err.message().contains("injected DEL failure"), "{err:?}");
    assert_eq!(pods(&mut client).await.len(), 1);
    std::fs::remove_file(state.join("fail-del")).unwrap();
    remove_pod(&mut client, &id).await;
    assert!(
        !state.join(format!("attached-{id}")).exists(),
        "CNI DEL never succeeded"
    );
    assert!(pods(&mut client).await.is_empty());
    let records = entries(&daemon.dirs.root().join("sandboxes"));
    assert!(records.is_empty(), "sandbox records left: {records:?}");
    let mounts = mounts_under(daemon.dirs.base.path());
    assert!(mounts.is_empty(), "mounts left: {mounts:?}");

    // The name is free again.
    std::fs::remove_file(state.join("fail-add")).unwrap();
    let pod = run_pod_config(&daemon, pod_config(&daemon, "flaky")).await;
    teardown(&daemon, &pod).await;
}

/// As `pods::daemon(&["busybox"])`, in dirs the test prepared.
async fn busybox_daemon_in(
    dirs: std::sync::Arc<crius_e2e::Dirs>,
    flags: &[&str],
) -> crius_e2e::Daemon {
    std::fs::write(
        dirs.cni_config_dir().join("10-lo.conflist"),
        r#"{"cniVersion":"1.0.0","name":"lo-only","plugins":[{"type":"loopback"}]}"#,
    )
    .unwrap();
    let mut args = vec!["--cni-plugin-dir", "/usr/lib/cni"];
    args.extend_from_slice(flags);
    let daemon = crius_e2e::Daemon::start_with(dirs, &args).await;
    daemon
        .images()
        .await
        .pull_image(PullImageRequest {
            image: Some(ImageSpec {
                image: image("busybox"),
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .unwrap_or_else(|e| panic!("pull: {e}\n{}", daemon.log()));
    daemon
}

#[tokio::test]
async fn roots_given_through_symlinks_leave_no_mount_behind() {
    let dirs = crius_e2e::Dirs::new();
    let base = dirs.base.path();
    for (link, real) in [(dirs.root(), "real-root"), (dirs.runroot(), "real-run")] {
        std::fs::create_dir_all(base.join(real)).unwrap();
        std::os::unix::fs::symlink(base.join(real), link).unwrap();
    }
    let daemon = busybox_daemon_in(dirs, &[]).await;
    let pod = run_pod(&daemon, "symlinked").await;
    let mut client = daemon.runtime().await;
    let id = create_and_start(
        &mut client,
        &pod,
        container_config("sleeper", "busybox", &["sleep", "1000"]),
    )
    .await;
    assert_eq!(overlays_left(&daemon).len(), 1, "rootfs not mounted");
    client
        .stop_container(StopContainerRequest {
            container_id: id.clone(),
            timeout: 0,
        })
        .await
        .unwrap();
    client
        .remove_container(RemoveContainerRequest { container_id: id })
        .await
        .unwrap_or_else(|e| panic!("remove: {e}\n{}", daemon.log()));
    // The old code compared the symlinked path with /proc/self/mountinfo,
    // found nothing mounted, and skipped the unmount.
    let overlays = overlays_left(&daemon);
    assert!(overlays.is_empty(), "rootfs left mounted: {overlays:?}");
    teardown(&daemon, &pod).await;
}

/// Container ids runc still knows under this daemon's runroot.
fn runc_containers(daemon: &crius_e2e::Daemon) -> Vec<String> {
    let root = daemon.dirs.runroot().join("runc");
    let out = std::process::Command::new("runc")
        .arg("--root")
        .arg(&root)
        .args(["list", "-q"])
        .output()
        .expect("run runc list");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.is_empty())
        .map(String::from)
        .collect()
}

#[tokio::test]
async fn create_container_racing_remove_pod_leaves_no_orphan() {
    let daemon = daemon(&["busybox"]).await;
    let mut client = daemon.runtime().await;
    let mut created = 0;
    for round in 0..12u64 {
        let pod = run_pod(&daemon, &format!("race-{round}")).await;
        let mut creator = daemon.runtime().await;
        let create = {
            let pod_id = pod.id.clone();
            let sandbox_config = pod.config.clone();
            async move {
                creator
                    .create_container(CreateContainerRequest {
                        pod_sandbox_id: pod_id,
                        config: Some(container_config("c", "busybox", &["sleep", "1000"])),
                        sandbox_config: Some(sandbox_config),
                    })
                    .await
            }
        };
        let mut remover = daemon.runtime().await;
        let remove = async {
            // Land the removal at different points of the create.
            tokio::time::sleep(Duration::from_millis(round * 15)).await;
            remover
                .remove_pod_sandbox(RemovePodSandboxRequest {
                    pod_sandbox_id: pod.id.clone(),
                })
                .await
        };
        let (created_res, removed) = tokio::join!(create, remove);
        removed.unwrap_or_else(|e| panic!("round {round}: remove pod: {e}\n{}", daemon.log()));
        match created_res {
            Ok(_) => created += 1,
            Err(e) => assert!(
                matches!(e.code(), Code::NotFound | Code::FailedPrecondition),
                "round {round}: {e:?}"
            ),
        }
        let left = client
            .list_containers(ListContainersRequest::default())
            .await
            .unwrap()
            .into_inner()
            .containers;
        assert!(
            left.is_empty(),
            "round {round}: orphaned containers: {left:?}"
        );
        assert!(pods(&mut client).await.is_empty(), "round {round}");
    }
    let overlays = overlays_left(&daemon);
    assert!(overlays.is_empty(), "rootfs left mounted: {overlays:?}");
    let mounts = mounts_under(daemon.dirs.base.path());
    assert!(mounts.is_empty(), "mounts left: {mounts:?}");
    let runc = runc_containers(&daemon);
    assert!(runc.is_empty(), "runc containers left: {runc:?}");
    let records = entries(&daemon.dirs.root().join("containers"));
    assert!(records.is_empty(), "container records left: {records:?}");
    eprintln!("{created} of 12 creates won the race");
}

#[tokio::test]
async fn a_timed_out_sandbox_rollback_leaves_no_name_reserved_by_nothing() {
    let dirs = crius_e2e::Dirs::new();
    let (plugins, state) = flaky_plugin(&dirs);
    std::fs::write(state.join("fail-add"), "").unwrap();
    std::fs::write(state.join("hang-del"), "").unwrap();
    let plugin_dir = plugins.to_string_lossy().into_owned();
    let daemon = crius_e2e::Daemon::start_with(
        dirs,
        &[
            "--cni-plugin-dir",
            &plugin_dir,
            "--sandbox-cleanup-timeout-secs",
            "2",
        ],
    )
    .await;
    let mut client = daemon.runtime().await;
    let err = client
        .run_pod_sandbox(RunPodSandboxRequest {
            config: Some(pod_config(&daemon, "stuck")),
            runtime_handler: String::new(),
        })
        .await
        .unwrap_err();
    assert!(err.message().contains("injected ADD failure"), "{err:?}");
    // The rollback ran out of time in DEL. The old code then left the name
    // reserved with no sandbox to remove: every retry was AlreadyExists.
    let listed = pods(&mut client).await;
    assert_eq!(listed.len(), 1, "nothing holds the name: {listed:?}");
    let id = listed[0].id.clone();
    let again = client
        .run_pod_sandbox(RunPodSandboxRequest {
            config: Some(pod_config(&daemon, "stuck")),
            runtime_handler: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(again.code(), Code::AlreadyExists, "{again:?}");
    assert!(again.message().contains(&id), "{again:?}");
    std::fs::remove_file(state.join("hang-del")).unwrap();
    remove_pod(&mut client, &id).await;
    assert!(!state.join(format!("attached-{id}")).exists());
    std::fs::remove_file(state.join("fail-add")).unwrap();
    let pod = run_pod_config(&daemon, pod_config(&daemon, "stuck")).await;
    teardown(&daemon, &pod).await;
}

/// A runc wrapper that fails `create` while `fail-create` exists in
/// `state` and hangs `delete` while `hang-delete` does; anything else is
/// the real runc.
fn flaky_runc(dirs: &crius_e2e::Dirs) -> (std::path::PathBuf, std::path::PathBuf) {
    use std::os::unix::fs::PermissionsExt;
    let base = dirs.base.path();
    let state = base.join("flaky-runc");
    std::fs::create_dir_all(&state).unwrap();
    let script = base.join("runc-wrapper");
    std::fs::write(
        &script,
        format!(
            r#"#!/bin/sh
state={state}
for arg in "$@"; do
    case "$arg" in
    create) [ -e "$state/fail-create" ] && {{ echo "injected create failure" >&2; exit 1; }} ;;
    delete) while [ -e "$state/hang-delete" ]; do sleep 0.1; done ;;
    esac
done
exec runc "$@"
"#,
            state = state.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    (script, state)
}

#[tokio::test]
async fn a_timed_out_container_rollback_keeps_it_removable() {
    let dirs = crius_e2e::Dirs::new();
    let (runc, state) = flaky_runc(&dirs);
    let runc = runc.to_string_lossy().into_owned();
    let daemon = busybox_daemon_in(
        dirs,
        &[
            "--runtime-path",
            &runc,
            "--sandbox-cleanup-timeout-secs",
            "2",
        ],
    )
    .await;
    let pod = run_pod(&daemon, "stuck-ctr").await;
    let mut client = daemon.runtime().await;
    std::fs::write(state.join("fail-create"), "").unwrap();
    std::fs::write(state.join("hang-delete"), "").unwrap();
    let config = || container_config("c", "busybox", &["sleep", "1000"]);
    let err = create(&mut client, &pod, config()).await.unwrap_err();
    assert!(err.message().contains("injected create failure"), "{err:?}");
    // The undo ran out of time in `runc delete`. The old code left the
    // name reserved with nothing listed to remove.
    let listed = client
        .list_containers(ListContainersRequest::default())
        .await
        .unwrap()
        .into_inner()
        .containers;
    assert_eq!(listed.len(), 1, "nothing holds the name: {listed:?}");
    assert_eq!(listed[0].state, ContainerState::ContainerUnknown as i32);
    let id = listed[0].id.clone();
    let again = create(&mut client, &pod, config()).await.unwrap_err();
    assert_eq!(again.code(), Code::AlreadyExists, "{again:?}");
    assert!(again.message().contains(&id), "{again:?}");
    std::fs::remove_file(state.join("hang-delete")).unwrap();
    std::fs::remove_file(state.join("fail-create")).unwrap();
    client
        .remove_container(RemoveContainerRequest {
            container_id: id.clone(),
        })
        .await
        .unwrap_or_else(|e| panic!("remove kept container: {e}\n{}", daemon.log()));
    let overlays = overlays_left(&daemon);
    assert!(overlays.is_empty(), "rootfs left mounted: {overlays:?}");
    let new_id = create(&mut client, &pod, config())
        .await
        .unwrap_or_else(|e| panic!("create under the freed name: {e}"));
    assert_ne!(new_id, id);
    teardown(&daemon, &pod).await;
}
