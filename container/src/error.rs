//! The container library's error type and its mapping onto [`ErrorKind`].

use std::path::PathBuf;
use std::time::Duration;

use crius_proto::ErrorKind;

/// Everything that can go wrong while creating, running or inspecting a
/// container. Variants name the container (or path) involved; runc failures
/// keep runc's own message.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("container {0:?} not found")]
    NotFound(String),

    #[error("container id prefix {0:?} matches more than one container")]
    AmbiguousPrefix(String),

    #[error("container name {name:?} is already reserved for container {id}")]
    NameReserved { name: String, id: String },

    #[error("invalid container config: {0}")]
    InvalidArgument(String),

    #[error("container {id} is {state}: cannot {op}")]
    FailedPrecondition {
        id: String,
        state: &'static str,
        op: &'static str,
    },

    #[error("cannot resolve user {user:?} in the container rootfs: {reason}")]
    User { user: String, reason: String },

    #[error("{context} {path:?}")]
    Io {
        context: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("failed to run {program:?} for container {id}")]
    Spawn {
        id: String,
        program: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// The OCI runtime (or conmon on its behalf) reported a failure;
    /// `message` is runc's own error, parsed from its JSON log when available.
    #[error("{command} of container {id} failed ({status}): {message}")]
    CommandFailed {
        id: String,
        command: String,
        status: String,
        message: String,
        stderr: String,
    },

    #[error("failed to mount the rootfs of container {id} at {target:?}: {reason}")]
    Mount {
        id: String,
        target: PathBuf,
        reason: String,
    },

    #[error("failed to unmount {target:?}")]
    Unmount {
        target: PathBuf,
        #[source]
        source: nix::Error,
    },

    #[error("failed to {op} container {id}: timed out after {timeout:?}")]
    Timeout {
        id: String,
        op: &'static str,
        timeout: Duration,
    },

    #[error("failed to encode or decode {path:?}")]
    Json {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },

    #[error("failed to build the runtime spec of container {id}")]
    Spec {
        id: String,
        #[source]
        source: oci_spec::OciSpecError,
    },

    #[error("container record {path:?} has unsupported version {version}")]
    RecordVersion { path: PathBuf, version: u32 },

    #[error("failed to signal process {pid} of container {id}")]
    Signal {
        id: String,
        pid: i32,
        #[source]
        source: nix::Error,
    },

    /// sd_booted(3) says no: runc's systemd driver needs systemd as init.
    #[error(
        "the cgroup manager is systemd but systemd is not running on this node \
         ({marker:?} is missing): set runtime.cgroup_manager = \"cgroupfs\""
    )]
    SystemdNotRunning { marker: PathBuf },

    #[error("internal error: {0}")]
    Internal(String),
}

impl Error {
    /// The shared vocabulary the server maps onto gRPC codes.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::NotFound(_) => ErrorKind::NotFound,
            Error::AmbiguousPrefix(_) => ErrorKind::InvalidArgument,
            Error::NameReserved { .. } => ErrorKind::AlreadyExists,
            Error::InvalidArgument(_) => ErrorKind::InvalidArgument,
            Error::FailedPrecondition { .. } => ErrorKind::FailedPrecondition,
            Error::User { .. } => ErrorKind::InvalidArgument,
            Error::Timeout { .. } => ErrorKind::DeadlineExceeded,
            Error::RecordVersion { .. } => ErrorKind::FailedPrecondition,
            Error::SystemdNotRunning { .. } => ErrorKind::FailedPrecondition,
            Error::Io { .. }
            | Error::Internal(_)
            | Error::Spawn { .. }
            | Error::CommandFailed { .. }
            | Error::Mount { .. }
            | Error::Unmount { .. }
            | Error::Json { .. }
            | Error::Spec { .. }
            | Error::Signal { .. } => ErrorKind::Internal,
        }
    }

    pub(crate) fn io(
        context: &'static str,
        path: impl Into<PathBuf>,
        source: std::io::Error,
    ) -> Self {
        Error::Io {
            context,
            path: path.into(),
            source,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Extracts the most useful line from runc output: runc with
/// `--log-format json` writes `{"level":"error","msg":"...","time":"..."}`
/// lines; the last error-level `msg` is the reason. Plain text is kept as is.
pub fn parse_runc_message(log: &str) -> Option<String> {
    let mut last_error = None;
    let mut last_plain = None;
    for line in log.lines().map(str::trim).filter(|l| !l.is_empty()) {
        match serde_json::from_str::<serde_json::Value>(line) {
            Ok(v) => {
                let level = v.get("level").and_then(|l| l.as_str()).unwrap_or("");
                if matches!(level, "error" | "fatal" | "panic")
                    && let Some(msg) = v.get("msg").and_then(|m| m.as_str())
                {
                    last_error = Some(msg.to_string());
                }
            }
            Err(_) => last_plain = Some(line.to_string()),
        }
    }
    last_error.or(last_plain)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runc_json_log_message_is_the_last_error() {
        let log = r#"{"level":"warning","msg":"ignored","time":"t"}
{"level":"error","msg":"first","time":"t"}
{"level":"error","msg":"runc run failed: unable to start container process: exec: \"nope\": executable file not found in $PATH","time":"t"}
"#;
        assert_eq!(
            parse_runc_message(log).unwrap(),
            "runc run failed: unable to start container process: exec: \"nope\": executable file not found in $PATH"
        );
    }

    #[test]
    fn plain_text_is_kept() {
        assert_eq!(parse_runc_message("boom\n").unwrap(), "boom");
        assert_eq!(parse_runc_message(""), None);
    }

    #[test]
    fn kinds() {
        assert_eq!(Error::NotFound("x".into()).kind(), ErrorKind::NotFound);
        assert_eq!(
            Error::NameReserved {
                name: "a".into(),
                id: "b".into()
            }
            .kind(),
            ErrorKind::AlreadyExists
        );
        assert_eq!(
            Error::Timeout {
                id: "a".into(),
                op: "exec",
                timeout: Duration::from_secs(1)
            }
            .kind(),
            ErrorKind::DeadlineExceeded
        );
    }
}
