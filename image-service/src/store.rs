//! The on-disk image store under one directory:
//!
//! ```text
//! records/<hex>.json    one image record per config digest
//! layers/<hex>.json     one layer record per diff id
//! blobs/sha256/<hex>    manifests, indexes and configs
//! l/<16 hex>/           unpacked layers, ready as overlay lower dirs
//! tmp/                  staging; anything here after a crash is garbage
//! records/*.corrupt     records that could not be read, set aside on start
//! ```
//!
//! Every record is written atomically (temp file, fsync, rename, fsync
//! dir). A layer dir is renamed into `l/` only once complete, and its record
//! is written after that, so on start an `l/` dir without a record, a record
//! without its dir, and everything in `tmp/` are leftovers of a crash.
//!
//! The in-memory index is one `RwLock`; it is held for map updates and the
//! small record writes only, never across network I/O or unpacking.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::reference::is_hex;

const RECORD_VERSION: u32 = 1;
/// Layer dir names are this many hex digits of the diff id: short enough
/// for ~100 lower dirs in one page of overlay mount options.
const SHORT_ID_LEN: usize = 16;

/// What a container needs from an image's config.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuntimeConfig {
    pub user: String,
    pub env: Vec<String>,
    pub entrypoint: Vec<String>,
    pub cmd: Vec<String>,
    pub working_dir: String,
    pub stop_signal: String,
    pub labels: BTreeMap<String, String>,
    pub exposed_ports: Vec<String>,
    pub volumes: Vec<String>,
}

/// One image, keyed by its id (the config digest).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageRecord {
    pub version: u32,
    /// `sha256:<hex>` of the config blob.
    pub id: String,
    pub repo_tags: Vec<String>,
    pub repo_digests: Vec<String>,
    /// Compressed size of the layers plus config and manifest, as a registry
    /// reports it (what `crictl images` shows for CRI-O and containerd).
    pub size: u64,
    /// Diff ids, lowest layer first.
    pub layers: Vec<String>,
    /// Digest of the platform manifest.
    pub manifest_digest: String,
    /// Digest of what the pulled reference pointed at (index or manifest).
    pub top_digest: String,
    pub config: RuntimeConfig,
    pub annotations: BTreeMap<String, String>,
    pub os: String,
    pub architecture: String,
    /// Unix nanoseconds of the first pull.
    pub pulled_at: i64,
}

/// One unpacked layer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayerRecord {
    pub version: u32,
    pub diff_id: String,
    /// Directory name under `l/`.
    pub short: String,
    /// Size of the uncompressed tar stream.
    pub size: u64,
    pub compressed_digest: String,
    pub compressed_size: u64,
}

#[derive(Default)]
struct State {
    images: HashMap<String, Arc<ImageRecord>>,
    layers: HashMap<String, LayerRecord>,
    /// Diff ids that running pulls will reference: GC must keep them.
    inflight: HashMap<String, usize>,
    /// Image id -> containers using it (registered by the container code).
    users: HashMap<String, HashSet<String>>,
}

pub struct Store {
    dir: PathBuf,
    /// Never held across a disk write: ListImages and image lookups wait
    /// for no fsync.
    state: RwLock<State>,
    /// Orders the changes to image records (commit, untag, remove): held
    /// from reading the current records to publishing the new ones, across
    /// their durable write.
    records: Mutex<()>,
    /// How a record reaches the disk; a seam for tests.
    persist: fn(&Path, &[u8]) -> Result<()>,
    layer_locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    staging_seq: AtomicU64,
    /// Bumped by every change to images or layers (usage caching).
    generation: AtomicU64,
}

/// Names what outside the store uses image `id` (a container), if anything.
pub type UsedBy = dyn Fn(&str) -> Option<String> + Send + Sync;

/// Keeps layers referenced by a running pull out of GC until dropped.
pub struct InflightGuard<'a> {
    store: &'a Store,
    diff_ids: Vec<String>,
}

impl Drop for InflightGuard<'_> {
    fn drop(&mut self) {
        let mut state = self.store.write();
        for id in &self.diff_ids {
            if let Some(n) = state.inflight.get_mut(id) {
                *n -= 1;
                if *n == 0 {
                    state.inflight.remove(id);
                }
            }
        }
    }
}

fn hex_of(digest: &str) -> &str {
    digest.strip_prefix("sha256:").unwrap_or(digest)
}

impl Store {
    /// Opens (creating) the store at `dir`, removes crash leftovers and
    /// loads every record.
    pub fn open(dir: &Path) -> Result<Store> {
        for sub in ["records", "layers", "blobs/sha256", "l", "tmp"] {
            let path = dir.join(sub);
            std::fs::create_dir_all(&path).map_err(|e| Error::io("create", &path, e))?;
        }
        let tmp = dir.join("tmp");
        for entry in read_dir(&tmp)? {
            tracing::info!(path = ?entry, "removing leftover of an interrupted pull");
            remove_any(&entry)?;
        }
        let mut state = State::default();
        for path in read_dir(&dir.join("layers"))? {
            let Some(layer) = load_json::<LayerRecord>(&path)? else {
                continue;
            };
            if !dir.join("l").join(&layer.short).is_dir() {
                tracing::warn!(diff_id = %layer.diff_id, "layer dir missing; dropping its record");
                remove_any(&path)?;
                continue;
            }
            state.layers.insert(layer.diff_id.clone(), layer);
        }
        let known: HashSet<&str> = state.layers.values().map(|l| l.short.as_str()).collect();
        for path in read_dir(&dir.join("l"))? {
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            if !known.contains(name) {
                tracing::info!(?path, "removing layer dir of an interrupted pull");
                remove_any(&path)?;
            }
        }
        for path in read_dir(&dir.join("records"))? {
            let Some(image) = load_json::<ImageRecord>(&path)? else {
                continue;
            };
            if let Some(missing) = image.layers.iter().find(|l| !state.layers.contains_key(*l)) {
                tracing::warn!(id = %image.id, layer = %missing, "image layer missing; dropping the image");
                remove_any(&path)?;
                continue;
            }
            state.images.insert(image.id.clone(), Arc::new(image));
        }
        // Blobs of images that were never recorded (a crash between the
        // blob writes and the record) and half-written temp files.
        let wanted: HashSet<String> = state
            .images
            .values()
            .flat_map(|i| [&i.id, &i.manifest_digest, &i.top_digest])
            .map(|d| hex_of(d).to_owned())
            .collect();
        for path in read_dir(&dir.join("blobs/sha256"))? {
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            if !wanted.contains(name) {
                remove_any(&path)?;
            }
        }
        tracing::info!(
            images = state.images.len(),
            layers = state.layers.len(),
            ?dir,
            "image store loaded"
        );
        Ok(Store {
            dir: dir.to_owned(),
            state: RwLock::new(state),
            records: Mutex::new(()),
            persist: write_atomic,
            layer_locks: Mutex::new(HashMap::new()),
            staging_seq: AtomicU64::new(0),
            generation: AtomicU64::new(0),
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Changes whenever images or layers are added or removed.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Relaxed)
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, State> {
        self.generation.fetch_add(1, Ordering::Relaxed);
        self.state.write().unwrap_or_else(|e| e.into_inner())
    }

    pub fn images(&self) -> Vec<Arc<ImageRecord>> {
        let mut all: Vec<_> = self.read().images.values().cloned().collect();
        all.sort_by(|a, b| a.pulled_at.cmp(&b.pulled_at).then(a.id.cmp(&b.id)));
        all
    }

    pub fn by_id(&self, id: &str) -> Option<Arc<ImageRecord>> {
        let key = if id.starts_with("sha256:") {
            id.to_owned()
        } else {
            format!("sha256:{id}")
        };
        self.read().images.get(&key).cloned()
    }

    /// The image whose id starts with `prefix` (with or without `sha256:`),
    /// if exactly one does.
    pub fn by_id_prefix(&self, prefix: &str) -> Option<Arc<ImageRecord>> {
        let prefix = hex_of(prefix);
        if prefix.is_empty() || !is_hex(prefix) {
            return None;
        }
        let state = self.read();
        let mut found = state
            .images
            .values()
            .filter(|i| hex_of(&i.id).starts_with(prefix));
        let first = found.next()?;
        found.next().is_none().then(|| first.clone())
    }

    /// The image tagged `name:tag` or with repo digest `name@digest`.
    pub fn by_name(&self, full: &str) -> Option<Arc<ImageRecord>> {
        self.read()
            .images
            .values()
            .find(|i| {
                i.repo_tags.iter().any(|t| t == full) || i.repo_digests.iter().any(|d| d == full)
            })
            .cloned()
    }

    pub fn layer(&self, diff_id: &str) -> Option<LayerRecord> {
        self.read().layers.get(diff_id).cloned()
    }

    pub fn layer_dir(&self, layer: &LayerRecord) -> PathBuf {
        self.dir.join("l").join(&layer.short)
    }

    /// Serializes work on one layer across concurrent pulls.
    pub fn layer_lock(&self, diff_id: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self.layer_locks.lock().unwrap_or_else(|e| e.into_inner());
        locks.retain(|_, l| Arc::strong_count(l) > 1);
        locks.entry(diff_id.to_owned()).or_default().clone()
    }

    pub fn pin_layers(&self, diff_ids: &[String]) -> InflightGuard<'_> {
        let mut state = self.write();
        for id in diff_ids {
            *state.inflight.entry(id.clone()).or_default() += 1;
        }
        InflightGuard {
            store: self,
            diff_ids: diff_ids.to_vec(),
        }
    }

    /// A fresh empty directory under `tmp/`.
    pub fn staging_dir(&self) -> Result<PathBuf> {
        let n = self.staging_seq.fetch_add(1, Ordering::Relaxed);
        let path = self
            .dir
            .join("tmp")
            .join(format!("{}-{n}", std::process::id()));
        std::fs::create_dir(&path).map_err(|e| Error::io("create staging dir", &path, e))?;
        Ok(path)
    }

    /// Moves a complete layer from `staging` into `l/` and records it.
    pub fn commit_layer(
        &self,
        staging: &Path,
        diff_id: &str,
        size: u64,
        compressed_digest: &str,
        compressed_size: u64,
    ) -> Result<LayerRecord> {
        let hex = hex_of(diff_id);
        let short = hex[..SHORT_ID_LEN.min(hex.len())].to_owned();
        {
            let state = self.read();
            if let Some(other) = state
                .layers
                .values()
                .find(|l| l.short == short && l.diff_id != diff_id)
            {
                return Err(Error::io(
                    "commit layer",
                    self.dir.join("l").join(&short),
                    std::io::Error::other(format!(
                        "short id collides with layer {}",
                        other.diff_id
                    )),
                ));
            }
        }
        // Unpacked files reach the disk before the record says they exist.
        let dir = std::fs::File::open(staging).map_err(|e| Error::io("open", staging, e))?;
        nix::unistd::syncfs(&dir).map_err(|e| Error::io("sync", staging, e.into()))?;
        let target = self.dir.join("l").join(&short);
        std::fs::rename(staging, &target)
            .map_err(|e| Error::io("rename layer into", &target, e))?;
        sync_dir(&self.dir.join("l"))?;
        let record = LayerRecord {
            version: RECORD_VERSION,
            diff_id: diff_id.to_owned(),
            short,
            size,
            compressed_digest: compressed_digest.to_owned(),
            compressed_size,
        };
        write_json(
            &self.dir.join("layers").join(format!("{hex}.json")),
            &record,
        )?;
        self.write()
            .layers
            .insert(diff_id.to_owned(), record.clone());
        Ok(record)
    }

    pub fn write_blob(&self, digest: &str, data: &[u8]) -> Result<()> {
        let path = self.blob_path(digest);
        if path.exists() {
            return Ok(());
        }
        write_atomic(&path, data)
    }

    pub fn read_blob(&self, digest: &str) -> Result<Vec<u8>> {
        let path = self.blob_path(digest);
        std::fs::read(&path).map_err(|e| Error::io("read blob", &path, e))
    }

    fn blob_path(&self, digest: &str) -> PathBuf {
        self.dir.join("blobs/sha256").join(hex_of(digest))
    }

    /// Records a pulled image: merges into an existing record with the same
    /// id, and moves `tag` away from any other image that had it.
    pub fn commit_image(
        &self,
        mut image: ImageRecord,
        tag: Option<String>,
        repo_digest: String,
    ) -> Result<Arc<ImageRecord>> {
        let _records = self.records_lock();
        let (others, existing) = {
            let state = self.read();
            let others: Vec<Arc<ImageRecord>> = match &tag {
                Some(tag) => state
                    .images
                    .values()
                    .filter(|i| i.id != image.id && i.repo_tags.contains(tag))
                    .cloned()
                    .collect(),
                None => Vec::new(),
            };
            (others, state.images.get(&image.id).cloned())
        };
        if let Some(tag) = &tag {
            for other in others {
                let mut untagged = (*other).clone();
                untagged.repo_tags.retain(|t| t != tag);
                self.write_record(&untagged)?;
                self.write()
                    .images
                    .insert(untagged.id.clone(), Arc::new(untagged));
            }
        }
        if let Some(existing) = existing {
            image.repo_tags = existing.repo_tags.clone();
            image.repo_digests = existing.repo_digests.clone();
            image.pulled_at = existing.pulled_at;
        }
        if let Some(tag) = tag
            && !image.repo_tags.contains(&tag)
        {
            image.repo_tags.push(tag);
        }
        if !image.repo_digests.contains(&repo_digest) {
            image.repo_digests.push(repo_digest);
        }
        image.version = RECORD_VERSION;
        self.write_record(&image)?;
        let image = Arc::new(image);
        self.write().images.insert(image.id.clone(), image.clone());
        Ok(image)
    }

    /// Removes one tag; the image goes too when it was its last tag (see
    /// [`Store::remove_image`] for `used_by`). Returns whether the whole
    /// image was removed.
    pub fn untag(&self, id: &str, tag: &str, used_by: &UsedBy) -> Result<bool> {
        let records = self.records_lock();
        let Some(image) = self.read().images.get(id).cloned() else {
            return Ok(false);
        };
        if image.repo_tags.len() > 1 {
            let mut updated = (*image).clone();
            updated.repo_tags.retain(|t| t != tag);
            self.write_record(&updated)?;
            self.write()
                .images
                .insert(updated.id.clone(), Arc::new(updated));
            return Ok(false);
        }
        self.remove_image_ordered(id, used_by, records)?;
        Ok(true)
    }

    fn records_lock(&self) -> std::sync::MutexGuard<'_, ()> {
        self.records.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Removes an image record and then every layer no image uses, unless
    /// a user holds the image ([`Store::add_user`], for a container being
    /// created) or `used_by` names one (an existing container). Both are
    /// checked under the store lock that `add_user` takes, so a create
    /// either registers before the removal, or finds the image gone.
    pub fn remove_image(&self, id: &str, used_by: &UsedBy) -> Result<()> {
        self.remove_image_ordered(id, used_by, self.records_lock())
    }

    /// [`remove_image`](Self::remove_image) with the records lock held.
    fn remove_image_ordered(
        &self,
        id: &str,
        used_by: &UsedBy,
        records: std::sync::MutexGuard<'_, ()>,
    ) -> Result<()> {
        let doomed = {
            let mut state = self.write();
            let mut users: Vec<String> = state
                .users
                .get(id)
                .map(|u| u.iter().cloned().collect())
                .unwrap_or_default();
            if state.images.contains_key(id) {
                users.extend(used_by(id));
            }
            if !users.is_empty() {
                users.sort();
                return Err(Error::InUse {
                    image: id.to_owned(),
                    users,
                });
            }
            let Some(image) = state.images.remove(id) else {
                return Ok(());
            };
            let path = self.record_path(id);
            if let Err(e) = std::fs::remove_file(&path)
                && e.kind() != std::io::ErrorKind::NotFound
            {
                state.images.insert(id.to_owned(), image);
                return Err(Error::io("remove", &path, e));
            }
            let mut blobs = vec![
                image.manifest_digest.clone(),
                image.id.clone(),
                image.top_digest.clone(),
            ];
            let still_used: HashSet<&String> = state
                .images
                .values()
                .flat_map(|i| [&i.manifest_digest, &i.id, &i.top_digest])
                .collect();
            blobs.retain(|b| !still_used.contains(b));
            for blob in blobs {
                let _ = std::fs::remove_file(self.blob_path(&blob));
            }
            self.unreferenced_layers(&mut state)?
        };
        drop(records);
        // Deleting trees is slow; it happens outside the lock, on dirs that
        // were already renamed into tmp/.
        for dir in doomed {
            if let Err(e) = remove_any(&dir) {
                tracing::warn!(?dir, %e, "failed to delete removed layer");
            }
        }
        Ok(())
    }

    /// Deletes layers no image (and no running pull) references.
    pub fn collect_garbage(&self) -> Result<()> {
        let doomed = {
            let mut state = self.write();
            self.unreferenced_layers(&mut state)?
        };
        for dir in doomed {
            remove_any(&dir)?;
        }
        Ok(())
    }

    fn unreferenced_layers(&self, state: &mut State) -> Result<Vec<PathBuf>> {
        let used: HashSet<&String> = state
            .images
            .values()
            .flat_map(|i| i.layers.iter())
            .chain(state.inflight.keys())
            .collect();
        let unused: Vec<String> = state
            .layers
            .keys()
            .filter(|k| !used.contains(k))
            .cloned()
            .collect();
        let mut doomed = Vec::new();
        for diff_id in unused {
            let Some(layer) = state.layers.remove(&diff_id) else {
                continue;
            };
            let record = self
                .dir
                .join("layers")
                .join(format!("{}.json", hex_of(&diff_id)));
            remove_any(&record)?;
            let from = self.dir.join("l").join(&layer.short);
            let to = self.staging_dir()?;
            std::fs::rename(&from, &to).map_err(|e| Error::io("move removed layer", &from, e))?;
            doomed.push(to);
        }
        Ok(doomed)
    }

    /// Registers `user` as holding image `id`, if the image is there:
    /// `RemoveImage` refuses it until [`Store::remove_user`].
    pub fn add_user(&self, id: &str, user: &str) -> bool {
        let mut state = self.write();
        if !state.images.contains_key(id) {
            return false;
        }
        state
            .users
            .entry(id.to_owned())
            .or_default()
            .insert(user.to_owned());
        true
    }

    pub fn remove_user(&self, id: &str, user: &str) {
        let mut state = self.write();
        if let Some(users) = state.users.get_mut(id) {
            users.remove(user);
            if users.is_empty() {
                state.users.remove(id);
            }
        }
    }

    fn record_path(&self, id: &str) -> PathBuf {
        self.dir
            .join("records")
            .join(format!("{}.json", hex_of(id)))
    }

    fn write_record(&self, image: &ImageRecord) -> Result<()> {
        let path = self.record_path(&image.id);
        let data = serde_json::to_vec_pretty(image).map_err(|source| Error::Record {
            path: path.clone(),
            source,
        })?;
        (self.persist)(&path, &data)
    }
}

fn read_dir(dir: &Path) -> Result<Vec<PathBuf>> {
    let entries = std::fs::read_dir(dir).map_err(|e| Error::io("read dir", dir, e))?;
    let mut out = Vec::new();
    for entry in entries {
        out.push(entry.map_err(|e| Error::io("read dir", dir, e))?.path());
    }
    out.sort();
    Ok(out)
}

fn remove_any(path: &Path) -> Result<()> {
    let result = match std::fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => std::fs::remove_dir_all(path),
        Ok(_) => std::fs::remove_file(path),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    };
    result.map_err(|e| Error::io("remove", path, e))
}

/// `None` (after removing it) for a temp file left by a crashed write.
/// Suffix of a record that could not be read: set aside for the operator,
/// never loaded and never removed by crius.
pub const CORRUPT_SUFFIX: &str = "corrupt";

/// The record at `path`, or `None` for what is not a record. A record that
/// cannot be read or parsed is renamed to `<name>.corrupt` and reported: one
/// bad file must not keep the daemon (and every other image) from starting.
fn load_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<Option<T>> {
    match path.extension().and_then(|e| e.to_str()) {
        Some("json") => {}
        Some(CORRUPT_SUFFIX) => return Ok(None),
        _ => {
            remove_any(path)?;
            return Ok(None);
        }
    }
    let loaded = std::fs::read(path)
        .map_err(|e| Error::io("read", path, e))
        .and_then(|data| {
            serde_json::from_slice::<serde_json::Value>(&data).map_err(|source| Error::Record {
                path: path.to_owned(),
                source,
            })
        })
        .and_then(|value| {
            let version = value.get("version").and_then(serde_json::Value::as_u64);
            if version != Some(u64::from(RECORD_VERSION)) {
                return Err(Error::io(
                    "load",
                    path,
                    std::io::Error::other(format!(
                        "unsupported record version {version:?} (this crius writes {RECORD_VERSION})"
                    )),
                ));
            }
            serde_json::from_value(value).map_err(|source| Error::Record {
                path: path.to_owned(),
                source,
            })
        });
    match loaded {
        Ok(record) => Ok(Some(record)),
        Err(err) => {
            let mut aside = path.as_os_str().to_owned();
            aside.push(".");
            aside.push(CORRUPT_SUFFIX);
            let aside = PathBuf::from(aside);
            match std::fs::rename(path, &aside) {
                Ok(()) => tracing::error!(
                    ?path,
                    ?aside,
                    error = %crate::error_chain(&err),
                    "unreadable image store record set aside; starting without it"
                ),
                Err(rename_err) => tracing::error!(
                    ?path,
                    error = %crate::error_chain(&err),
                    %rename_err,
                    "unreadable image store record could not be set aside; starting without it"
                ),
            }
            Ok(None)
        }
    }
}

fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    let data = serde_json::to_vec_pretty(value).map_err(|source| Error::Record {
        path: path.to_owned(),
        source,
    })?;
    write_atomic(path, &data)
}

/// Temp file, fsync, rename, fsync dir: readers see the old or the new
/// content, never a mix, even across a crash (images outlive reboots).
pub(crate) fn write_atomic(path: &Path, data: &[u8]) -> Result<()> {
    crius_proto::fs::write_atomic(path, data, crius_proto::fs::Durability::Durable)
        .map_err(|e| Error::io("write", path, e))
}

fn sync_dir(dir: &Path) -> Result<()> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::io("sync", dir, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(id: &str, layers: &[&str]) -> ImageRecord {
        ImageRecord {
            version: RECORD_VERSION,
            id: id.into(),
            repo_tags: vec![],
            repo_digests: vec![],
            size: 10,
            layers: layers.iter().map(|s| s.to_string()).collect(),
            manifest_digest: format!("{id}m"),
            top_digest: format!("{id}m"),
            config: RuntimeConfig::default(),
            annotations: BTreeMap::new(),
            os: "linux".into(),
            architecture: "amd64".into(),
            pulled_at: 1,
        }
    }

    fn add_layer(store: &Store, diff_id: &str) -> PathBuf {
        let staging = store.staging_dir().unwrap();
        std::fs::write(staging.join("f"), diff_id).unwrap();
        let layer = store
            .commit_layer(&staging, diff_id, 1, "sha256:c", 1)
            .unwrap();
        store.layer_dir(&layer)
    }

    /// A disk that takes its time: each record write waits for a go on the
    /// channel its test hands out.
    static SLOW_DISK: Mutex<Option<std::sync::mpsc::Receiver<()>>> = Mutex::new(None);

    fn slow_write(path: &Path, data: &[u8]) -> Result<()> {
        if let Some(rx) = SLOW_DISK.lock().unwrap().as_ref() {
            let _ = rx.recv_timeout(std::time::Duration::from_secs(30));
        }
        write_atomic(path, data)
    }

    #[test]
    fn listing_images_does_not_wait_for_a_record_write() {
        let root = tempfile::tempdir().unwrap();
        let mut store = Store::open(root.path()).unwrap();
        store.persist = slow_write;
        let store = Arc::new(store);
        add_layer(&store, L1);
        let (go, rx) = std::sync::mpsc::channel();
        *SLOW_DISK.lock().unwrap() = Some(rx);
        let commit = {
            let store = store.clone();
            std::thread::spawn(move || {
                store.commit_image(
                    image("sha256:a", &[L1]),
                    Some("a:1".into()),
                    "a@sha256:m".into(),
                )
            })
        };
        std::thread::sleep(std::time::Duration::from_millis(50));
        let (tx, listed) = std::sync::mpsc::channel();
        {
            let store = store.clone();
            std::thread::spawn(move || {
                let _ = tx.send(store.images().len());
            });
        }
        let seen = listed.recv_timeout(std::time::Duration::from_secs(5));
        go.send(()).unwrap();
        commit.join().unwrap().unwrap();
        *SLOW_DISK.lock().unwrap() = None;
        assert_eq!(seen, Ok(0), "ListImages waited for the record write");
        assert_eq!(store.images().len(), 1);
        drop(store);
        let reopened = Store::open(root.path()).unwrap();
        assert_eq!(reopened.images()[0].repo_tags, ["a:1"]);
    }

    const L1: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
    const L2: &str = "sha256:2222222222222222222222222222222222222222222222222222222222222222";

    #[test]
    fn images_and_layers_survive_reopen_and_crash_leftovers_go() {
        let root = tempfile::tempdir().unwrap();
        let l1_dir;
        {
            let store = Store::open(root.path()).unwrap();
            l1_dir = add_layer(&store, L1);
            add_layer(&store, L2);
            store
                .commit_image(
                    image("sha256:aa", &[L1]),
                    Some("r/a:1".into()),
                    "r/a@sha256:x".into(),
                )
                .unwrap();
            // a crash: an unrecorded layer dir, staging, a half-written record
            std::fs::create_dir(root.path().join("l/deadbeefdeadbeef")).unwrap();
            store.staging_dir().unwrap();
            std::fs::write(root.path().join("records/.x.json.tmp"), b"{").unwrap();
            std::fs::write(root.path().join("blobs/sha256/.x.1-2.tmp"), b"{").unwrap();
            store.write_blob("sha256:aa", b"config").unwrap();
            store.write_blob("sha256:orphan", b"config").unwrap();
        }
        let store = Store::open(root.path()).unwrap();
        let img = store.by_name("r/a:1").unwrap();
        assert_eq!(img.repo_digests, ["r/a@sha256:x"]);
        assert_eq!(store.by_id("aa").unwrap().id, "sha256:aa");
        assert!(l1_dir.join("f").exists());
        assert!(!root.path().join("l/deadbeefdeadbeef").exists());
        assert_eq!(
            std::fs::read_dir(root.path().join("tmp")).unwrap().count(),
            0
        );
        assert!(!root.path().join("records/.x.json.tmp").exists());
        assert_eq!(
            std::fs::read_dir(root.path().join("blobs/sha256"))
                .unwrap()
                .map(|e| e.unwrap().file_name().into_string().unwrap())
                .collect::<Vec<_>>(),
            ["aa"]
        );
        // L2 is recorded but unused until a GC runs
        assert!(store.layer(L2).is_some());
    }

    #[test]
    fn a_corrupt_record_is_set_aside_and_the_rest_loads() {
        let root = tempfile::tempdir().unwrap();
        {
            let store = Store::open(root.path()).unwrap();
            add_layer(&store, L1);
            for id in ["sha256:aa", "sha256:bb"] {
                store
                    .commit_image(image(id, &[L1]), None, format!("r/a@{id}"))
                    .unwrap();
            }
        }
        let records = root.path().join("records");
        std::fs::write(records.join("bb.json"), b"{").unwrap();
        std::fs::write(records.join("cc.json"), br#"{"version": 99}"#).unwrap();
        for _ in 0..2 {
            let store = Store::open(root.path()).unwrap();
            assert_eq!(store.images().len(), 1);
            assert!(store.by_id("aa").is_some());
            assert!(!records.join("bb.json").exists());
            // kept for the operator across restarts
            assert_eq!(
                std::fs::read(records.join("bb.json.corrupt")).unwrap(),
                b"{"
            );
            assert!(records.join("cc.json.corrupt").exists());
        }
    }

    #[test]
    fn tags_move_and_untag_keeps_other_tags() {
        let root = tempfile::tempdir().unwrap();
        let store = Store::open(root.path()).unwrap();
        add_layer(&store, L1);
        store
            .commit_image(image("sha256:aa", &[L1]), Some("r/a:1".into()), "d1".into())
            .unwrap();
        store
            .commit_image(image("sha256:aa", &[L1]), Some("r/a:2".into()), "d1".into())
            .unwrap();
        store
            .commit_image(image("sha256:bb", &[L1]), Some("r/a:1".into()), "d2".into())
            .unwrap();
        assert_eq!(store.by_id("sha256:aa").unwrap().repo_tags, ["r/a:2"]);
        assert_eq!(store.by_name("r/a:1").unwrap().id, "sha256:bb");
        assert!(store.by_id_prefix("a").is_some());
        assert!(store.by_id_prefix("c").is_none());
        store
            .commit_image(image("sha256:bb", &[L1]), Some("r/b:1".into()), "d2".into())
            .unwrap();
        assert!(!store.untag("sha256:bb", "r/a:1", &|_| None).unwrap());
        assert_eq!(store.by_id("bb").unwrap().repo_tags, ["r/b:1"]);
        assert!(store.untag("sha256:bb", "r/b:1", &|_| None).unwrap());
        assert!(store.by_id("bb").is_none());
        // still used by aa
        assert!(store.layer(L1).is_some());
    }

    #[test]
    fn removal_deletes_unreferenced_layers_but_not_inflight_or_used_ones() {
        let root = tempfile::tempdir().unwrap();
        let store = Store::open(root.path()).unwrap();
        let d1 = add_layer(&store, L1);
        let d2 = add_layer(&store, L2);
        store
            .commit_image(image("sha256:aa", &[L1, L2]), None, "d".into())
            .unwrap();
        store
            .commit_image(image("sha256:bb", &[L2]), None, "e".into())
            .unwrap();
        let guard = store.pin_layers(&[L1.to_string()]);
        store.remove_image("sha256:aa", &|_| None).unwrap();
        assert!(d1.exists(), "pinned by a running pull");
        drop(guard);
        assert!(store.add_user("sha256:bb", "ctr1"));
        assert!(!store.add_user("sha256:gone", "ctr1"));
        let err = store.remove_image("sha256:bb", &|_| None).unwrap_err();
        assert_eq!(err.kind(), crius_proto::ErrorKind::FailedPrecondition);
        store.remove_user("sha256:bb", "ctr1");
        // a container outside the store, named by the caller
        let err = store
            .remove_image("sha256:bb", &|id| {
                (id == "sha256:bb").then(|| "ctr2".into())
            })
            .unwrap_err();
        assert!(err.to_string().contains("ctr2"), "{err}");
        assert!(d2.exists());
        store.remove_image("sha256:bb", &|_| None).unwrap();
        assert!(!d1.exists() && !d2.exists());
        assert!(store.layer(L1).is_none());
        assert_eq!(
            std::fs::read_dir(root.path().join("layers"))
                .unwrap()
                .count(),
            0
        );
        // removing again is fine
        store.remove_image("sha256:bb", &|_| None).unwrap();
        let reopened = Store::open(root.path()).unwrap();
        assert!(reopened.images().is_empty());
    }
}
