//! The container lifecycle: create (with rollback), start, stop, remove,
//! status, list, exec, log reopen and recovery after a crius restart.
//!
//! Locking: the store's map lock is held only to look containers up; each
//! container has its own operation lock, so a long stop of one container
//! never delays List/Status or operations on others.

use std::collections::HashMap;
use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crius_proto::{ContainerConfig, ContainerFilter, NamespaceMode};

use crate::error::{Error, Result};
use crate::events::{EventKind, Events};
use crate::monitor::{self, ConmonCreate};
use crate::rootfs::{self, OverlayPaths};
use crate::runtime::{ExecOutput, Runc};
use crate::spec::{self, PidNamespace, SpecInput};
use crate::stats::{Cgroups, CpuSamples};
use crate::store::{Container, ContainerMeta, ContainerStore, MountRecord, State, Status};
use crate::types::{CgroupManager, ImageInfo, RuntimeConfig, SandboxInfo};
use crate::user::{self, UserRequest};

/// The termination message is cut to this many bytes, as kubelet does.
pub const MAX_TERMINATION_MESSAGE: u64 = 4096;
/// How long conmon may take to run `runc create`.
const CREATE_TIMEOUT: Duration = Duration::from_secs(240);
/// Bound on reading the image's /etc/passwd and /etc/group.
const USER_LOOKUP_TIMEOUT: Duration = Duration::from_secs(30);
/// After SIGKILL, how long to wait for the exit to be recorded.
const KILL_WAIT: Duration = Duration::from_secs(30);
/// Exit polling (only if the exit dir cannot be watched) starts fast (most
/// processes die within milliseconds of SIGKILL) and backs off to this.
const POLL: Duration = Duration::from_millis(20);
const FIRST_POLL: Duration = Duration::from_millis(1);
/// While waiting for an exit, how often to check that conmon, which is to
/// write the exit file, is still there.
const MONITOR_CHECK: Duration = Duration::from_millis(400);
/// How often a stop watches for the handler of a signal its container's
/// PID 1 dropped.
const HANDLER_POLL: Duration = Duration::from_millis(20);
/// How long a writable layer's measured size is reused by stats calls.
const LAYER_USAGE_TTL: Duration = Duration::from_secs(1);

pub const REASON_COMPLETED: &str = "Completed";
pub const REASON_ERROR: &str = "Error";
pub const REASON_OOM: &str = "OOMKilled";

const CONFIG_JSON: &str = "config.json";
const PID_FILE: &str = "pidfile";
const CONMON_PID_FILE: &str = "conmon.pid";
const TERMINATION_LOG: &str = "termination-log";
const HIDDEN_LOG: &str = "container.log";

pub fn now_nanos() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

fn nanos_of(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

/// A new 64-hex-digit id.
fn new_id() -> Result<String> {
    let mut buf = [0u8; 32];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut buf))
        .map_err(|e| Error::io("failed to read", "/dev/urandom", e))?;
    Ok(buf.iter().map(|b| format!("{b:02x}")).collect())
}

/// The side effects of a create, undone in reverse order if it fails.
#[derive(Debug)]
enum Undo {
    ReleaseName(String),
    RemoveDir(PathBuf),
    /// A host path created for a CRI mount (removed only if still empty).
    RemoveEmptyDir(PathBuf),
    Unmount(PathBuf),
    RuncDelete(String),
}

/// What `exec_sync` returns.
pub type ExecSyncOutput = ExecOutput;

/// A prepared streaming exec, see [`ContainerManager::prepare_exec`].
#[derive(Debug)]
pub struct StreamExec {
    /// runc and its full argument list.
    pub program: PathBuf,
    pub args: Vec<std::ffi::OsString>,
    /// Where runc connects to hand over the pty master (tty only).
    pub console_socket: Option<PathBuf>,
    pub guard: crate::exec::ExecGuard,
}

/// What [`ContainerManager::recover`] found.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct RecoveryReport {
    /// Containers reloaded from their records.
    pub restored: Vec<String>,
    /// Half-created containers (or stray state without a record) removed.
    pub cleaned: Vec<String>,
    /// Records that could not be read, with the reason (left on disk).
    pub failed: Vec<(PathBuf, String)>,
}

/// Cheap to clone: clones share the store.
#[derive(Clone)]
pub struct ContainerManager {
    cfg: Arc<RuntimeConfig>,
    store: Arc<ContainerStore>,
    runc: Arc<Runc>,
    cgroups: Arc<Cgroups>,
    cpu_samples: Arc<CpuSamples>,
    layer_usage: Arc<crate::stats::LayerUsageCache>,
    /// crius' own capability bounding set: privileged means all of these.
    capability_bound: u64,
    /// Whether runc can mount recursively read-only (asked once).
    recursive_read_only: bool,
    events: Events,
    /// The one watch on conmon's exit dir, set up on first use.
    exit_notifier: Arc<std::sync::OnceLock<Option<monitor::ExitNotifier>>>,
}

impl ContainerManager {
    /// Creates the state dirs. Call [`recover`](Self::recover) before
    /// serving requests.
    pub fn new(cfg: RuntimeConfig) -> Result<Self> {
        for d in [
            cfg.root.join("containers"),
            cfg.runroot.join("containers"),
            cfg.exits_dir(),
            cfg.runc_root(),
            cfg.runroot.join("runc-logs"),
            cfg.runroot.join("socks"),
        ] {
            std::fs::create_dir_all(&d)
                .map_err(|e| Error::io("failed to create directory", &d, e))?;
        }
        let mut runc = Runc::new(
            cfg.runtime_path.clone(),
            cfg.runc_root(),
            cfg.runroot.join("runc-logs"),
        );
        runc.systemd_cgroup = cfg.cgroup_manager == CgroupManager::Systemd;
        let recursive_read_only = runc.supports_recursive_read_only();
        Ok(ContainerManager {
            cfg: Arc::new(cfg),
            store: Arc::new(ContainerStore::default()),
            runc: Arc::new(runc),
            cgroups: Arc::new(Cgroups::host()),
            cpu_samples: Arc::new(CpuSamples::default()),
            layer_usage: Arc::new(crate::stats::LayerUsageCache::new(LAYER_USAGE_TTL)),
            capability_bound: crate::devices::own_capability_bound(),
            recursive_read_only,
            events: Events::default(),
            exit_notifier: Arc::new(std::sync::OnceLock::new()),
        })
    }

    pub fn config(&self) -> &RuntimeConfig {
        &self.cfg
    }

    pub(crate) fn events(&self) -> &Events {
        &self.events
    }

    /// The exit dir watch, started on first use (it needs the tokio
    /// runtime); `None` if it cannot be, and then waits poll.
    pub(crate) fn exit_notifier(&self) -> Option<&monitor::ExitNotifier> {
        self.exit_notifier
            .get_or_init(
                || match monitor::ExitNotifier::start(&self.cfg.exits_dir()) {
                    Ok(n) => Some(n),
                    Err(e) => {
                        tracing::warn!(%e, "cannot watch the exit dir, polling for exits");
                        None
                    }
                },
            )
            .as_ref()
    }

    /// Whether CRI mounts may ask for `recursive_read_only`.
    pub fn supports_recursive_read_only(&self) -> bool {
        self.recursive_read_only
    }

    pub fn store(&self) -> &ContainerStore {
        &self.store
    }

    /// Looks a container up by id or unique id prefix.
    pub fn get(&self, id: &str) -> Result<Arc<Container>> {
        self.store.get(id)
    }

    /// Ids of the containers of one sandbox (for StopPodSandbox /
    /// RemovePodSandbox).
    pub fn containers_of_sandbox(&self, sandbox_id: &str) -> Vec<String> {
        self.store
            .list()
            .into_iter()
            .filter(|c| c.meta.sandbox_id == sandbox_id)
            .map(|c| c.meta.id.clone())
            .collect()
    }

    fn exit_file(&self, id: &str) -> PathBuf {
        self.cfg.exits_dir().join(id)
    }

    fn overlay(&self, id: &str) -> OverlayPaths {
        OverlayPaths::new(&self.cfg.container_dir(id))
    }

    // ---------------------------------------------------------------- create

    /// CreateContainer: reserves the name, mounts the rootfs, writes the
    /// spec and has conmon run `runc create`. Any failure undoes every step
    /// and returns the cause (with runc's message).
    ///
    /// The work runs in its own task: if the caller goes away (kubelet's
    /// deadline, a dropped gRPC call) it still finishes, then removes the
    /// container nobody will hear about, so a retry finds the name free and
    /// nothing is left behind.
    pub async fn create(
        &self,
        sandbox: &SandboxInfo,
        image: &ImageInfo,
        config: &ContainerConfig,
    ) -> Result<String> {
        struct CancelOnDrop(Arc<AtomicBool>, bool);
        impl Drop for CancelOnDrop {
            fn drop(&mut self) {
                if !self.1 {
                    self.0.store(true, Ordering::SeqCst);
                }
            }
        }
        let cancelled = Arc::new(AtomicBool::new(false));
        let mut guard = CancelOnDrop(cancelled.clone(), false);
        let this = self.clone();
        let sandbox_id = sandbox.id.clone();
        let (sandbox, image, config) = (sandbox.clone(), image.clone(), config.clone());
        let task = tokio::spawn(async move {
            let res = this.create_now(&sandbox, &image, &config).await;
            match res {
                Ok(id) if cancelled.load(Ordering::SeqCst) => {
                    tracing::warn!(%id, "create was abandoned by its caller, removing");
                    if let Err(e) = this.remove(&id).await {
                        tracing::error!(%id, %e, "failed to remove abandoned container");
                    }
                    Err(Error::Internal(format!(
                        "create of container {id} was abandoned by its caller"
                    )))
                }
                other => other,
            }
        });
        let res = task
            .await
            .unwrap_or_else(|e| Err(Error::InvalidArgument(format!("create task failed: {e}"))));
        guard.1 = true;
        if let Ok(id) = &res {
            self.events.emit(id, &sandbox_id, EventKind::Created);
        }
        res
    }

    async fn create_now(
        &self,
        sandbox: &SandboxInfo,
        image: &ImageInfo,
        config: &ContainerConfig,
    ) -> Result<String> {
        let md = config
            .metadata
            .as_ref()
            .ok_or_else(|| Error::InvalidArgument("container metadata is required".into()))?;
        if md.name.is_empty() || !user::is_plain_component(&md.name) {
            return Err(Error::InvalidArgument(format!(
                "invalid container name {:?}",
                md.name
            )));
        }
        if sandbox.id.is_empty() {
            return Err(Error::InvalidArgument("sandbox id is required".into()));
        }
        spec::validate_mounts(config, self.recursive_read_only)?;
        spec::process_args(config, image)?;
        crate::seccomp::check_lsm(config, crate::seccomp::apparmor_enabled())?;
        spec::check_cgroup_placement(
            self.cfg.cgroup_manager,
            &sandbox.cgroup_parent,
            Path::new(spec::SYSTEMD_BOOTED_MARKER),
        )?;
        let id = new_id()?;
        let name = format!(
            "{}_{}_{}_{}_{}",
            md.name, sandbox.name, sandbox.namespace, sandbox.uid, md.attempt
        );
        self.store.names.reserve(&name, &id)?;
        let mut undo = vec![Undo::ReleaseName(name.clone())];
        match self
            .create_steps(&id, &name, sandbox, image, config, &mut undo)
            .await
        {
            Ok(()) => Ok(id),
            Err(e) => {
                tracing::warn!(%id, %e, "create failed, rolling back");
                if !self.run_undo(&id, undo).await {
                    self.keep_for_removal(&id, &name);
                }
                Err(e)
            }
        }
    }

    async fn create_steps(
        &self,
        id: &str,
        name: &str,
        sandbox: &SandboxInfo,
        image: &ImageInfo,
        config: &ContainerConfig,
        undo: &mut Vec<Undo>,
    ) -> Result<()> {
        // First, before any side effect: an unknown CDI device fails the
        // request with only the name reservation to undo.
        let cdi = crate::cdi::resolve(
            &self.cfg.cdi_spec_dirs,
            &crate::cdi::requested(config, &sandbox.annotations),
        )?;
        let md = config.metadata.clone().unwrap_or_default();
        let log_path = match (&sandbox.log_directory, config.log_path.as_str()) {
            (Some(dir), p) if !p.is_empty() => {
                let rel = Path::new(p);
                if rel.is_absolute()
                    || rel
                        .components()
                        .any(|c| matches!(c, std::path::Component::ParentDir))
                {
                    return Err(Error::InvalidArgument(format!(
                        "log path {p:?} must be relative to the pod log directory without \"..\""
                    )));
                }
                Some(dir.join(rel))
            }
            _ => None,
        };
        let cdir = self.cfg.container_dir(id);
        let bundle = self.cfg.bundle_dir(id);
        for d in [&cdir, &bundle] {
            std::fs::create_dir_all(d)
                .map_err(|e| Error::io("failed to create directory", d, e))?;
            undo.push(Undo::RemoveDir(d.clone()));
        }

        // The termination message: kubelet mounts its own file at the path
        // it names in the annotation; otherwise crius provides one.
        let term_dest = config
            .annotations
            .get(spec::annotations::TERMINATION_MESSAGE_PATH)
            .filter(|p| !p.is_empty())
            .cloned();
        let mut termination_log = None;
        let mut own_termination_log = None;
        if let Some(dest) = &term_dest {
            if let Some(m) = config
                .mounts
                .iter()
                .find(|m| m.container_path.trim_end_matches('/') == dest.trim_end_matches('/'))
            {
                termination_log = Some(PathBuf::from(&m.host_path));
            } else {
                let host = cdir.join(TERMINATION_LOG);
                std::fs::OpenOptions::new()
                    .write(true)
                    .create(true)
                    .truncate(true)
                    .mode(0o666)
                    .open(&host)
                    .map_err(|e| Error::io("failed to create termination log", &host, e))?;
                termination_log = Some(host.clone());
                own_termination_log = Some((dest.clone(), host));
            }
        }

        let pid_namespace = self.resolve_pid_namespace(config, sandbox)?;
        let meta = ContainerMeta {
            id: id.into(),
            name: name.into(),
            sandbox_id: sandbox.id.clone(),
            metadata_name: md.name.clone(),
            attempt: md.attempt,
            image: config
                .image
                .as_ref()
                .map(|i| i.image.clone())
                .unwrap_or_else(|| image.reference.clone()),
            image_annotations: config
                .image
                .as_ref()
                .map(|i| i.annotations.clone().into_iter().collect())
                .unwrap_or_default(),
            image_id: image.id.clone(),
            image_ref: image.reference.clone(),
            labels: config.labels.clone().into_iter().collect(),
            annotations: config.annotations.clone().into_iter().collect(),
            mounts: config.mounts.iter().map(MountRecord::from).collect(),
            log_path: log_path.clone(),
            tty: config.tty,
            stdin: config.stdin,
            stdin_once: config.stdin_once,
            stop_signal: image.config.stop_signal.clone(),
            termination_log,
            cgroups_path: spec::cgroups_path(self.cfg.cgroup_manager, &sandbox.cgroup_parent, id),
            own_pid_namespace: pid_namespace == PidNamespace::Private,
            created_at: now_nanos(),
        };
        // The record goes to disk before any mount or process exists, marked
        // incomplete: a crius killed mid-create is cleaned up by recover().
        let ctr = Arc::new(Container::new(meta, cdir.clone()));
        ctr.update_unsynced(|s| {
            s.state = Some(State::Created);
            s.create_complete = false;
            Ok(())
        })?;

        // Missing host paths of bind mounts are created as directories, as
        // kubelet expects.
        for m in &config.mounts {
            let hp = Path::new(&m.host_path);
            if !m.host_path.is_empty() && hp.is_absolute() && !hp.exists() {
                let mut first_missing = hp.to_path_buf();
                while let Some(parent) = first_missing.parent() {
                    if parent.exists() {
                        break;
                    }
                    first_missing = parent.to_path_buf();
                }
                std::fs::create_dir_all(hp)
                    .map_err(|e| Error::io("failed to create mount source", hp, e))?;
                // Remove what we created, deepest first.
                let mut p = hp.to_path_buf();
                loop {
                    undo.push(Undo::RemoveEmptyDir(p.clone()));
                    if p == first_missing {
                        break;
                    }
                    match p.parent() {
                        Some(parent) => p = parent.to_path_buf(),
                        None => break,
                    }
                }
            }
        }

        let overlay = self.overlay(id);
        let layers = image.layers.clone();
        let (oid, ov) = (id.to_string(), overlay.clone());
        tokio::task::spawn_blocking(move || rootfs::mount_overlay(&oid, &layers, &ov))
            .await
            .map_err(|e| Error::Mount {
                id: id.into(),
                target: overlay.merged.clone(),
                reason: e.to_string(),
            })??;
        undo.push(Undo::Unmount(overlay.merged.clone()));

        let sec = config
            .linux
            .as_ref()
            .and_then(|l| l.security_context.as_ref());
        let req = UserRequest {
            run_as_user: sec.and_then(|s| s.run_as_user.as_ref()).map(|v| v.value),
            run_as_username: sec.map(|s| s.run_as_username.clone()).unwrap_or_default(),
            run_as_group: sec.and_then(|s| s.run_as_group.as_ref()).map(|v| v.value),
            image_user: image.config.user.clone(),
            supplemental_groups: sec
                .map(|s| s.supplemental_groups.clone())
                .unwrap_or_default(),
            strict_groups: sec.is_some_and(|s| {
                s.supplemental_groups_policy == crius_proto::SupplementalGroupsPolicy::Strict as i32
            }),
        };
        let merged = overlay.merged.clone();
        let lookup = tokio::task::spawn_blocking(move || user::resolve_user(&merged, &req));
        // The files are checked to be regular and read with a bound, so
        // this should never fire; if a filesystem stalls anyway, the
        // request fails and rolls back instead of holding its name.
        let user = match tokio::time::timeout(USER_LOOKUP_TIMEOUT, lookup).await {
            Ok(joined) => joined.map_err(|e| Error::User {
                user: image.config.user.clone(),
                reason: e.to_string(),
            })??,
            Err(_) => {
                return Err(Error::User {
                    user: image.config.user.clone(),
                    reason: format!(
                        "reading /etc/passwd and /etc/group took longer than {USER_LOOKUP_TIMEOUT:?}"
                    ),
                });
            }
        };

        let user_record = crate::store::UserRecord {
            uid: user.uid,
            gid: user.gid,
            supplemental_groups: user.additional_gids.clone(),
        };
        let privileged = sec.is_some_and(|s| s.privileged);
        let (mut devices, mut device_rules) = crate::devices::cri_devices(&config.devices)?;
        if privileged {
            let cri_paths: std::collections::HashSet<PathBuf> =
                devices.iter().map(|d| d.path().clone()).collect();
            devices.extend(
                tokio::task::spawn_blocking(crate::devices::host_devices)
                    .await
                    .unwrap_or_default()
                    .into_iter()
                    .filter(|d| !cri_paths.contains(d.path())),
            );
            device_rules = vec![crate::devices::allow_all()];
        }
        let bounding = spec::capabilities(
            config,
            &self.cfg.default_capabilities,
            self.capability_bound,
        )?
        .bounding()
        .clone()
        .unwrap_or_default();
        let seccomp = crate::seccomp::resolve(config, self.cfg.seccomp_default, &bounding)?;
        let hook_dirs = self.cfg.hooks_dirs.clone();
        let hooks = tokio::task::spawn_blocking(move || crate::hooks::load(&hook_dirs))
            .await
            .unwrap_or_default();
        let spec = spec::build_spec(&SpecInput {
            id,
            config,
            image,
            sandbox,
            rootfs: &overlay.merged,
            user: &user,
            pid_namespace,
            termination_log: own_termination_log
                .as_ref()
                .map(|(d, h)| (d.as_str(), h.as_path())),
            default_capabilities: &self.cfg.default_capabilities,
            capability_bound: self.capability_bound,
            cgroup_manager: self.cfg.cgroup_manager,
            devices: &devices,
            device_rules: &device_rules,
            seccomp: seccomp.as_ref(),
            pids_limit: self.cfg.pids_limit,
            recursive_read_only: self.recursive_read_only,
            cdi: &cdi,
            hooks: &hooks,
        })?;
        let spec_path = bundle.join(CONFIG_JSON);
        let data = serde_json::to_vec_pretty(&spec).map_err(|e| Error::Json {
            path: spec_path.clone(),
            source: e,
        })?;
        crate::store::write_replace(&spec_path, &data)?;

        let conmon_log = log_path.clone().unwrap_or_else(|| bundle.join(HIDDEN_LOG));
        if let Some(parent) = conmon_log.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| Error::io("failed to create log directory", parent, e))?;
        }
        let runtime_log = bundle.join("runc-create.log");
        let runtime_args = self.runc.global_args(&runtime_log);
        undo.push(Undo::RuncDelete(id.into()));
        let pid = monitor::create(&ConmonCreate {
            conmon_path: self.cfg.conmon_path.clone(),
            runtime_path: self.cfg.runtime_path.clone(),
            runtime_args,
            runtime_log,
            id: id.into(),
            name: name.into(),
            bundle: bundle.clone(),
            pid_file: bundle.join(PID_FILE),
            conmon_pid_file: bundle.join(CONMON_PID_FILE),
            log_path: conmon_log,
            exit_dir: self.cfg.exits_dir(),
            persist_dir: bundle.clone(),
            socket_dir: self.cfg.runroot.join("socks"),
            terminal: config.tty,
            stdin: config.stdin,
            stdin_once: config.stdin_once,
            systemd_cgroup: self.cfg.cgroup_manager == CgroupManager::Systemd,
            timeout: CREATE_TIMEOUT,
        })
        .await?;

        let resources = config
            .linux
            .as_ref()
            .and_then(|l| l.resources.as_ref())
            .map(crate::store::ResourcesRecord::from);
        // runc init now, the container's process after start: exec keeps
        // the pid and its start time.
        let pid_start_time = crate::signal::start_time(pid).unwrap_or(0);
        ctr.update(|s| {
            s.pid = pid;
            s.pid_start_time = pid_start_time;
            s.user = Some(user_record.clone());
            s.resources = resources.clone();
            s.create_complete = true;
            Ok(())
        })?;
        self.store.insert(ctr);
        tracing::info!(%id, %name, pid, "container created");
        Ok(())
    }

    fn resolve_pid_namespace(
        &self,
        config: &ContainerConfig,
        sandbox: &SandboxInfo,
    ) -> Result<PidNamespace> {
        let ns = config
            .linux
            .as_ref()
            .and_then(|l| l.security_context.as_ref())
            .and_then(|s| s.namespace_options.as_ref());
        if let Some(ns) = ns
            && ns.pid == NamespaceMode::Target as i32
        {
            let target = self.store.get(&ns.target_id)?;
            let st = target.status();
            if st.state() != State::Running && st.state() != State::Created || st.pid <= 0 {
                return Err(Error::FailedPrecondition {
                    id: target.meta.id.clone(),
                    state: st.state().as_str(),
                    op: "share its pid namespace",
                });
            }
            return Ok(PidNamespace::Join(PathBuf::from(format!(
                "/proc/{}/ns/pid",
                st.pid
            ))));
        }
        spec::pid_namespace(config, sandbox)
    }

    /// Runs the undo steps, last first, under the undo timeout; false if
    /// the time ran out before they were all done.
    async fn run_undo(&self, id: &str, undo: Vec<Undo>) -> bool {
        let work = async {
            for step in undo.into_iter().rev() {
                let res: Result<()> = match &step {
                    Undo::ReleaseName(n) => {
                        self.store.names.release(n);
                        Ok(())
                    }
                    Undo::RemoveDir(d) => match std::fs::remove_dir_all(d) {
                        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                            Err(Error::io("failed to remove", d, e))
                        }
                        _ => Ok(()),
                    },
                    Undo::RemoveEmptyDir(d) => {
                        let _ = std::fs::remove_dir(d);
                        Ok(())
                    }
                    Undo::Unmount(t) => rootfs::unmount(t),
                    Undo::RuncDelete(cid) => {
                        let r = self.runc.delete(cid).await;
                        self.kill_conmon(cid);
                        let _ = std::fs::remove_file(self.exit_file(cid));
                        let _ = std::fs::remove_file(self.cfg.runroot.join("socks").join(cid));
                        r
                    }
                };
                if let Err(e) = res {
                    tracing::error!(%id, ?step, %e, "undo step failed");
                }
            }
        };
        let timeout = self.cfg.undo_timeout;
        if tokio::time::timeout(timeout, work).await.is_err() {
            tracing::error!(%id, ?timeout, "undo timed out");
            return false;
        }
        true
    }

    /// What a timed-out undo left is kept as a container in state unknown,
    /// listed and holding its name, so that RemoveContainer can finish the
    /// cleanup and free the name; without a record there is nothing to
    /// remove, and the name is released at once. Either way the name is
    /// never left reserved by nothing.
    fn keep_for_removal(&self, id: &str, name: &str) {
        match Container::load(&self.cfg.container_dir(id)) {
            Ok(ctr) => {
                if let Err(e) = ctr.update(|s| {
                    s.state = Some(State::Unknown);
                    Ok(())
                }) {
                    tracing::warn!(%id, %e, "failed to record the state of a kept container");
                }
                tracing::warn!(%id, %name, "container kept in state unknown: remove it to finish the cleanup");
                self.store.insert(Arc::new(ctr));
            }
            Err(e) => {
                tracing::warn!(%id, %e, "no record to keep after undo timed out");
                self.store.names.release(name);
            }
        }
    }

    /// Kills a conmon still monitoring `id` (a half-created container).
    fn kill_conmon(&self, id: &str) {
        let pidfile = self.cfg.bundle_dir(id).join(CONMON_PID_FILE);
        if let Some(pid) = monitor::running_conmon(&pidfile, id) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }

    // ----------------------------------------------------------------- start

    /// StartContainer: `runc start`; the container is RUNNING with
    /// started_at set.
    pub async fn start(&self, id: &str) -> Result<()> {
        let ctr = self.store.get(id)?;
        let _op = ctr.op_lock.lock().await;
        let st = self.refresh(&ctr)?;
        if st.state() != State::Created {
            return Err(Error::FailedPrecondition {
                id: ctr.meta.id.clone(),
                state: st.state().as_str(),
                op: "start",
            });
        }
        // Taken before the call: a quick process may exit (and conmon stamp
        // its exit file) before runc start returns.
        let started = now_nanos();
        if let Err(e) = self.runc.start(&ctr.meta.id).await {
            // The process may have died trying: record what conmon saw.
            let _ = self.wait_exit(&ctr, Duration::from_millis(500)).await;
            return Err(e);
        }
        ctr.update(|s| {
            if s.state() == State::Created {
                s.state = Some(State::Running);
            }
            s.started_at = started;
            Ok(())
        })?;
        self.events
            .emit(&ctr.meta.id, &ctr.meta.sandbox_id, EventKind::Started);
        tracing::info!(id = %ctr.meta.id, "container started");
        Ok(())
    }

    // ------------------------------------------------------------------ stop

    /// StopContainer: the image STOPSIGNAL (else SIGTERM), SIGKILL after
    /// `timeout` seconds. Stopping a missing or exited container succeeds
    /// (CRI: "If the container has already been stopped, the call must not
    /// return an error").
    pub async fn stop(&self, id: &str, timeout: i64) -> Result<()> {
        let ctr = match self.store.get(id) {
            Ok(c) => c,
            Err(Error::NotFound(_)) => return Ok(()),
            Err(e) => return Err(e),
        };
        let _op = ctr.op_lock.lock().await;
        self.stop_locked(&ctr, timeout).await
    }

    async fn stop_locked(&self, ctr: &Container, timeout: i64) -> Result<()> {
        let st = self.refresh(ctr)?;
        match st.state() {
            State::Exited => return Ok(()),
            State::Created | State::Running | State::Unknown => {}
        }
        let id = &ctr.meta.id;
        let grace = crate::timeout::from_request_secs(timeout);
        if let (Some(grace), State::Running) = (grace, st.state()) {
            let sig = stop_signal(&ctr.meta.stop_signal);
            let delivery = self.kill(ctr, &st, &sig).await?;
            let exited = self.wait_exit(ctr, grace);
            tokio::pin!(exited);
            let exited = match (delivery, crate::signal::parse(&sig)) {
                // A PID 1 that had no handler yet (a stop right after
                // start) dropped the signal: it gets it again once it has
                // one, and never twice.
                (crate::signal::Delivery::Uncaught, Some(sig)) => tokio::select! {
                    exited = &mut exited => exited?,
                    () = redeliver_once_caught(id, st.pid, st.pid_start_time, sig) => exited.await?,
                },
                _ => exited.await?,
            };
            if exited {
                return Ok(());
            }
            tracing::info!(%id, timeout, "stop signal ignored, killing");
        }
        self.kill(ctr, &st, "KILL").await?;
        if self.wait_exit(ctr, KILL_WAIT).await? {
            Ok(())
        } else {
            Err(Error::Timeout {
                id: id.clone(),
                op: "stop",
                timeout: KILL_WAIT,
            })
        }
    }

    /// Sends `signal` to the container's init process, as `runc kill`
    /// without `--all` does, but through a pidfd when crius recorded the
    /// process at create (see [`crate::signal`]); runc does it otherwise
    /// (records from before the start time was kept, Unknown state,
    /// signals nix cannot name, a process that is not the recorded one).
    /// A process already gone is not an error. Says whether the process
    /// caught the signal ([`Delivery::Uncaught`] only from the direct
    /// path; runc's is taken as sent).
    ///
    /// [`Delivery::Uncaught`]: crate::signal::Delivery::Uncaught
    async fn kill(
        &self,
        ctr: &Container,
        st: &Status,
        signal: &str,
    ) -> Result<crate::signal::Delivery> {
        let id = &ctr.meta.id;
        let direct = matches!(st.state(), State::Created | State::Running)
            && st.pid > 0
            && st.pid_start_time > 0;
        if let (true, Some(sig)) = (direct, crate::signal::parse(signal)) {
            match crate::signal::send(st.pid, st.pid_start_time, sig) {
                Ok(d @ (crate::signal::Delivery::Sent | crate::signal::Delivery::Uncaught)) => {
                    return Ok(d);
                }
                // Exited but not yet recorded, or (should never be) the
                // pid names another process now: runc, which has its own
                // record of the container, decides.
                Ok(crate::signal::Delivery::Gone) => {}
                Err(e) => tracing::warn!(%id, pid = st.pid, %e, "pidfd signal failed, using runc"),
            }
        }
        self.runc.kill(id, signal, false).await?;
        Ok(crate::signal::Delivery::Sent)
    }

    /// Waits until the container has exited (true) or `limit` passed:
    /// woken by conmon writing its exit file (inotify on the exit dir),
    /// with polling only if the watch cannot be set up.
    async fn wait_exit(&self, ctr: &Container, limit: Duration) -> Result<bool> {
        let start = tokio::time::Instant::now();
        let deadline = crate::timeout::deadline_after(start, limit);
        let notifier = self.exit_notifier();
        let mut last_check = start;
        let mut pause = FIRST_POLL;
        loop {
            let next_write = notifier.map(|n| n.subscribe());
            let st = self.refresh(ctr)?;
            if st.state() == State::Exited {
                return Ok(true);
            }
            let now = tokio::time::Instant::now();
            if now.duration_since(last_check) >= MONITOR_CHECK {
                last_check = now;
                if self.monitor_gone(ctr).await? {
                    return Ok(true);
                }
            }
            if now >= deadline {
                return Ok(false);
            }
            let until = deadline.min(last_check + MONITOR_CHECK);
            let left = until.saturating_duration_since(now);
            match next_write {
                Some(w) => {
                    let _ = tokio::time::timeout(left, w).await;
                }
                None => {
                    tokio::time::sleep(pause.min(left)).await;
                    pause = (pause * 2).min(POLL);
                }
            }
        }
    }

    /// If conmon is gone, no exit file will ever come: when runc also says
    /// the container stopped, record an exit with an unknown code so that
    /// stop and remove do not wait forever. Returns true if it did.
    async fn monitor_gone(&self, ctr: &Container) -> Result<bool> {
        let id = &ctr.meta.id;
        let pidfile = self.cfg.bundle_dir(id).join(CONMON_PID_FILE);
        if monitor::running_conmon(&pidfile, id).is_some() {
            return Ok(false);
        }
        let stopped = match self.runc.state(id).await? {
            None => true,
            Some(rs) => rs.status == "stopped",
        };
        if !stopped {
            return Ok(false);
        }
        // conmon may have written the file just before exiting.
        if self.refresh(ctr)?.state() == State::Exited {
            return Ok(true);
        }
        tracing::warn!(%id, "container stopped while conmon was not running");
        self.record_exit(
            ctr,
            255,
            now_nanos(),
            Some("container exited while its monitor was not running; exit code unknown".into()),
        )?;
        Ok(true)
    }

    /// conmon's attach socket for the container (for the streaming server).
    pub fn attach_socket_path(&self, id: &str) -> Result<PathBuf> {
        let ctr = self.store.get(id)?;
        Ok(self.cfg.bundle_dir(&ctr.meta.id).join("attach"))
    }

    /// The OCI bundle of the container (config.json, conmon's ctl fifo).
    pub fn bundle_path(&self, id: &str) -> Result<PathBuf> {
        let ctr = self.store.get(id)?;
        Ok(self.cfg.bundle_dir(&ctr.meta.id))
    }

    /// Folds conmon's exit file (and OOM marker, termination message) into
    /// the record of a container that has exited.
    pub(crate) fn refresh(&self, ctr: &Container) -> Result<Status> {
        let st = ctr.status();
        if !matches!(st.state(), State::Created | State::Running | State::Unknown) {
            return Ok(st);
        }
        let exit = self.exit_file(&ctr.meta.id);
        let Ok(md) = std::fs::metadata(&exit) else {
            return Ok(st);
        };
        let code = std::fs::read_to_string(&exit)
            .ok()
            .and_then(|s| s.trim().parse::<i32>().ok())
            .unwrap_or(-1);
        let finished = md.modified().map(nanos_of).unwrap_or_else(|_| now_nanos());
        self.record_exit(ctr, code, finished, None)
    }

    fn record_exit(
        &self,
        ctr: &Container,
        code: i32,
        finished: i64,
        message: Option<String>,
    ) -> Result<Status> {
        let bundle = self.cfg.bundle_dir(&ctr.meta.id);
        // conmon marks OOM kills with an `oom` file; the cgroup's own
        // counter covers a kill conmon did not see (e.g. while it was down).
        let oom = bundle.join("oom").exists()
            || (code == 137 && cgroup_oom_killed(&ctr.meta.cgroups_path));
        let term = ctr
            .meta
            .termination_log
            .as_deref()
            .and_then(read_termination_message);
        let mut exited_now = false;
        let status = ctr.update(|s| {
            if s.state() == State::Exited {
                return Ok(());
            }
            exited_now = true;
            s.state = Some(State::Exited);
            s.exit_code = code;
            // The exit file's mtime can trail the start stamp by a tick.
            s.finished_at = finished.max(s.started_at);
            s.reason = if oom {
                REASON_OOM.into()
            } else if code == 0 {
                REASON_COMPLETED.into()
            } else {
                REASON_ERROR.into()
            };
            s.message = term.clone().or(message.clone()).unwrap_or_default();
            Ok(())
        })?;
        if exited_now {
            self.events
                .emit(&ctr.meta.id, &ctr.meta.sandbox_id, EventKind::Stopped);
        }
        Ok(status)
    }

    // ---------------------------------------------------------------- remove

    /// RemoveContainer: kills it if running, `runc delete`, unmounts the
    /// rootfs, removes its dirs and releases its name. Removing a missing
    /// container succeeds.
    pub async fn remove(&self, id: &str) -> Result<()> {
        let ctr = match self.store.get(id) {
            Ok(c) => c,
            Err(Error::NotFound(_)) => return Ok(()),
            Err(e) => return Err(e),
        };
        let _op = ctr.op_lock.lock().await;
        let st = self.refresh(&ctr)?;
        if matches!(st.state(), State::Running | State::Created | State::Unknown) {
            self.stop_locked(&ctr, 0).await?;
        }
        // Dropping the record first makes the rest crash-safe and cheap: a
        // crius killed from here on finds a container dir without a record,
        // which recover() cleans up completely.
        ctr.retire_record()?;
        let id = ctr.meta.id.clone();
        // PID 1 is dead. With a PID namespace of its own, so is every
        // other process of the container (the kernel reaps them before PID 1
        // can be waited for), and runc's cleanup (a Go process, tens of ms)
        // and taking the rootfs apart (unmount, then the upper, work and
        // mount point dirs) are independent, so they overlap. In a shared
        // PID namespace, processes PID 1 started live on in their own mount
        // namespace, writing into the upper dir; the rootfs then waits for
        // `runc delete`, which kills them and empties the cgroup.
        let merged = self.overlay(&id).merged;
        let teardown = {
            let (merged, cdir) = (merged.clone(), self.cfg.container_dir(&id));
            move || {
                tokio::task::spawn_blocking(move || {
                    rootfs::unmount(&merged)?;
                    remove_rootfs_dir(&cdir)
                })
            }
        };
        let join_failed = |e: tokio::task::JoinError| Error::Mount {
            id: id.clone(),
            target: merged.clone(),
            reason: e.to_string(),
        };
        if ctr.meta.own_pid_namespace {
            let torn_down = teardown();
            let deleted = self.runc.delete(&id).await;
            torn_down.await.map_err(join_failed)??;
            deleted?;
        } else {
            self.runc.delete(&id).await?;
            teardown().await.map_err(join_failed)??;
        }
        self.kill_conmon(&id);
        remove_dir_if_exists(&self.cfg.bundle_dir(&id))?;
        let _ = std::fs::remove_file(self.exit_file(&id));
        let _ = std::fs::remove_file(self.cfg.runroot.join("socks").join(&id));
        self.store.remove(&id);
        self.store.names.release(&ctr.meta.name);
        self.events
            .emit(&id, &ctr.meta.sandbox_id, EventKind::Deleted);
        tracing::info!(%id, "container removed");
        Ok(())
    }

    // ---------------------------------------------------------------- status

    /// ContainerStatus; with `verbose`, `info["info"]` holds a JSON object
    /// with the pid, sandbox id and runtime spec.
    pub fn status(
        &self,
        id: &str,
        verbose: bool,
    ) -> Result<(crius_proto::ContainerStatus, HashMap<String, String>)> {
        let ctr = self.store.get(id)?;
        let st = self.refresh(&ctr)?;
        let m = &ctr.meta;
        let status = crius_proto::ContainerStatus {
            id: m.id.clone(),
            metadata: Some(crius_proto::ContainerMetadata {
                name: m.metadata_name.clone(),
                attempt: m.attempt,
            }),
            state: st.state().to_cri() as i32,
            created_at: m.created_at,
            started_at: st.started_at,
            finished_at: st.finished_at,
            exit_code: st.exit_code,
            image: Some(crius_proto::ImageSpec {
                image: m.image.clone(),
                annotations: m.image_annotations.clone().into_iter().collect(),
                ..Default::default()
            }),
            image_ref: m.image_ref.clone(),
            image_id: m.image_id.clone(),
            reason: st.reason.clone(),
            message: st.message.clone(),
            labels: m.labels.clone().into_iter().collect(),
            annotations: m.annotations.clone().into_iter().collect(),
            mounts: m.mounts.iter().map(crius_proto::Mount::from).collect(),
            log_path: m
                .log_path
                .as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_default(),
            user: st.user.as_ref().map(|u| crius_proto::ContainerUser {
                linux: Some(crius_proto::LinuxContainerUser {
                    uid: u.uid.into(),
                    gid: u.gid.into(),
                    supplemental_groups: u
                        .supplemental_groups
                        .iter()
                        .map(|g| (*g).into())
                        .collect(),
                }),
            }),
            resources: st
                .resources
                .as_ref()
                .map(|r| crius_proto::ContainerResources {
                    linux: Some(r.into()),
                    windows: None,
                }),
        };
        let mut info = HashMap::new();
        if verbose {
            let spec: serde_json::Value =
                std::fs::read(self.cfg.bundle_dir(&m.id).join(CONFIG_JSON))
                    .ok()
                    .and_then(|d| serde_json::from_slice(&d).ok())
                    .unwrap_or(serde_json::Value::Null);
            let v = serde_json::json!({
                "sandboxID": m.sandbox_id,
                "pid": st.pid,
                "name": m.name,
                "runtimeSpec": spec,
            });
            info.insert("info".to_string(), v.to_string());
        }
        Ok((status, info))
    }

    /// ListContainers with the CRI filter (id prefix, state, sandbox id,
    /// label selector).
    pub fn list(&self, filter: Option<&ContainerFilter>) -> Vec<crius_proto::Container> {
        let mut out: Vec<crius_proto::Container> = Vec::new();
        for ctr in self.store.list() {
            let st = match self.refresh(&ctr) {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(id = %ctr.meta.id, %e, "failed to refresh container");
                    ctr.status()
                }
            };
            if let Some(f) = filter
                && !matches_filter(&ctr.meta, st.state(), f)
            {
                continue;
            }
            let m = &ctr.meta;
            out.push(crius_proto::Container {
                id: m.id.clone(),
                pod_sandbox_id: m.sandbox_id.clone(),
                metadata: Some(crius_proto::ContainerMetadata {
                    name: m.metadata_name.clone(),
                    attempt: m.attempt,
                }),
                image: Some(crius_proto::ImageSpec {
                    image: m.image.clone(),
                    annotations: m.image_annotations.clone().into_iter().collect(),
                    ..Default::default()
                }),
                image_ref: m.image_ref.clone(),
                image_id: m.image_id.clone(),
                state: st.state().to_cri() as i32,
                created_at: m.created_at,
                labels: m.labels.clone().into_iter().collect(),
                annotations: m.annotations.clone().into_iter().collect(),
            });
        }
        out.sort_by_key(|c| c.created_at);
        out
    }

    // ------------------------------------------------------------- resources

    /// UpdateContainerResources: `runc update` on the live cgroup, then the
    /// record, so ContainerStatus reports what is in force. Only created
    /// and running containers have a cgroup to update.
    pub async fn update_resources(
        &self,
        id: &str,
        r: &crius_proto::LinuxContainerResources,
    ) -> Result<()> {
        let ctr = self.store.get(id)?;
        let _op = ctr.op_lock.lock().await;
        let st = self.refresh(&ctr)?;
        if !matches!(st.state(), State::Created | State::Running) {
            return Err(Error::FailedPrecondition {
                id: ctr.meta.id.clone(),
                state: st.state().as_str(),
                op: "update its resources",
            });
        }
        if r.memory_limit_in_bytes < 0 || r.cpu_shares < 0 || r.cpu_period < 0 {
            return Err(Error::InvalidArgument(format!(
                "negative resource values in {r:?}"
            )));
        }
        let mut oci = oci_spec::runtime::LinuxResources::default();
        spec::oci_resources(r, &mut oci);
        if self.cfg.pids_limit > 0 {
            // Sent with every update so the node limit holds whatever the
            // runtime does with an absent one.
            let mut pids = oci_spec::runtime::LinuxPids::default();
            pids.set_limit(self.cfg.pids_limit);
            oci.set_pids(Some(pids));
        }
        let file = self
            .cfg
            .bundle_dir(&ctr.meta.id)
            .join("resources-update.json");
        let data = serde_json::to_vec(&oci).map_err(|e| Error::Json {
            path: file.clone(),
            source: e,
        })?;
        std::fs::write(&file, data).map_err(|e| Error::io("failed to write", &file, e))?;
        let res = self.runc.update(&ctr.meta.id, &file).await;
        let _ = std::fs::remove_file(&file);
        res?;
        self.update_spec_resources(&ctr.meta.id, &oci);
        ctr.update(|s| {
            let merged = s.resources.clone().unwrap_or_default().merged(r);
            s.resources = Some(merged);
            Ok(())
        })?;
        tracing::info!(id = %ctr.meta.id, "container resources updated");
        Ok(())
    }

    /// Folds an update into the bundle's config.json, so the runtime spec
    /// shown by verbose ContainerStatus matches the cgroup. Best effort:
    /// the cgroup and the record are what count.
    fn update_spec_resources(&self, id: &str, update: &oci_spec::runtime::LinuxResources) {
        let path = self.cfg.bundle_dir(id).join(CONFIG_JSON);
        let Some(mut spec) = std::fs::read(&path)
            .ok()
            .and_then(|d| serde_json::from_slice::<oci_spec::runtime::Spec>(&d).ok())
        else {
            return;
        };
        let Some(linux) = spec.linux_mut() else {
            return;
        };
        let mut res = linux.resources().clone().unwrap_or_default();
        if let Some(new) = update.memory() {
            let mut mem = res.memory().unwrap_or_default();
            if let Some(l) = new.limit() {
                mem.set_limit(Some(l));
            }
            if let Some(s) = new.swap() {
                mem.set_swap(Some(s));
            }
            res.set_memory(Some(mem));
        }
        if let Some(new) = update.cpu() {
            let mut cpu = res.cpu().clone().unwrap_or_default();
            if new.shares().is_some() {
                cpu.set_shares(new.shares());
            }
            if new.quota().is_some() {
                cpu.set_quota(new.quota());
            }
            if new.period().is_some() {
                cpu.set_period(new.period());
            }
            if new.cpus().is_some() {
                cpu.set_cpus(new.cpus().clone());
            }
            if new.mems().is_some() {
                cpu.set_mems(new.mems().clone());
            }
            res.set_cpu(Some(cpu));
        }
        linux.set_resources(Some(res));
        match serde_json::to_vec_pretty(&spec) {
            Ok(data) => {
                if let Err(e) = crate::store::write_replace(&path, &data) {
                    tracing::warn!(%id, %e, "failed to record updated resources in the spec");
                }
            }
            Err(e) => tracing::warn!(%id, %e, "failed to serialize the updated spec"),
        }
    }

    // ----------------------------------------------------------------- stats

    /// The cgroup hierarchy the stats are read from.
    pub fn cgroups(&self) -> &Cgroups {
        &self.cgroups
    }

    /// The CPU samples kept between stats calls (shared with pod stats).
    pub fn cpu_samples(&self) -> &CpuSamples {
        &self.cpu_samples
    }

    /// ContainerStats of one container (id or unique prefix).
    pub fn stats(&self, id: &str) -> Result<crius_proto::ContainerStats> {
        let ctr = self.store.get(id)?;
        Ok(self.stats_of(&ctr))
    }

    /// ListContainerStats with the CRI filter (id prefix, sandbox id
    /// prefix, label selector); only running and created containers, whose
    /// cgroups exist, as CRI-O and containerd do.
    pub fn list_stats(
        &self,
        filter: Option<&crius_proto::ContainerStatsFilter>,
    ) -> Vec<crius_proto::ContainerStats> {
        let all = self.store.list();
        self.cpu_samples
            .retain(|k| k.starts_with("pod:") || all.iter().any(|c| c.meta.id == k));
        self.layer_usage.retain(|d| {
            all.iter()
                .any(|c| d.starts_with(self.cfg.container_dir(&c.meta.id)))
        });
        let mut out: Vec<_> = all
            .iter()
            .filter(|c| {
                let st = self.refresh(c).unwrap_or_else(|_| c.status());
                matches!(st.state(), State::Running | State::Created)
            })
            .filter(|c| {
                filter.is_none_or(|f| {
                    matches_filter(
                        &c.meta,
                        State::Running,
                        &ContainerFilter {
                            id: f.id.clone(),
                            state: None,
                            pod_sandbox_id: f.pod_sandbox_id.clone(),
                            label_selector: f.label_selector.clone(),
                        },
                    )
                })
            })
            .map(|c| (c.meta.created_at, self.stats_of(c)))
            .collect();
        out.sort_by_key(|(t, _)| *t);
        out.into_iter().map(|(_, s)| s).collect()
    }

    fn stats_of(&self, ctr: &Container) -> crius_proto::ContainerStats {
        let m = &ctr.meta;
        let st = ctr.status();
        let now = now_nanos();
        let usage = self.cgroups.usage(&m.cgroups_path);
        let upper = self.overlay(&m.id).upper;
        let layer = self.layer_usage.usage(&upper);
        crius_proto::ContainerStats {
            attributes: Some(crius_proto::ContainerAttributes {
                id: m.id.clone(),
                metadata: Some(crius_proto::ContainerMetadata {
                    name: m.metadata_name.clone(),
                    attempt: m.attempt,
                }),
                labels: m.labels.clone().into_iter().collect(),
                annotations: m.annotations.clone().into_iter().collect(),
            }),
            cpu: Some(cpu_usage(
                &self.cpu_samples,
                &m.id,
                now,
                usage.cpu_usage_ns,
                st.started_at,
            )),
            memory: Some(memory_usage(now, usage.memory.as_ref())),
            writable_layer: Some(crius_proto::FilesystemUsage {
                timestamp: now,
                fs_id: Some(crius_proto::FilesystemIdentifier {
                    mountpoint: upper.display().to_string(),
                }),
                used_bytes: layer.map(|(b, _)| u64v(b)),
                inodes_used: layer.map(|(_, i)| u64v(i)),
            }),
            swap: usage.swap.map(|s| crius_proto::SwapUsage {
                timestamp: now,
                swap_available_bytes: s.available().map(u64v),
                swap_usage_bytes: Some(u64v(s.usage)),
            }),
        }
    }

    // ------------------------------------------------------------------ exec

    /// ExecSync: runs `cmd` in the running container with its process
    /// settings (user, env, cwd, capabilities). `timeout` 0 means none.
    pub async fn exec_sync(
        &self,
        id: &str,
        cmd: &[String],
        timeout: Duration,
    ) -> Result<ExecSyncOutput> {
        if cmd.is_empty() {
            return Err(Error::InvalidArgument("exec command is empty".into()));
        }
        let ctr = self.running(id, "exec in it")?;
        let (process_file, pid_file) = self.write_exec_process(&ctr, cmd, false)?;
        let timeout = (!timeout.is_zero()).then_some(timeout);
        let res = self
            .runc
            .exec_sync(&ctr.meta.id, &process_file, &pid_file, timeout)
            .await;
        let _ = std::fs::remove_file(&process_file);
        let _ = std::fs::remove_file(&pid_file);
        res
    }

    /// Writes the process spec of an exec in `ctr` (the container's own
    /// user, env, cwd and capabilities with `cmd` as args) next to the
    /// bundle; returns it and the pid file runc is to write.
    fn write_exec_process(
        &self,
        ctr: &Container,
        cmd: &[String],
        tty: bool,
    ) -> Result<(PathBuf, PathBuf)> {
        let bundle = self.cfg.bundle_dir(&ctr.meta.id);
        let spec_path = bundle.join(CONFIG_JSON);
        let spec: oci_spec::runtime::Spec = serde_json::from_slice(
            &std::fs::read(&spec_path).map_err(|e| Error::io("failed to read", &spec_path, e))?,
        )
        .map_err(|e| Error::Json {
            path: spec_path.clone(),
            source: e,
        })?;
        let mut process = spec.process().clone().unwrap_or_default();
        process.set_args(Some(cmd.to_vec())).set_terminal(Some(tty));
        if tty {
            // Full-screen programs need to know the terminal type; kubelet
            // and CRI-O set TERM for tty execs too.
            let mut env = process.env().clone().unwrap_or_default();
            if !env.iter().any(|e| e.starts_with("TERM=")) {
                env.push("TERM=xterm".into());
            }
            process.set_env(Some(env));
        }
        let seq = new_id()?;
        let process_file = bundle.join(format!("exec-{}.json", &seq[..16]));
        let pid_file = bundle.join(format!("exec-{}.pid", &seq[..16]));
        let data = serde_json::to_vec(&process).map_err(|e| Error::Json {
            path: process_file.clone(),
            source: e,
        })?;
        std::fs::write(&process_file, data)
            .map_err(|e| Error::io("failed to write", &process_file, e))?;
        Ok((process_file, pid_file))
    }

    /// The full id of a running container, or why it is not usable for
    /// `op` (NotFound, FailedPrecondition).
    pub fn running_id(&self, id: &str, op: &'static str) -> Result<String> {
        self.running(id, op).map(|ctr| ctr.meta.id.clone())
    }

    /// The container `id` if it is running, or why it is not usable for
    /// `op` (NotFound, FailedPrecondition).
    fn running(&self, id: &str, op: &'static str) -> Result<Arc<Container>> {
        let ctr = self.store.get(id)?;
        let st = self.refresh(&ctr)?;
        if st.state() != State::Running {
            return Err(Error::FailedPrecondition {
                id: ctr.meta.id.clone(),
                state: st.state().as_str(),
                op,
            });
        }
        Ok(ctr)
    }

    /// Prepares a streaming exec (the Exec RPC): the `runc exec` command,
    /// not yet spawned and with all stdio set to null (the caller pipes
    /// what the client asked for), and the guard that kills the exec'd
    /// process if the session is dropped. With `tty`, runc runs detached
    /// (it allows --console-socket only then) and sends the pty master to
    /// [`StreamExec::console_socket`]; the caller must listen there first
    /// and must collect the exit status some other way than from runc
    /// (crius runs it under a child-subreaper helper).
    pub fn prepare_exec(&self, id: &str, cmd: &[String], tty: bool) -> Result<StreamExec> {
        if cmd.is_empty() {
            return Err(Error::InvalidArgument("exec command is empty".into()));
        }
        let ctr = self.running(id, "exec in it")?;
        let full_id = ctr.meta.id.clone();
        let (process_file, pid_file) = self.write_exec_process(&ctr, cmd, tty)?;
        let console_socket = tty.then(|| {
            // Short on purpose: unix socket paths are limited to 108 bytes.
            let name = process_file
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            self.cfg.runroot.join(format!("{name}.sock"))
        });
        let (args, log) = self.runc.exec_args(
            &full_id,
            &process_file,
            &pid_file,
            console_socket.as_deref(),
        )?;
        Ok(StreamExec {
            program: self.runc.path.clone(),
            args,
            console_socket,
            guard: crate::exec::ExecGuard::new(full_id, process_file, pid_file, log),
        })
    }

    /// Applies a terminal size to the container's tty through conmon.
    pub fn resize_terminal(&self, id: &str, width: u16, height: u16) -> Result<()> {
        let ctr = self.store.get(id)?;
        let bundle = self.cfg.bundle_dir(&ctr.meta.id);
        monitor::resize(&ctr.meta.id, &bundle, width, height)
    }

    // -------------------------------------------------------------- log file

    /// ReopenContainerLog: conmon closes and reopens the log path, so a
    /// file renamed by kubelet's rotation stops growing and a new one starts.
    pub async fn reopen_log(&self, id: &str) -> Result<()> {
        let ctr = self.running(id, "reopen its log")?;
        let bundle = self.cfg.bundle_dir(&ctr.meta.id);
        monitor::reopen_log(&ctr.meta.id, &bundle)?;
        if let Some(log) = &ctr.meta.log_path {
            let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
            while !log.exists() {
                if tokio::time::Instant::now() >= deadline {
                    return Err(Error::Timeout {
                        id: ctr.meta.id.clone(),
                        op: "reopen the log of",
                        timeout: Duration::from_secs(5),
                    });
                }
                tokio::time::sleep(POLL).await;
            }
        }
        Ok(())
    }

    // -------------------------------------------------------------- recovery

    /// Reloads every record and reconciles it with runc, conmon's exit
    /// files and mounts. Containers that exited while crius was down get
    /// their real exit code; half-created ones are removed.
    pub async fn recover(&self) -> Result<RecoveryReport> {
        let mut report = RecoveryReport::default();
        let dir = self.cfg.root.join("containers");
        let entries =
            std::fs::read_dir(&dir).map_err(|e| Error::io("failed to read directory", &dir, e))?;
        let mut known = std::collections::HashSet::new();
        let mut to_reconcile = Vec::new();
        for entry in entries.flatten() {
            let path = entry.path();
            let id = entry.file_name().to_string_lossy().into_owned();
            if !path.join(crate::store::RECORD_FILE).exists() {
                // A create killed before its record was written.
                self.cleanup_stray(&id).await;
                report.cleaned.push(id);
                continue;
            }
            let ctr = match Container::load(&path) {
                Ok(c) => Arc::new(c),
                Err(e) => {
                    tracing::error!(?path, %e, "cannot load container record");
                    report.failed.push((path, e.to_string()));
                    known.insert(id);
                    continue;
                }
            };
            let st = ctr.status();
            if !st.create_complete {
                self.cleanup_stray(&id).await;
                report.cleaned.push(id);
                continue;
            }
            known.insert(id.clone());
            if let Err(e) = self.store.names.reserve(&ctr.meta.name, &id) {
                tracing::error!(%id, %e, "duplicate container name in records");
            }
            self.store.insert(ctr.clone());
            to_reconcile.push(ctr);
            report.restored.push(id);
        }
        self.reconcile(&to_reconcile).await;
        // runc containers and bundles nobody has a record for.
        for d in [self.cfg.runc_root(), self.cfg.runroot.join("containers")] {
            if let Ok(entries) = std::fs::read_dir(&d) {
                for e in entries.flatten() {
                    let id = e.file_name().to_string_lossy().into_owned();
                    if !known.contains(&id) && !report.cleaned.contains(&id) {
                        self.cleanup_stray(&id).await;
                        report.cleaned.push(id);
                    }
                }
            }
        }
        Ok(report)
    }

    /// Brings the recovered records in line with conmon's exit files and
    /// runc. One `runc list` answers for every container (one `runc state`
    /// each made a restart with hundreds of containers take seconds), and
    /// the containers that stopped without an exit file share one grace
    /// period. A container that cannot be reconciled stays, visibly, as
    /// Unknown until its exit file shows up or a stop/remove deals with it.
    async fn reconcile(&self, ctrs: &[Arc<Container>]) {
        // Exit files first: whatever runc says afterwards is at least as new.
        let mut live = Vec::new();
        for ctr in ctrs {
            match self.refresh(ctr) {
                Ok(st)
                    if matches!(st.state(), State::Created | State::Running | State::Unknown) =>
                {
                    live.push(ctr)
                }
                Ok(_) => {}
                Err(e) => mark_unreconciled(ctr, &e),
            }
        }
        // A Running record whose process is still there (same pid, same
        // start time, not a zombie) is what runc would report as running:
        // the common case after a restart needs no runc at all.
        live.retain(|ctr| {
            let st = ctr.status();
            !(st.state() == State::Running
                && st.pid > 0
                && st.pid_start_time != 0
                && process_alive(st.pid, st.pid_start_time))
        });
        if live.is_empty() {
            return;
        }
        let listed = match self.runc.list().await {
            Ok(listed) => Some(listed),
            Err(e) => {
                tracing::warn!(%e, "runc list failed; asking runc about each container");
                None
            }
        };
        let mut stopped = Vec::new();
        for ctr in live {
            let runc_state = match &listed {
                Some(listed) => Ok(listed.get(&ctr.meta.id).cloned()),
                None => self.runc.state(&ctr.meta.id).await,
            };
            match runc_state.and_then(|rs| self.apply_runc_state(ctr, rs)) {
                Ok(None) => {}
                Ok(Some(why)) => stopped.push((ctr, why)),
                Err(e) => mark_unreconciled(ctr, &e),
            }
        }
        if stopped.is_empty() {
            return;
        }
        // Stopped (or gone) without an exit file: conmon died too, or is
        // about to write it; one grace period for all of them.
        tokio::time::sleep(Duration::from_millis(100)).await;
        for (ctr, why) in stopped {
            let lost = self.refresh(ctr).and_then(|st| {
                if st.state() != State::Exited {
                    self.record_exit(
                        ctr,
                        255,
                        now_nanos(),
                        Some(format!(
                            "container exited while its monitor was not running ({why}); exit code unknown"
                        )),
                    )?;
                }
                Ok(())
            });
            if let Err(e) = lost {
                mark_unreconciled(ctr, &e);
            }
        }
    }

    /// Records what runc says of a live container; `Some(reason)` if it is
    /// no longer running or created, i.e. its exit code may be lost.
    fn apply_runc_state(
        &self,
        ctr: &Container,
        runc_state: Option<crate::runtime::RuncState>,
    ) -> Result<Option<String>> {
        let st = ctr.status();
        match runc_state {
            Some(rs) if rs.status == "running" => {
                if st.state() != State::Running {
                    ctr.update(|s| {
                        s.state = Some(State::Running);
                        s.message.clear();
                        if s.started_at == 0 {
                            s.started_at = now_nanos();
                        }
                        Ok(())
                    })?;
                }
                Ok(None)
            }
            Some(rs) if rs.status == "created" => {
                if st.state() != State::Created {
                    ctr.update(|s| {
                        s.state = Some(State::Created);
                        s.message.clear();
                        Ok(())
                    })?;
                }
                Ok(None)
            }
            Some(rs) => Ok(Some(format!("runc reports {}", rs.status))),
            None => Ok(Some("runc no longer knows it".into())),
        }
    }

    /// Removes every trace of a container that has no usable record.
    async fn cleanup_stray(&self, id: &str) {
        if !user::is_plain_component(id) {
            return;
        }
        tracing::info!(%id, "cleaning up half-created container");
        let _ = self.runc.kill(id, "KILL", false).await;
        if let Err(e) = self.runc.delete(id).await {
            tracing::warn!(%id, %e, "runc delete failed");
        }
        self.kill_conmon(id);
        if let Err(e) = rootfs::unmount(&self.overlay(id).merged) {
            tracing::warn!(%id, %e, "unmount failed");
        }
        let _ = std::fs::remove_dir_all(self.cfg.bundle_dir(id));
        let _ = std::fs::remove_dir_all(self.cfg.container_dir(id));
        let _ = std::fs::remove_file(self.exit_file(id));
        let _ = std::fs::remove_file(self.cfg.runroot.join("socks").join(id));
        let _ = std::fs::remove_dir_all(self.cfg.runc_root().join(id));
    }
}

/// Whether `pid` is still the process that started at `start_time` (clock
/// ticks since boot) and has not exited: a zombie has.
fn process_alive(pid: i32, start_time: u64) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    // comm may hold spaces and parens: fields resume after the last ')',
    // with field 3 (state) first and field 22 (starttime) 19 later.
    let Some((_, rest)) = stat.rsplit_once(')') else {
        return false;
    };
    let mut fields = rest.split_whitespace();
    let state = fields.next();
    let started = fields.nth(22 - 4).and_then(|f| f.parse::<u64>().ok());
    !matches!(state, None | Some("Z" | "X" | "x")) && started == Some(start_time)
}

/// Keeps a container that recovery could not reconcile, visibly: Unknown
/// until its exit file shows up or a stop/remove deals with it.
fn mark_unreconciled(ctr: &Container, err: &Error) {
    let id = &ctr.meta.id;
    tracing::warn!(%id, %err, "failed to reconcile container");
    let reason = err.to_string();
    if let Err(e) = ctr.update(|s| {
        if s.state() != State::Exited {
            s.state = Some(State::Unknown);
            s.message = format!("cannot reconcile after restart: {reason}");
        }
        Ok(())
    }) {
        tracing::error!(%id, %e, "failed to record unknown state");
    }
}

/// Removes a container dir after its rootfs was unmounted. The overlay
/// can outlive the unmount for a moment (the container's own mount
/// namespace lets go of its copy asynchronously), and while it does, a
/// dir of its upper or work dir may not be empty yet; so "not empty" is
/// retried for up to a second before it counts.
fn remove_rootfs_dir(d: &Path) -> Result<()> {
    for _ in 0..20 {
        match std::fs::remove_dir_all(d) {
            Err(e) if e.raw_os_error() == Some(libc::ENOTEMPTY) => {
                std::thread::sleep(Duration::from_millis(50));
            }
            _ => break,
        }
    }
    remove_dir_if_exists(d)
}

/// `rm -rf`; a missing dir is fine (remove is idempotent).
fn remove_dir_if_exists(d: &Path) -> Result<()> {
    match std::fs::remove_dir_all(d) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(Error::io("failed to remove", d, e))
        }
        _ => Ok(()),
    }
}

/// Sends `sig` once more as soon as the process (`pid`, started at
/// `start_time`) has a handler for it; returns then, or when the process
/// is gone. For a stop signal the process dropped for want of a handler.
async fn redeliver_once_caught(id: &str, pid: i32, start_time: u64, sig: nix::sys::signal::Signal) {
    loop {
        tokio::time::sleep(HANDLER_POLL).await;
        match crate::signal::Dispositions::of(pid, start_time) {
            None => return,
            Some(d) if d.catches(sig) => {
                tracing::info!(%id, pid, signal = %sig, "stop signal came before the handler, sending it again");
                if let Err(e) = crate::signal::send(pid, start_time, sig) {
                    tracing::warn!(%id, pid, %e, "failed to send the stop signal again");
                }
                return;
            }
            Some(_) => {}
        }
    }
}

pub fn u64v(value: u64) -> crius_proto::UInt64Value {
    crius_proto::UInt64Value { value }
}

/// The CRI CPU figures from a cgroup's usage counter; `key` names the
/// sample kept for the next call's rate.
pub fn cpu_usage(
    samples: &CpuSamples,
    key: &str,
    now: i64,
    usage_ns: Option<u64>,
    started_at: i64,
) -> crius_proto::CpuUsage {
    crius_proto::CpuUsage {
        timestamp: now,
        usage_core_nano_seconds: usage_ns.map(u64v),
        usage_nano_cores: usage_ns
            .and_then(|u| samples.rate(key, now, u, started_at))
            .map(u64v),
    }
}

/// The CRI memory figures from a cgroup's memory usage.
pub fn memory_usage(now: i64, m: Option<&crate::stats::MemoryUsage>) -> crius_proto::MemoryUsage {
    crius_proto::MemoryUsage {
        timestamp: now,
        working_set_bytes: m.map(|m| u64v(m.working_set)),
        available_bytes: m.and_then(|m| m.available()).map(u64v),
        usage_bytes: m.map(|m| u64v(m.usage)),
        rss_bytes: m.map(|m| u64v(m.rss)),
        page_faults: m.map(|m| u64v(m.page_faults)),
        major_page_faults: m.map(|m| u64v(m.major_page_faults)),
    }
}

/// True if the kernel OOM killer fired in the container's memory cgroup
/// (v1 `memory.oom_control`, v2 `memory.events`).
fn cgroup_oom_killed(cgroups_path: &str) -> bool {
    let Some(rel) = crate::stats::cgroup_rel(cgroups_path).filter(|_| !cgroups_path.is_empty())
    else {
        return false;
    };
    let candidates = [
        (Path::new("/sys/fs/cgroup/memory")
            .join(&rel)
            .join("memory.oom_control")),
        (Path::new("/sys/fs/cgroup").join(&rel).join("memory.events")),
    ];
    candidates.iter().any(|f| {
        std::fs::read_to_string(f)
            .map(|text| parse_oom_kill_count(&text) > 0)
            .unwrap_or(false)
    })
}

fn parse_oom_kill_count(text: &str) -> u64 {
    text.lines()
        .filter_map(|l| l.strip_prefix("oom_kill "))
        .filter_map(|v| v.trim().parse::<u64>().ok())
        .next()
        .unwrap_or(0)
}

/// `SIGTERM`, `TERM` or `15` as runc kill wants it; default SIGTERM.
pub fn stop_signal(image_signal: &str) -> String {
    let s = image_signal.trim();
    if s.is_empty() {
        return "TERM".into();
    }
    if s.parse::<u32>().is_ok() {
        return s.into();
    }
    let upper = s.to_ascii_uppercase();
    upper.strip_prefix("SIG").unwrap_or(&upper).to_string()
}

/// The termination message file, bounded and not following symlinks.
fn read_termination_message(path: &Path) -> Option<String> {
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
        .ok()?;
    if !f.metadata().ok()?.is_file() {
        return None;
    }
    let mut buf = Vec::new();
    f.take(MAX_TERMINATION_MESSAGE).read_to_end(&mut buf).ok()?;
    if buf.is_empty() {
        return None;
    }
    Some(String::from_utf8_lossy(&buf).into_owned())
}

/// The CRI filter semantics: every given field must match; the id may be a
/// prefix.
pub fn matches_filter(meta: &ContainerMeta, state: State, f: &ContainerFilter) -> bool {
    if !f.id.is_empty() && !meta.id.starts_with(&f.id) {
        return false;
    }
    if let Some(s) = &f.state
        && s.state != state.to_cri() as i32
    {
        return false;
    }
    if !f.pod_sandbox_id.is_empty() && !meta.sandbox_id.starts_with(&f.pod_sandbox_id) {
        return false;
    }
    f.label_selector
        .iter()
        .all(|(k, v)| meta.labels.get(k) == Some(v))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_live_process_is_told_from_a_reused_pid_and_a_zombie() {
        let me = std::process::id() as i32;
        let started = crate::signal::start_time(me).unwrap();
        assert!(process_alive(me, started));
        assert!(!process_alive(me, started + 1));
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id() as i32;
        let child_started = crate::signal::start_time(pid).unwrap();
        // Not reaped yet: a zombie once it has exited.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while process_alive(pid, child_started) {
            assert!(std::time::Instant::now() < deadline, "true never exited");
            std::thread::sleep(Duration::from_millis(10));
        }
        child.wait().unwrap();
        assert!(!process_alive(pid, child_started));
    }
    use crius_proto::ContainerStateValue;

    fn meta() -> ContainerMeta {
        ContainerMeta {
            id: "abcdef".into(),
            name: "n".into(),
            sandbox_id: "pod123".into(),
            metadata_name: "n".into(),
            attempt: 0,
            image: "i".into(),
            image_annotations: Default::default(),
            image_id: "x".into(),
            image_ref: "y".into(),
            labels: [("app".to_string(), "web".to_string())].into(),
            annotations: Default::default(),
            mounts: vec![],
            log_path: None,
            tty: false,
            stdin: false,
            stdin_once: false,
            stop_signal: String::new(),
            termination_log: None,
            cgroups_path: String::new(),
            own_pid_namespace: true,
            created_at: 0,
        }
    }

    #[test]
    fn filters() {
        let m = meta();
        let f =
            |id: &str, state: Option<State>, pod: &str, labels: &[(&str, &str)]| ContainerFilter {
                id: id.into(),
                state: state.map(|s| ContainerStateValue {
                    state: s.to_cri() as i32,
                }),
                pod_sandbox_id: pod.into(),
                label_selector: labels
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            };
        assert!(matches_filter(&m, State::Running, &f("", None, "", &[])));
        assert!(matches_filter(&m, State::Running, &f("abc", None, "", &[])));
        assert!(!matches_filter(
            &m,
            State::Running,
            &f("abd", None, "", &[])
        ));
        assert!(matches_filter(
            &m,
            State::Running,
            &f("", Some(State::Running), "", &[])
        ));
        assert!(!matches_filter(
            &m,
            State::Exited,
            &f("", Some(State::Running), "", &[])
        ));
        assert!(matches_filter(
            &m,
            State::Running,
            &f("", None, "pod123", &[])
        ));
        assert!(!matches_filter(
            &m,
            State::Running,
            &f("", None, "pod9", &[])
        ));
        assert!(matches_filter(
            &m,
            State::Running,
            &f("", None, "", &[("app", "web")])
        ));
        assert!(!matches_filter(
            &m,
            State::Running,
            &f("", None, "", &[("app", "db")])
        ));
        assert!(!matches_filter(
            &m,
            State::Running,
            &f("", None, "", &[("app", "web"), ("tier", "x")])
        ));
    }

    #[test]
    fn oom_kill_counters() {
        assert_eq!(
            parse_oom_kill_count("oom_kill_disable 0\nunder_oom 0\noom_kill 2\n"),
            2
        );
        assert_eq!(
            parse_oom_kill_count("low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\n"),
            1
        );
        assert_eq!(parse_oom_kill_count("oom_kill_disable 0\n"), 0);
        assert!(!cgroup_oom_killed("/../etc"));
    }

    #[test]
    fn stop_signals() {
        assert_eq!(stop_signal(""), "TERM");
        assert_eq!(stop_signal("SIGQUIT"), "QUIT");
        assert_eq!(stop_signal("sigint"), "INT");
        assert_eq!(stop_signal("9"), "9");
        assert_eq!(stop_signal("USR1"), "USR1");
    }

    #[test]
    fn termination_message_is_bounded_and_no_symlinks() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t");
        std::fs::write(&p, vec![b'a'; 10_000]).unwrap();
        assert_eq!(read_termination_message(&p).unwrap().len(), 4096);
        let l = dir.path().join("l");
        std::os::unix::fs::symlink(&p, &l).unwrap();
        assert_eq!(read_termination_message(&l), None);
        std::fs::write(&p, "").unwrap();
        assert_eq!(read_termination_message(&p), None);
    }

    /// tonic handlers need Send futures and a Sync service.
    #[test]
    fn manager_is_sync_and_its_futures_are_send() {
        fn sync<T: Send + Sync>(_: &T) {}
        fn send<T: Send>(_: T) {}
        let dir = tempfile::tempdir().unwrap();
        let m = ContainerManager::new(RuntimeConfig::new(
            dir.path().join("r"),
            dir.path().join("v"),
            "/bin/false",
            "/bin/false",
        ))
        .unwrap();
        sync(&m);
        let (sb, img, cfg) = (
            SandboxInfo::default(),
            ImageInfo::default(),
            ContainerConfig::default(),
        );
        send(m.create(&sb, &img, &cfg));
        send(m.start("x"));
        send(m.stop("x", 1));
        send(m.remove("x"));
        send(m.exec_sync("x", &[], Duration::ZERO));
        send(m.reopen_log("x"));
        send(m.recover());
    }

    #[test]
    fn ids_are_64_hex() {
        let id = new_id().unwrap();
        assert_eq!(id.len(), 64);
        assert!(id.chars().all(|c| c.is_ascii_hexdigit()));
    }
}
