//! The container rootfs: an overlay of the image layers (read-only lower
//! dirs) and a per-container upper/work dir.
//!
//! The overlay is mounted `volatile` (Linux 5.10+): without it, unmounting
//! an overlay runs `sync_filesystem` on the whole upper filesystem, so every
//! RemoveContainer waited for all dirty data on the node's disk (measured:
//! 2-400 ms per unmount while builds ran). A container's writable layer
//! never outlives a machine crash in any useful way (the container is dead,
//! the kubelet creates a new one with a new layer, and crius never remounts
//! an old one), so the sync buys nothing. podman does the same for `--rm`
//! containers. Kernels without the option get a plain mount.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};

use nix::mount::{MntFlags, MsFlags};

use crate::error::{Error, Result};

/// The kernel copies at most one page of mount data.
const MAX_MOUNT_DATA: usize = 4095;

/// Set once the kernel refused `volatile`, so later mounts skip the try.
static NO_VOLATILE: AtomicBool = AtomicBool::new(false);
const WITH_VOLATILE: &str = " (with volatile)";

/// Paths of one container's overlay, all under its persistent dir.
#[derive(Debug, Clone)]
pub struct OverlayPaths {
    pub upper: PathBuf,
    pub work: PathBuf,
    pub merged: PathBuf,
    /// An empty lower dir for images without layers.
    pub empty: PathBuf,
}

impl OverlayPaths {
    pub fn new(container_dir: &Path) -> Self {
        OverlayPaths {
            upper: container_dir.join("upper"),
            work: container_dir.join("work"),
            merged: container_dir.join("rootfs"),
            empty: container_dir.join("empty"),
        }
    }
}

fn check_option_path(id: &str, target: &Path, p: &Path) -> Result<String> {
    let s = p.to_str().ok_or_else(|| Error::Mount {
        id: id.into(),
        target: target.into(),
        reason: format!("layer path {p:?} is not utf-8"),
    })?;
    if s.contains([',', ':', '\\']) || s.is_empty() {
        return Err(Error::Mount {
            id: id.into(),
            target: target.into(),
            reason: format!("layer path {p:?} contains a character overlayfs options cannot carry"),
        });
    }
    Ok(s.to_string())
}

/// The overlay option string; lower dirs top-most first as overlayfs wants
/// (`layers` is lowest first). With `base`, lower dirs are given relative to
/// it (the caller mounts with `base` as working directory).
pub fn overlay_options(
    id: &str,
    layers: &[PathBuf],
    paths: &OverlayPaths,
    base: Option<&Path>,
    volatile: bool,
) -> Result<String> {
    let mut lowers = Vec::with_capacity(layers.len());
    for l in layers.iter().rev() {
        let p = match base {
            Some(b) => l.strip_prefix(b).unwrap_or(l).to_path_buf(),
            None => l.clone(),
        };
        lowers.push(check_option_path(id, &paths.merged, &p)?);
    }
    let upper = check_option_path(id, &paths.merged, &paths.upper)?;
    let work = check_option_path(id, &paths.merged, &paths.work)?;
    Ok(format!(
        "lowerdir={},upperdir={upper},workdir={work}{}",
        lowers.join(":"),
        if volatile { ",volatile" } else { "" }
    ))
}

/// The deepest directory all layers live in, if any.
fn common_parent(layers: &[PathBuf]) -> Option<PathBuf> {
    let mut common = layers.first()?.parent()?.to_path_buf();
    for l in layers {
        while !l.starts_with(&common) {
            common = common.parent()?.to_path_buf();
        }
    }
    if common == Path::new("/") {
        None
    } else {
        Some(common)
    }
}

fn mkdir(p: &Path) -> Result<()> {
    std::fs::create_dir_all(p).map_err(|e| Error::io("failed to create directory", p, e))
}

/// Mounts the overlay at `paths.merged`, creating the dirs it needs.
/// Blocking (a syscall, or `mount(8)` for very long layer lists).
pub fn mount_overlay(id: &str, layers: &[PathBuf], paths: &OverlayPaths) -> Result<()> {
    for d in [&paths.upper, &paths.work, &paths.merged] {
        mkdir(d)?;
    }
    let layers: Vec<PathBuf> = if layers.is_empty() {
        mkdir(&paths.empty)?;
        vec![paths.empty.clone()]
    } else {
        layers.to_vec()
    };
    for l in &layers {
        if !l.is_absolute() || !l.is_dir() {
            return Err(Error::Mount {
                id: id.into(),
                target: paths.merged.clone(),
                reason: format!("layer {l:?} is not an existing absolute directory"),
            });
        }
    }
    if NO_VOLATILE.load(Ordering::Relaxed) {
        return mount_with(id, &layers, paths, false);
    }
    match mount_with(id, &layers, paths, true) {
        Err(Error::Mount { reason, .. }) if reason.ends_with(WITH_VOLATILE) => {
            let plain = mount_with(id, &layers, paths, false);
            if plain.is_ok() {
                // Only a kernel without the option gets here for good.
                tracing::info!(%reason, "overlay refused volatile, mounting without it");
                NO_VOLATILE.store(true, Ordering::Relaxed);
            }
            plain
        }
        other => other,
    }
}

/// One mount attempt. A refusal that may be the kernel not knowing
/// `volatile` (EINVAL, or any mount(8) failure) ends in [`WITH_VOLATILE`].
fn mount_with(id: &str, layers: &[PathBuf], paths: &OverlayPaths, volatile: bool) -> Result<()> {
    let refused = |reason: String| Error::Mount {
        id: id.into(),
        target: paths.merged.clone(),
        reason: if volatile {
            format!("{reason}{WITH_VOLATILE}")
        } else {
            reason
        },
    };
    let options = overlay_options(id, layers, paths, None, volatile)?;
    if options.len() <= MAX_MOUNT_DATA {
        return nix::mount::mount(
            Some("overlay"),
            &paths.merged,
            Some("overlay"),
            MsFlags::empty(),
            Some(options.as_str()),
        )
        .map_err(|e| match e {
            nix::Error::EINVAL => refused(e.to_string()),
            e => Error::Mount {
                id: id.into(),
                target: paths.merged.clone(),
                reason: e.to_string(),
            },
        });
    }
    // Too long for one page: give lower dirs relative to their common parent
    // and let mount(8), running with that parent as its working directory,
    // make the call (containerd does the same with a chdir'd child; crius
    // cannot chdir itself, the cwd is process-wide).
    let base = common_parent(layers).ok_or_else(|| Error::Mount {
        id: id.into(),
        target: paths.merged.clone(),
        reason: format!(
            "overlay options are {} bytes (max {MAX_MOUNT_DATA}) and the layers share no parent dir",
            options.len()
        ),
    })?;
    let options = overlay_options(id, layers, paths, Some(&base), volatile)?;
    if options.len() > MAX_MOUNT_DATA {
        return Err(Error::Mount {
            id: id.into(),
            target: paths.merged.clone(),
            reason: format!(
                "overlay options are {} bytes even with relative lower dirs (max {MAX_MOUNT_DATA})",
                options.len()
            ),
        });
    }
    let out = Command::new("mount")
        .args(["-t", "overlay", "overlay", "-o", &options])
        .arg(&paths.merged)
        .current_dir(&base)
        .output()
        .map_err(|e| Error::Spawn {
            id: id.into(),
            program: "mount".into(),
            source: e,
        })?;
    if !out.status.success() {
        return Err(refused(
            String::from_utf8_lossy(&out.stderr).trim().to_string(),
        ));
    }
    Ok(())
}

/// True if something is mounted exactly at `target`.
pub fn is_mounted(target: &Path) -> bool {
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return false;
    };
    let want = target.to_string_lossy();
    info.lines().any(|l| {
        l.split(' ')
            .nth(4)
            .map(|p| unescape_mount_path(p) == want)
            .unwrap_or(false)
    })
}

fn unescape_mount_path(p: &str) -> String {
    // mountinfo escapes space, tab, newline and backslash as \ooo
    let b = p.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && let Ok(v) = u8::from_str_radix(&p[i + 1..i + 4], 8)
        {
            out.push(v);
            i += 4;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Unmounts `target` (all stacked mounts); a target that is not mounted or
/// does not exist is fine, so this is safe to repeat.
pub fn unmount(target: &Path) -> Result<()> {
    for _ in 0..16 {
        if !is_mounted(target) {
            return Ok(());
        }
        match nix::mount::umount2(target, MntFlags::empty()) {
            Ok(()) => continue,
            Err(nix::Error::EINVAL) | Err(nix::Error::ENOENT) => return Ok(()),
            Err(nix::Error::EBUSY) => {
                // A process still holds it; detach so the dirs can go.
                nix::mount::umount2(target, MntFlags::MNT_DETACH).map_err(|e| Error::Unmount {
                    target: target.into(),
                    source: e,
                })?;
            }
            Err(e) => {
                return Err(Error::Unmount {
                    target: target.into(),
                    source: e,
                });
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_are_top_first() {
        let paths = OverlayPaths::new(Path::new("/r/c/1"));
        let o = overlay_options("1", &["/l/a".into(), "/l/b".into()], &paths, None, false).unwrap();
        assert_eq!(
            o,
            "lowerdir=/l/b:/l/a,upperdir=/r/c/1/upper,workdir=/r/c/1/work"
        );
        let o = overlay_options(
            "1",
            &["/l/a".into(), "/l/b".into()],
            &paths,
            Some(Path::new("/l")),
            true,
        )
        .unwrap();
        assert!(o.ends_with(",workdir=/r/c/1/work,volatile"), "{o}");
        assert!(o.starts_with("lowerdir=b:a,"), "{o}");
    }

    #[test]
    fn bad_layer_paths_are_rejected() {
        let paths = OverlayPaths::new(Path::new("/r/c/1"));
        assert!(overlay_options("1", &["/l/a:b".into()], &paths, None, true).is_err());
        assert!(overlay_options("1", &["/l/a,b".into()], &paths, None, true).is_err());
    }

    #[test]
    fn common_parents() {
        assert_eq!(
            common_parent(&["/s/layers/a/fs".into(), "/s/layers/b/fs".into()]),
            Some(PathBuf::from("/s/layers"))
        );
        assert_eq!(common_parent(&["/a/x".into(), "/b/y".into()]), None);
    }

    #[test]
    fn mountinfo_unescape() {
        assert_eq!(unescape_mount_path("/a\\040b"), "/a b");
        assert_eq!(unescape_mount_path("/plain"), "/plain");
    }
}
