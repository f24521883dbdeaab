//! Daemon life cycle: configuration, logging, the runroot lock, the socket,
//! serving both CRI services, and shutdown on SIGTERM/SIGINT.

use std::fs::File;
use std::io::Write as _;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, bail};
use crius_proto::image_service_server::ImageServiceServer;
use crius_proto::runtime_service_server::RuntimeServiceServer;
use nix::fcntl::{Flock, FlockArg};
use tokio::net::UnixListener;
use tokio_stream::wrappers::UnixListenerStream;

use crate::Cri;
use crate::cli::{Cli, Command, Overrides};
use crate::config::{
    CgroupManager, Config, DEFAULT_CONFIG_PATH, LogFormat, LogLevel, SeccompDefault,
};

/// kubelet's own limit for CRI messages; large ListContainers answers need it.
const MAX_MESSAGE_SIZE: usize = 16 * 1024 * 1024;

// An ExecSync reply carries the captured output plus a few bytes of
// framing; it must always encode under the limit (else: OutOfRange).
const _: () = assert!(container::runtime::MAX_EXEC_OUTPUT + 1024 <= MAX_MESSAGE_SIZE);

/// How long in-flight RPCs get to finish after SIGTERM.
const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(2);

pub fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command.unwrap_or(Command::Serve) {
        Command::Version => {
            println!(
                "crius version {}\ncommit {}\nCRI API {}",
                env!("CARGO_PKG_VERSION"),
                env!("CRIUS_GIT_COMMIT"),
                crate::runtime::RUNTIME_API_VERSION,
            );
            Ok(())
        }
        Command::Config { default } => {
            let config = if default {
                Config::default()
            } else {
                load_config(cli.overrides)?
            };
            print!("{}", config.to_commented_toml());
            Ok(())
        }
        Command::Pinns(args) => {
            // No config, no logging, no async runtime: this process only
            // unshares, pins and exits.
            let out = pod_sandbox::ns::pinns_main(&args)
                .map_err(|message| anyhow::anyhow!("pinns: {message}"))?;
            println!("{}", serde_json::to_string(&out)?);
            Ok(())
        }
        Command::Pause { .. } => pod_sandbox::infra::pause_main(),
        Command::ExecWait { args } => crate::exec_wait::main(&args),
        Command::Serve => {
            limit_malloc_arenas();
            let config = load_config(cli.overrides)?;
            init_logging(&config);
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .thread_name("crius")
                .worker_threads(worker_threads())
                .max_blocking_threads(MAX_BLOCKING_THREADS)
                .thread_keep_alive(BLOCKING_KEEP_ALIVE)
                .build()
                .context("failed to start the async runtime")?;
            runtime.block_on(serve(config))
        }
    }
}

/// More workers than this buy a CRI server nothing: its RPCs wait on
/// child processes and disks, not on CPU, and each worker costs a stack
/// and, without [`limit_malloc_arenas`], a malloc arena.
const MAX_WORKER_THREADS: usize = 4;

/// Blocking work (file system calls, setns helpers) is short; the pool's
/// default of 512 threads only matters as a ceiling for a burst.
const MAX_BLOCKING_THREADS: usize = 64;

/// An idle blocking thread goes after this, giving its stack back.
const BLOCKING_KEEP_ALIVE: std::time::Duration = std::time::Duration::from_secs(2);

/// One worker per core, at most [`MAX_WORKER_THREADS`].
fn worker_threads() -> usize {
    std::thread::available_parallelism()
        .map_or(2, std::num::NonZeroUsize::get)
        .min(MAX_WORKER_THREADS)
}

/// glibc gives every thread that allocates its own malloc arena (up to 8
/// per core), each holding on to freed memory of its own: with a pool of
/// worker and blocking threads that is megabytes of RSS for a daemon that
/// is idle most of the time. Two arenas keep contention low enough for an
/// RPC server whose calls mostly wait on child processes. Called before
/// any thread exists, as mallopt must be.
#[allow(unsafe_code)]
fn limit_malloc_arenas() {
    // SAFETY: mallopt only sets an allocator parameter; it is called
    // before the async runtime (or any other thread) is started.
    let ok = unsafe { libc::mallopt(libc::M_ARENA_MAX, 2) };
    if ok != 1 {
        eprintln!("crius: mallopt(M_ARENA_MAX) failed; malloc keeps its default arenas");
    }
}

fn load_config(overrides: Overrides) -> anyhow::Result<Config> {
    let (path, required) = match &overrides.config {
        Some(path) => (path.clone(), true),
        None => (PathBuf::from(DEFAULT_CONFIG_PATH), false),
    };
    let mut config = Config::load(&path, required)?;
    overrides.apply(&mut config);
    config.validate().context("invalid command-line flag")?;
    Ok(config)
}

fn init_logging(config: &Config) {
    let level = match config.log.level {
        LogLevel::Error => "error",
        LogLevel::Warn => "warn",
        LogLevel::Info => "info",
        LogLevel::Debug => "debug",
        LogLevel::Trace => "trace",
    };
    // Our crates at the configured level; the HTTP/2 stack stays quiet
    // unless asked for with RUST_LOG.
    let filter = std::env::var("RUST_LOG").unwrap_or_else(|_| {
        format!(
            "warn,crius={level},pod_sandbox={level},image_service={level},container={level},streaming={level}"
        )
    });
    let builder = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .with_writer(std::io::stderr);
    match config.log.format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

async fn serve(mut config: Config) -> anyhow::Result<()> {
    for dir in [&mut config.root, &mut config.runroot] {
        create_private_dir(dir)?;
        // Mount points are matched against /proc/self/mountinfo, which
        // shows resolved paths: a root given through a symlink would make
        // every "is it mounted?" check miss, and unmounts silently skipped.
        *dir = std::fs::canonicalize(&*dir)
            .with_context(|| format!("failed to resolve {:?}", &*dir))?;
    }
    let _lock = lock_runroot(&config.runroot)?;
    // The runroot lock does not cover a daemon with another runroot on the
    // same socket path: check before recovery touches anything.
    refuse_live_socket(&config.api.listen)?;
    // Recovery before the socket: a client that can connect sees ready
    // stores, with the leftovers of an interrupted pull, RunPodSandbox or
    // CreateContainer already cleaned up.
    let images = open_images(&config)?;
    let sandboxes = pod_sandbox::Sandboxes::open(sandbox_options(&config))
        .await
        .context("failed to load pod sandboxes")?;
    let containers = open_containers(&config).await?;
    let socket = config.api.listen.clone();
    let cri = Arc::new(Cri::new(config, images, sandboxes, containers));
    cri.events
        .forward_container_events(cri.sandboxes.clone(), cri.containers.clone());
    cri.containers
        .watch_exits()
        .context("failed to watch for container exits")?;
    let streaming = start_streaming(&cri).await?;
    tracing::info!(url = streaming.base_url(), "streaming server started");
    let _ = cri.streaming.set(streaming);
    if cri.config.metrics.enable {
        let address = crate::metrics::start_server(&cri, &cri.config.metrics.address)?;
        cri.metrics.watch_oom_kills(cri.containers.clone());
        tracing::info!(%address, "metrics server started");
    }
    // The socket last: a client that can connect finds every part up, and
    // a part that fails to start leaves no socket behind.
    let listener = bind_socket(&socket)?;
    tracing::info!(
        ?socket,
        version = env!("CARGO_PKG_VERSION"),
        "crius serving CRI v1"
    );
    let (stopping_tx, stopping_rx) = tokio::sync::oneshot::channel::<()>();
    let events = cri.events.clone();
    let shutdown = async move {
        shutdown_signal().await;
        events.close();
        let _ = stopping_tx.send(());
    };
    let server = tonic::transport::Server::builder()
        .layer(crate::deadline::DeadlineLayer)
        .add_service(
            RuntimeServiceServer::from_arc(cri.clone())
                .max_decoding_message_size(MAX_MESSAGE_SIZE)
                .max_encoding_message_size(MAX_MESSAGE_SIZE),
        )
        .add_service(
            ImageServiceServer::from_arc(cri.clone())
                .max_decoding_message_size(MAX_MESSAGE_SIZE)
                .max_encoding_message_size(MAX_MESSAGE_SIZE),
        )
        .serve_with_incoming_shutdown(UnixListenerStream::new(listener), shutdown);
    // A graceful shutdown waits for clients to hang up, and the kubelet never
    // does: give in-flight RPCs a grace period, then exit anyway.
    let grace = async {
        if stopping_rx.await.is_ok() {
            tokio::time::sleep(SHUTDOWN_GRACE).await;
            tracing::info!(grace = ?SHUTDOWN_GRACE, "clients still connected after grace period");
        } else {
            std::future::pending::<()>().await;
        }
    };
    let result = tokio::select! {
        result = server => result,
        () = grace => Ok(()),
    };
    if let Err(err) = std::fs::remove_file(&socket) {
        tracing::warn!(?socket, %err, "failed to remove socket");
    }
    if let Some(streaming) = cri.streaming.get() {
        streaming.shutdown().await;
    }
    cri.sandboxes.close();
    result.context("gRPC server failed")?;
    tracing::info!("crius stopped");
    Ok(())
}

/// The image store lives in `<root>/images`; opening it removes what an
/// interrupted pull left behind.
fn open_images(config: &Config) -> anyhow::Result<image_service::ImageService> {
    let image = &config.image;
    let options = image_service::Options {
        store_dir: config.root.join("images"),
        registries_conf: image.registries_conf.clone(),
        insecure_registries: image.insecure_registries.clone(),
        auth_file: (!image.auth_file.as_os_str().is_empty()).then(|| image.auth_file.clone()),
        max_concurrent_downloads: image.max_concurrent_downloads,
        pinned_images: image.pinned_images.clone(),
        layer_limits: image_service::unpack::LayerLimits {
            max_header_bytes: image.max_layer_header_bytes,
            max_unpacked_bytes: image.max_layer_unpacked_bytes,
            max_entries: image.max_layer_entries,
        },
        download_progress_timeout: std::time::Duration::from_secs(
            image.download_progress_timeout_secs,
        ),
    };
    image_service::ImageService::open(options).context("failed to open the image store")
}

/// Containers are recovered after the sandboxes, whose namespaces they
/// join: running ones stay running, those that exited while crius was down
/// get their real exit code, half-created ones are cleaned up.
async fn open_containers(config: &Config) -> anyhow::Result<container::ContainerManager> {
    let runtime = &config.runtime;
    let mut options = container::RuntimeConfig::new(
        &config.root,
        &config.runroot,
        crate::cri::which(&runtime.runtime_path).unwrap_or_else(|| runtime.runtime_path.clone()),
        crate::cri::which(&runtime.conmon_path).unwrap_or_else(|| runtime.conmon_path.clone()),
    );
    options.cgroup_manager = match runtime.cgroup_manager {
        CgroupManager::Cgroupfs => container::CgroupManager::Cgroupfs,
        CgroupManager::Systemd => container::CgroupManager::Systemd,
    };
    // The daemon still starts (RuntimeConfig reports the driver, recovery
    // works), but every CreateContainer will be refused; say why up front.
    let marker = std::path::Path::new(container::spec::SYSTEMD_BOOTED_MARKER);
    if runtime.cgroup_manager == CgroupManager::Systemd && !marker.is_dir() {
        tracing::warn!(
            ?marker,
            "cgroup_manager is systemd but systemd is not running: containers cannot be created"
        );
    }
    options.seccomp_default = match runtime.seccomp_default {
        SeccompDefault::RuntimeDefault => container::seccomp::NodeDefault::RuntimeDefault,
        SeccompDefault::Unconfined => container::seccomp::NodeDefault::Unconfined,
    };
    options.pids_limit = runtime.pids_limit;
    options.undo_timeout = std::time::Duration::from_secs(config.sandbox.cleanup_timeout_secs);
    options.cdi_spec_dirs = runtime.cdi_spec_dirs.clone();
    options.hooks_dirs = runtime.hooks_dirs.clone();
    let manager = container::ContainerManager::new(options)
        .context("failed to set up the container store")?;
    let report = manager
        .recover()
        .await
        .context("failed to recover containers")?;
    tracing::info!(
        restored = report.restored.len(),
        cleaned = report.cleaned.len(),
        failed = report.failed.len(),
        "containers recovered"
    );
    for (path, reason) in &report.failed {
        tracing::warn!(?path, %reason, "container record not loaded");
    }
    Ok(manager)
}

/// The Exec/Attach/PortForward server; it starts after the containers have
/// recovered, since every session works on them.
async fn start_streaming(cri: &Arc<Cri>) -> anyhow::Result<streaming::StreamingServer> {
    use std::time::Duration;
    let api = &cri.config.api;
    let ip: std::net::IpAddr = api
        .streaming_address
        .parse()
        .context("invalid api.streaming_address")?;
    let tls = (!api.streaming_tls_cert.as_os_str().is_empty()).then(|| streaming::TlsFiles {
        cert: api.streaming_tls_cert.clone(),
        key: api.streaming_tls_key.clone(),
    });
    let config = streaming::Config {
        addr: std::net::SocketAddr::new(ip, api.streaming_port),
        token_ttl: Duration::from_secs(api.streaming_token_ttl_secs),
        idle_timeout: Duration::from_secs(api.streaming_idle_timeout_secs),
        tls,
        ..streaming::Config::default()
    };
    let backend = Arc::new(crate::streaming_backend::CriBackend {
        containers: cri.containers.clone(),
        sandboxes: cri.sandboxes.clone(),
    });
    streaming::StreamingServer::start(config, backend)
        .await
        .context("failed to start the streaming server")
}

fn sandbox_options(config: &Config) -> pod_sandbox::Options {
    use std::time::Duration;
    pod_sandbox::Options {
        root: config.root.clone(),
        runroot: config.runroot.clone(),
        // Our own binary, even if the file was replaced since we started.
        exe: "/proc/self/exe".into(),
        cni_config_dir: config.network.cni_config_dir.clone(),
        cni_plugin_dirs: config.network.cni_plugin_dirs.clone(),
        cni_cache_dir: config.network.cache_dir(&config.root),
        cni_timeout: Duration::from_secs(config.network.cni_timeout_secs),
        shm_size: config.sandbox.shm_size,
        runtime_handlers: config.runtime.handlers.clone(),
        host_resolv_conf: "/etc/resolv.conf".into(),
        cleanup_timeout: Duration::from_secs(config.sandbox.cleanup_timeout_secs),
    }
}

fn create_private_dir(dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("failed to create {dir:?}"))?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
        .with_context(|| format!("failed to set permissions of {dir:?}"))
}

/// One crius per runroot: a second daemon would fight over the same pinned
/// namespaces and records, so it must refuse instead of taking the socket.
fn lock_runroot(runroot: &Path) -> anyhow::Result<Flock<File>> {
    let path = runroot.join("crius.lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(&path)
        .with_context(|| format!("failed to open lock file {path:?}"))?;
    let mut lock = match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
        Ok(lock) => lock,
        Err((_, nix::errno::Errno::EWOULDBLOCK)) => {
            let holder = std::fs::read_to_string(&path).unwrap_or_default();
            bail!(
                "another crius (pid {}) is already running with runroot {runroot:?} (lock {path:?} is held)",
                holder.trim()
            );
        }
        Err((_, errno)) => bail!("failed to lock {path:?}: {errno}"),
    };
    lock.set_len(0).context("failed to truncate lock file")?;
    write!(lock, "{}", std::process::id()).context("failed to write lock file")?;
    Ok(lock)
}

/// Fails if something accepts connections on the socket `path`: another
/// daemon (maybe with another runroot, so the lock did not stop us) is
/// serving there, and unlinking its socket would cut its clients off.
fn refuse_live_socket(path: &Path) -> anyhow::Result<()> {
    let is_socket = std::fs::symlink_metadata(path)
        .is_ok_and(|m| std::os::unix::fs::FileTypeExt::is_socket(&m.file_type()));
    if is_socket && std::os::unix::net::UnixStream::connect(path).is_ok() {
        bail!(
            "socket {path:?} is in use: another process accepts connections on it; \
             stop it or give this crius another api.listen"
        );
    }
    Ok(())
}

/// Binds the socket with mode 0600. A leftover socket file nobody accepts
/// connections on is stale, so it is replaced; a live one, or anything
/// else at that path, is refused rather than deleted.
fn bind_socket(path: &Path) -> anyhow::Result<UnixListener> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).with_context(|| format!("failed to create {parent:?}"))?;
    }
    match std::fs::symlink_metadata(path) {
        Ok(meta) if std::os::unix::fs::FileTypeExt::is_socket(&meta.file_type()) => {
            refuse_live_socket(path)?;
            std::fs::remove_file(path)
                .with_context(|| format!("failed to remove stale socket {path:?}"))?;
        }
        Ok(_) => bail!("{path:?} exists and is not a socket"),
        Err(_) => {}
    }
    // The umask closes the window between bind and chmod in which another
    // user could connect.
    let old = nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o177));
    let bound = UnixListener::bind(path);
    nix::sys::stat::umask(old);
    let listener = bound.with_context(|| format!("failed to listen on {path:?}"))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .with_context(|| format!("failed to set permissions of {path:?}"))?;
    Ok(listener)
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::error!("failed to install signal handlers; stop crius with SIGKILL");
        return std::future::pending().await;
    };
    let name = tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
    };
    tracing::info!(signal = name, "shutting down");
}
