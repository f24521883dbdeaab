//! The daemon itself: socket, lock, config, signals, and the RPCs that need
//! nothing else (Version, Status, RuntimeConfig, Unimplemented).

use std::os::unix::fs::{FileTypeExt, PermissionsExt};

use crius_e2e::{Daemon, Dirs, require_root, run_crius};
use crius_proto::*;
use nix::sys::signal::Signal;

const CNI_PLUGIN_DIR: &str = "/usr/lib/cni";

fn network_condition(status: &StatusResponse) -> RuntimeCondition {
    status
        .status
        .as_ref()
        .expect("status present")
        .conditions
        .iter()
        .find(|c| c.r#type == "NetworkReady")
        .expect("NetworkReady condition")
        .clone()
}

#[tokio::test]
async fn version_reports_crius_and_v1() {
    let daemon = Daemon::start().await;
    let version = daemon
        .runtime()
        .await
        .version(VersionRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(version.runtime_name, "crius");
    assert_eq!(version.runtime_version, env!("CARGO_PKG_VERSION"));
    assert_eq!(version.runtime_api_version, "v1");
}

#[tokio::test]
async fn network_ready_follows_the_cni_config_dir_without_restart() {
    let dirs = Dirs::new();
    let daemon = Daemon::start_with(dirs.clone(), &["--cni-plugin-dir", CNI_PLUGIN_DIR]).await;
    let mut client = daemon.runtime().await;

    let status = client
        .status(StatusRequest::default())
        .await
        .unwrap()
        .into_inner();
    let conditions = &status.status.as_ref().unwrap().conditions;
    let runtime = conditions
        .iter()
        .find(|c| c.r#type == "RuntimeReady")
        .unwrap();
    assert!(runtime.status, "RuntimeReady false: {runtime:?}");
    let network = network_condition(&status);
    assert!(!network.status);
    assert_eq!(network.reason, "NetworkPluginNotReady");
    assert!(
        network.message.contains("no valid CNI network config"),
        "{network:?}"
    );

    std::fs::write(
        dirs.cni_config_dir().join("10-test.conflist"),
        r#"{"cniVersion":"1.0.0","name":"test","plugins":[{"type":"loopback"}]}"#,
    )
    .unwrap();
    let status = client
        .status(StatusRequest::default())
        .await
        .unwrap()
        .into_inner();
    let network = network_condition(&status);
    assert!(network.status, "NetworkReady still false: {network:?}");

    // A config whose plugin is missing is not ready, and says which plugin.
    std::fs::write(
        dirs.cni_config_dir().join("05-missing.conflist"),
        r#"{"cniVersion":"1.0.0","name":"broken","plugins":[{"type":"no-such-plugin"}]}"#,
    )
    .unwrap();
    let status = client
        .status(StatusRequest::default())
        .await
        .unwrap()
        .into_inner();
    let network = network_condition(&status);
    assert!(!network.status);
    assert!(network.message.contains("no-such-plugin"), "{network:?}");
}

#[tokio::test]
async fn verbose_status_carries_the_effective_config_and_pod_cidr() {
    let daemon = Daemon::start().await;
    let status = daemon
        .runtime()
        .await
        .status(StatusRequest { verbose: true })
        .await
        .unwrap()
        .into_inner();
    let config: serde_json::Value = serde_json::from_str(&status.info["config"]).unwrap();
    assert_eq!(
        config["api"]["listen"].as_str().unwrap(),
        daemon.dirs.socket().to_str().unwrap()
    );
    assert_eq!(status.info["podCIDRs"], "[]");

    // The kubelet's pod CIDR is kept and shown; garbage is refused and
    // changes nothing.
    let update = |cidr: &str| UpdateRuntimeConfigRequest {
        runtime_config: Some(RuntimeConfig {
            network_config: Some(NetworkConfig {
                pod_cidr: cidr.into(),
            }),
        }),
    };
    let mut client = daemon.runtime().await;
    client
        .update_runtime_config(update("10.88.0.0/16,fd00:88::/64"))
        .await
        .expect("UpdateRuntimeConfig");
    let err = client
        .update_runtime_config(update("10.88.0.0/40"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument, "{err:?}");
    assert!(err.message().contains("10.88.0.0/40"), "{err:?}");
    let status = client
        .status(StatusRequest { verbose: true })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        status.info["podCIDRs"],
        r#"["10.88.0.0/16","fd00:88::/64"]"#
    );

    let quiet = daemon
        .runtime()
        .await
        .status(StatusRequest { verbose: false })
        .await
        .unwrap()
        .into_inner();
    assert!(quiet.info.is_empty());
}

#[tokio::test]
async fn runtime_config_reports_the_cgroup_driver() {
    let daemon = Daemon::start().await;
    let config = daemon
        .runtime()
        .await
        .runtime_config(RuntimeConfigRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        config.linux.unwrap().cgroup_driver,
        CgroupDriver::Cgroupfs as i32
    );

    let daemon = Daemon::start_with(Dirs::new(), &["--cgroup-manager", "systemd"]).await;
    let config = daemon
        .runtime()
        .await
        .runtime_config(RuntimeConfigRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        config.linux.unwrap().cgroup_driver,
        CgroupDriver::Systemd as i32
    );
}

#[tokio::test]
async fn unimplemented_rpc_says_so() {
    let daemon = Daemon::start().await;
    let err = daemon
        .runtime()
        .await
        .checkpoint_container(CheckpointContainerRequest::default())
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::Unimplemented);
    assert!(err.message().contains("CheckpointContainer"), "{err:?}");
}

#[tokio::test]
async fn socket_is_private_and_stale_socket_is_replaced() {
    let dirs = Dirs::new();
    std::fs::create_dir_all(dirs.runroot()).unwrap();
    // A socket left behind by a crashed daemon.
    let stale = std::os::unix::net::UnixListener::bind(dirs.socket()).unwrap();
    drop(stale);
    let daemon = Daemon::start_with(dirs.clone(), &[]).await;
    let meta = std::fs::metadata(dirs.socket()).unwrap();
    assert!(meta.file_type().is_socket());
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    daemon
        .runtime()
        .await
        .version(VersionRequest::default())
        .await
        .unwrap();
}

#[tokio::test]
async fn second_daemon_on_the_same_runroot_refuses() {
    let dirs = Dirs::new();
    let daemon = Daemon::start_with(dirs.clone(), &[]).await;
    // Even on another socket path it must refuse: the runroot is what is shared.
    let other_socket = dirs.base.path().join("other.sock");
    let mut args: Vec<String> = dirs.args();
    let listen = args.iter().position(|a| a == "--listen").unwrap();
    args[listen + 1] = other_socket.to_string_lossy().into_owned();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (status, output) = run_crius(&args);
    assert!(!status.success(), "second crius started: {output}");
    assert!(output.contains("already running"), "{output}");
    assert!(output.contains(&daemon.pid().to_string()), "{output}");
    assert!(!other_socket.exists());
    // The first one is unharmed.
    daemon
        .runtime()
        .await
        .version(VersionRequest::default())
        .await
        .unwrap();
}

#[test]
fn unknown_config_key_is_rejected_naming_key_and_file() {
    require_root();
    let dirs = Dirs::new();
    let config = dirs.base.path().join("crius.toml");
    std::fs::write(&config, "[runtime]\nruntime_pth = \"/usr/bin/runc\"\n").unwrap();
    let args: Vec<String> = dirs.args();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (status, output) = run_crius(&args);
    assert!(!status.success(), "crius accepted a bad key: {output}");
    assert!(output.contains("runtime_pth"), "{output}");
    assert!(output.contains(config.to_str().unwrap()), "{output}");
    assert!(!dirs.socket().exists());
}

#[test]
fn config_subcommand_prints_effective_commented_toml() {
    let dirs = Dirs::new();
    let config = dirs.base.path().join("crius.toml");
    std::fs::write(&config, "[api]\nstreaming_port = 10010\n").unwrap();
    let (status, output) = run_crius(&[
        "--config",
        config.to_str().unwrap(),
        "--root",
        "/srv/crius",
        "config",
    ]);
    assert!(status.success(), "{output}");
    assert!(output.contains("streaming_port = 10010"), "{output}");
    assert!(output.contains("root = \"/srv/crius\""), "{output}");
    assert!(output.contains("# "), "{output}");
    let (status, output) =
        run_crius(&["--config", config.to_str().unwrap(), "config", "--default"]);
    assert!(status.success(), "{output}");
    assert!(output.contains("streaming_port = 0"), "{output}");
    assert!(output.contains("root = \"/var/lib/crius\""), "{output}");
}

#[tokio::test]
async fn sigterm_stops_serving_and_removes_the_socket() {
    let mut daemon = Daemon::start().await;
    let socket = daemon.dirs.socket();
    assert!(socket.exists());
    let status = daemon.stop_with(Signal::SIGTERM);
    assert!(status.success(), "exit status {status}:\n{}", daemon.log());
    assert!(!socket.exists(), "socket left behind");
    assert!(crius_e2e::connect(&socket).await.is_err());
}
