//! Streaming benchmark through the real daemon: Exec round trip latency
//! (Exec RPC, SPDY upgrade, `echo` run by runc exec, stdout and exit
//! status read back; median and p95 over N runs) and port-forward
//! throughput over one forwarded connection (MiB/s reading `--mib` MiB
//! that a busybox `nc` in the pod writes from /dev/zero).
//!
//! Starts crius itself (`$CRIUS_BIN`; build with `cargo build --release`
//! for real numbers) with a loopback-only CNI network and pulls busybox
//! from `$CRIUS_TEST_REGISTRY` (hack/test-registry.sh). Must run as root.
//! Prints a Markdown table.

use std::time::{Duration, Instant};

use crius_e2e::stream_client::{read_all, spdy_connect};
use crius_e2e::{Daemon, Dirs, require_root};
use crius_proto::*;
use tokio::io::AsyncReadExt;

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map(|v| v.parse().expect("numeric argument"))
        .unwrap_or(default)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

#[tokio::main]
async fn main() {
    require_root();
    let runs = arg("--runs", 100);
    let mib = arg("--mib", 1024);
    let registry = std::env::var("CRIUS_TEST_REGISTRY").expect("CRIUS_TEST_REGISTRY is not set");
    let busybox = format!("{registry}/busybox");
    let dirs = Dirs::new();
    std::fs::write(
        dirs.cni_config_dir().join("10-lo.conflist"),
        r#"{"cniVersion":"1.0.0","name":"lo-only","plugins":[{"type":"loopback"}]}"#,
    )
    .unwrap();
    let daemon = Daemon::start_with(dirs, &["--cni-plugin-dir", "/usr/lib/cni"]).await;
    let image = Some(ImageSpec {
        image: busybox.clone(),
        ..Default::default()
    });
    daemon
        .images()
        .await
        .pull_image(PullImageRequest {
            image: image.clone(),
            ..Default::default()
        })
        .await
        .expect("pull busybox");
    let mut rt = daemon.runtime().await;
    let pod_config = PodSandboxConfig {
        metadata: Some(PodSandboxMetadata {
            name: "bench".into(),
            uid: "uid-bench".into(),
            namespace: "bench".into(),
            attempt: 0,
        }),
        log_directory: daemon.dirs.base.path().to_string_lossy().into_owned(),
        ..Default::default()
    };
    let pod = rt
        .run_pod_sandbox(RunPodSandboxRequest {
            config: Some(pod_config.clone()),
            runtime_handler: String::new(),
        })
        .await
        .expect("run pod")
        .into_inner()
        .pod_sandbox_id;
    let script = format!(
        "while true; do dd if=/dev/zero bs=1048576 count={mib} 2>/dev/null | nc -l -p 9000; done"
    );
    let ctr = rt
        .create_container(CreateContainerRequest {
            pod_sandbox_id: pod.clone(),
            config: Some(ContainerConfig {
                metadata: Some(ContainerMetadata {
                    name: "bench".into(),
                    attempt: 0,
                }),
                image,
                command: vec!["sh".into(), "-c".into(), script],
                log_path: "bench.log".into(),
                ..Default::default()
            }),
            sandbox_config: Some(pod_config),
        })
        .await
        .expect("create")
        .into_inner()
        .container_id;
    rt.start_container(StartContainerRequest {
        container_id: ctr.clone(),
    })
    .await
    .expect("start");

    // Exec round trips.
    let mut times = Vec::with_capacity(runs);
    for _ in 0..runs {
        let t = Instant::now();
        let url = rt
            .exec(ExecRequest {
                container_id: ctr.clone(),
                cmd: vec!["echo".into(), "hi".into()],
                tty: false,
                stdin: false,
                stdout: true,
                stderr: false,
            })
            .await
            .expect("exec")
            .into_inner()
            .url;
        let c = spdy_connect(&url, &["v4.channel.k8s.io"])
            .await
            .expect("connect");
        let mut error = c.stream(&[("streamType", "error")], true).await;
        let mut stdout = c.stream(&[("streamType", "stdout")], true).await;
        assert_eq!(read_all(&mut stdout).await, "hi\n");
        assert!(read_all(&mut error).await.contains("Success"));
        times.push(t.elapsed());
    }
    times.sort();

    // Port-forward throughput over one connection.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let url = rt
        .port_forward(PortForwardRequest {
            pod_sandbox_id: pod.clone(),
            port: vec![9000],
        })
        .await
        .expect("port forward")
        .into_inner()
        .url;
    let c = spdy_connect(&url, &["portforward.k8s.io"])
        .await
        .expect("connect");
    let _error = c
        .stream(
            &[
                ("streamType", "error"),
                ("port", "9000"),
                ("requestID", "0"),
            ],
            true,
        )
        .await;
    let mut data = c
        .stream(
            &[("streamType", "data"), ("port", "9000"), ("requestID", "0")],
            false,
        )
        .await;
    let want = mib * 1024 * 1024;
    let mut got = 0usize;
    let mut buf = vec![0u8; 256 * 1024];
    let t = Instant::now();
    while got < want {
        let n = data.read(&mut buf).await.expect("read");
        assert!(n > 0, "connection ended after {got} bytes");
        got += n;
    }
    let secs = t.elapsed().as_secs_f64();
    drop((data, _error, c));
    // Containers outlive the daemon by design: remove what we started.
    rt.stop_pod_sandbox(StopPodSandboxRequest {
        pod_sandbox_id: pod.clone(),
    })
    .await
    .expect("stop pod");
    rt.remove_pod_sandbox(RemovePodSandboxRequest {
        pod_sandbox_id: pod,
    })
    .await
    .expect("remove pod");
    println!("| streaming, {runs} exec runs, {mib} MiB forwarded | value |");
    println!("|---|---|");
    println!(
        "| exec `echo` round trip, median | {:.1} ms |",
        percentile(&times, 0.5).as_secs_f64() * 1000.0
    );
    println!(
        "| exec `echo` round trip, p95 | {:.1} ms |",
        percentile(&times, 0.95).as_secs_f64() * 1000.0
    );
    println!(
        "| port-forward, one connection | {:.0} MiB/s |",
        got as f64 / (1024.0 * 1024.0) / secs
    );
}
