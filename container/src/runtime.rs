//! Driving the OCI runtime (runc) directly: start, state, kill, delete and
//! exec. `create` goes through conmon (see [`crate::monitor`]).
//!
//! runc always runs as `runc --root <runroot>/runc --log-format json --log
//! <file>`, so its error comes back as a parsed message, not a wall of text.

use std::collections::HashMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use serde::Deserialize;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::process::Command;

use crate::error::{Error, Result, parse_runc_message};

/// ExecSync keeps at most this many bytes of stdout and stderr together;
/// the rest is read and dropped. The reply carries both, and must fit under
/// the gRPC server's 16 MiB message limit (the kubelet's), so the cap
/// leaves 64 KiB for the rest of the message.
pub const MAX_EXEC_OUTPUT: usize = (16 << 20) - (64 << 10);

static LOG_SEQ: AtomicU64 = AtomicU64::new(0);

/// `runc state` output.
#[derive(Debug, Clone, Deserialize)]
pub struct RuncState {
    pub id: String,
    pub pid: i32,
    pub status: String,
    #[serde(default)]
    pub bundle: String,
}

#[derive(Debug, Clone)]
pub struct Runc {
    pub path: PathBuf,
    pub root: PathBuf,
    log_dir: PathBuf,
    /// `--systemd-cgroup` on every call, not only create: runc releases
    /// differ in whether update/delete take the cgroup manager from this
    /// flag or from the container's saved state.
    pub systemd_cgroup: bool,
}

/// Output of a finished command run inside a container.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ExecOutput {
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    pub exit_code: i32,
}

impl Runc {
    pub fn new(path: PathBuf, root: PathBuf, log_dir: PathBuf) -> Self {
        Runc {
            path,
            root,
            log_dir,
            systemd_cgroup: false,
        }
    }

    /// Whether this runc can mount recursively read-only (`rro`, runc 1.1+
    /// on Linux 5.12+), from `runc features`. Asked once at start; a runc
    /// that cannot answer is taken not to.
    pub fn supports_recursive_read_only(&self) -> bool {
        let out = match std::process::Command::new(&self.path)
            .arg("features")
            .stdin(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .output()
        {
            Ok(out) if out.status.success() => out.stdout,
            _ => return false,
        };
        mount_options_include(&out, "rro")
    }

    /// A fresh log file for one runc call.
    pub fn log_file(&self, id: &str, op: &str) -> PathBuf {
        let n = LOG_SEQ.fetch_add(1, Ordering::Relaxed);
        self.log_dir
            .join(format!("{id}-{op}-{}-{n}.log", std::process::id()))
    }

    /// The global args every runc call carries.
    pub fn global_args(&self, log: &Path) -> Vec<OsString> {
        let mut root = OsString::from("--root=");
        root.push(&self.root);
        let mut log_arg = OsString::from("--log=");
        log_arg.push(log);
        let mut args = vec![root, "--log-format=json".into(), log_arg];
        if self.systemd_cgroup {
            args.push("--systemd-cgroup".into());
        }
        args
    }

    fn command(&self, log: &Path) -> Command {
        let mut c = Command::new(&self.path);
        c.args(self.global_args(log))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        c
    }

    async fn run(&self, id: &str, op: &str, args: &[&str]) -> Result<Vec<u8>> {
        std::fs::create_dir_all(&self.log_dir)
            .map_err(|e| Error::io("failed to create directory", &self.log_dir, e))?;
        let log = self.log_file(id, op);
        let out = self
            .command(&log)
            .args(args)
            .output()
            .await
            .map_err(|e| Error::Spawn {
                id: id.into(),
                program: self.path.clone(),
                source: e,
            });
        let log_text = std::fs::read_to_string(&log).unwrap_or_default();
        let _ = std::fs::remove_file(&log);
        let out = out?;
        if out.status.success() {
            return Ok(out.stdout);
        }
        let stderr = String::from_utf8_lossy(&out.stderr).trim().to_string();
        Err(Error::CommandFailed {
            id: id.into(),
            command: format!("runc {op}"),
            status: out.status.to_string(),
            message: parse_runc_message(&log_text)
                .or_else(|| parse_runc_message(&stderr))
                .unwrap_or_else(|| "no error message".into()),
            stderr,
        })
    }

    /// `runc update --resources <file>`: applies an OCI `LinuxResources`
    /// JSON to the running container's cgroup.
    pub async fn update(&self, id: &str, resources_file: &Path) -> Result<()> {
        let file = resources_file.to_string_lossy();
        self.run(id, "update", &["update", "--resources", &file, id])
            .await
            .map(drop)
    }

    pub async fn start(&self, id: &str) -> Result<()> {
        self.run(id, "start", &["start", id]).await.map(drop)
    }

    /// `None` if runc does not know the container.
    pub async fn state(&self, id: &str) -> Result<Option<RuncState>> {
        match self.run(id, "state", &["state", id]).await {
            Ok(out) => serde_json::from_slice(&out)
                .map(Some)
                .map_err(|e| Error::Json {
                    path: self.root.join(id).join("state.json"),
                    source: e,
                }),
            Err(Error::CommandFailed { ref message, .. }) if is_not_exist(message) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// `runc list --format json`: every container this runc root holds,
    /// by id, in one process (recovery asks about all of them at once).
    pub async fn list(&self) -> Result<HashMap<String, RuncState>> {
        let out = self
            .run("runc", "list", &["list", "--format", "json"])
            .await?;
        parse_list(&out).map_err(|e| Error::Json {
            path: self.root.clone(),
            source: e,
        })
    }

    pub async fn kill(&self, id: &str, signal: &str, all: bool) -> Result<()> {
        let mut args = vec!["kill"];
        if all {
            args.push("--all");
        }
        args.extend([id, signal]);
        match self.run(id, "kill", &args).await {
            Err(Error::CommandFailed { ref message, .. })
                if is_not_exist(message) || message.contains("not running") =>
            {
                Ok(())
            }
            r => r.map(drop),
        }
    }

    /// `runc delete --force`; a container runc does not know is fine.
    pub async fn delete(&self, id: &str) -> Result<()> {
        match self.run(id, "delete", &["delete", "--force", id]).await {
            Err(Error::CommandFailed { ref message, .. }) if is_not_exist(message) => Ok(()),
            r => r.map(drop),
        }
    }

    /// The full `runc exec` argument list of a streaming exec (global args
    /// included); with `console_socket` runc runs detached and sends the
    /// pty master there. Returns the args and the runc log file.
    pub fn exec_args(
        &self,
        id: &str,
        process_file: &Path,
        pid_file: &Path,
        console_socket: Option<&Path>,
    ) -> Result<(Vec<OsString>, PathBuf)> {
        std::fs::create_dir_all(&self.log_dir)
            .map_err(|e| Error::io("failed to create directory", &self.log_dir, e))?;
        let log = self.log_file(id, "exec");
        let mut args = self.global_args(&log);
        args.extend(["exec".into(), "--process".into(), process_file.into()]);
        args.extend(["--pid-file".into(), pid_file.into()]);
        if let Some(sock) = console_socket {
            args.extend(["--detach".into(), "--console-socket".into(), sock.into()]);
        }
        args.push(id.into());
        Ok((args, log))
    }

    /// Runs the process described by `process_file` in the container,
    /// capturing at most [`MAX_EXEC_OUTPUT`] bytes of both streams. On
    /// timeout the process is SIGKILLed and a `Timeout` error returned.
    pub async fn exec_sync(
        &self,
        id: &str,
        process_file: &Path,
        pid_file: &Path,
        timeout: Option<Duration>,
    ) -> Result<ExecOutput> {
        std::fs::create_dir_all(&self.log_dir)
            .map_err(|e| Error::io("failed to create directory", &self.log_dir, e))?;
        let log = self.log_file(id, "exec");
        let mut child = self
            .command(&log)
            .arg("exec")
            .arg("--process")
            .arg(process_file)
            .arg("--pid-file")
            .arg(pid_file)
            .arg(id)
            // Its own process group, inherited by the exec'd process and its
            // children inside the container: a timeout kills them all.
            .process_group(0)
            .spawn()
            .map_err(|e| Error::Spawn {
                id: id.into(),
                program: self.path.clone(),
                source: e,
            })?;
        let budget = Arc::new(AtomicUsize::new(MAX_EXEC_OUTPUT));
        let stdout = (child.stdout.take()).map(|s| tokio::spawn(read_bounded(s, budget.clone())));
        let stderr = (child.stderr.take()).map(|s| tokio::spawn(read_bounded(s, budget.clone())));
        let waited = match timeout {
            Some(t) => tokio::time::timeout(t, child.wait()).await.ok(),
            None => Some(child.wait().await),
        };
        let status = match waited {
            Some(s) => s.map_err(|e| Error::Spawn {
                id: id.into(),
                program: self.path.clone(),
                source: e,
            })?,
            None => {
                reap_timed_out_exec(id, &mut child, pid_file).await;
                for h in [stdout, stderr].into_iter().flatten() {
                    h.abort();
                }
                let _ = std::fs::remove_file(&log);
                return Err(Error::Timeout {
                    id: id.into(),
                    op: "exec in",
                    timeout: timeout.unwrap_or_default(),
                });
            }
        };
        // A background child of the command may keep the pipes open: give
        // the readers a moment, then take what they have.
        let collect = |h: Option<tokio::task::JoinHandle<Vec<u8>>>| async move {
            match h {
                Some(h) => tokio::time::timeout(Duration::from_secs(2), h)
                    .await
                    .ok()
                    .and_then(|r| r.ok())
                    .unwrap_or_default(),
                None => Vec::new(),
            }
        };
        let out = collect(stdout).await;
        let err = collect(stderr).await;
        let log_text = std::fs::read_to_string(&log).unwrap_or_default();
        let _ = std::fs::remove_file(&log);
        // runc logs an error only when it failed itself (e.g. the binary
        // is missing); the command's own non-zero exit is not an error.
        if let Some(message) = runc_error_in_log(&log_text) {
            return Err(Error::CommandFailed {
                id: id.into(),
                command: "runc exec".into(),
                status: status.to_string(),
                message,
                stderr: String::from_utf8_lossy(&err).into_owned(),
            });
        }
        Ok(ExecOutput {
            stdout: out,
            stderr: err,
            exit_code: status.code().unwrap_or_else(|| {
                use std::os::unix::process::ExitStatusExt;
                128 + status.signal().unwrap_or(0)
            }),
        })
    }
}

pub(crate) fn runc_error_in_log(log: &str) -> Option<String> {
    let has_error = log.lines().any(|l| {
        serde_json::from_str::<serde_json::Value>(l)
            .ok()
            .and_then(|v| v.get("level").and_then(|x| x.as_str()).map(String::from))
            .map(|lvl| matches!(lvl.as_str(), "error" | "fatal" | "panic"))
            .unwrap_or(false)
    });
    if has_error {
        parse_runc_message(log)
    } else {
        None
    }
}

/// All descendants of `root`, from /proc (parent pid is field 4 of stat).
pub(crate) fn descendants(root: i32) -> Vec<i32> {
    let parent_of = parent_map();
    let mut out = Vec::new();
    let mut frontier = vec![root];
    while let Some(p) = frontier.pop() {
        for &(child, parent) in &parent_of {
            if parent == p && !out.contains(&child) {
                out.push(child);
                frontier.push(child);
            }
        }
    }
    out
}

/// How long runc gets to reap the killed exec'd process and exit before
/// it is killed itself.
const RUNC_REAP_WAIT: Duration = Duration::from_secs(5);
/// How long one level of an exec'd process tree gets to be reaped by its
/// parents once killed, and the whole tree to be gone at the end.
const TREE_REAP_WAIT: Duration = Duration::from_millis(500);

/// Ends a timed-out ExecSync so that nothing of it is left, zombies
/// included, when the RPC reports the timeout. runc forwards catchable
/// signals only, so the exec'd process tree is SIGKILLed itself, deepest
/// processes first so that the parents still alive reap them (a shell
/// waiting for its command does); then the exec'd process, which runc,
/// its parent, reaps before it exits. Killing runc together with it (as
/// killing runc's process group does) would hand the exec'd process to
/// the container's PID 1, which may never reap it; runc is killed only if
/// it does not exit in [`RUNC_REAP_WAIT`].
async fn reap_timed_out_exec(id: &str, runc: &mut tokio::process::Child, pid_file: &Path) {
    let runc_pid = runc.id().and_then(|p| i32::try_from(p).ok());
    let mut killed: Vec<(i32, u64)> = Vec::new();
    if let Some(root) = read_pid(pid_file) {
        for level in tree_levels(root).into_iter().rev() {
            kill_all(&level, &mut killed);
            wait_gone(&killed, TREE_REAP_WAIT).await;
        }
    }
    // What the killed shells started meanwhile, and what left the tree by
    // a double fork, is still in runc's process group (the exec'd process
    // inherits it; only a setsid takes it out).
    if let Some(pgid) = runc_pid {
        let strays: Vec<i32> = process_group(pgid)
            .into_iter()
            .filter(|p| *p != pgid)
            .collect();
        kill_all(&strays, &mut killed);
    }
    if tokio::time::timeout(RUNC_REAP_WAIT, runc.wait())
        .await
        .is_err()
    {
        tracing::warn!(%id, pid = ?runc_pid, "runc exec did not exit after its process was killed, killing it");
        if let Some(pgid) = runc_pid {
            let _ = nix::sys::signal::killpg(
                nix::unistd::Pid::from_raw(pgid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        let _ = runc.start_kill();
        let _ = tokio::time::timeout(RUNC_REAP_WAIT, runc.wait()).await;
    }
    let left = wait_gone(&killed, TREE_REAP_WAIT).await;
    if !left.is_empty() {
        // Orphans the container's PID 1 adopted and has not reaped.
        tracing::warn!(%id, pids = ?left, "processes of a timed-out exec are not reaped yet");
    }
}

/// `root` and its descendants by depth: `[[root], children, grandchildren, ...]`.
fn tree_levels(root: i32) -> Vec<Vec<i32>> {
    let parents = parent_map();
    let mut levels = vec![vec![root]];
    loop {
        let last = levels.last().map(Vec::as_slice).unwrap_or_default();
        let next: Vec<i32> = parents
            .iter()
            .filter(|(child, parent)| {
                last.contains(parent) && !levels.iter().flatten().any(|p| p == child)
            })
            .map(|(child, _)| *child)
            .collect();
        if next.is_empty() {
            return levels;
        }
        levels.push(next);
    }
}

/// SIGKILLs `pids`, noting each with its start time (so that waiting for
/// it never mistakes a reused pid for it).
fn kill_all(pids: &[i32], killed: &mut Vec<(i32, u64)>) {
    for &pid in pids {
        let Some(started) = crate::signal::start_time(pid) else {
            continue;
        };
        if nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        )
        .is_ok()
        {
            killed.push((pid, started));
        }
    }
}

/// Waits until every process of `procs` is gone (reaped: a zombie is not
/// gone) or `limit` passed; returns the pids still there.
async fn wait_gone(procs: &[(i32, u64)], limit: Duration) -> Vec<i32> {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let left: Vec<i32> = procs
            .iter()
            .filter(|(pid, started)| crate::signal::start_time(*pid) == Some(*started))
            .map(|(pid, _)| *pid)
            .collect();
        if left.is_empty() || tokio::time::Instant::now() >= deadline {
            return left;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// `(pid, parent pid)` of every process, from /proc (field 4 of stat).
fn parent_map() -> Vec<(i32, i32)> {
    proc_stat_field(1)
}

/// The members of process group `pgid`, from /proc (field 5 of stat).
fn process_group(pgid: i32) -> Vec<i32> {
    proc_stat_field(2)
        .into_iter()
        .filter(|(_, group)| *group == pgid)
        .map(|(pid, _)| pid)
        .collect()
}

/// `(pid, n-th field after the state)` of every process in /proc.
fn proc_stat_field(nth_after_state: usize) -> Vec<(i32, i32)> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir("/proc") {
        for e in entries.flatten() {
            let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
                continue;
            };
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
                continue;
            };
            // comm may contain spaces and parens: fields start after the last ')'
            if let Some(value) = stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().nth(nth_after_state))
                .and_then(|p| p.parse::<i32>().ok())
            {
                out.push((pid, value));
            }
        }
    }
    out
}

/// SIGKILLs the exec'd process whose pid runc wrote to `pid_file`, and
/// everything it started. Children are found first, then all killed: once
/// the exec'd process dies they are reparented and untraceable.
///
/// The pid may be stale: the exec'd process may have exited and its pid
/// been reused by any process on the host. runc writes the pid file after
/// starting the process and reaps it only later, so the exec'd process
/// started before the file was written, and a process that started after
/// it is someone else. Each process is held by a pidfd before its start
/// time is checked, so the signal reaches exactly the process checked.
pub(crate) fn kill_exec(pid_file: &Path) {
    use crate::signal::{PidFd, boot_ticks_at};
    let Some(pid) = read_pid(pid_file) else {
        return;
    };
    // 100 ms of slack for coarse file timestamps and clock conversion: no
    // pid is reused that fast.
    let Some(written) = std::fs::metadata(pid_file)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| boot_ticks_at(t + Duration::from_millis(100)))
    else {
        return;
    };
    let Ok(Some((exec, started))) = PidFd::open_if(pid, |t| t <= written) else {
        tracing::debug!(pid, "exec process gone or pid reused, nothing to kill");
        return;
    };
    // Descendants start after their ancestor; a pid that does not is a
    // reuse that raced the scan. The exec'd process goes first, so that it
    // never sees (and acts on) the death of its children.
    let victims: Vec<PidFd> = std::iter::once(exec)
        .chain(
            descendants(pid)
                .into_iter()
                .filter_map(|p| PidFd::open_if(p, |t| t >= started).ok().flatten())
                .map(|(fd, _)| fd),
        )
        .collect();
    for victim in victims {
        let _ = victim.send(nix::sys::signal::Signal::SIGKILL);
    }
}

pub(crate) fn read_pid(path: &Path) -> Option<i32> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// runc prints `null`, not `[]`, when it holds no container.
fn parse_list(out: &[u8]) -> serde_json::Result<HashMap<String, RuncState>> {
    let list: Option<Vec<RuncState>> = serde_json::from_slice(out)?;
    Ok(list
        .unwrap_or_default()
        .into_iter()
        .map(|s| (s.id.clone(), s))
        .collect())
}

fn is_not_exist(message: &str) -> bool {
    message.contains("does not exist") || message.contains("not exist")
}

/// Reads a stream to its end, keeping what fits in `budget` (bytes left,
/// shared by the streams of one exec) and taking that much from it.
async fn read_bounded(mut r: impl AsyncRead + Unpin, budget: Arc<AtomicUsize>) -> Vec<u8> {
    let mut kept = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match r.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                let taken = budget
                    .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |left| {
                        Some(left - n.min(left))
                    })
                    .map_or(0, |left| n.min(left));
                kept.extend_from_slice(&buf[..taken]);
            }
        }
    }
    kept
}

/// Whether `runc features` output lists `option` among its mount options.
fn mount_options_include(features_json: &[u8], option: &str) -> bool {
    serde_json::from_slice::<serde_json::Value>(features_json)
        .ok()
        .and_then(|v| {
            v.get("mountOptions")?
                .as_array()
                .map(|opts| opts.iter().any(|o| o.as_str() == Some(option)))
        })
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runc_list_is_read_by_id_and_null_is_empty() {
        assert!(parse_list(b"null\n").unwrap().is_empty());
        let out = br#"[{"ociVersion":"1.0.2","id":"a","pid":42,"status":"running","bundle":"/b/a","rootfs":"/r","created":"2024-01-01T00:00:00Z","owner":"root"},
            {"ociVersion":"1.0.2","id":"b","pid":0,"status":"stopped","bundle":"/b/b","rootfs":"/r","created":"2024-01-01T00:00:00Z","owner":"root"}]"#;
        let list = parse_list(out).unwrap();
        assert_eq!(list.len(), 2);
        assert_eq!((list["a"].pid, list["a"].status.as_str()), (42, "running"));
        assert_eq!(list["b"].status, "stopped");
    }

    #[test]
    fn rro_support_is_read_from_the_features_mount_options() {
        assert!(mount_options_include(
            br#"{"mountOptions":["ro","rro","rbind"]}"#,
            "rro"
        ));
        assert!(!mount_options_include(
            br#"{"mountOptions":["ro","rbind"]}"#,
            "rro"
        ));
        assert!(!mount_options_include(b"runc: unknown command", "rro"));
    }

    #[tokio::test]
    async fn bounded_reader_drops_the_excess() {
        let data = vec![7u8; MAX_EXEC_OUTPUT + 12345];
        let budget = Arc::new(AtomicUsize::new(MAX_EXEC_OUTPUT));
        let out = read_bounded(&data[..], budget.clone()).await;
        assert_eq!(out.len(), MAX_EXEC_OUTPUT);
        // The other stream of the same exec gets nothing more.
        assert!(read_bounded(&b"more"[..], budget).await.is_empty());
    }

    #[tokio::test]
    async fn both_streams_together_stay_under_the_cap() {
        let budget = Arc::new(AtomicUsize::new(MAX_EXEC_OUTPUT));
        let out = vec![1u8; MAX_EXEC_OUTPUT];
        let err = vec![2u8; MAX_EXEC_OUTPUT];
        let (a, b) = tokio::join!(
            read_bounded(&out[..], budget.clone()),
            read_bounded(&err[..], budget.clone())
        );
        assert_eq!(a.len() + b.len(), MAX_EXEC_OUTPUT);
    }

    /// A pid file as runc writes it for `child`, `age` after it started.
    fn pid_file_for(
        dir: &Path,
        child: &std::process::Child,
        mtime: std::time::SystemTime,
    ) -> PathBuf {
        let path = dir.join("exec.pid");
        std::fs::write(&path, child.id().to_string()).unwrap();
        std::fs::File::options()
            .write(true)
            .open(&path)
            .unwrap()
            .set_modified(mtime)
            .unwrap();
        path
    }

    #[test]
    fn kill_exec_kills_the_process_and_its_children() {
        let dir = tempfile::tempdir().unwrap();
        let mut child = std::process::Command::new("sh")
            .args(["-c", "sleep 30 & wait"])
            .spawn()
            .unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        let grandchild = loop {
            if let Some(&g) = descendants(child.id() as i32).first() {
                break g;
            }
            assert!(std::time::Instant::now() < deadline, "sleep never started");
            std::thread::sleep(Duration::from_millis(10));
        };
        let pid_file = pid_file_for(dir.path(), &child, std::time::SystemTime::now());
        kill_exec(&pid_file);
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(child.wait().unwrap().signal(), Some(libc::SIGKILL));
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while crate::signal::start_time(grandchild).is_some_and(|_| {
            // A zombie until its new parent reaps it.
            !std::fs::read_to_string(format!("/proc/{grandchild}/stat"))
                .unwrap_or_default()
                .contains(") Z")
        }) {
            assert!(
                std::time::Instant::now() < deadline,
                "child of the exec survived"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    #[test]
    fn kill_exec_spares_a_process_that_reused_the_pid() {
        let dir = tempfile::tempdir().unwrap();
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        // Written a minute before this process started: the pid in it
        // named an exec'd process that is gone, and names another now.
        let long_ago = std::time::SystemTime::now() - Duration::from_secs(60);
        let pid_file = pid_file_for(dir.path(), &child, long_ago);
        kill_exec(&pid_file);
        std::thread::sleep(Duration::from_millis(100));
        assert!(
            child.try_wait().unwrap().is_none(),
            "an unrelated process was killed"
        );
        child.kill().unwrap();
        child.wait().unwrap();
    }

    #[test]
    fn descendants_of_this_process() {
        let mut child = std::process::Command::new("sleep")
            .arg("5")
            .spawn()
            .unwrap();
        let me = std::process::id() as i32;
        assert!(descendants(me).contains(&(child.id() as i32)));
        child.kill().unwrap();
        child.wait().unwrap();
    }

    #[test]
    fn systemd_cgroup_flag_goes_on_every_call() {
        let mut runc = Runc::new("runc".into(), "/r".into(), "/l".into());
        let log = Path::new("/l/x.log");
        assert!(!runc.global_args(log).contains(&"--systemd-cgroup".into()));
        runc.systemd_cgroup = true;
        assert!(runc.global_args(log).contains(&"--systemd-cgroup".into()));
    }

    #[test]
    fn exec_log_errors() {
        assert_eq!(runc_error_in_log(""), None);
        assert_eq!(runc_error_in_log(r#"{"level":"info","msg":"x"}"#), None);
        assert_eq!(
            runc_error_in_log(r#"{"level":"error","msg":"exec failed: nope"}"#).as_deref(),
            Some("exec failed: nope")
        );
    }
}
