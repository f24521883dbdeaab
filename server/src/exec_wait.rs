//! `crius exec-wait <runc> <args>`: runs a detached `runc exec` (the only
//! way runc hands out a pty over --console-socket) as a child subreaper, so
//! that the exec'd process is reparented to this helper once runc exits;
//! the helper then reaps it and exits with its status (death by signal N
//! as 128 + N), which is what the streaming server reports.
//!
//! A helper process rather than crius itself: crius must not become the
//! subreaper of everything it starts (conmon double-forks on purpose).

use std::collections::HashMap;
use std::ffi::OsString;
use std::process::Stdio;

use anyhow::{Context, bail};
use nix::sys::wait::{WaitStatus, waitpid};

pub fn main(args: &[OsString]) -> anyhow::Result<()> {
    let Some((program, rest)) = args.split_first() else {
        bail!("usage: crius exec-wait <runc> <args...>");
    };
    let pid_file = rest
        .iter()
        .position(|a| a == "--pid-file")
        .and_then(|i| rest.get(i + 1))
        .context("exec-wait needs runc's --pid-file")?
        .clone();
    nix::sys::prctl::set_child_subreaper(true).context("failed to become a subreaper")?;
    let runc = std::process::Command::new(program)
        .args(rest)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .with_context(|| format!("failed to run {program:?}"))?;
    let runc_pid = i32::try_from(runc.id()).context("pid out of range")?;
    let mut exited: HashMap<i32, i32> = HashMap::new();
    let mut target: Option<i32> = None;
    loop {
        let (pid, code) = match waitpid(None, None) {
            Ok(WaitStatus::Exited(pid, code)) => (pid.as_raw(), code),
            Ok(WaitStatus::Signaled(pid, signal, _)) => (pid.as_raw(), 128 + signal as i32),
            Ok(_) => continue,
            Err(nix::errno::Errno::EINTR) => continue,
            // No children left without the target having been seen.
            Err(nix::errno::Errno::ECHILD) => std::process::exit(255),
            Err(e) => bail!("waitpid failed: {e}"),
        };
        if pid == runc_pid {
            if code != 0 {
                // runc failed; its log has the reason.
                std::process::exit(code);
            }
            let text = std::fs::read_to_string(&pid_file)
                .with_context(|| format!("failed to read {pid_file:?}"))?;
            target = Some(text.trim().parse().context("bad pid file")?);
        } else {
            exited.insert(pid, code);
        }
        if let Some(code) = target.and_then(|t| exited.get(&t)) {
            std::process::exit(*code);
        }
    }
}
