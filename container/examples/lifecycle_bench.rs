//! Lifecycle latency: create+start+stop+remove of a busybox `sleep`
//! container through the library (runc + conmon), next to the floor of bare
//! `runc run -d` + `runc kill` + `runc delete` on one prepared bundle.
//!
//! Run as root: `cargo run --release -p container --example lifecycle_bench
//! -- [iterations]`. Numbers are printed, not asserted. The two alternate
//! iteration by iteration, so a busy machine weighs on both alike.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use container::{ContainerManager, ImageConfig, ImageInfo, RuntimeConfig, SandboxInfo};
use crius_proto::{ContainerConfig, ContainerMetadata};

const RUNC: &str = "/usr/sbin/runc";
const CONMON: &str = "/usr/bin/conmon";

fn make_layer(dir: &Path) -> std::path::PathBuf {
    let layer = dir.join("layer");
    for d in ["bin", "etc", "proc", "sys", "dev", "tmp"] {
        std::fs::create_dir_all(layer.join(d)).unwrap();
    }
    std::fs::copy("/bin/busybox", layer.join("bin/busybox")).unwrap();
    for a in ["sh", "sleep"] {
        std::os::unix::fs::symlink("busybox", layer.join("bin").join(a)).unwrap();
    }
    std::fs::write(layer.join("etc/passwd"), "root:x:0:0:root:/:/bin/sh\n").unwrap();
    std::fs::write(layer.join("etc/group"), "root:x:0:\n").unwrap();
    layer
}

fn stats(name: &str, mut v: Vec<Duration>) -> (Duration, Duration) {
    v.sort();
    let median = v[v.len() / 2];
    let p95 = v[((v.len() as f64) * 0.95).ceil() as usize - 1];
    println!(
        "{name:<28} n={:<4} median={:>8.2?} p95={:>8.2?} min={:>8.2?}",
        v.len(),
        median,
        p95,
        v[0]
    );
    (median, p95)
}

fn runc(root: &Path, args: &[&str]) {
    // `runc run -d` hands its stdio to the container: never a pipe we
    // would wait on, so errors go to a file.
    let err_path = root.with_extension("stderr");
    let err = std::fs::File::create(&err_path).unwrap();
    let status = Command::new(RUNC)
        .arg("--root")
        .arg(root)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(err)
        .status()
        .unwrap();
    assert!(
        status.success(),
        "runc {args:?}: {}",
        std::fs::read_to_string(&err_path).unwrap_or_default()
    );
}

/// Writes the floor's bundle: `spec` with its own rootfs path.
fn bare_bundle(dir: &Path, spec: &[u8]) -> std::path::PathBuf {
    let bundle = dir.join("bare-bundle");
    std::fs::create_dir_all(&bundle).unwrap();
    std::fs::write(bundle.join("config.json"), spec).unwrap();
    bundle
}

/// One bare `runc run -d` + `runc kill KILL` + wait + `runc delete`.
fn bare_runc(dir: &Path, bundle: &Path, i: usize) -> Duration {
    let root = dir.join("bare-runc");
    let id = format!("bare-{i}");
    let t = Instant::now();
    runc(
        &root,
        &["run", "-d", "--bundle", bundle.to_str().unwrap(), &id],
    );
    runc(&root, &["kill", &id, "KILL"]);
    loop {
        let out = Command::new(RUNC)
            .arg("--root")
            .arg(&root)
            .args(["state", &id])
            .stderr(Stdio::null())
            .output()
            .unwrap();
        if String::from_utf8_lossy(&out.stdout).contains("\"stopped\"") {
            break;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    runc(&root, &["delete", &id]);
    t.elapsed()
}

#[tokio::main]
async fn main() {
    assert!(nix::unistd::geteuid().is_root(), "run as root");
    let n: usize = std::env::args()
        .nth(1)
        .map(|a| a.parse().expect("iterations"))
        .unwrap_or(100);
    let dir = tempfile::Builder::new()
        .prefix("cbench")
        .tempdir_in("/tmp")
        .unwrap();
    let layer = make_layer(dir.path());
    let logs = dir.path().join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    let mgr = ContainerManager::new(RuntimeConfig::new(
        dir.path().join("root"),
        dir.path().join("run"),
        RUNC,
        CONMON,
    ))
    .unwrap();
    let image = ImageInfo {
        id: "sha256:bench".into(),
        reference: "localhost/busybox:bench".into(),
        layers: vec![layer],
        config: ImageConfig {
            env: vec!["PATH=/bin".into()],
            ..Default::default()
        },
    };
    let sandbox = SandboxInfo {
        id: "bench-pod".into(),
        name: "bench".into(),
        namespace: "default".into(),
        uid: "u".into(),
        cgroup_parent: "/crius-bench".into(),
        log_directory: Some(logs),
        ..Default::default()
    };
    let config = |i: usize| ContainerConfig {
        metadata: Some(ContainerMetadata {
            name: format!("c{i}"),
            attempt: 0,
        }),
        command: vec!["sleep".into(), "1000".into()],
        log_path: format!("c{i}.log"),
        ..Default::default()
    };

    // One uncounted round captures the spec crius generates for the floor
    // (and warms caches for both).
    let id = mgr.create(&sandbox, &image, &config(n)).await.unwrap();
    let spec = std::fs::read(mgr.bundle_path(&id).unwrap().join("config.json")).unwrap();
    mgr.remove(&id).await.unwrap();
    // The floor runs the very spec crius generated, on a plain copy of the
    // rootfs (no overlay, no conmon, no record keeping).
    let mut v: serde_json::Value = serde_json::from_slice(&spec).unwrap();
    let rootfs = dir.path().join("bare-rootfs");
    let cp = Command::new("cp")
        .arg("-a")
        .arg(dir.path().join("layer"))
        .arg(&rootfs)
        .status()
        .unwrap();
    assert!(cp.success());
    v["root"]["path"] = rootfs.display().to_string().into();
    v["linux"]["cgroupsPath"] = "/crius-bench/bare".into();
    let bundle = bare_bundle(dir.path(), &serde_json::to_vec(&v).unwrap());

    // crius and the floor take turns, so both see the same machine load
    // (other builds come and go on a shared box).
    let mut total = Vec::with_capacity(n);
    let (mut create, mut start, mut stop, mut remove) = (vec![], vec![], vec![], vec![]);
    let mut bare = Vec::with_capacity(n);
    for i in 0..n {
        let t0 = Instant::now();
        let id = mgr.create(&sandbox, &image, &config(i)).await.unwrap();
        let t1 = Instant::now();
        mgr.start(&id).await.unwrap();
        let t2 = Instant::now();
        mgr.stop(&id, 0).await.unwrap();
        let t3 = Instant::now();
        mgr.remove(&id).await.unwrap();
        let t4 = Instant::now();
        create.push(t1 - t0);
        start.push(t2 - t1);
        stop.push(t3 - t2);
        remove.push(t4 - t3);
        total.push(t4 - t0);
        bare.push(bare_runc(dir.path(), &bundle, i));
    }

    println!("container lifecycle, {n} iterations");
    stats("crius create", create);
    stats("crius start", start);
    stats("crius stop (timeout 0)", stop);
    stats("crius remove", remove);
    let (cm, cp95) = stats("crius create+start+stop+rm", total);
    let (bm, bp95) = stats("bare runc run/kill/delete", bare);
    println!(
        "overhead over bare runc: median {:+.1}%, p95 {:+.1}%",
        (cm.as_secs_f64() / bm.as_secs_f64() - 1.0) * 100.0,
        (cp95.as_secs_f64() / bp95.as_secs_f64() - 1.0) * 100.0
    );
    for d in ["/sys/fs/cgroup"] {
        if let Ok(entries) = std::fs::read_dir(d) {
            for e in entries.flatten() {
                let _ = std::fs::remove_dir(e.path().join("crius-bench"));
            }
        }
    }
}
