//! The common subset of containers-registries.conf(5) v2: `[[registry]]`
//! with `prefix`, `location`, `insecure`, `blocked` and `[[registry.mirror]]`
//! (`location`, `insecure`, `pull-from-mirror`), plus
//! `unqualified-search-registries`. Other keys (aliases, short-name-mode,
//! credential helpers) are accepted and ignored.
//!
//! Extension: `prefix = "*"` is a catch-all whose mirrors apply to every
//! registry, falling back to the origin. A catch-all mirror is addressed as
//! `<mirror location>/<repository>` (the origin host is dropped), which is
//! how pull-through caches such as `registry` in proxy mode serve content.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::error::{Error, Result};
use crate::reference::Reference;

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
struct File {
    #[serde(default)]
    unqualified_search_registries: Option<Vec<String>>,
    #[serde(default)]
    registry: Vec<RegistryEntry>,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(rename_all = "kebab-case")]
pub struct RegistryEntry {
    #[serde(default)]
    pub prefix: String,
    #[serde(default)]
    pub location: String,
    #[serde(default)]
    pub insecure: bool,
    #[serde(default)]
    pub blocked: bool,
    #[serde(default)]
    pub mirror: Vec<Mirror>,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(rename_all = "kebab-case")]
pub struct Mirror {
    pub location: String,
    #[serde(default)]
    pub insecure: bool,
    #[serde(default)]
    pub pull_from_mirror: PullFromMirror,
}

#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum PullFromMirror {
    #[default]
    All,
    DigestOnly,
    TagOnly,
}

/// One place to try: a registry host, the repository there, and whether
/// to speak plain HTTP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub registry: String,
    pub repository: String,
    pub insecure: bool,
    pub mirror: bool,
}

/// Parsed registries configuration plus the daemon's own insecure list.
#[derive(Debug, Clone, Default)]
pub struct Registries {
    path: PathBuf,
    search: Vec<String>,
    /// Whether the file set the search list (drop-ins replace it only then).
    search_set: Option<Vec<String>>,
    entries: Vec<RegistryEntry>,
    insecure: Vec<String>,
}

impl Registries {
    /// Loads `path` and then the drop-ins `registries.conf.d/*.conf` next
    /// to it, in lexical order, as containers-registries.conf.d(5) says: a
    /// drop-in's `[[registry]]` replaces the one with the same prefix, its
    /// `unqualified-search-registries` (if set) replaces the list. A
    /// missing file or directory means no rules.
    pub fn load(path: &Path, insecure_registries: Vec<String>) -> Result<Registries> {
        let mut files = vec![path.to_owned()];
        if let Some(dir) = path.parent() {
            let dropins = dir.join("registries.conf.d");
            if let Ok(entries) = std::fs::read_dir(&dropins) {
                let mut found: Vec<PathBuf> = entries
                    .filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|p| p.extension().is_some_and(|e| e == "conf"))
                    .collect();
                found.sort();
                files.extend(found);
            }
        }
        let mut merged = Registries {
            path: path.to_owned(),
            insecure: insecure_registries,
            ..Registries::default()
        };
        for file in files {
            let text = match std::fs::read_to_string(&file) {
                Ok(text) => text,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(Error::io("read", &file, e)),
            };
            let layer = Registries::parse(&file, &text, Vec::new())?;
            if let Some(search) = layer.search_set {
                merged.search = search;
            }
            for entry in layer.entries {
                merged.entries.retain(|e| e.prefix != entry.prefix);
                merged.entries.push(entry);
            }
        }
        Ok(merged)
    }

    pub fn parse(path: &Path, text: &str, insecure: Vec<String>) -> Result<Registries> {
        let bad = |message: String| Error::RegistriesConf {
            path: path.to_owned(),
            message,
        };
        let file: File = toml::from_str(text).map_err(|e| bad(e.message().to_owned()))?;
        let mut entries = Vec::new();
        for mut entry in file.registry {
            if entry.prefix.is_empty() {
                entry.prefix = entry.location.clone();
            }
            if entry.prefix.is_empty() {
                return Err(bad("a [[registry]] needs a prefix or a location".into()));
            }
            if entry.prefix.starts_with('*') && !entry.location.is_empty() {
                return Err(bad(format!(
                    "wildcard prefix {:?} must not have a location",
                    entry.prefix
                )));
            }
            if entry.prefix.starts_with('*')
                && entry.prefix != "*"
                && (!entry.prefix.starts_with("*.") || entry.prefix.contains('/'))
            {
                return Err(bad(format!("invalid wildcard prefix {:?}", entry.prefix)));
            }
            if entries
                .iter()
                .any(|e: &RegistryEntry| e.prefix == entry.prefix)
            {
                return Err(bad(format!("prefix {:?} is defined twice", entry.prefix)));
            }
            if let Some(m) = entry.mirror.iter().find(|m| m.location.is_empty()) {
                return Err(bad(format!(
                    "mirror {m:?} of {:?} has no location",
                    entry.prefix
                )));
            }
            entries.push(entry);
        }
        Ok(Registries {
            path: path.to_owned(),
            search: file
                .unqualified_search_registries
                .clone()
                .unwrap_or_default(),
            search_set: file.unqualified_search_registries,
            entries,
            insecure,
        })
    }

    /// The references to try for `reference`: itself when qualified, else one
    /// per unqualified-search registry (docker.io when none is configured).
    pub fn candidates(&self, reference: &Reference) -> Vec<Reference> {
        if reference.qualified || self.search.is_empty() {
            return vec![reference.clone()];
        }
        self.search
            .iter()
            .map(|d| reference.with_domain(d))
            .collect()
    }

    fn matching(&self, name: &str) -> Option<&RegistryEntry> {
        let host = name.split('/').next().unwrap_or(name);
        let exact = self
            .entries
            .iter()
            .filter(|e| !e.prefix.starts_with('*'))
            .filter(|e| name == e.prefix || name.starts_with(&format!("{}/", e.prefix)))
            .max_by_key(|e| e.prefix.len());
        exact.or_else(|| {
            self.entries
                .iter()
                .filter(|e| e.prefix.starts_with("*."))
                .filter(|e| host.ends_with(&e.prefix[1..]))
                .max_by_key(|e| e.prefix.len())
                .or_else(|| self.entries.iter().find(|e| e.prefix == "*"))
        })
    }

    /// The endpoints for `reference`, mirrors first, the origin last.
    pub fn endpoints(&self, reference: &Reference) -> Result<Vec<Endpoint>> {
        let name = reference.name();
        let Some(entry) = self.matching(&name) else {
            return Ok(vec![self.endpoint(&name, false, false)]);
        };
        if entry.blocked {
            return Err(Error::Blocked {
                registry: name,
                path: self.path.clone(),
            });
        }
        let by_digest = reference.digest.is_some();
        let mut out = Vec::new();
        for mirror in &entry.mirror {
            let wanted = match mirror.pull_from_mirror {
                PullFromMirror::All => true,
                PullFromMirror::DigestOnly => by_digest,
                PullFromMirror::TagOnly => !by_digest,
            };
            if !wanted {
                continue;
            }
            let rewritten = if entry.prefix.starts_with('*') {
                format!(
                    "{}/{}",
                    mirror.location.trim_end_matches('/'),
                    reference.path
                )
            } else {
                format!("{}{}", mirror.location, &name[entry.prefix.len()..])
            };
            out.push(self.endpoint(&rewritten, mirror.insecure, true));
        }
        let origin = if entry.location.is_empty() || entry.prefix.starts_with('*') {
            name.clone()
        } else {
            format!("{}{}", entry.location, &name[entry.prefix.len()..])
        };
        out.push(self.endpoint(&origin, entry.insecure, false));
        Ok(out)
    }

    fn endpoint(&self, name: &str, insecure: bool, mirror: bool) -> Endpoint {
        let (registry, repository) = name.split_once('/').unwrap_or((name, ""));
        let insecure = insecure
            || is_loopback(registry)
            || self
                .insecure
                .iter()
                .any(|i| i == registry || name == i || name.starts_with(&format!("{i}/")));
        Endpoint {
            registry: registry.to_owned(),
            repository: repository.to_owned(),
            insecure,
            mirror,
        }
    }
}

/// localhost, 127.0.0.0/8 and ::1, with or without a port: plain HTTP by
/// default, as Docker does.
pub fn is_loopback(registry: &str) -> bool {
    let host = if let Some(rest) = registry.strip_prefix('[') {
        rest.split(']').next().unwrap_or(rest)
    } else {
        registry.rsplit_once(':').map_or(registry, |(h, _)| h)
    };
    host == "localhost"
        || host.ends_with(".localhost")
        || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn regs(text: &str) -> Registries {
        Registries::parse(Path::new("/r.conf"), text, vec!["plain.example.com".into()]).unwrap()
    }

    fn ends(r: &Registries, reference: &str) -> Vec<(String, String, bool, bool)> {
        r.endpoints(&Reference::parse(reference).unwrap())
            .unwrap()
            .into_iter()
            .map(|e| (e.registry, e.repository, e.insecure, e.mirror))
            .collect()
    }

    #[test]
    fn no_config_means_origin_over_https_except_loopback_and_listed() {
        let r = regs("");
        assert_eq!(
            ends(&r, "quay.io/a/b"),
            [("quay.io".into(), "a/b".into(), false, false)]
        );
        assert!(ends(&r, "127.0.0.1:5000/a")[0].2);
        assert!(ends(&r, "localhost:5000/a")[0].2);
        assert!(ends(&r, "[::1]:5000/a")[0].2);
        assert!(ends(&r, "plain.example.com/a")[0].2);
        assert!(!ends(&r, "127.example.com/a")[0].2);
    }

    #[test]
    fn mirrors_come_first_and_rewrite_the_prefix() {
        let r = regs(
            r#"
            unqualified-search-registries = ["quay.io", "docker.io"]
            short-name-mode = "permissive"
            [[registry]]
            prefix = "docker.io/library"
            location = "origin.example.com/lib"
            [[registry.mirror]]
            location = "mirror.example.com:5000/dockerhub"
            insecure = true
            [[registry.mirror]]
            location = "digest.example.com"
            pull-from-mirror = "digest-only"
            "#,
        );
        assert_eq!(
            ends(&r, "busybox:1"),
            [
                (
                    "mirror.example.com:5000".into(),
                    "dockerhub/busybox".into(),
                    true,
                    true
                ),
                (
                    "origin.example.com".into(),
                    "lib/busybox".into(),
                    false,
                    false
                ),
            ]
        );
        let digest = format!("busybox@sha256:{}", "0".repeat(64));
        assert_eq!(ends(&r, &digest).len(), 3);
        // a prefix matches at a path boundary only
        assert_eq!(ends(&r, "docker.io/libraryx/a").len(), 1);
        let search: Vec<String> = r
            .candidates(&Reference::parse("busybox").unwrap())
            .iter()
            .map(|c| c.to_string())
            .collect();
        assert_eq!(
            search,
            ["quay.io/busybox:latest", "docker.io/library/busybox:latest"]
        );
    }

    #[test]
    fn blocked_wildcard_and_catch_all() {
        let r = regs(
            r#"
            [[registry]]
            prefix = "evil.example.com"
            blocked = true
            [[registry]]
            prefix = "*.corp.example"
            insecure = true
            [[registry]]
            prefix = "*"
            [[registry.mirror]]
            location = "127.0.0.1:5001"
            "#,
        );
        let err = r
            .endpoints(&Reference::parse("evil.example.com/x").unwrap())
            .unwrap_err();
        assert_eq!(err.kind(), crius_proto::ErrorKind::FailedPrecondition);
        assert_eq!(
            ends(&r, "a.corp.example/x"),
            [("a.corp.example".into(), "x".into(), true, false)]
        );
        assert_eq!(
            ends(&r, "quay.io/org/app"),
            [
                ("127.0.0.1:5001".into(), "org/app".into(), true, true),
                ("quay.io".into(), "org/app".into(), false, false),
            ]
        );
    }

    #[test]
    fn dropins_replace_prefixes_and_the_search_list() {
        let dir = tempfile::tempdir().unwrap();
        let main = dir.path().join("registries.conf");
        std::fs::write(
            &main,
            r#"
            unqualified-search-registries = ["quay.io"]
            [[registry]]
            prefix = "a.example.com"
            blocked = true
            [[registry]]
            prefix = "b.example.com"
            location = "b2.example.com"
            "#,
        )
        .unwrap();
        let d = dir.path().join("registries.conf.d");
        std::fs::create_dir(&d).unwrap();
        std::fs::write(
            d.join("10-a.conf"),
            "[[registry]]\nprefix = \"a.example.com\"\nlocation = \"a2.example.com\"\n",
        )
        .unwrap();
        std::fs::write(
            d.join("20-search.conf"),
            "unqualified-search-registries = [\"docker.io\"]\n[aliases]\nx = \"y\"\n",
        )
        .unwrap();
        std::fs::write(d.join("ignored.txt"), "not toml").unwrap();
        let r = Registries::load(&main, vec![]).unwrap();
        assert_eq!(
            ends(&r, "a.example.com/x"),
            [("a2.example.com".into(), "x".into(), false, false)]
        );
        assert_eq!(ends(&r, "b.example.com/x")[0].0, "b2.example.com");
        let search: Vec<String> = r
            .candidates(&Reference::parse("busybox").unwrap())
            .iter()
            .map(|c| c.to_string())
            .collect();
        assert_eq!(search, ["docker.io/library/busybox:latest"]);
        // a missing main file and dir are no rules
        let none = Registries::load(&dir.path().join("nope/registries.conf"), vec![]).unwrap();
        assert_eq!(ends(&none, "quay.io/x").len(), 1);
    }

    #[test]
    fn rejects_bad_files() {
        for text in [
            "[[registry]]\ninsecure = true",
            "[[registry]]\nprefix = \"*.x.com\"\nlocation = \"y\"",
            "[[registry]]\nprefix = \"a\"\n[[registry]]\nprefix = \"a\"",
            "[[registry]]\nprefix = \"a\"\n[[registry.mirror]]\ninsecure = true",
            "[[registry]]\nprefix = \"a\"\nblocked = \"yes\"",
        ] {
            assert!(
                Registries::parse(Path::new("/r"), text, vec![]).is_err(),
                "{text}"
            );
        }
    }
}
