//! Hostile images, registries and records: every input crius reads from an
//! image or a registry is bounded, fails the pull with a clear error and
//! leaves nothing behind, and the daemon stays small and responsive.
//!
//! The layer bombs (`hostile-*`) are built by hack/images/hostile-layouts.py
//! and pushed by `eval "$(hack/test-registry.sh up)"`, which these tests
//! need: they fail, never skip, without `CRIUS_TEST_REGISTRY`.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crius_e2e::{Daemon, Dirs};
use crius_proto::image_service_client::ImageServiceClient;
use crius_proto::*;
use sha2::{Digest as _, Sha256};
use tonic::Code;
use tonic::transport::Channel;

fn registry() -> String {
    std::env::var("CRIUS_TEST_REGISTRY").unwrap_or_else(|_| {
        panic!("CRIUS_TEST_REGISTRY is not set: run `eval \"$(hack/test-registry.sh up)\"` first")
    })
}

fn spec(image: &str) -> Option<ImageSpec> {
    Some(ImageSpec {
        image: image.to_owned(),
        ..Default::default()
    })
}

async fn daemon_with(extra: &[&str]) -> Daemon {
    let dirs = Dirs::new();
    let conf = dirs.base.path().join("registries.conf");
    std::fs::write(&conf, "").unwrap();
    let mut args = vec!["--registries-conf", conf.to_str().unwrap()];
    args.extend_from_slice(extra);
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    Daemon::start_with(dirs, &refs).await
}

async fn pull(
    client: &mut ImageServiceClient<Channel>,
    image: &str,
) -> Result<String, tonic::Status> {
    client
        .pull_image(PullImageRequest {
            image: spec(image),
            auth: None,
            sandbox_config: None,
        })
        .await
        .map(|r| r.into_inner().image_ref)
}

async fn list(client: &mut ImageServiceClient<Channel>) -> Vec<Image> {
    client
        .list_images(ListImagesRequest { filter: None })
        .await
        .unwrap()
        .into_inner()
        .images
}

fn entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("read {dir:?}: {e}"))
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

fn store_dir(daemon: &Daemon) -> PathBuf {
    daemon.dirs.root().join("images")
}

/// The daemon's peak resident set so far, in bytes (`VmHWM`).
fn peak_rss(daemon: &Daemon) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{}/status", daemon.pid())).unwrap();
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .expect("VmHWM in /proc/<pid>/status");
    kib * 1024
}

/// GET `path` from `host:port` over plain HTTP/1.0; the body.
fn http_get(addr: &str, path: &str, accept: &str) -> Vec<u8> {
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.0\r\nHost: {addr}\r\nAccept: {accept}\r\n\r\n"
    )
    .unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).unwrap();
    let at = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("http response head");
    let head = String::from_utf8_lossy(&response[..at]);
    assert!(
        head.starts_with("HTTP/1.1 200") || head.starts_with("HTTP/1.0 200"),
        "{head}"
    );
    response[at + 4..].to_vec()
}

/// The digest of the one layer of `name:latest` in the test registry.
fn layer_digest(name: &str) -> String {
    let manifest = http_get(
        &registry(),
        &format!("/v2/{name}/manifests/latest"),
        "application/vnd.oci.image.manifest.v1+json",
    );
    let manifest: serde_json::Value = serde_json::from_slice(&manifest).unwrap();
    manifest["layers"][0]["digest"]
        .as_str()
        .expect("layer digest")
        .to_owned()
}

/// Pulls `name` and checks the failure: InvalidArgument naming the layer
/// and the config key of the limit, quickly, with nothing stored.
async fn assert_bounded_failure(daemon: &Daemon, name: &str, key: &str) {
    let mut c = daemon.images().await;
    let image = format!("{}/{name}", registry());
    let started = Instant::now();
    let err = pull(&mut c, &image).await.unwrap_err();
    let elapsed = started.elapsed();
    let digest = layer_digest(name);
    assert_eq!(
        err.code(),
        Code::InvalidArgument,
        "{name}: {}",
        err.message()
    );
    assert!(
        err.message().contains(&digest),
        "{name}: the error does not name layer {digest}: {}",
        err.message()
    );
    assert!(
        err.message().contains(key),
        "{name}: the error does not name {key}: {}",
        err.message()
    );
    // Well under the minute the unbounded pull did not finish in.
    assert!(
        elapsed < Duration::from_secs(30),
        "{name}: took {elapsed:?}"
    );
    assert!(list(&mut c).await.is_empty(), "{name}: an image was stored");
    let store = store_dir(daemon);
    assert!(
        entries(&store.join("tmp")).is_empty(),
        "{name}: staging left behind: {:?}",
        entries(&store.join("tmp"))
    );
    assert!(
        entries(&store.join("l")).is_empty(),
        "{name}: a layer was stored"
    );
}

#[tokio::test]
async fn tar_header_and_sparse_bombs_fail_fast_in_bounded_memory() {
    let daemon = daemon_with(&[]).await;
    for name in ["hostile-longname", "hostile-longlink", "hostile-pax"] {
        assert_bounded_failure(&daemon, name, "image.max_layer_header_bytes").await;
    }
    assert_bounded_failure(&daemon, "hostile-sparse", "image.max_layer_unpacked_bytes").await;
    let peak = peak_rss(&daemon);
    assert!(
        peak < 256 * 1024 * 1024,
        "crius peaked at {} MiB unpacking 1 MB layers",
        peak / 1024 / 1024
    );
    // Still serving: a good image pulls afterwards.
    let mut c = daemon.images().await;
    pull(&mut c, &format!("{}/busybox:latest", registry()))
        .await
        .unwrap();
}

#[tokio::test]
async fn layer_size_and_entry_limits_come_from_the_config() {
    let dirs = Dirs::new();
    std::fs::write(
        dirs.base.path().join("crius.toml"),
        "[image]\nmax_layer_unpacked_bytes = 16777216\nmax_layer_entries = 1000\n",
    )
    .unwrap();
    let conf = dirs.base.path().join("registries.conf");
    std::fs::write(&conf, "").unwrap();
    let daemon = Daemon::start_with(dirs, &["--registries-conf", conf.to_str().unwrap()]).await;
    assert_bounded_failure(&daemon, "hostile-zeros", "image.max_layer_unpacked_bytes").await;
    assert_bounded_failure(&daemon, "hostile-entries", "image.max_layer_entries").await;
    let peak = peak_rss(&daemon);
    assert!(
        peak < 256 * 1024 * 1024,
        "crius peaked at {} MiB",
        peak / 1024 / 1024
    );
}

#[tokio::test]
async fn a_corrupt_image_record_is_set_aside_and_the_daemon_starts() {
    let reg = registry();
    let mut daemon = daemon_with(&[]).await;
    let mut c = daemon.images().await;
    let good = pull(&mut c, &format!("{reg}/busybox:latest"))
        .await
        .unwrap();
    let bad = pull(&mut c, &format!("{reg}/busybox-user:latest"))
        .await
        .unwrap();
    assert_ne!(good, bad);
    let status = daemon.stop();
    assert!(status.success(), "{status}");
    let records = store_dir(&daemon).join("records");
    let hex = bad.strip_prefix("sha256:").unwrap_or(&bad);
    let record = records.join(format!("{hex}.json"));
    assert!(
        record.exists(),
        "no record at {record:?}: {:?}",
        entries(&records)
    );
    std::fs::write(&record, b"{").unwrap();

    daemon.respawn().await;
    let mut c = daemon.images().await;
    let ids: Vec<String> = list(&mut c).await.into_iter().map(|i| i.id).collect();
    assert_eq!(
        ids,
        std::slice::from_ref(&good),
        "the good image is listed, the corrupt one is not"
    );
    assert!(!record.exists(), "the corrupt record stayed in place");
    let aside = records.join(format!("{hex}.json.corrupt"));
    assert_eq!(
        std::fs::read(&aside).unwrap(),
        b"{",
        "not set aside at {aside:?}"
    );
    let log = daemon.plain_log();
    assert!(
        log.contains("unreadable image store record set aside") && log.contains(hex),
        "the corrupt record is not reported:\n{log}"
    );
    // The image can be pulled again.
    let again = pull(&mut c, &format!("{reg}/busybox-user:latest"))
        .await
        .unwrap();
    assert_eq!(again, bad);
}

// ---------------------------------------------------------------------------
// A fake registry for what a real one does not do: endless bodies, stalls.

#[derive(Clone)]
enum Route {
    /// 200 with this content type and body.
    Data(&'static str, Arc<Vec<u8>>),
    /// 200, then spaces until the client hangs up; with a Content-Length
    /// header of this many bytes if given.
    Endless(Option<u64>),
    /// 200 with a Content-Length, then nothing, forever.
    Stall(u64),
    /// This error status, then spaces until the client hangs up.
    EndlessError(u16),
    /// 401 with a bearer challenge whose realm is this server's `/token`.
    BearerChallenge,
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

async fn fake_registry(routes: HashMap<String, Route>) -> FakeRegistry {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let routes = Arc::new(routes);
    let realm = format!("http://{addr}/token");
    let task = tokio::spawn(async move {
        let mut conns = tokio::task::JoinSet::new();
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                return;
            };
            let routes = routes.clone();
            let realm = realm.clone();
            conns.spawn(async move {
                let mut request = Vec::new();
                let mut buf = [0u8; 4096];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => request.extend_from_slice(&buf[..n]),
                    }
                }
                let head = String::from_utf8_lossy(&request).into_owned();
                let path = head.split_whitespace().nth(1).unwrap_or("/");
                let path = path.split('?').next().unwrap_or("/").to_owned();
                let head_only = head.starts_with("HEAD ");
                let route = routes.get(&path).cloned();
                let response = match &route {
                    None if path == "/v2/" => {
                        "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}".to_owned()
                    }
                    None => "HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}".to_owned(),
                    Some(Route::Data(content_type, data)) => format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                        data.len()
                    ),
                    Some(Route::Endless(length)) => format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: application/vnd.oci.image.manifest.v1+json\r\n{}Connection: close\r\n\r\n",
                        length.map(|n| format!("Content-Length: {n}\r\n")).unwrap_or_default()
                    ),
                    Some(Route::EndlessError(status)) => format!(
                        "HTTP/1.1 {status} Oops\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n"
                    ),
                    Some(Route::BearerChallenge) => format!(
                        "HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Bearer realm=\"{realm}\",service=\"fake\"\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{{}}"
                    ),
                    Some(Route::Stall(length)) => format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: {length}\r\nConnection: close\r\n\r\n"
                    ),
                };
                if stream.write_all(response.as_bytes()).await.is_err() || head_only {
                    return;
                }
                match route {
                    Some(Route::Data(_, data)) => {
                        let _ = stream.write_all(&data).await;
                    }
                    Some(Route::Endless(_) | Route::EndlessError(_)) => {
                        let spaces = vec![b' '; 64 * 1024];
                        while stream.write_all(&spaces).await.is_ok() {}
                    }
                    Some(Route::Stall(_)) => {
                        // Hold the connection open without a byte until the
                        // client goes away.
                        let _ = stream.read(&mut buf).await;
                    }
                    None | Some(Route::BearerChallenge) => {}
                }
            });
        }
    });
    FakeRegistry { addr, task }
}

fn sha(data: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(data)))
}

#[tokio::test]
async fn endless_or_huge_registry_bodies_fail_in_bounded_memory() {
    let mut routes = HashMap::new();
    routes.insert(
        "/v2/endless/manifests/latest".to_owned(),
        Route::Endless(None),
    );
    routes.insert(
        "/v2/huge/manifests/latest".to_owned(),
        Route::Endless(Some(1 << 40)),
    );
    fake_image(
        &mut routes,
        "errbody",
        vec![(tar_of("f", 1024), Some(Route::EndlessError(500)))],
    );
    let fake = fake_registry(routes).await;
    // A registry whose token endpoint answers forever.
    let mut token_routes = HashMap::new();
    token_routes.insert("/v2/".to_owned(), Route::BearerChallenge);
    token_routes.insert("/token".to_owned(), Route::Endless(None));
    let token_fake = fake_registry(token_routes).await;
    let daemon = daemon_with(&[]).await;
    let mut c = daemon.images().await;
    let started = Instant::now();
    let err = pull(&mut c, &format!("{}/anything", token_fake.addr))
        .await
        .unwrap_err();
    assert!(
        err.message().contains(&token_fake.addr) && err.message().contains("no token"),
        "{}",
        err.message()
    );
    assert!(started.elapsed() < Duration::from_secs(30));
    // An endless error body: only its start is read.
    let started = Instant::now();
    let err = pull(&mut c, &format!("{}/errbody", fake.addr))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unavailable, "{}", err.message());
    assert!(err.message().contains(&fake.addr), "{}", err.message());
    assert!(started.elapsed() < Duration::from_secs(30));
    for name in ["endless", "huge"] {
        let started = Instant::now();
        let err = pull(&mut c, &format!("{}/{name}", fake.addr))
            .await
            .unwrap_err();
        assert_eq!(
            err.code(),
            Code::InvalidArgument,
            "{name}: {}",
            err.message()
        );
        assert!(
            err.message().contains("is larger than 8388608 bytes")
                && err.message().contains(&fake.addr),
            "{name}: {}",
            err.message()
        );
        assert!(started.elapsed() < Duration::from_secs(30), "{name}");
    }
    let peak = peak_rss(&daemon);
    assert!(
        peak < 256 * 1024 * 1024,
        "crius peaked at {} MiB",
        peak / 1024 / 1024
    );
    assert!(list(&mut c).await.is_empty());
}

/// An image `name:latest` of uncompressed tar layers. Each layer's blob is
/// served as `serve` says, or as itself.
fn fake_image(
    routes: &mut HashMap<String, Route>,
    name: &str,
    layers: Vec<(Vec<u8>, Option<Route>)>,
) -> Vec<String> {
    let digests: Vec<String> = layers.iter().map(|(tar, _)| sha(tar)).collect();
    let config = serde_json::json!({
        "architecture": "amd64",
        "os": "linux",
        "config": {"Cmd": ["/bin/sh"]},
        "rootfs": {"type": "layers", "diff_ids": digests},
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
        "layers": layers.iter().map(|(tar, _)| serde_json::json!({
            "mediaType": "application/vnd.oci.image.layer.v1.tar",
            "digest": sha(tar),
            "size": tar.len(),
        })).collect::<Vec<_>>(),
    })
    .to_string()
    .into_bytes();
    routes.insert(
        format!("/v2/{name}/manifests/latest"),
        Route::Data(
            "application/vnd.oci.image.manifest.v1+json",
            Arc::new(manifest),
        ),
    );
    routes.insert(
        format!("/v2/{name}/blobs/{}", sha(&config)),
        Route::Data("application/octet-stream", Arc::new(config)),
    );
    for (tar, serve) in layers {
        let digest = sha(&tar);
        let route = serve.unwrap_or(Route::Data("application/octet-stream", Arc::new(tar)));
        routes.insert(format!("/v2/{name}/blobs/{digest}"), route);
    }
    digests
}

/// A one-file tar of `size` bytes of noise (so it is not a quick download).
fn tar_of(name: &str, size: usize) -> Vec<u8> {
    let data: Vec<u8> = (0..size).map(|i| (i * 7 % 251) as u8).collect();
    let mut builder = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_ustar();
    h.set_size(data.len() as u64);
    h.set_mode(0o644);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(1);
    builder.append_data(&mut h, name, &data[..]).unwrap();
    builder.into_inner().unwrap()
}

#[tokio::test]
async fn a_failed_layer_of_a_parallel_pull_leaves_no_staging_dir() {
    let stalled = tar_of("stalled", 1024);
    let good = tar_of("good", 4 * 1024 * 1024);
    let mut tampered = good.clone();
    tampered[1024] ^= 0xff;
    let mut routes = HashMap::new();
    let len = stalled.len() as u64;
    fake_image(
        &mut routes,
        "mixed",
        vec![
            (stalled, Some(Route::Stall(len))),
            (
                good,
                Some(Route::Data("application/octet-stream", Arc::new(tampered))),
            ),
        ],
    );
    let fake = fake_registry(routes).await;
    let daemon = daemon_with(&[]).await;
    let mut c = daemon.images().await;
    let err = pull(&mut c, &format!("{}/mixed", fake.addr))
        .await
        .unwrap_err();
    assert!(
        err.message().contains("failed verification"),
        "{}",
        err.message()
    );
    // When the RPC answers, every layer task has cleaned up after itself.
    let store = store_dir(&daemon);
    assert!(
        entries(&store.join("tmp")).is_empty(),
        "staging left behind: {:?}",
        entries(&store.join("tmp"))
    );
    assert!(entries(&store.join("l")).is_empty());
    assert!(list(&mut c).await.is_empty());
}

#[tokio::test]
async fn stalled_downloads_fail_on_the_progress_deadline_and_free_their_slots() {
    let mut routes = HashMap::new();
    let layer = tar_of("never", 1024);
    let len = layer.len() as u64;
    let digests = fake_image(&mut routes, "stall", vec![(layer, Some(Route::Stall(len)))]);
    let fake = fake_registry(routes).await;
    let daemon = daemon_with(&[
        "--download-progress-timeout-secs",
        "2",
        "--max-concurrent-downloads",
        "2",
    ])
    .await;
    let stalls: Vec<_> = (0..3)
        .map(|_| {
            let image = format!("{}/stall", fake.addr);
            let socket = daemon.dirs.socket();
            tokio::spawn(async move {
                let mut c = ImageServiceClient::new(crius_e2e::connect(&socket).await.unwrap());
                let started = Instant::now();
                let result =
                    tokio::time::timeout(Duration::from_secs(60), pull(&mut c, &image)).await;
                (result, started.elapsed())
            })
        })
        .collect();
    // Meanwhile a pull from a good registry gets a slot.
    let mut c = daemon.images().await;
    let good = tokio::time::timeout(
        Duration::from_secs(30),
        pull(&mut c, &format!("{}/busybox:latest", registry())),
    )
    .await
    .expect("the good pull waited behind stalled ones");
    good.unwrap();
    for stall in stalls {
        let (result, elapsed) = stall.await.unwrap();
        let err = result.expect("a stalled pull never failed").unwrap_err();
        assert_eq!(err.code(), Code::DeadlineExceeded, "{}", err.message());
        assert!(
            err.message().contains(&digests[0]) && err.message().contains("no progress for 2 s"),
            "{}",
            err.message()
        );
        assert!(elapsed < Duration::from_secs(30), "{elapsed:?}");
    }
    assert!(entries(&store_dir(&daemon).join("tmp")).is_empty());
}

#[tokio::test]
async fn a_client_that_goes_away_frees_its_download_slot() {
    let mut routes = HashMap::new();
    let layer = tar_of("never", 1024);
    let len = layer.len() as u64;
    fake_image(&mut routes, "stall", vec![(layer, Some(Route::Stall(len)))]);
    let fake = fake_registry(routes).await;
    // One slot; the default progress deadline (60 s) is far beyond this
    // test's bounds.
    let daemon = daemon_with(&["--max-concurrent-downloads", "1"]).await;
    let mut c = daemon.images().await;
    let tmp = store_dir(&daemon).join("tmp");
    let image = format!("{}/stall", fake.addr);
    let abandoned = tokio::time::timeout(Duration::from_secs(3), pull(&mut c, &image)).await;
    assert!(
        abandoned.is_err(),
        "the stalled pull answered: {abandoned:?}"
    );
    let mut c = daemon.images().await;
    tokio::time::timeout(
        Duration::from_secs(30),
        pull(&mut c, &format!("{}/busybox:latest", registry())),
    )
    .await
    .expect("the abandoned pull still holds the only download slot")
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !entries(&tmp).is_empty() {
        assert!(
            Instant::now() < deadline,
            "staging left behind: {:?}",
            entries(&tmp)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `lowerdir=` dirs of every overlay mounted under the daemon's dirs, made
/// absolute (crius may mount with paths relative to the layer store).
fn overlay_lowerdirs(daemon: &Daemon) -> Vec<Vec<PathBuf>> {
    let base = daemon.dirs.base.path();
    let layers = store_dir(daemon).join("l");
    let text = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    text.lines()
        .filter(|line| {
            line.split(' ')
                .nth(4)
                .is_some_and(|m| Path::new(m).starts_with(base))
        })
        .filter(|line| line.contains(" - overlay "))
        .map(|line| {
            let options = line.rsplit(' ').next().unwrap_or("");
            options
                .split(',')
                .find_map(|o| o.strip_prefix("lowerdir="))
                .unwrap_or("")
                .split(':')
                .filter(|d| !d.is_empty())
                .map(|d| {
                    let d = Path::new(d);
                    if d.is_absolute() {
                        d.to_owned()
                    } else {
                        layers.join(d)
                    }
                })
                .collect()
        })
        .collect()
}

async fn remove_image(
    client: &mut ImageServiceClient<Channel>,
    image: &str,
) -> Result<(), tonic::Status> {
    client
        .remove_image(RemoveImageRequest { image: spec(image) })
        .await
        .map(|_| ())
}

#[tokio::test]
async fn remove_image_never_deletes_the_layers_of_a_container() {
    use crius_e2e::pods;
    let daemon = pods::daemon(&["busybox:latest"]).await;
    let mut images = daemon.images().await;
    let mut runtime = daemon.runtime().await;
    let pod = pods::run_pod(&daemon, "hold-image").await;
    let busybox = pods::image("busybox:latest");

    // A created container holds its image.
    let id = pods::create(
        &mut runtime,
        &pod,
        pods::container_config("holder", "busybox:latest", &["sleep", "3600"]),
    )
    .await
    .unwrap();
    let err = remove_image(&mut images, &busybox).await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "{}", err.message());
    assert!(
        err.message().contains(&id),
        "the container is not named: {}",
        err.message()
    );
    assert_eq!(list(&mut images).await.len(), 1);

    // Creates racing removals: whichever wins, no container is left on
    // missing lower dirs.
    let user_image = pods::image("busybox-user:latest");
    let mut created = Vec::new();
    for i in 0..12u64 {
        pull(&mut images, &user_image).await.unwrap();
        let config = pods::container_config(
            &format!("race-{i}"),
            "busybox-user:latest",
            &["sleep", "3600"],
        );
        let mut r = daemon.runtime().await;
        let mut im = daemon.images().await;
        let pod_ref = &pod;
        let image = user_image.clone();
        let (create, remove) = tokio::join!(
            async move { pods::create(&mut r, pod_ref, config).await },
            async move {
                tokio::time::sleep(Duration::from_millis(i * 25)).await;
                remove_image(&mut im, &image).await
            }
        );
        match (&create, &remove) {
            (Ok(_), Ok(())) => panic!("race {i}: both the create and the removal succeeded"),
            (Ok(_), Err(e)) => assert_eq!(
                e.code(),
                Code::FailedPrecondition,
                "race {i}: {}",
                e.message()
            ),
            (Err(e), Ok(())) => assert_eq!(e.code(), Code::NotFound, "race {i}: {}", e.message()),
            (Err(c), Err(r)) => panic!("race {i}: both failed: {} / {}", c.message(), r.message()),
        }
        if let Ok(id) = create {
            created.push(id);
        }
        for dirs in overlay_lowerdirs(&daemon) {
            for dir in dirs {
                assert!(
                    dir.is_dir(),
                    "race {i}: a container's lower dir {dir:?} is gone"
                );
            }
        }
    }
    assert!(
        !overlay_lowerdirs(&daemon).is_empty(),
        "no overlay mount was checked"
    );

    // Once its containers are gone, an image can be removed.
    for id in created.iter().chain([&id]) {
        runtime
            .remove_container(RemoveContainerRequest {
                container_id: id.clone(),
            })
            .await
            .unwrap();
    }
    remove_image(&mut images, &busybox).await.unwrap();
    let _ = remove_image(&mut images, &user_image).await;
    pods::teardown(&daemon, &pod).await;
    assert!(list(&mut images).await.is_empty());
}
