//! The registry JSON documents crius reads: manifests, indexes (Docker
//! schema2 and OCI share their shape) and the image config.

use std::collections::BTreeMap;

use serde::Deserialize;

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const ACCEPTED: &[&str] = &[OCI_INDEX, DOCKER_LIST, OCI_MANIFEST, DOCKER_MANIFEST];

/// Manifests and configs above this are refused before parsing.
pub const MAX_DOCUMENT_SIZE: u64 = 8 * 1024 * 1024;

/// Docker's own limit. 127 lower dirs fit in the one page of overlay mount
/// options when given relative to `<store>/l` (`<16 hex>:` each).
pub const MAX_LAYERS: usize = 127;

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    #[serde(default)]
    pub media_type: String,
    pub digest: String,
    pub size: u64,
    #[serde(default)]
    pub platform: Option<Platform>,
}

#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct Platform {
    #[serde(default)]
    pub architecture: String,
    #[serde(default)]
    pub os: String,
    #[serde(default)]
    pub variant: Option<String>,
}

/// A manifest or an index: which one is told by `mediaType` or, when that
/// is absent (allowed by OCI), by which fields are present.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Document {
    #[serde(default)]
    pub schema_version: u32,
    #[serde(default)]
    pub media_type: Option<String>,
    #[serde(default)]
    pub config: Option<Descriptor>,
    #[serde(default)]
    pub layers: Vec<Descriptor>,
    #[serde(default)]
    pub manifests: Vec<Descriptor>,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
}

impl Document {
    pub fn is_index(&self) -> bool {
        match self.media_type.as_deref() {
            Some(OCI_INDEX | DOCKER_LIST) => true,
            Some(_) => false,
            None => self.config.is_none() && !self.manifests.is_empty(),
        }
    }
}

/// The platform crius runs containers for: the host's, as Go names it.
pub fn host_platform() -> Platform {
    let (architecture, variant) = match std::env::consts::ARCH {
        "x86_64" => ("amd64", None),
        "aarch64" => ("arm64", Some("v8")),
        "arm" => ("arm", Some("v7")),
        "x86" => ("386", None),
        "powerpc64" => ("ppc64le", None),
        other => (other, None),
    };
    Platform {
        architecture: architecture.to_owned(),
        os: "linux".to_owned(),
        variant: variant.map(str::to_owned),
    }
}

/// The index entry for `want`: an exact variant match first, then the same
/// os/arch with no variant (or `v1`/`v8` defaults), then any variant.
pub fn choose<'a>(entries: &'a [Descriptor], want: &Platform) -> Option<&'a Descriptor> {
    let same = |d: &&Descriptor| {
        d.platform
            .as_ref()
            .is_some_and(|p| p.os == want.os && p.architecture == want.architecture)
    };
    let variant = |d: &Descriptor| d.platform.as_ref().and_then(|p| p.variant.clone());
    entries
        .iter()
        .filter(same)
        .find(|d| variant(d) == want.variant)
        .or_else(|| {
            entries
                .iter()
                .filter(same)
                .find(|d| matches!(variant(d).as_deref(), None | Some("v1") | Some("v8")))
        })
        .or_else(|| entries.iter().find(same))
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct ImageConfig {
    #[serde(default)]
    pub architecture: String,
    #[serde(default)]
    pub os: String,
    #[serde(default)]
    pub config: Option<ContainerConfig>,
    pub rootfs: RootFs,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ContainerConfig {
    #[serde(default)]
    pub user: Option<String>,
    #[serde(default)]
    pub env: Option<Vec<String>>,
    #[serde(default)]
    pub entrypoint: Option<Vec<String>>,
    #[serde(default)]
    pub cmd: Option<Vec<String>>,
    #[serde(default)]
    pub working_dir: Option<String>,
    #[serde(default)]
    pub stop_signal: Option<String>,
    #[serde(default)]
    pub labels: Option<BTreeMap<String, String>>,
    #[serde(default)]
    pub exposed_ports: Option<BTreeMap<String, serde_json::Value>>,
    #[serde(default)]
    pub volumes: Option<BTreeMap<String, serde_json::Value>>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct RootFs {
    #[serde(rename = "type", default)]
    pub kind: String,
    #[serde(default)]
    pub diff_ids: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(arch: &str, variant: Option<&str>, digest: &str) -> Descriptor {
        Descriptor {
            media_type: OCI_MANIFEST.into(),
            digest: digest.into(),
            size: 1,
            platform: Some(Platform {
                architecture: arch.into(),
                os: "linux".into(),
                variant: variant.map(Into::into),
            }),
        }
    }

    #[test]
    fn platform_choice_honours_variants() {
        let entries = [
            entry("arm", Some("v6"), "a6"),
            entry("arm", Some("v7"), "a7"),
            entry("arm64", None, "a64"),
            entry("amd64", Some("v3"), "x3"),
            entry("amd64", None, "x"),
        ];
        let pick = |arch: &str, variant: Option<&str>| {
            let want = Platform {
                architecture: arch.into(),
                os: "linux".into(),
                variant: variant.map(Into::into),
            };
            choose(&entries, &want).map(|d| d.digest.clone())
        };
        assert_eq!(pick("amd64", None).as_deref(), Some("x"));
        assert_eq!(pick("arm", Some("v7")).as_deref(), Some("a7"));
        assert_eq!(pick("arm64", Some("v8")).as_deref(), Some("a64"));
        assert_eq!(pick("s390x", None), None);
        assert_eq!(host_platform().os, "linux");
    }

    #[test]
    fn index_detection() {
        let index: Document =
            serde_json::from_str(r#"{"schemaVersion":2,"manifests":[]}"#).unwrap();
        assert!(
            !index.is_index(),
            "no entries and no media type is not an index"
        );
        let index: Document =
            serde_json::from_str(r#"{"schemaVersion":2,"manifests":[{"digest":"d","size":1}]}"#)
                .unwrap();
        assert!(index.is_index());
        let list: Document = serde_json::from_str(&format!(
            r#"{{"schemaVersion":2,"mediaType":"{DOCKER_LIST}","manifests":[]}}"#
        ))
        .unwrap();
        assert!(list.is_index());
    }
}
