//! Device nodes for containers: CRI `Device`s (host path -> container path
//! with permissions) and, for privileged containers, every host device.
//! Reads the host's /dev, so it runs before (and outside) spec building.

use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

use oci_spec::runtime::{LinuxDevice, LinuxDeviceCgroup, LinuxDeviceType};

use crate::error::{Error, Result};

/// A device node and the cgroup rule allowing it.
fn device_at(
    host: &Path,
    container_path: &str,
    permissions: &str,
) -> std::io::Result<Option<(LinuxDevice, LinuxDeviceCgroup)>> {
    let md = std::fs::metadata(host)?;
    let ft = md.file_type();
    let typ = if ft.is_char_device() {
        LinuxDeviceType::C
    } else if ft.is_block_device() {
        LinuxDeviceType::B
    } else {
        return Ok(None);
    };
    let rdev = md.rdev();
    let (major, minor) = (
        nix::sys::stat::major(rdev) as i64,
        nix::sys::stat::minor(rdev) as i64,
    );
    let mut dev = LinuxDevice::default();
    dev.set_path(container_path.into())
        .set_typ(typ)
        .set_major(major)
        .set_minor(minor)
        .set_file_mode(Some(md.mode() & 0o777))
        .set_uid(Some(md.uid()))
        .set_gid(Some(md.gid()));
    let mut rule = LinuxDeviceCgroup::default();
    rule.set_allow(true)
        .set_typ(Some(typ))
        .set_major(Some(major))
        .set_minor(Some(minor))
        .set_access(Some(permissions.to_string()));
    Ok(Some((dev, rule)))
}

/// The CRI devices of a container. A missing host path, a path that is
/// not a device (or directory of devices) and bad permissions are the
/// caller's mistake: InvalidArgument.
pub fn cri_devices(
    devices: &[crius_proto::Device],
) -> Result<(Vec<LinuxDevice>, Vec<LinuxDeviceCgroup>)> {
    let mut nodes = Vec::new();
    let mut rules = Vec::new();
    for d in devices {
        let perms = if d.permissions.is_empty() {
            "rwm"
        } else {
            d.permissions.as_str()
        };
        if !perms.chars().all(|c| matches!(c, 'r' | 'w' | 'm')) {
            return Err(Error::InvalidArgument(format!(
                "invalid device permissions {perms:?} for {:?}",
                d.host_path
            )));
        }
        let container_path = if d.container_path.is_empty() {
            d.host_path.as_str()
        } else {
            d.container_path.as_str()
        };
        if !container_path.starts_with('/') || container_path.split('/').any(|c| c == "..") {
            return Err(Error::InvalidArgument(format!(
                "invalid device container path {container_path:?}"
            )));
        }
        let host = Path::new(&d.host_path);
        let invalid =
            |why: String| Error::InvalidArgument(format!("device {:?}: {why}", d.host_path));
        let md = std::fs::metadata(host).map_err(|e| invalid(e.to_string()))?;
        if md.is_dir() {
            // A directory of devices (e.g. /dev/snd) maps each node below it.
            for (h, _) in walk_devices(host) {
                let rel = h.strip_prefix(host).unwrap_or(&h);
                let cpath = Path::new(container_path).join(rel);
                if let Ok(Some((n, r))) = device_at(&h, &cpath.to_string_lossy(), perms) {
                    nodes.push(n);
                    rules.push(r);
                }
            }
            continue;
        }
        match device_at(host, container_path, perms).map_err(|e| invalid(e.to_string()))? {
            Some((n, r)) => {
                nodes.push(n);
                rules.push(r);
            }
            None => return Err(invalid("not a device node".into())),
        }
    }
    Ok((nodes, rules))
}

/// Device files under `dir`, recursively, not following symlinks.
fn walk_devices(dir: &Path) -> Vec<(std::path::PathBuf, std::fs::Metadata)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let Ok(md) = e.metadata() else { continue };
            let ft = md.file_type();
            if ft.is_dir() {
                stack.push(e.path());
            } else if ft.is_char_device() || ft.is_block_device() {
                out.push((e.path(), md));
            }
        }
    }
    out
}

/// Every device node of the host's /dev for a privileged container (as
/// CRI-O and containerd do), except the pty and console nodes the
/// container gets its own of.
pub fn host_devices() -> Vec<LinuxDevice> {
    let skip = |p: &Path| {
        p.starts_with("/dev/pts") || p == Path::new("/dev/console") || p == Path::new("/dev/ptmx")
    };
    walk_devices(Path::new("/dev"))
        .into_iter()
        .filter(|(p, _)| !skip(p))
        .filter_map(|(p, _)| {
            device_at(&p, &p.to_string_lossy(), "rwm")
                .ok()
                .flatten()
                .map(|(d, _)| d)
        })
        .collect()
}

/// The rule allowing every device (privileged).
pub fn allow_all() -> LinuxDeviceCgroup {
    let mut rule = LinuxDeviceCgroup::default();
    rule.set_allow(true).set_access(Some("rwm".into()));
    rule
}

/// crius' own capability bounding set (`CapBnd` of /proc/self/status);
/// all bits if it cannot be read.
pub fn own_capability_bound() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("CapBnd:"))
                .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        })
        .unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dev(host: &str, ctr: &str, perms: &str) -> crius_proto::Device {
        crius_proto::Device {
            host_path: host.into(),
            container_path: ctr.into(),
            permissions: perms.into(),
        }
    }

    #[test]
    fn maps_a_device_node_with_its_rule() {
        let (nodes, rules) = cri_devices(&[dev("/dev/null", "/dev/mynull", "rw")]).unwrap();
        assert_eq!(nodes.len(), 1);
        assert_eq!(nodes[0].path(), Path::new("/dev/mynull"));
        assert_eq!(nodes[0].typ(), LinuxDeviceType::C);
        assert_eq!((nodes[0].major(), nodes[0].minor()), (1, 3));
        assert_eq!(rules[0].access().as_deref(), Some("rw"));
        assert!(rules[0].allow());
    }

    #[test]
    fn refuses_missing_non_device_and_bad_permissions() {
        for d in [
            dev("/dev/no-such-device-crius", "/dev/x", "rw"),
            dev("/etc/hostname", "/dev/x", "rw"),
            dev("/dev/null", "/dev/x", "rwx"),
            dev("/dev/null", "dev/x", "rw"),
            dev("/dev/null", "/dev/../x", "rw"),
        ] {
            let err = cri_devices(&[d]).unwrap_err();
            assert_eq!(err.kind(), crius_proto::ErrorKind::InvalidArgument, "{err}");
        }
    }

    #[test]
    fn host_devices_include_null_and_skip_ptys() {
        let all = host_devices();
        assert!(all.iter().any(|d| d.path() == Path::new("/dev/null")));
        assert!(!all.iter().any(|d| d.path().starts_with("/dev/pts")));
        assert_ne!(own_capability_bound(), 0);
    }
}
