//! Loading CNI network configuration the way libcni does: the first valid
//! file in lexical order among `*.conflist`, `*.conf` and `*.json`, where a
//! single-plugin `.conf` is treated as a list of one.

use std::path::{Path, PathBuf};

use crius_proto::ErrorKind;
use serde_json::Value;

#[derive(Debug, thiserror::Error)]
pub enum CniConfigError {
    #[error("failed to read CNI config dir {dir:?}")]
    ReadDir {
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("no valid CNI network config found in {dir:?}")]
    NoConfig { dir: PathBuf },
    #[error("CNI plugin {plugin:?} of network {network:?} not found in {dirs:?}")]
    PluginNotFound {
        network: String,
        plugin: String,
        dirs: Vec<PathBuf>,
    },
}

impl CniConfigError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            CniConfigError::ReadDir { .. } => ErrorKind::Internal,
            CniConfigError::NoConfig { .. } | CniConfigError::PluginNotFound { .. } => {
                ErrorKind::FailedPrecondition
            }
        }
    }
}

/// A network configuration list, as CNI's `NetworkConfigList`.
#[derive(Debug, Clone, PartialEq)]
pub struct NetworkConfigList {
    pub name: String,
    pub cni_version: String,
    pub disable_check: bool,
    /// Each plugin's configuration, passed to it (with `name`, `cniVersion`
    /// and `prevResult` injected) on stdin.
    pub plugins: Vec<Value>,
    /// The file it came from.
    pub source: PathBuf,
    /// The file's bytes, kept for the libcni result cache so that DEL after a
    /// restart uses the configuration ADD used.
    pub bytes: Vec<u8>,
}

impl NetworkConfigList {
    /// Parses a `.conflist`, or a `.conf`/`.json` holding a single plugin.
    pub fn parse(source: &Path, bytes: &[u8]) -> Result<NetworkConfigList, String> {
        let value: Value = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
        let obj = value.as_object().ok_or("not a JSON object")?;
        let name = obj
            .get("name")
            .and_then(Value::as_str)
            .filter(|n| !n.is_empty())
            .ok_or("missing \"name\"")?
            .to_string();
        let cni_version = obj
            .get("cniVersion")
            .and_then(Value::as_str)
            .unwrap_or("0.1.0")
            .to_string();
        // A `.conflist` is a list; other extensions hold one plugin, except
        // that a cached config (no extension) is a list when it has plugins.
        let is_list = match source.extension().and_then(|e| e.to_str()) {
            Some("conflist") => true,
            Some("conf" | "json") => false,
            _ => obj.contains_key("plugins"),
        };
        let plugins = if is_list {
            obj.get("plugins")
                .and_then(Value::as_array)
                .filter(|p| !p.is_empty())
                .ok_or("missing or empty \"plugins\"")?
                .clone()
        } else {
            vec![value.clone()]
        };
        for plugin in &plugins {
            plugin
                .get("type")
                .and_then(Value::as_str)
                .filter(|t| !t.is_empty() && !t.contains('/'))
                .ok_or("a plugin has no valid \"type\"")?;
        }
        Ok(NetworkConfigList {
            name,
            cni_version,
            disable_check: obj
                .get("disableCheck")
                .and_then(Value::as_bool)
                .unwrap_or(false),
            plugins,
            source: source.to_owned(),
            bytes: bytes.to_vec(),
        })
    }

    /// The plugin binary names, in chain order.
    pub fn plugin_types(&self) -> impl Iterator<Item = &str> {
        self.plugins
            .iter()
            .filter_map(|p| p.get("type").and_then(Value::as_str))
    }

    /// Checks that every plugin of the chain exists in one of `dirs`.
    pub fn check_plugins(&self, dirs: &[PathBuf]) -> Result<(), CniConfigError> {
        for plugin in self.plugin_types() {
            if find_plugin(plugin, dirs).is_none() {
                return Err(CniConfigError::PluginNotFound {
                    network: self.name.clone(),
                    plugin: plugin.to_string(),
                    dirs: dirs.to_vec(),
                });
            }
        }
        Ok(())
    }
}

/// Loads the first valid network config in `dir`. Invalid files are skipped
/// with a warning, as libcni does, so one stray file cannot take the node's
/// network down.
pub fn load_network(dir: &Path) -> Result<NetworkConfigList, CniConfigError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(CniConfigError::NoConfig {
                dir: dir.to_owned(),
            });
        }
        Err(source) => {
            return Err(CniConfigError::ReadDir {
                dir: dir.to_owned(),
                source,
            });
        }
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.extension()
                .is_some_and(|e| e == "conflist" || e == "conf" || e == "json")
        })
        .collect();
    files.sort();
    for file in files {
        let parsed = std::fs::read(&file)
            .map_err(|e| e.to_string())
            .and_then(|bytes| NetworkConfigList::parse(&file, &bytes));
        match parsed {
            Ok(list) => return Ok(list),
            Err(error) => tracing::warn!(?file, %error, "skipping invalid CNI config"),
        }
    }
    Err(CniConfigError::NoConfig {
        dir: dir.to_owned(),
    })
}

/// The first executable file named `plugin` in `dirs`.
pub fn find_plugin(plugin: &str, dirs: &[PathBuf]) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    dirs.iter().map(|d| d.join(plugin)).find(|p| {
        std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const BRIDGE_LIST: &str = r#"{"cniVersion":"1.0.0","name":"crius","plugins":[
        {"type":"bridge","bridge":"cni0","ipam":{"type":"host-local"}},
        {"type":"portmap","capabilities":{"portMappings":true}}]}"#;

    #[test]
    fn first_valid_file_in_lexical_order_wins() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("05-broken.conflist"), "{not json").unwrap();
        std::fs::write(
            dir.path().join("20-other.conflist"),
            BRIDGE_LIST.replace("crius", "other"),
        )
        .unwrap();
        std::fs::write(dir.path().join("10-crius.conflist"), BRIDGE_LIST).unwrap();
        std::fs::write(dir.path().join("00-readme.txt"), "ignored").unwrap();
        let list = load_network(dir.path()).unwrap();
        assert_eq!(list.name, "crius");
        assert_eq!(list.cni_version, "1.0.0");
        assert_eq!(
            list.plugin_types().collect::<Vec<_>>(),
            ["bridge", "portmap"]
        );
    }

    /// The pod network hack/run.sh and the .deb install: CRI-O's default
    /// subnet, which podman's 10.88.0.0/16 does not overlap, on a bridge
    /// of its own rather than flannel's cni0.
    #[test]
    fn shipped_default_network_is_a_bridge_on_10_85() {
        let path = Path::new("../hack/cni/10-crius-bridge.conflist");
        let bytes = include_bytes!("../../../hack/cni/10-crius-bridge.conflist");
        let list = NetworkConfigList::parse(path, bytes).unwrap();
        assert_eq!(list.name, "crius");
        assert_eq!(
            list.plugin_types().collect::<Vec<_>>(),
            ["bridge", "portmap", "loopback"]
        );
        let bridge = &list.plugins[0];
        assert_eq!(bridge["bridge"], "crius0");
        let range = &bridge["ipam"]["ranges"][0][0];
        assert_eq!(range["subnet"], "10.85.0.0/16");
        assert_eq!(range["gateway"], "10.85.0.1");
    }

    #[test]
    fn single_plugin_conf_becomes_a_list_of_one() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("10-lo.conf"),
            r#"{"cniVersion":"0.4.0","name":"lo","type":"loopback"}"#,
        )
        .unwrap();
        let list = load_network(dir.path()).unwrap();
        assert_eq!(list.plugin_types().collect::<Vec<_>>(), ["loopback"]);
    }

    #[test]
    fn empty_or_missing_dir_has_no_config() {
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(
            load_network(dir.path()),
            Err(CniConfigError::NoConfig { .. })
        ));
        let missing = dir.path().join("missing");
        assert!(matches!(
            load_network(&missing),
            Err(CniConfigError::NoConfig { .. })
        ));
    }

    #[test]
    fn plugins_are_looked_up_in_every_dir() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        std::fs::create_dir_all(&a).unwrap();
        std::fs::create_dir_all(&b).unwrap();
        for (d, name) in [(&a, "bridge"), (&b, "portmap")] {
            std::fs::write(d.join(name), "#!/bin/sh\n").unwrap();
            std::fs::set_permissions(d.join(name), std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        let list =
            NetworkConfigList::parse(Path::new("x.conflist"), BRIDGE_LIST.as_bytes()).unwrap();
        list.check_plugins(&[a.clone(), b.clone()]).unwrap();
        let err = list.check_plugins(&[a]).unwrap_err();
        assert!(err.to_string().contains("\"portmap\""), "{err}");
    }
}
