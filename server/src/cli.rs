//! Command line: subcommands and the flags that override config keys.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::config::{CgroupManager, Config, LogFormat, LogLevel, SeccompDefault};

#[derive(Debug, Parser)]
#[command(name = "crius", about = "A Kubernetes CRI runtime server", version)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub overrides: Overrides,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the CRI on the unix socket (the default).
    Serve,
    /// Print the effective configuration as commented TOML.
    Config {
        /// Print the built-in defaults, ignoring files and flags.
        #[arg(long)]
        default: bool,
    },
    /// Print version and git commit.
    Version,
    /// Internal: create and pin a pod's namespaces (run by crius itself).
    #[command(hide = true)]
    Pinns(pod_sandbox::ns::PinnsArgs),
    /// Internal: the infra process holding a pod's PID namespace.
    #[command(hide = true)]
    Pause {
        /// The sandbox this process belongs to (found by it after a crash).
        #[arg(long)]
        id: String,
        /// The pin directory of the crius that started it, so that `ps`
        /// tells which crius instance a pod belongs to.
        #[arg(long)]
        ns_dir: Option<PathBuf>,
    },
    /// Internal: run a detached `runc exec` and exit with the exec'd
    /// process's status (tty execs of the streaming server).
    #[command(hide = true)]
    ExecWait {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<std::ffi::OsString>,
    },
}

/// Flags shared by every subcommand; each maps to one config key.
#[derive(Debug, Args, Default)]
pub struct Overrides {
    /// Configuration file; drop-ins are read from `<config>.d/*.toml`.
    #[arg(long, global = true, value_name = "PATH")]
    pub config: Option<PathBuf>,
    #[arg(long, global = true, value_name = "DIR")]
    pub root: Option<PathBuf>,
    #[arg(long, global = true, value_name = "DIR")]
    pub runroot: Option<PathBuf>,
    /// Unix socket path for the CRI services.
    #[arg(long, global = true, value_name = "PATH")]
    pub listen: Option<PathBuf>,
    #[arg(long, global = true, value_enum)]
    pub log_level: Option<LogLevel>,
    #[arg(long, global = true, value_enum)]
    pub log_format: Option<LogFormat>,
    #[arg(long, global = true, value_name = "PATH")]
    pub runtime_path: Option<PathBuf>,
    #[arg(long, global = true, value_name = "PATH")]
    pub conmon_path: Option<PathBuf>,
    #[arg(long, global = true, value_name = "DIR")]
    pub cni_config_dir: Option<PathBuf>,
    /// Repeatable; replaces the configured list.
    #[arg(long = "cni-plugin-dir", global = true, value_name = "DIR")]
    pub cni_plugin_dirs: Vec<PathBuf>,
    #[arg(long, global = true, value_name = "PATH")]
    pub registries_conf: Option<PathBuf>,
    /// Repeatable; replaces the configured list.
    #[arg(long = "insecure-registry", global = true, value_name = "HOST[:PORT]")]
    pub insecure_registries: Vec<String>,
    #[arg(long, global = true, value_name = "PATH")]
    pub auth_file: Option<PathBuf>,
    #[arg(long, global = true, value_name = "N")]
    pub max_concurrent_downloads: Option<usize>,
    /// Repeatable; replaces the configured list.
    #[arg(long = "pinned-image", global = true, value_name = "IMAGE")]
    pub pinned_images: Vec<String>,
    #[arg(long, global = true, value_name = "BYTES")]
    pub max_layer_header_bytes: Option<u64>,
    #[arg(long, global = true, value_name = "BYTES")]
    pub max_layer_unpacked_bytes: Option<u64>,
    #[arg(long, global = true, value_name = "N")]
    pub max_layer_entries: Option<u64>,
    #[arg(long, global = true, value_name = "SECONDS")]
    pub download_progress_timeout_secs: Option<u64>,
    #[arg(long, global = true, value_name = "IP")]
    pub streaming_address: Option<String>,
    #[arg(long, global = true, value_name = "PORT")]
    pub streaming_port: Option<u16>,
    #[arg(long, global = true, value_name = "SECONDS")]
    pub streaming_token_ttl_secs: Option<u64>,
    #[arg(long, global = true, value_name = "SECONDS")]
    pub streaming_idle_timeout_secs: Option<u64>,
    #[arg(long, global = true, value_name = "PATH")]
    pub streaming_tls_cert: Option<PathBuf>,
    #[arg(long, global = true, value_name = "PATH")]
    pub streaming_tls_key: Option<PathBuf>,
    #[arg(long, global = true, value_enum)]
    pub cgroup_manager: Option<CgroupManager>,
    #[arg(long, global = true, value_enum)]
    pub seccomp_default: Option<SeccompDefault>,
    #[arg(long, global = true, value_name = "N")]
    pub pids_limit: Option<i64>,
    /// Repeatable; replaces the configured list.
    #[arg(long = "runtime-handler", global = true, value_name = "NAME")]
    pub runtime_handlers: Vec<String>,
    /// Repeatable; replaces the configured list.
    #[arg(long = "cdi-spec-dir", global = true, value_name = "DIR")]
    pub cdi_spec_dirs: Vec<PathBuf>,
    /// Repeatable; replaces the configured list.
    #[arg(long = "hooks-dir", global = true, value_name = "DIR")]
    pub hooks_dirs: Vec<PathBuf>,
    #[arg(long, global = true, value_name = "DIR")]
    pub cni_cache_dir: Option<PathBuf>,
    #[arg(long, global = true, value_name = "SECONDS")]
    pub cni_timeout_secs: Option<u64>,
    /// Bytes.
    #[arg(long, global = true, value_name = "BYTES")]
    pub shm_size: Option<u64>,
    #[arg(long, global = true, value_name = "SECONDS")]
    pub sandbox_cleanup_timeout_secs: Option<u64>,
    /// Serve Prometheus metrics; `--enable-metrics=false` turns them off.
    #[arg(long, global = true, value_name = "BOOL", num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub enable_metrics: Option<bool>,
    #[arg(long, global = true, value_name = "IP:PORT")]
    pub metrics_address: Option<String>,
}

impl Overrides {
    /// Applies the flags that were given on top of `config`.
    pub fn apply(self, config: &mut Config) {
        fn set<T>(slot: &mut T, value: Option<T>) {
            if let Some(value) = value {
                *slot = value;
            }
        }
        set(&mut config.root, self.root);
        set(&mut config.runroot, self.runroot);
        set(&mut config.api.listen, self.listen);
        set(&mut config.api.streaming_address, self.streaming_address);
        set(&mut config.api.streaming_port, self.streaming_port);
        set(
            &mut config.api.streaming_token_ttl_secs,
            self.streaming_token_ttl_secs,
        );
        set(
            &mut config.api.streaming_idle_timeout_secs,
            self.streaming_idle_timeout_secs,
        );
        set(&mut config.api.streaming_tls_cert, self.streaming_tls_cert);
        set(&mut config.api.streaming_tls_key, self.streaming_tls_key);
        set(&mut config.log.level, self.log_level);
        set(&mut config.log.format, self.log_format);
        set(&mut config.runtime.runtime_path, self.runtime_path);
        set(&mut config.runtime.conmon_path, self.conmon_path);
        set(&mut config.runtime.cgroup_manager, self.cgroup_manager);
        set(&mut config.runtime.seccomp_default, self.seccomp_default);
        set(&mut config.runtime.pids_limit, self.pids_limit);
        set(&mut config.network.cni_config_dir, self.cni_config_dir);
        set(&mut config.network.cni_cache_dir, self.cni_cache_dir);
        set(&mut config.network.cni_timeout_secs, self.cni_timeout_secs);
        set(&mut config.sandbox.shm_size, self.shm_size);
        set(
            &mut config.sandbox.cleanup_timeout_secs,
            self.sandbox_cleanup_timeout_secs,
        );
        set(&mut config.metrics.enable, self.enable_metrics);
        set(&mut config.metrics.address, self.metrics_address);
        if !self.cdi_spec_dirs.is_empty() {
            config.runtime.cdi_spec_dirs = self.cdi_spec_dirs;
        }
        if !self.hooks_dirs.is_empty() {
            config.runtime.hooks_dirs = self.hooks_dirs;
        }
        if !self.runtime_handlers.is_empty() {
            config.runtime.handlers = self.runtime_handlers;
        }
        if !self.cni_plugin_dirs.is_empty() {
            config.network.cni_plugin_dirs = self.cni_plugin_dirs;
        }
        set(&mut config.image.registries_conf, self.registries_conf);
        if !self.insecure_registries.is_empty() {
            config.image.insecure_registries = self.insecure_registries;
        }
        set(&mut config.image.auth_file, self.auth_file);
        set(
            &mut config.image.max_concurrent_downloads,
            self.max_concurrent_downloads,
        );
        if !self.pinned_images.is_empty() {
            config.image.pinned_images = self.pinned_images;
        }
        set(
            &mut config.image.max_layer_header_bytes,
            self.max_layer_header_bytes,
        );
        set(
            &mut config.image.max_layer_unpacked_bytes,
            self.max_layer_unpacked_bytes,
        );
        set(&mut config.image.max_layer_entries, self.max_layer_entries);
        set(
            &mut config.image.download_progress_timeout_secs,
            self.download_progress_timeout_secs,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_override_config() {
        let cli = Cli::parse_from([
            "crius",
            "--root",
            "/r",
            "--cni-plugin-dir",
            "/a",
            "--cni-plugin-dir",
            "/b",
            "--cgroup-manager",
            "systemd",
            "--cdi-spec-dir",
            "/cdi",
            "--hooks-dir",
            "/h1",
            "--hooks-dir",
            "/h2",
            "config",
        ]);
        assert!(matches!(
            cli.command,
            Some(Command::Config { default: false })
        ));
        let mut config = Config::default();
        cli.overrides.apply(&mut config);
        assert_eq!(config.root, PathBuf::from("/r"));
        assert_eq!(
            config.network.cni_plugin_dirs,
            vec![PathBuf::from("/a"), PathBuf::from("/b")]
        );
        assert_eq!(config.runtime.cgroup_manager, CgroupManager::Systemd);
        assert_eq!(config.runtime.cdi_spec_dirs, vec![PathBuf::from("/cdi")]);
        assert_eq!(
            config.runtime.hooks_dirs,
            vec![PathBuf::from("/h1"), PathBuf::from("/h2")]
        );
        assert_eq!(config.runroot, Config::default().runroot);
    }

    #[test]
    fn enable_metrics_is_a_switch_that_can_be_turned_off() {
        let on = |args: &[&str]| {
            let mut config = Config::default();
            config.metrics.enable = true;
            let mut argv = vec!["crius"];
            argv.extend_from_slice(args);
            Cli::parse_from(argv).overrides.apply(&mut config);
            config.metrics
        };
        assert!(on(&[]).enable, "no flag keeps the configured value");
        assert!(!on(&["--enable-metrics=false"]).enable);
        let mut config = Config::default();
        Cli::parse_from([
            "crius",
            "--enable-metrics",
            "--metrics-address",
            "0.0.0.0:9537",
        ])
        .overrides
        .apply(&mut config);
        assert!(config.metrics.enable);
        assert_eq!(config.metrics.address, "0.0.0.0:9537");
    }

    #[test]
    fn bad_flag_value_is_rejected() {
        let err = Cli::try_parse_from(["crius", "--log-level", "loud"]).unwrap_err();
        assert!(err.to_string().contains("loud"));
    }
}
