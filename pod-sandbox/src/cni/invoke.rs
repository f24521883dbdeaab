//! Running CNI plugins as libcni does: one exec per plugin with the `CNI_*`
//! environment and the plugin's config on stdin, ADD through the chain with
//! each result passed on as `prevResult`, DEL in reverse order, and the ADD
//! result cached in libcni's format so that DEL works after a restart.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use base64::Engine as _;
use crius_proto::ErrorKind;
use serde_json::{Map, Value, json};
use tokio::io::AsyncWriteExt as _;

use super::config::{CniConfigError, NetworkConfigList, find_plugin};

/// The interface name every pod gets, as with CRI-O and containerd.
pub const IFNAME: &str = "eth0";

#[derive(Debug, thiserror::Error)]
pub enum CniError {
    #[error(transparent)]
    Config(#[from] CniConfigError),
    #[error("failed to run CNI plugin {plugin:?}")]
    Spawn {
        plugin: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("CNI plugin {plugin} {command} timed out after {timeout:?}")]
    Timeout {
        plugin: String,
        command: &'static str,
        timeout: Duration,
    },
    #[error("CNI plugin {plugin} {command} failed with code {code}: {msg}{}", details_suffix(.details))]
    Plugin {
        plugin: String,
        command: &'static str,
        code: u64,
        msg: String,
        details: String,
    },
    #[error("CNI plugin {plugin} {command} returned invalid output: {message}")]
    BadOutput {
        plugin: String,
        command: &'static str,
        message: String,
    },
    #[error(
        "no CNI version of network {network:?} (declared {declared}) is supported by every plugin"
    )]
    Version { network: String, declared: String },
    #[error("failed to access CNI cache {path:?}")]
    Cache {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

fn details_suffix(details: &str) -> String {
    if details.is_empty() {
        String::new()
    } else {
        format!(" ({details})")
    }
}

impl CniError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            CniError::Config(e) => e.kind(),
            CniError::Timeout { .. } => ErrorKind::DeadlineExceeded,
            CniError::Version { .. } => ErrorKind::FailedPrecondition,
            CniError::Spawn { .. }
            | CniError::Plugin { .. }
            | CniError::BadOutput { .. }
            | CniError::Cache { .. } => ErrorKind::Internal,
        }
    }
}

/// One network attachment: what the `CNI_*` variables and `runtimeConfig`
/// are made of.
#[derive(Debug, Clone)]
pub struct Attachment {
    pub container_id: String,
    pub netns: PathBuf,
    /// `CNI_ARGS` pairs, in order.
    pub args: Vec<(String, String)>,
    /// Values for `runtimeConfig`, passed to the plugins that declare the
    /// capability (`portMappings`, `bandwidth`, ...).
    pub capability_args: Map<String, Value>,
}

/// The CNI invoker: plugin directories, the result cache and a per-call
/// timeout.
#[derive(Debug)]
pub struct Cni {
    plugin_dirs: Vec<PathBuf>,
    cache_dir: PathBuf,
    timeout: Duration,
    /// `VERSION` answers by plugin path, valid while the binary's mtime is.
    versions: Mutex<HashMap<PathBuf, (SystemTime, Vec<String>)>>,
}

impl Cni {
    pub fn new(plugin_dirs: Vec<PathBuf>, cache_dir: PathBuf, timeout: Duration) -> Cni {
        Cni {
            plugin_dirs,
            cache_dir,
            timeout,
            versions: Mutex::new(HashMap::new()),
        }
    }

    pub fn cache_dir(&self) -> &Path {
        &self.cache_dir
    }

    /// The libcni cache file of one attachment.
    pub fn cache_path(&self, network: &str, container_id: &str) -> PathBuf {
        self.cache_dir
            .join("results")
            .join(format!("{network}-{container_id}-{IFNAME}"))
    }

    /// Runs ADD through the chain and caches the final result, which is
    /// returned.
    pub async fn add(&self, list: &NetworkConfigList, att: &Attachment) -> Result<Value, CniError> {
        let version = self.negotiate(list).await?;
        let mut prev: Option<Value> = None;
        for plugin in &list.plugins {
            let conf = plugin_config(list, plugin, &version, prev.as_ref(), att);
            let out = self.exec(plugin, "ADD", att, &conf).await?;
            let result: Value = serde_json::from_slice(&out).map_err(|e| CniError::BadOutput {
                plugin: plugin_type(plugin).to_string(),
                command: "ADD",
                message: e.to_string(),
            })?;
            prev = Some(result);
        }
        let result = prev.unwrap_or_else(|| json!({"cniVersion": version}));
        self.write_cache(list, att, &result).await?;
        Ok(result)
    }

    /// Runs DEL in reverse order. The cached config and result are used when
    /// present (the config dir may have changed since ADD); otherwise
    /// `current` is used without a `prevResult`, as libcni does. A missing
    /// config everywhere means there is nothing this invoker could undo.
    pub async fn del(
        &self,
        network_name: Option<&str>,
        current: Option<&NetworkConfigList>,
        att: &Attachment,
    ) -> Result<(), CniError> {
        let cached = match network_name.or(current.map(|l| l.name.as_str())) {
            Some(name) => self.read_cache(name, &att.container_id).await?,
            None => None,
        };
        let (list, result) = match (&cached, current) {
            (Some((list, result)), _) => (list, result.clone()),
            (None, Some(list)) => (list, None),
            (None, None) => {
                tracing::warn!(id = %att.container_id, "no CNI config to run DEL with");
                return Ok(());
            }
        };
        let version = self.negotiate(list).await?;
        // prevResult on DEL is defined from 0.4.0 on.
        let prev = result.filter(|_| version_tuple(&version) >= Some((0, 4, 0)));
        for plugin in list.plugins.iter().rev() {
            let conf = plugin_config(list, plugin, &version, prev.as_ref(), att);
            self.exec(plugin, "DEL", att, &conf).await?;
        }
        let path = self.cache_path(&list.name, &att.container_id);
        match tokio::fs::remove_file(&path).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(CniError::Cache { path, source }),
        }
    }

    /// The version to speak: the declared one when every plugin supports it,
    /// otherwise the highest lower one every plugin supports (Debian's
    /// plugins stop at 1.0.0 while newer conflists declare 1.1.0).
    async fn negotiate(&self, list: &NetworkConfigList) -> Result<String, CniError> {
        let declared = version_tuple(&list.cni_version);
        let mut common: Option<Vec<String>> = None;
        for plugin in &list.plugins {
            let supported = self.supported_versions(plugin_type(plugin)).await?;
            common = Some(match common {
                None => supported,
                Some(c) => c.into_iter().filter(|v| supported.contains(v)).collect(),
            });
        }
        let common = common.unwrap_or_default();
        if common.contains(&list.cni_version) {
            return Ok(list.cni_version.clone());
        }
        common
            .into_iter()
            .filter(|v| version_tuple(v).is_some() && version_tuple(v) <= declared)
            .max_by_key(|v| version_tuple(v))
            .ok_or_else(|| CniError::Version {
                network: list.name.clone(),
                declared: list.cni_version.clone(),
            })
    }

    async fn supported_versions(&self, plugin: &str) -> Result<Vec<String>, CniError> {
        let path = self.plugin_path(plugin)?;
        let mtime = std::fs::metadata(&path)
            .and_then(|m| m.modified())
            .unwrap_or(SystemTime::UNIX_EPOCH);
        if let Some((cached_mtime, versions)) = self.lock_versions().get(&path)
            && *cached_mtime == mtime
        {
            return Ok(versions.clone());
        }
        let out = self
            .run(
                &path,
                plugin,
                "VERSION",
                &[("CNI_COMMAND", "VERSION".into())],
                br#"{"cniVersion":"0.1.0"}"#,
            )
            .await?;
        let bad = |message: String| CniError::BadOutput {
            plugin: plugin.to_string(),
            command: "VERSION",
            message,
        };
        let value: Value = serde_json::from_slice(&out).map_err(|e| bad(e.to_string()))?;
        let versions: Vec<String> = value
            .get("supportedVersions")
            .and_then(Value::as_array)
            .ok_or_else(|| bad("no supportedVersions".into()))?
            .iter()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect();
        self.lock_versions().insert(path, (mtime, versions.clone()));
        Ok(versions)
    }

    fn lock_versions(
        &self,
    ) -> std::sync::MutexGuard<'_, HashMap<PathBuf, (SystemTime, Vec<String>)>> {
        self.versions.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn plugin_path(&self, plugin: &str) -> Result<PathBuf, CniError> {
        find_plugin(plugin, &self.plugin_dirs).ok_or_else(|| {
            CniError::Config(CniConfigError::PluginNotFound {
                network: String::new(),
                plugin: plugin.to_string(),
                dirs: self.plugin_dirs.clone(),
            })
        })
    }

    async fn exec(
        &self,
        plugin: &Value,
        command: &'static str,
        att: &Attachment,
        conf: &Value,
    ) -> Result<Vec<u8>, CniError> {
        let name = plugin_type(plugin);
        let path = self.plugin_path(name)?;
        let cni_args = att
            .args
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(";");
        let cni_path = std::env::join_paths(&self.plugin_dirs)
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_default();
        let env = [
            ("CNI_COMMAND", command.to_string()),
            ("CNI_CONTAINERID", att.container_id.clone()),
            ("CNI_NETNS", att.netns.to_string_lossy().into_owned()),
            ("CNI_IFNAME", IFNAME.to_string()),
            ("CNI_ARGS", cni_args),
            ("CNI_PATH", cni_path),
        ];
        let stdin = serde_json::to_vec(conf).unwrap_or_default();
        tracing::debug!(plugin = name, command, id = %att.container_id, "running CNI plugin");
        self.run(&path, name, command, &env, &stdin).await
    }

    async fn run(
        &self,
        path: &Path,
        name: &str,
        command: &'static str,
        env: &[(&str, String)],
        stdin: &[u8],
    ) -> Result<Vec<u8>, CniError> {
        let mut cmd = tokio::process::Command::new(path);
        cmd.envs(env.iter().map(|(k, v)| (k, v)))
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true);
        let mut child = cmd.spawn().map_err(|source| CniError::Spawn {
            plugin: path.to_owned(),
            source,
        })?;
        let input = stdin.to_vec();
        let mut pipe = child.stdin.take();
        let call = async move {
            if let Some(pipe) = pipe.as_mut() {
                // A plugin may exit without reading; its answer still counts.
                let _ = pipe.write_all(&input).await;
            }
            drop(pipe);
            child.wait_with_output().await
        };
        let output = tokio::time::timeout(self.timeout, call)
            .await
            .map_err(|_| CniError::Timeout {
                plugin: name.to_string(),
                command,
                timeout: self.timeout,
            })?
            .map_err(|source| CniError::Spawn {
                plugin: path.to_owned(),
                source,
            })?;
        if output.status.success() {
            return Ok(output.stdout);
        }
        // The spec's error object is on stdout; fall back to stderr for
        // plugins that just crash.
        let parsed: Option<Value> = serde_json::from_slice(&output.stdout).ok();
        let field = |k: &str| {
            parsed
                .as_ref()
                .and_then(|v| v.get(k))
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string()
        };
        let code = parsed
            .as_ref()
            .and_then(|v| v.get("code"))
            .and_then(Value::as_u64)
            .unwrap_or(999);
        let mut msg = field("msg");
        if msg.is_empty() {
            msg = String::from_utf8_lossy(&output.stderr).trim().to_string();
        }
        if msg.is_empty() {
            msg = format!("exited with {}", output.status);
        }
        Err(CniError::Plugin {
            plugin: name.to_string(),
            command,
            code,
            msg,
            details: field("details"),
        })
    }

    async fn write_cache(
        &self,
        list: &NetworkConfigList,
        att: &Attachment,
        result: &Value,
    ) -> Result<(), CniError> {
        let path = self.cache_path(&list.name, &att.container_id);
        let entry = json!({
            "kind": "cniCacheV1",
            "containerId": att.container_id,
            "config": base64::engine::general_purpose::STANDARD.encode(&list.bytes),
            "ifName": IFNAME,
            "networkName": list.name,
            "netns": att.netns,
            "cniArgs": att.args.iter().map(|(k, v)| [k, v]).collect::<Vec<_>>(),
            "capabilityArgs": att.capability_args,
            "result": result,
        });
        let bytes = serde_json::to_vec(&entry).unwrap_or_default();
        crate::persist::write_atomic(&path, &bytes)
            .await
            .map_err(|source| CniError::Cache { path, source })
    }

    /// The cached network config and ADD result, if any.
    async fn read_cache(
        &self,
        network: &str,
        container_id: &str,
    ) -> Result<Option<(NetworkConfigList, Option<Value>)>, CniError> {
        let path = self.cache_path(network, container_id);
        let bytes = match tokio::fs::read(&path).await {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(CniError::Cache { path, source }),
        };
        let invalid = |message: String| CniError::Cache {
            path: path.clone(),
            source: std::io::Error::new(std::io::ErrorKind::InvalidData, message),
        };
        let entry: Value = serde_json::from_slice(&bytes).map_err(|e| invalid(e.to_string()))?;
        let config = entry
            .get("config")
            .and_then(Value::as_str)
            .and_then(|c| base64::engine::general_purpose::STANDARD.decode(c).ok())
            .ok_or_else(|| invalid("no config".into()))?;
        let list = NetworkConfigList::parse(&path, &config).map_err(invalid)?;
        Ok(Some((list, entry.get("result").cloned())))
    }
}

fn plugin_type(plugin: &Value) -> &str {
    plugin
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or_default()
}

/// A plugin's stdin: its own config plus the list's name, the negotiated
/// version, `prevResult`, and `runtimeConfig` for declared capabilities.
fn plugin_config(
    list: &NetworkConfigList,
    plugin: &Value,
    version: &str,
    prev: Option<&Value>,
    att: &Attachment,
) -> Value {
    let mut conf = plugin.as_object().cloned().unwrap_or_default();
    conf.insert("name".into(), Value::String(list.name.clone()));
    conf.insert("cniVersion".into(), Value::String(version.to_string()));
    if let Some(prev) = prev {
        conf.insert("prevResult".into(), prev.clone());
    }
    let mut runtime = Map::new();
    if let Some(caps) = plugin.get("capabilities").and_then(Value::as_object) {
        for (cap, enabled) in caps {
            if enabled.as_bool() == Some(true)
                && let Some(value) = att.capability_args.get(cap)
            {
                runtime.insert(cap.clone(), value.clone());
            }
        }
    }
    if !runtime.is_empty() {
        conf.insert("runtimeConfig".into(), Value::Object(runtime));
    }
    Value::Object(conf)
}

fn version_tuple(v: &str) -> Option<(u32, u32, u32)> {
    let mut parts = v.split('.').map(|p| p.parse::<u32>().ok());
    let t = (
        parts.next()??,
        parts.next()??,
        parts.next().flatten().unwrap_or(0),
    );
    Some(t)
}

/// The IP addresses (without prefix length) of a CNI result, in result
/// order; understands both the 0.3+ `ips` list and the 0.2 `ip4`/`ip6`.
pub fn result_ips(result: &Value) -> Vec<std::net::IpAddr> {
    let strip = |s: &str| s.split('/').next().unwrap_or_default().parse().ok();
    let mut ips: Vec<std::net::IpAddr> = result
        .get("ips")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|ip| ip.get("address").and_then(Value::as_str).and_then(strip))
        .collect();
    for key in ["ip4", "ip6"] {
        if let Some(ip) = result
            .get(key)
            .and_then(|v| v.get("ip"))
            .and_then(Value::as_str)
            .and_then(strip)
        {
            ips.push(ip);
        }
    }
    ips
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn script(dir: &Path, name: &str, body: &str) {
        let path = dir.join(name);
        std::fs::write(&path, format!("#!/bin/sh\n{body}")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    /// A plugin that logs its command and stdin, answers VERSION with
    /// `versions` and ADD with an IP.
    fn fake_plugin(dir: &Path, name: &str, versions: &str, log: &Path) {
        script(
            dir,
            name,
            &format!(
                r#"input=$(cat)
echo "$CNI_COMMAND {name} $CNI_IFNAME $CNI_ARGS $input" >> {log}
case "$CNI_COMMAND" in
VERSION) echo '{{"cniVersion":"1.0.0","supportedVersions":{versions}}}' ;;
ADD) echo '{{"cniVersion":"1.0.0","ips":[{{"address":"10.1.2.3/24"}}]}}' ;;
esac
"#,
                log = log.display()
            ),
        );
    }

    fn attachment() -> Attachment {
        let mut caps = Map::new();
        caps.insert("portMappings".into(), json!([{"hostPort": 8080}]));
        Attachment {
            container_id: "abc".into(),
            netns: "/run/netns/x".into(),
            args: vec![("IgnoreUnknown".into(), "1".into())],
            capability_args: caps,
        }
    }

    fn list(version: &str) -> NetworkConfigList {
        let text = format!(
            r#"{{"cniVersion":"{version}","name":"net","plugins":[{{"type":"a"}},{{"type":"b","capabilities":{{"portMappings":true}}}}]}}"#
        );
        NetworkConfigList::parse(Path::new("x.conflist"), text.as_bytes()).unwrap()
    }

    #[tokio::test]
    async fn add_chains_prev_result_caches_and_del_reverses() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("log");
        let all = r#"["0.4.0","1.0.0"]"#;
        fake_plugin(dir.path(), "a", all, &log);
        fake_plugin(dir.path(), "b", all, &log);
        let cni = Cni::new(
            vec![dir.path().into()],
            dir.path().join("cache"),
            Duration::from_secs(10),
        );
        // Declared 1.1.0 is more than the plugins know: 1.0.0 is spoken.
        let list = list("1.1.0");
        let result = cni.add(&list, &attachment()).await.unwrap();
        assert_eq!(
            result_ips(&result),
            ["10.1.2.3".parse::<std::net::IpAddr>().unwrap()]
        );
        let cache = cni.cache_path("net", "abc");
        let entry: Value = serde_json::from_slice(&std::fs::read(&cache).unwrap()).unwrap();
        assert_eq!(entry["kind"], "cniCacheV1");
        assert_eq!(entry["result"], result);

        // DEL works from the cache alone, in reverse order.
        cni.del(Some("net"), None, &attachment()).await.unwrap();
        assert!(!cache.exists());
        let log = std::fs::read_to_string(&log).unwrap();
        let calls: Vec<&str> = log.lines().filter(|l| !l.starts_with("VERSION")).collect();
        assert_eq!(calls.len(), 4, "{log}");
        assert!(calls[0].starts_with("ADD a eth0 IgnoreUnknown=1"));
        assert!(calls[0].contains(r#""cniVersion":"1.0.0""#), "{}", calls[0]);
        assert!(!calls[0].contains("prevResult"));
        assert!(!calls[0].contains("runtimeConfig"));
        assert!(calls[1].starts_with("ADD b"));
        assert!(calls[1].contains("prevResult"));
        assert!(calls[1].contains(r#""runtimeConfig":{"portMappings":[{"hostPort":8080}]}"#));
        assert!(calls[2].starts_with("DEL b"));
        assert!(calls[2].contains("prevResult"));
        assert!(calls[3].starts_with("DEL a"));
    }

    #[tokio::test]
    async fn plugin_error_carries_code_and_message() {
        let dir = tempfile::tempdir().unwrap();
        script(
            dir.path(),
            "bad",
            r#"cat >/dev/null
if [ "$CNI_COMMAND" = VERSION ]; then echo '{"cniVersion":"1.0.0","supportedVersions":["1.0.0"]}'; exit 0; fi
echo '{"cniVersion":"1.0.0","code":11,"msg":"no luck","details":"really"}'; exit 1
"#,
        );
        let cni = Cni::new(
            vec![dir.path().into()],
            dir.path().join("c"),
            Duration::from_secs(10),
        );
        let list = NetworkConfigList::parse(
            Path::new("x.conflist"),
            br#"{"cniVersion":"1.0.0","name":"n","plugins":[{"type":"bad"}]}"#,
        )
        .unwrap();
        let err = cni.add(&list, &attachment()).await.unwrap_err();
        assert!(matches!(err, CniError::Plugin { code: 11, .. }), "{err:?}");
        assert_eq!(
            err.to_string(),
            "CNI plugin bad ADD failed with code 11: no luck (really)"
        );
    }

    #[tokio::test]
    async fn slow_plugin_times_out() {
        let dir = tempfile::tempdir().unwrap();
        script(dir.path(), "slow", "exec sleep 30\n");
        let cni = Cni::new(
            vec![dir.path().into()],
            dir.path().join("c"),
            Duration::from_millis(200),
        );
        let list = NetworkConfigList::parse(
            Path::new("x.conflist"),
            br#"{"cniVersion":"1.0.0","name":"n","plugins":[{"type":"slow"}]}"#,
        )
        .unwrap();
        let err = cni.add(&list, &attachment()).await.unwrap_err();
        assert!(matches!(err, CniError::Timeout { .. }), "{err:?}");
    }

    #[test]
    fn versions_compare_numerically_and_old_results_parse() {
        assert!(version_tuple("0.10.0") > version_tuple("0.4.0"));
        assert_eq!(version_tuple("1.0"), Some((1, 0, 0)));
        let old = json!({"ip4": {"ip": "10.0.0.5/16"}});
        assert_eq!(
            result_ips(&old),
            ["10.0.0.5".parse::<std::net::IpAddr>().unwrap()]
        );
    }
}
