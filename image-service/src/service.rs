//! `ImageService`: the library API the CRI server and the container code
//! use. Pulls run as their own tasks and never hold the store lock across
//! network I/O. A client that goes away cancels its pull: stalled or
//! abandoned pulls must not keep the node's download slots.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crate::auth::{AuthEntry, AuthFile, Credentials};
use crate::error::{Error, Result};
use crate::pull::{Progress, pull_from};
use crate::reference::{Reference, is_hex};
use crate::registries::Registries;
use crate::store::{ImageRecord, RuntimeConfig, Store};

/// How often a running pull logs its progress.
const PROGRESS_INTERVAL: Duration = Duration::from_secs(5);
/// How long an unchanged store's usage is reused; also the bound on how
/// stale a figure can be when a walk raced with a change.
const USAGE_CACHE_TTL: Duration = Duration::from_secs(10);

#[derive(Debug, Clone)]
pub struct Options {
    /// Where images live; reported as the image filesystem's mount point.
    pub store_dir: PathBuf,
    /// containers-registries.conf(5); a missing file means no rules.
    pub registries_conf: PathBuf,
    /// Registries (`host[:port]` or name prefixes) reached over plain HTTP.
    pub insecure_registries: Vec<String>,
    /// docker config.json credentials used when a request carries none.
    pub auth_file: Option<PathBuf>,
    /// Layer downloads running at once, across all pulls.
    pub max_concurrent_downloads: usize,
    /// Images (by tag, digest or id) reported as pinned.
    pub pinned_images: Vec<String>,
    /// Bounds on each layer's headers, size and entry count.
    pub layer_limits: crate::unpack::LayerLimits,
    /// A blob download that receives nothing for this long fails, and
    /// frees its download slot.
    pub download_progress_timeout: Duration,
}

/// An image ready to become a container's root filesystem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageRootfs {
    pub id: String,
    /// Unpacked layer dirs, lowest first (overlay wants them reversed in
    /// `lowerdir=`, top first).
    pub layer_dirs: Vec<PathBuf>,
    /// Env, entrypoint, cmd, user, working dir, stop signal, labels.
    pub config: RuntimeConfig,
}

impl ImageRootfs {
    /// The `lowerdir=` value for overlayfs: top layer first, `:`-joined.
    /// Layer dirs are `<store>/l/<16 hex>`, so ~100 layers fit in the one
    /// page the kernel allows for mount options.
    pub fn lowerdir(&self) -> String {
        self.layer_dirs
            .iter()
            .rev()
            .map(|d| d.to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join(":")
    }
}

/// Bytes and inodes used by the image store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FsUsage {
    pub bytes: u64,
    pub inodes: u64,
}

pub(crate) struct Inner {
    pub(crate) store: Store,
    pub(crate) registries: Registries,
    pub(crate) auth_file: AuthFile,
    pub(crate) downloads: tokio::sync::Semaphore,
    pub(crate) layer_limits: crate::unpack::LayerLimits,
    pub(crate) download_progress_timeout: Duration,
    pinned: Vec<String>,
    /// Layer bytes received from registries since the service opened, for
    /// the daemon's metrics.
    downloaded: std::sync::atomic::AtomicU64,
    /// (store generation, when, usage): the kubelet asks every few seconds
    /// and a walk of a large store is not free.
    usage_cache: std::sync::Mutex<Option<(u64, Instant, FsUsage)>>,
}

#[derive(Clone)]
pub struct ImageService {
    inner: Arc<Inner>,
}

impl ImageService {
    /// Opens the store (cleaning up after a crash) and reads the registries
    /// and auth files. Blocking: call it at start-up.
    pub fn open(options: Options) -> Result<ImageService> {
        let registries = Registries::load(
            &options.registries_conf,
            options.insecure_registries.clone(),
        )?;
        let auth_file = AuthFile::load(options.auth_file.as_deref())?;
        let store = Store::open(&options.store_dir)?;
        let inner = Inner {
            store,
            registries,
            auth_file,
            downloads: tokio::sync::Semaphore::new(options.max_concurrent_downloads.max(1)),
            layer_limits: options.layer_limits,
            download_progress_timeout: options.download_progress_timeout,
            pinned: options.pinned_images.clone(),
            downloaded: std::sync::atomic::AtomicU64::new(0),
            usage_cache: std::sync::Mutex::new(None),
        };
        let service = ImageService {
            inner: Arc::new(inner),
        };
        service.inner.store.collect_garbage()?;
        Ok(service)
    }

    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    /// Pulls `image` and returns its record. `auth` is the CRI AuthConfig;
    /// without it the auth file is consulted per registry.
    pub async fn pull(
        &self,
        image: &str,
        auth: Option<&crius_proto::AuthConfig>,
    ) -> Result<Arc<ImageRecord>> {
        let reference = Reference::parse(image)?;
        let auth = auth.map(AuthEntry::from_cri);
        let inner = self.inner.clone();
        let image = image.to_owned();
        // A client that goes away (its RPC dropped) cancels the pull, which
        // frees its download slots and cleans up its staging dirs.
        let cancel = tokio_util::sync::CancellationToken::new();
        let _cancel_on_drop = cancel.clone().drop_guard();
        tokio::spawn(async move { pull(&inner, &reference, auth.as_ref(), &cancel).await })
            .await
            .map_err(|source| Error::Task {
                reference: image,
                source,
            })?
    }

    /// Layer bytes received from registries since the service opened,
    /// including those of pulls that failed later.
    pub fn downloaded_bytes(&self) -> u64 {
        self.inner.downloaded.load(Ordering::Relaxed)
    }

    /// The image named by `name` (tag or digest reference), its id, or a
    /// unique id prefix.
    pub fn resolve(&self, name: &str) -> Option<Arc<ImageRecord>> {
        self.resolve_with_tag(name).map(|(image, _)| image)
    }

    /// Also says which tag matched, if the name was a tag.
    fn resolve_with_tag(&self, name: &str) -> Option<(Arc<ImageRecord>, Option<String>)> {
        let store = &self.inner.store;
        let hex = name.strip_prefix("sha256:").unwrap_or(name);
        if hex.len() == 64
            && is_hex(hex)
            && let Some(image) = store.by_id(hex)
        {
            return Some((image, None));
        }
        if let Ok(reference) = Reference::parse(name) {
            for candidate in self.inner.registries.candidates(&reference) {
                if let Some(digest) = &candidate.digest {
                    let full = candidate.digested(digest);
                    if let Some(image) = store.by_name(&full) {
                        return Some((image, None));
                    }
                } else if let Some(tagged) = candidate.tagged()
                    && let Some(image) = store.by_name(&tagged)
                {
                    return Some((image, Some(tagged)));
                }
            }
        }
        store.by_id_prefix(name).map(|image| (image, None))
    }

    pub fn list(&self) -> Vec<Arc<ImageRecord>> {
        self.inner.store.images()
    }

    /// Removes a tag (the image stays while it has other tags) or, by id or
    /// digest, the whole image. A missing image is not an error. An image
    /// held by [`ImageService::hold`] or named by `used_by` (existing
    /// containers) is refused with `FailedPrecondition`.
    pub async fn remove(&self, name: &str, used_by: Arc<crate::store::UsedBy>) -> Result<()> {
        let Some((image, tag)) = self.resolve_with_tag(name) else {
            return Ok(());
        };
        let inner = self.inner.clone();
        let id = image.id.clone();
        tokio::task::spawn_blocking(move || match tag {
            Some(tag) => inner.store.untag(&id, &tag, &*used_by).map(|_| ()),
            None => inner.store.remove_image(&id, &*used_by),
        })
        .await
        .map_err(|source| Error::Task {
            reference: name.to_owned(),
            source,
        })?
    }

    pub fn is_pinned(&self, image: &ImageRecord) -> bool {
        self.inner
            .pinned
            .iter()
            .any(|p| self.resolve(p).is_some_and(|i| i.id == image.id))
    }

    /// Like [`ImageService::rootfs`], and registers `user` as holding the
    /// image so that `RemoveImage` refuses it until
    /// [`ImageService::release`]: the layers cannot go while a container
    /// is being created on them.
    pub fn hold(&self, name: &str, user: &str) -> Option<(Arc<ImageRecord>, ImageRootfs)> {
        let image = self.resolve(name)?;
        if !self.inner.store.add_user(&image.id, user) {
            return None;
        }
        match self.rootfs(&image.id) {
            Some(rootfs) => Some((image, rootfs)),
            None => {
                self.release(&image.id, user);
                None
            }
        }
    }

    pub fn release(&self, id: &str, user: &str) {
        self.inner.store.remove_user(id, user);
    }

    /// What the container code needs: layer dirs (lowest first) and config.
    pub fn rootfs(&self, name: &str) -> Option<ImageRootfs> {
        let image = self.resolve(name)?;
        let store = &self.inner.store;
        let layer_dirs = image
            .layers
            .iter()
            .map(|diff_id| store.layer(diff_id).map(|l| store.layer_dir(&l)))
            .collect::<Option<Vec<_>>>()?;
        Some(ImageRootfs {
            id: image.id.clone(),
            layer_dirs,
            config: image.config.clone(),
        })
    }

    /// Details for `ImageStatus` with `verbose`: the config as pulled and
    /// where each layer is unpacked.
    pub fn inspect(&self, image: &ImageRecord) -> BTreeMap<String, String> {
        let store = &self.inner.store;
        let layers: Vec<serde_json::Value> = image
            .layers
            .iter()
            .map(|diff_id| {
                let layer = store.layer(diff_id);
                serde_json::json!({
                    "diffID": diff_id,
                    "digest": layer.as_ref().map(|l| l.compressed_digest.clone()),
                    "size": layer.as_ref().map(|l| l.compressed_size),
                    "dir": layer.map(|l| store.layer_dir(&l)),
                })
            })
            .collect();
        let config = store
            .read_blob(&image.id)
            .ok()
            .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
            .unwrap_or(serde_json::Value::Null);
        let info = serde_json::json!({
            "id": image.id,
            "manifestDigest": image.manifest_digest,
            "repoDigest": image.top_digest,
            "os": image.os,
            "architecture": image.architecture,
            "layers": layers,
            "config": config,
        });
        BTreeMap::from([("info".to_owned(), info.to_string())])
    }

    /// Bytes (allocated blocks) and inodes under the store dir.
    pub async fn fs_usage(&self) -> Result<FsUsage> {
        let generation = self.inner.store.generation();
        let cached = *self
            .inner
            .usage_cache
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if let Some((g, at, usage)) = cached
            && g == generation
            && at.elapsed() < USAGE_CACHE_TTL
        {
            return Ok(usage);
        }
        let dir = self.inner.store.dir().to_owned();
        let usage = tokio::task::spawn_blocking(move || usage(&dir))
            .await
            .map_err(|source| Error::Task {
                reference: "image filesystem usage".into(),
                source,
            })??;
        *self
            .inner
            .usage_cache
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = Some((generation, Instant::now(), usage));
        Ok(usage)
    }

    pub fn store_dir(&self) -> PathBuf {
        self.inner.store.dir().to_owned()
    }
}

fn usage(dir: &std::path::Path) -> Result<FsUsage> {
    use std::os::unix::fs::MetadataExt;
    let mut seen = std::collections::HashSet::new();
    let mut total = FsUsage {
        bytes: 0,
        inodes: 0,
    };
    let mut stack = vec![dir.to_owned()];
    while let Some(path) = stack.pop() {
        let meta = match std::fs::symlink_metadata(&path) {
            Ok(m) => m,
            // Removed while we walked: a concurrent RemoveImage.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(Error::io("stat", &path, e)),
        };
        if seen.insert((meta.dev(), meta.ino())) {
            total.inodes += 1;
            total.bytes += meta.blocks() * 512;
        }
        if meta.is_dir() {
            match std::fs::read_dir(&path) {
                Ok(entries) => stack.extend(entries.filter_map(|e| e.ok().map(|e| e.path()))),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(Error::io("read dir", &path, e)),
            }
        }
    }
    Ok(total)
}

/// Tries each unqualified-search candidate; within one, mirrors first and
/// the origin last.
async fn pull(
    inner: &Arc<Inner>,
    reference: &Reference,
    auth: Option<&AuthEntry>,
    cancel: &tokio_util::sync::CancellationToken,
) -> Result<Arc<ImageRecord>> {
    let candidates = inner.registries.candidates(reference);
    let mut last = None;
    for (i, candidate) in candidates.iter().enumerate() {
        match pull_candidate(inner, candidate, auth, cancel).await {
            Ok(image) => return Ok(image),
            Err(e) if i + 1 < candidates.len() && !cancel.is_cancelled() => {
                tracing::info!(reference = %candidate, error = %crate::error_chain(&e), "trying the next search registry");
                last = Some(e);
            }
            Err(e) => return Err(e),
        }
    }
    Err(last.unwrap_or_else(|| Error::InvalidReference {
        reference: reference.to_string(),
        reason: "no registry to pull from".into(),
    }))
}

/// Adds a pull's received bytes to the service's total when dropped.
struct CountDownloaded<'a> {
    inner: &'a Inner,
    progress: &'a Progress,
}

impl Drop for CountDownloaded<'_> {
    fn drop(&mut self) {
        let bytes = self.progress.bytes.load(Ordering::Relaxed);
        self.inner.downloaded.fetch_add(bytes, Ordering::Relaxed);
    }
}

async fn pull_candidate(
    inner: &Arc<Inner>,
    reference: &Reference,
    auth: Option<&AuthEntry>,
    cancel: &tokio_util::sync::CancellationToken,
) -> Result<Arc<ImageRecord>> {
    let endpoints = inner.registries.endpoints(reference)?;
    let started = Instant::now();
    let progress = Arc::new(Progress::default());
    // Whatever way this pull ends, what it received counts.
    let _count = CountDownloaded {
        inner,
        progress: &progress,
    };
    let ticker = {
        let progress = progress.clone();
        let reference = reference.to_string();
        tokio::spawn(async move {
            let mut interval = tokio::time::interval(PROGRESS_INTERVAL);
            interval.tick().await;
            loop {
                interval.tick().await;
                tracing::info!(
                    %reference,
                    bytes = progress.bytes.load(Ordering::Relaxed),
                    total_bytes = progress.bytes_total.load(Ordering::Relaxed),
                    layers_done = progress.layers_done.load(Ordering::Relaxed),
                    layers = progress.layers_total.load(Ordering::Relaxed),
                    elapsed_s = started.elapsed().as_secs(),
                    "pulling"
                );
            }
        })
    };
    let mut result = None;
    for (i, endpoint) in endpoints.iter().enumerate() {
        let credentials = match auth {
            Some(entry) => entry.credentials(&endpoint.registry)?,
            None => inner
                .auth_file
                .lookup(&endpoint.registry, &endpoint.repository)
                .unwrap_or_else(|e| {
                    tracing::warn!(error = %crate::error_chain(&e), "ignoring unusable auth file entry");
                    Credentials::Anonymous
                }),
        };
        tracing::debug!(%reference, registry = %endpoint.registry, repository = %endpoint.repository, insecure = endpoint.insecure, "pulling from endpoint");
        match pull_from(inner, reference, endpoint, &credentials, &progress, cancel).await {
            Ok(image) => {
                let elapsed = started.elapsed();
                let bytes = progress.bytes.load(Ordering::Relaxed);
                tracing::info!(
                    %reference,
                    id = %image.id,
                    registry = %endpoint.registry,
                    size = image.size,
                    downloaded = bytes,
                    layers = image.layers.len(),
                    elapsed_ms = elapsed.as_millis() as u64,
                    mb_per_s = format!("{:.1}", bytes as f64 / 1e6 / elapsed.as_secs_f64().max(1e-6)),
                    "pulled image"
                );
                result = Some(Ok(image));
                break;
            }
            Err(e) if i + 1 < endpoints.len() && !cancel.is_cancelled() => {
                tracing::warn!(%reference, mirror = %endpoint.registry, error = %crate::error_chain(&e), "mirror failed; trying the next endpoint");
            }
            Err(e) => result = Some(Err(e)),
        }
    }
    ticker.abort();
    result.unwrap_or_else(|| {
        Err(Error::InvalidReference {
            reference: reference.to_string(),
            reason: "no endpoint to pull from".into(),
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::ImageRecord;

    const L1: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
    const L2: &str = "sha256:2222222222222222222222222222222222222222222222222222222222222222";
    const ID: &str = "sha256:abcdef0000000000000000000000000000000000000000000000000000000000";
    const M: &str = "sha256:eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee";

    fn service(dir: &std::path::Path) -> ImageService {
        ImageService::open(Options {
            store_dir: dir.join("images"),
            registries_conf: dir.join("missing-registries.conf"),
            insecure_registries: vec![],
            auth_file: None,
            max_concurrent_downloads: 1,
            pinned_images: vec!["example.com/pause:3.9".into()],
            layer_limits: Default::default(),
            download_progress_timeout: Duration::from_secs(60),
        })
        .unwrap()
    }

    #[tokio::test]
    async fn rootfs_lookup_by_name_id_and_prefix() {
        let dir = tempfile::tempdir().unwrap();
        let svc = service(dir.path());
        let store = svc.store();
        let mut dirs = Vec::new();
        for l in [L1, L2] {
            let staging = store.staging_dir().unwrap();
            let layer = store.commit_layer(&staging, l, 1, "sha256:c", 1).unwrap();
            dirs.push(store.layer_dir(&layer));
        }
        let record = ImageRecord {
            version: 1,
            id: ID.into(),
            repo_tags: vec![],
            repo_digests: vec![],
            size: 1,
            layers: vec![L1.into(), L2.into()],
            manifest_digest: M.into(),
            top_digest: M.into(),
            config: RuntimeConfig {
                entrypoint: vec!["/pause".into()],
                stop_signal: "SIGINT".into(),
                ..Default::default()
            },
            annotations: Default::default(),
            os: "linux".into(),
            architecture: "amd64".into(),
            pulled_at: 1,
        };
        store
            .commit_image(
                record,
                Some("example.com/pause:3.9".into()),
                format!("example.com/pause@{M}"),
            )
            .unwrap();
        let by_digest = format!("example.com/pause@{M}");
        for name in ["example.com/pause:3.9", ID, &ID[7..], "abcdef", &by_digest] {
            let rootfs = svc.rootfs(name).unwrap_or_else(|| panic!("{name}"));
            assert_eq!(rootfs.layer_dirs, dirs, "lowest layer first");
            assert_eq!(
                rootfs.lowerdir(),
                format!("{}:{}", dirs[1].display(), dirs[0].display())
            );
            assert_eq!(rootfs.config.entrypoint, ["/pause"]);
            assert_eq!(rootfs.config.stop_signal, "SIGINT");
        }
        assert!(svc.rootfs("example.com/pause:3.8").is_none());
        assert!(svc.is_pinned(&svc.resolve(ID).unwrap()));
        // the layer dirs are short enough for ~100 lower dirs in a page
        assert!(dirs[0].file_name().unwrap().len() == 16);

        // in use: refused; by tag it is the last tag, so it would go
        let (held, _) = svc.hold("example.com/pause:3.9", "ctr-1").unwrap();
        assert_eq!(held.id, ID);
        let err = svc
            .remove("example.com/pause:3.9", Arc::new(|_| None))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), crius_proto::ErrorKind::FailedPrecondition);
        svc.release(ID, "ctr-1");
        let err = svc
            .remove(ID, Arc::new(|_| Some("ctr-2".into())))
            .await
            .unwrap_err();
        assert!(err.to_string().contains("ctr-2"), "{err}");
        svc.remove("example.com/pause:3.9", Arc::new(|_| None))
            .await
            .unwrap();
        assert!(svc.list().is_empty());
        assert!(!dirs[0].exists());
        let usage = svc.fs_usage().await.unwrap();
        assert!(usage.inodes > 0 && usage.bytes > 0);
        // unchanged store: cached; a change: measured again
        std::fs::write(dir.path().join("images/tmp/x"), vec![1u8; 64 * 1024]).unwrap();
        assert_eq!(svc.fs_usage().await.unwrap(), usage);
        store.collect_garbage().unwrap();
        let after = svc.fs_usage().await.unwrap();
        assert_eq!(after.inodes, usage.inodes + 1);
    }
}
