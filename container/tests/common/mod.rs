//! Test harness: a busybox image layer, a host-namespace sandbox and a
//! ContainerManager rooted in a temp dir, against the real runc + conmon.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use container::{ContainerManager, ImageConfig, ImageInfo, RuntimeConfig, SandboxInfo};
use crius_proto::{ContainerConfig, ContainerMetadata, ImageSpec};

pub const RUNC: &str = "/usr/sbin/runc";
pub const CONMON: &str = "/usr/bin/conmon";
pub const BUSYBOX: &str = "/bin/busybox";

/// Fails loudly if the test cannot run for real.
pub fn require_root_and_tools() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "container integration tests must run as root"
    );
    for t in [RUNC, CONMON, BUSYBOX] {
        assert!(Path::new(t).exists(), "required tool {t} is missing");
    }
}

pub struct Env {
    pub dir: tempfile::TempDir,
    pub mgr: ContainerManager,
    pub cfg: RuntimeConfig,
    pub image: ImageInfo,
    pub sandbox: SandboxInfo,
    pub cgroup_parent: String,
}

/// A static-busybox rootfs layer with applet links and users root, app
/// (1000, also in wheel and video).
pub fn make_layer(dir: &Path) -> PathBuf {
    let layer = dir.join("layer");
    for d in [
        "bin", "etc", "proc", "sys", "dev", "tmp", "root", "home/app",
    ] {
        std::fs::create_dir_all(layer.join(d)).unwrap();
    }
    std::fs::copy(BUSYBOX, layer.join("bin/busybox")).unwrap();
    let list = std::process::Command::new(BUSYBOX)
        .arg("--list")
        .output()
        .unwrap();
    for applet in String::from_utf8_lossy(&list.stdout).lines() {
        let applet = applet.trim();
        if applet.is_empty() || applet == "busybox" {
            continue;
        }
        let _ = std::os::unix::fs::symlink("busybox", layer.join("bin").join(applet));
    }
    std::fs::write(
        layer.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:app:/home/app:/bin/sh\n",
    )
    .unwrap();
    std::fs::write(
        layer.join("etc/group"),
        "root:x:0:\nwheel:x:10:app\nvideo:x:44:app\napp:x:1000:\n",
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(layer.join("tmp"), std::fs::Permissions::from_mode(0o1777)).unwrap();
    layer
}

impl Env {
    pub fn new() -> Env {
        Self::with_runtime(RUNC)
    }

    pub fn with_runtime(runtime: &str) -> Env {
        require_root_and_tools();
        let dir = tempfile::Builder::new()
            .prefix("cct")
            .tempdir_in("/tmp")
            .unwrap();
        let layer = make_layer(dir.path());
        let pod = dir.path().join("pod");
        std::fs::create_dir_all(pod.join("logs")).unwrap();
        std::fs::write(pod.join("hosts"), "127.0.0.1 localhost\n").unwrap();
        std::fs::write(pod.join("resolv.conf"), "nameserver 127.0.0.1\n").unwrap();
        std::fs::write(pod.join("hostname"), "testpod\n").unwrap();
        let base = dir
            .path()
            .file_name()
            .unwrap()
            .to_string_lossy()
            .into_owned();
        let cgroup_parent = format!("/crius-ctest-{base}");
        let mut cfg = RuntimeConfig::new(
            dir.path().join("root"),
            dir.path().join("run"),
            runtime,
            CONMON,
        );
        cfg.runtime_path = runtime.into();
        let mgr = ContainerManager::new(cfg.clone()).unwrap();
        Env {
            image: ImageInfo {
                id: "sha256:busybox-test".into(),
                reference: "localhost/busybox:test".into(),
                layers: vec![layer],
                config: ImageConfig {
                    env: vec!["PATH=/bin".into(), "FROM_IMAGE=1".into()],
                    cmd: vec!["sh".into()],
                    ..Default::default()
                },
            },
            sandbox: SandboxInfo {
                id: format!("sandbox-{base}"),
                name: "pod".into(),
                namespace: "default".into(),
                uid: "uid-1".into(),
                hostname: "testpod".into(),
                hosts_file: Some(pod.join("hosts")),
                resolv_conf_file: Some(pod.join("resolv.conf")),
                hostname_file: Some(pod.join("hostname")),
                cgroup_parent: cgroup_parent.clone(),
                log_directory: Some(pod.join("logs")),
                ..Default::default()
            },
            cgroup_parent,
            cfg,
            mgr,
            dir,
        }
    }

    /// CreateContainer in the test sandbox, which must succeed.
    pub async fn create(&self, cfg: &ContainerConfig) -> String {
        self.mgr
            .create(&self.sandbox, &self.image, cfg)
            .await
            .unwrap_or_else(|e| panic!("create {:?}: {e}", cfg.metadata))
    }

    /// CreateContainer then StartContainer, which must both succeed.
    pub async fn run(&self, cfg: &ContainerConfig) -> String {
        let id = self.create(cfg).await;
        self.mgr
            .start(&id)
            .await
            .unwrap_or_else(|e| panic!("start {:?}: {e}", cfg.metadata));
        id
    }

    /// A new manager over the same dirs (a crius restart).
    pub fn restart(&mut self) {
        self.mgr = ContainerManager::new(self.cfg.clone()).unwrap();
    }

    pub fn log_path(&self, name: &str) -> PathBuf {
        self.sandbox
            .log_directory
            .as_ref()
            .unwrap()
            .join(format!("{name}.log"))
    }

    /// Lists paths under the test dir that are mount points.
    pub fn mounts_under_test_dir(&self) -> Vec<String> {
        let prefix = self.dir.path().to_string_lossy().into_owned();
        std::fs::read_to_string("/proc/self/mountinfo")
            .unwrap()
            .lines()
            .filter_map(|l| l.split(' ').nth(4).map(String::from))
            .filter(|p| p.starts_with(&prefix))
            .collect()
    }

    /// Pids of processes whose command line mentions the test dir
    /// (conmon, runc, container processes started by this test).
    pub fn processes_of_test(&self) -> Vec<(i32, String)> {
        let needle = self.dir.path().to_string_lossy().into_owned();
        let mut out = vec![];
        for e in std::fs::read_dir("/proc").unwrap().flatten() {
            let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
                continue;
            };
            if let Ok(cmd) = std::fs::read(format!("/proc/{pid}/cmdline")) {
                let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
                if cmd.contains(&needle) {
                    out.push((pid, cmd));
                }
            }
        }
        out
    }

    pub fn entries(&self, p: impl AsRef<Path>) -> Vec<String> {
        std::fs::read_dir(self.dir.path().join(p))
            .map(|r| {
                r.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default()
    }
}

impl Drop for Env {
    /// Kills and deletes whatever containers this test left in its own runc
    /// root, unmounts its rootfs mounts and removes its cgroup parents.
    fn drop(&mut self) {
        let runc_root = self.cfg.runc_root();
        if let Ok(entries) = std::fs::read_dir(&runc_root) {
            for e in entries.flatten() {
                let _ = std::process::Command::new(RUNC)
                    .arg("--root")
                    .arg(&runc_root)
                    .args(["delete", "--force"])
                    .arg(e.file_name())
                    .output();
            }
        }
        let mut mounts = self.mounts_under_test_dir();
        mounts.sort_by_key(|m| std::cmp::Reverse(m.len()));
        for m in mounts {
            let _ = nix::mount::umount2(m.as_str(), nix::mount::MntFlags::MNT_DETACH);
        }
        std::thread::sleep(Duration::from_millis(100));
        if let Ok(entries) = std::fs::read_dir("/sys/fs/cgroup") {
            for e in entries.flatten() {
                let p = e.path().join(self.cgroup_parent.trim_start_matches('/'));
                let _ = std::fs::remove_dir(p);
            }
        }
    }
}

pub fn config(name: &str, command: &[&str]) -> ContainerConfig {
    ContainerConfig {
        metadata: Some(ContainerMetadata {
            name: name.into(),
            attempt: 0,
        }),
        image: Some(ImageSpec {
            image: "localhost/busybox:test".into(),
            ..Default::default()
        }),
        command: command.iter().map(|s| s.to_string()).collect(),
        log_path: format!("{name}.log"),
        ..Default::default()
    }
}

pub fn sh(name: &str, script: &str) -> ContainerConfig {
    config(name, &["sh", "-c", script])
}

pub async fn wait_exited(env: &Env, id: &str, limit: Duration) -> crius_proto::ContainerStatus {
    let deadline = std::time::Instant::now() + limit;
    loop {
        let (st, _) = env.mgr.status(id, false).unwrap();
        if st.state == crius_proto::ContainerState::ContainerExited as i32 {
            return st;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "container {id} did not exit within {limit:?}: {st:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Lines of a CRI log file, split into (stream, tag, content).
pub fn log_lines(path: &Path) -> Vec<(String, String, String)> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| {
            let mut it = l.splitn(4, ' ');
            let ts = it.next().unwrap_or_default();
            assert!(ts.contains('T'), "bad timestamp in log line {l:?}");
            (
                it.next().unwrap_or_default().to_string(),
                it.next().unwrap_or_default().to_string(),
                it.next().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

pub async fn wait_for_log(path: &Path, needle: &str, limit: Duration) {
    let deadline = std::time::Instant::now() + limit;
    loop {
        if log_lines(path).iter().any(|(_, _, c)| c.contains(needle)) {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{needle:?} did not show up in {path:?} within {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub const RUNNING: i32 = crius_proto::ContainerState::ContainerRunning as i32;
pub const EXITED: i32 = crius_proto::ContainerState::ContainerExited as i32;
pub const CREATED: i32 = crius_proto::ContainerState::ContainerCreated as i32;

/// A container that runs until SIGTERM, then exits 0.
pub const SERVE: &str = "trap 'exit 0' TERM; while :; do sleep 0.1; done";
