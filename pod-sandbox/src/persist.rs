//! Crash-safe files: a record is either the old or the new version on disk,
//! never a torn mix, across a machine crash too (a sandbox record names
//! what must be torn down after a reboot). The write itself is
//! [`crius_proto::fs::write_atomic`].

use std::path::Path;

use crius_proto::fs::Durability;

/// Writes `bytes` to `path` atomically, creating the parent directory.
pub async fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let path = path.to_owned();
    let bytes = bytes.to_vec();
    tokio::task::spawn_blocking(move || write_atomic_sync(&path, &bytes))
        .await
        .map_err(std::io::Error::other)?
}

pub fn write_atomic_sync(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path
        .parent()
        .ok_or_else(|| std::io::Error::other("path has no parent directory"))?;
    std::fs::create_dir_all(dir)?;
    crius_proto::fs::write_atomic(path, bytes, Durability::Durable)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn replaces_content_and_leaves_no_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/record.json");
        write_atomic(&path, b"one").await.unwrap();
        write_atomic(&path, b"two").await.unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"two");
        let names: Vec<_> = std::fs::read_dir(path.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["record.json"]);
    }
}
