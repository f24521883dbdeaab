//! A crius restart while containers run or exit (root required).

mod common;

use std::time::Duration;

use common::*;

#[tokio::test(flavor = "multi_thread")]
async fn recover_keeps_running_ones_and_sees_exits_that_happened_meanwhile() {
    let mut env = Env::new();
    let runner = env.create(&sh("runner", SERVE)).await;
    let quitter = env
        .mgr
        .create(&env.sandbox, &env.image, &sh("quitter", "sleep 1; exit 4"))
        .await
        .unwrap();
    let idle = env.create(&sh("idle", "true")).await;
    env.mgr.start(&runner).await.unwrap();
    env.mgr.start(&quitter).await.unwrap();

    // crius goes away; the quitter exits while nobody watches
    env.restart();
    assert!(env.mgr.list(None).is_empty());
    tokio::time::sleep(Duration::from_millis(2500)).await;

    let report = env.mgr.recover().await.unwrap();
    assert_eq!(report.restored.len(), 3, "{report:?}");
    assert!(report.cleaned.is_empty(), "{report:?}");
    assert!(report.failed.is_empty(), "{report:?}");

    let (st, _) = env.mgr.status(&runner, false).unwrap();
    assert_eq!(st.state, RUNNING);
    let (st, _) = env.mgr.status(&quitter, false).unwrap();
    assert_eq!(
        (st.state, st.exit_code, st.reason.as_str()),
        (EXITED, 4, "Error")
    );
    assert!(st.finished_at > st.started_at);
    let (st, _) = env.mgr.status(&idle, false).unwrap();
    assert_eq!(st.state, CREATED);

    // names are reserved again
    let err = env
        .mgr
        .create(&env.sandbox, &env.image, &sh("runner", "true"))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), crius_proto::ErrorKind::AlreadyExists);

    // the recovered ones can be exec'd, stopped, started and removed
    let out = env
        .mgr
        .exec_sync(
            &runner,
            &["echo".into(), "still here".into()],
            Duration::from_secs(10),
        )
        .await
        .unwrap();
    assert_eq!(out.stdout, b"still here\n");
    env.mgr.stop(&runner, 10).await.unwrap();
    assert_eq!(env.mgr.status(&runner, false).unwrap().0.exit_code, 0);
    env.mgr.start(&idle).await.unwrap();
    wait_exited(&env, &idle, Duration::from_secs(10)).await;
    for id in [runner, quitter, idle] {
        env.mgr.remove(&id).await.unwrap();
    }
    assert!(env.mounts_under_test_dir().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn recover_cleans_half_created_containers() {
    let mut env = Env::new();
    let id = env.create(&sh("half", SERVE)).await;
    // Simulate a crius killed in the middle of create: the record says the
    // create never completed, and a stray bundle with no record exists.
    let rec = env.cfg.container_dir(&id).join("container.json");
    let mut v: serde_json::Value = serde_json::from_slice(&std::fs::read(&rec).unwrap()).unwrap();
    v["status"]["create_complete"] = false.into();
    std::fs::write(&rec, serde_json::to_vec(&v).unwrap()).unwrap();
    std::fs::create_dir_all(env.cfg.bundle_dir("stray")).unwrap();
    std::fs::create_dir_all(env.cfg.container_dir("stray2")).unwrap();

    env.restart();
    let mut report = env.mgr.recover().await.unwrap();
    report.cleaned.sort();
    let mut want = vec![id.clone(), "stray".to_string(), "stray2".to_string()];
    want.sort();
    assert_eq!(report.cleaned, want, "{report:?}");
    assert!(env.mgr.list(None).is_empty());
    assert!(env.mounts_under_test_dir().is_empty());
    assert!(env.entries("run/runc").is_empty());
    assert!(env.entries("run/containers").is_empty());
    assert!(env.entries("root/containers").is_empty());
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while !env.processes_of_test().is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "{:?}",
            env.processes_of_test()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // the name is free again
    let id = env.create(&sh("half", "true")).await;
    env.mgr.remove(&id).await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn stop_works_when_conmon_died() {
    let env = Env::new();
    let id = env.run(&sh("orphan", SERVE)).await;
    let (st, _) = env.mgr.status(&id, false).unwrap();
    let user = st.user.unwrap().linux.unwrap();
    assert_eq!((user.uid, user.gid), (0, 0));
    let pidfile = env.mgr.bundle_path(&id).unwrap().join("conmon.pid");
    let conmon: i32 = std::fs::read_to_string(pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    // the pid file names our conmon (its command line carries our id)
    let cmdline = std::fs::read_to_string(format!("/proc/{conmon}/cmdline")).unwrap();
    assert!(cmdline.contains(&id));
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(conmon),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let t = std::time::Instant::now();
    env.mgr.stop(&id, 10).await.unwrap();
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    let (st, _) = env.mgr.status(&id, false).unwrap();
    assert_eq!(st.state, EXITED);
    assert!(st.message.contains("monitor was not running"), "{st:?}");
    env.mgr.remove(&id).await.unwrap();
    assert!(env.mounts_under_test_dir().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn crius_dying_mid_create_leaves_nothing_after_recover() {
    // A runtime whose `create` hangs forever (every other call is real
    // runc): crius "dies" while conmon waits for it.
    let scripts = tempfile::tempdir_in("/tmp").unwrap();
    let fake = scripts.path().join("slow-runc");
    std::fs::write(
        &fake,
        format!(
            "#!/bin/sh\nfor a in \"$@\"; do [ \"$a\" = create ] && while :; do sleep 1; done; done\nexec {RUNC} \"$@\"\n"
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut env = Env::with_runtime(fake.to_str().unwrap());
    let cfg = sh("doomed", SERVE);
    let create = env.mgr.create(&env.sandbox, &env.image, &cfg);
    // The create task stays stuck in the runtime with the rootfs mounted and
    // the record incomplete: what the disk looks like when crius is killed
    // there. A fresh manager over the same dirs is the restarted crius.
    assert!(
        tokio::time::timeout(Duration::from_secs(2), create)
            .await
            .is_err(),
        "create should hang in the fake runtime"
    );
    assert!(
        !env.mounts_under_test_dir().is_empty(),
        "rootfs was mounted"
    );
    assert!(!env.processes_of_test().is_empty(), "conmon is waiting");

    env.restart();
    let report = env.mgr.recover().await.unwrap();
    assert_eq!(report.cleaned.len(), 1, "{report:?}");
    assert!(report.restored.is_empty(), "{report:?}");
    assert!(env.mgr.list(None).is_empty());
    assert!(env.mounts_under_test_dir().is_empty());
    assert!(env.entries("run/containers").is_empty());
    assert!(env.entries("root/containers").is_empty());
    assert!(env.entries("run/runc").is_empty());
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while !env.processes_of_test().is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "{:?}",
            env.processes_of_test()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn unreconcilable_containers_are_unknown_not_dropped() {
    let mut env = Env::new();
    let running = env.run(&sh("shaky", SERVE)).await;
    // Created, not started: only runc can say what became of it.
    let created = env.create(&sh("unstarted", SERVE)).await;

    // Restart with a runtime whose `list` and `state` fail for a reason
    // other than "does not exist".
    let scripts = tempfile::tempdir_in("/tmp").unwrap();
    let fake = scripts.path().join("broken-state-runc");
    std::fs::write(
        &fake,
        format!(
            "#!/bin/sh\nfor a in \"$@\"; do case \"$a\" in state|list) echo injected $a failure >&2; exit 1;; esac; done\nexec {RUNC} \"$@\"\n"
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
    env.cfg.runtime_path = fake.clone();
    env.restart();
    let mut report = env.mgr.recover().await.unwrap();
    report.restored.sort();
    let mut both = vec![running.clone(), created.clone()];
    both.sort();
    assert_eq!(report.restored, both);
    let (st, _) = env.mgr.status(&created, false).unwrap();
    assert_eq!(
        st.state,
        crius_proto::ContainerState::ContainerUnknown as i32
    );
    assert!(st.message.contains("injected state failure"), "{st:?}");
    // A running container whose process is still there needs no runc.
    let (st, _) = env.mgr.status(&running, false).unwrap();
    assert_eq!(st.state, RUNNING, "{st:?}");

    // With a working runtime the next restart reconciles it.
    env.cfg.runtime_path = RUNC.into();
    env.restart();
    env.mgr.recover().await.unwrap();
    let (st, _) = env.mgr.status(&created, false).unwrap();
    assert_eq!(
        st.state,
        crius_proto::ContainerState::ContainerCreated as i32,
        "{st:?}"
    );
    assert!(st.message.is_empty());
    for id in [&running, &created] {
        env.mgr.stop(id, 10).await.unwrap();
        env.mgr.remove(id).await.unwrap();
    }
}
