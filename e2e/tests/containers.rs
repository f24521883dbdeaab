//! Containers through the whole daemon, as the kubelet drives them: images
//! pulled from the local registry (hack/test-registry.sh), pods with pinned
//! namespaces, runc under conmon. Each test checks what a kubelet or crictl
//! user would see: the CRI log file, exit codes and reasons, ExecSync
//! output, and what is left on the host afterwards.
//!
//! Pods here use a loopback-only CNI network: a real network namespace of
//! their own (shared by the pod's containers) without bridges or iptables
//! rules to clean up; the bridge network is covered by sandbox.rs.

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

use crius_e2e::pods::*;
use crius_proto::runtime_service_client::RuntimeServiceClient;
use crius_proto::*;
use tonic::Code;
use tonic::transport::Channel;

/// Waits until the container has exited and returns its status.
async fn wait_exited(client: &mut RuntimeServiceClient<Channel>, id: &str) -> ContainerStatus {
    wait_state(
        client,
        id,
        ContainerState::ContainerExited,
        Duration::from_secs(20),
    )
    .await
}

/// The lines of a CRI log file (`<time> <stream> <P|F> <msg>`) as
/// (stream, line), partial (`P`) pieces joined as the kubelet joins them.
fn log_lines(path: &Path) -> Vec<(String, String)> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let mut lines = Vec::new();
    let mut partial: HashMap<String, String> = HashMap::new();
    for line in text.lines() {
        let mut parts = line.splitn(4, ' ');
        let time = parts.next().unwrap_or_default();
        assert!(
            time.contains('T') && time.len() > 20,
            "not an RFC 3339 timestamp: {line:?}"
        );
        let stream = parts.next().unwrap_or_default().to_string();
        let tag = parts.next().unwrap_or_default();
        let piece = parts.next().unwrap_or_default();
        let pending = partial.entry(stream.clone()).or_default();
        pending.push_str(piece);
        match tag {
            "P" => {}
            "F" => lines.push((stream, std::mem::take(pending))),
            _ => panic!("bad tag in {line:?}"),
        }
    }
    lines
}

#[tokio::test]
async fn echo_goes_to_the_cri_log_and_exit_codes_have_reasons() {
    let daemon = daemon(&["busybox"]).await;
    let pod = run_pod(&daemon, "echo").await;
    let mut client = daemon.runtime().await;

    let ok = create_and_start(
        &mut client,
        &pod,
        container_config("ok", "busybox", &["sh", "-c", "echo hello; echo oops >&2"]),
    )
    .await;
    let st = wait_exited(&mut client, &ok).await;
    assert_eq!(st.exit_code, 0);
    assert_eq!(st.reason, "Completed");
    assert!(
        st.started_at > 0 && st.finished_at >= st.started_at,
        "{st:?}"
    );
    assert_eq!(st.log_path, pod.log_dir.join("ok.log").to_string_lossy());
    let lines = log_lines(&pod.log_dir.join("ok.log"));
    assert!(
        lines.contains(&("stdout".into(), "hello".into())),
        "{lines:?}"
    );
    assert!(
        lines.contains(&("stderr".into(), "oops".into())),
        "{lines:?}"
    );

    let failing = create_and_start(
        &mut client,
        &pod,
        container_config("fail", "busybox", &["sh", "-c", "exit 3"]),
    )
    .await;
    let st = wait_exited(&mut client, &failing).await;
    assert_eq!(st.exit_code, 3);
    assert_eq!(st.reason, "Error");

    // A name already taken in the pod is refused, naming the holder.
    let err = create(
        &mut client,
        &pod,
        container_config("ok", "busybox", &["true"]),
    )
    .await
    .unwrap_err();
    assert_eq!(err.code(), Code::AlreadyExists, "{err:?}");
    assert!(err.message().contains(&ok), "{err:?}");

    let listed = client
        .list_containers(ListContainersRequest {
            filter: Some(ContainerFilter {
                pod_sandbox_id: pod.id.clone(),
                ..Default::default()
            }),
        })
        .await
        .unwrap()
        .into_inner()
        .containers;
    assert_eq!(listed.len(), 2);
    teardown(&daemon, &pod).await;
}

#[tokio::test]
async fn entrypoint_cmd_env_workdir_and_user_follow_kubernetes_rules() {
    let daemon = daemon(&["busybox-entrypoint", "busybox-user", "busybox"]).await;
    let pod = run_pod(&daemon, "rules").await;
    let mut client = daemon.runtime().await;

    let cases: Vec<(&str, ContainerConfig, &str)> = vec![
        (
            "image-defaults",
            container_config("image-defaults", "busybox-entrypoint", &[]),
            "from-entrypoint default-cmd",
        ),
        (
            "args-only",
            ContainerConfig {
                args: vec!["given-arg".into()],
                ..container_config("args-only", "busybox-entrypoint", &[])
            },
            "from-entrypoint given-arg",
        ),
        (
            "command-only",
            container_config("command-only", "busybox-entrypoint", &["/bin/echo", "own"]),
            "own",
        ),
        (
            "env-and-dir",
            ContainerConfig {
                envs: vec![KeyValue {
                    key: "BAR".into(),
                    value: "from-config".into(),
                }],
                working_dir: "/tmp".into(),
                ..container_config(
                    "env-and-dir",
                    "busybox-entrypoint",
                    &["sh", "-c", "echo $FOO $BAR $(pwd)"],
                )
            },
            "bar-from-image from-config /tmp",
        ),
        (
            "image-user",
            container_config(
                "image-user",
                "busybox-user",
                &["sh", "-c", "echo $(id -u) $(pwd)"],
            ),
            "1000 /home/tester",
        ),
        (
            "uid",
            ContainerConfig {
                linux: Some(LinuxContainerConfig {
                    security_context: Some(LinuxContainerSecurityContext {
                        run_as_user: Some(Int64Value { value: 1000 }),
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
                ..container_config("uid", "busybox", &["sh", "-c", "echo $(id -u) $(id -G)"])
            },
            // The image user's groups come along: tester is in `extra`.
            "1000 1000 2000",
        ),
        (
            "username",
            ContainerConfig {
                linux: Some(LinuxContainerConfig {
                    security_context: Some(LinuxContainerSecurityContext {
                        run_as_username: "tester".into(),
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
                ..container_config("username", "busybox", &["id", "-un"])
            },
            "tester",
        ),
    ];
    for (name, config, expected) in cases {
        let id = create_and_start(&mut client, &pod, config).await;
        let st = wait_exited(&mut client, &id).await;
        assert_eq!(st.exit_code, 0, "{name}: {st:?}");
        let lines = log_lines(&pod.log_dir.join(format!("{name}.log")));
        assert_eq!(
            lines,
            vec![("stdout".to_string(), expected.to_string())],
            "{name}"
        );
    }
    teardown(&daemon, &pod).await;
}

#[tokio::test]
async fn mounts_and_readonly_rootfs() {
    let daemon = daemon(&["busybox"]).await;
    let pod = run_pod(&daemon, "mounts").await;
    let mut client = daemon.runtime().await;
    let host_rw = daemon.dirs.base.path().join("host-rw");
    let host_ro = daemon.dirs.base.path().join("host-ro");
    std::fs::create_dir_all(&host_ro).unwrap();
    std::fs::write(host_ro.join("data"), "from-host").unwrap();
    let mount = |host: &Path, ctr: &str, readonly: bool| Mount {
        host_path: host.to_string_lossy().into_owned(),
        container_path: ctr.into(),
        readonly,
        ..Default::default()
    };
    let config = ContainerConfig {
        mounts: vec![mount(&host_rw, "/rw", false), mount(&host_ro, "/ro", true)],
        linux: Some(LinuxContainerConfig {
            security_context: Some(LinuxContainerSecurityContext {
                readonly_rootfs: true,
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..container_config(
            "mounts",
            "busybox",
            &[
                "sh",
                "-c",
                "echo written > /rw/out; cat /ro/data; echo; \
                 touch /ro/x 2>/dev/null && echo ro-writable; \
                 touch /rootfs-file 2>/dev/null && echo rootfs-writable; \
                 echo done",
            ],
        )
    };
    let id = create_and_start(&mut client, &pod, config).await;
    let st = wait_exited(&mut client, &id).await;
    assert_eq!(st.exit_code, 0, "{st:?}");
    // A missing host path is created as a directory, as the kubelet expects.
    assert_eq!(
        std::fs::read_to_string(host_rw.join("out")).unwrap(),
        "written\n"
    );
    let out: Vec<String> = log_lines(&pod.log_dir.join("mounts.log"))
        .into_iter()
        .map(|(_, m)| m)
        .collect();
    assert_eq!(out, ["from-host", "done"]);
    assert!(!host_ro.join("x").exists());
    teardown(&daemon, &pod).await;
}

/// A tmpfs mounted for one test, detached when dropped.
struct TmpfsMount(std::path::PathBuf);

impl TmpfsMount {
    fn new(at: &Path) -> TmpfsMount {
        std::fs::create_dir_all(at).unwrap();
        nix::mount::mount(
            Some("tmpfs"),
            at,
            Some("tmpfs"),
            nix::mount::MsFlags::empty(),
            Some("size=1m"),
        )
        .unwrap_or_else(|e| panic!("mount tmpfs at {at:?}: {e}"));
        TmpfsMount(at.to_path_buf())
    }
}

impl Drop for TmpfsMount {
    fn drop(&mut self) {
        let _ = nix::mount::umount2(&self.0, nix::mount::MntFlags::MNT_DETACH);
    }
}

#[tokio::test]
async fn recursive_read_only_mounts_cover_submounts() {
    let daemon = daemon(&["busybox"]).await;
    let mut client = daemon.runtime().await;
    let status = client
        .status(StatusRequest { verbose: false })
        .await
        .unwrap()
        .into_inner();
    let features = status.runtime_handlers[0].features.unwrap();
    assert!(features.recursive_read_only_mounts, "{status:?}");

    // A host dir with a writable filesystem mounted inside it.
    let host = tempfile::tempdir().unwrap();
    let _sub = TmpfsMount::new(&host.path().join("sub"));
    let pod = run_pod(&daemon, "rro").await;
    let mount = |ctr: &str, recursive_read_only: bool| Mount {
        host_path: host.path().to_string_lossy().into_owned(),
        container_path: ctr.into(),
        readonly: true,
        recursive_read_only,
        propagation: MountPropagation::PropagationPrivate as i32,
        ..Default::default()
    };
    let config = ContainerConfig {
        mounts: vec![mount("/ro", false), mount("/rro", true)],
        ..container_config("rro", "busybox", &["sleep", "1000"])
    };
    let id = create_and_start(&mut client, &pod, config).await;
    let touch = |path: &'static str| {
        let mut client = client.clone();
        let id = id.clone();
        async move {
            exec(&mut client, &id, &["touch", path], 10)
                .await
                .expect("exec touch")
                .exit_code
        }
    };
    // Plain read-only stops at the top; recursive read-only goes all the
    // way down.
    assert_ne!(touch("/ro/top").await, 0);
    assert_eq!(touch("/ro/sub/via-ro").await, 0);
    assert_ne!(touch("/rro/top").await, 0);
    assert_ne!(touch("/rro/sub/via-rro").await, 0);
    assert!(host.path().join("sub/via-ro").exists());
    assert!(!host.path().join("sub/via-rro").exists());

    // What cannot be read-only all the way down is refused up front.
    let mut writable = mount("/w", true);
    writable.readonly = false;
    let err = create(
        &mut client,
        &pod,
        ContainerConfig {
            mounts: vec![writable],
            ..container_config("rro-writable", "busybox", &["true"])
        },
    )
    .await
    .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    assert!(err.message().contains("/w"), "{err:?}");
    teardown(&daemon, &pod).await;
}

#[tokio::test]
async fn containers_of_a_pod_share_localhost_and_hostname() {
    let daemon = daemon(&["busybox"]).await;
    let pod = run_pod(&daemon, "shared").await;
    let mut client = daemon.runtime().await;
    let server = create_and_start(
        &mut client,
        &pod,
        container_config(
            "server",
            "busybox",
            &["sh", "-c", "mkdir /www && echo pod-page > /www/index.html && exec httpd -f -p 127.0.0.1:8080 -h /www"],
        ),
    )
    .await;
    let clientctr = create_and_start(
        &mut client,
        &pod,
        container_config("client", "busybox", &["sleep", "1000"]),
    )
    .await;
    let deadline = Instant::now() + Duration::from_secs(10);
    let page = loop {
        let out = exec(
            &mut client,
            &clientctr,
            &["wget", "-q", "-O", "-", "http://127.0.0.1:8080/index.html"],
            10,
        )
        .await
        .unwrap();
        if out.exit_code == 0 {
            break String::from_utf8_lossy(&out.stdout).into_owned();
        }
        assert!(Instant::now() < deadline, "server never answered: {out:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(page, "pod-page\n");
    let host = exec(&mut client, &server, &["hostname"], 5).await.unwrap();
    assert_eq!(String::from_utf8_lossy(&host.stdout), "shared\n");
    teardown(&daemon, &pod).await;
}

#[tokio::test]
async fn exec_sync_output_exit_code_and_timeout() {
    let daemon = daemon(&["busybox"]).await;
    let pod = run_pod(&daemon, "exec").await;
    let mut client = daemon.runtime().await;
    let id = create_and_start(
        &mut client,
        &pod,
        container_config("sleeper", "busybox", &["sleep", "1000"]),
    )
    .await;
    let out = exec(
        &mut client,
        &id,
        &["sh", "-c", "echo out; echo err >&2; exit 7"],
        10,
    )
    .await
    .unwrap();
    assert_eq!(out.stdout, b"out\n");
    assert_eq!(out.stderr, b"err\n");
    assert_eq!(out.exit_code, 7);

    let started = Instant::now();
    let err = exec(&mut client, &id, &["sleep", "30"], 1)
        .await
        .unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "timeout not honoured"
    );
    assert_eq!(err.code(), Code::DeadlineExceeded, "{err:?}");

    // Exec into a container that is not running is refused.
    client
        .stop_container(StopContainerRequest {
            container_id: id.clone(),
            timeout: 0,
        })
        .await
        .unwrap();
    let err = exec(&mut client, &id, &["true"], 5).await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");
    teardown(&daemon, &pod).await;
}

/// critest calls StopContainer within a millisecond of StartContainer,
/// before the container's PID 1 has installed its TERM handler, and the
/// kernel drops a signal sent to a PID namespace's init that has none:
/// crius sends it again once the handler is there. The stop ends well
/// within its 60 s grace period, by the handler (exit 0), not SIGKILL.
#[tokio::test]
async fn stop_right_after_start_reaches_a_handler_installed_later() {
    let daemon = daemon(&["busybox"]).await;
    let pod = run_pod(&daemon, "late-trap").await;
    let mut client = daemon.runtime().await;
    let id = create_and_start(
        &mut client,
        &pod,
        container_config(
            "late-trap",
            "busybox",
            &[
                "sh",
                "-c",
                "sleep 2; trap 'exit 0' TERM; while true; do sleep 0.1; done",
            ],
        ),
    )
    .await;
    let began = Instant::now();
    client
        .stop_container(StopContainerRequest {
            container_id: id.clone(),
            timeout: 60,
        })
        .await
        .unwrap();
    let took = began.elapsed();
    assert!(took < Duration::from_secs(20), "stop took {took:?}");
    let st = status(&mut client, &id).await;
    assert_eq!(st.state, ContainerState::ContainerExited as i32, "{st:?}");
    assert_eq!(st.exit_code, 0, "not stopped by its handler: {st:?}");
    teardown(&daemon, &pod).await;
}

#[tokio::test]
async fn stop_escalates_to_sigkill_and_is_idempotent() {
    let daemon = daemon(&["busybox"]).await;
    let pod = run_pod(&daemon, "stop").await;
    let mut client = daemon.runtime().await;
    let id = create_and_start(
        &mut client,
        &pod,
        container_config(
            "stubborn",
            "busybox",
            &[
                "sh",
                "-c",
                "trap '' TERM; echo ready; while true; do sleep 1; done",
            ],
        ),
    )
    .await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while log_lines(&pod.log_dir.join("stubborn.log")).is_empty() {
        assert!(Instant::now() < deadline, "container never got ready");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let started = Instant::now();
    client
        .stop_container(StopContainerRequest {
            container_id: id.clone(),
            timeout: 2,
        })
        .await
        .unwrap();
    let took = started.elapsed();
    assert!(
        took >= Duration::from_secs(2),
        "SIGTERM should have been ignored: {took:?}"
    );
    let st = status(&mut client, &id).await;
    assert_eq!(st.state, ContainerState::ContainerExited as i32);
    assert_eq!(st.exit_code, 137, "{st:?}");

    // Again, and for a container that never existed: both succeed.
    for target in [id.as_str(), "0123456789abcdef-missing"] {
        client
            .stop_container(StopContainerRequest {
                container_id: target.into(),
                timeout: 1,
            })
            .await
            .unwrap();
        client
            .remove_container(RemoveContainerRequest {
                container_id: target.into(),
            })
            .await
            .unwrap();
    }
    let err = client
        .container_status(ContainerStatusRequest {
            container_id: id.clone(),
            verbose: false,
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    teardown(&daemon, &pod).await;
}

#[tokio::test]
async fn log_reopen_after_rotation_loses_nothing() {
    let daemon = daemon(&["busybox"]).await;
    let pod = run_pod(&daemon, "reopen").await;
    let mut client = daemon.runtime().await;
    let id = create_and_start(
        &mut client,
        &pod,
        ContainerConfig {
            // ReopenContainerLog needs a running container: it writes one
            // line a second until /tmp/stop appears.
            ..container_config(
                "logger",
                "busybox",
                &[
                    "sh",
                    "-c",
                    "i=0; while [ ! -e /tmp/stop ]; do echo line-$i; i=$((i+1)); sleep 0.2; done; exit 2",
                ],
            )
        },
    )
    .await;
    let log = pod.log_dir.join("logger.log");
    let rotated = pod.log_dir.join("logger.log.1");
    tokio::time::sleep(Duration::from_millis(600)).await;
    std::fs::rename(&log, &rotated).unwrap();
    client
        .reopen_container_log(ReopenContainerLogRequest {
            container_id: id.clone(),
        })
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(600)).await;
    exec(&mut client, &id, &["touch", "/tmp/stop"], 5)
        .await
        .unwrap();
    let st = wait_exited(&mut client, &id).await;
    assert_eq!(st.exit_code, 2);
    assert!(log.exists(), "log not reopened at its path");
    let old: Vec<String> = log_lines(&rotated).into_iter().map(|(_, m)| m).collect();
    let new: Vec<String> = log_lines(&log).into_iter().map(|(_, m)| m).collect();
    assert!(
        !old.is_empty() && !new.is_empty(),
        "old {old:?} new {new:?}"
    );
    // Nothing lost, nothing doubled: the numbers continue across files.
    let all: Vec<String> = old.into_iter().chain(new).collect();
    for (i, line) in all.iter().enumerate() {
        assert_eq!(line, &format!("line-{i}"), "{all:?}");
    }
    teardown(&daemon, &pod).await;
}

#[tokio::test]
async fn termination_message_path_is_reported() {
    let daemon = daemon(&["busybox"]).await;
    let pod = run_pod(&daemon, "msg").await;
    let mut client = daemon.runtime().await;
    let id = create_and_start(
        &mut client,
        &pod,
        ContainerConfig {
            annotations: HashMap::from([(
                "io.kubernetes.container.terminationMessagePath".to_string(),
                "/dev/termination-log".to_string(),
            )]),
            ..container_config(
                "msg",
                "busybox",
                &[
                    "sh",
                    "-c",
                    "echo -n 'it broke' > /dev/termination-log; exit 1",
                ],
            )
        },
    )
    .await;
    let st = wait_exited(&mut client, &id).await;
    assert_eq!(st.exit_code, 1);
    assert_eq!(st.message, "it broke", "{st:?}");
    teardown(&daemon, &pod).await;
}

#[tokio::test]
async fn containers_survive_a_restart_and_exits_while_down_are_seen() {
    let mut daemon = daemon(&["busybox"]).await;
    let pod = run_pod(&daemon, "restart").await;
    let mut client = daemon.runtime().await;
    let running = create_and_start(
        &mut client,
        &pod,
        container_config("running", "busybox", &["sleep", "1000"]),
    )
    .await;
    let exits = create_and_start(
        &mut client,
        &pod,
        container_config("exits", "busybox", &["sh", "-c", "sleep 3; exit 5"]),
    )
    .await;
    let before = status(&mut client, &exits).await;
    assert_eq!(before.state, ContainerState::ContainerRunning as i32);
    drop(client);

    daemon.stop();
    tokio::time::sleep(Duration::from_secs(4)).await;
    daemon.respawn().await;

    let mut client = daemon.runtime().await;
    let st = status(&mut client, &running).await;
    assert_eq!(st.state, ContainerState::ContainerRunning as i32, "{st:?}");
    let out = exec(&mut client, &running, &["echo", "alive"], 5)
        .await
        .unwrap();
    assert_eq!(out.stdout, b"alive\n");
    let st = status(&mut client, &exits).await;
    assert_eq!(st.state, ContainerState::ContainerExited as i32, "{st:?}");
    assert_eq!(st.exit_code, 5);
    assert!(st.finished_at > before.started_at);
    teardown(&daemon, &pod).await;
}

/// Containers whose conmon died with crius and that then stopped have no
/// exit file: after the restart they are Exited with an unknown exit code
/// (255) and a message saying why, while their running neighbours stay
/// Running. Recovery asks runc about all of them at once.
#[tokio::test]
async fn containers_that_stopped_with_their_monitor_gone_are_exited_after_a_restart() {
    let mut daemon = daemon(&["busybox"]).await;
    let pod = run_pod(&daemon, "lost-monitor").await;
    let mut client = daemon.runtime().await;
    let mut lost = Vec::new();
    for name in ["lost-1", "lost-2"] {
        let config = container_config(name, "busybox", &["sleep", "1000"]);
        lost.push(create_and_start(&mut client, &pod, config).await);
    }
    let kept = create_and_start(
        &mut client,
        &pod,
        container_config("kept", "busybox", &["sleep", "1000"]),
    )
    .await;
    drop(client);

    daemon.stop_with(nix::sys::signal::Signal::SIGKILL);
    let runroot = daemon.dirs.runroot();
    let runc_root = runroot.join("runc");
    for id in &lost {
        let pidfile = runroot.join("containers").join(id).join("conmon.pid");
        let conmon: i32 = std::fs::read_to_string(&pidfile)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(conmon),
            nix::sys::signal::Signal::SIGKILL,
        )
        .unwrap();
        let out = std::process::Command::new("runc")
            .arg("--root")
            .arg(&runc_root)
            .args(["kill", id, "KILL"])
            .output()
            .unwrap();
        assert!(out.status.success(), "runc kill {id}: {out:?}");
    }
    // Until runc sees them stopped.
    let deadline = Instant::now() + Duration::from_secs(10);
    for id in &lost {
        loop {
            let out = std::process::Command::new("runc")
                .arg("--root")
                .arg(&runc_root)
                .args(["state", id])
                .output()
                .unwrap();
            if String::from_utf8_lossy(&out.stdout).contains("\"stopped\"") {
                break;
            }
            assert!(Instant::now() < deadline, "{id} did not stop: {out:?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    daemon.respawn().await;

    let mut client = daemon.runtime().await;
    for id in &lost {
        let st = status(&mut client, id).await;
        assert_eq!(st.state, ContainerState::ContainerExited as i32, "{st:?}");
        assert_eq!(st.exit_code, 255, "{st:?}");
        assert!(
            st.message.contains("monitor was not running")
                && st.message.contains("runc reports stopped"),
            "{st:?}"
        );
    }
    let st = status(&mut client, &kept).await;
    assert_eq!(st.state, ContainerState::ContainerRunning as i32, "{st:?}");
    let out = exec(&mut client, &kept, &["echo", "alive"], 5)
        .await
        .unwrap();
    assert_eq!(out.stdout, b"alive\n");
    teardown(&daemon, &pod).await;
}

#[tokio::test]
async fn failed_create_leaves_nothing_behind() {
    let daemon = daemon(&["busybox"]).await;
    let pod = run_pod(&daemon, "fail").await;
    let mut client = daemon.runtime().await;

    let err = create(
        &mut client,
        &pod,
        container_config("noimage", "not-pulled", &["true"]),
    )
    .await
    .unwrap_err();
    assert_eq!(err.code(), Code::NotFound, "{err:?}");
    assert!(err.message().contains("not-pulled"), "{err:?}");

    // runc refuses a working dir that is a file: the error carries runc's
    // message and everything done so far is undone.
    let config = ContainerConfig {
        working_dir: "/etc/passwd".into(),
        ..container_config("badcwd", "busybox", &["true"])
    };
    let result = create(&mut client, &pod, config.clone()).await;
    let err = match result {
        Err(err) => err,
        // runc 1.1 checks the cwd only at start.
        Ok(id) => client
            .start_container(StartContainerRequest { container_id: id })
            .await
            .unwrap_err(),
    };
    assert!(err.message().contains("passwd"), "{err:?}");
    teardown(&daemon, &pod).await;
    let containers_dir = daemon.dirs.root().join("containers");
    let left: Vec<_> = std::fs::read_dir(&containers_dir)
        .map(|d| d.filter_map(|e| e.ok()).map(|e| e.path()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "container dirs left: {left:?}");
}

#[tokio::test]
async fn create_in_a_missing_or_stopped_pod_is_refused() {
    let daemon = daemon(&["busybox"]).await;
    let pod = run_pod(&daemon, "gone").await;
    let mut client = daemon.runtime().await;
    let missing = Pod {
        id: "ffffffffffff".into(),
        config: pod.config.clone(),
        log_dir: pod.log_dir.clone(),
    };
    let err = create(
        &mut client,
        &missing,
        container_config("c", "busybox", &["true"]),
    )
    .await
    .unwrap_err();
    assert_eq!(err.code(), Code::NotFound, "{err:?}");
    client
        .stop_pod_sandbox(StopPodSandboxRequest {
            pod_sandbox_id: pod.id.clone(),
        })
        .await
        .unwrap();
    let err = create(
        &mut client,
        &pod,
        container_config("c", "busybox", &["true"]),
    )
    .await
    .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");
    teardown(&daemon, &pod).await;
}

/// The next event of a GetContainerEvents stream, failing after 20 s.
async fn next_event(
    stream: &mut tonic::Streaming<ContainerEventResponse>,
) -> ContainerEventResponse {
    tokio::time::timeout(Duration::from_secs(20), stream.message())
        .await
        .expect("no container event within 20 s")
        .expect("event stream failed")
        .expect("event stream ended")
}

/// The next events are `kinds` of the pod itself, with its status in `state`.
async fn expect_sandbox_events(
    events: &mut tonic::Streaming<ContainerEventResponse>,
    pod: &Pod,
    kinds: &[ContainerEventType],
    state: PodSandboxState,
) {
    for kind in kinds {
        let ev = next_event(events).await;
        assert_eq!(
            (ev.container_id.as_str(), ev.container_event_type),
            (pod.id.as_str(), *kind as i32)
        );
        let status = ev
            .pod_sandbox_status
            .expect("pod status with a sandbox event");
        assert_eq!(status.state, state as i32);
    }
}

#[tokio::test]
async fn container_events_follow_the_lifecycle_with_statuses() {
    use ContainerEventType::*;
    let mut daemon = daemon(&["busybox"]).await;
    let mut client = daemon.runtime().await;
    let mut events = client
        .get_container_events(GetEventsRequest {})
        .await
        .expect("GetContainerEvents")
        .into_inner();

    let pod = run_pod(&daemon, "events").await;
    expect_sandbox_events(
        &mut events,
        &pod,
        &[ContainerCreatedEvent, ContainerStartedEvent],
        PodSandboxState::SandboxReady,
    )
    .await;

    // Exits on its own: the event must come without anybody asking for
    // the container's status.
    let id = create_and_start(
        &mut client,
        &pod,
        container_config("brief", "busybox", &["sh", "-c", "sleep 0.5; exit 2"]),
    )
    .await;
    let mut seen = Vec::new();
    for kind in [
        ContainerCreatedEvent,
        ContainerStartedEvent,
        ContainerStoppedEvent,
    ] {
        let ev = next_event(&mut events).await;
        assert_eq!(
            (ev.container_id.as_str(), ev.container_event_type),
            (id.as_str(), kind as i32),
            "{ev:?}"
        );
        assert!(ev.created_at > 0);
        assert_eq!(
            ev.pod_sandbox_status.as_ref().map(|s| s.id.as_str()),
            Some(pod.id.as_str())
        );
        let own = ev
            .containers_statuses
            .iter()
            .find(|s| s.id == id)
            .expect("own status in the event");
        seen.push((own.state, own.exit_code));
    }
    assert_eq!(
        seen,
        [
            (ContainerState::ContainerCreated as i32, 0),
            (ContainerState::ContainerRunning as i32, 0),
            (ContainerState::ContainerExited as i32, 2),
        ]
    );

    client
        .remove_container(RemoveContainerRequest {
            container_id: id.clone(),
        })
        .await
        .expect("remove container");
    let ev = next_event(&mut events).await;
    assert_eq!(
        (ev.container_id.as_str(), ev.container_event_type),
        (id.as_str(), ContainerDeletedEvent as i32)
    );
    assert!(ev.containers_statuses.iter().all(|s| s.id != id), "{ev:?}");

    teardown(&daemon, &pod).await;
    expect_sandbox_events(
        &mut events,
        &pod,
        &[ContainerStoppedEvent, ContainerDeletedEvent],
        PodSandboxState::SandboxNotready,
    )
    .await;

    // The daemon ends the stream when it stops, instead of waiting for the
    // client to hang up.
    daemon.stop();
    let end = tokio::time::timeout(Duration::from_secs(20), events.message())
        .await
        .expect("event stream still open after the daemon stopped");
    assert!(matches!(end, Ok(None) | Err(_)), "{end:?}");
}

#[tokio::test]
async fn pod_sandbox_metrics_describe_live_containers() {
    let daemon = daemon(&["busybox"]).await;
    let pod = run_pod(&daemon, "metrics").await;
    let mut client = daemon.runtime().await;
    let id = create_and_start(
        &mut client,
        &pod,
        container_config("app", "busybox", &["sleep", "1000"]),
    )
    .await;

    let descriptors = metric_descriptors(&mut client).await;
    let pod_metrics = &metrics_of_pod(&mut client, &pod.id).await;
    let [ctr] = &pod_metrics.container_metrics[..] else {
        panic!("one container expected: {pod_metrics:?}")
    };
    assert_eq!(ctr.container_id, id);
    let working_set = ctr
        .metrics
        .iter()
        .find(|m| m.name == "container_memory_working_set_bytes")
        .expect("working set of the container");
    assert_eq!(
        working_set.label_values[..2],
        [id.clone(), "app".to_string()]
    );
    assert!(
        working_set.label_values[2].ends_with("busybox"),
        "{working_set:?}"
    );
    assert!(
        working_set.value.as_ref().unwrap().value > 0,
        "{working_set:?}"
    );
    assert!(
        pod_metrics
            .metrics
            .iter()
            .any(|m| m.name == "container_processes" && m.value.as_ref().unwrap().value >= 1),
        "{pod_metrics:?}"
    );
    for metric in pod_metrics.metrics.iter().chain(&ctr.metrics) {
        let d = descriptors
            .iter()
            .find(|d| d.name == metric.name)
            .unwrap_or_else(|| panic!("{} is not described", metric.name));
        assert_eq!(d.label_keys.len(), metric.label_values.len(), "{metric:?}");
    }
    teardown(&daemon, &pod).await;
}

/// Whether a process whose command line holds `marker` is alive on the host.
fn process_with(marker: &str) -> bool {
    std::fs::read_dir("/proc").unwrap().flatten().any(|d| {
        std::fs::read(d.path().join("cmdline"))
            .map(|c| String::from_utf8_lossy(&c).contains(marker))
            .unwrap_or(false)
    })
}

/// RemoveContainer of a container whose PID 1 has exited while another of
/// its processes, in the pod's shared PID namespace and so not killed with
/// PID 1, still writes into the rootfs. The rootfs must be taken apart only
/// once `runc delete` has emptied the container's cgroup: detaching the
/// overlay under the writer and deleting its upper dir failed with
/// "Directory not empty" (critest -benchmark hit it with dying processes).
#[tokio::test]
async fn remove_waits_for_processes_left_behind_by_pid_1() {
    let daemon = daemon(&["busybox"]).await;
    let shared_pid = NamespaceOption {
        pid: NamespaceMode::Pod as i32,
        ..Default::default()
    };
    let pod = run_pod_with(
        &daemon,
        "leftover",
        Some(LinuxPodSandboxConfig {
            security_context: Some(LinuxSandboxSecurityContext {
                namespace_options: Some(shared_pid.clone()),
                ..Default::default()
            }),
            ..Default::default()
        }),
    )
    .await;
    let mut client = daemon.runtime().await;
    let marker = "leftover-writer-marker";
    let mut config = container_config(
        "writer",
        "busybox",
        &[
            "sh",
            "-c",
            &format!("(while true; do mkdir -p /spam/$RANDOM/{marker}; done) & sleep 1"),
        ],
    );
    config.linux = Some(LinuxContainerConfig {
        security_context: Some(LinuxContainerSecurityContext {
            namespace_options: Some(shared_pid),
            ..Default::default()
        }),
        ..Default::default()
    });
    let id = create_and_start(&mut client, &pod, config).await;
    wait_exited(&mut client, &id).await;
    assert!(process_with(marker), "the writer should outlive PID 1");

    client
        .remove_container(RemoveContainerRequest {
            container_id: id.clone(),
        })
        .await
        .unwrap_or_else(|e| panic!("remove container: {e}\n{}", daemon.log()));
    assert!(!process_with(marker), "the writer survived RemoveContainer");
    assert!(
        !daemon.dirs.root().join("containers").join(&id).exists(),
        "container dir left behind"
    );
    teardown(&daemon, &pod).await;
}
