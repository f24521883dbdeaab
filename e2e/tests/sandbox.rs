//! Pod sandboxes against the real binary and Debian's CNI plugins: pinned
//! namespaces, bridge networking, rollback, idempotence, restart recovery,
//! and nothing left behind.
//!
//! Tests run in parallel, so each owns a bridge (`crius-e2e<N>`), a subnet
//! (`10.88.<N>.0/24`) and a host-local data dir in its temp dir, and checks
//! at the end that none of it is left: mounts, veths, the bridge, iptables
//! rules, leases, infra processes.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use crius_e2e::{Daemon, Dirs, require_root};
use crius_proto::runtime_service_client::RuntimeServiceClient;
use crius_proto::*;
use serde_json::Value;
use tonic::transport::Channel;

const CNI_PLUGIN_DIR: &str = "/usr/lib/cni";

/// Runs a host tool; a missing tool or a failure fails the test loudly.
fn run(program: &str, args: &[&str]) -> String {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{program} is required for this test: {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// One test's pod network: its bridge, subnet and host-local data dir.
struct TestNet {
    n: u8,
    dirs: Arc<Dirs>,
}

impl TestNet {
    /// Writes the conflist (bridge + host-local, portmap, loopback) into the
    /// daemon's CNI config dir.
    fn new(dirs: &Arc<Dirs>, n: u8) -> TestNet {
        require_root();
        for tool in [
            "ip",
            "nsenter",
            "iptables-save",
            "iptables",
            "tc",
            "mount",
            "umount",
        ] {
            run("sh", &["-c", &format!("command -v {tool}")]);
        }
        let net = TestNet {
            n,
            dirs: dirs.clone(),
        };
        // A bridge left by an earlier crashed run of this very test.
        net.delete_bridge();
        std::fs::write(
            dirs.cni_config_dir().join("10-e2e.conflist"),
            net.conflist("bridge"),
        )
        .unwrap();
        net
    }

    fn bridge(&self) -> String {
        format!("crius-e2e{}", self.n)
    }

    fn subnet_prefix(&self) -> String {
        format!("10.88.{}.", self.n)
    }

    fn ipam_dir(&self) -> PathBuf {
        self.dirs.base.path().join("ipam")
    }

    /// The conflist; `extra` plugin types are appended after portmap.
    fn conflist(&self, first: &str) -> String {
        self.conflist_with(first, &[])
    }

    fn conflist_with(&self, first: &str, extra: &[&str]) -> String {
        let mut plugins = vec![
            serde_json::json!({
                "type": first,
                "bridge": self.bridge(),
                "isGateway": true,
                "ipMasq": true,
                "hairpinMode": true,
                "ipam": {
                    "type": "host-local",
                    "dataDir": self.ipam_dir(),
                    "routes": [{"dst": "0.0.0.0/0"}],
                    "ranges": [[{"subnet": format!("10.88.{}.0/24", self.n)}]],
                },
            }),
            serde_json::json!({"type": "portmap", "capabilities": {"portMappings": true}}),
        ];
        for t in extra {
            plugins.push(match *t {
                "bandwidth" => {
                    serde_json::json!({"type": t, "capabilities": {"bandwidth": true}})
                }
                _ => serde_json::json!({"type": t}),
            });
        }
        plugins.push(serde_json::json!({"type": "loopback"}));
        // 1.1.0 is more than Debian's plugins speak: the invoker negotiates.
        serde_json::json!({
            "cniVersion": "1.1.0",
            "name": format!("crius-e2e{}", self.n),
            "plugins": plugins,
        })
        .to_string()
    }

    fn delete_bridge(&self) {
        let exists = Command::new("ip")
            .args(["link", "show", &self.bridge()])
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false);
        if exists {
            run("ip", &["link", "del", &self.bridge()]);
        }
    }

    /// Nothing of the pods is left: veths, iptables rules, leases, mounts,
    /// pins, infra processes. Deletes the test's bridge.
    fn assert_clean(&self) {
        let veths = Command::new("ip")
            .args(["-o", "link", "show", "master", &self.bridge()])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default();
        assert!(veths.trim().is_empty(), "veths left on the bridge: {veths}");
        self.delete_bridge();
        let rules = run("iptables-save", &[]);
        let subnet = self.subnet_prefix();
        let left: Vec<&str> = rules.lines().filter(|l| l.contains(&subnet)).collect();
        assert!(left.is_empty(), "iptables rules left: {left:#?}");
        let leases = leases(&self.ipam_dir());
        assert!(leases.is_empty(), "host-local leases left: {leases:?}");
        assert_no_pod_leftovers(&self.dirs);
    }
}

impl Drop for TestNet {
    /// A passing test has cleaned up already. A failing one may have left
    /// pods running: take down what would outlive the temp dir (infra
    /// processes, pins and their netns with the veths, iptables rules, the
    /// bridge) so that one failure does not leak into the machine.
    fn drop(&mut self) {
        if std::thread::panicking() {
            let ns_dir = self.dirs.runroot().join("ns");
            for line in processes_mentioning(&format!("--ns-dir {}", ns_dir.display())) {
                if let Some(pid) = line.split(':').next() {
                    let _ = Command::new("kill").args(["-9", pid]).output();
                }
            }
            // Host-side devices from the recorded CNI results (the
            // bandwidth plugin's ifb lives outside the netns).
            let records = self.dirs.root().join("sandboxes");
            for entry in std::fs::read_dir(records).into_iter().flatten().flatten() {
                let record: Value = std::fs::read(entry.path().join("sandbox.json"))
                    .ok()
                    .and_then(|b| serde_json::from_slice(&b).ok())
                    .unwrap_or_default();
                let ifaces = record["status"]["cni_result"]["interfaces"]
                    .as_array()
                    .cloned();
                for iface in ifaces.unwrap_or_default() {
                    let name = iface["name"].as_str().unwrap_or_default();
                    if iface.get("sandbox").is_none() && name != self.bridge() && !name.is_empty() {
                        let _ = Command::new("ip").args(["link", "del", name]).output();
                    }
                }
            }
            let mut mounts = mounts_under(self.dirs.base.path());
            mounts.sort();
            for mount in mounts.iter().rev() {
                let _ = Command::new("umount").args(["-l", mount]).output();
            }
            let rules = Command::new("iptables-save")
                .args(["-t", "nat"])
                .output()
                .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
                .unwrap_or_default();
            let mut chains = Vec::new();
            for rule in rules.lines().filter(|l| l.contains(&self.subnet_prefix())) {
                let mut args: Vec<String> = shell_words(rule);
                if args.first().map(String::as_str) == Some("-A") {
                    args[0] = "-D".into();
                    if let Some(pos) = args.iter().position(|a| a == "-j") {
                        chains.extend(args.get(pos + 1).filter(|c| c.starts_with("CNI-")).cloned());
                    }
                    let _ = Command::new("iptables")
                        .args(["-t", "nat"])
                        .args(&args)
                        .output();
                }
            }
            for chain in chains {
                let _ = Command::new("iptables")
                    .args(["-t", "nat", "-F", &chain])
                    .output();
                let _ = Command::new("iptables")
                    .args(["-t", "nat", "-X", &chain])
                    .output();
            }
        }
        let _ = Command::new("ip")
            .args(["link", "del", &self.bridge()])
            .output();
    }
}

/// Splits an iptables-save line into arguments (double quotes group words).
fn shell_words(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut word = String::new();
    let (mut quoted, mut escaped, mut any) = (false, false, false);
    for c in line.chars() {
        match c {
            _ if escaped => {
                word.push(c);
                escaped = false;
            }
            '\\' => escaped = true,
            '"' => {
                quoted = !quoted;
                any = true;
            }
            ' ' if !quoted => {
                if any || !word.is_empty() {
                    out.push(std::mem::take(&mut word));
                }
                any = false;
            }
            _ => word.push(c),
        }
    }
    if any || !word.is_empty() {
        out.push(word);
    }
    out
}

/// host-local keeps one file per leased IP under `<dataDir>/<network>/`.
fn leases(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for network in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        for file in std::fs::read_dir(network.path())
            .into_iter()
            .flatten()
            .flatten()
        {
            let name = file.file_name().to_string_lossy().into_owned();
            if name.parse::<std::net::IpAddr>().is_ok() {
                out.push(file.path());
            }
        }
    }
    out
}

fn mounts_under(dir: &Path) -> Vec<String> {
    let prefix = dir.to_string_lossy().into_owned();
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter_map(|l| l.split(' ').nth(4).map(str::to_string))
        .filter(|p| p.starts_with(&prefix))
        .collect()
}

/// Processes whose command line mentions `needle` (infra processes carry
/// their sandbox id).
fn processes_mentioning(needle: &str) -> Vec<String> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.parse::<u32>().is_err() {
            continue;
        }
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        let text = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        if text.contains(needle) {
            out.push(format!("{name}: {text}"));
        }
    }
    out
}

/// No mount under the test dirs, no pins, no per-pod dirs, no records.
fn assert_no_pod_leftovers(dirs: &Dirs) {
    let mounts = mounts_under(dirs.base.path());
    assert!(mounts.is_empty(), "mounts left: {mounts:?}");
    for dir in [
        dirs.runroot().join("ns/net"),
        dirs.runroot().join("ns/ipc"),
        dirs.runroot().join("ns/uts"),
        dirs.runroot().join("sandboxes"),
        dirs.root().join("sandboxes"),
    ] {
        let left: Vec<_> = std::fs::read_dir(&dir)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path())
            .collect();
        assert!(left.is_empty(), "left in {dir:?}: {left:?}");
    }
    // Infra processes carry the pin dir of their crius; plugin scripts live
    // in the test's plugin dir.
    let mut left =
        processes_mentioning(&format!("--ns-dir {}", dirs.runroot().join("ns").display()));
    left.extend(processes_mentioning(&format!(
        "{}/",
        dirs.base.path().join("plugins").display()
    )));
    assert!(left.is_empty(), "processes left: {left:?}");
}

fn pod_config(name: &str, uid: &str, dirs: &Dirs) -> PodSandboxConfig {
    PodSandboxConfig {
        metadata: Some(PodSandboxMetadata {
            name: name.into(),
            uid: uid.into(),
            namespace: "e2e".into(),
            attempt: 0,
        }),
        hostname: format!("{name}-host"),
        log_directory: dirs
            .base
            .path()
            .join("logs")
            .join(uid)
            .to_string_lossy()
            .into_owned(),
        dns_config: Some(DnsConfig {
            servers: vec!["10.96.0.10".into()],
            searches: vec!["e2e.svc.cluster.local".into()],
            options: vec!["ndots:5".into()],
        }),
        labels: [("app".to_string(), name.to_string())].into(),
        annotations: [("e2e/annotation".to_string(), "yes".to_string())].into(),
        linux: Some(LinuxPodSandboxConfig {
            cgroup_parent: "/kubepods/e2e".into(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

async fn run_pod(client: &mut RuntimeServiceClient<Channel>, config: PodSandboxConfig) -> String {
    client
        .run_pod_sandbox(RunPodSandboxRequest {
            config: Some(config),
            runtime_handler: String::new(),
        })
        .await
        .unwrap_or_else(|s| panic!("RunPodSandbox failed: {s:?}"))
        .into_inner()
        .pod_sandbox_id
}

/// Status plus the parsed verbose info.
async fn status(client: &mut RuntimeServiceClient<Channel>, id: &str) -> (PodSandboxStatus, Value) {
    let resp = client
        .pod_sandbox_status(PodSandboxStatusRequest {
            pod_sandbox_id: id.into(),
            verbose: true,
        })
        .await
        .unwrap_or_else(|s| panic!("PodSandboxStatus {id} failed: {s:?}"))
        .into_inner();
    let info: Value = serde_json::from_str(&resp.info["info"]).unwrap();
    (resp.status.unwrap(), info)
}

async fn stop_and_remove(client: &mut RuntimeServiceClient<Channel>, id: &str) {
    client
        .stop_pod_sandbox(StopPodSandboxRequest {
            pod_sandbox_id: id.into(),
        })
        .await
        .unwrap_or_else(|s| panic!("StopPodSandbox failed: {s:?}"));
    client
        .remove_pod_sandbox(RemovePodSandboxRequest {
            pod_sandbox_id: id.into(),
        })
        .await
        .unwrap_or_else(|s| panic!("RemovePodSandbox failed: {s:?}"));
}

async fn list(
    client: &mut RuntimeServiceClient<Channel>,
    filter: PodSandboxFilter,
) -> Vec<PodSandbox> {
    client
        .list_pod_sandbox(ListPodSandboxRequest {
            filter: Some(filter),
        })
        .await
        .unwrap()
        .into_inner()
        .items
}

fn nsenter(ns_flag: &str, path: &str, cmd: &[&str]) -> String {
    let arg = format!("--{ns_flag}={path}");
    let mut args = vec![arg.as_str()];
    args.extend_from_slice(cmd);
    run("nsenter", &args)
}

async fn start_daemon(dirs: &Arc<Dirs>, extra_plugin_dir: Option<&Path>) -> Daemon {
    let mut args = Vec::new();
    if let Some(dir) = extra_plugin_dir {
        args.push("--cni-plugin-dir".to_string());
        args.push(dir.to_string_lossy().into_owned());
    }
    args.push("--cni-plugin-dir".into());
    args.push(CNI_PLUGIN_DIR.into());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    Daemon::start_with(dirs.clone(), &args).await
}

#[tokio::test]
async fn two_pods_get_distinct_ips_and_configured_namespaces() {
    let dirs = Dirs::new();
    let net = TestNet::new(&dirs, 11);
    std::fs::write(
        dirs.cni_config_dir().join("10-e2e.conflist"),
        net.conflist_with("bridge", &["bandwidth"]),
    )
    .unwrap();
    let daemon = start_daemon(&dirs, None).await;
    let mut client = daemon.runtime().await;

    let mut first = pod_config("web", "uid-web", &dirs);
    first.port_mappings = vec![PortMapping {
        protocol: Protocol::Tcp as i32,
        container_port: 80,
        host_port: 18011,
        host_ip: String::new(),
    }];
    first
        .annotations
        .insert("kubernetes.io/ingress-bandwidth".into(), "1M".into());
    first
        .annotations
        .insert("kubernetes.io/egress-bandwidth".into(), "2M".into());
    first.linux.as_mut().unwrap().sysctls = [(
        "net.ipv4.ip_unprivileged_port_start".to_string(),
        "123".to_string(),
    )]
    .into();
    let a = run_pod(&mut client, first).await;
    let b = run_pod(&mut client, pod_config("db", "uid-db", &dirs)).await;

    let (sa, info_a) = status(&mut client, &a).await;
    let (sb, _) = status(&mut client, &b).await;
    assert_eq!(sa.state, PodSandboxState::SandboxReady as i32);
    let (ip_a, ip_b) = (sa.network.unwrap().ip, sb.network.unwrap().ip);
    assert!(ip_a.starts_with(&net.subnet_prefix()), "{ip_a}");
    assert!(ip_b.starts_with(&net.subnet_prefix()), "{ip_b}");
    assert_ne!(ip_a, ip_b);
    assert_eq!(sa.metadata.unwrap().name, "web");
    assert_eq!(sa.labels["app"], "web");
    assert_eq!(sa.annotations["e2e/annotation"], "yes");
    assert_eq!(sa.runtime_handler, "runc");

    // The pinned netns has eth0 with the IP and a default route.
    let netns = info_a["namespaces"]["network"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(netns.starts_with(&dirs.runroot().to_string_lossy().into_owned()));
    let addr = nsenter(
        "net",
        &netns,
        &["ip", "-4", "-o", "addr", "show", "dev", "eth0"],
    );
    assert!(addr.contains(&format!("{ip_a}/24")), "{addr}");
    let routes = nsenter("net", &netns, &["ip", "-4", "route"]);
    assert!(
        routes.contains(&format!("default via 10.88.{}.1", net.n)),
        "{routes}"
    );
    let lo = nsenter("net", &netns, &["ip", "-o", "link", "show", "lo"]);
    assert!(lo.contains("UP") || lo.contains("UNKNOWN"), "{lo}");
    let sysctl = nsenter(
        "net",
        &netns,
        &["cat", "/proc/sys/net/ipv4/ip_unprivileged_port_start"],
    );
    assert_eq!(sysctl.trim(), "123");

    // Hostname in the pinned UTS namespace and in the hostname file.
    let utsns = info_a["namespaces"]["uts"].as_str().unwrap();
    assert_eq!(nsenter("uts", utsns, &["hostname"]).trim(), "web-host");
    let files = &info_a["files"];
    let read = |key: &str| std::fs::read_to_string(files[key].as_str().unwrap()).unwrap();
    assert_eq!(read("hostname"), "web-host\n");
    assert_eq!(
        read("resolv_conf"),
        "search e2e.svc.cluster.local\nnameserver 10.96.0.10\noptions ndots:5\n"
    );
    assert!(read("hosts").contains(&format!("{ip_a}\tweb-host")));
    let shm = files["shm"].as_str().unwrap();
    assert!(
        mounts_under(Path::new(shm)).iter().any(|m| m == shm),
        "shm not mounted"
    );
    assert_eq!(info_a["cgroupParent"], "/kubepods/e2e");

    // The pod PID namespace is held by the infra process, PID 1 inside.
    let infra_pid = info_a["infraPid"].as_i64().expect("infra pid");
    let proc_status = std::fs::read_to_string(format!("/proc/{infra_pid}/status")).unwrap();
    let nspid = proc_status
        .lines()
        .find(|l| l.starts_with("NSpid:"))
        .unwrap();
    assert!(nspid.trim_end().ends_with("\t1"), "{nspid}");
    // The bandwidth annotations reached the bandwidth plugin: a token
    // bucket on the host veth (ingress) and an ifb device (egress).
    let host_ifaces: Vec<String> = info_a["cniResult"]["interfaces"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i.get("sandbox").is_none())
        .map(|i| i["name"].as_str().unwrap().to_string())
        .collect();
    let shaped: Vec<String> = host_ifaces
        .iter()
        .map(|i| run("tc", &["qdisc", "show", "dev", i]))
        .filter(|q| q.contains("tbf"))
        .collect();
    assert_eq!(
        shaped.len(),
        2,
        "expected tbf on the veth and the ifb: {host_ifaces:?}"
    );
    // The hostPort mapping reached portmap.
    let rules = run("iptables-save", &["-t", "nat"]);
    assert!(
        rules.contains("18011") && rules.contains(&a),
        "no portmap rule for {a}:\n{rules}"
    );

    // List with filters, and ids by prefix.
    assert_eq!(
        list(&mut client, PodSandboxFilter::default()).await.len(),
        2
    );
    let by_label = list(
        &mut client,
        PodSandboxFilter {
            label_selector: [("app".to_string(), "db".to_string())].into(),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(by_label.len(), 1);
    assert_eq!(by_label[0].id, b);
    let by_prefix = list(
        &mut client,
        PodSandboxFilter {
            id: a[..12].to_string(),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(by_prefix.len(), 1);
    assert_eq!(status(&mut client, &a[..12]).await.0.id, a);

    // Stop: network gone, not ready, infra gone; twice is fine.
    for _ in 0..2 {
        client
            .stop_pod_sandbox(StopPodSandboxRequest {
                pod_sandbox_id: a.clone(),
            })
            .await
            .unwrap();
    }
    let (stopped, _) = status(&mut client, &a).await;
    assert_eq!(stopped.state, PodSandboxState::SandboxNotready as i32);
    assert!(
        !Path::new(&format!("/proc/{infra_pid}")).exists() || {
            let s =
                std::fs::read_to_string(format!("/proc/{infra_pid}/cmdline")).unwrap_or_default();
            !s.contains(&a)
        }
    );
    let not_ready = list(
        &mut client,
        PodSandboxFilter {
            state: Some(PodSandboxStateValue {
                state: PodSandboxState::SandboxNotready as i32,
            }),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(not_ready.iter().map(|p| &p.id).collect::<Vec<_>>(), [&a]);

    // portmap's DEL took its hostPort rules (they name the sandbox id).
    let rules = run("iptables-save", &["-t", "nat"]);
    let left: Vec<&str> = rules.lines().filter(|l| l.contains(&a)).collect();
    assert!(
        left.is_empty(),
        "portmap rules survived StopPodSandbox: {left:#?}"
    );

    for iface in host_ifaces.iter().filter(|i| **i != net.bridge()) {
        let gone = !Command::new("ip")
            .args(["link", "show", iface])
            .output()
            .unwrap()
            .status
            .success();
        assert!(gone, "{iface} survived StopPodSandbox");
    }

    // Remove twice; status is NotFound afterwards.
    for id in [&a, &b] {
        stop_and_remove(&mut client, id).await;
        stop_and_remove(&mut client, id).await;
        let err = client
            .pod_sandbox_status(PodSandboxStatusRequest {
                pod_sandbox_id: id.clone(),
                verbose: false,
            })
            .await
            .unwrap_err();
        assert_eq!(err.code(), tonic::Code::NotFound, "{err:?}");
    }
    assert!(
        list(&mut client, PodSandboxFilter::default())
            .await
            .is_empty()
    );
    drop(client);
    drop(daemon);
    net.assert_clean();
}

#[tokio::test]
async fn host_network_pod_has_no_netns_of_its_own() {
    let dirs = Dirs::new();
    let daemon = start_daemon(&dirs, None).await;
    let mut client = daemon.runtime().await;
    let mut config = pod_config("hostnet", "uid-hostnet", &dirs);
    config.dns_config = None;
    config.linux.as_mut().unwrap().security_context = Some(LinuxSandboxSecurityContext {
        namespace_options: Some(NamespaceOption {
            network: NamespaceMode::Node as i32,
            pid: NamespaceMode::Container as i32,
            ..Default::default()
        }),
        ..Default::default()
    });
    // No CNI config at all: a hostNetwork pod does not need one.
    let id = run_pod(&mut client, config).await;
    let (st, info) = status(&mut client, &id).await;
    assert_eq!(st.state, PodSandboxState::SandboxReady as i32);
    assert_eq!(st.network.unwrap().ip, "");
    let options = st.linux.unwrap().namespaces.unwrap().options.unwrap();
    assert_eq!(options.network, NamespaceMode::Node as i32);
    assert!(info["namespaces"]["network"].is_null(), "{info}");
    assert!(info["namespaces"]["uts"].is_null(), "{info}");
    assert!(info["infraPid"].is_null(), "{info}");
    // IPC is still the pod's own, with its own /dev/shm.
    assert!(info["namespaces"]["ipc"].is_string(), "{info}");
    assert!(info["files"]["shm"].is_string(), "{info}");
    let net_pins = std::fs::read_dir(dirs.runroot().join("ns/net"))
        .map(|d| d.count())
        .unwrap_or(0);
    assert_eq!(net_pins, 0);
    // Empty DnsConfig: the host's resolv.conf.
    let resolv = std::fs::read_to_string(info["files"]["resolv_conf"].as_str().unwrap()).unwrap();
    assert_eq!(
        resolv,
        std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default()
    );
    stop_and_remove(&mut client, &id).await;
    drop(client);
    drop(daemon);
    assert_no_pod_leftovers(&dirs);
}

/// A plugin script appended to the chain: fails ADD while `fail` exists in
/// its dir, otherwise hands the chain on through Debian's `tuning`.
fn failing_plugin(dir: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(dir).unwrap();
    let path = dir.join("crius-e2e-fail");
    let script = format!(
        r#"#!/bin/sh
if [ "$CNI_COMMAND" = ADD ] && [ -e {dir}/fail ]; then
  cat >/dev/null
  echo '{{"cniVersion":"1.0.0","code":7,"msg":"injected failure","details":"by the e2e test"}}'
  exit 1
fi
exec {plugins}/tuning
"#,
        dir = dir.display(),
        plugins = CNI_PLUGIN_DIR
    );
    std::fs::write(&path, script).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

#[tokio::test]
async fn failing_cni_plugin_rolls_everything_back() {
    let dirs = Dirs::new();
    let net = TestNet::new(&dirs, 12);
    let plugin_dir = dirs.base.path().join("plugins");
    failing_plugin(&plugin_dir);
    std::fs::write(plugin_dir.join("fail"), "").unwrap();
    std::fs::write(
        dirs.cni_config_dir().join("10-e2e.conflist"),
        net.conflist_with("bridge", &["crius-e2e-fail"]),
    )
    .unwrap();
    let daemon = start_daemon(&dirs, Some(&plugin_dir)).await;
    let mut client = daemon.runtime().await;

    let config = pod_config("doomed", "uid-doomed", &dirs);
    let err = client
        .run_pod_sandbox(RunPodSandboxRequest {
            config: Some(config.clone()),
            runtime_handler: String::new(),
        })
        .await
        .unwrap_err();
    assert!(err.message().contains("code 7"), "{err:?}");
    assert!(err.message().contains("injected failure"), "{err:?}");
    assert!(
        list(&mut client, PodSandboxFilter::default())
            .await
            .is_empty()
    );
    // bridge and host-local ran before the failure: their work is undone.
    assert!(
        leases(&net.ipam_dir()).is_empty(),
        "lease left after rollback"
    );
    assert_no_pod_leftovers(&dirs);
    let veths = run("ip", &["-o", "link", "show", "master", &net.bridge()]);
    assert!(veths.trim().is_empty(), "veth left after rollback: {veths}");

    // The name was released: the same pod runs once the plugin behaves.
    std::fs::remove_file(plugin_dir.join("fail")).unwrap();
    let id = run_pod(&mut client, config).await;
    let (st, _) = status(&mut client, &id).await;
    assert!(st.network.unwrap().ip.starts_with(&net.subnet_prefix()));
    stop_and_remove(&mut client, &id).await;
    drop(client);
    drop(daemon);
    net.assert_clean();
}

#[tokio::test]
async fn duplicate_name_is_rejected_naming_the_existing_sandbox() {
    let dirs = Dirs::new();
    let net = TestNet::new(&dirs, 13);
    let daemon = start_daemon(&dirs, None).await;
    let mut client = daemon.runtime().await;
    let config = pod_config("twin", "uid-twin", &dirs);
    let id = run_pod(&mut client, config.clone()).await;
    let err = client
        .run_pod_sandbox(RunPodSandboxRequest {
            config: Some(config),
            runtime_handler: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::AlreadyExists, "{err:?}");
    assert!(err.message().contains(&id), "{err:?}");
    assert!(err.message().contains("twin_e2e_uid-twin_0"), "{err:?}");
    assert_eq!(
        list(&mut client, PodSandboxFilter::default()).await.len(),
        1
    );
    stop_and_remove(&mut client, &id).await;
    drop(client);
    drop(daemon);
    net.assert_clean();
}

#[tokio::test]
async fn invalid_requests_are_rejected_without_side_effects() {
    let dirs = Dirs::new();
    let daemon = start_daemon(&dirs, None).await;
    let mut client = daemon.runtime().await;
    let mut no_uid = pod_config("bad", "", &dirs);
    no_uid.metadata.as_mut().unwrap().uid.clear();
    let mut host_sysctl = pod_config("bad", "uid-bad", &dirs);
    host_sysctl.linux.as_mut().unwrap().sysctls =
        [("vm.swappiness".to_string(), "1".to_string())].into();
    for (config, handler, expect) in [
        (no_uid, "", "uid"),
        (host_sysctl, "", "vm.swappiness"),
        (pod_config("bad", "uid-bad", &dirs), "kata", "\"runc\""),
    ] {
        let err = client
            .run_pod_sandbox(RunPodSandboxRequest {
                config: Some(config),
                runtime_handler: handler.into(),
            })
            .await
            .unwrap_err();
        assert_eq!(err.code(), tonic::Code::InvalidArgument, "{err:?}");
        assert!(err.message().contains(expect), "{err:?}");
    }
    // No network config: a pod network cannot be set up, and nothing stays.
    let err = client
        .run_pod_sandbox(RunPodSandboxRequest {
            config: Some(pod_config("nonet", "uid-nonet", &dirs)),
            runtime_handler: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::FailedPrecondition, "{err:?}");
    assert_no_pod_leftovers(&dirs);
    let err = client
        .pod_sandbox_status(PodSandboxStatusRequest {
            pod_sandbox_id: "0123456789".into(),
            verbose: false,
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::NotFound);
}

#[tokio::test]
async fn sandboxes_survive_daemon_restarts() {
    let dirs = Dirs::new();
    let net = TestNet::new(&dirs, 14);
    let mut daemon = start_daemon(&dirs, None).await;
    let mut client = daemon.runtime().await;
    let id = run_pod(&mut client, pod_config("survivor", "uid-survivor", &dirs)).await;
    let (before, info) = status(&mut client, &id).await;
    let ip = before.network.unwrap().ip;
    let netns = info["namespaces"]["network"].as_str().unwrap().to_string();
    let infra_pid = info["infraPid"].as_i64().unwrap();
    drop(client);

    // A clean restart, then a crash: both times the pod is back as it was.
    daemon.restart().await;
    daemon.crash_and_restart().await;
    let mut client = daemon.runtime().await;
    let pods = list(&mut client, PodSandboxFilter::default()).await;
    assert_eq!(pods.len(), 1);
    assert_eq!(pods[0].state, PodSandboxState::SandboxReady as i32);
    let (after, info) = status(&mut client, &id).await;
    assert_eq!(after.network.unwrap().ip, ip);
    assert_eq!(info["infraPid"].as_i64(), Some(infra_pid));
    let addr = nsenter(
        "net",
        &netns,
        &["ip", "-4", "-o", "addr", "show", "dev", "eth0"],
    );
    assert!(addr.contains(&ip), "{addr}");
    // The name is still taken after the restart.
    let err = client
        .run_pod_sandbox(RunPodSandboxRequest {
            config: Some(pod_config("survivor", "uid-survivor", &dirs)),
            runtime_handler: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::AlreadyExists);

    // Stop after a restart runs DEL from the cached result.
    stop_and_remove(&mut client, &id).await;
    assert!(
        list(&mut client, PodSandboxFilter::default())
            .await
            .is_empty()
    );
    drop(client);
    drop(daemon);
    net.assert_clean();
}

/// A plugin that signals it runs, then hangs on ADD: lets the test kill
/// crius in the middle of RunPodSandbox.
fn hanging_plugin(dir: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(dir).unwrap();
    let path = dir.join("crius-e2e-hang");
    let script = format!(
        r#"#!/bin/sh
if [ "$CNI_COMMAND" = ADD ]; then
  cat >/dev/null
  touch {dir}/running
  sleep 3
  exit 1
fi
exec {plugins}/tuning
"#,
        dir = dir.display(),
        plugins = CNI_PLUGIN_DIR
    );
    std::fs::write(&path, script).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

#[tokio::test]
async fn crius_killed_mid_run_pod_sandbox_is_cleaned_up_at_start() {
    let dirs = Dirs::new();
    let net = TestNet::new(&dirs, 15);
    let plugin_dir = dirs.base.path().join("plugins");
    hanging_plugin(&plugin_dir);
    std::fs::write(
        dirs.cni_config_dir().join("10-e2e.conflist"),
        net.conflist_with("bridge", &["crius-e2e-hang"]),
    )
    .unwrap();
    let mut daemon = start_daemon(&dirs, Some(&plugin_dir)).await;
    let mut client = daemon.runtime().await;
    let config = pod_config("interrupted", "uid-interrupted", &dirs);
    let call = tokio::spawn(async move {
        client
            .run_pod_sandbox(RunPodSandboxRequest {
                config: Some(config),
                runtime_handler: String::new(),
            })
            .await
    });
    let marker = plugin_dir.join("running");
    for _ in 0..200 {
        if marker.exists() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        marker.exists(),
        "the hanging plugin never ran:\n{}",
        daemon.log()
    );
    // bridge + host-local are done: a veth and a lease exist now.
    assert_eq!(leases(&net.ipam_dir()).len(), 1);
    daemon.crash_and_restart().await;
    assert!(call.await.unwrap().is_err());

    let mut client = daemon.runtime().await;
    assert!(
        list(&mut client, PodSandboxFilter::default())
            .await
            .is_empty()
    );
    // Let the orphaned plugin script finish its sleep before checking for
    // processes under the test dirs.
    tokio::time::sleep(Duration::from_secs(3)).await;
    drop(client);
    drop(daemon);
    net.assert_clean();
}

/// With systemd the root mount is shared; pins must then go into a private
/// bind mount of `<runroot>/ns`, which crius removes again when it stops
/// with no pods, also after a crash and restart.
#[tokio::test]
async fn pins_work_when_the_runroot_is_on_a_shared_mount() {
    let dirs = Dirs::new();
    let net = TestNet::new(&dirs, 16);
    let runroot = dirs.runroot();
    std::fs::create_dir_all(&runroot).unwrap();
    let runroot_s = runroot.to_string_lossy().into_owned();
    run("mount", &["-t", "tmpfs", "crius-e2e-shared", &runroot_s]);
    run("mount", &["--make-shared", &runroot_s]);
    struct Unmount(String);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = Command::new("umount").args(["-l", &self.0]).output();
        }
    }
    let guard = Unmount(runroot_s.clone());

    let mut daemon = start_daemon(&dirs, None).await;
    let ns_dir = format!("{runroot_s}/ns");
    let private = std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .find(|l| l.split(' ').nth(4) == Some(ns_dir.as_str()))
        .map(str::to_string)
        .unwrap_or_else(|| panic!("{ns_dir} is not a mount point"));
    assert!(!private.contains("shared:"), "{private}");

    let mut client = daemon.runtime().await;
    let id = run_pod(&mut client, pod_config("shared", "uid-shared", &dirs)).await;
    let (_, info) = status(&mut client, &id).await;
    let netns = info["namespaces"]["network"].as_str().unwrap().to_string();
    nsenter(
        "net",
        &netns,
        &["ip", "-4", "-o", "addr", "show", "dev", "eth0"],
    );
    drop(client);
    daemon.crash_and_restart().await;
    let mut client = daemon.runtime().await;
    stop_and_remove(&mut client, &id).await;
    drop(client);
    drop(daemon);

    let mounts = mounts_under(&runroot);
    assert!(
        mounts.len() == 1 && mounts[0] == runroot_s,
        "only the test's own tmpfs may remain: {mounts:?}"
    );
    drop(guard);
    net.assert_clean();
}

/// A plugin that sleeps on ADD for the pod named `slow` only, then hands
/// the chain on through `tuning`.
fn slow_plugin(dir: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(dir).unwrap();
    let path = dir.join("crius-e2e-slow");
    let script = format!(
        r#"#!/bin/sh
case "$CNI_COMMAND:$CNI_ARGS" in
ADD:*K8S_POD_NAME=slow\;*) sleep 6 ;;
esac
exec {plugins}/tuning
"#,
        plugins = CNI_PLUGIN_DIR
    );
    std::fs::write(&path, script).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

#[tokio::test]
async fn a_slow_cni_add_does_not_block_list_or_status() {
    let dirs = Dirs::new();
    let net = TestNet::new(&dirs, 17);
    let plugin_dir = dirs.base.path().join("plugins");
    slow_plugin(&plugin_dir);
    std::fs::write(
        dirs.cni_config_dir().join("10-e2e.conflist"),
        net.conflist_with("bridge", &["crius-e2e-slow"]),
    )
    .unwrap();
    let daemon = start_daemon(&dirs, Some(&plugin_dir)).await;
    let mut client = daemon.runtime().await;
    let fast = run_pod(&mut client, pod_config("fast", "uid-fast", &dirs)).await;

    let mut slow_client = daemon.runtime().await;
    let slow_config = pod_config("slow", "uid-slow", &dirs);
    let started = std::time::Instant::now();
    let slow = tokio::spawn(async move {
        let id = run_pod(&mut slow_client, slow_config).await;
        (id, slow_client)
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    let t = std::time::Instant::now();
    assert_eq!(
        list(&mut client, PodSandboxFilter::default()).await.len(),
        1
    );
    let (st, _) = status(&mut client, &fast).await;
    assert_eq!(st.state, PodSandboxState::SandboxReady as i32);
    client
        .stop_pod_sandbox(StopPodSandboxRequest {
            pod_sandbox_id: fast.clone(),
        })
        .await
        .unwrap();
    assert!(
        t.elapsed() < Duration::from_secs(4),
        "list/status/stop waited {:?} behind a slow ADD",
        t.elapsed()
    );
    let (slow_id, _slow_client) = slow.await.unwrap();
    assert!(started.elapsed() >= Duration::from_secs(6));
    for id in [&fast, &slow_id] {
        stop_and_remove(&mut client, id).await;
    }
    drop(client);
    drop(daemon);
    net.assert_clean();
}

/// The kubelet gives up on a RunPodSandbox after its deadline; the request
/// must still finish (or roll back) rather than stop half-way with pins,
/// leases and the name left behind.
#[tokio::test]
async fn a_client_deadline_does_not_abandon_run_pod_sandbox() {
    let dirs = Dirs::new();
    let net = TestNet::new(&dirs, 18);
    let plugin_dir = dirs.base.path().join("plugins");
    slow_plugin(&plugin_dir);
    std::fs::write(
        dirs.cni_config_dir().join("10-e2e.conflist"),
        net.conflist_with("bridge", &["crius-e2e-slow"]),
    )
    .unwrap();
    let daemon = start_daemon(&dirs, Some(&plugin_dir)).await;
    let mut client = daemon.runtime().await;
    let config = pod_config("slow", "uid-deadline", &dirs);
    let mut request = tonic::Request::new(RunPodSandboxRequest {
        config: Some(config.clone()),
        runtime_handler: String::new(),
    });
    request.set_timeout(Duration::from_secs(1));
    let err = client.run_pod_sandbox(request).await.unwrap_err();
    assert!(
        matches!(
            err.code(),
            tonic::Code::DeadlineExceeded | tonic::Code::Cancelled
        ),
        "{err:?}"
    );
    // The slow plugin sleeps 6 s; the sandbox then completes on its own.
    let mut pods = Vec::new();
    for _ in 0..200 {
        pods = list(&mut client, PodSandboxFilter::default()).await;
        if !pods.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        pods.len(),
        1,
        "the abandoned RunPodSandbox did not complete"
    );
    assert_eq!(pods[0].state, PodSandboxState::SandboxReady as i32);
    // The kubelet's retry learns which sandbox holds the name.
    let err = client
        .run_pod_sandbox(RunPodSandboxRequest {
            config: Some(config),
            runtime_handler: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::AlreadyExists);
    assert!(err.message().contains(&pods[0].id), "{err:?}");
    stop_and_remove(&mut client, &pods[0].id).await;
    drop(client);
    drop(daemon);
    net.assert_clean();
}
