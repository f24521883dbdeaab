//! Failed creates leave nothing behind (root required).

mod common;

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use common::*;

async fn assert_no_residue(env: &Env) {
    assert!(env.mgr.list(None).is_empty());
    assert!(
        env.mounts_under_test_dir().is_empty(),
        "{:?}",
        env.mounts_under_test_dir()
    );
    assert!(
        env.entries("run/runc").is_empty(),
        "{:?}",
        env.entries("run/runc")
    );
    assert!(env.entries("run/containers").is_empty());
    assert!(env.entries("root/containers").is_empty());
    assert!(env.entries("run/exits").is_empty());
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
async fn bad_mount_source_leaves_nothing() {
    let env = Env::new();
    // a regular file mounted over a directory: runc refuses
    let file = env.dir.path().join("a-file");
    std::fs::write(&file, "x").unwrap();
    let mut cfg = sh("badmount", "true");
    cfg.mounts.push(crius_proto::Mount {
        container_path: "/etc".into(),
        host_path: file.display().to_string(),
        ..Default::default()
    });
    let err = env
        .mgr
        .create(&env.sandbox, &env.image, &cfg)
        .await
        .unwrap_err();
    let msg = err.to_string();
    eprintln!("create error: {msg}");
    assert!(msg.contains("runc create"), "{msg}");
    assert!(
        msg.contains("not a directory") || msg.contains("mount"),
        "{msg}"
    );
    assert_no_residue(&env).await;
    // the name was released
    let id = env.create(&sh("badmount", "true")).await;
    env.mgr.remove(&id).await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn missing_executable_reports_runc_message() {
    let env = Env::new();
    let err = env
        .mgr
        .create(&env.sandbox, &env.image, &config("nope", &["/no/such/exe"]))
        .await
        .unwrap_err();
    eprintln!("create error: {err}");
    assert!(err.to_string().contains("/no/such/exe"), "{err}");
    assert_no_residue(&env).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn failing_runtime_leaves_nothing() {
    let dir = tempfile::tempdir_in("/tmp").unwrap();
    let fake = dir.path().join("fake-runc");
    // A runtime that fails every call the way runc does: a JSON error in
    // its --log file and on stderr.
    std::fs::write(
        &fake,
        r#"#!/bin/sh
for a in "$@"; do case "$a" in --log=*) log="${a#--log=}";; esac; done
msg='{"level":"error","msg":"injected runtime failure","time":"2026-01-01T00:00:00Z"}'
[ -n "$log" ] && echo "$msg" >> "$log"
echo "injected runtime failure" >&2
exit 1
"#,
    )
    .unwrap();
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
    let env = Env::with_runtime(fake.to_str().unwrap());
    let err = env
        .mgr
        .create(&env.sandbox, &env.image, &sh("x", "true"))
        .await
        .unwrap_err();
    eprintln!("create error: {err}");
    assert!(
        err.to_string().contains("injected runtime failure"),
        "{err}"
    );
    assert_eq!(err.kind(), crius_proto::ErrorKind::Internal);
    assert_no_residue(&env).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn invalid_requests_are_rejected_before_side_effects() {
    let env = Env::new();
    let mut img = env.image.clone();
    img.config.user = "ghost".into();
    let err = env
        .mgr
        .create(&env.sandbox, &img, &sh("ghost", "true"))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), crius_proto::ErrorKind::InvalidArgument, "{err}");
    assert!(err.to_string().contains("ghost"), "{err}");
    let mut cfg = sh("nometa", "true");
    cfg.metadata = None;
    assert!(
        env.mgr
            .create(&env.sandbox, &env.image, &cfg)
            .await
            .is_err()
    );
    let mut cfg = sh("badlog", "true");
    cfg.log_path = "../../escape.log".into();
    assert!(
        env.mgr
            .create(&env.sandbox, &env.image, &cfg)
            .await
            .is_err()
    );
    img.config.user = String::new();
    let mut cfg = config("empty", &[]);
    cfg.command.clear();
    img.config.cmd.clear();
    let err = env.mgr.create(&env.sandbox, &img, &cfg).await.unwrap_err();
    assert_eq!(err.kind(), crius_proto::ErrorKind::InvalidArgument, "{err}");
    assert_no_residue(&env).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn abandoned_create_is_finished_and_removed() {
    // A runtime whose create takes 2 s: the caller gives up after 0.5 s.
    let scripts = tempfile::tempdir_in("/tmp").unwrap();
    let fake = scripts.path().join("slow-runc");
    std::fs::write(
        &fake,
        format!(
            "#!/bin/sh\nfor a in \"$@\"; do [ \"$a\" = create ] && sleep 2; done\nexec {RUNC} \"$@\"\n"
        ),
    )
    .unwrap();
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
    let env = Env::with_runtime(fake.to_str().unwrap());
    let cfg = sh("impatient", SERVE);
    let create = env.mgr.create(&env.sandbox, &env.image, &cfg);
    assert!(
        tokio::time::timeout(Duration::from_millis(500), create)
            .await
            .is_err()
    );
    // The background create completes, notices nobody waits, removes.
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    // Dirs go before the store entry: wait for all of it.
    while !(env.entries("root/containers").is_empty()
        && env.entries("run/runc").is_empty()
        && env.mgr.list(None).is_empty())
    {
        assert!(
            std::time::Instant::now() < deadline,
            "abandoned create not cleaned up"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_no_residue(&env).await;
    // and the name is free for the retry
    let id = env.create(&sh("impatient", "true")).await;
    env.mgr.remove(&id).await.unwrap();
}
