//! `Cri`: the state behind both CRI services.

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;

use crate::config::Config;
use crate::error::Error;

pub struct Cri {
    pub(crate) config: Config,
    pub(crate) images: image_service::ImageService,
    /// The OCI runtime resolved at start; `None` makes RuntimeReady false.
    pub(crate) runtime_binary: Option<PathBuf>,
    pub(crate) sandboxes: Arc<pod_sandbox::Sandboxes>,
    pub(crate) containers: Arc<container::ContainerManager>,
    pub(crate) events: crate::events::EventHub,
    /// The pod CIDR(s) last given by UpdateRuntimeConfig.
    pub(crate) pod_cidrs: std::sync::RwLock<Vec<String>>,
    /// Set once at start, after the containers have recovered.
    pub(crate) streaming: std::sync::OnceLock<streaming::StreamingServer>,
    /// The daemon's own metrics, updated whether or not they are served.
    pub(crate) metrics: crate::metrics::Metrics,
}

impl Cri {
    pub fn new(
        config: Config,
        images: image_service::ImageService,
        sandboxes: pod_sandbox::Sandboxes,
        containers: container::ContainerManager,
    ) -> Cri {
        let runtime_binary = which(&config.runtime.runtime_path);
        if runtime_binary.is_none() {
            tracing::warn!(runtime = ?config.runtime.runtime_path, "OCI runtime not found");
        }
        Cri {
            config,
            images,
            runtime_binary,
            sandboxes: Arc::new(sandboxes),
            containers: Arc::new(containers),
            events: crate::events::EventHub::default(),
            pod_cidrs: std::sync::RwLock::default(),
            streaming: std::sync::OnceLock::new(),
            metrics: crate::metrics::Metrics::default(),
        }
    }

    /// The streaming server, or Unavailable before it has started.
    pub(crate) fn streaming(&self) -> Result<&streaming::StreamingServer, Error> {
        self.streaming.get().ok_or(Error::StreamingNotStarted)
    }
}

/// Runs `work` on its own task so that it completes even when the client
/// hangs up: tonic drops a handler's future when the kubelet's deadline
/// passes, and a RunPodSandbox dropped half-way would skip its rollback
/// (pins, leases and the reserved name would stay behind).
pub(crate) async fn detached<T, F>(work: F) -> Result<T, Error>
where
    T: Send + 'static,
    F: Future<Output = Result<T, Error>> + Send + 'static,
{
    match tokio::spawn(work).await {
        Ok(result) => result,
        Err(err) if err.is_panic() => std::panic::resume_unwind(err.into_panic()),
        Err(_) => Err(Error::Aborted),
    }
}

/// Resolves a bare program name through `PATH`; a path is taken as is.
pub fn which(program: &std::path::Path) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let executable = |p: &std::path::Path| {
        std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    if program.components().count() > 1 || program.is_absolute() {
        return executable(program).then(|| program.to_owned());
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|candidate| executable(candidate))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn which_finds_programs_in_path_and_rejects_missing_ones() {
        assert!(which(std::path::Path::new("sh")).is_some());
        assert!(which(std::path::Path::new("/bin/sh")).is_some());
        assert!(which(std::path::Path::new("no-such-program-crius")).is_none());
        assert!(which(std::path::Path::new("/nonexistent/runc")).is_none());
    }
}
