//! Pull throughput: pulls the large multi-layer test image N times through
//! crius (removing it in between) and, when installed, through containerd
//! (`ctr images pull`, which also unpacks into its overlayfs snapshotter),
//! and prints median wall time, MB/s and the daemon's peak RSS (VmHWM).
//!
//!     eval "$(hack/test-registry.sh up)"
//!     cargo build --release --bins
//!     cargo bench -p crius-e2e --bench pull            # CRIUS_BENCH_PULLS=N
//!
//! Numbers are reported, not asserted; docs/benchmarks.md records them.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crius_e2e::{Daemon, Dirs};
use crius_proto::*;

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn vm_hwm_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

struct Result {
    name: &'static str,
    times: Vec<Duration>,
    bytes: u64,
    peak_rss_kib: u64,
}

impl Result {
    fn print(&self) {
        let m = median(self.times.clone());
        println!(
            "| {} | {} | {:.3} s | {:.3} s | {:.1} MB/s | {:.1} MiB |",
            self.name,
            self.times.len(),
            m.as_secs_f64(),
            self.times.iter().min().unwrap().as_secs_f64(),
            self.bytes as f64 / 1e6 / m.as_secs_f64(),
            self.peak_rss_kib as f64 / 1024.0,
        );
    }
}

async fn bench_crius(image: &str, n: usize) -> Result {
    let daemon = Daemon::start_with(Dirs::new(), &[]).await;
    let mut client = daemon.images().await;
    let spec = |image: &str| {
        Some(ImageSpec {
            image: image.to_owned(),
            ..Default::default()
        })
    };
    let mut times = Vec::new();
    let mut bytes = 0;
    for _ in 0..n {
        let started = Instant::now();
        let id = client
            .pull_image(PullImageRequest {
                image: spec(image),
                auth: None,
                sandbox_config: None,
            })
            .await
            .expect("crius pull")
            .into_inner()
            .image_ref;
        times.push(started.elapsed());
        bytes = client
            .image_status(ImageStatusRequest {
                image: spec(&id),
                verbose: false,
            })
            .await
            .expect("status")
            .into_inner()
            .image
            .expect("pulled image")
            .size;
        client
            .remove_image(RemoveImageRequest { image: spec(&id) })
            .await
            .expect("remove");
    }
    Result {
        name: "crius",
        times,
        bytes,
        peak_rss_kib: vm_hwm_kib(daemon.pid()),
    }
}

fn ctr(sock: &Path, args: &[&str]) {
    let out = Command::new("ctr")
        .arg("--address")
        .arg(sock)
        .args(["--namespace", "bench"])
        .args(args)
        .stdout(Stdio::null())
        .output()
        .expect("run ctr");
    assert!(
        out.status.success(),
        "ctr {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn bench_containerd(image: &str, n: usize, bytes: u64) -> Option<Result> {
    if Command::new("containerd")
        .arg("--version")
        .output()
        .is_err()
    {
        println!("containerd not installed: skipping the comparison");
        return None;
    }
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("containerd.sock");
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            "version = 2\nroot = {:?}\nstate = {:?}\ndisabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n[grpc]\naddress = {:?}\n",
            dir.path().join("root"),
            dir.path().join("state"),
            sock
        ),
    )
    .unwrap();
    let log = std::fs::File::create(dir.path().join("containerd.log")).unwrap();
    let mut child: Child = Command::new("containerd")
        .arg("--config")
        .arg(&config)
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .expect("start containerd");
    let deadline = Instant::now() + Duration::from_secs(20);
    while !sock.exists() {
        assert!(Instant::now() < deadline, "containerd did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut times = Vec::new();
    for _ in 0..n {
        let started = Instant::now();
        ctr(&sock, &["images", "pull", "--plain-http", image]);
        times.push(started.elapsed());
        ctr(&sock, &["images", "rm", "--sync", image]);
    }
    let peak = vm_hwm_kib(child.id());
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    );
    let _ = child.wait();
    Some(Result {
        name: "containerd (ctr pull)",
        times,
        bytes,
        peak_rss_kib: peak,
    })
}

fn main() {
    let registry = std::env::var("CRIUS_TEST_REGISTRY").unwrap_or_else(|_| {
        panic!("CRIUS_TEST_REGISTRY is not set: run `eval \"$(hack/test-registry.sh up)\"` first")
    });
    let n: usize = std::env::var("CRIUS_BENCH_PULLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    let image = format!("{registry}/busybox-large:latest");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let crius = runtime.block_on(bench_crius(&image, n));
    let containerd = bench_containerd(&image, n, crius.bytes);
    println!(
        "\nimage {image}: {:.1} MB compressed\n",
        crius.bytes as f64 / 1e6
    );
    println!("| daemon | pulls | median | best | throughput (median) | peak RSS |");
    println!("|---|---|---|---|---|---|");
    crius.print();
    if let Some(c) = containerd {
        c.print();
    }
}
