//! Container records in memory and on disk.
//!
//! Each container is one versioned JSON file, `<root>/containers/<id>/
//! container.json`, written atomically and durably (temp file, fsync,
//! rename, fsync dir) as DESIGN.md asks of every record. The one exception
//! is the incomplete marker written at the start of create
//! ([`Container::update_unsynced`]): it only has to survive a crash of
//! crius, which the page cache does, and the final create record that
//! replaces it is durable. Files in the bundle (config.json) are written
//! the same way without fsync: runc reads them right away and a reboot
//! ends the container. Status changes go through [`Container::update`],
//! which writes the file and memory together so the two never disagree.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use crius_proto::fs::Durability;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

pub const RECORD_VERSION: u32 = 1;
pub const RECORD_FILE: &str = "container.json";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    Created,
    Running,
    Exited,
    Unknown,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Created => "created",
            State::Running => "running",
            State::Exited => "exited",
            State::Unknown => "unknown",
        }
    }

    pub fn to_cri(self) -> crius_proto::ContainerState {
        match self {
            State::Created => crius_proto::ContainerState::ContainerCreated,
            State::Running => crius_proto::ContainerState::ContainerRunning,
            State::Exited => crius_proto::ContainerState::ContainerExited,
            State::Unknown => crius_proto::ContainerState::ContainerUnknown,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MountRecord {
    pub container_path: String,
    pub host_path: String,
    pub readonly: bool,
    pub selinux_relabel: bool,
    pub propagation: i32,
}

impl From<&crius_proto::Mount> for MountRecord {
    fn from(m: &crius_proto::Mount) -> Self {
        MountRecord {
            container_path: m.container_path.clone(),
            host_path: m.host_path.clone(),
            readonly: m.readonly,
            selinux_relabel: m.selinux_relabel,
            propagation: m.propagation,
        }
    }
}

impl From<&MountRecord> for crius_proto::Mount {
    fn from(m: &MountRecord) -> Self {
        crius_proto::Mount {
            container_path: m.container_path.clone(),
            host_path: m.host_path.clone(),
            readonly: m.readonly,
            selinux_relabel: m.selinux_relabel,
            propagation: m.propagation,
            ..Default::default()
        }
    }
}

/// What never changes after create.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContainerMeta {
    pub id: String,
    /// The reserved full name `<name>_<pod>_<namespace>_<uid>_<attempt>`.
    pub name: String,
    pub sandbox_id: String,
    pub metadata_name: String,
    pub attempt: u32,
    /// The image as the request named it (CRI `image.image`).
    pub image: String,
    pub image_annotations: BTreeMap<String, String>,
    pub image_id: String,
    pub image_ref: String,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    pub mounts: Vec<MountRecord>,
    /// The CRI log path (pod log dir + container log path), if any.
    pub log_path: Option<PathBuf>,
    pub tty: bool,
    pub stdin: bool,
    pub stdin_once: bool,
    /// Signal name or number from the image's STOPSIGNAL.
    pub stop_signal: String,
    /// Host file holding the termination message.
    pub termination_log: Option<PathBuf>,
    /// The cgroups path given to runc (relative to each hierarchy for
    /// cgroupfs).
    #[serde(default)]
    pub cgroups_path: String,
    /// Whether the container has a PID namespace of its own, so that every
    /// process of it is gone once PID 1 is. Records from before this field
    /// read false, the cautious answer.
    #[serde(default)]
    pub own_pid_namespace: bool,
    pub created_at: i64,
}

/// The resolved process identity, reported in ContainerStatus.user.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UserRecord {
    pub uid: u32,
    pub gid: u32,
    pub supplemental_groups: Vec<u32>,
}

/// What changes over the container's life.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Status {
    pub state: Option<State>,
    /// False until runc create succeeded: recovery cleans such records up.
    pub create_complete: bool,
    pub pid: i32,
    /// Start time of `pid` in clock ticks since boot, read at create: what
    /// tells the container's process from a later one reusing the pid when
    /// crius signals it directly. 0 if unknown (then runc signals it).
    #[serde(default)]
    pub pid_start_time: u64,
    pub started_at: i64,
    pub finished_at: i64,
    pub exit_code: i32,
    pub reason: String,
    pub message: String,
    /// The resolved user, known once the rootfs is mounted.
    #[serde(default)]
    pub user: Option<UserRecord>,
    /// The resources asked for at create and by UpdateContainerResources
    /// since (ContainerStatus.resources).
    #[serde(default)]
    pub resources: Option<ResourcesRecord>,
}

/// The CRI Linux resources as persisted: the fields runc applies.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ResourcesRecord {
    pub cpu_period: i64,
    pub cpu_quota: i64,
    pub cpu_shares: i64,
    pub memory_limit_in_bytes: i64,
    pub memory_swap_limit_in_bytes: i64,
    pub oom_score_adj: i64,
    pub cpuset_cpus: String,
    pub cpuset_mems: String,
    #[serde(default)]
    pub unified: std::collections::BTreeMap<String, String>,
}

impl From<&crius_proto::LinuxContainerResources> for ResourcesRecord {
    fn from(r: &crius_proto::LinuxContainerResources) -> Self {
        ResourcesRecord {
            cpu_period: r.cpu_period,
            cpu_quota: r.cpu_quota,
            cpu_shares: r.cpu_shares,
            memory_limit_in_bytes: r.memory_limit_in_bytes,
            memory_swap_limit_in_bytes: r.memory_swap_limit_in_bytes,
            oom_score_adj: r.oom_score_adj,
            cpuset_cpus: r.cpuset_cpus.clone(),
            cpuset_mems: r.cpuset_mems.clone(),
            unified: r.unified.clone().into_iter().collect(),
        }
    }
}

impl From<&ResourcesRecord> for crius_proto::LinuxContainerResources {
    fn from(r: &ResourcesRecord) -> Self {
        crius_proto::LinuxContainerResources {
            cpu_period: r.cpu_period,
            cpu_quota: r.cpu_quota,
            cpu_shares: r.cpu_shares,
            memory_limit_in_bytes: r.memory_limit_in_bytes,
            memory_swap_limit_in_bytes: r.memory_swap_limit_in_bytes,
            oom_score_adj: r.oom_score_adj,
            cpuset_cpus: r.cpuset_cpus.clone(),
            cpuset_mems: r.cpuset_mems.clone(),
            unified: r.unified.clone().into_iter().collect(),
            hugepage_limits: Vec::new(),
        }
    }
}

impl ResourcesRecord {
    /// What is in force after `runc update` with `r`: fields `r` leaves
    /// unset (zero, empty) keep their value.
    pub fn merged(&self, r: &crius_proto::LinuxContainerResources) -> ResourcesRecord {
        let pick = |new: i64, old: i64| if new != 0 { new } else { old };
        let pick_s = |new: &str, old: &str| if new.is_empty() { old } else { new }.to_string();
        let mut unified = self.unified.clone();
        unified.extend(r.unified.clone());
        ResourcesRecord {
            cpu_period: pick(r.cpu_period, self.cpu_period),
            cpu_quota: pick(r.cpu_quota, self.cpu_quota),
            cpu_shares: pick(r.cpu_shares, self.cpu_shares),
            memory_limit_in_bytes: pick(r.memory_limit_in_bytes, self.memory_limit_in_bytes),
            memory_swap_limit_in_bytes: pick(
                r.memory_swap_limit_in_bytes,
                self.memory_swap_limit_in_bytes,
            ),
            // oom_score_adj is fixed at create; runc update cannot change it.
            oom_score_adj: self.oom_score_adj,
            cpuset_cpus: pick_s(&r.cpuset_cpus, &self.cpuset_cpus),
            cpuset_mems: pick_s(&r.cpuset_mems, &self.cpuset_mems),
            unified,
        }
    }
}

impl Status {
    pub fn state(&self) -> State {
        self.state.unwrap_or(State::Unknown)
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct Record {
    version: u32,
    meta: ContainerMeta,
    status: Status,
}

/// How a record reaches the disk: [`crius_proto::fs::write_atomic`]; a
/// seam for tests.
pub(crate) type Persist = fn(&Path, &[u8], Durability) -> std::io::Result<()>;

/// One container: immutable metadata, a status behind a short lock, and an
/// operation lock so start/stop/remove of the same container serialize
/// without blocking any other container.
///
/// Status changes are written to disk (with fsync) outside the status
/// lock, so ContainerStatus and ListContainers never wait for a disk: the
/// `persist` lock orders the writes of this one container, and its flag
/// says the record was removed, after which nothing writes it again.
#[derive(Debug)]
pub struct Container {
    pub meta: ContainerMeta,
    status: RwLock<Status>,
    dir: PathBuf,
    pub(crate) op_lock: tokio::sync::Mutex<()>,
    /// Held across read-change-write of the record; true once retired.
    persist_lock: Mutex<bool>,
    persist: Persist,
}

impl Container {
    /// A new container; its record is written by the first [`update`](Self::update).
    pub fn new(meta: ContainerMeta, dir: PathBuf) -> Self {
        Container {
            meta,
            status: RwLock::new(Status::default()),
            dir,
            op_lock: tokio::sync::Mutex::new(()),
            persist_lock: Mutex::new(false),
            persist: crius_proto::fs::write_atomic,
        }
    }

    pub fn id(&self) -> &str {
        &self.meta.id
    }

    pub fn status(&self) -> Status {
        self.status
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Applies `f` to a copy of the status, persists it, then publishes it.
    /// If `f` or the write fails, memory keeps the old status.
    pub fn update<F>(&self, f: F) -> Result<Status>
    where
        F: FnOnce(&mut Status) -> Result<()>,
    {
        self.update_with(Durability::Durable, f)
    }

    /// [`update`](Self::update) without fsync, for the incomplete marker
    /// written at the start of create (see the module docs).
    pub fn update_unsynced<F>(&self, f: F) -> Result<Status>
    where
        F: FnOnce(&mut Status) -> Result<()>,
    {
        self.update_with(Durability::Volatile, f)
    }

    fn update_with<F>(&self, durability: Durability, f: F) -> Result<Status>
    where
        F: FnOnce(&mut Status) -> Result<()>,
    {
        let retired = self.persist_lock.lock().unwrap_or_else(|e| e.into_inner());
        let mut next = self.status();
        f(&mut next)?;
        if !*retired {
            write_record(self.persist, &self.dir, &self.meta, &next, durability)?;
        }
        *self.status.write().unwrap_or_else(|e| e.into_inner()) = next.clone();
        Ok(next)
    }

    /// Removes the record file: from now on status changes stay in memory,
    /// so a late one (an exit being recorded) cannot write it back while
    /// the container's dir is being removed.
    pub fn retire_record(&self) -> Result<()> {
        let mut retired = self.persist_lock.lock().unwrap_or_else(|e| e.into_inner());
        *retired = true;
        let record = self.record_path();
        match std::fs::remove_file(&record) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(Error::io("failed to remove", record, e))
            }
            _ => Ok(()),
        }
    }

    pub fn record_path(&self) -> PathBuf {
        self.dir.join(RECORD_FILE)
    }

    /// Loads a container from its record dir.
    pub fn load(dir: &Path) -> Result<Self> {
        let path = dir.join(RECORD_FILE);
        let data = std::fs::read(&path).map_err(|e| Error::io("failed to read", &path, e))?;
        let rec: Record = serde_json::from_slice(&data).map_err(|e| Error::Json {
            path: path.clone(),
            source: e,
        })?;
        if rec.version != RECORD_VERSION {
            return Err(Error::RecordVersion {
                path,
                version: rec.version,
            });
        }
        Ok(Container {
            meta: rec.meta,
            status: RwLock::new(rec.status),
            dir: dir.to_path_buf(),
            op_lock: tokio::sync::Mutex::new(()),
            persist_lock: Mutex::new(false),
            persist: crius_proto::fs::write_atomic,
        })
    }
}

fn write_record(
    persist: Persist,
    dir: &Path,
    meta: &ContainerMeta,
    status: &Status,
    durability: Durability,
) -> Result<()> {
    let rec = Record {
        version: RECORD_VERSION,
        meta: meta.clone(),
        status: status.clone(),
    };
    let path = dir.join(RECORD_FILE);
    let data = serde_json::to_vec_pretty(&rec).map_err(|e| Error::Json {
        path: path.clone(),
        source: e,
    })?;
    persist(&path, &data, durability).map_err(|e| Error::io("failed to write", &path, e))
}

/// Atomic replace without fsync, for files in the bundle: see the module
/// docs.
pub fn write_replace(path: &Path, data: &[u8]) -> Result<()> {
    crius_proto::fs::write_atomic(path, data, Durability::Volatile)
        .map_err(|e| Error::io("failed to write", path, e))
}

/// Names to ids; a name is reserved before any side effect of create and
/// released last by remove.
#[derive(Debug, Default)]
pub struct NameRegistrar {
    names: Mutex<HashMap<String, String>>,
}

impl NameRegistrar {
    pub fn reserve(&self, name: &str, id: &str) -> Result<()> {
        let mut names = self.names.lock().unwrap_or_else(|e| e.into_inner());
        match names.get(name) {
            Some(owner) if owner != id => Err(Error::NameReserved {
                name: name.into(),
                id: owner.clone(),
            }),
            _ => {
                names.insert(name.into(), id.into());
                Ok(())
            }
        }
    }

    pub fn release(&self, name: &str) {
        self.names
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(name);
    }

    pub fn get(&self, name: &str) -> Option<String> {
        self.names
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
            .cloned()
    }
}

/// All containers by id, with unique-prefix lookup.
#[derive(Debug, Default)]
pub struct ContainerStore {
    containers: RwLock<HashMap<String, Arc<Container>>>,
    pub names: NameRegistrar,
}

impl ContainerStore {
    pub fn insert(&self, c: Arc<Container>) {
        self.containers
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(c.meta.id.clone(), c);
    }

    pub fn remove(&self, id: &str) -> Option<Arc<Container>> {
        self.containers
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(id)
    }

    /// Exact id, else the only id starting with `prefix`.
    pub fn get(&self, prefix: &str) -> Result<Arc<Container>> {
        if prefix.is_empty() {
            return Err(Error::NotFound(prefix.into()));
        }
        let map = self.containers.read().unwrap_or_else(|e| e.into_inner());
        if let Some(c) = map.get(prefix) {
            return Ok(c.clone());
        }
        let mut found = map.iter().filter(|(id, _)| id.starts_with(prefix));
        match (found.next(), found.next()) {
            (Some((_, c)), None) => Ok(c.clone()),
            (Some(_), Some(_)) => Err(Error::AmbiguousPrefix(prefix.into())),
            (None, _) => Err(Error::NotFound(prefix.into())),
        }
    }

    pub fn list(&self) -> Vec<Arc<Container>> {
        self.containers
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(id: &str) -> ContainerMeta {
        ContainerMeta {
            id: id.into(),
            name: format!("n-{id}"),
            sandbox_id: "s".into(),
            metadata_name: "n".into(),
            attempt: 0,
            image: "busybox".into(),
            image_annotations: Default::default(),
            image_id: "sha256:x".into(),
            image_ref: "busybox@sha256:x".into(),
            labels: Default::default(),
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
            created_at: 1,
        }
    }

    #[test]
    fn update_persists_and_reloads() {
        let dir = tempfile::tempdir().unwrap();
        let c = Container::new(meta("abc"), dir.path().to_path_buf());
        c.update(|s| {
            s.state = Some(State::Running);
            s.pid = 42;
            Ok(())
        })
        .unwrap();
        let loaded = Container::load(dir.path()).unwrap();
        assert_eq!(loaded.status().state(), State::Running);
        assert_eq!(loaded.status().pid, 42);
        assert_eq!(loaded.meta, c.meta);
        // a failing update changes nothing
        let err = c.update(|s| {
            s.pid = 7;
            Err(Error::InvalidArgument("no".into()))
        });
        assert!(err.is_err());
        assert_eq!(c.status().pid, 42);
        assert_eq!(Container::load(dir.path()).unwrap().status().pid, 42);
        // no temp file left behind
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from(RECORD_FILE)]);
    }

    /// A disk that takes its time: each write waits for a go on the
    /// channel its test hands out.
    static SLOW_DISK: Mutex<Option<std::sync::mpsc::Receiver<()>>> = Mutex::new(None);

    fn slow_write(path: &Path, data: &[u8], d: Durability) -> std::io::Result<()> {
        if let Some(rx) = SLOW_DISK.lock().unwrap().as_ref() {
            let _ = rx.recv_timeout(std::time::Duration::from_secs(30));
        }
        crius_proto::fs::write_atomic(path, data, d)
    }

    #[test]
    fn status_reads_do_not_wait_for_the_disk() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = Container::new(meta("abc"), dir.path().to_path_buf());
        c.persist = slow_write;
        let c = Arc::new(c);
        let (go, rx) = std::sync::mpsc::channel();
        *SLOW_DISK.lock().unwrap() = Some(rx);
        let writer = {
            let c = c.clone();
            std::thread::spawn(move || {
                c.update(|s| {
                    s.pid = 42;
                    Ok(())
                })
            })
        };
        // The write is stuck on the disk; status and store reads answer
        // (with the last persisted status) meanwhile.
        std::thread::sleep(std::time::Duration::from_millis(50));
        let (tx, answered) = std::sync::mpsc::channel();
        {
            let c = c.clone();
            std::thread::spawn(move || {
                let _ = tx.send(c.status().pid);
            });
        }
        let seen = answered.recv_timeout(std::time::Duration::from_secs(5));
        go.send(()).unwrap();
        writer.join().unwrap().unwrap();
        *SLOW_DISK.lock().unwrap() = None;
        assert_eq!(seen, Ok(0), "status() waited for the record write");
        assert_eq!(c.status().pid, 42);
        assert_eq!(Container::load(dir.path()).unwrap().status().pid, 42);
    }

    #[test]
    fn a_retired_record_is_never_written_again() {
        let dir = tempfile::tempdir().unwrap();
        let c = Container::new(meta("abc"), dir.path().to_path_buf());
        c.update(|s| {
            s.pid = 1;
            Ok(())
        })
        .unwrap();
        c.retire_record().unwrap();
        c.update(|s| {
            s.state = Some(State::Exited);
            Ok(())
        })
        .unwrap();
        assert_eq!(c.status().state(), State::Exited);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn unknown_version_is_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let c = Container::new(meta("abc"), dir.path().to_path_buf());
        c.update(|_| Ok(())).unwrap();
        let p = dir.path().join(RECORD_FILE);
        let mut v: serde_json::Value = serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
        v["version"] = 99.into();
        std::fs::write(&p, serde_json::to_vec(&v).unwrap()).unwrap();
        assert!(matches!(
            Container::load(dir.path()),
            Err(Error::RecordVersion { version: 99, .. })
        ));
    }

    #[test]
    fn prefix_lookup() {
        let dir = tempfile::tempdir().unwrap();
        let store = ContainerStore::default();
        for id in ["abc1", "abc2", "def"] {
            store.insert(Arc::new(Container::new(meta(id), dir.path().into())));
        }
        assert_eq!(store.get("d").unwrap().id(), "def");
        assert_eq!(store.get("abc1").unwrap().id(), "abc1");
        assert!(matches!(store.get("abc"), Err(Error::AmbiguousPrefix(_))));
        assert!(matches!(store.get("x"), Err(Error::NotFound(_))));
        assert!(matches!(store.get(""), Err(Error::NotFound(_))));
    }

    #[test]
    fn registrar() {
        let r = NameRegistrar::default();
        r.reserve("a", "1").unwrap();
        r.reserve("a", "1").unwrap();
        let e = r.reserve("a", "2").unwrap_err();
        assert_eq!(e.kind(), crius_proto::ErrorKind::AlreadyExists);
        r.release("a");
        r.reserve("a", "2").unwrap();
        assert_eq!(r.get("a").as_deref(), Some("2"));
    }

    #[test]
    fn resource_updates_keep_unset_fields() {
        let created = ResourcesRecord::from(&crius_proto::LinuxContainerResources {
            cpu_period: 100_000,
            cpu_quota: 50_000,
            cpu_shares: 512,
            memory_limit_in_bytes: 64 << 20,
            oom_score_adj: 5,
            cpuset_cpus: "0".into(),
            ..Default::default()
        });
        let next = created.merged(&crius_proto::LinuxContainerResources {
            cpu_quota: 20_000,
            memory_limit_in_bytes: 32 << 20,
            oom_score_adj: 900,
            ..Default::default()
        });
        assert_eq!(next.cpu_period, 100_000);
        assert_eq!(next.cpu_quota, 20_000);
        assert_eq!(next.cpu_shares, 512);
        assert_eq!(next.memory_limit_in_bytes, 32 << 20);
        assert_eq!(next.oom_score_adj, 5);
        assert_eq!(next.cpuset_cpus, "0");
        let cri = crius_proto::LinuxContainerResources::from(&next);
        assert_eq!(ResourcesRecord::from(&cri), next);
    }
}
