//! conmon, the per-container monitor: it runs `runc create`, holds the
//! container's stdio, writes the CRI log and the exit file, and outlives
//! crius (it double-forks).
//!
//! Protocol (conmon `src/conmon.c`, `--api-version 1`): the write end of a
//! pipe is passed as fd 3 with `_OCI_SYNCPIPE=3`; after `runc create`
//! conmon writes one JSON line, `{"data": <container pid>}` on success or
//! `{"data": -1, "message": "<runc stderr>"}` on failure. The exit code
//! later lands in `<exit dir>/<id>` and `<persist dir>/exit`, an OOM kill
//! creates `<persist dir>/oom`, and writing `"2 0 0\n"` (REOPEN_LOGS_EVENT)
//! to the `ctl` fifo in the bundle makes conmon reopen its log file.

// `pre_exec` is the only way to place the sync pipe at fd 3 in the child;
// tokio's AsyncFd registration of the exit dir watch is unsafe too.
#![allow(unsafe_code)]

use std::ffi::OsString;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};

use crate::error::{Error, Result, parse_runc_message};

pub const CTL_FIFO: &str = "ctl";
pub const REOPEN_LOGS_EVENT: i32 = 2;
/// `"1 <height> <width>\n"` on the ctl fifo resizes the container's tty
/// (conmon `src/ctrl.c`).
pub const WIN_RESIZE_EVENT: i32 = 1;

/// Everything conmon needs to create one container.
#[derive(Debug, Clone)]
pub struct ConmonCreate {
    pub conmon_path: PathBuf,
    pub runtime_path: PathBuf,
    /// Global runc args (`--root`, `--log-format`, `--log`).
    pub runtime_args: Vec<OsString>,
    /// runc's log file, read for the error message on failure.
    pub runtime_log: PathBuf,
    pub id: String,
    pub name: String,
    pub bundle: PathBuf,
    pub pid_file: PathBuf,
    pub conmon_pid_file: PathBuf,
    pub log_path: PathBuf,
    pub exit_dir: PathBuf,
    pub persist_dir: PathBuf,
    pub socket_dir: PathBuf,
    pub terminal: bool,
    pub stdin: bool,
    pub stdin_once: bool,
    pub systemd_cgroup: bool,
    pub timeout: Duration,
}

impl ConmonCreate {
    pub fn args(&self) -> Vec<OsString> {
        let mut a: Vec<OsString> = vec![
            "--api-version".into(),
            "1".into(),
            "-c".into(),
            self.id.clone().into(),
            "-u".into(),
            self.id.clone().into(),
            "-n".into(),
            self.name.clone().into(),
            "-r".into(),
            self.runtime_path.clone().into(),
            "-b".into(),
            self.bundle.clone().into(),
            "-p".into(),
            self.pid_file.clone().into(),
            "-P".into(),
            self.conmon_pid_file.clone().into(),
        ];
        let mut log = OsString::from("k8s-file:");
        log.push(&self.log_path);
        a.extend(["-l".into(), log]);
        a.extend(["--exit-dir".into(), self.exit_dir.clone().into()]);
        a.extend(["--persist-dir".into(), self.persist_dir.clone().into()]);
        a.extend(["--socket-dir-path".into(), self.socket_dir.clone().into()]);
        a.extend(["--log-level".into(), "info".into()]);
        for r in &self.runtime_args {
            let mut arg = OsString::from("--runtime-arg=");
            arg.push(r);
            a.push(arg);
        }
        if self.systemd_cgroup {
            a.push("--systemd-cgroup".into());
        }
        if self.terminal {
            a.push("-t".into());
        }
        if self.stdin {
            a.push("-i".into());
            if !self.stdin_once {
                a.push("--leave-stdin-open".into());
            }
        }
        a
    }
}

#[derive(serde::Deserialize)]
struct SyncMessage {
    data: i64,
    #[serde(default)]
    message: Option<String>,
}

/// Starts conmon and waits for `runc create` to finish. Returns the
/// container pid.
pub async fn create(c: &ConmonCreate) -> Result<i32> {
    let (read_end, write_end) =
        nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| Error::Spawn {
            id: c.id.clone(),
            program: c.conmon_path.clone(),
            source: e.into(),
        })?;
    let mut cmd = tokio::process::Command::new(&c.conmon_path);
    cmd.args(c.args())
        .current_dir(&c.bundle)
        .env("_OCI_SYNCPIPE", "3")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let fd = write_end.as_raw_fd();
    // SAFETY: the closure runs in the forked child before exec and only
    // calls async-signal-safe functions (dup2, fcntl) on an fd the parent
    // keeps open until spawn returns.
    unsafe {
        cmd.pre_exec(move || {
            if fd == 3 {
                let flags = libc::fcntl(3, libc::F_GETFD);
                if flags < 0 || libc::fcntl(3, libc::F_SETFD, flags & !libc::FD_CLOEXEC) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            } else if libc::dup2(fd, 3) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = cmd.spawn().map_err(|e| Error::Spawn {
        id: c.id.clone(),
        program: c.conmon_path.clone(),
        source: e,
    })?;
    // Only conmon may hold the write end, so EOF means conmon is gone.
    drop(write_end);

    let mut stderr = child.stderr.take();
    let result = tokio::time::timeout(c.timeout, async {
        // The first conmon process exits right after forking the monitor.
        let status = child.wait().await.map_err(|e| Error::Spawn {
            id: c.id.clone(),
            program: c.conmon_path.clone(),
            source: e,
        })?;
        let line = read_sync_line(read_end).await;
        Ok::<_, Error>((status, line))
    })
    .await;

    let conmon_stderr = async {
        let mut s = String::new();
        if let Some(e) = stderr.as_mut() {
            let _ =
                tokio::time::timeout(Duration::from_millis(500), e.read_to_string(&mut s)).await;
        }
        s.trim().to_string()
    };
    let runc_log = std::fs::read_to_string(&c.runtime_log).unwrap_or_default();
    let failed = |status: String, message: Option<String>, stderr: String| Error::CommandFailed {
        id: c.id.clone(),
        command: "runc create".into(),
        status,
        message: parse_runc_message(&runc_log)
            .or(message)
            .or_else(|| parse_runc_message(&stderr))
            .unwrap_or_else(|| "conmon exited without reporting a result".into()),
        stderr,
    };
    match result {
        Err(_) => {
            let _ = child.start_kill();
            Err(Error::Timeout {
                id: c.id.clone(),
                op: "create",
                timeout: c.timeout,
            })
        }
        Ok(Err(e)) => Err(e),
        Ok(Ok((status, line))) => {
            let msg = line
                .as_deref()
                .and_then(|l| serde_json::from_str::<SyncMessage>(l).ok());
            match msg {
                Some(m) if m.data > 0 => Ok(m.data as i32),
                Some(m) => Err(failed(
                    format!("conmon reported {}", m.data),
                    m.message.map(|s| s.trim().to_string()),
                    conmon_stderr.await,
                )),
                None => Err(failed(
                    format!("conmon {status}"),
                    None,
                    conmon_stderr.await,
                )),
            }
        }
    }
}

async fn read_sync_line(fd: OwnedFd) -> Option<String> {
    let rx = tokio::net::unix::pipe::Receiver::from_owned_fd(fd).ok()?;
    let mut line = String::new();
    let mut r = BufReader::new(rx);
    match r.read_line(&mut line).await {
        Ok(n) if n > 0 => Some(line.trim().to_string()),
        _ => None,
    }
}

/// Asks conmon to reopen the container log (kubelet log rotation).
pub fn reopen_log(id: &str, bundle: &Path) -> Result<()> {
    write_ctl(
        id,
        bundle,
        &format!("{REOPEN_LOGS_EVENT} 0 0\n"),
        "reopen its log (conmon is not running)",
    )
}

/// Asks conmon to set the size of the container's tty (Attach resize).
pub fn resize(id: &str, bundle: &Path, width: u16, height: u16) -> Result<()> {
    write_ctl(
        id,
        bundle,
        &format!("{WIN_RESIZE_EVENT} {height} {width}\n"),
        "resize its terminal (conmon is not running)",
    )
}

/// Writes one message to conmon's ctl fifo; ENXIO (no reader) means conmon
/// is gone.
fn write_ctl(id: &str, bundle: &Path, message: &str, op: &'static str) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let path = bundle.join(CTL_FIFO);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(&path)
        .map_err(|e| {
            if e.raw_os_error() == Some(libc::ENXIO) {
                Error::FailedPrecondition {
                    id: id.into(),
                    state: "not monitored",
                    op,
                }
            } else {
                Error::io("failed to open conmon control fifo", &path, e)
            }
        })?;
    f.write_all(message.as_bytes())
        .map_err(|e| Error::io("failed to write conmon control fifo", &path, e))
}

/// Wakes waiters when conmon writes an exit file: one inotify watch on the
/// exit dir (conmon writes a temp file and renames it into place) for the
/// whole manager, read by a task that wakes every waiter on each event.
///
/// One long-lived watch, not one per wait: closing an inotify fd waits for
/// an SRCU grace period in the kernel (fsnotify group teardown), measured
/// at 10-20 ms, which a per-stop watch paid on every StopContainer.
/// Exit dir names kept for a follower that falls behind.
const EXIT_NAMES_CAPACITY: usize = 1024;

pub struct ExitNotifier {
    notify: std::sync::Arc<tokio::sync::Notify>,
    /// The names written into the exit dir (container ids, and conmon's
    /// temp files), for whoever follows exits as they happen.
    names: tokio::sync::broadcast::Sender<String>,
}

struct InotifyFd(nix::sys::inotify::Inotify);

impl AsRawFd for InotifyFd {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        use std::os::fd::AsFd;
        self.0.as_fd().as_raw_fd()
    }
}

impl ExitNotifier {
    /// Sets up the watch and spawns its reader on the current tokio
    /// runtime; the reader ends with the first event after the notifier
    /// is dropped.
    pub fn start(exit_dir: &Path) -> std::io::Result<Self> {
        use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};
        let ino = Inotify::init(InitFlags::IN_NONBLOCK | InitFlags::IN_CLOEXEC)?;
        ino.add_watch(
            exit_dir,
            AddWatchFlags::IN_MOVED_TO | AddWatchFlags::IN_CLOSE_WRITE,
        )?;
        // SAFETY: the Inotify owns its fd for as long as the AsyncFd holds
        // it, and as_raw_fd always returns that same fd.
        let fd = unsafe {
            tokio::io::unix::AsyncFd::register_with_interest(
                InotifyFd(ino),
                tokio::io::Interest::READABLE,
            )
        }
        .map_err(|e| e.into_parts().1)?;
        let notify = std::sync::Arc::new(tokio::sync::Notify::new());
        let names = tokio::sync::broadcast::channel(EXIT_NAMES_CAPACITY).0;
        let weak = std::sync::Arc::downgrade(&notify);
        let sender = names.clone();
        tokio::spawn(async move {
            loop {
                let Ok(mut ready) = fd.readable().await else {
                    return;
                };
                match ready.get_inner().0.read_events() {
                    Ok(events) if !events.is_empty() => match weak.upgrade() {
                        Some(n) => {
                            for name in events.iter().filter_map(|e| e.name.as_ref()) {
                                // Nobody following exits is fine.
                                let _ = sender.send(name.to_string_lossy().into_owned());
                            }
                            n.notify_waiters();
                        }
                        None => return,
                    },
                    Ok(_) | Err(nix::Error::EAGAIN) => ready.clear_ready(),
                    Err(e) => {
                        tracing::warn!(%e, "exit dir watch failed, waiters fall back to polling");
                        return;
                    }
                }
            }
        });
        Ok(ExitNotifier { notify, names })
    }

    /// The names written into the exit dir from now on.
    pub fn names(&self) -> tokio::sync::broadcast::Receiver<String> {
        self.names.subscribe()
    }

    /// A registration for the next write into the exit dir (any
    /// container's: the caller looks for its own file). Take it before
    /// looking for the file, then await it, so a write in between is not
    /// missed.
    pub fn subscribe(&self) -> std::pin::Pin<Box<tokio::sync::futures::Notified<'_>>> {
        let mut n = Box::pin(self.notify.notified());
        n.as_mut().enable();
        n
    }
}

/// The pid of conmon if it is still running for container `id`.
pub fn running_conmon(conmon_pid_file: &Path, id: &str) -> Option<i32> {
    let pid = crate::runtime::read_pid(conmon_pid_file)?;
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
    let is_conmon = args
        .first()
        .map(|a| a.ends_with(b"conmon"))
        .unwrap_or(false);
    let has_id = args.contains(&id.as_bytes());
    (is_conmon && has_id).then_some(pid)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resize_writes_conmons_ctl_message() {
        use std::io::Read;
        use std::os::unix::fs::OpenOptionsExt;
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join(CTL_FIFO);
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        // No reader: conmon is gone.
        let err = resize("c1", dir.path(), 80, 24).unwrap_err();
        assert!(err.to_string().contains("conmon is not running"), "{err}");
        let mut reader = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(&fifo)
            .unwrap();
        resize("c1", dir.path(), 132, 43).unwrap();
        reopen_log("c1", dir.path()).unwrap();
        let mut got = String::new();
        reader.read_to_string(&mut got).unwrap();
        // "<type> <height> <width>", as conmon's ctrl.c parses it.
        assert_eq!(got, "1 43 132\n2 0 0\n");
    }

    #[tokio::test]
    async fn exit_notifier_wakes_on_a_renamed_file_and_not_before() {
        let dir = tempfile::tempdir().unwrap();
        let n = ExitNotifier::start(dir.path()).unwrap();
        let quiet = n.subscribe();
        assert!(
            tokio::time::timeout(Duration::from_millis(50), quiet)
                .await
                .is_err()
        );
        // Subscribed before the write: the wake-up is kept until awaited.
        let next = n.subscribe();
        let tmp = dir.path().join("abc.XYZ");
        std::fs::write(&tmp, "137").unwrap();
        std::fs::rename(&tmp, dir.path().join("abc")).unwrap();
        tokio::time::timeout(Duration::from_secs(5), next)
            .await
            .expect("no wake-up for the exit file");
    }

    fn sample() -> ConmonCreate {
        ConmonCreate {
            conmon_path: "/usr/bin/conmon".into(),
            runtime_path: "/usr/sbin/runc".into(),
            runtime_args: vec!["--root=/r".into(), "--log-format=json".into()],
            runtime_log: "/b/runc.log".into(),
            id: "abc".into(),
            name: "n".into(),
            bundle: "/b".into(),
            pid_file: "/b/pidfile".into(),
            conmon_pid_file: "/b/conmon.pid".into(),
            log_path: "/logs/c.log".into(),
            exit_dir: "/exits".into(),
            persist_dir: "/b".into(),
            socket_dir: "/socks".into(),
            terminal: false,
            stdin: true,
            stdin_once: false,
            systemd_cgroup: false,
            timeout: Duration::from_secs(1),
        }
    }

    #[test]
    fn args_follow_cri_o() {
        let a: Vec<String> = sample()
            .args()
            .into_iter()
            .map(|s| s.into_string().unwrap())
            .collect();
        let joined = a.join(" ");
        assert!(joined.starts_with("--api-version 1 -c abc -u abc -n n -r /usr/sbin/runc -b /b"));
        assert!(joined.contains("-l k8s-file:/logs/c.log"));
        assert!(joined.contains("--runtime-arg=--root=/r --runtime-arg=--log-format=json"));
        assert!(joined.ends_with("-i --leave-stdin-open"));
        assert!(!a.contains(&"-t".to_string()));
    }

    #[test]
    fn sync_message_parses() {
        let m: SyncMessage = serde_json::from_str(r#"{"data": 1234}"#).unwrap();
        assert_eq!(m.data, 1234);
        let m: SyncMessage = serde_json::from_str(r#"{"data": -1, "message": "boom\n"}"#).unwrap();
        assert_eq!(m.data, -1);
        assert_eq!(m.message.as_deref(), Some("boom\n"));
    }
}
