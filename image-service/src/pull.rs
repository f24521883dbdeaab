//! Pulling one image from one endpoint: manifest (and index), config, then
//! the layers in parallel, each streamed through a digest and size check
//! into the unpacker as it arrives.

use std::io::Read;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::StreamExt as _;
use oci_client::errors::{OciDistributionError, OciErrorCode};
use oci_client::secrets::RegistryAuth;
use sha2::{Digest as _, Sha256};
use tokio_util::sync::CancellationToken;

use crate::auth::Credentials;
use crate::error::{Error, Result};
use crate::manifest::{self, Descriptor, Document, ImageConfig};
use crate::reference::{Reference, validate_digest};
use crate::registries::Endpoint;
use crate::service::Inner;
use crate::store::{ImageRecord, RuntimeConfig};

/// Per-pull counters, logged every few seconds.
#[derive(Default)]
pub(crate) struct Progress {
    pub bytes: AtomicU64,
    pub layers_done: AtomicUsize,
    pub layers_total: AtomicUsize,
    pub bytes_total: AtomicU64,
}

/// One registry session: a client speaking the endpoint's scheme, with the
/// credentials resolved for it.
struct Session {
    endpoint: Endpoint,
    auth: RegistryAuth,
    /// crius's own client rather than oci-client's, which reads whole
    /// bodies (manifests, error responses, tokens) before any size check.
    http: reqwest::Client,
    scheme: &'static str,
    /// The bearer token `auth` obtained, if the registry wants one.
    token: Option<String>,
    /// A blob download that receives nothing for this long fails.
    progress_timeout: Duration,
}

/// Bytes of an error response body read (enough for any error envelope).
const MAX_ERROR_BODY: usize = 64 * 1024;
/// Characters of a registry's error text kept in the message.
const MAX_ERROR_MESSAGE: usize = 512;
/// One manifest or index request, whole: a registry that trickles bytes
/// must not hold a pull forever.
const DOCUMENT_TIMEOUT: Duration = Duration::from_secs(120);

impl Session {
    fn reference(&self, tag: Option<&str>, digest: Option<&str>) -> oci_client::Reference {
        let (registry, repository) = (
            self.endpoint.registry.clone(),
            self.endpoint.repository.clone(),
        );
        match (digest, tag) {
            (Some(d), _) => oci_client::Reference::with_digest(registry, repository, d.to_owned()),
            (None, t) => oci_client::Reference::with_tag(
                registry,
                repository,
                t.unwrap_or(crate::reference::DEFAULT_TAG).to_owned(),
            ),
        }
    }

    fn err(&self, what: &str, e: OciDistributionError) -> Error {
        classify(&self.endpoint.registry, what, e)
    }

    /// The bearer token for pulling from the repository, when the registry
    /// challenges for one (the distribution token flow, with the basic
    /// credentials if there are any); `None` when it does not.
    async fn authenticate(
        &self,
        reference: &oci_client::Reference,
        what: &str,
    ) -> Result<Option<String>> {
        if let RegistryAuth::Bearer(token) = &self.auth {
            return Ok(Some(token.clone()));
        }
        let registry = &self.endpoint.registry;
        let unavailable = |e: reqwest::Error| Error::RegistryUnavailable {
            registry: registry.clone(),
            what: what.to_owned(),
            source: e.into(),
        };
        let response = self
            .http
            .get(format!(
                "{}://{}/v2/",
                self.scheme,
                reference.resolve_registry()
            ))
            .timeout(DOCUMENT_TIMEOUT)
            .send()
            .await
            .map_err(unavailable)?;
        let challenge = response
            .headers()
            .get(reqwest::header::WWW_AUTHENTICATE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        drop(response);
        // No challenge, or a basic one: requests carry the basic
        // credentials, if any, themselves.
        let Some(params) = parse_bearer_challenge(&challenge) else {
            return Ok(None);
        };
        let param = |key: &str| {
            params
                .iter()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.clone())
        };
        let realm = param("realm").unwrap_or_default();
        let mut query = vec![(
            "scope".to_owned(),
            format!("repository:{}:pull", reference.repository()),
        )];
        if let Some(service) = param("service") {
            query.push(("service".to_owned(), service));
        }
        let mut request = self
            .http
            .get(&realm)
            .query(&query)
            .timeout(DOCUMENT_TIMEOUT);
        if let RegistryAuth::Basic(user, password) = &self.auth {
            request = request.basic_auth(user, Some(password));
        }
        let response = request.send().await.map_err(unavailable)?;
        let status = response.status();
        let body = read_capped(response, MAX_TOKEN_RESPONSE)
            .await
            .map_err(unavailable)?;
        if !status.is_success() {
            let text = String::from_utf8_lossy(&body);
            let shown: String = text.trim().chars().take(MAX_ERROR_MESSAGE).collect();
            return Err(Error::Unauthorized {
                registry: registry.clone(),
                what: what.to_owned(),
                source: format!("token request to {realm} answered {status}: {shown}").into(),
            });
        }
        token_from(&body).map(Some).ok_or_else(|| Error::Registry {
            registry: registry.clone(),
            what: what.to_owned(),
            source: format!("no token in the response of {realm} (or one over 64 KiB)").into(),
        })
    }

    /// A GET with the session's credentials.
    fn get(&self, url: &str) -> reqwest::RequestBuilder {
        let request = self.http.get(url);
        match (&self.token, &self.auth) {
            (Some(token), _) => request.bearer_auth(token),
            (None, RegistryAuth::Basic(user, password)) => request.basic_auth(user, Some(password)),
            (None, _) => request,
        }
    }

    /// The error a non-success response stands for, from its status and
    /// at most [`MAX_ERROR_BODY`] bytes of its body.
    async fn error_response(
        &self,
        what: &str,
        url: String,
        mut response: reqwest::Response,
    ) -> Error {
        let status = response.status();
        let mut body = Vec::new();
        while body.len() < MAX_ERROR_BODY {
            match response.chunk().await {
                Ok(Some(chunk)) => body.extend_from_slice(&chunk),
                Ok(None) | Err(_) => break,
            }
        }
        body.truncate(MAX_ERROR_BODY);
        // The message ends up in a gRPC status, whose trailers are small.
        let shorten = |text: &str| -> String {
            let text = text.trim();
            match text.char_indices().nth(MAX_ERROR_MESSAGE) {
                Some((at, _)) => format!("{}...", &text[..at]),
                None => text.to_owned(),
            }
        };
        let error = match serde_json::from_slice::<oci_client::errors::OciEnvelope>(&body) {
            Ok(mut envelope) if !envelope.errors.is_empty() => {
                envelope.errors.truncate(4);
                for e in &mut envelope.errors {
                    e.message = shorten(&e.message);
                    e.detail = serde_json::Value::Null;
                }
                OciDistributionError::RegistryError { envelope, url }
            }
            _ => OciDistributionError::ServerError {
                code: status.as_u16(),
                url,
                message: shorten(&String::from_utf8_lossy(&body)),
            },
        };
        self.err(what, error)
    }

    /// GETs blob `digest`: its body as a stream of chunks. The caller
    /// verifies size and digest as the chunks arrive.
    async fn blob_stream(
        &self,
        digest: &str,
        what: &str,
    ) -> Result<futures_util::stream::BoxStream<'static, std::io::Result<Bytes>>> {
        let url = format!(
            "{}://{}/v2/{}/blobs/{digest}",
            self.scheme,
            self.reference(None, Some(digest)).resolve_registry(),
            self.endpoint.repository
        );
        let response = self
            .get(&url)
            .send()
            .await
            .map_err(|e| Error::RegistryUnavailable {
                registry: self.endpoint.registry.clone(),
                what: what.to_owned(),
                source: e.into(),
            })?;
        if !response.status().is_success() {
            return Err(self.error_response(what, url, response).await);
        }
        let chunks = futures_util::stream::unfold(Some(response), |response| async move {
            let mut response = response?;
            match response.chunk().await {
                Ok(Some(chunk)) => Some((Ok(chunk), Some(response))),
                Ok(None) => None,
                Err(e) => Some((Err(std::io::Error::other(e)), None)),
            }
        });
        Ok(Box::pin(chunks))
    }

    /// GETs the manifest or index `reference` names, reading at most
    /// [`manifest::MAX_DOCUMENT_SIZE`] bytes; its bytes and digest.
    async fn fetch_manifest(
        &self,
        reference: &oci_client::Reference,
        what: &str,
    ) -> Result<(Bytes, String)> {
        let registry = &self.endpoint.registry;
        let target = reference
            .digest()
            .or(reference.tag())
            .unwrap_or(crate::reference::DEFAULT_TAG);
        let url = format!(
            "{}://{}/v2/{}/manifests/{target}",
            self.scheme,
            reference.resolve_registry(),
            reference.repository()
        );
        let unavailable = |e: reqwest::Error| Error::RegistryUnavailable {
            registry: registry.clone(),
            what: what.to_owned(),
            source: e.into(),
        };
        let mut response = self
            .get(&url)
            .timeout(DOCUMENT_TIMEOUT)
            .header(reqwest::header::ACCEPT, manifest::ACCEPTED.join(", "))
            .send()
            .await
            .map_err(unavailable)?;
        if !response.status().is_success() {
            return Err(self.error_response(what, url, response).await);
        }
        let too_large = || Error::TooLarge {
            registry: registry.clone(),
            what: what.to_owned(),
            limit: manifest::MAX_DOCUMENT_SIZE,
        };
        if response
            .content_length()
            .is_some_and(|n| n > manifest::MAX_DOCUMENT_SIZE)
        {
            return Err(too_large());
        }
        let header_digest = response
            .headers()
            .get("docker-content-digest")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(unavailable)? {
            if (body.len() + chunk.len()) as u64 > manifest::MAX_DOCUMENT_SIZE {
                return Err(too_large());
            }
            body.extend_from_slice(&chunk);
        }
        let digest = format!("sha256:{}", hex::encode(Sha256::digest(&body)));
        let claimed = reference
            .digest()
            .map(str::to_owned)
            .or(header_digest.filter(|d| d.starts_with("sha256:")));
        if let Some(claimed) = claimed
            && claimed != digest
        {
            return Err(Error::DigestMismatch {
                expected: claimed,
                actual: digest,
            });
        }
        Ok((Bytes::from(body), digest))
    }
}

fn classify(registry: &str, what: &str, e: OciDistributionError) -> Error {
    let registry = registry.to_owned();
    let what = what.to_owned();
    let not_found = |source: OciDistributionError| Error::NotFoundInRegistry {
        registry: registry.clone(),
        what: what.clone(),
        source: source.into(),
    };
    let unauthorized = |source: OciDistributionError| Error::Unauthorized {
        registry: registry.clone(),
        what: what.clone(),
        source: source.into(),
    };
    match &e {
        OciDistributionError::ImageManifestNotFoundError(_) => not_found(e),
        OciDistributionError::RegistryError { envelope, .. } => {
            let codes: Vec<&OciErrorCode> = envelope.errors.iter().map(|e| &e.code).collect();
            if codes.iter().any(|c| {
                matches!(
                    c,
                    OciErrorCode::ManifestUnknown
                        | OciErrorCode::NameUnknown
                        | OciErrorCode::BlobUnknown
                        | OciErrorCode::NotFound
                )
            }) {
                not_found(e)
            } else if codes
                .iter()
                .any(|c| matches!(c, OciErrorCode::Unauthorized | OciErrorCode::Denied))
            {
                unauthorized(e)
            } else {
                Error::Registry {
                    registry,
                    what,
                    source: e.into(),
                }
            }
        }
        OciDistributionError::ServerError { code: 404, .. } => not_found(e),
        OciDistributionError::ServerError {
            code: 401 | 403, ..
        }
        | OciDistributionError::AuthenticationFailure(_)
        | OciDistributionError::UnauthorizedError { .. } => unauthorized(e),
        OciDistributionError::RequestError(_) | OciDistributionError::IoError(_) => {
            Error::RegistryUnavailable {
                registry,
                what,
                source: e.into(),
            }
        }
        _ => Error::Registry {
            registry,
            what,
            source: e.into(),
        },
    }
}

/// Pulls `reference` from `endpoint` into the store.
pub(crate) async fn pull_from(
    inner: &Arc<Inner>,
    reference: &Reference,
    endpoint: &Endpoint,
    credentials: &Credentials,
    progress: &Arc<Progress>,
    cancel: &CancellationToken,
) -> Result<Arc<ImageRecord>> {
    let what = reference.to_string();
    let progress_timeout = inner.download_progress_timeout;
    let scheme = scheme_for(endpoint).await;
    let auth = match credentials {
        Credentials::Anonymous => RegistryAuth::Anonymous,
        Credentials::Basic { username, password } => {
            RegistryAuth::Basic(username.clone(), password.clone())
        }
        Credentials::RegistryToken(token) => RegistryAuth::Bearer(token.clone()),
        Credentials::IdentityToken(token) => RegistryAuth::Bearer(
            or_cancel(
                cancel,
                &what,
                exchange_identity_token(endpoint, scheme, token),
            )
            .await?,
        ),
    };
    let http = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        // A backstop: the progress deadline fires first and says so.
        .read_timeout(progress_timeout + Duration::from_secs(10))
        .danger_accept_invalid_certs(endpoint.insecure)
        .user_agent(concat!("crius/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| Error::RegistryUnavailable {
            registry: endpoint.registry.clone(),
            what: "an http client".into(),
            source: e.into(),
        })?;
    let mut session = Session {
        endpoint: endpoint.clone(),
        auth,
        http,
        scheme,
        token: None,
        progress_timeout,
    };
    let top_ref = session.reference(reference.tag.as_deref(), reference.digest.as_deref());
    session.token = or_cancel(cancel, &what, session.authenticate(&top_ref, &what)).await?;

    let (top_bytes, top_digest) =
        or_cancel(cancel, &what, session.fetch_manifest(&top_ref, &what)).await?;
    let top = parse_document(reference, &top_digest, &top_bytes)?;
    let (manifest_bytes, manifest_digest, manifest) = if top.is_index() {
        let platform = manifest::host_platform();
        let chosen = manifest::choose(&top.manifests, &platform).ok_or_else(|| {
            Error::NoMatchingPlatform {
                reference: what.clone(),
                platform: format!(
                    "{}/{}{}",
                    platform.os,
                    platform.architecture,
                    platform
                        .variant
                        .as_deref()
                        .map(|v| format!("/{v}"))
                        .unwrap_or_default()
                ),
            }
        })?;
        validate_digest(&chosen.digest)
            .map_err(|reason| invalid(reference, "index", &top_digest, reason))?;
        let child_ref = session.reference(None, Some(&chosen.digest));
        let (bytes, digest) = or_cancel(
            cancel,
            &what,
            session.fetch_manifest(&child_ref, &format!("{what} manifest {}", chosen.digest)),
        )
        .await?;
        let doc = parse_document(reference, &digest, &bytes)?;
        if doc.is_index() {
            return Err(invalid(
                reference,
                "manifest",
                &digest,
                "nested index".into(),
            ));
        }
        (bytes, digest, doc)
    } else {
        (top_bytes.clone(), top_digest.clone(), top)
    };
    let config_desc = manifest
        .config
        .clone()
        .ok_or_else(|| invalid(reference, "manifest", &manifest_digest, "no config".into()))?;
    validate_digest(&config_desc.digest)
        .map_err(|reason| invalid(reference, "manifest", &manifest_digest, reason))?;
    if config_desc.size > manifest::MAX_DOCUMENT_SIZE {
        return Err(invalid(
            reference,
            "config",
            &config_desc.digest,
            "too large".into(),
        ));
    }
    let config_bytes = or_cancel(cancel, &what, fetch_small_blob(&session, &config_desc)).await?;
    let config: ImageConfig = serde_json::from_slice(&config_bytes)
        .map_err(|e| invalid(reference, "config", &config_desc.digest, e.to_string()))?;
    if manifest.layers.len() > manifest::MAX_LAYERS {
        return Err(invalid(
            reference,
            "manifest",
            &manifest_digest,
            format!(
                "{} layers, more than the {} crius stacks",
                manifest.layers.len(),
                manifest::MAX_LAYERS
            ),
        ));
    }
    let diff_ids = config.rootfs.diff_ids.clone();
    if diff_ids.len() != manifest.layers.len() {
        return Err(invalid(
            reference,
            "config",
            &config_desc.digest,
            format!(
                "{} diff ids for {} layers",
                diff_ids.len(),
                manifest.layers.len()
            ),
        ));
    }
    for (layer, diff_id) in manifest.layers.iter().zip(&diff_ids) {
        for d in [&layer.digest, diff_id] {
            validate_digest(d)
                .map_err(|reason| invalid(reference, "manifest", &manifest_digest, reason))?;
        }
    }

    let store = &inner.store;
    let _pin = store.pin_layers(&diff_ids);
    progress
        .layers_total
        .store(manifest.layers.len(), Ordering::Relaxed);
    progress.bytes_total.store(
        manifest.layers.iter().map(|l| l.size).sum(),
        Ordering::Relaxed,
    );
    let session = Arc::new(session);
    // One failed layer cancels the others, and every layer task cleans up
    // its own staging dir before the pull returns: nothing is left in tmp/.
    let layers_cancel = cancel.child_token();
    let tasks = manifest
        .layers
        .iter()
        .zip(&diff_ids)
        .map(|(layer, diff_id)| {
            let inner = inner.clone();
            let session = session.clone();
            let progress = progress.clone();
            let layer = layer.clone();
            let diff_id = diff_id.clone();
            let cancel = layers_cancel.clone();
            let what = what.clone();
            async move {
                let result = fetch_layer(
                    &inner, &session, &layer, &diff_id, &progress, &cancel, &what,
                )
                .await;
                if result.is_err() {
                    cancel.cancel();
                }
                result
            }
        });
    let mut failure: Option<Error> = None;
    for result in futures_util::future::join_all(tasks).await {
        if let Err(e) = result
            && failure
                .as_ref()
                .is_none_or(|f| matches!(f, Error::Cancelled { .. }))
        {
            failure = Some(e);
        }
    }
    if let Some(e) = failure {
        return Err(e);
    }

    let container = config.config.clone().unwrap_or_default();
    let record = ImageRecord {
        version: 1,
        id: config_desc.digest.clone(),
        repo_tags: Vec::new(),
        repo_digests: Vec::new(),
        size: manifest.layers.iter().map(|l| l.size).sum::<u64>()
            + config_desc.size
            + manifest_bytes.len() as u64,
        layers: diff_ids,
        manifest_digest: manifest_digest.clone(),
        top_digest: top_digest.clone(),
        config: RuntimeConfig {
            user: container.user.unwrap_or_default(),
            env: container.env.unwrap_or_default(),
            entrypoint: container.entrypoint.unwrap_or_default(),
            cmd: container.cmd.unwrap_or_default(),
            working_dir: container.working_dir.unwrap_or_default(),
            stop_signal: container.stop_signal.unwrap_or_default(),
            labels: container.labels.unwrap_or_default(),
            exposed_ports: container
                .exposed_ports
                .unwrap_or_default()
                .into_keys()
                .collect(),
            volumes: container.volumes.unwrap_or_default().into_keys().collect(),
        },
        annotations: manifest.annotations.clone(),
        os: config.os.clone(),
        architecture: config.architecture.clone(),
        pulled_at: now_nanos(),
    };
    let tag = reference.tagged();
    let repo_digest = reference.digested(&top_digest);
    let inner = inner.clone();
    // Small files, but each is fsynced: keep them off the async workers.
    tokio::task::spawn_blocking(move || {
        let store = &inner.store;
        store.write_blob(&config_desc.digest, &config_bytes)?;
        store.write_blob(&manifest_digest, &manifest_bytes)?;
        store.write_blob(&top_digest, &top_bytes)?;
        store.commit_image(record, tag, repo_digest)
    })
    .await
    .map_err(|source| Error::Task {
        reference: what,
        source,
    })?
}

fn invalid(reference: &Reference, what: &'static str, digest: &str, reason: String) -> Error {
    Error::InvalidContent {
        reference: reference.to_string(),
        what,
        digest: digest.to_owned(),
        reason,
    }
}

fn parse_document(reference: &Reference, digest: &str, bytes: &[u8]) -> Result<Document> {
    if bytes.len() as u64 > manifest::MAX_DOCUMENT_SIZE {
        return Err(invalid(reference, "manifest", digest, "too large".into()));
    }
    let doc: Document = serde_json::from_slice(bytes)
        .map_err(|e| invalid(reference, "manifest", digest, e.to_string()))?;
    if doc.schema_version != 2 {
        return Err(Error::UnsupportedMediaType {
            reference: reference.to_string(),
            media_type: format!(
                "{} (schema version {})",
                doc.media_type.clone().unwrap_or_default(),
                doc.schema_version
            ),
        });
    }
    if let Some(mt) = &doc.media_type
        && !manifest::ACCEPTED.contains(&mt.as_str())
    {
        return Err(Error::UnsupportedMediaType {
            reference: reference.to_string(),
            media_type: mt.clone(),
        });
    }
    Ok(doc)
}

pub(crate) fn now_nanos() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
}

/// A blob small enough to hold in memory (the config), digest-verified.
async fn fetch_small_blob(session: &Session, desc: &Descriptor) -> Result<Vec<u8>> {
    let stalled = || Error::DownloadStalled {
        registry: session.endpoint.registry.clone(),
        digest: desc.digest.clone(),
        secs: session.progress_timeout.as_secs(),
    };
    let mut stream = tokio::time::timeout(
        session.progress_timeout,
        session.blob_stream(&desc.digest, &format!("blob {}", desc.digest)),
    )
    .await
    .map_err(|_| stalled())??;
    let mut verifier = Verifier::new(&desc.digest, desc.size);
    let mut data = Vec::with_capacity(usize::try_from(desc.size).unwrap_or(0));
    while let Some(chunk) = tokio::time::timeout(session.progress_timeout, stream.next())
        .await
        .map_err(|_| stalled())?
    {
        match chunk {
            Ok(chunk) => {
                verifier.update(&chunk)?;
                data.extend_from_slice(&chunk);
            }
            Err(source) => return Err(verifier.error_or(&session.endpoint.registry, source)),
        }
    }
    verifier.finish()?;
    Ok(data)
}

/// Streaming digest and size check of one blob.
struct Verifier {
    digest: String,
    size: u64,
    seen: u64,
    hasher: Sha256,
}

impl Verifier {
    fn new(digest: &str, size: u64) -> Verifier {
        Verifier {
            digest: digest.to_owned(),
            size,
            seen: 0,
            hasher: Sha256::new(),
        }
    }

    fn update(&mut self, chunk: &[u8]) -> Result<()> {
        self.seen += chunk.len() as u64;
        if self.seen > self.size {
            return Err(Error::SizeMismatch {
                digest: self.digest.clone(),
                expected: self.size,
                actual: self.seen,
            });
        }
        self.hasher.update(chunk);
        Ok(())
    }

    fn finish(self) -> Result<()> {
        if self.seen != self.size {
            return Err(Error::SizeMismatch {
                digest: self.digest,
                expected: self.size,
                actual: self.seen,
            });
        }
        let actual = format!("sha256:{}", hex::encode(self.hasher.finalize()));
        if actual != self.digest {
            return Err(Error::DigestMismatch {
                expected: self.digest,
                actual,
            });
        }
        Ok(())
    }

    /// A stream error at the very end (oci-client's own check) is reported
    /// as our digest mismatch when every byte arrived; otherwise it is a
    /// download failure.
    fn error_or(self, registry: &str, source: std::io::Error) -> Error {
        let digest = self.digest.clone();
        if self.seen == self.size
            && let Err(e) = self.finish()
        {
            return e;
        }
        Error::Download {
            registry: registry.to_owned(),
            digest,
            source,
        }
    }
}

/// Feeds the blocking unpacker from the async download.
struct ChannelReader {
    rx: tokio::sync::mpsc::Receiver<std::io::Result<Bytes>>,
    current: Bytes,
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.current.is_empty() {
            match self.rx.blocking_recv() {
                Some(Ok(chunk)) => self.current = chunk,
                Some(Err(e)) => return Err(e),
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current.split_to(n));
        Ok(n)
    }
}

/// `future`, unless `cancel` fires first. Only for steps that leave nothing
/// behind when dropped half-way.
async fn or_cancel<T>(
    cancel: &CancellationToken,
    what: &str,
    future: impl std::future::Future<Output = Result<T>>,
) -> Result<T> {
    tokio::select! {
        result = future => result,
        () = cancel.cancelled() => Err(Error::Cancelled { reference: what.to_owned() }),
    }
}

async fn fetch_layer(
    inner: &Arc<Inner>,
    session: &Session,
    layer: &Descriptor,
    diff_id: &str,
    progress: &Progress,
    cancel: &CancellationToken,
    what: &str,
) -> Result<()> {
    let store = &inner.store;
    // One download per layer, however many pulls want it.
    let lock = store.layer_lock(diff_id);
    let _guard = or_cancel(cancel, what, async { Ok(lock.lock().await) }).await?;
    if store.layer(diff_id).is_some() {
        // Already here (another image, or a concurrent pull of this one):
        // nothing is downloaded, so throughput does not count it.
        progress.layers_done.fetch_add(1, Ordering::Relaxed);
        return Ok(());
    }
    let _permit = or_cancel(cancel, what, async {
        inner.downloads.acquire().await.map_err(|e| {
            Error::io(
                "wait for a download slot",
                store.dir(),
                std::io::Error::other(e),
            )
        })
    })
    .await?;
    let started = Instant::now();
    let stalled = || Error::DownloadStalled {
        registry: session.endpoint.registry.clone(),
        digest: layer.digest.clone(),
        secs: session.progress_timeout.as_secs(),
    };
    let mut stream = or_cancel(cancel, what, async {
        tokio::time::timeout(
            session.progress_timeout,
            session.blob_stream(&layer.digest, &format!("layer {}", layer.digest)),
        )
        .await
        .map_err(|_| stalled())?
    })
    .await?;
    let staging = store.staging_dir()?;
    let (tx, rx) = tokio::sync::mpsc::channel::<std::io::Result<Bytes>>(64);
    let unpack_dir = staging.clone();
    let digest = layer.digest.clone();
    let limits = inner.layer_limits;
    let unpacker = tokio::task::spawn_blocking(move || {
        crate::unpack::unpack_layer(
            ChannelReader {
                rx,
                current: Bytes::new(),
            },
            &unpack_dir,
            &digest,
            &limits,
        )
    });
    let mut verifier = Verifier::new(&layer.digest, layer.size);
    let mut download_error = None;
    let mut unpacker_stopped = false;
    loop {
        let next = tokio::select! {
            next = tokio::time::timeout(session.progress_timeout, stream.next()) => next,
            () = cancel.cancelled() => {
                download_error = Some(Error::Cancelled { reference: what.to_owned() });
                break;
            }
        };
        let chunk = match next {
            Err(_) => {
                download_error = Some(stalled());
                break;
            }
            Ok(None) => break,
            Ok(Some(Ok(chunk))) => chunk,
            Ok(Some(Err(source))) => {
                let v = std::mem::replace(&mut verifier, Verifier::new(&layer.digest, layer.size));
                download_error = Some(v.error_or(&session.endpoint.registry, source));
                break;
            }
        };
        if let Err(e) = verifier.update(&chunk) {
            download_error = Some(e);
            break;
        }
        progress
            .bytes
            .fetch_add(chunk.len() as u64, Ordering::Relaxed);
        if tx.send(Ok(chunk)).await.is_err() {
            // The unpacker stopped early; its error says why.
            unpacker_stopped = true;
            break;
        }
    }
    if download_error.is_none() && !unpacker_stopped {
        let v = std::mem::replace(&mut verifier, Verifier::new(&layer.digest, layer.size));
        if let Err(e) = v.finish() {
            download_error = Some(e);
        }
    }
    // The unpacker only sees a clean end of input once the blob verified.
    if download_error.is_some() {
        let _ = tx
            .send(Err(std::io::Error::other("blob failed verification")))
            .await;
    }
    drop(tx);
    let unpacked = unpacker.await.map_err(|source| Error::Task {
        reference: layer.digest.clone(),
        source,
    });
    let result = match (download_error, unpacked) {
        (Some(e), _) => Err(e),
        (None, Err(e)) => Err(e),
        (None, Ok(Err(e))) => Err(e),
        (None, Ok(Ok(out))) if out.diff_id != diff_id => Err(Error::DiffIdMismatch {
            digest: layer.digest.clone(),
            expected: diff_id.to_owned(),
            actual: out.diff_id,
        }),
        (None, Ok(Ok(out))) => {
            let staging = staging.clone();
            let inner = inner.clone();
            let digest = layer.digest.clone();
            let diff_id = diff_id.to_owned();
            let size = layer.size;
            tokio::task::spawn_blocking(move || {
                inner
                    .store
                    .commit_layer(&staging, &diff_id, out.tar_size, &digest, size)
            })
            .await
            .map_err(|source| Error::Task {
                reference: layer.digest.clone(),
                source,
            })
            .and_then(|r| r)
            .map(|_| ())
        }
    };
    if result.is_err() {
        let staging = staging.clone();
        let _ = tokio::task::spawn_blocking(move || std::fs::remove_dir_all(staging)).await;
    } else {
        progress.layers_done.fetch_add(1, Ordering::Relaxed);
        tracing::debug!(
            digest = %layer.digest,
            size = layer.size,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "layer unpacked"
        );
    }
    result
}

/// Secure registries speak HTTPS, loopback ones plain HTTP. An insecure
/// remote registry is tried as Docker does: HTTPS without certificate
/// checks first, plain HTTP if no TLS server answers.
async fn scheme_for(endpoint: &Endpoint) -> &'static str {
    if !endpoint.insecure {
        return "https";
    }
    if crate::registries::is_loopback(&endpoint.registry) {
        return "http";
    }
    if probe_https(&endpoint.registry).await {
        "https"
    } else {
        "http"
    }
}

/// Whether a TLS server (any certificate) answers `/v2/` at `registry`.
async fn probe_https(registry: &str) -> bool {
    let probe = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(10))
        .danger_accept_invalid_certs(true)
        .build();
    let Ok(probe) = probe else {
        return false;
    };
    match probe.get(format!("https://{registry}/v2/")).send().await {
        // Any answer, 401 included, means TLS works.
        Ok(_) => true,
        Err(err) => {
            tracing::debug!(%registry, %err, "no HTTPS; using plain HTTP");
            false
        }
    }
}

/// The OAuth2 refresh-token grant of the distribution token spec: trade an
/// identity token for a bearer token at the realm the registry names.
async fn exchange_identity_token(endpoint: &Endpoint, scheme: &str, token: &str) -> Result<String> {
    let registry = endpoint.registry.clone();
    let unavailable = |what: &str, e: reqwest::Error| Error::RegistryUnavailable {
        registry: registry.clone(),
        what: what.to_owned(),
        source: e.into(),
    };
    let http = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .danger_accept_invalid_certs(endpoint.insecure)
        .build()
        .map_err(|e| unavailable("an http client", e))?;
    let response = http
        .get(format!("{scheme}://{}/v2/", endpoint.registry))
        .timeout(DOCUMENT_TIMEOUT)
        .send()
        .await
        .map_err(|e| unavailable("/v2/", e))?;
    let challenge = response
        .headers()
        .get(reqwest::header::WWW_AUTHENTICATE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let params = parse_bearer_challenge(&challenge).ok_or_else(|| Error::Credentials {
        registry: registry.clone(),
        message: "an identity token needs a registry with a bearer token challenge".into(),
    })?;
    let realm = params
        .iter()
        .find(|(k, _)| k == "realm")
        .map(|(_, v)| v.clone())
        .unwrap_or_default();
    let mut form = vec![
        ("grant_type".to_owned(), "refresh_token".to_owned()),
        ("refresh_token".to_owned(), token.to_owned()),
        ("client_id".to_owned(), "crius".to_owned()),
        (
            "scope".to_owned(),
            format!("repository:{}:pull", endpoint.repository),
        ),
    ];
    if let Some((_, service)) = params.iter().find(|(k, _)| k == "service") {
        form.push(("service".to_owned(), service.clone()));
    }
    let response = http
        .post(&realm)
        .form(&form)
        .timeout(DOCUMENT_TIMEOUT)
        .send()
        .await
        .map_err(|e| unavailable("an identity token exchange", e))?;
    if !response.status().is_success() {
        let status = response.status();
        return Err(Error::Unauthorized {
            registry: registry.clone(),
            what: format!("identity token exchange at {realm}"),
            source: format!("status {status}").into(),
        });
    }
    let body = read_capped(response, MAX_TOKEN_RESPONSE)
        .await
        .map_err(|e| unavailable("an identity token exchange", e))?;
    token_from(&body).ok_or_else(|| Error::Unauthorized {
        registry,
        what: format!("identity token exchange at {realm}"),
        source: "no token in the response (or a response over 64 KiB)".into(),
    })
}

/// Bytes of a token response read.
const MAX_TOKEN_RESPONSE: usize = 64 * 1024;

/// The body, or as much of it as `cap` allows (a longer body is cut, and
/// then fails to parse: callers only read small JSON documents this way).
async fn read_capped(mut response: reqwest::Response, cap: usize) -> reqwest::Result<Vec<u8>> {
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        if body.len() + chunk.len() > cap {
            body.extend_from_slice(&chunk[..cap - body.len()]);
            break;
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// The token of a distribution token-endpoint response.
fn token_from(body: &[u8]) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct TokenResponse {
        #[serde(default)]
        access_token: String,
        #[serde(default)]
        token: String,
    }
    let body: TokenResponse = serde_json::from_slice(body).ok()?;
    let token = if body.access_token.is_empty() {
        body.token
    } else {
        body.access_token
    };
    (!token.is_empty()).then_some(token)
}

/// `Bearer realm="...",service="..."` -> key/value pairs.
fn parse_bearer_challenge(header: &str) -> Option<Vec<(String, String)>> {
    let rest = header
        .trim()
        .strip_prefix("Bearer ")
        .or_else(|| header.trim().strip_prefix("bearer "))?;
    let mut out = Vec::new();
    let mut s = rest.trim();
    while !s.is_empty() {
        let (key, after) = s.split_once('=')?;
        let after = after.trim_start();
        let (value, remainder) = if let Some(quoted) = after.strip_prefix('"') {
            let end = quoted.find('"')?;
            (&quoted[..end], &quoted[end + 1..])
        } else {
            let end = after.find(',').unwrap_or(after.len());
            (&after[..end], &after[end..])
        };
        out.push((key.trim().to_owned(), value.to_owned()));
        s = remainder.trim_start().trim_start_matches(',').trim_start();
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_errors_map_to_kinds_and_name_the_registry() {
        use crius_proto::ErrorKind;
        use oci_client::errors::{OciEnvelope, OciError};
        let envelope = |code| OciDistributionError::RegistryError {
            envelope: OciEnvelope {
                errors: vec![OciError {
                    code,
                    message: "m".into(),
                    detail: serde_json::Value::Null,
                }],
            },
            url: "u".into(),
        };
        let server = |code| OciDistributionError::ServerError {
            code,
            url: "u".into(),
            message: "m".into(),
        };
        let cases = [
            (envelope(OciErrorCode::ManifestUnknown), ErrorKind::NotFound),
            (envelope(OciErrorCode::NameUnknown), ErrorKind::NotFound),
            (
                envelope(OciErrorCode::Denied),
                ErrorKind::FailedPrecondition,
            ),
            (
                envelope(OciErrorCode::Toomanyrequests),
                ErrorKind::Unavailable,
            ),
            (server(404), ErrorKind::NotFound),
            (server(401), ErrorKind::FailedPrecondition),
            (server(503), ErrorKind::Unavailable),
            (
                OciDistributionError::AuthenticationFailure("no".into()),
                ErrorKind::FailedPrecondition,
            ),
            (
                OciDistributionError::IoError(std::io::Error::other("reset")),
                ErrorKind::Unavailable,
            ),
        ];
        for (source, kind) in cases {
            let shown = source.to_string();
            let err = classify("reg.example.com:5000", "img:1", source);
            assert_eq!(err.kind(), kind, "{shown}");
            assert!(err.to_string().contains("reg.example.com:5000"), "{err}");
        }
    }

    #[test]
    fn bearer_challenges_parse() {
        let p = parse_bearer_challenge(
            r#"Bearer realm="https://auth.example.com/token",service="registry.example.com",scope="a:b:pull""#,
        )
        .unwrap();
        assert_eq!(
            p[0],
            ("realm".into(), "https://auth.example.com/token".into())
        );
        assert_eq!(p[1], ("service".into(), "registry.example.com".into()));
        assert_eq!(p.len(), 3);
        assert!(parse_bearer_challenge(r#"Basic realm="x""#).is_none());
    }

    #[tokio::test]
    async fn insecure_probe_falls_back_to_http_without_tls() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                let mut buf = [0u8; 1024];
                let _ = s.read(&mut buf).await;
                let _ = s
                    .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
                    .await;
            }
        });
        assert!(!probe_https(&addr).await, "a plain HTTP server is not TLS");
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let dead = closed.local_addr().unwrap().to_string();
        drop(closed);
        assert!(!probe_https(&dead).await);
        let loopback = Endpoint {
            registry: addr,
            repository: "x".into(),
            insecure: true,
            mirror: false,
        };
        assert_eq!(scheme_for(&loopback).await, "http");
        let secure = Endpoint {
            registry: "registry.example.com".into(),
            insecure: false,
            ..loopback
        };
        assert_eq!(scheme_for(&secure).await, "https");
    }

    #[test]
    fn verifier_checks_size_and_digest() {
        let data = b"hello";
        let digest = format!("sha256:{}", hex::encode(Sha256::digest(data)));
        let mut v = Verifier::new(&digest, 5);
        v.update(data).unwrap();
        v.finish().unwrap();
        let mut v = Verifier::new(&digest, 4);
        assert!(matches!(v.update(data), Err(Error::SizeMismatch { .. })));
        let mut v = Verifier::new(&digest, 5);
        v.update(b"hellO").unwrap();
        assert!(matches!(v.finish(), Err(Error::DigestMismatch { .. })));
        let mut v = Verifier::new(&digest, 5);
        v.update(b"hel").unwrap();
        assert!(matches!(v.finish(), Err(Error::SizeMismatch { .. })));
    }
}
