//! Signals to a container's init process without forking `runc kill`.
//!
//! runc's kill (without `--all`) sends the signal to the init pid from its
//! state file; crius knows that pid from create and sends it directly
//! through a pidfd, which saves a runc process (~10 ms, more on a busy
//! node) per stop. PID reuse is ruled out by the process start time
//! recorded at create: the pidfd is opened first, then `/proc/<pid>/stat`
//! must still show that start time, so the pidfd is known to name the
//! container's own process when the signal goes out.
//!
//! A signal can also be lost: the kernel drops a signal sent from outside
//! to a PID namespace's init (a container's PID 1) that has no handler for
//! it, and a stop that comes right after start finds a PID 1 that has not
//! installed its handler yet. [`send`] tells from `/proc/<pid>/status`
//! whether the process caught the signal when it went out, so that the
//! caller can send it again once a handler is there ([`Dispositions`]).

// pidfd_open and pidfd_send_signal have no safe wrapper in nix 0.30.
#![allow(unsafe_code)]

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use nix::sys::signal::Signal;

/// What became of a signal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// Sent while the process caught or blocked the signal (or began to
    /// between the two looks at its status around the send).
    Sent,
    /// Sent while the process neither caught nor blocked it: unless the
    /// default action ended the process, the signal was dropped (a PID
    /// namespace init drops what it has no handler for; a process may
    /// ignore a signal).
    Uncaught,
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

/// The signal masks of a process, from `/proc/<pid>/status`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Dispositions {
    /// Signals with a handler (SigCgt).
    pub caught: u64,
    /// Signals set to be ignored (SigIgn).
    pub ignored: u64,
    /// Signals blocked by the main thread (SigBlk): they stay pending.
    pub blocked: u64,
}

impl Dispositions {
    /// From the text of `/proc/<pid>/status`; `None` without the masks.
    pub fn parse(status: &str) -> Option<Dispositions> {
        let mask = |key: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
                .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        };
        Some(Dispositions {
            caught: mask("SigCgt")?,
            ignored: mask("SigIgn")?,
            blocked: mask("SigBlk")?,
        })
    }

    /// Those of `pid` if it is still the process that started at
    /// `start_time_ticks`; `None` once it is gone.
    pub fn of(pid: i32, start_time_ticks: u64) -> Option<Dispositions> {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        // Read after the status: a reused pid shows another start time.
        if start_time(pid) != Some(start_time_ticks) {
            return None;
        }
        Dispositions::parse(&status)
    }

    fn bit(sig: Signal) -> u64 {
        1u64 << ((sig as i32 - 1) & 63)
    }

    pub fn catches(&self, sig: Signal) -> bool {
        self.caught & Self::bit(sig) != 0
    }

    pub fn blocks(&self, sig: Signal) -> bool {
        self.blocked & Self::bit(sig) != 0
    }
}

/// Sends `sig` to `pid` if it is still the process that started at
/// `start_time` (as [`start_time`] read it). The process's dispositions
/// are read just before and just after: if neither look shows a handler
/// for `sig` (or `sig` blocked), the result is [`Delivery::Uncaught`].
pub fn send(pid: i32, start_time_ticks: u64, sig: Signal) -> std::io::Result<Delivery> {
    let Some((pidfd, _)) = PidFd::open_if(pid, |started| started == start_time_ticks)? else {
        return Ok(Delivery::Gone);
    };
    let before = Dispositions::of(pid, start_time_ticks);
    if pidfd.send(sig)? == Delivery::Gone {
        return Ok(Delivery::Gone);
    }
    let after = Dispositions::of(pid, start_time_ticks);
    let heeded = |d: Option<Dispositions>| d.is_none_or(|d| d.catches(sig) || d.blocks(sig));
    if heeded(before) || heeded(after) {
        Ok(Delivery::Sent)
    } else {
        Ok(Delivery::Uncaught)
    }
}

/// A pidfd: names one process for good, whatever later reuses its pid.
#[derive(Debug)]
pub struct PidFd(OwnedFd);

impl PidFd {
    /// Opens a pidfd for `pid`, then keeps it only if the start time of
    /// the process it names passes `check`: once the pidfd is open, the
    /// start time read from /proc is that of the pidfd's own process.
    /// `None` if there is no such process or it fails the check.
    pub fn open_if(
        pid: i32,
        check: impl FnOnce(u64) -> bool,
    ) -> std::io::Result<Option<(PidFd, u64)>> {
        if pid <= 0 {
            return Err(std::io::Error::from_raw_os_error(libc::EINVAL));
        }
        // SAFETY: pidfd_open takes a pid and flags and returns a new fd or
        // -1; no memory is passed.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
        if fd < 0 {
            let e = std::io::Error::last_os_error();
            return match e.raw_os_error() {
                Some(libc::ESRCH) => Ok(None),
                _ => Err(e),
            };
        }
        // SAFETY: the syscall returned a fresh fd that nothing else owns.
        let pidfd = PidFd(unsafe { OwnedFd::from_raw_fd(fd as i32) });
        Ok(start_time(pid).filter(|t| check(*t)).map(|t| (pidfd, t)))
    }

    /// Sends `sig` to the process; `Gone` if it has exited.
    pub fn send(&self, sig: Signal) -> std::io::Result<Delivery> {
        // SAFETY: a valid pidfd, a signal number, no siginfo (NULL) and no
        // flags, as pidfd_send_signal(2) allows.
        let r = unsafe {
            libc::syscall(
                libc::SYS_pidfd_send_signal,
                self.0.as_raw_fd(),
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
}

/// `when` as a process start time (clock ticks since boot, the clock of
/// [`start_time`]), rounded up; `None` if the clocks cannot be read.
pub fn boot_ticks_at(when: std::time::SystemTime) -> Option<u64> {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec, which `ts` is.
    if unsafe { libc::clock_gettime(libc::CLOCK_BOOTTIME, &mut ts) } != 0 {
        return None;
    }
    let since_boot = std::time::Duration::new(u64::try_from(ts.tv_sec).ok()?, ts.tv_nsec as u32);
    let ago = std::time::SystemTime::now()
        .duration_since(when)
        .unwrap_or_default();
    let at = since_boot.checked_sub(ago)?;
    // SAFETY: sysconf has no memory arguments.
    let hz = u64::try_from(unsafe { libc::sysconf(libc::_SC_CLK_TCK) }).ok()?;
    Some((at.as_nanos() * u128::from(hz)).div_ceil(1_000_000_000) as u64)
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
    fn dispositions_from_proc_status() {
        let status = "Name:\tsh\nSigQ:\t0/63229\nSigPnd:\t0000000000000000\n\
            ShdPnd:\t0000000000000000\nSigBlk:\t0000000000010000\n\
            SigIgn:\t0000000000000004\nSigCgt:\t0000000000004002\n";
        let d = Dispositions::parse(status).unwrap();
        assert!(d.catches(Signal::SIGTERM));
        assert!(d.catches(Signal::SIGINT));
        assert!(!d.catches(Signal::SIGQUIT));
        assert_eq!(d.ignored, 1 << 2);
        assert!(d.blocks(Signal::SIGCHLD));
        assert!(!d.blocks(Signal::SIGTERM));
        assert_eq!(Dispositions::parse("Name:\tx\n"), None);
    }

    #[test]
    fn a_signal_without_a_handler_is_reported_uncaught() {
        // A process that ignores TERM (set by the shell, kept across exec):
        // the signal does nothing, and says so. A shell itself would not do:
        // it blocks signals now and then (around forks, while waiting), and
        // a blocked signal counts as heeded.
        let mut child = std::process::Command::new("sh")
            .args(["-c", "trap '' TERM; exec sleep 30"])
            .spawn()
            .unwrap();
        let pid = child.id() as i32;
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        // Settled once the exec is done (the start time stays that of the
        // fork) and TERM is ignored.
        let started = start_time(pid).unwrap();
        while std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default() != "sleep\n"
            || Dispositions::of(pid, started).is_none_or(|d| d.ignored & (1 << 14) == 0)
        {
            assert!(std::time::Instant::now() < deadline, "trap never set");
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        assert_eq!(
            send(pid, started, Signal::SIGTERM).unwrap(),
            Delivery::Uncaught
        );
        assert!(child.try_wait().unwrap().is_none());
        child.kill().unwrap();
        child.wait().unwrap();

        // A shell with a handler: caught.
        let mut child = std::process::Command::new("sh")
            .args(["-c", "trap 'exit 3' TERM; while :; do sleep 0.05; done"])
            .spawn()
            .unwrap();
        let pid = child.id() as i32;
        let started = start_time(pid).unwrap();
        while Dispositions::of(pid, started).is_none_or(|d| !d.catches(Signal::SIGTERM)) {
            assert!(std::time::Instant::now() < deadline, "trap never set");
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        assert_eq!(send(pid, started, Signal::SIGTERM).unwrap(), Delivery::Sent);
        assert_eq!(child.wait().unwrap().code(), Some(3));
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
        // No handler for SIGKILL, ever: uncaught (and deadly).
        assert_eq!(
            send(pid, started, Signal::SIGKILL).unwrap(),
            Delivery::Uncaught
        );
        let status = child.wait().unwrap();
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(status.signal(), Some(libc::SIGKILL));
        // Reaped: the pid names nothing (or something else) now.
        assert_eq!(send(pid, started, Signal::SIGKILL).unwrap(), Delivery::Gone);
    }

    #[test]
    fn boot_ticks_of_now_follow_a_new_process() {
        let child = std::process::Command::new("sleep").arg("5").spawn();
        let mut child = child.unwrap();
        let started = start_time(child.id() as i32).unwrap();
        let now = boot_ticks_at(std::time::SystemTime::now()).unwrap();
        assert!(started <= now, "{started} > {now}");
        assert!(now - started < 100, "{started} vs {now}");
        child.kill().unwrap();
        child.wait().unwrap();
    }
}
