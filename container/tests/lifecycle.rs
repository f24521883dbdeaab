//! Container lifecycle against the real runc + conmon (root required).

mod common;

use std::time::{Duration, Instant};

use common::*;
use crius_proto::ErrorKind;

#[tokio::test(flavor = "multi_thread")]
async fn echo_hello_is_in_the_cri_log_and_exit_0_completed() {
    let env = Env::new();
    let id = env.create(&config("hello", &["echo", "hello"])).await;
    let (st, _) = env.mgr.status(&id, false).unwrap();
    assert_eq!(st.state, CREATED);
    assert!(st.created_at > 0);
    env.mgr.start(&id).await.unwrap();
    let st = wait_exited(&env, &id, Duration::from_secs(10)).await;
    assert_eq!(st.exit_code, 0);
    assert_eq!(st.reason, "Completed");
    assert!(
        st.started_at > 0 && st.finished_at >= st.started_at,
        "{st:?}"
    );
    assert_eq!(st.log_path, env.log_path("hello").display().to_string());
    let lines = log_lines(&env.log_path("hello"));
    assert_eq!(
        lines,
        vec![("stdout".to_string(), "F".to_string(), "hello".to_string())]
    );
    env.mgr.remove(&id).await.unwrap();
    assert!(env.mgr.status(&id, false).is_err());
    assert!(env.mounts_under_test_dir().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn exit_code_3_is_error_and_stderr_is_logged() {
    let env = Env::new();
    let id = env
        .mgr
        .create(
            &env.sandbox,
            &env.image,
            &sh("three", "echo oops >&2; exit 3"),
        )
        .await
        .unwrap();
    env.mgr.start(&id).await.unwrap();
    let st = wait_exited(&env, &id, Duration::from_secs(10)).await;
    assert_eq!(st.exit_code, 3);
    assert_eq!(st.reason, "Error");
    wait_for_log(&env.log_path("three"), "oops", Duration::from_secs(5)).await;
    let lines = log_lines(&env.log_path("three"));
    assert_eq!(lines[0].0, "stderr");
    // stopping an exited container is fine, removing twice too
    env.mgr.stop(&id, 10).await.unwrap();
    env.mgr.remove(&id).await.unwrap();
    env.mgr.remove(&id).await.unwrap();
    env.mgr.stop(&id, 10).await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn stop_uses_sigterm_then_sigkill_after_timeout() {
    let env = Env::new();
    let polite = env.create(&sh("polite", SERVE)).await;
    let stubborn = env
        .mgr
        .create(
            &env.sandbox,
            &env.image,
            &sh("stubborn", "trap '' TERM; while :; do sleep 0.1; done"),
        )
        .await
        .unwrap();
    env.mgr.start(&polite).await.unwrap();
    env.mgr.start(&stubborn).await.unwrap();
    assert_eq!(env.mgr.status(&polite, false).unwrap().0.state, RUNNING);

    let t = Instant::now();
    env.mgr.stop(&polite, 10).await.unwrap();
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    let st = env.mgr.status(&polite, false).unwrap().0;
    assert_eq!(
        (st.state, st.exit_code, st.reason.as_str()),
        (EXITED, 0, "Completed")
    );

    // A stop of the stubborn one does not block status of others.
    let t = Instant::now();
    let (r, _) = tokio::join!(env.mgr.stop(&stubborn, 2), async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let t = Instant::now();
        env.mgr.status(&polite, false).unwrap();
        env.mgr.list(None);
        assert!(t.elapsed() < Duration::from_millis(200));
    });
    r.unwrap();
    assert!(t.elapsed() >= Duration::from_secs(2), "{:?}", t.elapsed());
    let st = env.mgr.status(&stubborn, false).unwrap().0;
    assert_eq!(
        (st.state, st.exit_code, st.reason.as_str()),
        (EXITED, 137, "Error")
    );
    // idempotent
    env.mgr.stop(&stubborn, 2).await.unwrap();
    env.mgr.stop("no-such-container", 2).await.unwrap();
    for id in [polite, stubborn] {
        env.mgr.remove(&id).await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn remove_kills_a_running_container() {
    let env = Env::new();
    let id = env.run(&config("sleeper", &["sleep", "1000"])).await;
    let pid = env.processes_of_test().len();
    assert!(pid > 0, "conmon should be running");
    env.mgr.remove(&id).await.unwrap();
    assert!(env.mgr.list(None).is_empty());
    assert!(env.mounts_under_test_dir().is_empty());
    assert!(env.entries("run/runc").is_empty());
    assert!(env.entries("root/containers").is_empty());
    assert!(env.entries("run/containers").is_empty());
    // conmon exits once its container is gone
    let deadline = Instant::now() + Duration::from_secs(5);
    while !env.processes_of_test().is_empty() {
        assert!(Instant::now() < deadline, "{:?}", env.processes_of_test());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn exec_sync_output_exit_code_and_timeout() {
    let env = Env::new();
    let id = env.create(&sh("execd", SERVE)).await;
    // not running yet
    let err = env
        .mgr
        .exec_sync(&id, &["true".to_string()], Duration::from_secs(5))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::FailedPrecondition);
    env.mgr.start(&id).await.unwrap();

    let cmd = |s: &str| vec!["sh".to_string(), "-c".to_string(), s.to_string()];
    let out = env
        .mgr
        .exec_sync(
            &id,
            &cmd("echo out; echo err >&2; exit 5"),
            Duration::from_secs(10),
        )
        .await
        .unwrap();
    assert_eq!(out.stdout, b"out\n");
    assert_eq!(out.stderr, b"err\n");
    assert_eq!(out.exit_code, 5);

    // the exec'd process gets the container's env
    let out = env
        .mgr
        .exec_sync(&id, &cmd("echo $FROM_IMAGE"), Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(out.stdout, b"1\n");

    // output is bounded so that the reply fits one 16 MiB gRPC message
    let out = env
        .mgr
        .exec_sync(
            &id,
            &cmd("head -c 20000000 /dev/zero"),
            Duration::from_secs(60),
        )
        .await
        .unwrap();
    assert_eq!(out.stdout.len(), container::runtime::MAX_EXEC_OUTPUT);
    assert_eq!(out.exit_code, 0);

    let t = Instant::now();
    let err = env
        .mgr
        .exec_sync(&id, &cmd("sleep 30; echo never"), Duration::from_secs(1))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::DeadlineExceeded, "{err}");
    assert!(t.elapsed() < Duration::from_secs(8), "{:?}", t.elapsed());
    // the timed-out process is gone
    let out = env
        .mgr
        .exec_sync(&id, &cmd("ps -o pid,args"), Duration::from_secs(10))
        .await
        .unwrap();
    let ps = String::from_utf8_lossy(&out.stdout);
    assert!(!ps.contains("sleep 30"), "{ps}");

    // a missing binary is an error carrying runc's message
    let err = env
        .mgr
        .exec_sync(
            &id,
            &["/no/such/binary".to_string()],
            Duration::from_secs(10),
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("/no/such/binary"), "{err}");

    env.mgr.stop(&id, 5).await.unwrap();
    env.mgr.remove(&id).await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn readonly_rootfs_refuses_writes() {
    let env = Env::new();
    let mut cfg = sh(
        "ro",
        "touch /newfile 2>/dev/null && exit 0; touch /tmp/x 2>/dev/null && exit 8; exit 7",
    );
    cfg.linux = Some(crius_proto::LinuxContainerConfig {
        resources: None,
        security_context: Some(crius_proto::LinuxContainerSecurityContext {
            readonly_rootfs: true,
            ..Default::default()
        }),
    });
    let id = env.run(&cfg).await;
    let st = wait_exited(&env, &id, Duration::from_secs(10)).await;
    assert_eq!(st.exit_code, 7);

    // and a writable one can write
    let id2 = env.run(&sh("rw", "touch /newfile")).await;
    assert_eq!(
        wait_exited(&env, &id2, Duration::from_secs(10))
            .await
            .exit_code,
        0
    );
    for id in [id, id2] {
        env.mgr.remove(&id).await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn termination_message_is_reported() {
    let env = Env::new();
    let mut cfg = sh("term", "printf 'all done' > /dev/termination-log; exit 2");
    cfg.annotations.insert(
        "io.kubernetes.container.terminationMessagePath".into(),
        "/dev/termination-log".into(),
    );
    let id = env.run(&cfg).await;
    let st = wait_exited(&env, &id, Duration::from_secs(10)).await;
    assert_eq!((st.exit_code, st.message.as_str()), (2, "all done"));

    // kubelet's way: its own host file mounted at the path
    let host = env.dir.path().join("kubelet-term");
    std::fs::write(&host, "").unwrap();
    let mut cfg = sh("term2", "printf 'from kubelet file' > /dev/termination-log");
    cfg.annotations.insert(
        "io.kubernetes.container.terminationMessagePath".into(),
        "/dev/termination-log".into(),
    );
    cfg.mounts.push(crius_proto::Mount {
        container_path: "/dev/termination-log".into(),
        host_path: host.display().to_string(),
        ..Default::default()
    });
    let id2 = env.run(&cfg).await;
    let st = wait_exited(&env, &id2, Duration::from_secs(10)).await;
    assert_eq!(st.message, "from kubelet file");
    for id in [id, id2] {
        env.mgr.remove(&id).await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn log_reopen_after_rotation_loses_nothing() {
    let env = Env::new();
    let id = env
        .mgr
        .create(
            &env.sandbox,
            &env.image,
            &sh(
                "chatty",
                "trap 'exit 0' TERM; i=0; while :; do echo line$i; i=$((i+1)); sleep 0.05; done",
            ),
        )
        .await
        .unwrap();
    env.mgr.start(&id).await.unwrap();
    let log = env.log_path("chatty");
    wait_for_log(&log, "line5", Duration::from_secs(10)).await;
    let rotated = log.with_extension("log.1");
    std::fs::rename(&log, &rotated).unwrap();
    env.mgr.reopen_log(&id).await.unwrap();
    assert!(log.exists());
    let last_old = log_lines(&rotated).len();
    wait_for_log(
        &log,
        &format!("line{}", last_old + 5),
        Duration::from_secs(10),
    )
    .await;
    env.mgr.stop(&id, 5).await.unwrap();
    let mut all: Vec<String> = log_lines(&rotated)
        .into_iter()
        .chain(log_lines(&log))
        .map(|(_, _, c)| c)
        .collect();
    all.dedup();
    for (i, l) in all.iter().enumerate() {
        assert_eq!(l, &format!("line{i}"), "lines lost or reordered: {all:?}");
    }
    // reopen of an exited container is refused
    assert_eq!(
        env.mgr.reopen_log(&id).await.unwrap_err().kind(),
        ErrorKind::FailedPrecondition
    );
    env.mgr.remove(&id).await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn users_env_workdir_and_bind_mounts() {
    let env = Env::new();
    let host_rw = env.dir.path().join("shared-rw");
    let host_ro = env.dir.path().join("shared-ro");
    std::fs::create_dir_all(&host_ro).unwrap();
    let missing = env.dir.path().join("made/by/crius");
    let mut cfg = sh(
        "who",
        "id; pwd; echo env=$GREETING/$FROM_IMAGE; echo hi > /rw/f; echo x > /ro/f || echo ro-refused; ls -d /made",
    );
    cfg.working_dir = "/tmp".into();
    cfg.envs = vec![crius_proto::KeyValue {
        key: "GREETING".into(),
        value: "hello world".into(),
    }];
    cfg.mounts = vec![
        crius_proto::Mount {
            container_path: "/rw".into(),
            host_path: host_rw.display().to_string(),
            ..Default::default()
        },
        crius_proto::Mount {
            container_path: "/ro".into(),
            host_path: host_ro.display().to_string(),
            readonly: true,
            ..Default::default()
        },
        crius_proto::Mount {
            container_path: "/made".into(),
            host_path: missing.display().to_string(),
            ..Default::default()
        },
    ];
    cfg.linux = Some(crius_proto::LinuxContainerConfig {
        resources: None,
        security_context: Some(crius_proto::LinuxContainerSecurityContext {
            run_as_username: "app".into(),
            supplemental_groups: vec![4242],
            ..Default::default()
        }),
    });
    std::fs::create_dir_all(&host_rw).unwrap();
    std::os::unix::fs::chown(&host_rw, Some(1000), Some(1000)).unwrap();
    let id = env.create(&cfg).await;
    assert!(missing.is_dir(), "missing host path is created");
    env.mgr.start(&id).await.unwrap();
    let st = wait_exited(&env, &id, Duration::from_secs(10)).await;
    let out: Vec<String> = log_lines(&env.log_path("who"))
        .into_iter()
        .map(|(_, _, c)| c)
        .collect();
    let text = out.join("\n");
    assert!(
        text.contains("uid=1000(app) gid=1000(app) groups="),
        "{text}"
    );
    for g in ["1000(app)", "10(wheel)", "44(video)", "4242"] {
        assert!(text.contains(g), "{g} missing: {text}");
    }
    assert!(text.contains("/tmp"), "{text}");
    assert!(text.contains("env=hello world/1"), "{text}");
    assert!(text.contains("ro-refused"), "{text}");
    assert_eq!(st.exit_code, 0, "{text}");
    assert_eq!(std::fs::read_to_string(host_rw.join("f")).unwrap(), "hi\n");
    assert_eq!(st.mounts.len(), 3);
    env.mgr.remove(&id).await.unwrap();

    // by uid with image USER ignored
    let mut img = env.image.clone();
    img.config.user = "app".into();
    let mut cfg = sh("byuid", "id -u; id -g");
    cfg.linux = Some(crius_proto::LinuxContainerConfig {
        resources: None,
        security_context: Some(crius_proto::LinuxContainerSecurityContext {
            run_as_user: Some(crius_proto::Int64Value { value: 0 }),
            run_as_group: Some(crius_proto::Int64Value { value: 44 }),
            ..Default::default()
        }),
    });
    let id = env.mgr.create(&env.sandbox, &img, &cfg).await.unwrap();
    env.mgr.start(&id).await.unwrap();
    wait_exited(&env, &id, Duration::from_secs(10)).await;
    let out: Vec<String> = log_lines(&env.log_path("byuid"))
        .into_iter()
        .map(|(_, _, c)| c)
        .collect();
    assert_eq!(out, ["0", "44"]);
    env.mgr.remove(&id).await.unwrap();

    // from the image USER
    let id = env
        .mgr
        .create(&env.sandbox, &img, &sh("imguser", "id -un"))
        .await
        .unwrap();
    env.mgr.start(&id).await.unwrap();
    wait_exited(&env, &id, Duration::from_secs(10)).await;
    wait_for_log(&env.log_path("imguser"), "app", Duration::from_secs(5)).await;
    env.mgr.remove(&id).await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn list_filters_prefix_lookup_and_verbose_status() {
    let env = Env::new();
    let mut a = sh("a", SERVE);
    a.labels.insert("app".into(), "web".into());
    let a = env.create(&a).await;
    let b = env.create(&sh("b", "true")).await;
    env.mgr.start(&a).await.unwrap();
    // the same name again is refused
    let err = env
        .mgr
        .create(&env.sandbox, &env.image, &sh("a", "true"))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::AlreadyExists, "{err}");

    let filter = |id: &str, state: Option<i32>, pod: &str, labels: &[(&str, &str)]| {
        crius_proto::ContainerFilter {
            id: id.into(),
            state: state.map(|s| crius_proto::ContainerStateValue { state: s }),
            pod_sandbox_id: pod.into(),
            label_selector: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    };
    assert_eq!(env.mgr.list(None).len(), 2);
    let running = env.mgr.list(Some(&filter("", Some(RUNNING), "", &[])));
    assert_eq!(running.len(), 1);
    assert_eq!(running[0].id, a);
    assert_eq!(
        env.mgr.list(Some(&filter("", Some(CREATED), "", &[])))[0].id,
        b
    );
    assert_eq!(
        env.mgr
            .list(Some(&filter("", None, "", &[("app", "web")])))
            .len(),
        1
    );
    assert_eq!(env.mgr.list(Some(&filter(&a[..8], None, "", &[]))).len(), 1);
    assert_eq!(
        env.mgr
            .list(Some(&filter("", None, &env.sandbox.id, &[])))
            .len(),
        2
    );
    assert!(
        env.mgr
            .list(Some(&filter("", None, "other-pod", &[])))
            .is_empty()
    );
    assert_eq!(env.mgr.containers_of_sandbox(&env.sandbox.id).len(), 2);

    // conmon's endpoints for the streaming server and log rotation
    use std::os::unix::fs::FileTypeExt;
    let attach = env.mgr.attach_socket_path(&a).unwrap();
    let md = std::fs::metadata(&attach).unwrap_or_else(|e| panic!("{attach:?}: {e}"));
    assert!(md.file_type().is_socket(), "{attach:?}");
    let ctl = env.mgr.bundle_path(&a).unwrap().join("ctl");
    assert!(std::fs::metadata(&ctl).unwrap().file_type().is_fifo());

    let (st, info) = env.mgr.status(&a[..12], true).unwrap();
    assert_eq!(st.id, a);
    assert_eq!(st.metadata.unwrap().name, "a");
    assert_eq!(st.image.unwrap().image, "localhost/busybox:test");
    assert_eq!(st.image_ref, "localhost/busybox:test");
    assert_eq!(st.labels["app"], "web");
    let v: serde_json::Value = serde_json::from_str(&info["info"]).unwrap();
    assert!(v["pid"].as_i64().unwrap() > 0);
    assert_eq!(v["sandboxID"], env.sandbox.id.as_str());
    assert_eq!(v["runtimeSpec"]["process"]["args"][0], "sh");
    assert_eq!(
        env.mgr.status("nope", false).unwrap_err().kind(),
        ErrorKind::NotFound
    );
    for id in [a, b] {
        env.mgr.remove(&id).await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn joins_the_pod_network_namespace() {
    let env = Env::new();
    let ns = format!("crius-ctest-{}", std::process::id());
    let out = std::process::Command::new("ip")
        .args(["netns", "add", &ns])
        .output()
        .expect("ip (iproute2) is required");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    struct DelNs(String);
    impl Drop for DelNs {
        fn drop(&mut self) {
            let _ = std::process::Command::new("ip")
                .args(["netns", "delete", &self.0])
                .output();
        }
    }
    let _guard = DelNs(ns.clone());
    let mut sandbox = env.sandbox.clone();
    sandbox.netns_path = Some(format!("/run/netns/{ns}").into());
    let id = env
        .mgr
        .create(
            &sandbox,
            &env.image,
            &sh(
                "net",
                "cat /proc/net/dev | tail -n +3 | cut -d: -f1 | tr -d ' '",
            ),
        )
        .await
        .unwrap();
    env.mgr.start(&id).await.unwrap();
    wait_exited(&env, &id, Duration::from_secs(10)).await;
    let ifaces: Vec<String> = log_lines(&env.log_path("net"))
        .into_iter()
        .map(|(_, _, c)| c)
        .collect();
    assert_eq!(ifaces, ["lo"]);
    env.mgr.remove(&id).await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn oom_kill_is_reported_as_oomkilled() {
    let env = Env::new();
    let mut cfg = sh(
        "hog",
        "x=$(head -c 200000000 /dev/zero | tr '\\0' a); echo survived ${#x}",
    );
    cfg.linux = Some(crius_proto::LinuxContainerConfig {
        resources: Some(crius_proto::LinuxContainerResources {
            memory_limit_in_bytes: 16 << 20,
            ..Default::default()
        }),
        security_context: None,
    });
    let id = env.run(&cfg).await;
    let st = wait_exited(&env, &id, Duration::from_secs(30)).await;
    assert_eq!(
        (st.exit_code, st.reason.as_str()),
        (137, "OOMKilled"),
        "{st:?}"
    );
    env.mgr.remove(&id).await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn many_layers_beyond_one_page_of_mount_options() {
    let env = Env::new();
    // 56 layers with 64-character names: ~5 KiB of absolute lowerdirs,
    // more than the kernel takes in one mount call.
    let layers_dir = env.dir.path().join("layers");
    std::fs::create_dir_all(&layers_dir).unwrap();
    let mut layers = vec![];
    for i in 0..56 {
        let l = layers_dir.join(format!("{i:064}"));
        if i == 0 {
            std::fs::rename(&env.image.layers[0], &l).unwrap();
        } else {
            std::fs::create_dir_all(&l).unwrap();
            std::fs::write(l.join(format!("file{i}")), format!("layer {i}\n")).unwrap();
        }
        layers.push(l);
    }
    // an upper layer shadows a lower one
    std::fs::write(layers[55].join("file1"), "shadowed by 55\n").unwrap();
    let total: usize = layers.iter().map(|l| l.as_os_str().len() + 1).sum();
    assert!(total > 4096, "{total}");
    let mut image = env.image.clone();
    image.layers = layers;
    let id = env
        .mgr
        .create(
            &env.sandbox,
            &image,
            &sh("layered", "cat /file1 /file2 /file55"),
        )
        .await
        .unwrap();
    env.mgr.start(&id).await.unwrap();
    let st = wait_exited(&env, &id, Duration::from_secs(10)).await;
    assert_eq!(st.exit_code, 0);
    let out: Vec<String> = log_lines(&env.log_path("layered"))
        .into_iter()
        .map(|(_, _, c)| c)
        .collect();
    assert_eq!(out, ["shadowed by 55", "layer 2", "layer 55"]);
    env.mgr.remove(&id).await.unwrap();
    assert!(env.mounts_under_test_dir().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn tty_output_is_logged() {
    let env = Env::new();
    let mut cfg = sh("tty", "tty; echo on-a-tty");
    cfg.tty = true;
    let id = env.run(&cfg).await;
    let st = wait_exited(&env, &id, Duration::from_secs(10)).await;
    assert_eq!(st.exit_code, 0);
    wait_for_log(&env.log_path("tty"), "on-a-tty", Duration::from_secs(5)).await;
    let text: Vec<String> = log_lines(&env.log_path("tty"))
        .into_iter()
        .map(|(_, _, c)| c)
        .collect();
    assert!(text.iter().any(|l| l.starts_with("/dev/pts/")), "{text:?}");
    env.mgr.remove(&id).await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn target_pid_namespace_sees_the_target() {
    let env = Env::new();
    let target = env
        .mgr
        .create(
            &env.sandbox,
            &env.image,
            &sh(
                "target",
                "trap 'exit 0' TERM; while :; do sleep 0.1; done # marker-xyz",
            ),
        )
        .await
        .unwrap();
    env.mgr.start(&target).await.unwrap();
    // `[x]` keeps the peer's own command line from matching
    let mut cfg = sh("peer", "ps -o args | grep -c 'marker-[x]yz'");
    cfg.linux = Some(crius_proto::LinuxContainerConfig {
        resources: None,
        security_context: Some(crius_proto::LinuxContainerSecurityContext {
            namespace_options: Some(crius_proto::NamespaceOption {
                pid: crius_proto::NamespaceMode::Target as i32,
                target_id: target.clone(),
                ..Default::default()
            }),
            ..Default::default()
        }),
    });
    let peer = env.run(&cfg).await;
    wait_exited(&env, &peer, Duration::from_secs(10)).await;
    let out: Vec<String> = log_lines(&env.log_path("peer"))
        .into_iter()
        .map(|(_, _, c)| c)
        .collect();
    assert_eq!(out, ["1"], "the target's shell is visible");
    // a private pid namespace does not see it
    let lonely = env
        .run(&sh("lonely", "ps -o args | grep -c 'marker-[x]yz'"))
        .await;
    wait_exited(&env, &lonely, Duration::from_secs(10)).await;
    wait_for_log(&env.log_path("lonely"), "0", Duration::from_secs(5)).await;
    env.mgr.stop(&target, 5).await.unwrap();
    for id in [target, peer, lonely] {
        env.mgr.remove(&id).await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn stop_never_signals_a_process_that_reused_the_pid() {
    let env = Env::new();
    let id = env.run(&config("reused", &["sleep", "1000"])).await;
    let ctr = env.mgr.get(&id).unwrap();
    let st = ctr.status();
    assert_eq!(
        Some(st.pid_start_time),
        container::signal::start_time(st.pid),
        "create records the start time of the container's process"
    );
    // Pretend the container's pid now names a stranger: a process of
    // ours, with another start time than the one recorded.
    let mut stranger = std::process::Command::new("sleep")
        .arg("1000")
        .spawn()
        .unwrap();
    ctr.update(|s| {
        s.pid = stranger.id() as i32;
        Ok(())
    })
    .unwrap();
    env.mgr.stop(&id, 0).await.unwrap();
    let st = env.mgr.status(&id, false).unwrap().0;
    assert_eq!((st.state, st.exit_code), (EXITED, 137));
    assert!(
        stranger.try_wait().unwrap().is_none(),
        "the stranger was signalled"
    );
    stranger.kill().unwrap();
    stranger.wait().unwrap();

    // A record without a start time (older crius) stops through runc.
    let old = env.run(&config("old", &["sleep", "1000"])).await;
    env.mgr
        .get(&old)
        .unwrap()
        .update(|s| {
            s.pid_start_time = 0;
            Ok(())
        })
        .unwrap();
    env.mgr.stop(&old, 0).await.unwrap();
    let st = env.mgr.status(&old, false).unwrap().0;
    assert_eq!((st.state, st.exit_code), (EXITED, 137));
    for id in [id, old] {
        env.mgr.remove(&id).await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn stop_uses_the_image_stopsignal() {
    let env = Env::new();
    let mut image = env.image.clone();
    image.config.stop_signal = "SIGUSR1".into();
    // PID 1 without a TERM handler ignores SIGTERM: only USR1 ends it fast.
    let id = env
        .mgr
        .create(
            &env.sandbox,
            &image,
            &sh("usr1", "trap 'exit 0' USR1; while :; do sleep 0.1; done"),
        )
        .await
        .unwrap();
    env.mgr.start(&id).await.unwrap();
    let t = Instant::now();
    env.mgr.stop(&id, 20).await.unwrap();
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    let st = env.mgr.status(&id, false).unwrap().0;
    assert_eq!((st.state, st.exit_code), (EXITED, 0));
    env.mgr.remove(&id).await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn unsupported_mounts_fail_before_side_effects() {
    let env = Env::new();
    let missing = env.dir.path().join("must-not-be-created");
    let mut cfg = sh("rro", "true");
    // Recursive read-only on a writable mount: refused whatever runc
    // supports (runc with `rro` accepts the read-only one now).
    cfg.mounts.push(crius_proto::Mount {
        container_path: "/data".into(),
        host_path: missing.display().to_string(),
        readonly: false,
        recursive_read_only: true,
        ..Default::default()
    });
    let err = env
        .mgr
        .create(&env.sandbox, &env.image, &cfg)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{err}");
    assert!(!missing.exists());
    assert!(env.entries("root/containers").is_empty());
}

fn run(cmd: &[&str]) {
    let out = std::process::Command::new(cmd[0])
        .args(&cmd[1..])
        .output()
        .unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn pod_containers_share_network_ipc_uts_and_shm() {
    let env = Env::new();
    // The pod's namespaces, pinned the way a sandbox does: a netns with lo
    // up, IPC and UTS namespaces bind-mounted on files.
    let ns = format!("crius-ctest-pod-{}", std::process::id());
    run(&["ip", "netns", "add", &ns]);
    struct DelNs(String);
    impl Drop for DelNs {
        fn drop(&mut self) {
            let _ = std::process::Command::new("ip")
                .args(["netns", "delete", &self.0])
                .output();
        }
    }
    let _guard = DelNs(ns.clone());
    run(&["ip", "netns", "exec", &ns, "ip", "link", "set", "lo", "up"]);
    let nsdir = env.dir.path().join("ns");
    std::fs::create_dir_all(&nsdir).unwrap();
    let nsdir_s = nsdir.to_str().unwrap();
    run(&["mount", "--bind", nsdir_s, nsdir_s]);
    run(&["mount", "--make-private", nsdir_s]);
    for f in ["ipc", "uts"] {
        std::fs::write(nsdir.join(f), "").unwrap();
    }
    run(&[
        "unshare",
        &format!("--ipc={nsdir_s}/ipc"),
        &format!("--uts={nsdir_s}/uts"),
        "hostname",
        "podhost",
    ]);
    let shm = env.dir.path().join("shm");
    std::fs::create_dir_all(&shm).unwrap();
    let mut sandbox = env.sandbox.clone();
    sandbox.netns_path = Some(format!("/run/netns/{ns}").into());
    sandbox.ipcns_path = Some(nsdir.join("ipc"));
    sandbox.utsns_path = Some(nsdir.join("uts"));
    sandbox.shm_path = Some(shm.clone());

    let a = env
        .mgr
        .create(
            &sandbox,
            &env.image,
            &sh(
                "server",
                "touch /dev/mqueue/q1 && echo shared > /dev/shm/s && echo ready && nc -l -p 18080",
            ),
        )
        .await
        .unwrap();
    env.mgr.start(&a).await.unwrap();
    wait_for_log(&env.log_path("server"), "ready", Duration::from_secs(10)).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let b = env
        .mgr
        .create(
            &sandbox,
            &env.image,
            &sh(
                "client",
                "hostname; ls /dev/mqueue; cat /dev/shm/s; echo ping | nc 127.0.0.1 18080",
            ),
        )
        .await
        .unwrap();
    env.mgr.start(&b).await.unwrap();
    wait_exited(&env, &b, Duration::from_secs(10)).await;
    wait_exited(&env, &a, Duration::from_secs(10)).await;
    let client: Vec<String> = log_lines(&env.log_path("client"))
        .into_iter()
        .map(|(_, _, c)| c)
        .collect();
    assert_eq!(client, ["podhost", "q1", "shared"], "{client:?}");
    let server: Vec<String> = log_lines(&env.log_path("server"))
        .into_iter()
        .map(|(_, _, c)| c)
        .collect();
    assert_eq!(server, ["ready", "ping"]);
    assert_eq!(std::fs::read_to_string(shm.join("s")).unwrap(), "shared\n");
    for id in [a, b] {
        env.mgr.remove(&id).await.unwrap();
    }
}
