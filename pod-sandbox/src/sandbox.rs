//! A sandbox as stored in memory and on disk, and the store of all of them.
//!
//! The record (`<root>/sandboxes/<id>/sandbox.json`) is the immutable spec
//! plus the mutable status; status changes go through [`Sandbox::update`],
//! which writes disk and memory together.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::Error;
use crate::files::{Dns, PodFiles};
use crate::infra::Infra;

/// Bumped when the record format changes incompatibly.
pub const RECORD_VERSION: u32 = 1;

/// `NamespaceMode` of the CRI, for the record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NsMode {
    Pod,
    Container,
    Node,
    Target,
}

impl NsMode {
    pub fn from_cri(mode: i32) -> Option<NsMode> {
        match crius_proto::NamespaceMode::try_from(mode).ok()? {
            crius_proto::NamespaceMode::Pod => Some(NsMode::Pod),
            crius_proto::NamespaceMode::Container => Some(NsMode::Container),
            crius_proto::NamespaceMode::Node => Some(NsMode::Node),
            crius_proto::NamespaceMode::Target => Some(NsMode::Target),
        }
    }

    pub fn to_cri(self) -> i32 {
        (match self {
            NsMode::Pod => crius_proto::NamespaceMode::Pod,
            NsMode::Container => crius_proto::NamespaceMode::Container,
            NsMode::Node => crius_proto::NamespaceMode::Node,
            NsMode::Target => crius_proto::NamespaceMode::Target,
        }) as i32
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Metadata {
    pub name: String,
    pub uid: String,
    pub namespace: String,
    pub attempt: u32,
}

impl Metadata {
    /// The reserved name, as CRI-O and containerd spell it.
    pub fn reserved_name(&self) -> String {
        format!(
            "{}_{}_{}_{}",
            self.name, self.namespace, self.uid, self.attempt
        )
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortMapping {
    /// `tcp`, `udp` or `sctp`, as CNI's portMappings capability wants.
    pub protocol: String,
    pub container_port: u16,
    pub host_port: u16,
    pub host_ip: String,
}

/// Namespace modes of the pod.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Namespaces {
    pub network: NsMode,
    pub pid: NsMode,
    pub ipc: NsMode,
    pub target_id: String,
}

/// What a sandbox was created with; never changes afterwards.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Spec {
    pub metadata: Metadata,
    pub hostname: String,
    pub log_directory: String,
    pub labels: HashMap<String, String>,
    pub annotations: HashMap<String, String>,
    pub port_mappings: Vec<PortMapping>,
    pub namespaces: Namespaces,
    pub cgroup_parent: String,
    pub sysctls: BTreeMap<String, String>,
    pub runtime_handler: String,
    pub dns: Dns,
    /// Nanoseconds since the epoch.
    pub created_at: i64,
    /// Pinned namespaces (`None` where the pod uses the host's or the
    /// container's own).
    pub netns: Option<PathBuf>,
    pub ipcns: Option<PathBuf>,
    pub utsns: Option<PathBuf>,
    pub files: PodFiles,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    /// RunPodSandbox has not finished; seen at start only when crius died
    /// in the middle, and then cleaned up.
    Creating,
    Ready,
    NotReady,
}

/// What changes over a sandbox's life.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Status {
    pub state: State,
    /// Pod IPs, primary first.
    pub ips: Vec<String>,
    /// The CNI network ADD ran (or was attempted) on, while attached.
    pub cni_network: Option<String>,
    pub cni_result: Option<Value>,
    /// PID 1 of the pod PID namespace, when the pod has one.
    pub infra: Option<Infra>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Record {
    pub version: u32,
    pub id: String,
    pub spec: Spec,
    pub status: Status,
}

impl Record {
    pub fn load(path: &Path) -> Result<Record, Error> {
        let bad = |message: String| Error::Record {
            path: path.to_owned(),
            message,
        };
        let bytes = std::fs::read(path).map_err(|e| bad(e.to_string()))?;
        let value: Value = serde_json::from_slice(&bytes).map_err(|e| bad(e.to_string()))?;
        let version = value.get("version").and_then(Value::as_u64);
        if version != Some(u64::from(RECORD_VERSION)) {
            return Err(bad(format!(
                "unsupported record version {version:?} (this crius writes {RECORD_VERSION})"
            )));
        }
        serde_json::from_value(value).map_err(|e| bad(e.to_string()))
    }
}

/// One pod sandbox. The spec is fixed; the status is behind a short-held
/// lock so that List and Status never wait for a slow stop; `op` serializes
/// the slow operations (stop, remove) on this sandbox only, and is held
/// shared by the container creates in it, so that a stop or remove waits
/// for them and sees their containers.
#[derive(Debug)]
pub struct Sandbox {
    id: String,
    spec: Spec,
    record_path: PathBuf,
    status: Mutex<Status>,
    pub(crate) op: Arc<tokio::sync::RwLock<()>>,
}

impl Sandbox {
    pub(crate) fn new(id: String, spec: Spec, status: Status, record_path: PathBuf) -> Sandbox {
        Sandbox {
            id,
            spec,
            record_path,
            status: Mutex::new(status),
            op: Arc::default(),
        }
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    pub fn spec(&self) -> &Spec {
        &self.spec
    }

    /// A snapshot of the status.
    pub fn status(&self) -> Status {
        self.status
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The pod's PID namespace (`/proc/<infra>/ns/pid`), when it has one and
    /// the infra process is alive.
    pub fn pidns(&self) -> Option<PathBuf> {
        self.status()
            .infra
            .filter(Infra::is_alive)
            .map(|i| i.ns_path("pid"))
    }

    pub fn record(&self) -> Record {
        Record {
            version: RECORD_VERSION,
            id: self.id.clone(),
            spec: self.spec.clone(),
            status: self.status(),
        }
    }

    /// Applies `change` to a copy of the status, persists it, then makes it
    /// visible. Callers hold `op`, so updates never race each other.
    pub(crate) async fn update(&self, change: impl FnOnce(&mut Status)) -> Result<(), Error> {
        let mut status = self.status();
        change(&mut status);
        let record = Record {
            version: RECORD_VERSION,
            id: self.id.clone(),
            spec: self.spec.clone(),
            status: status.clone(),
        };
        write_record(&self.record_path, &record).await?;
        *self.status.lock().unwrap_or_else(|e| e.into_inner()) = status;
        Ok(())
    }
}

pub(crate) async fn write_record(path: &Path, record: &Record) -> Result<(), Error> {
    let bytes = serde_json::to_vec_pretty(record).map_err(|e| Error::Record {
        path: path.to_owned(),
        message: e.to_string(),
    })?;
    crate::persist::write_atomic(path, &bytes)
        .await
        .map_err(|source| Error::Io {
            what: "write sandbox record",
            path: path.to_owned(),
            source,
        })
}

/// Sandboxes by id (ordered, so that an id prefix is a range scan) and the
/// name registrar.
#[derive(Debug, Default)]
pub struct Store {
    sandboxes: RwLock<BTreeMap<String, Arc<Sandbox>>>,
    /// Reserved name -> id. A name is reserved before RunPodSandbox does
    /// anything and released when the sandbox is removed or rolled back.
    names: Mutex<HashMap<String, String>>,
}

impl Store {
    pub fn reserve(&self, name: &str, id: &str) -> Result<(), Error> {
        let mut names = self.names.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(existing) = names.get(name) {
            return Err(Error::NameReserved {
                name: name.to_string(),
                id: existing.clone(),
            });
        }
        names.insert(name.to_string(), id.to_string());
        Ok(())
    }

    /// Releases `name` if `id` holds it.
    pub fn release(&self, name: &str, id: &str) {
        let mut names = self.names.lock().unwrap_or_else(|e| e.into_inner());
        if names.get(name).is_some_and(|holder| holder == id) {
            names.remove(name);
        }
    }

    pub fn insert(&self, sandbox: Arc<Sandbox>) {
        self.write().insert(sandbox.id.clone(), sandbox);
    }

    pub fn remove(&self, id: &str) -> Option<Arc<Sandbox>> {
        self.write().remove(id)
    }

    /// By full id or unique prefix.
    pub fn get(&self, id: &str) -> Result<Arc<Sandbox>, Error> {
        if id.is_empty() {
            return Err(Error::InvalidConfig("pod sandbox id is empty".into()));
        }
        let map = self.sandboxes.read().unwrap_or_else(|e| e.into_inner());
        if let Some(sandbox) = map.get(id) {
            return Ok(sandbox.clone());
        }
        let mut matches = map
            .range::<str, _>((std::ops::Bound::Included(id), std::ops::Bound::Unbounded))
            .take_while(|(k, _)| k.starts_with(id));
        match (matches.next(), matches.next()) {
            (Some((_, sandbox)), None) => Ok(sandbox.clone()),
            (None, _) => Err(Error::NotFound { id: id.to_string() }),
            (Some((a, _)), Some((b, _))) => Err(Error::Ambiguous {
                prefix: id.to_string(),
                ids: vec![a.clone(), b.clone()],
            }),
        }
    }

    pub fn list(&self) -> Vec<Arc<Sandbox>> {
        self.sandboxes
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect()
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, BTreeMap<String, Arc<Sandbox>>> {
        self.sandboxes.write().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn spec() -> Spec {
        Spec {
            metadata: Metadata {
                name: "web".into(),
                uid: "u1".into(),
                namespace: "default".into(),
                attempt: 0,
            },
            hostname: "web".into(),
            log_directory: String::new(),
            labels: HashMap::new(),
            annotations: HashMap::new(),
            port_mappings: Vec::new(),
            namespaces: Namespaces {
                network: NsMode::Pod,
                pid: NsMode::Container,
                ipc: NsMode::Pod,
                target_id: String::new(),
            },
            cgroup_parent: String::new(),
            sysctls: BTreeMap::new(),
            runtime_handler: "runc".into(),
            dns: Dns::default(),
            created_at: 1,
            netns: None,
            ipcns: None,
            utsns: None,
            files: PodFiles::new("/run/x".into(), true),
        }
    }

    fn status() -> Status {
        Status {
            state: State::Ready,
            ips: vec!["10.88.0.2".into()],
            cni_network: None,
            cni_result: None,
            infra: None,
        }
    }

    fn sandbox(id: &str) -> Arc<Sandbox> {
        Arc::new(Sandbox::new(
            id.into(),
            spec(),
            status(),
            "/nonexistent".into(),
        ))
    }

    #[test]
    fn ids_resolve_by_unique_prefix() {
        let store = Store::default();
        store.insert(sandbox("abc123"));
        store.insert(sandbox("abd456"));
        store.insert(sandbox("ab"));
        assert_eq!(store.get("abc").unwrap().id(), "abc123");
        assert_eq!(store.get("ab").unwrap().id(), "ab", "an exact id wins");
        assert!(matches!(store.get("abd4567"), Err(Error::NotFound { .. })));
        assert!(matches!(store.get("x"), Err(Error::NotFound { .. })));
        store.remove("ab");
        assert!(matches!(store.get("ab"), Err(Error::Ambiguous { .. })));
    }

    #[test]
    fn a_reserved_name_names_its_holder_until_released() {
        let store = Store::default();
        store.reserve("web_default_u1_0", "id1").unwrap();
        let err = store.reserve("web_default_u1_0", "id2").unwrap_err();
        assert!(err.to_string().contains("id1"), "{err}");
        store.release("web_default_u1_0", "id2");
        assert!(store.reserve("web_default_u1_0", "id2").is_err());
        store.release("web_default_u1_0", "id1");
        store.reserve("web_default_u1_0", "id2").unwrap();
    }

    #[tokio::test]
    async fn update_persists_and_records_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("abc/sandbox.json");
        let sb = Sandbox::new("abc".into(), spec(), status(), path.clone());
        sb.update(|s| s.state = State::NotReady).await.unwrap();
        assert_eq!(sb.status().state, State::NotReady);
        let loaded = Record::load(&path).unwrap();
        assert_eq!(loaded.status, sb.status());
        assert_eq!(loaded.spec, spec());
        std::fs::write(&path, r#"{"version":99}"#).unwrap();
        let err = Record::load(&path).unwrap_err();
        assert!(err.to_string().contains("version"), "{err}");
    }
}
