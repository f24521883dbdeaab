//! Registry credentials: the CRI `AuthConfig` of a request, else the global
//! auth file in docker `config.json` format (`{"auths": {host: {...}}}`).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use serde::Deserialize;

use crate::error::{Error, Result};

/// What to present to a registry.
#[derive(Clone, Default, PartialEq, Eq)]
pub enum Credentials {
    #[default]
    Anonymous,
    Basic {
        username: String,
        password: String,
    },
    /// A bearer token sent as is (CRI `registry_token`, docker `registrytoken`).
    RegistryToken(String),
    /// An OAuth2 refresh token exchanged at the registry's token endpoint
    /// (CRI `identity_token`, docker `identitytoken`).
    IdentityToken(String),
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Credentials::Anonymous => write!(f, "Anonymous"),
            Credentials::Basic { username, .. } => write!(f, "Basic({username:?}, <redacted>)"),
            Credentials::RegistryToken(_) => write!(f, "RegistryToken(<redacted>)"),
            Credentials::IdentityToken(_) => write!(f, "IdentityToken(<redacted>)"),
        }
    }
}

/// The fields shared by CRI `AuthConfig` and a docker config.json entry.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct AuthEntry {
    #[serde(default)]
    pub username: String,
    #[serde(default)]
    pub password: String,
    #[serde(default)]
    pub auth: String,
    #[serde(default, rename = "identitytoken")]
    pub identity_token: String,
    #[serde(default, rename = "registrytoken")]
    pub registry_token: String,
}

impl AuthEntry {
    pub fn from_cri(auth: &crius_proto::AuthConfig) -> AuthEntry {
        AuthEntry {
            username: auth.username.clone(),
            password: auth.password.clone(),
            auth: auth.auth.clone(),
            identity_token: auth.identity_token.clone(),
            registry_token: auth.registry_token.clone(),
        }
    }

    /// Tokens win over passwords, as in docker's `cli/config/types`.
    pub fn credentials(&self, registry: &str) -> Result<Credentials> {
        if !self.registry_token.is_empty() {
            return Ok(Credentials::RegistryToken(self.registry_token.clone()));
        }
        if !self.identity_token.is_empty() {
            return Ok(Credentials::IdentityToken(self.identity_token.clone()));
        }
        if !self.username.is_empty() {
            return Ok(Credentials::Basic {
                username: self.username.clone(),
                password: self.password.clone(),
            });
        }
        if !self.auth.is_empty() {
            let bad = |message: &str| Error::Credentials {
                registry: registry.to_owned(),
                message: message.to_owned(),
            };
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(self.auth.trim())
                .map_err(|_| bad("auth is not base64"))?;
            let decoded = String::from_utf8(decoded).map_err(|_| bad("auth is not utf-8"))?;
            let (username, password) = decoded
                .split_once(':')
                .ok_or_else(|| bad("auth is not base64 of user:password"))?;
            return Ok(Credentials::Basic {
                username: username.to_owned(),
                password: password.to_owned(),
            });
        }
        Ok(Credentials::Anonymous)
    }
}

#[derive(Debug, Deserialize)]
struct ConfigJson {
    #[serde(default)]
    auths: HashMap<String, AuthEntry>,
}

/// A docker `config.json` / containers `auth.json`.
#[derive(Debug, Clone, Default)]
pub struct AuthFile {
    path: PathBuf,
    /// Keys normalized to `host[/path]`.
    auths: HashMap<String, AuthEntry>,
}

impl AuthFile {
    /// Loads `path`; `None` or a missing file means no stored credentials.
    pub fn load(path: Option<&Path>) -> Result<AuthFile> {
        let Some(path) = path else {
            return Ok(AuthFile::default());
        };
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(AuthFile::default()),
            Err(e) => return Err(Error::io("read auth file", path, e)),
        };
        AuthFile::parse(path, &text)
    }

    pub fn parse(path: &Path, text: &str) -> Result<AuthFile> {
        let parsed: ConfigJson = serde_json::from_str(text).map_err(|e| Error::AuthFile {
            path: path.to_owned(),
            message: e.to_string(),
        })?;
        let auths = parsed
            .auths
            .into_iter()
            .map(|(key, entry)| (normalize_key(&key), entry))
            .collect();
        Ok(AuthFile {
            path: path.to_owned(),
            auths,
        })
    }

    /// The most specific entry for `registry/repository`: a
    /// `host/namespace` key beats a bare `host` key.
    pub fn lookup(&self, registry: &str, repository: &str) -> Result<Credentials> {
        let registry_key = normalize_key(registry);
        let mut name = format!("{registry_key}/{repository}");
        loop {
            if let Some(entry) = self.auths.get(&name) {
                return entry.credentials(registry).map_err(|e| match e {
                    Error::Credentials { registry, message } => Error::AuthFile {
                        path: self.path.clone(),
                        message: format!("{registry}: {message}"),
                    },
                    other => other,
                });
            }
            match name.rfind('/') {
                Some(i) => name.truncate(i),
                None => return Ok(Credentials::Anonymous),
            }
        }
    }
}

/// `https://index.docker.io/v1/` and friends all mean docker.io.
fn normalize_key(key: &str) -> String {
    let key = key
        .trim_start_matches("https://")
        .trim_start_matches("http://");
    let key = match key
        .strip_suffix("/v1/")
        .or_else(|| key.strip_suffix("/v2/"))
    {
        Some(k) => k,
        None => key.trim_end_matches('/'),
    };
    match key {
        "index.docker.io" | "registry-1.docker.io" => "docker.io".to_owned(),
        other => match other.split_once('/') {
            Some(("index.docker.io" | "registry-1.docker.io", rest)) => format!("docker.io/{rest}"),
            _ => other.to_owned(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn basic(u: &str, p: &str) -> Credentials {
        Credentials::Basic {
            username: u.into(),
            password: p.into(),
        }
    }

    #[test]
    fn auth_file_lookup_prefers_specific_keys() {
        let text = r#"{"auths": {
            "https://index.docker.io/v1/": {"auth": "aHViOnNlY3JldA=="},
            "quay.io": {"username": "q", "password": "p"},
            "quay.io/team": {"registrytoken": "tok"},
            "127.0.0.1:5000": {"identitytoken": "refresh"}
        }}"#;
        let file = AuthFile::parse(Path::new("/auth.json"), text).unwrap();
        assert_eq!(
            file.lookup("docker.io", "library/busybox").unwrap(),
            basic("hub", "secret")
        );
        assert_eq!(file.lookup("quay.io", "other/x").unwrap(), basic("q", "p"));
        assert_eq!(
            file.lookup("quay.io", "team/app").unwrap(),
            Credentials::RegistryToken("tok".into())
        );
        assert_eq!(
            file.lookup("127.0.0.1:5000", "a").unwrap(),
            Credentials::IdentityToken("refresh".into())
        );
        assert_eq!(file.lookup("ghcr.io", "a").unwrap(), Credentials::Anonymous);
    }

    #[test]
    fn cri_auth_config_forms() {
        let mut a = crius_proto::AuthConfig {
            auth: "dTpw".into(),
            ..Default::default()
        };
        assert_eq!(
            AuthEntry::from_cri(&a).credentials("r").unwrap(),
            basic("u", "p")
        );
        a.username = "x".into();
        a.password = "y".into();
        assert_eq!(
            AuthEntry::from_cri(&a).credentials("r").unwrap(),
            basic("x", "y")
        );
        a.identity_token = "id".into();
        assert_eq!(
            AuthEntry::from_cri(&a).credentials("r").unwrap(),
            Credentials::IdentityToken("id".into())
        );
        a.registry_token = "rt".into();
        assert_eq!(
            AuthEntry::from_cri(&a).credentials("r").unwrap(),
            Credentials::RegistryToken("rt".into())
        );
        let bad = crius_proto::AuthConfig {
            auth: "!!".into(),
            ..Default::default()
        };
        assert!(AuthEntry::from_cri(&bad).credentials("r").is_err());
        assert!(AuthFile::parse(Path::new("/a"), "{").is_err());
    }
}
