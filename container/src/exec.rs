//! Streaming exec sessions (the Exec RPC): the guard that owns the files of
//! one `runc exec` and makes sure the exec'd process does not outlive a
//! client that went away.
//!
//! runc forwards catchable signals only, and a tty exec runs in a session of
//! its own, so killing runc is not enough: the guard kills the exec'd
//! process (from runc's pid file) and its descendants.

use std::path::PathBuf;

use crate::error::{Error, Result};
use crate::runtime::{kill_exec, runc_error_in_log};

/// Owns the process spec, pid file and runc log of one streaming exec.
/// Dropped before [`ExecGuard::finish`], it SIGKILLs the exec'd process
/// tree; either way it removes its files.
#[derive(Debug)]
pub struct ExecGuard {
    id: String,
    process_file: PathBuf,
    pid_file: PathBuf,
    log: PathBuf,
    finished: bool,
}

impl ExecGuard {
    pub(crate) fn new(id: String, process_file: PathBuf, pid_file: PathBuf, log: PathBuf) -> Self {
        ExecGuard {
            id,
            process_file,
            pid_file,
            log,
            finished: false,
        }
    }

    /// The exit code of the exec'd process from runc's own status (runc
    /// exec exits with it; death by signal N is 128 + N), or runc's error
    /// if runc itself failed (e.g. the command does not exist).
    pub fn finish(mut self, status: std::process::ExitStatus) -> Result<i32> {
        self.finished = true;
        let log_text = std::fs::read_to_string(&self.log).unwrap_or_default();
        if let Some(message) = runc_error_in_log(&log_text) {
            return Err(Error::CommandFailed {
                id: self.id.clone(),
                command: "runc exec".into(),
                status: status.to_string(),
                message,
                stderr: String::new(),
            });
        }
        Ok(status.code().unwrap_or_else(|| {
            use std::os::unix::process::ExitStatusExt;
            128 + status.signal().unwrap_or(0)
        }))
    }

    /// Kills the exec'd process and everything it started.
    pub fn kill(&self) {
        kill_exec(&self.pid_file);
    }
}

impl Drop for ExecGuard {
    fn drop(&mut self) {
        if !self.finished {
            tracing::debug!(id = %self.id, "exec session dropped, killing its process");
            self.kill();
        }
        for f in [&self.process_file, &self.pid_file, &self.log] {
            let _ = std::fs::remove_file(f);
        }
    }
}
