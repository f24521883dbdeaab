//! The CRI ImageService against real registries (hack/test-registry.sh) and
//! small fake registries in this file for the cases a real one cannot
//! produce (wrong digests, hostile layers, a stalled download).
//!
//! Needs `eval "$(hack/test-registry.sh up)"` first: the tests fail, never
//! skip, without `CRIUS_TEST_REGISTRY` and friends.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use crius_e2e::{Daemon, Dirs};
use crius_proto::image_service_client::ImageServiceClient;
use crius_proto::*;
use sha2::{Digest as _, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tonic::Code;
use tonic::transport::Channel;

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!("{name} is not set: run `eval \"$(hack/test-registry.sh up)\"` before the image e2e tests")
    })
}

fn registry() -> String {
    env("CRIUS_TEST_REGISTRY")
}

/// A port on 127.0.0.1 that nothing listens on.
fn dead_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

fn spec(image: &str) -> Option<ImageSpec> {
    Some(ImageSpec {
        image: image.to_owned(),
        ..Default::default()
    })
}

/// A daemon whose registries.conf is `conf` and with `extra` flags.
async fn daemon_with(conf: &str, extra: &[&str]) -> Daemon {
    let dirs = Dirs::new();
    let path = dirs.base.path().join("registries.conf");
    std::fs::write(&path, conf).unwrap();
    let mut args = vec!["--registries-conf", path.to_str().unwrap()];
    args.extend_from_slice(extra);
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    Daemon::start_with(dirs, &refs).await
}

async fn daemon() -> Daemon {
    daemon_with("", &[]).await
}

async fn pull(
    client: &mut ImageServiceClient<Channel>,
    image: &str,
) -> Result<String, tonic::Status> {
    pull_auth(client, image, None).await
}

async fn pull_auth(
    client: &mut ImageServiceClient<Channel>,
    image: &str,
    auth: Option<AuthConfig>,
) -> Result<String, tonic::Status> {
    client
        .pull_image(PullImageRequest {
            image: spec(image),
            auth,
            sandbox_config: None,
        })
        .await
        .map(|r| r.into_inner().image_ref)
}

async fn status(client: &mut ImageServiceClient<Channel>, image: &str) -> Option<Image> {
    client
        .image_status(ImageStatusRequest {
            image: spec(image),
            verbose: false,
        })
        .await
        .unwrap()
        .into_inner()
        .image
}

async fn list(client: &mut ImageServiceClient<Channel>) -> Vec<Image> {
    client
        .list_images(ListImagesRequest::default())
        .await
        .unwrap()
        .into_inner()
        .images
}

async fn remove(client: &mut ImageServiceClient<Channel>, image: &str) {
    client
        .remove_image(RemoveImageRequest { image: spec(image) })
        .await
        .unwrap_or_else(|e| panic!("remove {image}: {e:?}"));
}

fn store_dir(daemon: &Daemon) -> PathBuf {
    daemon.dirs.root().join("images")
}

fn entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("read {dir:?}: {e}"))
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[tokio::test]
async fn pull_by_tag_then_status_list_and_fs_info() {
    let reg = registry();
    let daemon = daemon().await;
    let mut c = daemon.images().await;
    let id = pull(&mut c, &format!("{reg}/busybox")).await.unwrap();
    assert!(id.starts_with("sha256:") && id.len() == 71, "{id}");

    let image = status(&mut c, &format!("{reg}/busybox:latest"))
        .await
        .expect("status by tag");
    assert_eq!(image.id, id);
    assert_eq!(image.repo_tags, [format!("{reg}/busybox:latest")]);
    assert_eq!(image.repo_digests.len(), 1);
    assert!(image.repo_digests[0].starts_with(&format!("{reg}/busybox@sha256:")));
    assert!(image.size > 0);
    assert_eq!(image.uid, Some(Int64Value { value: 0 }));
    // by digest, by id, by id without the algorithm, by unique prefix
    for name in [
        image.repo_digests[0].clone(),
        id.clone(),
        id[7..].to_owned(),
        id[7..19].to_owned(),
    ] {
        assert_eq!(
            status(&mut c, &name).await.map(|i| i.id),
            Some(id.clone()),
            "{name}"
        );
    }
    assert!(
        status(&mut c, &format!("{reg}/nonexistent"))
            .await
            .is_none()
    );
    let err = c
        .image_status(ImageStatusRequest {
            image: spec("Not/Valid"),
            verbose: false,
        })
        .await;
    // an invalid name is simply not found by ImageStatus
    assert!(err.unwrap().into_inner().image.is_none());

    let verbose = c
        .image_status(ImageStatusRequest {
            image: spec(&id),
            verbose: true,
        })
        .await
        .unwrap()
        .into_inner();
    let info: serde_json::Value = serde_json::from_str(&verbose.info["info"]).unwrap();
    assert_eq!(info["architecture"], "amd64");
    let layers = info["layers"].as_array().unwrap();
    assert!(!layers.is_empty());
    // the unpacked top layer is a real tree with busybox in it
    let dirs: Vec<PathBuf> = layers
        .iter()
        .map(|l| PathBuf::from(l["dir"].as_str().unwrap()))
        .collect();
    assert!(
        dirs.iter().any(|d| d.join("bin/busybox").exists()),
        "{dirs:?}"
    );
    assert!(
        dirs.iter()
            .all(|d| d.starts_with(store_dir(&daemon).join("l")))
    );

    let all = list(&mut c).await;
    assert_eq!(
        all.iter().map(|i| i.id.as_str()).collect::<Vec<_>>(),
        [id.as_str()]
    );
    let filtered = c
        .list_images(ListImagesRequest {
            filter: Some(ImageFilter {
                image: spec(&format!("{reg}/busybox")),
            }),
        })
        .await
        .unwrap()
        .into_inner()
        .images;
    assert_eq!(filtered.len(), 1);
    let none = c
        .list_images(ListImagesRequest {
            filter: Some(ImageFilter {
                image: spec("nothing:here"),
            }),
        })
        .await
        .unwrap()
        .into_inner()
        .images;
    assert!(none.is_empty());

    let fs = c
        .image_fs_info(ImageFsInfoRequest {})
        .await
        .unwrap()
        .into_inner();
    let usage = &fs.image_filesystems[0];
    assert_eq!(
        usage.fs_id.as_ref().unwrap().mountpoint,
        store_dir(&daemon).to_string_lossy()
    );
    assert!(usage.used_bytes.as_ref().unwrap().value > 500_000);
    assert!(usage.inodes_used.as_ref().unwrap().value > 10);
    assert!(usage.timestamp > 0);
    assert!(
        daemon.log().contains("pulled image"),
        "final progress line missing"
    );
}

#[tokio::test]
async fn invalid_references_are_invalid_argument() {
    let daemon = daemon().await;
    let mut c = daemon.images().await;
    for bad in ["UPPER/case", "busybox:", "busybox@sha256:123", ""] {
        let err = pull(&mut c, bad).await.unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{bad:?}: {err:?}");
    }
}

#[tokio::test]
async fn pull_by_digest() {
    let reg = registry();
    let daemon = daemon().await;
    let mut c = daemon.images().await;
    let id = pull(&mut c, &format!("{reg}/busybox:1.0")).await.unwrap();
    let digest_ref = status(&mut c, &id).await.unwrap().repo_digests[0].clone();
    remove(&mut c, &id).await;
    assert!(list(&mut c).await.is_empty());

    assert_eq!(pull(&mut c, &digest_ref).await.unwrap(), id);
    let image = status(&mut c, &digest_ref).await.unwrap();
    assert_eq!(image.repo_digests, std::slice::from_ref(&digest_ref));
    assert!(image.repo_tags.is_empty(), "a digest pull adds no tag");
    // a digest that does not exist is NotFound
    let missing = format!("{reg}/busybox@sha256:{}", "0".repeat(64));
    let err = pull(&mut c, &missing).await.unwrap_err();
    assert_eq!(err.code(), Code::NotFound, "{err:?}");
}

#[tokio::test]
async fn multi_arch_index_picks_amd64() {
    let reg = registry();
    let daemon = daemon().await;
    let mut c = daemon.images().await;
    let id = pull(&mut c, &format!("{reg}/busybox-multiarch"))
        .await
        .unwrap();
    let verbose = c
        .image_status(ImageStatusRequest {
            image: spec(&id),
            verbose: true,
        })
        .await
        .unwrap()
        .into_inner();
    let info: serde_json::Value = serde_json::from_str(&verbose.info["info"]).unwrap();
    assert_eq!(info["architecture"], "amd64");
    assert_eq!(info["os"], "linux");
    // the repo digest is the index's, the manifest is the amd64 one
    assert_ne!(info["repoDigest"], info["manifestDigest"]);
    let image = verbose.image.unwrap();
    assert!(image.repo_digests[0].ends_with(info["repoDigest"].as_str().unwrap()));
}

#[tokio::test]
async fn basic_auth_from_request_and_from_auth_file() {
    let reg = env("CRIUS_TEST_AUTH_REGISTRY");
    let user = env("CRIUS_TEST_AUTH_USER");
    let password = env("CRIUS_TEST_AUTH_PASSWORD");
    let image = format!("{reg}/busybox");
    let daemon = daemon().await;
    let mut c = daemon.images().await;

    let err = pull(&mut c, &image).await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");
    assert!(err.message().contains(&reg), "{}", err.message());
    let wrong = AuthConfig {
        username: user.clone(),
        password: "wrong".into(),
        ..Default::default()
    };
    assert!(pull_auth(&mut c, &image, Some(wrong)).await.is_err());

    let id = pull_auth(
        &mut c,
        &image,
        Some(AuthConfig {
            username: user.clone(),
            password: password.clone(),
            ..Default::default()
        }),
    )
    .await
    .unwrap();
    remove(&mut c, &id).await;
    let encoded = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    pull_auth(
        &mut c,
        &image,
        Some(AuthConfig {
            auth: encoded.clone(),
            ..Default::default()
        }),
    )
    .await
    .unwrap();
    drop(c);
    drop(daemon);

    // the global auth file, used when the request has no credentials
    let dirs = Dirs::new();
    let auth_file = dirs.base.path().join("auth.json");
    std::fs::write(
        &auth_file,
        serde_json::json!({"auths": {reg.clone(): {"auth": encoded}}}).to_string(),
    )
    .unwrap();
    let daemon =
        Daemon::start_with(dirs.clone(), &["--auth-file", auth_file.to_str().unwrap()]).await;
    let mut c = daemon.images().await;
    pull(&mut c, &image).await.unwrap();
}

#[tokio::test]
async fn pull_through_a_mirror() {
    let reg = registry();
    // the origin is a dead local port: only the mirror can serve this
    let conf = format!(
        r#"
        [[registry]]
        prefix = "mirrored.crius.invalid"
        location = "127.0.0.1:{dead}"
        [[registry.mirror]]
        location = "{reg}"
        "#,
        dead = dead_port()
    );
    let daemon = daemon_with(&conf, &[]).await;
    let mut c = daemon.images().await;
    let id = pull(&mut c, "mirrored.crius.invalid/busybox")
        .await
        .unwrap();
    let image = status(&mut c, "mirrored.crius.invalid/busybox")
        .await
        .unwrap();
    assert_eq!(image.id, id);
    assert_eq!(image.repo_tags, ["mirrored.crius.invalid/busybox:latest"]);
}

#[tokio::test]
async fn mirror_down_falls_back_to_the_origin() {
    let reg = registry();
    let dead = dead_port();
    let conf = format!(
        r#"
        [[registry]]
        prefix = "{reg}"
        [[registry.mirror]]
        location = "127.0.0.1:{dead}"
        "#
    );
    let daemon = daemon_with(&conf, &[]).await;
    let mut c = daemon.images().await;
    pull(&mut c, &format!("{reg}/busybox")).await.unwrap();
    let log = daemon.plain_log();
    assert!(
        log.contains("mirror failed") && log.contains(&format!("127.0.0.1:{dead}")),
        "no fallback in the log"
    );
}

#[tokio::test]
async fn wildcard_mirror_serves_every_registry() {
    let reg = registry();
    let conf = format!(
        r#"
        [[registry]]
        prefix = "*"
        [[registry.mirror]]
        location = "{reg}"
        "#
    );
    let daemon = daemon_with(&conf, &[]).await;
    let mut c = daemon.images().await;
    pull(&mut c, "anywhere.crius.invalid/busybox:1.0")
        .await
        .unwrap();
    assert!(
        status(&mut c, "anywhere.crius.invalid/busybox:1.0")
            .await
            .is_some()
    );
}

#[tokio::test]
async fn insecure_registry_from_registries_conf_and_flag() {
    let reg = registry();
    let conf = format!(
        r#"
        [[registry]]
        prefix = "insecure.crius.invalid"
        location = "{reg}"
        insecure = true
        "#
    );
    let daemon = daemon_with(&conf, &["--insecure-registry", "other.crius.invalid"]).await;
    let mut c = daemon.images().await;
    pull(&mut c, "insecure.crius.invalid/busybox")
        .await
        .unwrap();
    let log = daemon.plain_log();
    assert!(
        log.contains("registry=") && log.contains("insecure=true"),
        "the endpoint was not marked insecure"
    );
}

#[tokio::test]
async fn blocked_registry_is_refused() {
    let reg = registry();
    let conf = format!("[[registry]]\nprefix = \"{reg}\"\nblocked = true\n");
    let daemon = daemon_with(&conf, &[]).await;
    let mut c = daemon.images().await;
    let err = pull(&mut c, &format!("{reg}/busybox")).await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert!(err.message().contains("blocked"), "{}", err.message());
}

#[tokio::test]
async fn concurrent_pulls_download_each_layer_once() {
    let reg = registry();
    let daemon = daemon().await;
    let image = format!("{reg}/busybox-large");
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..4 {
        let mut c = daemon.images().await;
        let image = image.clone();
        tasks.spawn(async move { pull(&mut c, &image).await.unwrap() });
    }
    // ListImages and ImageStatus answer while the pulls run
    let mut c = daemon.images().await;
    let started = std::time::Instant::now();
    list(&mut c).await;
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "ListImages blocked behind a pull"
    );
    let ids: Vec<String> = tasks.join_all().await;
    assert!(ids.windows(2).all(|w| w[0] == w[1]), "{ids:?}");
    let layers = status(&mut c, &image).await.unwrap();
    assert_eq!(layers.id, ids[0]);
    let unpacked = daemon.log().matches("layer unpacked").count();
    let layer_dirs = entries(&store_dir(&daemon).join("l")).len();
    assert!(layer_dirs >= 2, "busybox-large has several layers");
    assert_eq!(
        unpacked, layer_dirs,
        "some layer was downloaded more than once"
    );
}

#[tokio::test]
async fn restart_and_crash_keep_images() {
    let reg = registry();
    let mut daemon = daemon().await;
    let mut c = daemon.images().await;
    let a = pull(&mut c, &format!("{reg}/busybox")).await.unwrap();
    let b = pull(&mut c, &format!("{reg}/busybox-user")).await.unwrap();
    daemon.restart().await;
    let mut c = daemon.images().await;
    let mut ids: Vec<String> = list(&mut c).await.into_iter().map(|i| i.id).collect();
    ids.sort();
    let mut want = vec![a.clone(), b.clone()];
    want.sort();
    assert_eq!(ids, want);
    let user = status(&mut c, &format!("{reg}/busybox-user"))
        .await
        .unwrap();
    assert!(
        user.uid.is_some_and(|u| u.value != 0) || !user.username.is_empty(),
        "busybox-user has a non-root user: {user:?}"
    );
    daemon.crash_and_restart().await;
    let mut c = daemon.images().await;
    assert_eq!(list(&mut c).await.len(), 2);
    assert!(
        status(&mut c, &format!("{reg}/busybox:latest"))
            .await
            .is_some()
    );
}

#[tokio::test]
async fn remove_by_tag_keeps_other_tags_and_by_id_removes_all() {
    let reg = registry();
    let daemon = daemon().await;
    let mut c = daemon.images().await;
    let latest = format!("{reg}/busybox:latest");
    let one = format!("{reg}/busybox:1.0");
    let id = pull(&mut c, &latest).await.unwrap();
    let id1 = pull(&mut c, &one).await.unwrap();
    assert_eq!(
        id, id1,
        "busybox and busybox:1.0 are the same image in the test registry"
    );
    let image = status(&mut c, &id).await.unwrap();
    assert_eq!(image.repo_tags.len(), 2, "{image:?}");

    remove(&mut c, &one).await;
    let image = status(&mut c, &id)
        .await
        .expect("other tag keeps the image");
    assert_eq!(image.repo_tags, std::slice::from_ref(&latest));
    assert!(status(&mut c, &one).await.is_none());
    assert!(!entries(&store_dir(&daemon).join("l")).is_empty());

    pull(&mut c, &one).await.unwrap();
    remove(&mut c, &id).await;
    assert!(status(&mut c, &latest).await.is_none());
    assert!(status(&mut c, &one).await.is_none());
    assert!(list(&mut c).await.is_empty());
    assert!(
        entries(&store_dir(&daemon).join("l")).is_empty(),
        "unreferenced layers stay"
    );
    assert!(entries(&store_dir(&daemon).join("layers")).is_empty());
    // missing images are removed successfully
    remove(&mut c, &id).await;
    remove(&mut c, &format!("{reg}/never-pulled")).await;

    // the last tag takes the image with it
    pull(&mut c, &latest).await.unwrap();
    remove(&mut c, &latest).await;
    assert!(list(&mut c).await.is_empty());
}

#[tokio::test]
async fn registry_down_is_unavailable_and_names_the_registry() {
    let daemon = daemon().await;
    let mut c = daemon.images().await;
    let reg = format!("127.0.0.1:{}", dead_port());
    let err = pull(&mut c, &format!("{reg}/busybox")).await.unwrap_err();
    assert_eq!(err.code(), Code::Unavailable, "{err:?}");
    assert!(err.message().contains(&reg), "{}", err.message());
}

// ---------------------------------------------------------------------------
// A fake registry for content a real registry would not serve.

#[derive(Clone)]
struct Blob {
    content_type: &'static str,
    data: Arc<Vec<u8>>,
    /// Serve only this many bytes, then hang (a stalled download).
    stall_after: Option<usize>,
}

struct FakeRegistry {
    addr: String,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeRegistry {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn sha(data: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(data)))
}

/// An image `name:latest` with one layer. `served_layer` is what the blob
/// URL returns (differs from `layer` for the wrong-digest case).
fn fake_image(
    routes: &mut HashMap<String, Blob>,
    name: &str,
    layer: Vec<u8>,
    served_layer: Option<Vec<u8>>,
    stall_after: Option<usize>,
) {
    let layer_digest = sha(&layer);
    let config = serde_json::json!({
        "architecture": "amd64",
        "os": "linux",
        "config": {"Cmd": ["/bin/sh"]},
        "rootfs": {"type": "layers", "diff_ids": [layer_digest]},
    })
    .to_string()
    .into_bytes();
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": sha(&config),
            "size": config.len(),
        },
        "layers": [{
            "mediaType": "application/vnd.oci.image.layer.v1.tar",
            "digest": layer_digest,
            "size": layer.len(),
        }],
    })
    .to_string()
    .into_bytes();
    let blob = |content_type, data: Vec<u8>, stall_after| Blob {
        content_type,
        data: Arc::new(data),
        stall_after,
    };
    routes.insert(
        format!("/v2/{name}/manifests/latest"),
        blob("application/vnd.oci.image.manifest.v1+json", manifest, None),
    );
    routes.insert(
        format!("/v2/{name}/blobs/{}", sha(&config)),
        blob("application/octet-stream", config, None),
    );
    routes.insert(
        format!("/v2/{name}/blobs/{layer_digest}"),
        blob(
            "application/octet-stream",
            served_layer.unwrap_or(layer),
            stall_after,
        ),
    );
}

/// Bearer-token auth as Docker Hub does it: `/v2/` challenges with a token
/// realm, the realm trades basic credentials (GET) or a refresh token
/// (POST, the identity-token grant) for `token`.
#[derive(Clone)]
struct BearerAuth {
    user: &'static str,
    password: &'static str,
    refresh_token: &'static str,
    token: &'static str,
}

async fn fake_registry(routes: HashMap<String, Blob>) -> FakeRegistry {
    fake_registry_with(routes, None).await
}

async fn fake_registry_with(
    routes: HashMap<String, Blob>,
    auth: Option<BearerAuth>,
) -> FakeRegistry {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let routes = Arc::new(routes);
    let realm = format!("http://{addr}/token");
    let task = tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                return;
            };
            let routes = routes.clone();
            let auth = auth.clone();
            let realm = realm.clone();
            tokio::spawn(async move {
                let mut request = Vec::new();
                let mut buf = [0u8; 4096];
                let header_end = loop {
                    if let Some(i) = request.windows(4).position(|w| w == b"\r\n\r\n") {
                        break i + 4;
                    }
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => request.extend_from_slice(&buf[..n]),
                    }
                };
                let head_text = String::from_utf8_lossy(&request[..header_end]).into_owned();
                let header = |name: &str| {
                    head_text.lines().find_map(|l| {
                        let (k, v) = l.split_once(':')?;
                        k.trim()
                            .eq_ignore_ascii_case(name)
                            .then(|| v.trim().to_owned())
                    })
                };
                let length: usize = header("content-length")
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0);
                while request.len() < header_end + length {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => request.extend_from_slice(&buf[..n]),
                    }
                }
                let body = String::from_utf8_lossy(&request[header_end..]).into_owned();
                let method = head_text.split_whitespace().next().unwrap_or("").to_owned();
                let target = head_text
                    .split_whitespace()
                    .nth(1)
                    .unwrap_or("/")
                    .to_owned();
                let path = target.split('?').next().unwrap_or("/").to_owned();
                let head = method == "HEAD";
                let mut extra = String::new();
                let (status, blob) = if let Some(auth) = &auth {
                    let authorization = header("authorization").unwrap_or_default();
                    if path == "/token" {
                        let basic = format!(
                            "Basic {}",
                            base64::engine::general_purpose::STANDARD
                                .encode(format!("{}:{}", auth.user, auth.password))
                        );
                        let refresh_ok = method == "POST"
                            && body.contains("grant_type=refresh_token")
                            && body.contains(&format!("refresh_token={}", auth.refresh_token));
                        if (method == "GET" && authorization == basic) || refresh_ok {
                            let json = serde_json::json!({"token": auth.token, "access_token": auth.token});
                            (
                                "200 OK",
                                Some(Blob {
                                    content_type: "application/json",
                                    data: Arc::new(json.to_string().into_bytes()),
                                    stall_after: None,
                                }),
                            )
                        } else {
                            ("401 Unauthorized", None)
                        }
                    } else if authorization != format!("Bearer {}", auth.token) {
                        extra = format!(
                            "WWW-Authenticate: Bearer realm=\"{realm}\",service=\"fake\"\r\n"
                        );
                        ("401 Unauthorized", None)
                    } else {
                        match routes.get(&path) {
                            Some(blob) => ("200 OK", Some(blob.clone())),
                            None if path == "/v2/" => ("200 OK", None),
                            None => ("404 Not Found", None),
                        }
                    }
                } else {
                    match routes.get(&path) {
                        Some(blob) => ("200 OK", Some(blob.clone())),
                        None if path == "/v2/" => ("200 OK", None),
                        None => ("404 Not Found", None),
                    }
                };
                let (content_type, data, stall) = match &blob {
                    Some(b) => (b.content_type, b.data.as_slice(), b.stall_after),
                    None => ("application/json", &b"{}"[..], None),
                };
                let mut response = format!(
                    "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n{extra}",
                    data.len()
                );
                if blob.is_some() && path.contains("/manifests/") {
                    response.push_str(&format!("Docker-Content-Digest: {}\r\n", sha(data)));
                }
                response.push_str("\r\n");
                if stream.write_all(response.as_bytes()).await.is_err() || head {
                    return;
                }
                let end = stall.unwrap_or(data.len()).min(data.len());
                let _ = stream.write_all(&data[..end]).await;
                if stall.is_some() {
                    tokio::time::sleep(Duration::from_secs(3600)).await;
                }
            });
        }
    });
    FakeRegistry { addr, task }
}

/// A tar whose entries have raw (unchecked) names, links and kinds.
fn hostile_tar(entries: &[(&str, tar::EntryType, &str, &[u8])]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for (name, kind, link, data) in entries {
        let mut h = tar::Header::new_ustar();
        h.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
        h.as_old_mut().linkname[..link.len()].copy_from_slice(link.as_bytes());
        h.set_entry_type(*kind);
        h.set_size(data.len() as u64);
        h.set_mode(0o755);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(1);
        h.set_cksum();
        builder.append(&h, *data).unwrap();
    }
    builder.into_inner().unwrap()
}

#[tokio::test]
async fn hostile_layers_are_rejected_and_nothing_escapes() {
    let outside = tempfile::tempdir().unwrap();
    let victim = outside.path().join("victim");
    std::fs::create_dir(&victim).unwrap();
    let victim_s = victim.to_str().unwrap().to_owned();
    let deep = format!("../../../../../../../../../..{victim_s}/dotdot");
    let mut routes = HashMap::new();
    let regular = tar::EntryType::Regular;
    fake_image(
        &mut routes,
        "dotdot",
        hostile_tar(&[(&deep, regular, "", b"x")]),
        None,
        None,
    );
    fake_image(
        &mut routes,
        "absolute",
        hostile_tar(&[(&format!("{victim_s}/absolute"), regular, "", b"x")]),
        None,
        None,
    );
    fake_image(
        &mut routes,
        "symlink",
        hostile_tar(&[
            ("evil", tar::EntryType::Symlink, &victim_s, b""),
            ("evil/symlink", regular, "", b"x"),
        ]),
        None,
        None,
    );
    fake_image(
        &mut routes,
        "hardlink",
        hostile_tar(&[(
            "pw",
            tar::EntryType::Link,
            "../../../../../../../../etc/passwd",
            b"",
        )]),
        None,
        None,
    );
    let fake = fake_registry(routes).await;
    let daemon = daemon().await;
    let mut c = daemon.images().await;
    for name in ["dotdot", "absolute", "symlink", "hardlink"] {
        let err = pull(&mut c, &format!("{}/{name}", fake.addr))
            .await
            .unwrap_err();
        assert!(
            err.message().contains("is unsafe"),
            "{name}: {}",
            err.message()
        );
        assert_eq!(err.code(), Code::Internal, "{name}");
    }
    assert!(
        entries(&victim).is_empty(),
        "a layer wrote outside its dir: {:?}",
        entries(&victim)
    );
    assert!(list(&mut c).await.is_empty());
    let store = store_dir(&daemon);
    assert!(entries(&store.join("l")).is_empty());
    assert!(
        entries(&store.join("tmp")).is_empty(),
        "staging left behind"
    );
    assert!(entries(&store.join("records")).is_empty());
}

#[tokio::test]
async fn wrong_digest_is_rejected_and_nothing_is_stored() {
    let layer = hostile_tar(&[("hello", tar::EntryType::Regular, "", b"hello")]);
    let mut tampered = layer.clone();
    let at = tampered.len() - 1100;
    tampered[at] ^= 0xff;
    let mut routes = HashMap::new();
    fake_image(&mut routes, "tampered", layer, Some(tampered), None);
    let fake = fake_registry(routes).await;
    let daemon = daemon().await;
    let mut c = daemon.images().await;
    let err = pull(&mut c, &format!("{}/tampered", fake.addr))
        .await
        .unwrap_err();
    assert!(
        err.message().contains("failed verification"),
        "{}",
        err.message()
    );
    assert!(list(&mut c).await.is_empty());
    let store = store_dir(&daemon);
    assert!(entries(&store.join("l")).is_empty());
    assert!(entries(&store.join("tmp")).is_empty());
}

#[tokio::test]
async fn crash_mid_pull_leaves_no_half_image() {
    let big: Vec<u8> = (0..4_000_000u32).map(|i| (i % 251) as u8).collect();
    let layer = hostile_tar(&[("big", tar::EntryType::Regular, "", &big)]);
    let mut routes = HashMap::new();
    fake_image(&mut routes, "stalls", layer, None, Some(2_000_000));
    let fake = fake_registry(routes).await;
    let mut daemon = daemon().await;
    let mut c = daemon.images().await;
    let image = format!("{}/stalls", fake.addr);
    let pulling = tokio::spawn(async move { pull(&mut c, &image).await });
    // wait until the unpacker has written into staging
    let tmp = store_dir(&daemon).join("tmp");
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while entries(&tmp).is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "pull never started staging"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    daemon.crash_and_restart().await;
    let _ = pulling.await;
    let mut c = daemon.images().await;
    assert!(list(&mut c).await.is_empty());
    let store = store_dir(&daemon);
    assert!(
        entries(&store.join("tmp")).is_empty(),
        "staging survived a restart"
    );
    assert!(entries(&store.join("l")).is_empty());
    assert!(daemon.log().contains("interrupted pull"));
}

#[tokio::test]
async fn bearer_token_flow_with_password_registry_token_and_identity_token() {
    let auth = BearerAuth {
        user: "alice",
        password: "secret",
        refresh_token: "refresh-123",
        token: "token-abc",
    };
    let mut routes = HashMap::new();
    let layer = hostile_tar(&[("hello", tar::EntryType::Regular, "", b"hello")]);
    fake_image(&mut routes, "private", layer, None, None);
    let fake = fake_registry_with(routes, Some(auth)).await;
    let image = format!("{}/private", fake.addr);
    let daemon = daemon().await;
    let mut c = daemon.images().await;

    let err = pull(&mut c, &image).await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");
    assert!(err.message().contains(&fake.addr), "{}", err.message());

    let cases = [
        AuthConfig {
            username: "alice".into(),
            password: "secret".into(),
            ..Default::default()
        },
        AuthConfig {
            registry_token: "token-abc".into(),
            ..Default::default()
        },
        AuthConfig {
            identity_token: "refresh-123".into(),
            ..Default::default()
        },
    ];
    for auth in cases {
        let id = pull_auth(&mut c, &image, Some(auth.clone()))
            .await
            .unwrap_or_else(|e| panic!("{auth:?}: {e:?}"));
        remove(&mut c, &id).await;
    }
    let bad = AuthConfig {
        identity_token: "stolen".into(),
        ..Default::default()
    };
    let err = pull_auth(&mut c, &image, Some(bad)).await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");
}
