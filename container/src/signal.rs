//! Signals to a container's init process without forking `runc kill`.
//!
//! runc's kill (without `--all`) sends the signal to the init pid from its
//! state file; crius knows that pid from create and sends it directly
//! through a pidfd, which saves a runc process (~10 ms, more on a busy
//! node) per stop. PID reuse is ruled out by the process start time
//! recorded at create: the pidfd is opened first, then `/proc/<pid>/stat`
//! must still show that start time, so the pidfd is known to name the
//! container's own process when the signal goes out.

// pidfd_open and pidfd_send_signal have no safe wrapper in nix 0.30.
#![allow(unsafe_code)]

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use nix::sys::signal::Signal;

/// What became of a signal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    Sent,
    /// The process is gone (exited, reaped, or its pid now names another
    /// process): nothing was signalled.
    Gone,
}

/// The start time of `pid` in clock ticks since boot (field 22 of
/// `/proc/<pid>/stat`), `None` if there is no such process.
pub fn start_time(pid: i32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // comm may hold spaces and parens: fields resume after the last ')',
    // where field 3 (state) is the first.
    stat.rsplit_once(')')?
        .1
        .split_whitespace()
        .nth(22 - 3)?
        .parse()
        .ok()
}

/// A signal name as crius passes it to runc (`TERM`, `SIGQUIT`, `9`).
/// `None` for what nix does not name (real-time signals): the caller
/// leaves those to runc.
pub fn parse(name: &str) -> Option<Signal> {
    let name = name.trim();
    if let Ok(n) = name.parse::<i32>() {
        return Signal::try_from(n).ok();
    }
    let upper = name.to_ascii_uppercase();
    let full = if upper.starts_with("SIG") {
        upper
    } else {
        format!("SIG{upper}")
    };
    full.parse().ok()
}

/// Sends `sig` to `pid` if it is still the process that started at
/// `start_time` (as [`start_time`] read it).
pub fn send(pid: i32, start_time_ticks: u64, sig: Signal) -> std::io::Result<Delivery> {
    if pid <= 0 {
        return Err(std::io::Error::from_raw_os_error(libc::EINVAL));
    }
    // SAFETY: pidfd_open takes a pid and flags and returns a new fd or -1;
    // no memory is passed.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        let e = std::io::Error::last_os_error();
        return match e.raw_os_error() {
            Some(libc::ESRCH) => Ok(Delivery::Gone),
            _ => Err(e),
        };
    }
    // SAFETY: the syscall returned a fresh fd that nothing else owns.
    let pidfd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
    if start_time(pid) != Some(start_time_ticks) {
        return Ok(Delivery::Gone);
    }
    // SAFETY: a valid pidfd, a signal number, no siginfo (NULL) and no
    // flags, as pidfd_send_signal(2) allows.
    let r = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd.as_raw_fd(),
            sig as libc::c_int,
            std::ptr::null::<libc::siginfo_t>(),
            0,
        )
    };
    if r < 0 {
        let e = std::io::Error::last_os_error();
        return match e.raw_os_error() {
            Some(libc::ESRCH) => Ok(Delivery::Gone),
            _ => Err(e),
        };
    }
    Ok(Delivery::Sent)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signal_names() {
        assert_eq!(parse("TERM"), Some(Signal::SIGTERM));
        assert_eq!(parse("SIGQUIT"), Some(Signal::SIGQUIT));
        assert_eq!(parse("usr1"), Some(Signal::SIGUSR1));
        assert_eq!(parse("9"), Some(Signal::SIGKILL));
        assert_eq!(parse("RTMIN+3"), None);
        assert_eq!(parse("NOPE"), None);
    }

    #[test]
    fn signals_only_the_process_that_was_recorded() {
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let pid = child.id() as i32;
        let started = start_time(pid).unwrap();
        // Another start time stands for a reused pid: nothing is sent.
        assert_eq!(
            send(pid, started + 1, Signal::SIGKILL).unwrap(),
            Delivery::Gone
        );
        assert!(child.try_wait().unwrap().is_none());
        assert_eq!(send(pid, started, Signal::SIGKILL).unwrap(), Delivery::Sent);
        let status = child.wait().unwrap();
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(status.signal(), Some(libc::SIGKILL));
        // Reaped: the pid names nothing (or something else) now.
        assert_eq!(send(pid, started, Signal::SIGKILL).unwrap(), Delivery::Gone);
    }
}
