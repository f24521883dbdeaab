//! Plain inputs of the container library. The image store and the sandbox
//! store fill these in; this crate depends on neither.

use std::path::PathBuf;

/// Where the container library keeps its state and which binaries it runs.
/// Every path is a parameter so that tests run side by side in temp dirs.
#[derive(Debug, Clone)]
pub struct RuntimeConfig {
    /// Persistent state: `<root>/containers/<id>/` (record, overlay
    /// upper/work dirs, termination log).
    pub root: PathBuf,
    /// Volatile state: `<runroot>/containers/<id>/` (bundle, pid files,
    /// conmon's ctl fifo), `<runroot>/exits/`, `<runroot>/runc/` (runc --root).
    pub runroot: PathBuf,
    /// The OCI runtime binary (runc).
    pub runtime_path: PathBuf,
    /// The conmon binary.
    pub conmon_path: PathBuf,
    pub cgroup_manager: CgroupManager,
    /// Capabilities given to containers that do not ask for others
    /// (`CAP_`-prefixed names).
    pub default_capabilities: Vec<String>,
    /// The seccomp profile of containers that name none (Unconfined, as
    /// the CRI says; RuntimeDefault if the operator opts in).
    pub seccomp_default: crate::seccomp::NodeDefault,
    /// Maximum tasks in each container's cgroup; 0 = no limit.
    pub pids_limit: i64,
    /// Budget for undoing a failed CreateContainer; what is not undone by
    /// then stays listed (state unknown) for RemoveContainer to finish.
    pub undo_timeout: std::time::Duration,
    /// CDI spec directories, lowest priority first (a device defined in a
    /// later directory replaces one of an earlier directory).
    pub cdi_spec_dirs: Vec<PathBuf>,
    /// OCI hook directories (oci-hooks(5)), lowest priority first (a file
    /// replaces the same-named file of an earlier directory).
    pub hooks_dirs: Vec<PathBuf>,
}

impl RuntimeConfig {
    /// A config with Docker's default capability set and the cgroupfs driver.
    pub fn new(
        root: impl Into<PathBuf>,
        runroot: impl Into<PathBuf>,
        runtime_path: impl Into<PathBuf>,
        conmon_path: impl Into<PathBuf>,
    ) -> Self {
        RuntimeConfig {
            root: root.into(),
            runroot: runroot.into(),
            runtime_path: runtime_path.into(),
            conmon_path: conmon_path.into(),
            cgroup_manager: CgroupManager::Cgroupfs,
            default_capabilities: crate::spec::DEFAULT_CAPABILITIES
                .iter()
                .map(|c| c.to_string())
                .collect(),
            seccomp_default: crate::seccomp::NodeDefault::Unconfined,
            pids_limit: 0,
            undo_timeout: std::time::Duration::from_secs(60),
            cdi_spec_dirs: Vec::new(),
            hooks_dirs: Vec::new(),
        }
    }

    /// runc's state directory (`runc --root`): private to this crius so two
    /// daemons (or tests) never see each other's containers.
    pub fn runc_root(&self) -> PathBuf {
        self.runroot.join("runc")
    }

    pub fn exits_dir(&self) -> PathBuf {
        self.runroot.join("exits")
    }

    /// Persistent per-container dir.
    pub fn container_dir(&self, id: &str) -> PathBuf {
        self.root.join("containers").join(id)
    }

    /// Volatile per-container dir; also the OCI bundle.
    pub fn bundle_dir(&self, id: &str) -> PathBuf {
        self.runroot.join("containers").join(id)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CgroupManager {
    Cgroupfs,
    Systemd,
}

/// What the image store knows about an image, as far as a container needs it.
#[derive(Debug, Clone, Default)]
pub struct ImageInfo {
    /// The image id (config digest).
    pub id: String,
    /// The reference the user asked for or a repo digest (CRI `image_ref`).
    pub reference: String,
    /// Unpacked layer directories, lowest first, whiteouts already in
    /// overlay format.
    pub layers: Vec<PathBuf>,
    pub config: ImageConfig,
}

/// The parts of an OCI image config that shape a container.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ImageConfig {
    pub env: Vec<String>,
    pub entrypoint: Vec<String>,
    pub cmd: Vec<String>,
    pub user: String,
    pub working_dir: String,
    pub stop_signal: String,
}

impl From<&oci_spec::image::Config> for ImageConfig {
    fn from(c: &oci_spec::image::Config) -> Self {
        ImageConfig {
            env: c.env().clone().unwrap_or_default(),
            entrypoint: c.entrypoint().clone().unwrap_or_default(),
            cmd: c.cmd().clone().unwrap_or_default(),
            user: c.user().clone().unwrap_or_default(),
            working_dir: c.working_dir().clone().unwrap_or_default(),
            stop_signal: c.stop_signal().clone().unwrap_or_default(),
        }
    }
}

/// What the sandbox store knows about a pod, as far as a container needs it.
#[derive(Debug, Clone, Default)]
pub struct SandboxInfo {
    pub id: String,
    pub name: String,
    pub namespace: String,
    pub uid: String,
    /// The pod's pinned network namespace; `None` = host network.
    pub netns_path: Option<PathBuf>,
    /// The pod's pinned IPC namespace; `None` = host IPC.
    pub ipcns_path: Option<PathBuf>,
    /// The pod's pinned UTS namespace; `None` = host UTS.
    pub utsns_path: Option<PathBuf>,
    /// The pod's PID namespace for containers in POD mode
    /// (e.g. `/proc/<infra pid>/ns/pid`); `None` if the pod has none.
    pub pidns_path: Option<PathBuf>,
    /// The pod uses the host's PID namespace (NODE mode at pod level).
    pub host_pid: bool,
    pub hostname: String,
    pub hostname_file: Option<PathBuf>,
    pub hosts_file: Option<PathBuf>,
    pub resolv_conf_file: Option<PathBuf>,
    /// The pod's /dev/shm; `None` = a private tmpfs per container.
    pub shm_path: Option<PathBuf>,
    pub cgroup_parent: String,
    pub log_directory: Option<PathBuf>,
    /// The pod's annotations (CDI devices may be requested there).
    pub annotations: std::collections::HashMap<String, String>,
}
