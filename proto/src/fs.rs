//! Atomic file replacement, shared by every crius store (sandbox, container
//! and image records, CNI cache, blobs): readers and a restarted crius see
//! the old or the new content, never a torn mix.
//!
//! The write goes to a temp file next to the target (unique per writer, so
//! concurrent writers of one path never share it) and is renamed over the
//! target. [`Durability`] says whether it must also survive a machine crash.

use std::io::Write as _;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

/// What a write has to survive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// A machine crash or power loss too: temp file, fsync, rename, fsync
    /// of the directory. For every record (images, sandboxes, containers).
    Durable,
    /// A crash of crius only (the page cache keeps the file): temp file,
    /// rename. For files that are dead after a reboot anyway and are
    /// replaced by a durable write soon after, such as a container's bundle
    /// config and its incomplete-create marker.
    Volatile,
}

/// Replaces `path` with `data` atomically; the parent directory must exist.
pub fn write_atomic(path: &Path, data: &[u8], durability: Durability) -> std::io::Result<()> {
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let tmp = dir.join(format!(
        ".{}.{}-{}.tmp",
        path.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    ));
    let write = || -> std::io::Result<()> {
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(data)?;
        if durability == Durability::Durable {
            file.sync_all()?;
        }
        drop(file);
        std::fs::rename(&tmp, path)?;
        if durability == Durability::Durable {
            std::fs::File::open(dir)?.sync_all()?;
        }
        Ok(())
    };
    write().inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_content_and_leaves_no_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("record.json");
        for d in [Durability::Durable, Durability::Volatile] {
            write_atomic(&path, b"one", d).unwrap();
            write_atomic(&path, b"two", d).unwrap();
            assert_eq!(std::fs::read(&path).unwrap(), b"two");
        }
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["record.json"]);
    }

    #[test]
    fn a_failed_write_leaves_the_old_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r");
        write_atomic(&path, b"old", Durability::Volatile).unwrap();
        // A directory cannot be renamed over by a file.
        let target = dir.path().join("d");
        std::fs::create_dir(&target).unwrap();
        assert!(write_atomic(&target, b"x", Durability::Volatile).is_err());
        assert_eq!(std::fs::read(&path).unwrap(), b"old");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 2);
    }
}
