//! Harness for end-to-end tests: starts the real `crius` binary in temp
//! dirs, waits for its socket, and hands out typed CRI clients over it, the
//! way kubelet and crictl connect. The daemon is stopped by its PID when the
//! [`Daemon`] is dropped, and its log is printed if the test failed.
pub mod bench;
pub mod stream_client;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crius_proto::image_service_client::ImageServiceClient;
use crius_proto::runtime_service_client::RuntimeServiceClient;
use hyper_util::rt::TokioIo;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tonic::transport::{Channel, Endpoint, Uri};

pub mod pods;

/// How long a daemon may take to open its socket or to exit.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(20);

/// Fails the test unless it runs as root: e2e tests need real mounts,
/// namespaces and runc, and must never pass by skipping.
pub fn require_root() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "e2e tests must run as root (they start crius, runc and CNI plugins for real)"
    );
}

/// Path of the `crius` binary under test: `$CRIUS_BIN`, else the one cargo
/// built next to this test executable.
pub fn crius_bin() -> PathBuf {
    if let Some(path) = std::env::var_os("CRIUS_BIN") {
        return PathBuf::from(path);
    }
    let exe = std::env::current_exe().expect("current_exe");
    // target/<profile>/deps/<test> -> target/<profile>/crius
    let bin = exe
        .parent()
        .and_then(Path::parent)
        .map(|dir| dir.join("crius"))
        .expect("test executable has no parent dir");
    assert!(
        bin.exists(),
        "crius binary not found at {bin:?}: run `cargo build --bins` first or set CRIUS_BIN"
    );
    bin
}

/// The directories one daemon (or a sequence of daemons, for restart tests)
/// works in. Removed when the last holder drops it, after a last-resort
/// sweep of whatever a failed test left running or mounted in them.
pub struct Dirs {
    pub base: tempfile::TempDir,
}

impl Drop for Dirs {
    /// Tests tear their pods down themselves and assert that nothing is
    /// left; this sweep only matters when a test panicked half-way, so that
    /// one failure does not leak containers, infra processes and mounts
    /// into the rest of the run. Everything it touches lives under this
    /// test's own unique temp dir.
    fn drop(&mut self) {
        let base = self.base.path().to_owned();
        let runc_root = self.runroot().join("runc");
        if runc_root.exists() {
            let root = runc_root.to_string_lossy().into_owned();
            let ids = Command::new("runc")
                .args(["--root", &root, "list", "-q"])
                .output()
                .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
                .unwrap_or_default();
            for id in ids.lines().filter(|l| !l.is_empty()) {
                let _ = Command::new("runc")
                    .args(["--root", &root, "delete", "--force", id])
                    .output();
            }
        }
        for pid in pids_mentioning(&base) {
            let _ = kill(pid, Signal::SIGKILL);
        }
        let mut mounts = mounts_under(&base);
        // Deepest first, so that nothing is busy when its parent goes.
        mounts.sort_by_key(|m| std::cmp::Reverse(m.components().count()));
        for mount in mounts {
            let _ = nix::mount::umount2(&mount, nix::mount::MntFlags::MNT_DETACH);
        }
    }
}

/// Processes whose command line names `dir`: the daemon's conmons and
/// `crius pause` infra processes of one test.
fn pids_mentioning(dir: &Path) -> Vec<Pid> {
    let needle = dir.to_string_lossy().into_owned();
    let me = std::process::id();
    std::fs::read_dir("/proc")
        .map(|entries| {
            entries
                .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
                .filter(|&pid| pid != me)
                .filter(|pid| {
                    std::fs::read(format!("/proc/{pid}/cmdline"))
                        .map(|c| String::from_utf8_lossy(&c).contains(&needle))
                        .unwrap_or(false)
                })
                .map(|pid| Pid::from_raw(pid as i32))
                .collect()
        })
        .unwrap_or_default()
}

/// Mount points at or below `dir`, from /proc/self/mountinfo.
pub fn mounts_under(dir: &Path) -> Vec<PathBuf> {
    let text = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    text.lines()
        .filter_map(|line| line.split(' ').nth(4))
        .map(PathBuf::from)
        .filter(|m| m.starts_with(dir))
        .collect()
}

impl Dirs {
    pub fn new() -> Arc<Dirs> {
        let base = tempfile::Builder::new()
            .prefix("crius-e2e-")
            .tempdir()
            .expect("create temp dir");
        Arc::new(Dirs { base })
    }
    pub fn root(&self) -> PathBuf {
        self.base.path().join("root")
    }
    pub fn runroot(&self) -> PathBuf {
        self.base.path().join("run")
    }
    pub fn socket(&self) -> PathBuf {
        self.runroot().join("crius.sock")
    }
    /// An empty CNI config dir by default; tests write conflists into it.
    pub fn cni_config_dir(&self) -> PathBuf {
        let dir = self.base.path().join("net.d");
        std::fs::create_dir_all(&dir).expect("create cni config dir");
        dir
    }
    /// The daemon's CDI spec dir (empty until a test writes specs); the
    /// host's /etc/cdi is never read by tests.
    pub fn cdi_dir(&self) -> PathBuf {
        let dir = self.base.path().join("cdi");
        std::fs::create_dir_all(&dir).expect("create cdi dir");
        dir
    }
    /// The daemon's OCI hooks dir (empty until a test writes hooks); the
    /// host's hooks.d dirs are never read by tests.
    pub fn hooks_dir(&self) -> PathBuf {
        let dir = self.base.path().join("hooks.d");
        std::fs::create_dir_all(&dir).expect("create hooks dir");
        dir
    }
    /// The arguments that point a daemon at these dirs.
    pub fn args(&self) -> Vec<String> {
        let s = |p: PathBuf| p.to_string_lossy().into_owned();
        vec![
            "--config".into(),
            s(self.base.path().join("crius.toml")),
            "--root".into(),
            s(self.root()),
            "--runroot".into(),
            s(self.runroot()),
            "--listen".into(),
            s(self.socket()),
            "--cni-config-dir".into(),
            s(self.cni_config_dir()),
            "--cdi-spec-dir".into(),
            s(self.cdi_dir()),
            "--hooks-dir".into(),
            s(self.hooks_dir()),
            "--log-level".into(),
            "debug".into(),
        ]
    }
}

/// A running `crius serve`.
pub struct Daemon {
    pub dirs: Arc<Dirs>,
    extra_args: Vec<String>,
    child: Option<Child>,
    log_path: PathBuf,
    generation: u32,
}

impl Daemon {
    /// Starts crius in fresh temp dirs with default settings.
    pub async fn start() -> Daemon {
        Daemon::start_with(Dirs::new(), &[]).await
    }

    /// Starts crius in `dirs`, with `extra` flags after the standard ones.
    pub async fn start_with(dirs: Arc<Dirs>, extra: &[&str]) -> Daemon {
        require_root();
        let config = dirs.base.path().join("crius.toml");
        if !config.exists() {
            std::fs::write(&config, "").expect("write empty config");
        }
        let mut daemon = Daemon {
            log_path: PathBuf::new(),
            dirs,
            extra_args: extra.iter().map(|s| s.to_string()).collect(),
            child: None,
            generation: 0,
        };
        daemon.spawn().await;
        daemon
    }

    fn command(&self) -> Command {
        let mut cmd = Command::new(crius_bin());
        cmd.args(self.dirs.args()).args(&self.extra_args);
        cmd
    }

    async fn spawn(&mut self) {
        self.launch();
        self.wait_ready().await;
    }

    /// Starts the process without waiting for its socket.
    fn launch(&mut self) {
        self.generation += 1;
        self.log_path = self
            .dirs
            .base
            .path()
            .join(format!("crius-{}.log", self.generation));
        let log = std::fs::File::create(&self.log_path).expect("create daemon log");
        let child = self
            .command()
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("dup log"))
            .stderr(log)
            .spawn()
            .expect("spawn crius");
        self.child = Some(child);
    }

    async fn wait_ready(&mut self) {
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        loop {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!("crius exited during startup with {status}:\n{}", self.log());
            }
            if connect(&self.dirs.socket()).await.is_ok() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "crius did not open {:?} within {STARTUP_TIMEOUT:?}:\n{}",
                self.dirs.socket(),
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("daemon is not running").id()
    }

    /// The daemon's log so far (all generations of a restarted daemon).
    pub fn log(&self) -> String {
        let mut out = String::new();
        for generation in 1..=self.generation {
            let path = self
                .dirs
                .base
                .path()
                .join(format!("crius-{generation}.log"));
            if let Ok(text) = std::fs::read_to_string(path) {
                out.push_str(&format!(
                    "----- crius log (start {generation}) -----\n{text}"
                ));
            }
        }
        out
    }

    /// [`Daemon::log`] without terminal colours, so fields read `key=value`.
    pub fn plain_log(&self) -> String {
        let log = self.log();
        let mut out = String::with_capacity(log.len());
        let mut chars = log.chars();
        while let Some(c) = chars.next() {
            if c == '\x1b' {
                for c in chars.by_ref() {
                    if c.is_ascii_alphabetic() {
                        break;
                    }
                }
            } else {
                out.push(c);
            }
        }
        out
    }

    pub async fn channel(&self) -> Channel {
        connect(&self.dirs.socket())
            .await
            .unwrap_or_else(|e| panic!("connect to crius: {e}\n{}", self.log()))
    }

    pub async fn runtime(&self) -> RuntimeServiceClient<Channel> {
        RuntimeServiceClient::new(self.channel().await)
    }

    pub async fn images(&self) -> ImageServiceClient<Channel> {
        ImageServiceClient::new(self.channel().await)
    }

    /// Sends `signal` to the daemon and waits for it to exit.
    pub fn stop_with(&mut self, signal: Signal) -> ExitStatus {
        let mut child = self.child.take().expect("daemon is not running");
        let pid = Pid::from_raw(child.id() as i32);
        let _ = kill(pid, signal);
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        loop {
            if let Some(status) = child.try_wait().expect("wait for crius") {
                return status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("crius did not exit after {signal}:\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stops the daemon with SIGTERM, expecting a clean exit.
    pub fn stop(&mut self) -> ExitStatus {
        self.stop_with(Signal::SIGTERM)
    }

    /// Stops the daemon and starts a new one on the same dirs and flags.
    pub async fn restart(&mut self) {
        let status = self.stop();
        assert!(
            status.success(),
            "crius exited with {status}:\n{}",
            self.log()
        );
        self.spawn().await;
    }

    /// Starts the daemon again after [`stop`](Self::stop) or
    /// [`stop_with`](Self::stop_with), on the same dirs and flags.
    pub async fn respawn(&mut self) {
        assert!(self.child.is_none(), "crius is still running");
        self.spawn().await;
    }

    /// Starts the daemon again after a stop without waiting for its
    /// socket: for timing how soon it answers (the recovery bench).
    pub fn respawn_no_wait(&mut self) {
        assert!(self.child.is_none(), "crius is still running");
        self.launch();
    }

    /// Kills the daemon without letting it clean up, as a crash would.
    pub async fn crash_and_restart(&mut self) {
        self.stop_with(Signal::SIGKILL);
        self.spawn().await;
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM);
            let deadline = Instant::now() + Duration::from_secs(10);
            while child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        if std::thread::panicking() {
            eprintln!("{}", self.log());
        }
    }
}

/// Connects to a CRI socket as kubelet does (`:authority` is `localhost`).
pub async fn connect(socket: &Path) -> Result<Channel, tonic::transport::Error> {
    let socket = socket.to_owned();
    Endpoint::try_from("http://localhost")
        .expect("static uri")
        .connect_with_connector(tower::service_fn(move |_: Uri| {
            let socket = socket.clone();
            async move {
                Ok::<_, std::io::Error>(TokioIo::new(
                    tokio::net::UnixStream::connect(socket).await?,
                ))
            }
        }))
        .await
}

/// Runs the crius binary to completion with `args` (for subcommands and
/// start-up failures) and returns its exit status and combined output.
pub fn run_crius(args: &[&str]) -> (ExitStatus, String) {
    let out = Command::new(crius_bin())
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run crius");
    let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&out.stderr));
    (out.status, text)
}
