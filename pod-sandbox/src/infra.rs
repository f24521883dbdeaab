//! The infra process that holds a pod's PID namespace: `crius pause`, PID 1
//! of that namespace, which only reaps orphans and exits on SIGTERM/SIGINT.
//! It is started detached (own session) so that it outlives crius; a pid is
//! recorded with the process's start time so that a recycled pid is never
//! mistaken for it after a restart.

use std::time::Duration;

use nix::sys::signal::{SigSet, Signal};
use nix::sys::wait::{WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};

/// A running infra process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Infra {
    pub pid: i32,
    /// Field 22 of `/proc/<pid>/stat` (clock ticks since boot).
    pub start_time: u64,
}

impl Infra {
    /// Identifies the process now running as `pid`.
    pub fn identify(pid: i32) -> Option<Infra> {
        let (start_time, _) = stat(pid)?;
        Some(Infra { pid, start_time })
    }

    /// True while the recorded process (not a recycled pid) is running.
    pub fn is_alive(&self) -> bool {
        matches!(stat(self.pid), Some((start, state)) if start == self.start_time && state != 'Z')
    }

    /// `/proc/<pid>/ns/<kind>`: how containers join the pod's PID namespace.
    pub fn ns_path(&self, kind: &str) -> std::path::PathBuf {
        format!("/proc/{}/ns/{kind}", self.pid).into()
    }

    /// Kills the process and waits (bounded) until it is gone.
    pub async fn kill(&self) -> Result<(), std::io::Error> {
        if !self.is_alive() {
            return Ok(());
        }
        match nix::sys::signal::kill(Pid::from_raw(self.pid), Signal::SIGKILL) {
            Ok(()) | Err(nix::Error::ESRCH) => {}
            Err(e) => return Err(e.into()),
        }
        for _ in 0..500 {
            if !self.is_alive() {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        Err(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            format!("infra process {} did not exit after SIGKILL", self.pid),
        ))
    }
}

/// Start time and state letter from `/proc/<pid>/stat`.
fn stat(pid: i32) -> Option<(u64, char)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces and parentheses; fields resume after
    // the last ')'.
    let rest = &text[text.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split(' ').collect();
    let state = fields.first()?.chars().next()?;
    let start = fields.get(19)?.parse().ok()?;
    Some((start, state))
}

/// Infra processes tagged with `id` (`crius pause --id <id>`), found by
/// scanning `/proc`: how a RunPodSandbox interrupted before it recorded the
/// pid is cleaned up.
pub fn find_by_id(id: &str) -> Vec<Infra> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
            args.len() >= 4 && args[1] == b"pause" && args[2] == b"--id" && args[3] == id.as_bytes()
        })
        .filter_map(Infra::identify)
        .collect()
}

/// The body of `crius pause`. Never returns normally.
pub fn pause_main() -> ! {
    // Out of crius's session so that a terminal hangup or a signal to
    // crius's process group does not reach it.
    let _ = nix::unistd::setsid();
    let mut set = SigSet::empty();
    for sig in [
        Signal::SIGTERM,
        Signal::SIGINT,
        Signal::SIGCHLD,
        Signal::SIGHUP,
    ] {
        set.add(sig);
    }
    if let Err(e) = set.thread_block() {
        eprintln!("crius pause: failed to block signals: {e}");
        std::process::exit(1);
    }
    loop {
        match set.wait() {
            Ok(Signal::SIGTERM | Signal::SIGINT) => std::process::exit(0),
            Ok(Signal::SIGCHLD) => loop {
                match nix::sys::wait::waitpid(None, Some(WaitPidFlag::WNOHANG)) {
                    Ok(WaitStatus::StillAlive) | Err(_) => break,
                    Ok(_) => {}
                }
            },
            Ok(_) | Err(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifies_itself_and_rejects_a_wrong_start_time() {
        let me = Infra::identify(std::process::id() as i32).unwrap();
        assert!(me.is_alive());
        let other = Infra {
            start_time: me.start_time + 1,
            ..me
        };
        assert!(!other.is_alive());
        assert!(find_by_id("no-such-sandbox").is_empty());
    }
}
