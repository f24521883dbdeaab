//! The sandbox life cycle: RunPodSandbox with its undo list, stop, remove,
//! and recovery at start.

use std::collections::{BTreeMap, HashSet};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crius_proto::PodSandboxConfig;
use serde_json::{Map, Value, json};

use crate::Error;
use crate::cni::{self, Attachment, Cni, NetworkConfigList};
use crate::files::{self, Dns, PodFiles};
use crate::infra::{self, Infra};
use crate::ns::{self, PINNABLE, PinnsArgs};
use crate::sandbox::{
    Metadata, Namespaces, NsMode, PortMapping, Record, Sandbox, Spec, State, Status, Store,
    write_record,
};

/// What a container-stopping hook may fail with.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

const RECORD_FILE: &str = "sandbox.json";

/// Everything the sandbox code needs from the daemon's configuration.
#[derive(Debug, Clone)]
pub struct Options {
    /// Records go to `<root>/sandboxes/<id>`.
    pub root: PathBuf,
    /// Pod files go to `<runroot>/sandboxes/<id>`, pins to `<runroot>/ns`.
    pub runroot: PathBuf,
    /// The crius binary, re-executed as `pinns` (normally /proc/self/exe).
    pub exe: PathBuf,
    pub cni_config_dir: PathBuf,
    pub cni_plugin_dirs: Vec<PathBuf>,
    pub cni_cache_dir: PathBuf,
    /// Per plugin call, and for the namespace helper.
    pub cni_timeout: Duration,
    pub shm_size: u64,
    /// Accepted `runtime_handler`s; the first is the default.
    pub runtime_handlers: Vec<String>,
    /// Copied into pods without a DNS config.
    pub host_resolv_conf: PathBuf,
    /// Budget for running an undo list.
    pub cleanup_timeout: Duration,
}

/// All pod sandboxes of this crius.
#[derive(Debug)]
pub struct Sandboxes {
    opts: Options,
    cni: Cni,
    store: Store,
    /// Whether `<runroot>/ns` is a bind mount of itself (made private).
    ns_bind_added: bool,
}

/// One step of RunPodSandbox to take back on failure.
#[derive(Debug)]
enum Undo {
    ReleaseName(String),
    RemoveDir(PathBuf),
    Unpin,
    KillInfra,
    UnmountShm(PathBuf),
    CniDel(Box<NetworkConfigList>),
    /// DEL of the named network from libcni's cache (its config is gone).
    CniDelCached(String),
}

impl Sandboxes {
    /// Opens the store: creates the directories, reloads the records and
    /// cleans up what a crius killed mid-RunPodSandbox left behind.
    pub async fn open(mut opts: Options) -> Result<Sandboxes, Error> {
        for dir in [
            opts.root.join("sandboxes"),
            opts.runroot.join("sandboxes"),
            opts.runroot.join("ns"),
        ] {
            std::fs::create_dir_all(&dir).map_err(|source| Error::Io {
                what: "create directory",
                path: dir.clone(),
                source,
            })?;
        }
        // Paths are compared with /proc/self/mountinfo, which shows them
        // resolved: a runroot of /var/run/crius must become /run/crius, or
        // pins would look lost and a mount under a pod dir would go unseen.
        for dir in [&mut opts.root, &mut opts.runroot] {
            *dir = dir.canonicalize().map_err(|source| Error::Io {
                what: "resolve",
                path: dir.clone(),
                source,
            })?;
        }
        let ns_dir = opts.runroot.join("ns");
        let ns_bind_added = ns::ensure_private(&ns_dir).map_err(Error::PinDir)?;
        let cni = Cni::new(
            opts.cni_plugin_dirs.clone(),
            opts.cni_cache_dir.clone(),
            opts.cni_timeout,
        );
        let sandboxes = Sandboxes {
            opts,
            cni,
            store: Store::default(),
            ns_bind_added,
        };
        sandboxes.recover().await;
        Ok(sandboxes)
    }

    /// Undoes the private bind mount of the pin dir, if no pins are left,
    /// so that a stopped crius with no pods leaves no mount. Called at
    /// shutdown.
    pub fn close(&self) {
        let ns_dir = self.ns_dir();
        let ns_dir = ns_dir.canonicalize().unwrap_or(ns_dir);
        if self.ns_bind_added && ns::mounts_under(&ns_dir).len() <= 1 {
            let _ = nix::mount::umount2(&ns_dir, nix::mount::MntFlags::MNT_DETACH);
        }
    }

    pub fn cni(&self) -> &Cni {
        &self.cni
    }

    /// By full id or unique prefix.
    pub fn get(&self, id: &str) -> Result<Arc<Sandbox>, Error> {
        self.store.get(id)
    }

    pub fn list(&self) -> Vec<Arc<Sandbox>> {
        self.store.list()
    }

    fn ns_dir(&self) -> PathBuf {
        self.opts.runroot.join("ns")
    }

    fn record_dir(&self, id: &str) -> PathBuf {
        self.opts.root.join("sandboxes").join(id)
    }

    fn run_dir(&self, id: &str) -> PathBuf {
        self.opts.runroot.join("sandboxes").join(id)
    }

    /// RunPodSandbox. The name is reserved first; every side effect pushes
    /// its undo step before it happens, and any failure runs the undo list
    /// under its own timeout.
    pub async fn run(
        &self,
        config: &PodSandboxConfig,
        runtime_handler: &str,
    ) -> Result<Arc<Sandbox>, Error> {
        let id = new_id()?;
        let spec = self.spec_from_config(&id, config, runtime_handler)?;
        let name = spec.metadata.reserved_name();
        self.store.reserve(&name, &id)?;
        let mut undo = vec![Undo::ReleaseName(name)];
        match self.create(&id, &spec, &mut undo).await {
            Ok(sandbox) => {
                self.store.insert(sandbox.clone());
                Ok(sandbox)
            }
            Err(err) => {
                tracing::warn!(%id, error = %crate_message(&err), "RunPodSandbox failed, rolling back");
                self.rollback(&id, &spec, undo).await;
                Err(err)
            }
        }
    }

    async fn create(
        &self,
        id: &str,
        spec: &Spec,
        undo: &mut Vec<Undo>,
    ) -> Result<Arc<Sandbox>, Error> {
        let io = |what, path: &Path| {
            let path = path.to_owned();
            move |source| Error::Io { what, path, source }
        };
        let record_dir = self.record_dir(id);
        undo.push(Undo::RemoveDir(record_dir.clone()));
        let sandbox = Arc::new(Sandbox::new(
            id.to_string(),
            spec.clone(),
            Status {
                state: State::Creating,
                ips: Vec::new(),
                cni_network: None,
                cni_result: None,
                infra: None,
            },
            record_dir.join(RECORD_FILE),
        ));
        write_record(&record_dir.join(RECORD_FILE), &sandbox.record()).await?;

        let files = &spec.files;
        undo.push(Undo::RemoveDir(files.dir.clone()));
        std::fs::create_dir_all(&files.dir).map_err(io("create directory", &files.dir))?;

        let ns = &spec.namespaces;
        let args = PinnsArgs {
            id: id.to_string(),
            dir: self.ns_dir(),
            net: spec.netns.is_some(),
            ipc: spec.ipcns.is_some(),
            uts: spec.utsns.is_some(),
            pid: ns.pid == NsMode::Pod,
            hostname: spec.utsns.is_some().then(|| spec.hostname.clone()),
            sysctls: spec
                .sysctls
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect(),
        };
        if args.net || args.ipc || args.uts || args.pid {
            undo.push(Undo::Unpin);
            undo.push(Undo::KillInfra);
            let out = ns::pin(&self.opts.exe, &args, self.opts.cni_timeout)
                .await
                .map_err(|source| Error::Namespaces {
                    id: id.to_string(),
                    source,
                })?;
            if let Some(pid) = out.infra_pid {
                let infra = Infra::identify(pid).ok_or_else(|| Error::Infra {
                    id: id.to_string(),
                    source: std::io::Error::other(format!("infra process {pid} exited at once")),
                })?;
                sandbox.update(|s| s.infra = Some(infra)).await?;
            }
        }

        std::fs::write(&files.hostname, format!("{}\n", spec.hostname))
            .map_err(io("write", &files.hostname))?;
        let resolv = files::resolv_conf(&spec.dns, &self.opts.host_resolv_conf)
            .map_err(io("read", &self.opts.host_resolv_conf))?;
        std::fs::write(&files.resolv_conf, resolv).map_err(io("write", &files.resolv_conf))?;
        std::fs::write(&files.hosts, files::hosts(&spec.hostname, &[]))
            .map_err(io("write", &files.hosts))?;

        if let Some(shm) = &files.shm {
            undo.push(Undo::UnmountShm(shm.clone()));
            files::mount_shm(shm, self.opts.shm_size).map_err(|source| Error::Shm {
                id: id.to_string(),
                path: shm.clone(),
                source,
            })?;
        }

        if spec.netns.is_some() {
            let list =
                cni::load_network(&self.opts.cni_config_dir).map_err(Error::NetworkNotReady)?;
            // Recorded before ADD: a crius killed during ADD must DEL at start.
            sandbox
                .update(|s| s.cni_network = Some(list.name.clone()))
                .await?;
            undo.push(Undo::CniDel(Box::new(list.clone())));
            let att = attachment(id, spec)?;
            let result = self
                .cni
                .add(&list, &att)
                .await
                .map_err(|source| Error::Network {
                    id: id.to_string(),
                    source,
                })?;
            let ips = cni::result_ips(&result);
            std::fs::write(&files.hosts, files::hosts(&spec.hostname, &ips))
                .map_err(io("write", &files.hosts))?;
            sandbox
                .update(|s| {
                    s.ips = ips.iter().map(ToString::to_string).collect();
                    s.cni_result = Some(result);
                    s.state = State::Ready;
                })
                .await?;
        } else {
            sandbox.update(|s| s.state = State::Ready).await?;
        }
        Ok(sandbox)
    }

    /// Runs the undo steps of a failed RunPodSandbox (or of a sandbox found
    /// half-created at start) under the cleanup timeout. The record and the
    /// name go last, and only once the network is known to be detached: if
    /// CNI DEL failed, or the time ran out, the sandbox is kept as NotReady
    /// (with its network while DEL has not succeeded) so that
    /// RemovePodSandbox retries what is left; its name stays reserved for
    /// it until then, and is never left reserved by nothing.
    async fn rollback(&self, id: &str, spec: &Spec, undo: Vec<Undo>) {
        let record_dir = self.record_dir(id);
        // The network of a CniDel step not (yet) done.
        let mut network_left: Option<String> = None;
        let steps = async {
            for step in undo.into_iter().rev() {
                match &step {
                    Undo::CniDel(list) => network_left = Some(list.name.clone()),
                    Undo::CniDelCached(network) => network_left = Some(network.clone()),
                    Undo::RemoveDir(dir) if network_left.is_some() && *dir == record_dir => {
                        continue;
                    }
                    Undo::ReleaseName(_) if network_left.is_some() => continue,
                    _ => {}
                }
                let what = format!("{step:?}");
                let is_del = matches!(step, Undo::CniDel(_) | Undo::CniDelCached(_));
                match self.undo(id, spec, step).await {
                    Ok(()) if is_del => network_left = None,
                    Ok(()) => {}
                    Err(err) => {
                        tracing::warn!(%id, step = %what, error = %crate_message(&err), "undo step failed");
                    }
                }
            }
        };
        let timed_out = tokio::time::timeout(self.opts.cleanup_timeout, steps)
            .await
            .is_err();
        if timed_out {
            tracing::error!(%id, timeout = ?self.opts.cleanup_timeout, "rollback timed out");
        }
        if network_left.is_some() || timed_out {
            self.keep_for_removal(id, spec, network_left).await;
        }
    }

    /// Keeps what a rollback could not finish as a NotReady sandbox that
    /// RemovePodSandbox can remove, retrying CNI DEL of `network` (if set).
    /// Without a record on disk nothing can be kept: the name is released.
    async fn keep_for_removal(&self, id: &str, spec: &Spec, network: Option<String>) {
        let name = spec.metadata.reserved_name();
        let path = self.record_dir(id).join(RECORD_FILE);
        let mut status = match Record::load(&path) {
            Ok(record) => record.status,
            Err(err) => {
                tracing::warn!(%id, error = %err, "no record to keep after rollback");
                self.store.release(&name, id);
                return;
            }
        };
        status.state = State::NotReady;
        status.ips.clear();
        status.cni_network = network;
        let sandbox = Arc::new(Sandbox::new(
            id.to_string(),
            spec.clone(),
            status,
            path.clone(),
        ));
        if let Err(err) = write_record(&path, &sandbox.record()).await {
            tracing::error!(%id, error = %crate_message(&err), "failed to keep sandbox record");
        }
        // Already ours after RunPodSandbox; reserved anew at recovery.
        let _ = self.store.reserve(&name, id);
        tracing::warn!(%id, network = ?sandbox.status().cni_network, "sandbox kept as not ready: remove it to finish the cleanup");
        self.store.insert(sandbox);
    }

    async fn undo(&self, id: &str, spec: &Spec, step: Undo) -> Result<(), Error> {
        match step {
            Undo::ReleaseName(name) => {
                self.store.release(&name, id);
                Ok(())
            }
            Undo::RemoveDir(dir) => remove_dir(&dir),
            Undo::Unpin => self.unpin_all(id),
            Undo::KillInfra => kill_infra(id, None).await,
            Undo::UnmountShm(path) => unmount_shm(id, &path),
            Undo::CniDel(list) => self.cni_del(id, spec, Some(&list.name), Some(&list)).await,
            Undo::CniDelCached(network) => self.cni_del(id, spec, Some(&network), None).await,
        }
    }

    fn unpin_all(&self, id: &str) -> Result<(), Error> {
        for kind in PINNABLE {
            ns::unpin(&ns::pin_path(&self.ns_dir(), kind, id)).map_err(|source| {
                Error::Namespaces {
                    id: id.to_string(),
                    source,
                }
            })?;
        }
        Ok(())
    }

    async fn cni_del(
        &self,
        id: &str,
        spec: &Spec,
        network: Option<&str>,
        list: Option<&NetworkConfigList>,
    ) -> Result<(), Error> {
        let current;
        let list = match list {
            Some(list) => Some(list),
            None => {
                current = cni::load_network(&self.opts.cni_config_dir).ok();
                current.as_ref()
            }
        };
        let att = attachment(id, spec)?;
        self.cni
            .del(network, list, &att)
            .await
            .map_err(|source| Error::Network {
                id: id.to_string(),
                source,
            })
    }

    /// Holds the sandbox `id` for creating a container in it: a stop or
    /// remove of it waits until the guard is dropped, so it sees the new
    /// container (and stops or removes it); one already under way finishes
    /// first, so the caller then sees the sandbox NotReady (its state is
    /// to be checked under the guard) or gone (NotFound here).
    pub async fn hold(
        &self,
        id: &str,
    ) -> Result<(Arc<Sandbox>, tokio::sync::OwnedRwLockReadGuard<()>), Error> {
        let sandbox = self.store.get(id)?;
        let guard = sandbox.op.clone().read_owned().await;
        if self.store.get(sandbox.id()).is_err() {
            return Err(Error::NotFound {
                id: sandbox.id().to_string(),
            });
        }
        Ok((sandbox, guard))
    }

    /// StopPodSandbox. A missing sandbox is success (the CRI says Stop is
    /// idempotent).
    pub async fn stop(&self, id: &str) -> Result<(), Error> {
        self.stop_with(id, |_| async { Ok(()) }).await
    }

    /// StopPodSandbox with a hook that stops the sandbox's containers first,
    /// under the sandbox's operation lock.
    pub async fn stop_with<F, Fut>(&self, id: &str, stop_containers: F) -> Result<(), Error>
    where
        F: FnOnce(Arc<Sandbox>) -> Fut,
        Fut: Future<Output = Result<(), BoxError>>,
    {
        let sandbox = match self.store.get(id) {
            Ok(sandbox) => sandbox,
            Err(Error::NotFound { .. }) => return Ok(()),
            Err(err) => return Err(err),
        };
        let _op = sandbox.op.write().await;
        if self.store.get(sandbox.id()).is_err() {
            // Removed while we waited for the lock: nothing is left to
            // stop, and the container hook must not run on a removed pod.
            return Ok(());
        }
        stop_containers(sandbox.clone())
            .await
            .map_err(|source| Error::Containers {
                id: sandbox.id().to_string(),
                source,
            })?;
        self.stop_locked(&sandbox).await
    }

    async fn stop_locked(&self, sandbox: &Sandbox) -> Result<(), Error> {
        let (id, spec) = (sandbox.id(), sandbox.spec());
        let status = sandbox.status();
        if let Some(network) = &status.cni_network {
            self.cni_del(id, spec, Some(network), None).await?;
        }
        if let Some(infra) = status.infra {
            infra.kill().await.map_err(|source| Error::Infra {
                id: id.to_string(),
                source,
            })?;
        }
        if let Some(shm) = &spec.files.shm {
            unmount_shm(id, shm)?;
        }
        let changed = status.state != State::NotReady
            || status.cni_network.is_some()
            || status.infra.is_some();
        if changed {
            sandbox
                .update(|s| {
                    s.state = State::NotReady;
                    s.cni_network = None;
                    s.ips.clear();
                    s.infra = None;
                })
                .await?;
        }
        Ok(())
    }

    /// RemovePodSandbox: stops if needed, unpins the namespaces, removes the
    /// files and the record, releases the name. A missing sandbox is success.
    pub async fn remove(&self, id: &str) -> Result<(), Error> {
        self.remove_with(id, |_| async { Ok(()) }).await
    }

    /// RemovePodSandbox with a hook that stops and removes the containers
    /// first.
    pub async fn remove_with<F, Fut>(&self, id: &str, remove_containers: F) -> Result<(), Error>
    where
        F: FnOnce(Arc<Sandbox>) -> Fut,
        Fut: Future<Output = Result<(), BoxError>>,
    {
        let sandbox = match self.store.get(id) {
            Ok(sandbox) => sandbox,
            Err(Error::NotFound { .. }) => return Ok(()),
            Err(err) => return Err(err),
        };
        let _op = sandbox.op.write().await;
        if self.store.get(sandbox.id()).is_err() {
            // Removed while we waited for the lock.
            return Ok(());
        }
        remove_containers(sandbox.clone())
            .await
            .map_err(|source| Error::Containers {
                id: sandbox.id().to_string(),
                source,
            })?;
        self.stop_locked(&sandbox).await?;
        let id = sandbox.id();
        self.unpin_all(id)?;
        remove_dir(&sandbox.spec().files.dir)?;
        remove_dir(&self.record_dir(id))?;
        self.store.remove(id);
        self.store
            .release(&sandbox.spec().metadata.reserved_name(), id);
        Ok(())
    }

    /// Reloads records; tears down half-created sandboxes and anything in
    /// the run dirs that has no record.
    async fn recover(&self) {
        let records_dir = self.opts.root.join("sandboxes");
        let mut known = HashSet::new();
        let mounted: HashSet<PathBuf> = ns::mounts_under(&self.opts.runroot).into_iter().collect();
        let mut loopbacks = Vec::new();
        for id in dir_names(&records_dir) {
            let path = records_dir.join(&id).join(RECORD_FILE);
            if !path.exists() {
                // Killed before the first record write: nothing but dirs.
                self.teardown_orphan(&id).await;
                continue;
            }
            let record = match Record::load(&path) {
                Ok(record) if record.id == id => record,
                Ok(record) => {
                    tracing::error!(%id, record_id = %record.id, "sandbox record id does not match its directory; ignored");
                    known.insert(id);
                    continue;
                }
                Err(err) => {
                    tracing::error!(%id, error = %err, "unreadable sandbox record; left on disk");
                    known.insert(id);
                    continue;
                }
            };
            if record.status.state == State::Creating {
                tracing::info!(%id, "cleaning up sandbox left half-created by a previous crius");
                self.teardown_record(&record).await;
                continue;
            }
            let sandbox = Arc::new(Sandbox::new(
                id.clone(),
                record.spec.clone(),
                record.status.clone(),
                path,
            ));
            if let Err(err) = self
                .store
                .reserve(&record.spec.metadata.reserved_name(), &id)
            {
                tracing::warn!(%id, error = %err, "duplicate sandbox name in records");
            }
            let infra_dead = record.status.infra.is_some_and(|i| !i.is_alive());
            let pin_lost = [&record.spec.netns, &record.spec.ipcns, &record.spec.utsns]
                .into_iter()
                .flatten()
                .any(|p| !mounted.contains(p));
            if record.status.state == State::Ready && (infra_dead || pin_lost) {
                tracing::warn!(%id, infra_dead, pin_lost, "sandbox lost its namespaces; marked not ready");
                if let Err(err) = sandbox.update(|s| s.state = State::NotReady).await {
                    tracing::warn!(%id, error = %err, "failed to persist sandbox state");
                }
            } else if record.status.state == State::Ready
                && let Some(netns) = &record.spec.netns
            {
                // A pod made by a crius that did not bring lo up itself (or
                // whose lo was set down since) gets it back.
                loopbacks.push((id.clone(), netns.clone()));
            }
            known.insert(id);
            self.store.insert(sandbox);
        }
        ensure_loopbacks(loopbacks).await;
        let mut orphans: Vec<String> = dir_names(&self.opts.runroot.join("sandboxes"));
        for kind in PINNABLE {
            orphans.extend(dir_names(&self.ns_dir().join(kind)));
        }
        orphans.sort();
        orphans.dedup();
        for id in orphans.into_iter().filter(|id| !known.contains(id)) {
            tracing::info!(%id, "cleaning up leftovers of an unrecorded sandbox");
            self.teardown_orphan(&id).await;
        }
    }

    /// Everything a half-created sandbox may have: as the undo list would.
    async fn teardown_record(&self, record: &Record) {
        let (id, spec) = (record.id.as_str(), &record.spec);
        let mut steps = vec![Undo::RemoveDir(self.record_dir(id))];
        steps.push(Undo::RemoveDir(spec.files.dir.clone()));
        steps.push(Undo::Unpin);
        steps.push(Undo::KillInfra);
        if let Some(shm) = &spec.files.shm {
            steps.push(Undo::UnmountShm(shm.clone()));
        }
        if let Some(network) = &record.status.cni_network {
            // The cached config is used when ADD got that far; the current
            // one otherwise, as libcni does.
            let list = cni::load_network(&self.opts.cni_config_dir)
                .ok()
                .filter(|l| &l.name == network);
            steps.push(match list {
                Some(list) => Undo::CniDel(Box::new(list)),
                None => Undo::CniDelCached(network.clone()),
            });
        }
        if let Some(infra) = record.status.infra
            && let Err(err) = infra.kill().await
        {
            tracing::warn!(%id, %err, "failed to kill infra process");
        }
        self.rollback(id, spec, steps).await;
    }

    /// Leftovers without a record: infra process, shm, pins, run dir, and a
    /// CNI attachment found in the cache.
    async fn teardown_orphan(&self, id: &str) {
        if let Err(err) = kill_infra(id, None).await {
            tracing::warn!(%id, error = %err, "failed to kill infra process");
        }
        let run_dir = self.run_dir(id);
        let cache_suffix = format!("-{id}-{}", cni::IFNAME);
        for file in dir_names(&self.cni.cache_dir().join("results")) {
            if let Some(network) = file.strip_suffix(&cache_suffix) {
                let att = Attachment {
                    container_id: id.to_string(),
                    netns: ns::pin_path(&self.ns_dir(), "net", id),
                    args: Vec::new(),
                    capability_args: Map::new(),
                };
                if let Err(err) = self.cni.del(Some(network), None, &att).await {
                    tracing::warn!(%id, %err, "CNI DEL from cache failed");
                }
            }
        }
        for result in [
            unmount_shm(id, &run_dir.join("shm")),
            self.unpin_all(id),
            remove_dir(&run_dir),
            remove_dir(&self.record_dir(id)),
        ] {
            if let Err(err) = result {
                tracing::warn!(%id, error = %crate_message(&err), "cleanup step failed");
            }
        }
    }

    fn spec_from_config(
        &self,
        id: &str,
        config: &PodSandboxConfig,
        runtime_handler: &str,
    ) -> Result<Spec, Error> {
        let invalid = |m: String| Error::InvalidConfig(m);
        let meta = config
            .metadata
            .as_ref()
            .ok_or_else(|| invalid("metadata is missing".into()))?;
        for (what, value) in [
            ("metadata.name", &meta.name),
            ("metadata.namespace", &meta.namespace),
            ("metadata.uid", &meta.uid),
        ] {
            validate_name(what, value)?;
        }
        let handler = if runtime_handler.is_empty() {
            self.opts
                .runtime_handlers
                .first()
                .cloned()
                .unwrap_or_default()
        } else if self
            .opts
            .runtime_handlers
            .iter()
            .any(|h| h == runtime_handler)
        {
            runtime_handler.to_string()
        } else {
            return Err(Error::UnknownHandler {
                handler: runtime_handler.to_string(),
                configured: self.opts.runtime_handlers.clone(),
            });
        };
        let linux = config.linux.clone().unwrap_or_default();
        let options = linux
            .security_context
            .as_ref()
            .and_then(|s| s.namespace_options.clone())
            .unwrap_or_default();
        let mode = |what: &str, m: i32| {
            NsMode::from_cri(m).ok_or_else(|| invalid(format!("unknown {what} namespace mode {m}")))
        };
        let namespaces = Namespaces {
            network: mode("network", options.network)?,
            pid: mode("pid", options.pid)?,
            ipc: mode("ipc", options.ipc)?,
            target_id: options.target_id.clone(),
        };
        for (what, m) in [("network", namespaces.network), ("ipc", namespaces.ipc)] {
            if !matches!(m, NsMode::Pod | NsMode::Node) {
                return Err(invalid(format!(
                    "{what} namespace mode must be POD or NODE"
                )));
            }
        }
        let host_network = namespaces.network == NsMode::Node;
        let host_ipc = namespaces.ipc == NsMode::Node;

        let hostname = if config.hostname.is_empty() {
            meta.name.chars().take(63).collect()
        } else {
            config.hostname.clone()
        };
        validate_hostname(&hostname)?;
        if !config.log_directory.is_empty() {
            let dir = Path::new(&config.log_directory);
            if !dir.is_absolute() || dir.components().any(|c| c.as_os_str() == "..") {
                return Err(invalid(format!(
                    "log_directory {:?} must be an absolute path without \"..\"",
                    config.log_directory
                )));
            }
        }
        let mut port_mappings = Vec::new();
        for pm in &config.port_mappings {
            let protocol = match crius_proto::Protocol::try_from(pm.protocol) {
                Ok(crius_proto::Protocol::Tcp) => "tcp",
                Ok(crius_proto::Protocol::Udp) => "udp",
                Ok(crius_proto::Protocol::Sctp) => "sctp",
                Err(_) => return Err(invalid(format!("unknown protocol {}", pm.protocol))),
            };
            let port = |what, p: i32, zero_ok| {
                u16::try_from(p)
                    .ok()
                    .filter(|p| zero_ok || *p != 0)
                    .ok_or_else(|| invalid(format!("invalid {what} {p}")))
            };
            port_mappings.push(PortMapping {
                protocol: protocol.into(),
                container_port: port("container_port", pm.container_port, false)?,
                host_port: port("host_port", pm.host_port, true)?,
                host_ip: pm.host_ip.clone(),
            });
        }
        let dns = config
            .dns_config
            .as_ref()
            .map(|d| Dns {
                servers: d.servers.clone(),
                searches: d.searches.clone(),
                options: d.options.clone(),
            })
            .unwrap_or_default();
        for server in &dns.servers {
            server
                .parse::<std::net::IpAddr>()
                .map_err(|_| invalid(format!("DNS server {server:?} is not an IP address")))?;
        }
        for word in dns.searches.iter().chain(&dns.options) {
            if word.is_empty() || word.contains(char::is_whitespace) {
                return Err(invalid(format!("invalid DNS search or option {word:?}")));
            }
        }
        let mut sysctls = BTreeMap::new();
        for (key, value) in &linux.sysctls {
            let key = key.replace('/', ".");
            check_sysctl(&key, value, host_network, host_ipc)?;
            sysctls.insert(key, value.clone());
        }
        // Validated here so that a bad annotation fails before any side
        // effect.
        bandwidth(&config.annotations)?;

        let ns_dir = self.ns_dir();
        let pin = |wanted: bool, kind| wanted.then(|| ns::pin_path(&ns_dir, kind, id));
        Ok(Spec {
            metadata: Metadata {
                name: meta.name.clone(),
                uid: meta.uid.clone(),
                namespace: meta.namespace.clone(),
                attempt: meta.attempt,
            },
            hostname,
            log_directory: config.log_directory.clone(),
            labels: config.labels.clone(),
            annotations: config.annotations.clone(),
            port_mappings,
            cgroup_parent: linux.cgroup_parent.clone(),
            sysctls,
            runtime_handler: handler,
            dns,
            created_at: now_ns(),
            netns: pin(!host_network, "net"),
            ipcns: pin(!host_ipc, "ipc"),
            // hostNetwork pods share the node's UTS namespace, as with CRI-O.
            utsns: pin(!host_network, "uts"),
            files: PodFiles::new(self.run_dir(id), !host_ipc),
            namespaces,
        })
    }
}

/// Brings `lo` up in the pinned network namespaces of the pods found
/// Ready at recovery, all from one thread; a failure is logged, the pod
/// kept as it is.
async fn ensure_loopbacks(pods: Vec<(String, PathBuf)>) {
    if pods.is_empty() {
        return;
    }
    let paths = pods.iter().map(|(_, netns)| netns.clone()).collect();
    let results =
        match tokio::task::spawn_blocking(move || crate::loopback::up_in_each(paths)).await {
            Ok(results) => results,
            Err(err) => {
                tracing::warn!(%err, "lo task failed");
                return;
            }
        };
    for ((id, netns), result) in pods.iter().zip(results) {
        match result {
            Ok(true) => tracing::info!(%id, ?netns, "brought up lo of a recovered pod"),
            Ok(false) => {}
            Err(err) => {
                tracing::warn!(%id, ?netns, error = %crate_message(&err), "failed to bring up lo of a recovered pod");
            }
        }
    }
}

fn crate_message(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// `CNI_ARGS` and `runtimeConfig` for a sandbox.
fn attachment(id: &str, spec: &Spec) -> Result<Attachment, Error> {
    let meta = &spec.metadata;
    let mut caps = Map::new();
    let ports: Vec<Value> = spec
        .port_mappings
        .iter()
        .filter(|p| p.host_port != 0)
        .map(|p| {
            json!({
                "hostPort": p.host_port,
                "containerPort": p.container_port,
                "protocol": p.protocol,
                "hostIP": p.host_ip,
            })
        })
        .collect();
    if !ports.is_empty() {
        caps.insert("portMappings".into(), Value::Array(ports));
    }
    if let Some(bw) = bandwidth(&spec.annotations)? {
        caps.insert("bandwidth".into(), bw);
    }
    Ok(Attachment {
        container_id: id.to_string(),
        netns: spec
            .netns
            .clone()
            .unwrap_or_else(|| PathBuf::from("/nonexistent")),
        args: vec![
            ("IgnoreUnknown".into(), "1".into()),
            ("K8S_POD_NAMESPACE".into(), meta.namespace.clone()),
            ("K8S_POD_NAME".into(), meta.name.clone()),
            ("K8S_POD_INFRA_CONTAINER_ID".into(), id.to_string()),
            ("K8S_POD_UID".into(), meta.uid.clone()),
        ],
        capability_args: caps,
    })
}

const INGRESS_BANDWIDTH: &str = "kubernetes.io/ingress-bandwidth";
const EGRESS_BANDWIDTH: &str = "kubernetes.io/egress-bandwidth";

/// The bandwidth capability from the pod annotations: rates in bit/s, burst
/// unlimited (as ocicni and the kubelet's kubenet did).
fn bandwidth(
    annotations: &std::collections::HashMap<String, String>,
) -> Result<Option<Value>, Error> {
    let mut bw = Map::new();
    for (key, rate, burst) in [
        (INGRESS_BANDWIDTH, "ingressRate", "ingressBurst"),
        (EGRESS_BANDWIDTH, "egressRate", "egressBurst"),
    ] {
        if let Some(text) = annotations.get(key) {
            let bits = parse_quantity(text)
                .filter(|b| *b > 0)
                .ok_or_else(|| Error::InvalidConfig(format!("invalid {key} {text:?}")))?;
            bw.insert(rate.into(), json!(bits));
            bw.insert(burst.into(), json!(i32::MAX));
        }
    }
    Ok((!bw.is_empty()).then_some(Value::Object(bw)))
}

/// A Kubernetes quantity (`10M`, `1Gi`, `500k`, `1.5M`) as an integer.
fn parse_quantity(text: &str) -> Option<u64> {
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, suffix) = text.split_at(split);
    let number: f64 = number.parse().ok()?;
    let multiplier: f64 = match suffix {
        "" => 1.0,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "E" => 1e18,
        "Ki" => 1024.0,
        "Mi" => 1024f64.powi(2),
        "Gi" => 1024f64.powi(3),
        "Ti" => 1024f64.powi(4),
        "Pi" => 1024f64.powi(5),
        "Ei" => 1024f64.powi(6),
        _ => return None,
    };
    let value = number * multiplier;
    (value.is_finite() && value >= 0.0 && value < u64::MAX as f64).then_some(value as u64)
}

fn validate_name(what: &str, value: &str) -> Result<(), Error> {
    if value.is_empty() {
        return Err(Error::InvalidConfig(format!("{what} is empty")));
    }
    // `;` and `=` would let a name add or override CNI_ARGS pairs
    // (`K=V;K=V`, e.g. "web;IP=10.88.0.99" picks a static address); Kubernetes
    // names never contain them.
    if value.len() > 253
        || value
            .chars()
            .any(|c| c.is_control() || c.is_whitespace() || matches!(c, '/' | '_' | ';' | '='))
    {
        return Err(Error::InvalidConfig(format!(
            "{what} {value:?} is not a valid name"
        )));
    }
    Ok(())
}

fn validate_hostname(hostname: &str) -> Result<(), Error> {
    let ok = !hostname.is_empty()
        && hostname.len() <= 64
        && hostname
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.');
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidConfig(format!(
            "invalid hostname {hostname:?}"
        )))
    }
}

/// Only namespaced sysctls, and only for namespaces the pod owns: anything
/// else would change the node.
fn check_sysctl(key: &str, value: &str, host_network: bool, host_ipc: bool) -> Result<(), Error> {
    let invalid = |why: &str| Err(Error::InvalidConfig(format!("sysctl {key:?} {why}")));
    if key.is_empty()
        || key.contains("..")
        || !key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
    {
        return invalid("is not a valid sysctl name");
    }
    if value.contains(['\n', '\0']) {
        return invalid("has an invalid value");
    }
    let ipc = key.starts_with("kernel.shm")
        || key.starts_with("kernel.msg")
        || key == "kernel.sem"
        || key.starts_with("fs.mqueue.");
    if key.starts_with("net.") {
        if host_network {
            return invalid("would change the node: the pod uses the host network");
        }
    } else if ipc {
        if host_ipc {
            return invalid("would change the node: the pod uses the host IPC namespace");
        }
    } else {
        return invalid("is not namespaced and would change the node");
    }
    Ok(())
}

async fn kill_infra(id: &str, recorded: Option<Infra>) -> Result<(), Error> {
    let err = |source| Error::Infra {
        id: id.to_string(),
        source,
    };
    if let Some(infra) = recorded {
        infra.kill().await.map_err(err)?;
    }
    for infra in infra::find_by_id(id) {
        infra.kill().await.map_err(err)?;
    }
    Ok(())
}

fn unmount_shm(id: &str, path: &Path) -> Result<(), Error> {
    files::unmount_shm(path).map_err(|source| Error::Shm {
        id: id.to_string(),
        path: path.to_owned(),
        source,
    })
}

/// Removes a sandbox directory, refusing to recurse into a mount that is
/// still there (it would delete what the mount shows).
fn remove_dir(dir: &Path) -> Result<(), Error> {
    if !ns::mounts_under(dir).is_empty() {
        return Err(Error::Io {
            what: "remove (still has mounts)",
            path: dir.to_owned(),
            source: std::io::Error::other("mount points remain under the directory"),
        });
    }
    match std::fs::remove_dir_all(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(Error::Io {
            what: "remove",
            path: dir.to_owned(),
            source,
        }),
    }
}

fn dir_names(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok()?.file_name().into_string().ok())
                .filter(|n| !n.starts_with('.'))
                .collect()
        })
        .unwrap_or_default()
}

/// A 64-hex-digit id from the kernel's random source.
fn new_id() -> Result<String, Error> {
    use std::io::Read as _;
    let mut bytes = [0u8; 32];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .map_err(|source| Error::Io {
            what: "read",
            path: "/dev/urandom".into(),
            source,
        })?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(dir: &Path) -> Options {
        Options {
            root: dir.join("root"),
            runroot: dir.join("run"),
            exe: "/nonexistent/crius".into(),
            cni_config_dir: dir.join("net.d"),
            cni_plugin_dirs: vec![dir.join("bin")],
            cni_cache_dir: dir.join("cache"),
            cni_timeout: Duration::from_secs(5),
            shm_size: 64 << 20,
            runtime_handlers: vec!["runc".into(), "crun".into()],
            host_resolv_conf: "/etc/resolv.conf".into(),
            cleanup_timeout: Duration::from_secs(5),
        }
    }

    fn manager(dir: &Path) -> Sandboxes {
        let opts = options(dir);
        Sandboxes {
            cni: Cni::new(vec![], dir.join("cache"), Duration::from_secs(1)),
            opts,
            store: Store::default(),
            ns_bind_added: false,
        }
    }

    fn config() -> PodSandboxConfig {
        PodSandboxConfig {
            metadata: Some(crius_proto::PodSandboxMetadata {
                name: "web".into(),
                uid: "u-1".into(),
                namespace: "default".into(),
                attempt: 1,
            }),
            ..Default::default()
        }
    }

    #[test]
    fn spec_defaults_and_paths() {
        let dir = tempfile::tempdir().unwrap();
        let m = manager(dir.path());
        let spec = m.spec_from_config("abc", &config(), "").unwrap();
        assert_eq!(spec.metadata.reserved_name(), "web_default_u-1_1");
        assert_eq!(spec.hostname, "web");
        assert_eq!(spec.runtime_handler, "runc");
        assert_eq!(spec.netns, Some(dir.path().join("run/ns/net/abc")));
        assert_eq!(spec.utsns, Some(dir.path().join("run/ns/uts/abc")));
        assert_eq!(
            spec.files.shm,
            Some(dir.path().join("run/sandboxes/abc/shm"))
        );
        assert_eq!(spec.namespaces.pid, NsMode::Pod);
    }

    #[test]
    fn host_network_and_ipc_pin_nothing_of_theirs() {
        let dir = tempfile::tempdir().unwrap();
        let m = manager(dir.path());
        let mut config = config();
        config.linux = Some(crius_proto::LinuxPodSandboxConfig {
            security_context: Some(crius_proto::LinuxSandboxSecurityContext {
                namespace_options: Some(crius_proto::NamespaceOption {
                    network: crius_proto::NamespaceMode::Node as i32,
                    ipc: crius_proto::NamespaceMode::Node as i32,
                    pid: crius_proto::NamespaceMode::Node as i32,
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        });
        let spec = m.spec_from_config("abc", &config, "crun").unwrap();
        assert_eq!((spec.netns, spec.ipcns, spec.utsns), (None, None, None));
        assert_eq!(spec.files.shm, None);
        assert_eq!(spec.runtime_handler, "crun");
    }

    #[test]
    fn names_that_would_inject_cni_args_are_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let m = manager(dir.path());
        for bad in ["web;IP=10.88.0.99", "a=b", "a;b"] {
            for field in ["name", "namespace", "uid"] {
                let mut c = config();
                let md = c.metadata.as_mut().unwrap();
                match field {
                    "name" => md.name = bad.into(),
                    "namespace" => md.namespace = bad.into(),
                    _ => md.uid = bad.into(),
                }
                let err = m.spec_from_config("abc", &c, "").unwrap_err();
                assert_eq!(err.kind(), crius_proto::ErrorKind::InvalidArgument);
                assert!(
                    err.to_string()
                        .contains(&format!("metadata.{field} {bad:?} is not a valid name")),
                    "{err}"
                );
            }
        }
    }

    #[test]
    fn bad_configs_are_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let m = manager(dir.path());
        let err = m.spec_from_config("abc", &config(), "kata").unwrap_err();
        assert_eq!(err.kind(), crius_proto::ErrorKind::InvalidArgument);
        assert!(err.to_string().contains("\"runc\", \"crun\""), "{err}");

        let mut c = config();
        c.metadata.as_mut().unwrap().uid.clear();
        assert!(
            m.spec_from_config("abc", &c, "")
                .unwrap_err()
                .to_string()
                .contains("uid")
        );

        let mut c = config();
        c.hostname = "bad host".into();
        assert!(m.spec_from_config("abc", &c, "").is_err());

        let mut c = config();
        c.log_directory = "relative/logs".into();
        assert!(m.spec_from_config("abc", &c, "").is_err());

        let mut c = config();
        c.dns_config = Some(crius_proto::DnsConfig {
            servers: vec!["not-an-ip".into()],
            ..Default::default()
        });
        assert!(m.spec_from_config("abc", &c, "").is_err());

        let mut c = config();
        c.annotations
            .insert(INGRESS_BANDWIDTH.into(), "lots".into());
        assert!(m.spec_from_config("abc", &c, "").is_err());
    }

    #[test]
    fn only_pod_namespaced_sysctls_pass() {
        check_sysctl("net.ipv4.ip_unprivileged_port_start", "0", false, false).unwrap();
        check_sysctl("kernel.shm_rmid_forced", "1", false, false).unwrap();
        check_sysctl("fs.mqueue.msg_max", "10", false, false).unwrap();
        assert!(check_sysctl("net.ipv4.ip_forward", "1", true, false).is_err());
        assert!(check_sysctl("kernel.msgmax", "1", false, true).is_err());
        assert!(check_sysctl("vm.swappiness", "1", false, false).is_err());
        assert!(check_sysctl("kernel.hostname", "x", false, false).is_err());
        assert!(check_sysctl("net.ipv4.../x", "1", false, false).is_err());
    }

    #[test]
    fn cni_args_and_capabilities() {
        let dir = tempfile::tempdir().unwrap();
        let m = manager(dir.path());
        let mut c = config();
        c.port_mappings = vec![
            crius_proto::PortMapping {
                protocol: crius_proto::Protocol::Udp as i32,
                container_port: 53,
                host_port: 5353,
                host_ip: String::new(),
            },
            crius_proto::PortMapping {
                container_port: 80,
                ..Default::default()
            },
        ];
        c.annotations.insert(INGRESS_BANDWIDTH.into(), "10M".into());
        let spec = m.spec_from_config("abc", &c, "").unwrap();
        let att = attachment("abc", &spec).unwrap();
        let args: Vec<String> = att.args.iter().map(|(k, v)| format!("{k}={v}")).collect();
        assert_eq!(
            args.join(";"),
            "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web;K8S_POD_INFRA_CONTAINER_ID=abc;K8S_POD_UID=u-1"
        );
        assert_eq!(
            att.capability_args["portMappings"],
            json!([{"hostPort": 5353, "containerPort": 53, "protocol": "udp", "hostIP": ""}])
        );
        assert_eq!(
            att.capability_args["bandwidth"],
            json!({"ingressRate": 10_000_000, "ingressBurst": i32::MAX})
        );
    }

    #[test]
    fn quantities() {
        assert_eq!(parse_quantity("10M"), Some(10_000_000));
        assert_eq!(parse_quantity("1Gi"), Some(1 << 30));
        assert_eq!(parse_quantity("1.5k"), Some(1500));
        assert_eq!(parse_quantity("100"), Some(100));
        assert_eq!(parse_quantity("10X"), None);
        assert_eq!(parse_quantity(""), None);
    }

    /// Records on disk as a crius killed at various points leaves them.
    #[tokio::test]
    async fn recovery_keeps_sandboxes_and_cleans_up_half_created_ones() {
        let dir = tempfile::tempdir().unwrap();
        let m = manager(dir.path());
        let mut host = config();
        host.linux = Some(crius_proto::LinuxPodSandboxConfig {
            security_context: Some(crius_proto::LinuxSandboxSecurityContext {
                namespace_options: Some(crius_proto::NamespaceOption {
                    network: crius_proto::NamespaceMode::Node as i32,
                    ipc: crius_proto::NamespaceMode::Node as i32,
                    pid: crius_proto::NamespaceMode::Node as i32,
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        });
        let write = |id: &str, state: State, name: &str| {
            let mut c = host.clone();
            c.metadata.as_mut().unwrap().name = name.into();
            let spec = m.spec_from_config(id, &c, "").unwrap();
            std::fs::create_dir_all(&spec.files.dir).unwrap();
            let record = Record {
                version: crate::RECORD_VERSION,
                id: id.into(),
                spec,
                status: Status {
                    state,
                    ips: Vec::new(),
                    cni_network: None,
                    cni_result: None,
                    infra: None,
                },
            };
            let path = m.record_dir(id).join(RECORD_FILE);
            crate::persist::write_atomic_sync(&path, &serde_json::to_vec(&record).unwrap())
                .unwrap();
        };
        write("ready", State::Ready, "kept");
        write("stopped", State::NotReady, "stopped");
        write("half", State::Creating, "half");
        // Run dir without any record: killed before the first record write.
        std::fs::create_dir_all(m.run_dir("orphan")).unwrap();
        std::fs::create_dir_all(m.record_dir("norecord")).unwrap();
        // A record this crius cannot read stays on disk for a human.
        std::fs::create_dir_all(m.record_dir("future")).unwrap();
        std::fs::write(
            m.record_dir("future").join(RECORD_FILE),
            r#"{"version":99}"#,
        )
        .unwrap();

        m.recover().await;

        let mut ids: Vec<String> = m.list().iter().map(|s| s.id().to_string()).collect();
        ids.sort();
        assert_eq!(ids, ["ready", "stopped"]);
        assert_eq!(m.get("rea").unwrap().status().state, State::Ready);
        assert_eq!(m.get("stopped").unwrap().status().state, State::NotReady);
        for gone in [
            m.record_dir("half"),
            m.run_dir("half"),
            m.run_dir("orphan"),
            m.record_dir("norecord"),
        ] {
            assert!(!gone.exists(), "{gone:?} survived recovery");
        }
        assert!(m.record_dir("future").join(RECORD_FILE).exists());
        // Names of recovered sandboxes stay reserved; a cleaned-up one's is free.
        let err = m.store.reserve("kept_default_u-1_1", "other").unwrap_err();
        assert!(err.to_string().contains("ready"), "{err}");
        m.store.reserve("half_default_u-1_1", "other").unwrap();

        // Remove after recovery deletes every trace.
        m.remove("ready").await.unwrap();
        assert!(!m.record_dir("ready").exists());
        assert!(!m.run_dir("ready").exists());
        assert!(m.get("ready").is_err());
    }

    fn host_config(name: &str) -> PodSandboxConfig {
        let mut c = config();
        c.metadata.as_mut().unwrap().name = name.into();
        c.linux = Some(crius_proto::LinuxPodSandboxConfig {
            security_context: Some(crius_proto::LinuxSandboxSecurityContext {
                namespace_options: Some(crius_proto::NamespaceOption {
                    network: crius_proto::NamespaceMode::Node as i32,
                    ipc: crius_proto::NamespaceMode::Node as i32,
                    pid: crius_proto::NamespaceMode::Node as i32,
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        });
        c
    }

    /// A host-namespace pod needs no root: no pins, no shm, no CNI.
    #[tokio::test]
    async fn racing_stop_and_remove_leave_nothing_and_free_the_name() {
        let dir = tempfile::tempdir().unwrap();
        let m = manager(dir.path());
        let sandbox = m.run(&host_config("web"), "").await.unwrap();
        let id = sandbox.id().to_string();
        assert_eq!(sandbox.status().state, State::Ready);
        assert!(m.record_dir(&id).join(RECORD_FILE).exists());
        let hostname = std::fs::read_to_string(&sandbox.spec().files.hostname).unwrap();
        assert_eq!(hostname, "web\n");
        let (removed, stopped) = tokio::join!(m.remove(&id), m.stop(&id));
        removed.unwrap();
        stopped.unwrap();
        assert!(!m.record_dir(&id).exists(), "the record survived");
        assert!(!m.run_dir(&id).exists());
        // The name is free again.
        m.run(&host_config("web"), "").await.unwrap();
    }

    #[tokio::test]
    async fn stop_and_remove_of_unknown_ids_succeed() {
        let dir = tempfile::tempdir().unwrap();
        let m = manager(dir.path());
        m.stop("nope").await.unwrap();
        m.remove("nope").await.unwrap();
        assert!(matches!(m.get("nope"), Err(Error::NotFound { .. })));
    }
}
