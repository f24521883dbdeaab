//! Security contexts, resources and stats through the whole daemon: what a
//! kubelet or crictl user sees (CRI stats, ContainerStatus) and what the
//! container itself sees (/proc/self/status, cgroup files).
//!
//! Pods use a loopback-only CNI network, images come from the local registry
//! (hack/test-registry.sh).

use std::path::Path;
use std::time::{Duration, Instant};

use crius_e2e::Daemon;
use crius_e2e::pods::*;
use crius_proto::runtime_service_client::RuntimeServiceClient;
use crius_proto::*;
use tonic::Code;
use tonic::transport::Channel;

async fn container_stats(client: &mut RuntimeServiceClient<Channel>, id: &str) -> ContainerStats {
    client
        .container_stats(ContainerStatsRequest {
            container_id: id.into(),
        })
        .await
        .expect("container stats")
        .into_inner()
        .stats
        .expect("stats present")
}

fn val(v: &Option<UInt64Value>) -> u64 {
    v.as_ref().map(|v| v.value).expect("value present")
}

#[tokio::test]
async fn stats_grow_for_a_container_that_burns_cpu_and_allocates_memory() {
    let daemon = daemon(&["busybox"]).await;
    let pod = run_pod(&daemon, "stats").await;
    let mut client = daemon.runtime().await;
    let mut config = container_config(
        "burn",
        "busybox",
        &[
            "sh",
            "-c",
            "dd if=/dev/zero of=/fill bs=1M count=4 2>/dev/null; \
             a=$(dd if=/dev/zero bs=1M count=24 2>/dev/null | tr '\\0' x); \
             touch /ready; while :; do :; done",
        ],
    );
    config.labels.insert("app".into(), "burner".into());
    let id = create_and_start(&mut client, &pod, config).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    while exec(&mut client, &id, &["test", "-e", "/ready"], 5)
        .await
        .unwrap()
        .exit_code
        != 0
    {
        assert!(Instant::now() < deadline, "container never got ready");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let first = container_stats(&mut client, &id).await;
    assert_eq!(first.attributes.as_ref().unwrap().id, id);
    assert_eq!(
        first.attributes.as_ref().unwrap().labels.get("app"),
        Some(&"burner".to_string())
    );
    let cpu0 = val(&first.cpu.as_ref().unwrap().usage_core_nano_seconds);
    assert!(cpu0 > 0, "{first:?}");
    let mem = first.memory.as_ref().unwrap();
    assert!(val(&mem.usage_bytes) > 24 << 20, "{mem:?}");
    assert!(val(&mem.working_set_bytes) > 24 << 20, "{mem:?}");
    assert!(val(&mem.rss_bytes) > 24 << 20, "{mem:?}");
    assert!(val(&mem.page_faults) > 0, "{mem:?}");
    assert!(mem.timestamp > 0);
    let layer = first.writable_layer.as_ref().unwrap();
    assert!(val(&layer.used_bytes) >= 4 << 20, "{layer:?}");
    assert!(val(&layer.inodes_used) >= 3, "{layer:?}");

    tokio::time::sleep(Duration::from_millis(1500)).await;
    let second = container_stats(&mut client, &id).await;
    let cpu = second.cpu.as_ref().unwrap();
    assert!(val(&cpu.usage_core_nano_seconds) > cpu0, "{cpu:?}");
    // A busy loop on a shared 2-core machine: at least a tenth of a core.
    assert!(val(&cpu.usage_nano_cores) > 100_000_000, "{cpu:?}");
    assert!(cpu.timestamp > first.cpu.as_ref().unwrap().timestamp);

    // ListContainerStats filters.
    let list = |filter: ContainerStatsFilter| {
        let mut client = client.clone();
        async move {
            client
                .list_container_stats(ListContainerStatsRequest {
                    filter: Some(filter),
                })
                .await
                .expect("list container stats")
                .into_inner()
                .stats
                .into_iter()
                .map(|s| s.attributes.unwrap().id)
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(
        list(ContainerStatsFilter::default()).await,
        vec![id.clone()]
    );
    assert_eq!(
        list(ContainerStatsFilter {
            id: id[..12].into(),
            ..Default::default()
        })
        .await,
        vec![id.clone()]
    );
    assert_eq!(
        list(ContainerStatsFilter {
            pod_sandbox_id: pod.id.clone(),
            label_selector: [("app".to_string(), "burner".to_string())].into(),
            ..Default::default()
        })
        .await,
        vec![id.clone()]
    );
    assert!(
        list(ContainerStatsFilter {
            label_selector: [("app".to_string(), "other".to_string())].into(),
            ..Default::default()
        })
        .await
        .is_empty()
    );
    assert!(
        list(ContainerStatsFilter {
            pod_sandbox_id: "0000".into(),
            ..Default::default()
        })
        .await
        .is_empty()
    );

    // Pod stats: the sum of its containers (no cgroup parent), the pod's
    // own network namespace, the container's stats.
    let pod_stats = client
        .pod_sandbox_stats(PodSandboxStatsRequest {
            pod_sandbox_id: pod.id.clone(),
        })
        .await
        .expect("pod stats")
        .into_inner()
        .stats
        .unwrap();
    assert_eq!(pod_stats.attributes.as_ref().unwrap().id, pod.id);
    let linux = pod_stats.linux.as_ref().unwrap();
    assert!(val(&linux.cpu.as_ref().unwrap().usage_core_nano_seconds) > cpu0);
    assert!(val(&linux.memory.as_ref().unwrap().working_set_bytes) > 24 << 20);
    assert!(val(&linux.process.as_ref().unwrap().process_count) >= 1);
    let net = linux.network.as_ref().expect("network stats");
    let names: Vec<_> = net.interfaces.iter().map(|i| i.name.as_str()).collect();
    // Loopback-only CNI: the pod's netns has lo only, not the host's links.
    assert_eq!(names, vec!["lo"], "{net:?}");
    assert_eq!(linux.containers.len(), 1);
    assert_eq!(linux.containers[0].attributes.as_ref().unwrap().id, id);

    let listed = client
        .list_pod_sandbox_stats(ListPodSandboxStatsRequest {
            filter: Some(PodSandboxStatsFilter {
                id: pod.id[..10].into(),
                ..Default::default()
            }),
        })
        .await
        .expect("list pod stats")
        .into_inner()
        .stats;
    assert_eq!(listed.len(), 1);
    let none = client
        .list_pod_sandbox_stats(ListPodSandboxStatsRequest {
            filter: Some(PodSandboxStatsFilter {
                label_selector: [("no".to_string(), "such".to_string())].into(),
                ..Default::default()
            }),
        })
        .await
        .unwrap()
        .into_inner()
        .stats;
    assert!(none.is_empty());

    let err = client
        .container_stats(ContainerStatsRequest {
            container_id: "ffffffffffff".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    let err = client
        .pod_sandbox_stats(PodSandboxStatsRequest {
            pod_sandbox_id: "ffffffffffff".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);

    teardown(&daemon, &pod).await;
}

/// The output of a command run in the container, which must succeed.
async fn output(client: &mut RuntimeServiceClient<Channel>, id: &str, cmd: &[&str]) -> String {
    let r = exec(client, id, cmd, 10).await.expect("exec");
    assert_eq!(
        r.exit_code,
        0,
        "{cmd:?}: {}",
        String::from_utf8_lossy(&r.stderr)
    );
    String::from_utf8_lossy(&r.stdout).trim().to_string()
}

/// A v1 cgroup file of the container, read on the host.
fn cgroup_file(daemon: &Daemon, id: &str, controller: &str, file: &str) -> String {
    let path = Path::new("/sys/fs/cgroup")
        .join(controller)
        .join("crius")
        .join(format!("crius-{id}"))
        .join(file);
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("read {path:?}: {e}\n{}", daemon.log()))
        .trim()
        .to_string()
}

#[tokio::test]
async fn cpu_and_memory_limits_are_applied_and_updated_live() {
    let daemon = daemon(&["busybox"]).await;
    let pod = run_pod(&daemon, "limits").await;
    let mut client = daemon.runtime().await;
    let mut config = container_config("limited", "busybox", &["sleep", "3600"]);
    config.linux = Some(LinuxContainerConfig {
        resources: Some(LinuxContainerResources {
            cpu_period: 100_000,
            cpu_quota: 50_000,
            cpu_shares: 512,
            memory_limit_in_bytes: 64 << 20,
            ..Default::default()
        }),
        security_context: None,
    });
    let id = create_and_start(&mut client, &pod, config).await;
    assert_eq!(
        cgroup_file(&daemon, &id, "cpu", "cpu.cfs_quota_us"),
        "50000"
    );
    assert_eq!(
        cgroup_file(&daemon, &id, "cpu", "cpu.cfs_period_us"),
        "100000"
    );
    assert_eq!(cgroup_file(&daemon, &id, "cpu", "cpu.shares"), "512");
    assert_eq!(
        cgroup_file(&daemon, &id, "memory", "memory.limit_in_bytes"),
        (64u64 << 20).to_string()
    );
    let res = status(&mut client, &id)
        .await
        .resources
        .unwrap()
        .linux
        .unwrap();
    assert_eq!(res.memory_limit_in_bytes, 64 << 20);
    assert_eq!(res.cpu_quota, 50_000);

    client
        .update_container_resources(UpdateContainerResourcesRequest {
            container_id: id.clone(),
            linux: Some(LinuxContainerResources {
                cpu_period: 100_000,
                cpu_quota: 20_000,
                cpu_shares: 256,
                memory_limit_in_bytes: 32 << 20,
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .unwrap_or_else(|e| panic!("update: {e}\n{}", daemon.log()));
    assert_eq!(
        cgroup_file(&daemon, &id, "cpu", "cpu.cfs_quota_us"),
        "20000"
    );
    assert_eq!(cgroup_file(&daemon, &id, "cpu", "cpu.shares"), "256");
    assert_eq!(
        cgroup_file(&daemon, &id, "memory", "memory.limit_in_bytes"),
        (32u64 << 20).to_string()
    );
    let res = status(&mut client, &id)
        .await
        .resources
        .unwrap()
        .linux
        .unwrap();
    assert_eq!(res.memory_limit_in_bytes, 32 << 20);
    assert_eq!(res.cpu_quota, 20_000);
    assert_eq!(res.cpu_shares, 256);
    // The container sees its own limit.
    assert_eq!(
        output(
            &mut client,
            &id,
            &["cat", "/sys/fs/cgroup/memory/memory.limit_in_bytes"]
        )
        .await,
        (32u64 << 20).to_string()
    );
    // Survives a daemon restart (persisted in the record).
    let mut daemon = daemon;
    daemon.restart().await;
    let mut client = daemon.runtime().await;
    let res = status(&mut client, &id)
        .await
        .resources
        .unwrap()
        .linux
        .unwrap();
    assert_eq!(res.memory_limit_in_bytes, 32 << 20);

    // A stopped container has no cgroup to update.
    client
        .stop_container(StopContainerRequest {
            container_id: id.clone(),
            timeout: 0,
        })
        .await
        .unwrap();
    let err = client
        .update_container_resources(UpdateContainerResourcesRequest {
            container_id: id.clone(),
            linux: Some(LinuxContainerResources::default()),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");
    let err = client
        .update_container_resources(UpdateContainerResourcesRequest {
            container_id: "ffffffffffff".into(),
            linux: Some(LinuxContainerResources::default()),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    teardown(&daemon, &pod).await;
}

fn with_security(
    mut config: ContainerConfig,
    sec: LinuxContainerSecurityContext,
) -> ContainerConfig {
    config.linux = Some(LinuxContainerConfig {
        resources: None,
        security_context: Some(sec),
    });
    config
}

/// A `/proc/self/status` field of a fresh process in the container.
async fn proc_status(client: &mut RuntimeServiceClient<Channel>, id: &str, field: &str) -> String {
    let out = output(client, id, &["cat", "/proc/self/status"]).await;
    out.lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .unwrap_or_else(|| panic!("no {field} in {out}"))
        .trim()
        .to_string()
}

fn caps(cap: &[&str], drop: &[&str], ambient: &[&str]) -> Option<Capability> {
    Some(Capability {
        add_capabilities: cap.iter().map(|s| s.to_string()).collect(),
        drop_capabilities: drop.iter().map(|s| s.to_string()).collect(),
        add_ambient_capabilities: ambient.iter().map(|s| s.to_string()).collect(),
    })
}

#[tokio::test]
async fn capabilities_no_new_privs_masked_paths_and_privileged() {
    let daemon = daemon(&["busybox"]).await;
    let pod = run_pod(&daemon, "caps").await;
    let mut client = daemon.runtime().await;
    let sleep = &["sleep", "3600"];

    // Docker's default 14: chown dac_override fowner fsetid kill setgid
    // setuid setpcap net_bind_service net_raw sys_chroot mknod audit_write
    // setfcap.
    let id = create_and_start(
        &mut client,
        &pod,
        container_config("default", "busybox", sleep),
    )
    .await;
    assert_eq!(
        proc_status(&mut client, &id, "CapBnd").await,
        "00000000a80425fb"
    );
    assert_eq!(
        proc_status(&mut client, &id, "CapEff").await,
        "00000000a80425fb"
    );
    assert_eq!(proc_status(&mut client, &id, "NoNewPrivs").await, "0");
    // Masked: empty or /dev/null; read-only: writes fail.
    assert_eq!(
        output(&mut client, &id, &["cat", "/proc/timer_list"]).await,
        ""
    );
    assert_eq!(output(&mut client, &id, &["ls", "/sys/firmware"]).await, "");
    let r = exec(
        &mut client,
        &id,
        &["sh", "-c", "echo 1 > /proc/sys/vm/drop_caches"],
        10,
    )
    .await
    .unwrap();
    assert_ne!(r.exit_code, 0, "/proc/sys is writable");
    let mounts = output(&mut client, &id, &["cat", "/proc/self/mounts"]).await;
    assert!(
        mounts
            .lines()
            .any(|l| l.starts_with("sysfs /sys sysfs ro,")),
        "{mounts}"
    );

    // add NET_ADMIN (bit 12), drop KILL (bit 5); no_new_privs.
    let c = with_security(
        container_config("added", "busybox", sleep),
        LinuxContainerSecurityContext {
            capabilities: caps(&["NET_ADMIN"], &["KILL"], &[]),
            no_new_privs: true,
            ..Default::default()
        },
    );
    let id = create_and_start(&mut client, &pod, c).await;
    assert_eq!(
        proc_status(&mut client, &id, "CapBnd").await,
        format!("{:016x}", (0xa80425fbu64 | 1 << 12) & !(1 << 5))
    );
    assert_eq!(proc_status(&mut client, &id, "NoNewPrivs").await, "1");

    // A security context whose lists are empty masks nothing, as the
    // kubelet's Unmasked procMount asks; without a security context (the
    // containers above) the defaults apply.
    let c = with_security(
        container_config("unmasked", "busybox", sleep),
        LinuxContainerSecurityContext::default(),
    );
    let id = create_and_start(&mut client, &pod, c).await;
    assert_ne!(
        output(&mut client, &id, &["cat", "/proc/timer_list"]).await,
        "",
        "/proc/timer_list is masked"
    );

    // drop ALL, with one ambient capability.
    let c = with_security(
        container_config("none", "busybox", sleep),
        LinuxContainerSecurityContext {
            capabilities: caps(&[], &["ALL"], &[]),
            ..Default::default()
        },
    );
    let id = create_and_start(&mut client, &pod, c).await;
    assert_eq!(
        proc_status(&mut client, &id, "CapBnd").await,
        "0000000000000000"
    );
    assert_eq!(
        proc_status(&mut client, &id, "CapEff").await,
        "0000000000000000"
    );
    let c = with_security(
        container_config("ambient", "busybox", sleep),
        LinuxContainerSecurityContext {
            capabilities: caps(&[], &["ALL"], &["NET_BIND_SERVICE"]),
            run_as_user: Some(Int64Value { value: 1000 }),
            ..Default::default()
        },
    );
    let id = create_and_start(&mut client, &pod, c).await;
    // A non-root user keeps an ambient capability across exec.
    assert_eq!(
        proc_status(&mut client, &id, "CapAmb").await,
        "0000000000000400"
    );
    assert_eq!(
        proc_status(&mut client, &id, "CapEff").await,
        "0000000000000400"
    );

    // privileged: every capability crius has, host devices, /sys rw, no
    // masked or read-only paths. In a pod of its own: containers sharing a
    // network namespace share its sysfs superblock, made read-only by the
    // first (unprivileged) container's mount.
    let priv_pod = run_pod(&daemon, "privileged").await;
    let c = with_security(
        container_config("privileged", "busybox", sleep),
        LinuxContainerSecurityContext {
            privileged: true,
            ..Default::default()
        },
    );
    let id = create_and_start(&mut client, &priv_pod, c).await;
    let own = std::fs::read_to_string("/proc/self/status").unwrap();
    let own_bnd = own
        .lines()
        .find_map(|l| l.strip_prefix("CapBnd:"))
        .unwrap()
        .trim()
        .to_string();
    assert_eq!(proc_status(&mut client, &id, "CapBnd").await, own_bnd);
    assert_eq!(proc_status(&mut client, &id, "CapEff").await, own_bnd);
    let mounts = output(&mut client, &id, &["cat", "/proc/self/mounts"]).await;
    assert!(
        mounts
            .lines()
            .any(|l| l.starts_with("sysfs /sys sysfs rw,")),
        "{mounts}"
    );
    assert!(
        !mounts
            .lines()
            .any(|l| l.split(' ').nth(1) == Some("/proc/timer_list")),
        "{mounts}"
    );
    assert_ne!(output(&mut client, &id, &["ls", "/sys/firmware"]).await, "");
    // A host device beyond the default set, e.g. /dev/loop-control or the
    // first block device.
    let host_dev = ["/dev/loop-control", "/dev/fuse", "/dev/kmsg"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .expect("a host device to look for");
    output(&mut client, &id, &["test", "-c", host_dev]).await;
    // teardown checks the whole daemon: remove the first pod before it.
    stop_pod(&mut client, &pod.id).await;
    remove_pod(&mut client, &pod.id).await;
    teardown(&daemon, &priv_pod).await;
}

#[tokio::test]
async fn devices_are_mapped_and_missing_ones_refused() {
    let daemon = daemon(&["busybox"]).await;
    let pod = run_pod(&daemon, "devices").await;
    let mut client = daemon.runtime().await;
    let mut c = container_config("dev", "busybox", &["sleep", "3600"]);
    c.devices = vec![Device {
        container_path: "/dev/mynull".into(),
        host_path: "/dev/null".into(),
        permissions: "rwm".into(),
    }];
    let id = create_and_start(&mut client, &pod, c).await;
    output(&mut client, &id, &["test", "-c", "/dev/mynull"]).await;
    output(&mut client, &id, &["sh", "-c", "echo hi > /dev/mynull"]).await;
    assert_eq!(output(&mut client, &id, &["cat", "/dev/mynull"]).await, "");
    // Not mapped: no node, and the device cgroup would refuse it anyway.
    let r = exec(&mut client, &id, &["test", "-e", "/dev/loop-control"], 10)
        .await
        .unwrap();
    assert_ne!(r.exit_code, 0);

    let mut c = container_config("missing", "busybox", &["sleep", "3600"]);
    c.devices = vec![Device {
        container_path: "/dev/x".into(),
        host_path: "/dev/no-such-device-crius".into(),
        permissions: "rw".into(),
    }];
    let err = create(&mut client, &pod, c).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    assert!(err.message().contains("no-such-device-crius"), "{err:?}");
    teardown(&daemon, &pod).await;
}

fn seccomp(
    profile_type: security_profile::ProfileType,
    localhost_ref: &str,
) -> Option<SecurityProfile> {
    Some(SecurityProfile {
        profile_type: profile_type as i32,
        localhost_ref: localhost_ref.into(),
    })
}

#[tokio::test]
#[allow(deprecated)] // seccomp_profile_path is still honoured
async fn seccomp_runtime_default_localhost_unconfined_and_apparmor() {
    use security_profile::ProfileType;
    // The operator's opt-in: containers naming no profile get
    // runtime/default (the built-in default, unconfined, is checked in
    // critest_containers.rs).
    let daemon = daemon_with(&["busybox"], &["--seccomp-default", "runtime/default"]).await;
    let pod = run_pod(&daemon, "seccomp").await;
    let mut client = daemon.runtime().await;
    let sleep = &["sleep", "3600"];
    // unshare(CLONE_NEWUSER) needs no capability: only seccomp stops it.
    let unshare = &["unshare", "-U", "true"];

    // No profile named: the node default, runtime/default here.
    let id = create_and_start(
        &mut client,
        &pod,
        container_config("nodedefault", "busybox", sleep),
    )
    .await;
    assert_eq!(proc_status(&mut client, &id, "Seccomp").await, "2");
    let r = exec(&mut client, &id, unshare, 10).await.unwrap();
    assert_ne!(r.exit_code, 0, "unshare allowed under the default profile");
    assert!(
        String::from_utf8_lossy(&r.stderr).contains("not permitted"),
        "{:?}",
        String::from_utf8_lossy(&r.stderr)
    );

    let c = with_security(
        container_config("default", "busybox", sleep),
        LinuxContainerSecurityContext {
            seccomp: seccomp(ProfileType::RuntimeDefault, ""),
            ..Default::default()
        },
    );
    let id = create_and_start(&mut client, &pod, c).await;
    assert_eq!(proc_status(&mut client, &id, "Seccomp").await, "2");
    assert_ne!(
        exec(&mut client, &id, unshare, 10).await.unwrap().exit_code,
        0
    );
    output(&mut client, &id, &["sh", "-c", "mkdir /tmp/d && echo ok"]).await;

    let c = with_security(
        container_config("unconfined", "busybox", sleep),
        LinuxContainerSecurityContext {
            seccomp: seccomp(ProfileType::Unconfined, ""),
            ..Default::default()
        },
    );
    let id = create_and_start(&mut client, &pod, c).await;
    assert_eq!(proc_status(&mut client, &id, "Seccomp").await, "0");
    output(&mut client, &id, unshare).await;

    // The deprecated field, when `seccomp` is absent.
    let c = with_security(
        container_config("deprecated", "busybox", sleep),
        LinuxContainerSecurityContext {
            seccomp_profile_path: "unconfined".into(),
            ..Default::default()
        },
    );
    let id = create_and_start(&mut client, &pod, c).await;
    assert_eq!(proc_status(&mut client, &id, "Seccomp").await, "0");

    // Localhost: a profile of our own that forbids mkdir.
    let profile = daemon.dirs.base.path().join("no-mkdir.json");
    std::fs::write(
        &profile,
        r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["mkdir","mkdirat"],"action":"SCMP_ACT_ERRNO","errnoRet":1}]}"#,
    )
    .unwrap();
    let c = with_security(
        container_config("localhost", "busybox", sleep),
        LinuxContainerSecurityContext {
            seccomp: seccomp(ProfileType::Localhost, profile.to_str().unwrap()),
            ..Default::default()
        },
    );
    let id = create_and_start(&mut client, &pod, c).await;
    assert_eq!(proc_status(&mut client, &id, "Seccomp").await, "2");
    let r = exec(&mut client, &id, &["mkdir", "/tmp/x"], 10)
        .await
        .unwrap();
    assert_ne!(r.exit_code, 0);
    assert!(
        String::from_utf8_lossy(&r.stderr).contains("not permitted"),
        "{:?}",
        String::from_utf8_lossy(&r.stderr)
    );
    output(&mut client, &id, unshare).await;

    // Missing or invalid Localhost profiles, AppArmor profiles on a host
    // without AppArmor: InvalidArgument, nothing created.
    std::fs::write(daemon.dirs.base.path().join("bad.json"), "{nope").unwrap();
    let bad = daemon.dirs.base.path().join("bad.json");
    let missing = daemon.dirs.base.path().join("missing.json");
    for (name, sec) in [
        (
            "missing",
            LinuxContainerSecurityContext {
                seccomp: seccomp(ProfileType::Localhost, missing.to_str().unwrap()),
                ..Default::default()
            },
        ),
        (
            "invalid",
            LinuxContainerSecurityContext {
                seccomp_profile_path: format!("localhost/{}", bad.display()),
                ..Default::default()
            },
        ),
        (
            "apparmor",
            LinuxContainerSecurityContext {
                apparmor: seccomp(ProfileType::Localhost, "k8s-custom"),
                ..Default::default()
            },
        ),
    ] {
        let err = create(
            &mut client,
            &pod,
            with_security(container_config(name, "busybox", sleep), sec),
        )
        .await
        .unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{name}: {err:?}");
    }
    // Unconfined and runtime/default AppArmor, and SELinux options, are fine.
    let c = with_security(
        container_config("lsm", "busybox", sleep),
        LinuxContainerSecurityContext {
            apparmor: seccomp(ProfileType::Unconfined, ""),
            selinux_options: Some(SeLinuxOption {
                user: "system_u".into(),
                role: "system_r".into(),
                r#type: "container_t".into(),
                level: "s0:c1,c2".into(),
            }),
            ..Default::default()
        },
    );
    create_and_start(&mut client, &pod, c).await;
    teardown(&daemon, &pod).await;
}

#[tokio::test]
async fn memory_limit_overrun_is_reported_as_oom_killed() {
    let daemon = daemon(&["busybox"]).await;
    let pod = run_pod(&daemon, "oom").await;
    let mut client = daemon.runtime().await;
    let st = run_memory_hog(&mut client, &pod).await;
    assert_eq!(st.exit_code, 137, "{st:?}");
    assert_eq!(st.reason, "OOMKilled", "{st:?}");
    teardown(&daemon, &pod).await;
}

/// Removes a cgroup dir (and its empty children) from every v1 hierarchy.
fn remove_cgroup(rel: &str) {
    for entry in std::fs::read_dir("/sys/fs/cgroup").unwrap().flatten() {
        let dir = entry.path().join(rel.trim_start_matches('/'));
        if dir.is_dir() {
            let mut children: Vec<_> = std::fs::read_dir(&dir)
                .unwrap()
                .flatten()
                .filter(|e| e.path().is_dir())
                .map(|e| e.path())
                .collect();
            children.push(dir.clone());
            for d in children {
                std::fs::remove_dir(&d).unwrap_or_else(|e| panic!("rmdir {d:?}: {e}"));
            }
        }
    }
}

#[tokio::test]
async fn pod_stats_come_from_the_pod_cgroup_and_list_stats_is_cheap() {
    let daemon = daemon(&["busybox"]).await;
    let parent = format!("/crius-e2e-pod-{}", std::process::id());
    let pod = run_pod(&daemon, "no-parent").await;
    // A second pod with a cgroup parent (the first shows pods without).
    let mut config = pod.config.clone();
    config.metadata.as_mut().unwrap().name = "with-parent".into();
    config.metadata.as_mut().unwrap().uid = "uid-with-parent".into();
    config.linux = Some(LinuxPodSandboxConfig {
        cgroup_parent: parent.clone(),
        ..Default::default()
    });
    let mut client = daemon.runtime().await;
    let with_parent = Pod {
        id: client
            .run_pod_sandbox(RunPodSandboxRequest {
                config: Some(config.clone()),
                runtime_handler: String::new(),
            })
            .await
            .expect("run pod")
            .into_inner()
            .pod_sandbox_id,
        config,
        log_dir: pod.log_dir.clone(),
    };
    let busy = "while :; do :; done";
    let mut ids = Vec::new();
    for i in 0..2 {
        ids.push(
            create_and_start(
                &mut client,
                &with_parent,
                container_config(&format!("c{i}"), "busybox", &["sh", "-c", busy]),
            )
            .await,
        );
    }
    // More containers, for the cost of ListContainerStats.
    for i in 0..8 {
        create_and_start(
            &mut client,
            &pod,
            container_config(&format!("idle{i}"), "busybox", &["sleep", "3600"]),
        )
        .await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let stats = client
        .pod_sandbox_stats(PodSandboxStatsRequest {
            pod_sandbox_id: with_parent.id.clone(),
        })
        .await
        .expect("pod stats")
        .into_inner()
        .stats
        .unwrap();
    let linux = stats.linux.unwrap();
    let pod_cpu = val(&linux.cpu.as_ref().unwrap().usage_core_nano_seconds);
    let cpuacct = Path::new("/sys/fs/cgroup/cpuacct")
        .join(parent.trim_start_matches('/'))
        .join("cpuacct.usage");
    let host: u64 = std::fs::read_to_string(&cpuacct)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    // Read from the pod cgroup: the host file moved on a little since.
    assert!(pod_cpu > 0 && pod_cpu <= host, "{pod_cpu} vs {host}");
    let ctr_sum: u64 = linux
        .containers
        .iter()
        .map(|c| val(&c.cpu.as_ref().unwrap().usage_core_nano_seconds))
        .sum();
    assert_eq!(linux.containers.len(), 2);
    assert!(ctr_sum > 0);
    // Both shells are in the pod cgroup's pids count.
    assert!(val(&linux.process.as_ref().unwrap().process_count) >= 2);

    let started = Instant::now();
    let rounds = 10;
    for _ in 0..rounds {
        let n = client
            .list_container_stats(ListContainerStatsRequest { filter: None })
            .await
            .unwrap()
            .into_inner()
            .stats
            .len();
        assert_eq!(n, 10);
    }
    // Reported, not asserted (two busy loops share this machine's cores).
    println!(
        "ListContainerStats, 10 containers: {:?} per call",
        started.elapsed() / rounds
    );

    // teardown checks the whole daemon: the other pod goes first.
    let mut client2 = daemon.runtime().await;
    stop_pod(&mut client2, &with_parent.id).await;
    remove_pod(&mut client2, &with_parent.id).await;
    teardown(&daemon, &pod).await;
    remove_cgroup(&parent);
}

#[tokio::test]
async fn the_node_pids_limit_applies_to_every_container_and_survives_updates() {
    let daemon = daemon_with(&["busybox"], &["--pids-limit", "64"]).await;
    let pod = run_pod(&daemon, "pids").await;
    let mut client = daemon.runtime().await;
    let id = create_and_start(
        &mut client,
        &pod,
        container_config("capped", "busybox", &["sleep", "3600"]),
    )
    .await;
    assert_eq!(cgroup_file(&daemon, &id, "pids", "pids.max"), "64");
    client
        .update_container_resources(UpdateContainerResourcesRequest {
            container_id: id.clone(),
            linux: Some(LinuxContainerResources {
                cpu_shares: 300,
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .unwrap_or_else(|e| panic!("update: {e}\n{}", daemon.log()));
    assert_eq!(cgroup_file(&daemon, &id, "cpu", "cpu.shares"), "300");
    assert_eq!(cgroup_file(&daemon, &id, "pids", "pids.max"), "64");
    teardown(&daemon, &pod).await;
}

fn pid_mode(mode: NamespaceMode, target_id: &str) -> LinuxContainerSecurityContext {
    LinuxContainerSecurityContext {
        namespace_options: Some(NamespaceOption {
            pid: mode as i32,
            target_id: target_id.into(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn pod_pid_mode(mode: NamespaceMode) -> Option<LinuxPodSandboxConfig> {
    Some(LinuxPodSandboxConfig {
        security_context: Some(LinuxSandboxSecurityContext {
            namespace_options: Some(NamespaceOption {
                pid: mode as i32,
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    })
}

/// Starts `sleep <secs>` (its command line tells it apart in /proc) with
/// the PID namespace `mode`.
async fn start_sleep_in(
    client: &mut RuntimeServiceClient<Channel>,
    pod: &Pod,
    name: &str,
    secs: &str,
    mode: NamespaceMode,
    target_id: &str,
) -> String {
    let config = container_config(name, "busybox", &["sleep", secs]);
    create_and_start(
        client,
        pod,
        with_security(config, pid_mode(mode, target_id)),
    )
    .await
}

/// The processes the container sees in its /proc: pid and command line
/// (arguments joined by spaces). The listing shell and its `tr` are in it.
/// Newlines inside a command line (a host's `sh -c` script in NODE mode)
/// become spaces too, so each process stays on one line.
async fn processes(client: &mut RuntimeServiceClient<Channel>, id: &str) -> Vec<(u32, String)> {
    let out = output(
        client,
        id,
        &[
            "sh",
            "-c",
            "for d in /proc/[0-9]*; do echo \"${d#/proc/} $(tr '\\0\\n' '  ' <$d/cmdline 2>/dev/null)\"; done",
        ],
    )
    .await;
    out.lines()
        .map(|l| {
            let (pid, cmd) = l.split_once(' ').unwrap_or((l, ""));
            let pid = pid
                .parse()
                .unwrap_or_else(|e| panic!("line {l:?} of the /proc listing: {e}\n{out}"));
            (pid, cmd.trim().to_string())
        })
        .collect()
}

fn host_cmdline(pid: u32) -> String {
    let raw = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap();
    String::from_utf8_lossy(&raw)
        .replace(['\0', '\n'], " ")
        .trim()
        .to_string()
}

#[tokio::test]
async fn pid_namespace_modes_container_target_pod_and_node() {
    let daemon = daemon(&["busybox"]).await;
    let mut client = daemon.runtime().await;

    // CONTAINER: the container's command is PID 1 and nothing else of the
    // node or pod is visible.
    let pod = run_pod(&daemon, "pid-container").await;
    let own = start_sleep_in(
        &mut client,
        &pod,
        "own",
        "3601",
        NamespaceMode::Container,
        "",
    )
    .await;
    let seen = processes(&mut client, &own).await;
    assert!(seen.contains(&(1, "sleep 3601".into())), "{seen:?}");
    assert!(
        // Besides PID 1: the listing shell, its `tr`s, and processes gone
        // before their command line was read (empty).
        seen.iter().all(|(pid, cmd)| *pid == 1
            || cmd.is_empty()
            || cmd.starts_with("sh -c")
            || cmd.starts_with("tr")),
        "{seen:?}"
    );

    // TARGET: a second container joins the first one's namespace: it sees
    // the first's command as PID 1, and the first sees its command.
    let peek = start_sleep_in(
        &mut client,
        &pod,
        "peek",
        "3602",
        NamespaceMode::Target,
        &own,
    )
    .await;
    let seen = processes(&mut client, &peek).await;
    assert!(seen.contains(&(1, "sleep 3601".into())), "{seen:?}");
    assert!(
        seen.iter()
            .any(|(pid, cmd)| *pid != 1 && cmd == "sleep 3602"),
        "{seen:?}"
    );
    let seen = processes(&mut client, &own).await;
    assert!(seen.iter().any(|(_, cmd)| cmd == "sleep 3602"), "{seen:?}");
    // A target that does not exist is refused.
    let err = create(
        &mut client,
        &pod,
        with_security(
            container_config("lost", "busybox", &["sleep", "1"]),
            pid_mode(NamespaceMode::Target, "0123456789ab"),
        ),
    )
    .await
    .unwrap_err();
    assert_eq!(err.code(), Code::NotFound, "{err}");
    teardown(&daemon, &pod).await;

    // POD: PID 1 is the pod's infra process (`crius pause --id <pod>`), and
    // the pod's containers see each other.
    let pod = run_pod_with(&daemon, "pid-pod", pod_pid_mode(NamespaceMode::Pod)).await;
    let mut ids = Vec::new();
    for (name, secs) in [("a", "3603"), ("b", "3604")] {
        ids.push(start_sleep_in(&mut client, &pod, name, secs, NamespaceMode::Pod, "").await);
    }
    let seen = processes(&mut client, &ids[0]).await;
    let (_, init) = seen.iter().find(|(pid, _)| *pid == 1).expect("a PID 1");
    assert!(
        init.contains(&format!(" pause --id {} ", pod.id)),
        "PID 1 is not the infra process: {seen:?}"
    );
    for secs in ["3603", "3604"] {
        let cmd = format!("sleep {secs}");
        assert!(
            seen.iter().any(|(pid, c)| *pid != 1 && *c == cmd),
            "{cmd} not seen: {seen:?}"
        );
    }
    teardown(&daemon, &pod).await;

    // NODE: the host's PID 1 and this test process are visible with the
    // same pids and command lines as on the host.
    let pod = run_pod_with(&daemon, "pid-node", pod_pid_mode(NamespaceMode::Node)).await;
    let id = start_sleep_in(&mut client, &pod, "host", "3605", NamespaceMode::Node, "").await;
    let seen = processes(&mut client, &id).await;
    for pid in [1, std::process::id()] {
        let expected = host_cmdline(pid);
        assert!(
            seen.contains(&(pid, expected.clone())),
            "host pid {pid} ({expected}) not seen: {seen:?}"
        );
    }
    teardown(&daemon, &pod).await;
}

#[tokio::test]
async fn run_as_user_group_and_supplemental_groups_policy() {
    let daemon = daemon(&["busybox"]).await;
    let pod = run_pod(&daemon, "groups").await;
    let mut client = daemon.runtime().await;
    let status_features = client
        .status(StatusRequest::default())
        .await
        .unwrap()
        .into_inner()
        .features;
    assert_eq!(
        status_features,
        Some(RuntimeFeatures {
            supplemental_groups_policy: true
        })
    );

    let merge = SupplementalGroupsPolicy::Merge as i32;
    let strict = SupplementalGroupsPolicy::Strict as i32;
    let by_uid = |policy| LinuxContainerSecurityContext {
        run_as_user: Some(Int64Value { value: 1000 }),
        run_as_group: Some(Int64Value { value: 3000 }),
        supplemental_groups: vec![4000, 5000],
        supplemental_groups_policy: policy,
        ..Default::default()
    };
    let by_name = |policy| LinuxContainerSecurityContext {
        run_as_username: "tester".into(),
        supplemental_groups_policy: policy,
        ..Default::default()
    };
    // The image's /etc/group has `extra:x:2000:tester`.
    let cases = [
        (
            "uid-merge",
            by_uid(merge),
            3000,
            vec![2000, 3000, 4000, 5000],
        ),
        ("uid-strict", by_uid(strict), 3000, vec![3000, 4000, 5000]),
        ("name-merge", by_name(merge), 1000, vec![1000, 2000]),
        ("name-strict", by_name(strict), 1000, vec![1000]),
    ];
    for (name, sec, gid, groups) in cases {
        let id = create_and_start(
            &mut client,
            &pod,
            with_security(container_config(name, "busybox", &["sleep", "3600"]), sec),
        )
        .await;
        let ids = |line: String| -> Vec<u32> {
            let mut v: Vec<u32> = line
                .split_whitespace()
                .map(|s| s.parse().unwrap())
                .collect();
            v.sort_unstable();
            v
        };
        assert_eq!(
            ids(proc_status(&mut client, &id, "Uid").await),
            vec![1000; 4],
            "{name}"
        );
        assert_eq!(
            ids(proc_status(&mut client, &id, "Gid").await),
            vec![gid; 4],
            "{name}"
        );
        assert_eq!(
            ids(proc_status(&mut client, &id, "Groups").await),
            groups,
            "{name}"
        );
        assert_eq!(output(&mut client, &id, &["id", "-un"]).await, "tester");

        // ContainerStatus reports the identity the process got.
        let user = status(&mut client, &id)
            .await
            .user
            .and_then(|u| u.linux)
            .unwrap_or_else(|| panic!("{name}: no user in status"));
        assert_eq!((user.uid, user.gid), (1000, i64::from(gid)), "{name}");
        let mut reported = user.supplemental_groups.clone();
        reported.sort_unstable();
        let expected: Vec<i64> = groups.iter().map(|g| i64::from(*g)).collect();
        assert_eq!(reported, expected, "{name}");
    }
    teardown(&daemon, &pod).await;
}

#[tokio::test]
async fn pod_sysctls_are_seen_by_its_containers() {
    let daemon = daemon(&["busybox"]).await;
    let host_value = |key: &str| {
        std::fs::read_to_string(format!("/proc/sys/{}", key.replace('.', "/")))
            .unwrap()
            .trim()
            .to_string()
    };
    let sysctls = [
        ("net.ipv4.ip_unprivileged_port_start", "123"),
        ("kernel.shm_rmid_forced", "1"),
    ];
    let before: Vec<String> = sysctls.iter().map(|(k, _)| host_value(k)).collect();
    let pod = run_pod_with(
        &daemon,
        "sysctls",
        Some(LinuxPodSandboxConfig {
            sysctls: sysctls
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            ..Default::default()
        }),
    )
    .await;
    let mut client = daemon.runtime().await;
    let id = create_and_start(
        &mut client,
        &pod,
        container_config("reader", "busybox", &["sleep", "3600"]),
    )
    .await;
    for (key, value) in sysctls {
        let path = format!("/proc/sys/{}", key.replace('.', "/"));
        assert_eq!(
            output(&mut client, &id, &["cat", &path]).await,
            value,
            "{key}"
        );
    }
    // Set in the pod's namespaces, not on the node.
    let after: Vec<String> = sysctls.iter().map(|(k, _)| host_value(k)).collect();
    assert_eq!(before, after);
    teardown(&daemon, &pod).await;
}

/// A pod whose cgroup parent is a kubelet-style systemd slice, and the
/// answer to creating a container in it.
async fn create_in_slice_pod(daemon: &Daemon, name: &str) -> (Pod, Result<String, tonic::Status>) {
    let pod = run_pod_with(
        daemon,
        name,
        Some(LinuxPodSandboxConfig {
            cgroup_parent: "kubepods-besteffort-pode2e.slice".into(),
            ..Default::default()
        }),
    )
    .await;
    let config = container_config("c", "busybox", &["sleep", "60"]);
    let created = create(&mut daemon.runtime().await, &pod, config).await;
    (pod, created)
}

#[tokio::test]
async fn cgroup_driver_and_pod_parent_must_agree() {
    // cgroupfs with a systemd slice as parent: kubelet and crius disagree on
    // the driver.
    let daemon = daemon(&["busybox"]).await;
    let (pod, created) = create_in_slice_pod(&daemon, "slice-on-cgroupfs").await;
    let err = created.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err}");
    assert!(err.message().contains("systemd slice"), "{err}");
    teardown(&daemon, &pod).await;
    drop(daemon);

    // The systemd driver places containers in `crius-<id>.scope` under the
    // pod's slice; on a node without systemd as init it refuses with the
    // cause instead.
    let daemon = daemon_with(&["busybox"], &["--cgroup-manager", "systemd"]).await;
    let (pod, created) = create_in_slice_pod(&daemon, "systemd").await;
    let mut client = daemon.runtime().await;
    if Path::new("/run/systemd/system").is_dir() {
        let id = created.unwrap_or_else(|e| panic!("create under systemd: {e}\n{}", daemon.log()));
        client
            .start_container(StartContainerRequest {
                container_id: id.clone(),
            })
            .await
            .expect("start container");
        let stats = container_stats(&mut client, &id).await;
        assert!(val(&stats.memory.unwrap().usage_bytes) > 0);
    } else {
        let err = created.unwrap_err();
        assert_eq!(err.code(), Code::FailedPrecondition, "{err}");
        assert!(
            err.message().contains("systemd is not running")
                && err.message().contains("/run/systemd/system"),
            "{err}"
        );
    }
    teardown(&daemon, &pod).await;
}
