//! The per-pod files containers mount: `/etc/hostname`, `/etc/hosts`,
//! `/etc/resolv.conf`, and the `/dev/shm` tmpfs.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use nix::mount::{MntFlags, MsFlags};
use serde::{Deserialize, Serialize};

/// DNS settings from the pod config; all empty means "use the host's".
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dns {
    pub servers: Vec<String>,
    pub searches: Vec<String>,
    pub options: Vec<String>,
}

impl Dns {
    pub fn is_empty(&self) -> bool {
        self.servers.is_empty() && self.searches.is_empty() && self.options.is_empty()
    }
}

/// Where the per-pod files live (under `<runroot>/sandboxes/<id>`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PodFiles {
    pub dir: PathBuf,
    pub hostname: PathBuf,
    pub hosts: PathBuf,
    pub resolv_conf: PathBuf,
    /// `None` when the pod uses the host IPC namespace (and `/dev/shm`).
    pub shm: Option<PathBuf>,
}

impl PodFiles {
    pub fn new(dir: PathBuf, with_shm: bool) -> PodFiles {
        PodFiles {
            hostname: dir.join("hostname"),
            hosts: dir.join("hosts"),
            resolv_conf: dir.join("resolv.conf"),
            shm: with_shm.then(|| dir.join("shm")),
            dir,
        }
    }
}

pub fn resolv_conf(dns: &Dns, host_resolv_conf: &Path) -> std::io::Result<String> {
    if dns.is_empty() {
        return match std::fs::read_to_string(host_resolv_conf) {
            Ok(text) => Ok(text),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(String::new()),
            Err(e) => Err(e),
        };
    }
    let mut out = String::new();
    if !dns.searches.is_empty() {
        let _ = writeln!(out, "search {}", dns.searches.join(" "));
    }
    for server in &dns.servers {
        let _ = writeln!(out, "nameserver {server}");
    }
    if !dns.options.is_empty() {
        let _ = writeln!(out, "options {}", dns.options.join(" "));
    }
    Ok(out)
}

pub fn hosts(hostname: &str, ips: &[std::net::IpAddr]) -> String {
    let mut out = String::from(
        "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n\
         fe00::0\tip6-localnet\nfe00::0\tip6-mcastprefix\nfe00::1\tip6-allnodes\n\
         fe00::2\tip6-allrouters\n",
    );
    for ip in ips {
        let _ = writeln!(out, "{ip}\t{hostname}");
    }
    out
}

/// Mounts the pod's `/dev/shm` tmpfs.
pub fn mount_shm(path: &Path, size: u64) -> Result<(), nix::Error> {
    std::fs::create_dir_all(path)
        .map_err(|e| nix::Error::from_raw(e.raw_os_error().unwrap_or(nix::Error::EIO as i32)))?;
    let data = format!("mode=1777,size={size}");
    nix::mount::mount(
        Some("shm"),
        path,
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        Some(data.as_str()),
    )
}

/// Unmounts `/dev/shm` if mounted; an absent mount is fine.
pub fn unmount_shm(path: &Path) -> Result<(), nix::Error> {
    match nix::mount::umount2(path, MntFlags::MNT_DETACH) {
        Ok(()) | Err(nix::Error::EINVAL) | Err(nix::Error::ENOENT) => Ok(()),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolv_conf_from_dns_config_or_host() {
        let dns = Dns {
            servers: vec!["10.0.0.10".into(), "1.1.1.1".into()],
            searches: vec![
                "default.svc.cluster.local".into(),
                "svc.cluster.local".into(),
            ],
            options: vec!["ndots:5".into()],
        };
        let host = Path::new("/nonexistent/resolv.conf");
        assert_eq!(
            resolv_conf(&dns, host).unwrap(),
            "search default.svc.cluster.local svc.cluster.local\n\
             nameserver 10.0.0.10\nnameserver 1.1.1.1\noptions ndots:5\n"
        );
        assert_eq!(resolv_conf(&Dns::default(), host).unwrap(), "");
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("r"), "nameserver 9.9.9.9\n").unwrap();
        assert_eq!(
            resolv_conf(&Dns::default(), &dir.path().join("r")).unwrap(),
            "nameserver 9.9.9.9\n"
        );
    }

    #[test]
    fn hosts_names_the_pod_ip() {
        let text = hosts("web-0", &["10.88.0.5".parse().unwrap()]);
        assert!(text.starts_with("127.0.0.1\tlocalhost\n"));
        assert!(text.ends_with("10.88.0.5\tweb-0\n"));
    }
}
