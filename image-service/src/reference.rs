//! Image references, normalized the way Docker and the kubelet do:
//! `busybox` is `docker.io/library/busybox:latest`.
//!
//! Grammar from distribution/reference: `[domain/]path[:tag][@digest]`; the
//! first component is a domain when it contains `.` or `:` or is
//! `localhost`; path components are lower-case alphanumerics joined by `.`,
//! `_`, `__` or runs of `-`.

use std::fmt;

use crate::error::{Error, Result};

pub const DEFAULT_DOMAIN: &str = "docker.io";
pub const DEFAULT_TAG: &str = "latest";
const LEGACY_DEFAULT_DOMAIN: &str = "index.docker.io";
const MAX_NAME_LEN: usize = 255;

/// A parsed, normalized image reference.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Reference {
    /// Registry host with optional port, e.g. `docker.io`, `127.0.0.1:5000`.
    pub domain: String,
    /// Repository path inside the registry, e.g. `library/busybox`.
    pub path: String,
    /// `None` only when a digest is given without a tag.
    pub tag: Option<String>,
    /// `sha256:<hex>`.
    pub digest: Option<String>,
    /// Whether the input named its registry; unqualified names may be
    /// resolved through `unqualified-search-registries`.
    pub qualified: bool,
}

impl Reference {
    /// Parses and normalizes `input`. A reference with a digest keeps only
    /// the digest, as `docker pull name:tag@digest` does.
    pub fn parse(input: &str) -> Result<Reference> {
        let invalid = |reason: &str| Error::InvalidReference {
            reference: input.to_owned(),
            reason: reason.to_owned(),
        };
        if input.is_empty() {
            return Err(invalid("empty reference"));
        }
        let id = input.strip_prefix("sha256:").unwrap_or(input);
        if id.len() == 64 && is_hex(id) {
            return Err(invalid("an image id is not a name to pull"));
        }
        let (rest, digest) = match input.split_once('@') {
            Some((rest, digest)) => {
                validate_digest(digest).map_err(|r| invalid(&r))?;
                (rest, Some(digest.to_owned()))
            }
            None => (input, None),
        };
        let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match rest[last_slash..].rfind(':') {
            Some(i) => {
                let tag = &rest[last_slash + i + 1..];
                validate_tag(tag).map_err(|r| invalid(&r))?;
                (&rest[..last_slash + i], Some(tag.to_owned()))
            }
            None => (rest, None),
        };
        if name.is_empty() {
            return Err(invalid("empty name"));
        }
        let (domain, path, qualified) = match name.split_once('/') {
            Some((first, remainder))
                if first.contains('.') || first.contains(':') || first == "localhost" =>
            {
                validate_domain(first).map_err(|r| invalid(&r))?;
                let domain = if first == LEGACY_DEFAULT_DOMAIN {
                    DEFAULT_DOMAIN
                } else {
                    first
                };
                (domain.to_owned(), remainder.to_owned(), true)
            }
            _ => (DEFAULT_DOMAIN.to_owned(), name.to_owned(), false),
        };
        if name.chars().any(|c| c.is_ascii_uppercase()) {
            return Err(invalid("repository name must be lowercase"));
        }
        let path = if domain == DEFAULT_DOMAIN && !path.contains('/') {
            format!("library/{path}")
        } else {
            path
        };
        for component in path.split('/') {
            validate_path_component(component).map_err(|r| invalid(&r))?;
        }
        if domain.len() + 1 + path.len() > MAX_NAME_LEN {
            return Err(invalid("name longer than 255 characters"));
        }
        let tag = match (&digest, tag) {
            (Some(_), _) => None,
            (None, Some(tag)) => Some(tag),
            (None, None) => Some(DEFAULT_TAG.to_owned()),
        };
        Ok(Reference {
            domain,
            path,
            tag,
            digest,
            qualified,
        })
    }

    /// The same reference on another registry (unqualified-search).
    pub fn with_domain(&self, domain: &str) -> Reference {
        let path = match self.path.strip_prefix("library/") {
            Some(short) if domain != DEFAULT_DOMAIN && !self.qualified => short.to_owned(),
            _ => self.path.clone(),
        };
        Reference {
            domain: domain.to_owned(),
            path,
            qualified: true,
            ..self.clone()
        }
    }

    /// `domain/path`.
    pub fn name(&self) -> String {
        format!("{}/{}", self.domain, self.path)
    }

    /// `domain/path:tag`, if the reference has a tag.
    pub fn tagged(&self) -> Option<String> {
        self.tag.as_ref().map(|t| format!("{}:{t}", self.name()))
    }

    /// `domain/path@digest` for a manifest digest.
    pub fn digested(&self, digest: &str) -> String {
        format!("{}@{digest}", self.name())
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.name())?;
        if let Some(tag) = &self.tag {
            write!(f, ":{tag}")?;
        }
        if let Some(digest) = &self.digest {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}

pub(crate) fn is_hex(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// `sha256:<64 hex>` or `sha512:<128 hex>`.
pub fn validate_digest(digest: &str) -> std::result::Result<(), String> {
    let (algorithm, hex) = digest
        .split_once(':')
        .ok_or_else(|| format!("digest {digest:?} has no algorithm"))?;
    let len = match algorithm {
        "sha256" => 64,
        "sha512" => 128,
        other => return Err(format!("unsupported digest algorithm {other:?}")),
    };
    if hex.len() != len || !is_hex(hex) {
        return Err(format!(
            "digest {digest:?} is not {len} lower-case hex digits"
        ));
    }
    Ok(())
}

fn validate_tag(tag: &str) -> std::result::Result<(), String> {
    let ok = !tag.is_empty()
        && tag.len() <= 128
        && tag
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_')
        && tag
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(format!("invalid tag {tag:?}"))
    }
}

fn validate_domain(domain: &str) -> std::result::Result<(), String> {
    let bad = || format!("invalid registry host {domain:?}");
    let (host, port) = if let Some(rest) = domain.strip_prefix('[') {
        let (ip, after) = rest.split_once(']').ok_or_else(bad)?;
        ip.parse::<std::net::Ipv6Addr>().map_err(|_| bad())?;
        (None, after.strip_prefix(':'))
    } else {
        match domain.rsplit_once(':') {
            Some((host, port)) => (Some(host), Some(port)),
            None => (Some(domain), None),
        }
    };
    if let Some(port) = port
        && (port.is_empty() || port.len() > 5 || !port.bytes().all(|b| b.is_ascii_digit()))
    {
        return Err(bad());
    }
    if let Some(host) = host {
        let label_ok = |l: &str| {
            !l.is_empty()
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        };
        if !host.split('.').all(label_ok) {
            return Err(bad());
        }
    }
    Ok(())
}

/// `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`
fn validate_path_component(component: &str) -> std::result::Result<(), String> {
    let bad = || format!("invalid repository path component {component:?}");
    let bytes = component.as_bytes();
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    if bytes.is_empty() || !alnum(bytes[0]) || !alnum(bytes[bytes.len() - 1]) {
        return Err(bad());
    }
    let mut i = 0;
    while i < bytes.len() {
        if alnum(bytes[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < bytes.len() && !alnum(bytes[i]) {
            i += 1;
        }
        let sep = &component[start..i];
        let ok = matches!(sep, "." | "_" | "__") || sep.bytes().all(|b| b == b'-');
        if !ok {
            return Err(bad());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn full(s: &str) -> String {
        Reference::parse(s).unwrap().to_string()
    }

    #[test]
    fn normalizes_like_docker() {
        assert_eq!(full("busybox"), "docker.io/library/busybox:latest");
        assert_eq!(full("busybox:1.36"), "docker.io/library/busybox:1.36");
        assert_eq!(full("user/app"), "docker.io/user/app:latest");
        assert_eq!(
            full("index.docker.io/busybox"),
            "docker.io/library/busybox:latest"
        );
        assert_eq!(
            full("docker.io/library/busybox"),
            "docker.io/library/busybox:latest"
        );
        assert_eq!(full("quay.io/a/b/c:v1"), "quay.io/a/b/c:v1");
        assert_eq!(full("localhost/app"), "localhost/app:latest");
        assert_eq!(
            full("127.0.0.1:5000/busybox"),
            "127.0.0.1:5000/busybox:latest"
        );
        assert_eq!(full("[::1]:5000/busybox:x"), "[::1]:5000/busybox:x");
        assert_eq!(
            full("a__b/c-d--e.f_g:T_1.-x"),
            "docker.io/a__b/c-d--e.f_g:T_1.-x"
        );
    }

    #[test]
    fn digests_replace_the_default_tag() {
        let d = format!("sha256:{}", "a".repeat(64));
        let r = Reference::parse(&format!("busybox@{d}")).unwrap();
        assert_eq!(r.tag, None);
        assert_eq!(r.digest.as_deref(), Some(d.as_str()));
        assert_eq!(r.to_string(), format!("docker.io/library/busybox@{d}"));
        let r = Reference::parse(&format!("127.0.0.1:5000/busybox:1.0@{d}")).unwrap();
        assert_eq!(r.domain, "127.0.0.1:5000");
        assert_eq!(r.tag, None);
        assert_eq!(r.digested(&d), format!("127.0.0.1:5000/busybox@{d}"));
    }

    #[test]
    fn rejects_invalid_references() {
        let d = "a".repeat(64);
        for bad in [
            "",
            "Busybox",
            "busybox:",
            "busybox:-x",
            "busybox@sha256:abc",
            "busybox@md5:0123",
            &format!("busybox@sha256:{}", "A".repeat(64)),
            "a..b",
            "a/-b",
            "a/b_",
            "a._b",
            "/busybox",
            "busybox/",
            "exa_mple.com/x",
            "example.com:port/x",
            "a b",
            &d,
            &format!("sha256:{d}"),
            &format!("x/{}", "a".repeat(300)),
        ] {
            let err = Reference::parse(bad).unwrap_err();
            assert_eq!(
                err.kind(),
                crius_proto::ErrorKind::InvalidArgument,
                "{bad:?}"
            );
        }
    }

    #[test]
    fn search_domains_drop_the_library_prefix() {
        let r = Reference::parse("busybox").unwrap();
        assert!(!r.qualified);
        assert_eq!(
            r.with_domain("quay.io").to_string(),
            "quay.io/busybox:latest"
        );
        assert_eq!(
            r.with_domain("docker.io").to_string(),
            "docker.io/library/busybox:latest"
        );
    }
}
