//! Daemon configuration: defaults, the TOML file with its drop-ins, CLI
//! overrides, validation, and the commented TOML that `crius config` prints.
//!
//! Precedence (lowest first): built-in defaults, the main file, each drop-in
//! in `<main>.d/*.toml` in lexical order, command-line flags. Every file is
//! checked on its own first so that an unknown key or a bad value is reported
//! with the file it came from.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Where crius looks for its configuration when `--config` is not given.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/crius/crius.toml";

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("failed to read config file {path:?}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid config file {path:?}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("invalid value for {key}: {message}")]
    Invalid { key: &'static str, message: String },
}

/// The effective configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Persistent state: images, layers, sandbox and container records.
    pub root: PathBuf,
    /// Volatile state: the lock file, pinned namespaces, exit files.
    pub runroot: PathBuf,
    pub api: ApiConfig,
    pub log: LogConfig,
    pub runtime: RuntimeConfig,
    pub network: NetworkConfig,
    pub image: ImageConfig,
    pub sandbox: SandboxConfig,
    pub metrics: MetricsConfig,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ApiConfig {
    pub listen: PathBuf,
    pub streaming_address: String,
    pub streaming_port: u16,
    pub streaming_token_ttl_secs: u64,
    pub streaming_idle_timeout_secs: u64,
    pub streaming_tls_cert: PathBuf,
    pub streaming_tls_key: PathBuf,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    Error,
    Warn,
    Info,
    Debug,
    Trace,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    pub level: LogLevel,
    pub format: LogFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum CgroupManager {
    Cgroupfs,
    Systemd,
}

impl CgroupManager {
    /// The name the kubelet expects in `RuntimeConfig` and `--cgroup-driver`.
    pub fn as_str(self) -> &'static str {
        match self {
            CgroupManager::Cgroupfs => "cgroupfs",
            CgroupManager::Systemd => "systemd",
        }
    }
}

/// The seccomp profile of containers that name none. Unconfined by
/// default: the CRI says an unset profile is unconfined, and the kubelet
/// asks for RuntimeDefault explicitly when its SeccompDefault is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
pub enum SeccompDefault {
    #[serde(rename = "runtime/default")]
    #[value(name = "runtime/default")]
    RuntimeDefault,
    #[serde(rename = "unconfined")]
    #[value(name = "unconfined")]
    Unconfined,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RuntimeConfig {
    pub runtime_path: PathBuf,
    pub conmon_path: PathBuf,
    pub cgroup_manager: CgroupManager,
    pub seccomp_default: SeccompDefault,
    /// Maximum tasks per container; 0 = no limit.
    pub pids_limit: i64,
    /// Accepted RuntimeClass handlers; the first is the default.
    pub handlers: Vec<String>,
    /// CDI spec directories, lowest priority first.
    pub cdi_spec_dirs: Vec<PathBuf>,
    /// OCI hook directories (oci-hooks(5)), lowest priority first.
    pub hooks_dirs: Vec<PathBuf>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NetworkConfig {
    pub cni_config_dir: PathBuf,
    pub cni_plugin_dirs: Vec<PathBuf>,
    /// Empty means `<root>/cni-cache`.
    pub cni_cache_dir: PathBuf,
    pub cni_timeout_secs: u64,
}

impl NetworkConfig {
    /// The effective CNI result cache directory.
    pub fn cache_dir(&self, root: &Path) -> PathBuf {
        if self.cni_cache_dir.as_os_str().is_empty() {
            root.join("cni-cache")
        } else {
            self.cni_cache_dir.clone()
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SandboxConfig {
    pub shm_size: u64,
    pub cleanup_timeout_secs: u64,
}

impl Default for SandboxConfig {
    fn default() -> Self {
        SandboxConfig {
            shm_size: 64 * 1024 * 1024,
            cleanup_timeout_secs: 120,
        }
    }
}

/// The daemon's own Prometheus metrics (not the CRI's pod and container
/// metrics, which go to the kubelet over gRPC).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MetricsConfig {
    pub enable: bool,
    /// `IP:PORT` of the HTTP endpoint serving `GET /metrics`.
    pub address: String,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        MetricsConfig {
            enable: false,
            address: "127.0.0.1:9090".into(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ImageConfig {
    pub registries_conf: PathBuf,
    pub insecure_registries: Vec<String>,
    pub auth_file: PathBuf,
    pub max_concurrent_downloads: usize,
    pub pinned_images: Vec<String>,
    pub max_layer_header_bytes: u64,
    pub max_layer_unpacked_bytes: u64,
    pub max_layer_entries: u64,
    pub download_progress_timeout_secs: u64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            root: "/var/lib/crius".into(),
            runroot: "/run/crius".into(),
            api: ApiConfig::default(),
            log: LogConfig::default(),
            runtime: RuntimeConfig::default(),
            network: NetworkConfig::default(),
            image: ImageConfig::default(),
            sandbox: SandboxConfig::default(),
            metrics: MetricsConfig::default(),
        }
    }
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            listen: "/run/crius/crius.sock".into(),
            streaming_address: "127.0.0.1".into(),
            streaming_port: 0,
            streaming_token_ttl_secs: 60,
            streaming_idle_timeout_secs: 4 * 60 * 60,
            streaming_tls_cert: PathBuf::new(),
            streaming_tls_key: PathBuf::new(),
        }
    }
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            level: LogLevel::Info,
            format: LogFormat::Text,
        }
    }
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        RuntimeConfig {
            runtime_path: "runc".into(),
            conmon_path: "conmon".into(),
            cgroup_manager: CgroupManager::Cgroupfs,
            seccomp_default: SeccompDefault::Unconfined,
            pids_limit: 0,
            handlers: vec!["runc".into()],
            cdi_spec_dirs: vec!["/etc/cdi".into(), "/var/run/cdi".into()],
            hooks_dirs: vec![
                "/usr/share/containers/oci/hooks.d".into(),
                "/etc/containers/oci/hooks.d".into(),
            ],
        }
    }
}

impl Default for NetworkConfig {
    fn default() -> Self {
        NetworkConfig {
            cni_config_dir: "/etc/cni/net.d".into(),
            cni_plugin_dirs: vec!["/opt/cni/bin".into(), "/usr/lib/cni".into()],
            cni_cache_dir: PathBuf::new(),
            cni_timeout_secs: 60,
        }
    }
}

impl Default for ImageConfig {
    fn default() -> Self {
        ImageConfig {
            registries_conf: "/etc/containers/registries.conf".into(),
            insecure_registries: Vec::new(),
            auth_file: PathBuf::new(),
            max_concurrent_downloads: 3,
            pinned_images: Vec::new(),
            max_layer_header_bytes: image_service::unpack::DEFAULT_MAX_HEADER_BYTES,
            max_layer_unpacked_bytes: image_service::unpack::DEFAULT_MAX_UNPACKED_BYTES,
            max_layer_entries: image_service::unpack::DEFAULT_MAX_ENTRIES,
            download_progress_timeout_secs: 60,
        }
    }
}

/// One documented key: `crius config` prints these as comments, and the
/// README's reference table is written from the same text.
struct KeyDoc {
    key: &'static str,
    flag: &'static str,
    doc: &'static str,
}

const SECTION_DOCS: &[(&str, &str)] = &[
    ("api", "The gRPC socket and the streaming server."),
    ("log", "Daemon logging (to stderr)."),
    (
        "runtime",
        "The OCI runtime, the container monitor and cgroups.",
    ),
    ("network", "CNI networking for pod sandboxes."),
    ("image", "Image pulls."),
    (
        "sandbox",
        "Pod sandboxes: pinned namespaces and per-pod files.",
    ),
    (
        "metrics",
        "Prometheus metrics of the daemon itself, served as GET /metrics.",
    ),
];

const KEY_DOCS: &[KeyDoc] = &[
    KeyDoc {
        key: "root",
        flag: "--root",
        doc: "Persistent state: images, layers, sandbox and container records.",
    },
    KeyDoc {
        key: "runroot",
        flag: "--runroot",
        doc: "Volatile state: lock file, pinned namespaces, exit files. One crius per runroot.",
    },
    KeyDoc {
        key: "api.listen",
        flag: "--listen",
        doc: "Unix socket the CRI gRPC services listen on (created mode 0600).",
    },
    KeyDoc {
        key: "api.streaming_address",
        flag: "--streaming-address",
        doc: "Address of the exec/attach/port-forward streaming server.",
    },
    KeyDoc {
        key: "api.streaming_port",
        flag: "--streaming-port",
        doc: "Port of the streaming server; 0 picks a free port.",
    },
    KeyDoc {
        key: "api.streaming_token_ttl_secs",
        flag: "--streaming-token-ttl-secs",
        doc: "How long an Exec/Attach/PortForward URL stays usable (single use).",
    },
    KeyDoc {
        key: "api.streaming_idle_timeout_secs",
        flag: "--streaming-idle-timeout-secs",
        doc: "Close streaming sessions that moved no data for this long.",
    },
    KeyDoc {
        key: "api.streaming_tls_cert",
        flag: "--streaming-tls-cert",
        doc: "PEM certificate chain: serve streaming over HTTPS (with the key); empty for HTTP.",
    },
    KeyDoc {
        key: "api.streaming_tls_key",
        flag: "--streaming-tls-key",
        doc: "PEM private key for --streaming-tls-cert.",
    },
    KeyDoc {
        key: "log.level",
        flag: "--log-level",
        doc: "One of error, warn, info, debug, trace.",
    },
    KeyDoc {
        key: "log.format",
        flag: "--log-format",
        doc: "text or json.",
    },
    KeyDoc {
        key: "runtime.runtime_path",
        flag: "--runtime-path",
        doc: "OCI runtime binary; a bare name is looked up in PATH.",
    },
    KeyDoc {
        key: "runtime.conmon_path",
        flag: "--conmon-path",
        doc: "conmon binary; a bare name is looked up in PATH.",
    },
    KeyDoc {
        key: "runtime.cgroup_manager",
        flag: "--cgroup-manager",
        doc: "cgroupfs or systemd; reported to the kubelet as the cgroup driver.",
    },
    KeyDoc {
        key: "runtime.seccomp_default",
        flag: "--seccomp-default",
        doc: "Seccomp profile of containers whose request names none: unconfined (as the CRI says; the kubelet sends RuntimeDefault itself when its SeccompDefault is on) or runtime/default (the built-in Docker-equivalent profile, an opt-in).",
    },
    KeyDoc {
        key: "runtime.pids_limit",
        flag: "--pids-limit",
        doc: "Maximum number of tasks in each container's cgroup; 0 means no limit.",
    },
    KeyDoc {
        key: "runtime.cdi_spec_dirs",
        flag: "--cdi-spec-dir",
        doc: "Directories of CDI spec files (*.json, *.yaml) describing devices that containers request by name (CRI cdi_devices or cdi.k8s.io/ annotations); a device defined in a later directory overrides one of an earlier directory. Missing directories are fine.",
    },
    KeyDoc {
        key: "runtime.hooks_dirs",
        flag: "--hooks-dir",
        doc: "Directories of OCI hook files (oci-hooks(5), *.json, version 1.0.0) read at each CreateContainer; a file replaces the same-named file of an earlier directory; invalid files are logged and skipped.",
    },
    KeyDoc {
        key: "network.cni_config_dir",
        flag: "--cni-config-dir",
        doc: "Directory of CNI network configs; the first in lexical order is used.",
    },
    KeyDoc {
        key: "network.cni_plugin_dirs",
        flag: "--cni-plugin-dir",
        doc: "Directories searched for CNI plugin binaries, in order.",
    },
    KeyDoc {
        key: "runtime.handlers",
        flag: "--runtime-handler",
        doc: "RuntimeClass handlers accepted in RunPodSandbox; the first is used when none is given.",
    },
    KeyDoc {
        key: "network.cni_cache_dir",
        flag: "--cni-cache-dir",
        doc: "CNI result cache (libcni format) so DEL works after a restart; empty means <root>/cni-cache, kept apart from /var/lib/cni so that crius instances with different roots never share it.",
    },
    KeyDoc {
        key: "network.cni_timeout_secs",
        flag: "--cni-timeout-secs",
        doc: "Timeout in seconds for one CNI plugin call and for the namespace helper.",
    },
    KeyDoc {
        key: "sandbox.shm_size",
        flag: "--shm-size",
        doc: "Size in bytes of each pod's /dev/shm tmpfs (pods with host IPC use the host's).",
    },
    KeyDoc {
        key: "sandbox.cleanup_timeout_secs",
        flag: "--sandbox-cleanup-timeout-secs",
        doc: "Budget in seconds for undoing a failed RunPodSandbox or CreateContainer; what is not undone by then stays listed (not ready, or unknown) until removed.",
    },
    KeyDoc {
        key: "image.registries_conf",
        flag: "--registries-conf",
        doc: "containers-registries.conf(5) file: mirrors, insecure and blocked registries.",
    },
    KeyDoc {
        key: "image.insecure_registries",
        flag: "--insecure-registry",
        doc: "Registries reached over plain HTTP (loopback registries always are).",
    },
    KeyDoc {
        key: "image.auth_file",
        flag: "--auth-file",
        doc: "docker config.json-format credentials used when a pull request carries none; empty for none.",
    },
    KeyDoc {
        key: "image.max_concurrent_downloads",
        flag: "--max-concurrent-downloads",
        doc: "Layer downloads running at once, across all pulls (at least 1).",
    },
    KeyDoc {
        key: "image.pinned_images",
        flag: "--pinned-image",
        doc: "Images (tag, digest or id) reported as pinned, so the kubelet never garbage-collects them.",
    },
    KeyDoc {
        key: "image.max_layer_header_bytes",
        flag: "--max-layer-header-bytes",
        doc: "Bytes of tar headers (GNU long name and long link, PAX extended header, sparse map) one layer entry may have; they are held in memory (at least 4096).",
    },
    KeyDoc {
        key: "image.max_layer_unpacked_bytes",
        flag: "--max-layer-unpacked-bytes",
        doc: "Bytes one layer may unpack to: its uncompressed tar stream, and the files it writes, sparse holes included.",
    },
    KeyDoc {
        key: "image.max_layer_entries",
        flag: "--max-layer-entries",
        doc: "Tar entries one layer may hold.",
    },
    KeyDoc {
        key: "image.download_progress_timeout_secs",
        flag: "--download-progress-timeout-secs",
        doc: "A blob download (or the wait for its response) that receives no byte for this long fails with DeadlineExceeded and frees its download slot.",
    },
    KeyDoc {
        key: "metrics.enable",
        flag: "--enable-metrics",
        doc: "Serve Prometheus metrics (RPC counts and latencies, image pulls, pods and containers by state, OOM kills) over HTTP.",
    },
    KeyDoc {
        key: "metrics.address",
        flag: "--metrics-address",
        doc: "IP:PORT of the metrics endpoint; plain HTTP without authentication, so keep it on loopback or a trusted network.",
    },
];

impl Config {
    /// Loads the main file (a missing file means defaults, unless `required`)
    /// and its drop-ins, then validates the result.
    pub fn load(path: &Path, required: bool) -> Result<Config, ConfigError> {
        let mut merged = toml::Table::new();
        match std::fs::read_to_string(path) {
            Ok(text) => merge(&mut merged, parse_file(path, &text)?),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !required => {}
            Err(source) => {
                return Err(ConfigError::Read {
                    path: path.to_owned(),
                    source,
                });
            }
        }
        for dropin in dropins(path)? {
            let text = std::fs::read_to_string(&dropin).map_err(|source| ConfigError::Read {
                path: dropin.clone(),
                source,
            })?;
            merge(&mut merged, parse_file(&dropin, &text)?);
        }
        let config: Config =
            toml::Value::Table(merged)
                .try_into()
                .map_err(|e: toml::de::Error| ConfigError::Parse {
                    path: path.to_owned(),
                    message: e.message().to_string(),
                })?;
        config.validate()?;
        Ok(config)
    }

    /// Checks what the types alone cannot.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let absolute: [(&'static str, &Path); 5] = [
            ("root", &self.root),
            ("runroot", &self.runroot),
            ("api.listen", &self.api.listen),
            ("network.cni_config_dir", &self.network.cni_config_dir),
            ("image.registries_conf", &self.image.registries_conf),
        ];
        for (key, path) in absolute {
            if !path.is_absolute() {
                return Err(ConfigError::Invalid {
                    key,
                    message: format!("{path:?} is not an absolute path"),
                });
            }
        }
        if !self.image.auth_file.as_os_str().is_empty() && !self.image.auth_file.is_absolute() {
            return Err(ConfigError::Invalid {
                key: "image.auth_file",
                message: format!("{:?} is not an absolute path", self.image.auth_file),
            });
        }
        if self.image.max_concurrent_downloads == 0 {
            return Err(ConfigError::Invalid {
                key: "image.max_concurrent_downloads",
                message: "must be at least 1".into(),
            });
        }
        if self.image.max_layer_header_bytes < 4096 {
            return Err(ConfigError::Invalid {
                key: "image.max_layer_header_bytes",
                message: format!(
                    "{} bytes is less than a path may need (4096)",
                    self.image.max_layer_header_bytes
                ),
            });
        }
        if self.image.download_progress_timeout_secs == 0 {
            return Err(ConfigError::Invalid {
                key: "image.download_progress_timeout_secs",
                message: "must be at least 1".into(),
            });
        }
        if self.image.max_layer_unpacked_bytes == 0 || self.image.max_layer_entries == 0 {
            return Err(ConfigError::Invalid {
                key: if self.image.max_layer_entries == 0 {
                    "image.max_layer_entries"
                } else {
                    "image.max_layer_unpacked_bytes"
                },
                message: "must be at least 1".into(),
            });
        }
        if !self.network.cni_cache_dir.as_os_str().is_empty()
            && !self.network.cni_cache_dir.is_absolute()
        {
            return Err(ConfigError::Invalid {
                key: "network.cni_cache_dir",
                message: format!("{:?} is not an absolute path", self.network.cni_cache_dir),
            });
        }
        if self.network.cni_timeout_secs == 0 {
            return Err(ConfigError::Invalid {
                key: "network.cni_timeout_secs",
                message: "must be at least 1".into(),
            });
        }
        if self.sandbox.shm_size < 1024 * 1024 {
            return Err(ConfigError::Invalid {
                key: "sandbox.shm_size",
                message: format!("{} bytes is less than 1 MiB", self.sandbox.shm_size),
            });
        }
        if self.runtime.handlers.is_empty() || self.runtime.handlers.iter().any(|h| h.is_empty()) {
            return Err(ConfigError::Invalid {
                key: "runtime.handlers",
                message: "at least one non-empty handler name is needed".into(),
            });
        }
        if self.network.cni_plugin_dirs.is_empty() {
            return Err(ConfigError::Invalid {
                key: "network.cni_plugin_dirs",
                message: "at least one directory is needed".into(),
            });
        }
        if let Some(dir) = self
            .network
            .cni_plugin_dirs
            .iter()
            .find(|d| !d.is_absolute())
        {
            return Err(ConfigError::Invalid {
                key: "network.cni_plugin_dirs",
                message: format!("{dir:?} is not an absolute path"),
            });
        }
        if self
            .api
            .streaming_address
            .parse::<std::net::IpAddr>()
            .is_err()
        {
            return Err(ConfigError::Invalid {
                key: "api.streaming_address",
                message: format!("{:?} is not an IP address", self.api.streaming_address),
            });
        }
        if self
            .metrics
            .address
            .parse::<std::net::SocketAddr>()
            .is_err()
        {
            return Err(ConfigError::Invalid {
                key: "metrics.address",
                message: format!("{:?} is not an IP:PORT address", self.metrics.address),
            });
        }
        if self.api.streaming_tls_cert.as_os_str().is_empty()
            != self.api.streaming_tls_key.as_os_str().is_empty()
        {
            return Err(ConfigError::Invalid {
                key: "api.streaming_tls_cert",
                message: "streaming_tls_cert and streaming_tls_key go together".into(),
            });
        }
        if self.api.streaming_token_ttl_secs == 0 {
            return Err(ConfigError::Invalid {
                key: "api.streaming_token_ttl_secs",
                message: "must be at least 1".into(),
            });
        }
        for (key, dirs) in [
            ("runtime.cdi_spec_dirs", &self.runtime.cdi_spec_dirs),
            ("runtime.hooks_dirs", &self.runtime.hooks_dirs),
        ] {
            if let Some(dir) = dirs.iter().find(|d| !d.is_absolute()) {
                return Err(ConfigError::Invalid {
                    key,
                    message: format!("{dir:?} is not an absolute path"),
                });
            }
        }
        for (key, path) in [
            ("runtime.runtime_path", &self.runtime.runtime_path),
            ("runtime.conmon_path", &self.runtime.conmon_path),
        ] {
            if path.as_os_str().is_empty() {
                return Err(ConfigError::Invalid {
                    key,
                    message: "must not be empty".into(),
                });
            }
        }
        Ok(())
    }

    /// The configuration as TOML with every key documented, for `crius config`.
    pub fn to_commented_toml(&self) -> String {
        let table = match toml::Value::try_from(self) {
            Ok(toml::Value::Table(t)) => t,
            _ => unreachable!("Config always serializes to a table"),
        };
        let mut out = String::from(
            "# crius configuration. Every key is optional; the values below are\n\
             # the effective ones. Drop-ins in <config>.d/*.toml override this file.\n\n",
        );
        for (key, value) in &table {
            if !value.is_table() {
                write_key(&mut out, key, key, value);
            }
        }
        for (section, value) in &table {
            let Some(entries) = value.as_table() else {
                continue;
            };
            let doc = SECTION_DOCS
                .iter()
                .find(|(s, _)| s == section)
                .map_or("", |(_, d)| d);
            let _ = writeln!(out, "\n# {doc}\n[{section}]");
            for (key, value) in entries {
                write_key(&mut out, &format!("{section}.{key}"), key, value);
            }
        }
        out
    }
}

fn write_key(out: &mut String, path: &str, key: &str, value: &toml::Value) {
    if let Some(doc) = KEY_DOCS.iter().find(|d| d.key == path) {
        let _ = writeln!(out, "# {} (flag {})", doc.doc, doc.flag);
    }
    let _ = writeln!(out, "{key} = {value}");
}

/// Parses one file and checks it on its own, so errors name that file.
fn parse_file(path: &Path, text: &str) -> Result<toml::Table, ConfigError> {
    let parse_err = |e: toml::de::Error| ConfigError::Parse {
        path: path.to_owned(),
        message: e.to_string().trim_end().to_string(),
    };
    let table: toml::Table = toml::from_str(text).map_err(parse_err)?;
    toml::from_str::<Config>(text).map_err(parse_err)?;
    Ok(table)
}

/// `<main>.d/*.toml` in lexical order; a missing directory means none.
fn dropins(main: &Path) -> Result<Vec<PathBuf>, ConfigError> {
    let mut dir = main.as_os_str().to_owned();
    dir.push(".d");
    let dir = PathBuf::from(dir);
    let entries = match std::fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => return Err(ConfigError::Read { path: dir, source }),
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|ext| ext == "toml"))
        .collect();
    files.sort();
    Ok(files)
}

/// Deep-merges `over` into `base`: tables merge key by key, anything else
/// (including arrays) is replaced.
fn merge(base: &mut toml::Table, over: toml::Table) {
    for (key, value) in over {
        match (base.get_mut(&key), value) {
            (Some(toml::Value::Table(b)), toml::Value::Table(o)) => merge(b, o),
            (_, value) => {
                base.insert(key, value);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn missing_optional_file_gives_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let config = Config::load(&dir.path().join("crius.toml"), false).unwrap();
        assert_eq!(config, Config::default());
    }

    #[test]
    fn missing_required_file_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let err = Config::load(&dir.path().join("nope.toml"), true).unwrap_err();
        assert!(matches!(err, ConfigError::Read { .. }), "{err}");
    }

    #[test]
    fn dropins_apply_in_lexical_order_and_merge_sections() {
        let dir = tempfile::tempdir().unwrap();
        let main = write(
            dir.path(),
            "crius.toml",
            "root = \"/a\"\n[api]\nstreaming_port = 1000\n",
        );
        write(dir.path(), "crius.toml.d/20-b.toml", "root = \"/c\"\n");
        write(dir.path(), "crius.toml.d/10-a.toml", "root = \"/b\"\n");
        write(
            dir.path(),
            "crius.toml.d/30-net.toml",
            "[api]\nstreaming_address = \"127.0.0.2\"\n",
        );
        write(dir.path(), "crius.toml.d/ignored.txt", "this is not toml");
        let config = Config::load(&main, true).unwrap();
        assert_eq!(config.root, PathBuf::from("/c"));
        assert_eq!(config.api.streaming_port, 1000);
        assert_eq!(config.api.streaming_address, "127.0.0.2");
    }

    #[test]
    fn seccomp_default_parses_and_rejects_unknown_profiles() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(
            Config::default().runtime.seccomp_default,
            SeccompDefault::Unconfined
        );
        let main = write(
            dir.path(),
            "crius.toml",
            "[runtime]\nseccomp_default = \"runtime/default\"\n",
        );
        let config = Config::load(&main, true).unwrap();
        assert_eq!(
            config.runtime.seccomp_default,
            SeccompDefault::RuntimeDefault
        );
        let bad = write(
            dir.path(),
            "bad.toml",
            "[runtime]\nseccomp_default = \"docker/strict\"\n",
        );
        assert!(Config::load(&bad, true).is_err());
    }

    #[test]
    fn metrics_are_off_by_default_and_need_an_ip_and_port() {
        let config = Config::default();
        assert!(!config.metrics.enable);
        assert_eq!(config.metrics.address, "127.0.0.1:9090");
        let dir = tempfile::tempdir().unwrap();
        let main = write(
            dir.path(),
            "crius.toml",
            "[metrics]\nenable = true\naddress = \"[::1]:9537\"\n",
        );
        let config = Config::load(&main, true).unwrap();
        assert!(config.metrics.enable);
        assert_eq!(config.metrics.address, "[::1]:9537");
        let bad = write(
            dir.path(),
            "bad.toml",
            "[metrics]\naddress = \"localhost:9090\"\n",
        );
        let err = Config::load(&bad, true).unwrap_err().to_string();
        assert!(err.contains("metrics.address"), "{err}");
        assert!(err.contains("localhost:9090"), "{err}");
    }

    #[test]
    fn unknown_key_names_key_and_file() {
        let dir = tempfile::tempdir().unwrap();
        let main = write(dir.path(), "crius.toml", "");
        let bad = write(
            dir.path(),
            "crius.toml.d/50-bad.toml",
            "[runtime]\nruntime_pth = \"/x\"\n",
        );
        let err = Config::load(&main, true).unwrap_err().to_string();
        assert!(err.contains("runtime_pth"), "{err}");
        assert!(err.contains(bad.to_str().unwrap()), "{err}");
    }

    #[test]
    fn bad_value_is_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let main = write(
            dir.path(),
            "crius.toml",
            "[runtime]\ncgroup_manager = \"cgroupz\"\n",
        );
        let err = Config::load(&main, true).unwrap_err().to_string();
        assert!(err.contains("cgroupz"), "{err}");
        let main = write(dir.path(), "relative.toml", "root = \"var/lib\"\n");
        let err = Config::load(&main, true).unwrap_err().to_string();
        assert!(err.contains("root"), "{err}");
    }

    /// The .deb installs contrib/crius.toml as /etc/crius/crius.toml; it
    /// must say what the daemon does with no file at all.
    #[test]
    fn packaged_config_is_the_commented_defaults() {
        let packaged = include_str!("../../contrib/crius.toml");
        assert!(
            packaged == Config::default().to_commented_toml(),
            "contrib/crius.toml is stale: regenerate it with \
             `cargo run -q --bin crius -- config --default > contrib/crius.toml`"
        );
    }

    #[test]
    fn cdi_and_hooks_dirs_default_and_must_be_absolute() {
        let runtime = Config::default().runtime;
        assert_eq!(
            runtime.cdi_spec_dirs,
            vec![PathBuf::from("/etc/cdi"), PathBuf::from("/var/run/cdi")]
        );
        assert_eq!(
            runtime.hooks_dirs.last(),
            Some(&PathBuf::from("/etc/containers/oci/hooks.d"))
        );
        let dir = tempfile::tempdir().unwrap();
        for (key, text) in [
            (
                "runtime.cdi_spec_dirs",
                "[runtime]\ncdi_spec_dirs = [\"cdi\"]\n",
            ),
            (
                "runtime.hooks_dirs",
                "[runtime]\nhooks_dirs = [\"/a\", \"hooks.d\"]\n",
            ),
        ] {
            let main = write(dir.path(), "crius.toml", text);
            let err = Config::load(&main, true).unwrap_err().to_string();
            assert!(err.contains(key), "{err}");
        }
    }

    #[test]
    fn commented_toml_documents_every_key_and_round_trips() {
        let config = Config::default();
        let text = config.to_commented_toml();
        for doc in KEY_DOCS {
            assert!(text.contains(doc.doc), "missing doc for {}", doc.key);
        }
        let key_lines = text
            .lines()
            .filter(|l| !l.starts_with('#') && l.contains(" = "))
            .count();
        assert_eq!(key_lines, KEY_DOCS.len(), "a key lacks documentation");
        let back: Config = toml::from_str(&text).unwrap();
        assert_eq!(back, config);
    }
}
