//! Layer unpacking into a directory that overlayfs can use as a lower dir.
//!
//! Layers are hostile input. Every entry path is relative and free of `..`;
//! every ancestor of an entry is checked with `lstat` to be a real directory
//! inside the layer dir (never a symlink), files are created with
//! `O_NOFOLLOW | O_EXCL` after removing whatever was there, and hardlinks
//! must point at an entry already unpacked in this layer. The layer dir is
//! private to one unpacker, so these checks cannot race.
//!
//! OCI whiteouts are converted to overlay whiteouts: `.wh.<name>` becomes a
//! 0/0 character device `<name>`, `.wh..wh..opq` sets
//! `trusted.overlay.opaque=y` on its directory.

use std::cell::Cell;
use std::ffi::OsStr;
use std::fs::OpenOptions;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Component, Path, PathBuf};
use std::rc::Rc;

use nix::sys::stat::{Mode, SFlag, UtimensatFlags};
use nix::sys::time::TimeSpec;
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

const WHITEOUT_PREFIX: &str = ".wh.";
const OPAQUE_WHITEOUT: &str = ".wh..wh..opq";
const OVERLAY_OPAQUE_XATTR: &str = "trusted.overlay.opaque";
const PAX_XATTR_PREFIX: &str = "SCHILY.xattr.";

/// What unpacking a layer produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unpacked {
    /// `sha256:` of the uncompressed tar stream.
    pub diff_id: String,
    /// Bytes of the uncompressed tar stream.
    pub tar_size: u64,
}

/// Bounds on what one layer may make crius read, hold and write. A layer is
/// hostile input: without them a 1 MB gzip of a 1 GiB GNU long name makes
/// the tar reader buffer the whole name, and a small sparse entry claims a
/// terabyte of zeros.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LayerLimits {
    /// Bytes the tar reader may consume between two entries: the GNU long
    /// name and long link, PAX extended header and GNU sparse map that
    /// describe one entry, all of which it holds in memory.
    pub max_header_bytes: u64,
    /// Bytes of the uncompressed tar stream, and (separately) bytes of file
    /// content written, sparse holes included.
    pub max_unpacked_bytes: u64,
    /// Tar entries, extension headers included.
    pub max_entries: u64,
}

impl Default for LayerLimits {
    fn default() -> Self {
        LayerLimits {
            max_header_bytes: DEFAULT_MAX_HEADER_BYTES,
            max_unpacked_bytes: DEFAULT_MAX_UNPACKED_BYTES,
            max_entries: DEFAULT_MAX_ENTRIES,
        }
    }
}

/// A path needs at most 4 KiB (PATH_MAX); PAX headers also carry xattrs,
/// whose values Linux caps at 64 KiB each: 1 MiB holds a dozen of those.
pub const DEFAULT_MAX_HEADER_BYTES: u64 = 1024 * 1024;
/// The largest public layers (CUDA and ML framework images) unpack to
/// 10-20 GiB; 64 GiB leaves room while keeping a gzip bomb from filling
/// the node's disk.
pub const DEFAULT_MAX_UNPACKED_BYTES: u64 = 64 * 1024 * 1024 * 1024;
/// Layers with large node_modules or Python trees hold a few 100 000
/// entries.
pub const DEFAULT_MAX_ENTRIES: u64 = 1_000_000;

/// Room in the header window for the blocks around the extension data:
/// the previous entry's padding and the headers of the entry and of its
/// long name, long link and PAX extensions.
const HEADER_SLACK: u64 = 8 * 512;

/// Which bound a layer broke, with the config key that raises it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LimitExceeded {
    pub key: &'static str,
    pub reason: String,
}

/// Reads a (possibly gzip- or zstd-compressed, detected by magic bytes) tar
/// stream from `input` and unpacks it into `dest`, which must exist and be
/// empty. `digest` names the layer in errors. The input is read to its end
/// so that a digest-verifying reader sees every byte.
pub fn unpack_layer(
    input: impl Read,
    dest: &Path,
    digest: &str,
    limits: &LayerLimits,
) -> Result<Unpacked> {
    let mut buffered = BufReader::with_capacity(256 * 1024, input);
    let io_err = |source| Error::Unpack {
        digest: digest.to_owned(),
        entry: PathBuf::new(),
        source,
    };
    let magic = buffered.fill_buf().map_err(io_err)?;
    let decompressed: Box<dyn Read> = if magic.starts_with(&[0x1f, 0x8b]) {
        Box::new(flate2::bufread::MultiGzDecoder::new(buffered))
    } else if magic.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Box::new(zstd::stream::read::Decoder::with_buffer(buffered).map_err(io_err)?)
    } else {
        Box::new(buffered)
    };
    let state = Rc::new(GuardState::default());
    let guarded = LimitReader {
        inner: decompressed,
        state: state.clone(),
        max_total: limits.max_unpacked_bytes,
    };
    let mut hashing = HashingReader {
        inner: guarded,
        hasher: Sha256::new(),
        count: 0,
    };
    let mut unpacker = Unpacker {
        dest,
        digest,
        dir_times: Vec::new(),
        buf: vec![0; 256 * 1024],
        limits: *limits,
        written: 0,
    };
    // A guard's error reaches us wrapped by tar; the state says what it was.
    let limit_err = |e: Error| match state.exceeded.take() {
        Some(exceeded) => Error::LayerLimit {
            digest: digest.to_owned(),
            key: exceeded.key,
            reason: exceeded.reason,
        },
        None => e,
    };
    {
        let mut archive = tar::Archive::new(&mut hashing);
        let mut entries = archive.entries().map_err(io_err)?;
        let mut count: u64 = 0;
        loop {
            // Everything tar reads inside `next` (long names, PAX headers,
            // sparse maps) it keeps in memory: bound it. Entry data is read
            // by the unpacker below, outside this window.
            state
                .window
                .set(Some(limits.max_header_bytes.saturating_add(HEADER_SLACK)));
            let next = entries.next();
            state.window.set(None);
            let Some(entry) = next else { break };
            let mut entry = entry.map_err(io_err).map_err(limit_err)?;
            count += 1;
            if count > limits.max_entries {
                return Err(Error::LayerLimit {
                    digest: digest.to_owned(),
                    key: "image.max_layer_entries",
                    reason: format!("more than {} tar entries", limits.max_entries),
                });
            }
            unpacker.entry(&mut entry).map_err(limit_err)?;
            // What the unpacker did not read (a directory's or a skipped
            // entry's data) is drained here, outside the header window.
            std::io::copy(&mut entry, &mut std::io::sink())
                .map_err(io_err)
                .map_err(limit_err)?;
        }
    }
    // Trailing padding after the end-of-archive blocks is part of the diff id.
    std::io::copy(&mut hashing, &mut std::io::sink())
        .map_err(io_err)
        .map_err(limit_err)?;
    // Directory times last: creating children changed them.
    for (path, mtime) in unpacker.dir_times.iter().rev() {
        set_mtime(path, *mtime).map_err(|source| Error::Unpack {
            digest: digest.to_owned(),
            entry: path.clone(),
            source,
        })?;
    }
    Ok(Unpacked {
        diff_id: format!("sha256:{}", hex::encode(hashing.hasher.finalize())),
        tar_size: hashing.count,
    })
}

/// What the [`LimitReader`] saw, shared with the loop that drives tar.
#[derive(Default)]
struct GuardState {
    /// Bytes still allowed before the current window closes; `None` when no
    /// window is open.
    window: Cell<Option<u64>>,
    total: Cell<u64>,
    exceeded: Cell<Option<LimitExceeded>>,
}

/// Counts the uncompressed tar stream and fails reads past a bound, so that
/// no single header makes tar buffer more than the window allows.
struct LimitReader<R> {
    inner: R,
    state: Rc<GuardState>,
    max_total: u64,
}

impl<R: Read> Read for LimitReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let state = &self.state;
        let mut want = buf.len();
        if let Some(left) = state.window.get() {
            // Read one byte past the window: reaching it exactly is fine.
            want = want.min(usize::try_from(left.saturating_add(1)).unwrap_or(usize::MAX));
        }
        let n = self.inner.read(&mut buf[..want])?;
        let total = state.total.get() + n as u64;
        state.total.set(total);
        if total > self.max_total {
            return Err(self.exceeded(LimitExceeded {
                key: "image.max_layer_unpacked_bytes",
                reason: format!(
                    "the uncompressed tar stream is larger than {} bytes",
                    self.max_total
                ),
            }));
        }
        if let Some(left) = state.window.get() {
            match left.checked_sub(n as u64) {
                Some(left) => state.window.set(Some(left)),
                None => {
                    return Err(self.exceeded(LimitExceeded {
                        key: "image.max_layer_header_bytes",
                        reason: "the headers of one tar entry (GNU long name or long link, \
                                 PAX extended header, sparse map) are larger than the limit"
                            .to_owned(),
                    }));
                }
            }
        }
        Ok(n)
    }
}

impl<R> LimitReader<R> {
    fn exceeded(&self, what: LimitExceeded) -> std::io::Error {
        let err = std::io::Error::new(std::io::ErrorKind::InvalidData, what.reason.clone());
        self.state.exceeded.set(Some(what));
        err
    }
}

struct HashingReader<R> {
    inner: R,
    hasher: Sha256,
    count: u64,
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }
}

struct Unpacker<'a> {
    dest: &'a Path,
    digest: &'a str,
    dir_times: Vec<(PathBuf, u64)>,
    buf: Vec<u8>,
    limits: LayerLimits,
    /// File content written so far; sparse holes count, they are written.
    written: u64,
}

/// A relative path with only normal components, or why not.
fn clean(path: &Path) -> std::result::Result<PathBuf, &'static str> {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::Normal(c) => out.push(c),
            Component::CurDir => {}
            Component::ParentDir => return Err("contains '..'"),
            Component::RootDir | Component::Prefix(_) => return Err("is an absolute path"),
        }
    }
    Ok(out)
}

impl Unpacker<'_> {
    fn unsafe_entry(&self, entry: &Path, reason: &'static str) -> Error {
        Error::UnsafeLayer {
            digest: self.digest.to_owned(),
            entry: entry.to_owned(),
            reason,
        }
    }

    fn io(&self, entry: &Path) -> impl Fn(std::io::Error) -> Error + '_ {
        let entry = entry.to_owned();
        move |source| Error::Unpack {
            digest: self.digest.to_owned(),
            entry: entry.clone(),
            source,
        }
    }

    fn entry<R: Read>(&mut self, entry: &mut tar::Entry<'_, R>) -> Result<()> {
        let raw = entry
            .path()
            .map_err(self.io(Path::new("<undecodable path>")))?
            .into_owned();
        let rel = clean(&raw).map_err(|reason| self.unsafe_entry(&raw, reason))?;
        let kind = entry.header().entry_type();
        if matches!(
            kind,
            tar::EntryType::XGlobalHeader
                | tar::EntryType::XHeader
                | tar::EntryType::GNULongName
                | tar::EntryType::GNULongLink
        ) {
            // Tar hands these over when it does not apply them (global
            // headers, or extensions in a pre-POSIX header); they are
            // skipped, but still only headers.
            if entry.size() > self.limits.max_header_bytes {
                return Err(Error::LayerLimit {
                    digest: self.digest.to_owned(),
                    key: "image.max_layer_header_bytes",
                    reason: format!(
                        "extension header {raw:?} of {} bytes is larger than {} bytes",
                        entry.size(),
                        self.limits.max_header_bytes
                    ),
                });
            }
            return Ok(());
        }
        let Some(name) = rel.file_name().map(OsStr::to_owned) else {
            // "./" itself: the layer dir's own metadata is not part of a lower dir.
            return Ok(());
        };
        let parent_rel = rel.parent().unwrap_or(Path::new("")).to_owned();
        let parent = self.ensure_dir(&parent_rel, &raw)?;
        let name_bytes = name.as_bytes();

        if name_bytes == OPAQUE_WHITEOUT.as_bytes() {
            xattr::set(&parent, OVERLAY_OPAQUE_XATTR, b"y").map_err(self.io(&raw))?;
            return Ok(());
        }
        if let Some(hidden) = name_bytes.strip_prefix(WHITEOUT_PREFIX.as_bytes()) {
            if hidden.starts_with(WHITEOUT_PREFIX.as_bytes()) {
                // Other aufs metadata (.wh..wh.plnk, ...) has no overlay meaning.
                return Ok(());
            }
            if hidden.is_empty() || hidden == b"." || hidden == b".." {
                return Err(self.unsafe_entry(&raw, "is a whiteout of an invalid name"));
            }
            let target = parent.join(OsStr::from_bytes(hidden));
            self.remove_existing(&target, &raw)?;
            nix::sys::stat::mknod(&target, SFlag::S_IFCHR, Mode::empty(), 0)
                .map_err(|e| self.io(&raw)(e.into()))?;
            return Ok(());
        }

        let target = parent.join(&name);
        let header = entry.header().clone();
        let mode = header.mode().map_err(self.io(&raw))? & 0o7777;
        let uid = header.uid().map_err(self.io(&raw))?;
        let gid = header.gid().map_err(self.io(&raw))?;
        let mtime = header.mtime().unwrap_or(0);
        let xattrs = pax_xattrs(entry).map_err(self.io(&raw))?;

        if kind == tar::EntryType::Directory {
            match std::fs::symlink_metadata(&target) {
                Ok(m) if m.is_dir() => {}
                Ok(_) => {
                    self.remove_existing(&target, &raw)?;
                    std::fs::create_dir(&target).map_err(self.io(&raw))?;
                }
                Err(_) => std::fs::create_dir(&target).map_err(self.io(&raw))?,
            }
            self.finish(&target, &raw, uid, gid, Some(mode), &xattrs, None)?;
            self.dir_times.push((target, mtime));
            return Ok(());
        }
        self.remove_existing(&target, &raw)?;
        match kind {
            tar::EntryType::Regular | tar::EntryType::Continuous | tar::EntryType::GNUSparse => {
                // Known before a byte is written: a sparse entry's size is
                // its real size, holes included.
                let size = entry.size();
                if self.written.saturating_add(size) > self.limits.max_unpacked_bytes {
                    return Err(Error::LayerLimit {
                        digest: self.digest.to_owned(),
                        key: "image.max_layer_unpacked_bytes",
                        reason: format!(
                            "entry {raw:?} of {size} bytes would take the files in the layer past {} bytes",
                            self.limits.max_unpacked_bytes
                        ),
                    });
                }
                self.written += size;
                let mut file = OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .custom_flags(libc::O_NOFOLLOW)
                    .open(&target)
                    .map_err(self.io(&raw))?;
                loop {
                    let n = entry.read(&mut self.buf).map_err(self.io(&raw))?;
                    if n == 0 {
                        break;
                    }
                    file.write_all(&self.buf[..n]).map_err(self.io(&raw))?;
                }
                drop(file);
                self.finish(&target, &raw, uid, gid, Some(mode), &xattrs, Some(mtime))
            }
            tar::EntryType::Symlink => {
                let link = entry
                    .link_name()
                    .map_err(self.io(&raw))?
                    .ok_or_else(|| self.unsafe_entry(&raw, "is a symlink without a target"))?;
                // The target is only ever resolved inside the container's
                // root, so absolute and `..` targets are fine here.
                std::os::unix::fs::symlink(&*link, &target).map_err(self.io(&raw))?;
                self.finish(&target, &raw, uid, gid, None, &xattrs, Some(mtime))
            }
            tar::EntryType::Link => {
                let link = entry
                    .link_name()
                    .map_err(self.io(&raw))?
                    .ok_or_else(|| self.unsafe_entry(&raw, "is a hardlink without a target"))?
                    .into_owned();
                let link_rel = clean(&link).map_err(|_| {
                    self.unsafe_entry(&raw, "is a hardlink to a path outside the layer")
                })?;
                let source = self.existing_inside(&link_rel, &raw)?;
                match std::fs::symlink_metadata(&source) {
                    Ok(m) if !m.is_dir() => {}
                    Ok(_) => return Err(self.unsafe_entry(&raw, "is a hardlink to a directory")),
                    Err(_) => {
                        return Err(self.unsafe_entry(
                            &raw,
                            "is a hardlink to a file that is not in this layer",
                        ));
                    }
                }
                std::fs::hard_link(&source, &target).map_err(self.io(&raw))
            }
            tar::EntryType::Char | tar::EntryType::Block | tar::EntryType::Fifo => {
                let (flag, dev) = match kind {
                    tar::EntryType::Fifo => (SFlag::S_IFIFO, 0),
                    _ => {
                        let major = header.device_major().ok().flatten().unwrap_or(0);
                        let minor = header.device_minor().ok().flatten().unwrap_or(0);
                        let flag = if kind == tar::EntryType::Char {
                            SFlag::S_IFCHR
                        } else {
                            SFlag::S_IFBLK
                        };
                        (flag, nix::sys::stat::makedev(major.into(), minor.into()))
                    }
                };
                nix::sys::stat::mknod(&target, flag, Mode::from_bits_truncate(0o600), dev)
                    .map_err(|e| self.io(&raw)(e.into()))?;
                self.finish(&target, &raw, uid, gid, Some(mode), &xattrs, Some(mtime))
            }
            _ => Err(self.unsafe_entry(&raw, "has an unsupported entry type")),
        }
    }

    /// Makes sure every component of `rel` is a real directory inside the
    /// layer dir, creating missing ones; a symlink or a file on the way is
    /// an escape attempt.
    fn ensure_dir(&self, rel: &Path, entry: &Path) -> Result<PathBuf> {
        let mut path = self.dest.to_owned();
        for component in rel.components() {
            path.push(component);
            match std::fs::symlink_metadata(&path) {
                Ok(m) if m.is_dir() => {}
                Ok(m) if m.file_type().is_symlink() => {
                    return Err(self.unsafe_entry(entry, "would be written through a symlink"));
                }
                Ok(_) => {
                    return Err(self.unsafe_entry(entry, "has a parent that is not a directory"));
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    std::fs::create_dir(&path).map_err(self.io(entry))?;
                }
                Err(e) => return Err(self.io(entry)(e)),
            }
        }
        Ok(path)
    }

    /// `rel` inside the layer dir, reached without following any symlink.
    fn existing_inside(&self, rel: &Path, entry: &Path) -> Result<PathBuf> {
        let mut path = self.dest.to_owned();
        let count = rel.components().count();
        for (i, component) in rel.components().enumerate() {
            path.push(component);
            if i + 1 < count {
                match std::fs::symlink_metadata(&path) {
                    Ok(m) if m.is_dir() => {}
                    _ => {
                        return Err(self.unsafe_entry(
                            entry,
                            "is a hardlink whose target is reached through a non-directory",
                        ));
                    }
                }
            }
        }
        Ok(path)
    }

    fn remove_existing(&self, target: &Path, entry: &Path) -> Result<()> {
        match std::fs::symlink_metadata(target) {
            Ok(m) if m.is_dir() => std::fs::remove_dir_all(target).map_err(self.io(entry)),
            Ok(_) => std::fs::remove_file(target).map_err(self.io(entry)),
            Err(_) => Ok(()),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn finish(
        &self,
        target: &Path,
        entry: &Path,
        uid: u64,
        gid: u64,
        mode: Option<u32>,
        xattrs: &[(String, Vec<u8>)],
        mtime: Option<u64>,
    ) -> Result<()> {
        let io = self.io(entry);
        let uid =
            u32::try_from(uid).map_err(|_| self.unsafe_entry(entry, "has a uid above 2^32"))?;
        let gid =
            u32::try_from(gid).map_err(|_| self.unsafe_entry(entry, "has a gid above 2^32"))?;
        nix::unistd::fchownat(
            nix::fcntl::AT_FDCWD,
            target,
            Some(uid.into()),
            Some(gid.into()),
            nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
        )
        .map_err(|e| io(e.into()))?;
        for (name, value) in xattrs {
            // overlay's own attributes would let a layer redirect lookups
            // outside its directory.
            if name.starts_with("trusted.overlay.") {
                continue;
            }
            xattr::set(target, name, value).map_err(&io)?;
        }
        // After chown, which clears set-id bits.
        if let Some(mode) = mode {
            nix::sys::stat::fchmodat(
                nix::fcntl::AT_FDCWD,
                target,
                Mode::from_bits_truncate(mode),
                nix::sys::stat::FchmodatFlags::FollowSymlink,
            )
            .map_err(|e| io(e.into()))?;
        }
        if let Some(mtime) = mtime {
            set_mtime(target, mtime).map_err(io)?;
        }
        Ok(())
    }
}

fn set_mtime(path: &Path, mtime: u64) -> std::io::Result<()> {
    let t = TimeSpec::new(i64::try_from(mtime).unwrap_or(i64::MAX), 0);
    nix::sys::stat::utimensat(
        nix::fcntl::AT_FDCWD,
        path,
        &t,
        &t,
        UtimensatFlags::NoFollowSymlink,
    )
    .map_err(std::io::Error::from)
}

fn pax_xattrs<R: Read>(entry: &mut tar::Entry<'_, R>) -> std::io::Result<Vec<(String, Vec<u8>)>> {
    let mut out = Vec::new();
    if let Some(extensions) = entry.pax_extensions()? {
        for ext in extensions {
            let ext = ext?;
            if let Ok(key) = ext.key()
                && let Some(name) = key.strip_prefix(PAX_XATTR_PREFIX)
            {
                out.push((name.to_owned(), ext.value_bytes().to_vec()));
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};

    use super::*;

    /// A raw header, so that hostile names (`..`, absolute) can be written:
    /// `tar::Builder` refuses them.
    fn header(path: &str, kind: tar::EntryType, size: u64, link: Option<&str>) -> tar::Header {
        let mut h = tar::Header::new_ustar();
        h.as_old_mut().name[..path.len()].copy_from_slice(path.as_bytes());
        if let Some(link) = link {
            h.as_old_mut().linkname[..link.len()].copy_from_slice(link.as_bytes());
        }
        h.set_entry_type(kind);
        h.set_size(size);
        h.set_mode(if kind == tar::EntryType::Directory {
            0o755
        } else {
            0o644
        });
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(1_000_000);
        h.set_cksum();
        h
    }

    struct Tar(tar::Builder<Vec<u8>>);

    impl Tar {
        fn new() -> Tar {
            Tar(tar::Builder::new(Vec::new()))
        }
        fn dir(mut self, path: &str) -> Tar {
            let h = header(path, tar::EntryType::Directory, 0, None);
            self.0.append(&h, &[][..]).unwrap();
            self
        }
        fn file(mut self, path: &str, data: &[u8]) -> Tar {
            let h = header(path, tar::EntryType::Regular, data.len() as u64, None);
            self.0.append(&h, data).unwrap();
            self
        }
        fn link(mut self, kind: tar::EntryType, path: &str, target: &str) -> Tar {
            let h = header(path, kind, 0, Some(target));
            self.0.append(&h, &[][..]).unwrap();
            self
        }
        fn raw(mut self, mut h: tar::Header) -> Tar {
            h.set_cksum();
            self.0.append(&h, &[][..]).unwrap();
            self
        }
        fn bytes(self) -> Vec<u8> {
            self.0.into_inner().unwrap()
        }
    }

    fn sha(data: &[u8]) -> String {
        format!("sha256:{}", hex::encode(Sha256::digest(data)))
    }

    #[test]
    fn unpacks_every_entry_kind_with_metadata() {
        let mut b = Tar::new()
            .dir("etc/")
            .file("etc/hosts", b"127.0.0.1 localhost\n");
        let mut h = header("bin/tool", tar::EntryType::Regular, 2, None);
        h.set_mode(0o4755);
        h.set_uid(1000);
        h.set_gid(2000);
        h.set_mtime(1_234_567);
        h.set_cksum();
        b.0.append_pax_extensions([("SCHILY.xattr.user.test", &b"v"[..])])
            .unwrap();
        b.0.append(&h, &b"#!"[..]).unwrap();
        let mut fifo = header("run/fifo", tar::EntryType::Fifo, 0, None);
        fifo.set_mode(0o600);
        let mut null = header("dev/null", tar::EntryType::Char, 0, None);
        null.set_device_major(1).unwrap();
        null.set_device_minor(3).unwrap();
        let tar = b
            .link(tar::EntryType::Symlink, "bin/sh", "/bin/busybox")
            .link(tar::EntryType::Link, "etc/hosts2", "etc/hosts")
            .raw(fifo)
            .raw(null)
            .file("./etc/hosts", b"replaced\n")
            .bytes();
        let dest = tempfile::tempdir().unwrap();
        let out = unpack_layer(&tar[..], dest.path(), "sha256:l", &LayerLimits::default()).unwrap();
        assert_eq!(out.diff_id, sha(&tar));
        assert_eq!(out.tar_size, tar.len() as u64);
        let d = dest.path();
        assert_eq!(std::fs::read(d.join("etc/hosts")).unwrap(), b"replaced\n");
        // the hardlink was made to the first etc/hosts, which was then replaced
        assert_eq!(
            std::fs::read(d.join("etc/hosts2")).unwrap(),
            b"127.0.0.1 localhost\n"
        );
        let tool = std::fs::metadata(d.join("bin/tool")).unwrap();
        assert_eq!(tool.permissions().mode() & 0o7777, 0o4755);
        assert_eq!((tool.uid(), tool.gid()), (1000, 2000));
        assert_eq!(tool.mtime(), 1_234_567);
        assert_eq!(
            xattr::get(d.join("bin/tool"), "user.test").ok().flatten(),
            Some(b"v".to_vec())
        );
        assert_eq!(
            std::fs::read_link(d.join("bin/sh")).unwrap(),
            Path::new("/bin/busybox")
        );
        assert!(
            std::fs::symlink_metadata(d.join("run/fifo"))
                .unwrap()
                .file_type()
                .is_fifo()
        );
        let null = std::fs::symlink_metadata(d.join("dev/null")).unwrap();
        assert!(null.file_type().is_char_device());
        assert_eq!(null.rdev(), nix::sys::stat::makedev(1, 3));
        assert_eq!(std::fs::metadata(d.join("etc")).unwrap().mtime(), 1_000_000);
    }

    #[test]
    fn gzip_and_zstd_layers_have_the_diff_id_of_their_tar() {
        let tar = Tar::new().dir("a/").file("a/b", &[7; 100_000]).bytes();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&tar).unwrap();
        let gz = gz.finish().unwrap();
        let zst = zstd::encode_all(&tar[..], 1).unwrap();
        for blob in [gz, zst] {
            let dest = tempfile::tempdir().unwrap();
            let out =
                unpack_layer(&blob[..], dest.path(), "sha256:l", &LayerLimits::default()).unwrap();
            assert_eq!(out.diff_id, sha(&tar));
            assert_eq!(
                std::fs::read(dest.path().join("a/b")).unwrap(),
                vec![7; 100_000]
            );
        }
    }

    #[test]
    fn whiteouts_become_overlay_whiteouts() {
        let tar = Tar::new()
            .dir("etc/")
            .file("etc/.wh.passwd", b"")
            .file("var/cache/.wh..wh..opq", b"")
            .file("var/cache/kept", b"k")
            .file("x/.wh..wh.plnk", b"")
            .bytes();
        let dest = tempfile::tempdir().unwrap();
        unpack_layer(&tar[..], dest.path(), "sha256:l", &LayerLimits::default()).unwrap();
        let d = dest.path();
        let wh = std::fs::symlink_metadata(d.join("etc/passwd")).unwrap();
        assert!(wh.file_type().is_char_device());
        assert_eq!(wh.rdev(), 0);
        assert!(!d.join("etc/.wh.passwd").exists());
        assert_eq!(
            xattr::get(d.join("var/cache"), OVERLAY_OPAQUE_XATTR).unwrap(),
            Some(b"y".to_vec())
        );
        assert!(!d.join("var/cache/.wh..wh..opq").exists());
        assert_eq!(std::fs::read(d.join("var/cache/kept")).unwrap(), b"k");
        assert!(!d.join("x/.wh..wh.plnk").exists());
    }

    #[test]
    fn layer_xattrs_cannot_forge_overlay_attributes() {
        let mut b = Tar::new();
        b.0.append_pax_extensions([("SCHILY.xattr.trusted.overlay.redirect", &b"/etc"[..])])
            .unwrap();
        let h = header("d", tar::EntryType::Directory, 0, None);
        b.0.append(&h, &[][..]).unwrap();
        let tar = b.bytes();
        let dest = tempfile::tempdir().unwrap();
        unpack_layer(&tar[..], dest.path(), "sha256:l", &LayerLimits::default()).unwrap();
        assert_eq!(
            xattr::get(dest.path().join("d"), "trusted.overlay.redirect").unwrap(),
            None
        );
    }

    #[test]
    fn hostile_layers_fail_and_nothing_escapes() {
        let cases: Vec<(&str, Vec<u8>)> = vec![
            ("dotdot", Tar::new().file("../escaped", b"x").bytes()),
            (
                "nested dotdot",
                Tar::new().file("a/../../escaped", b"x").bytes(),
            ),
            ("absolute", Tar::new().file("/escaped", b"x").bytes()),
            (
                "through absolute symlink",
                Tar::new()
                    .link(tar::EntryType::Symlink, "evil", "OUTSIDE")
                    .file("evil/escaped", b"x")
                    .bytes(),
            ),
            (
                "through relative symlink",
                Tar::new()
                    .link(tar::EntryType::Symlink, "up", "../outside")
                    .file("up/escaped", b"x")
                    .bytes(),
            ),
            (
                "symlink dir then whiteout",
                Tar::new()
                    .link(tar::EntryType::Symlink, "evil", "OUTSIDE")
                    .file("evil/.wh.escaped", b"")
                    .bytes(),
            ),
            (
                "hardlink out",
                Tar::new()
                    .link(tar::EntryType::Link, "pw", "../outside/secret")
                    .bytes(),
            ),
            (
                "hardlink absolute",
                Tar::new()
                    .link(tar::EntryType::Link, "pw", "/etc/passwd")
                    .bytes(),
            ),
            (
                "hardlink through symlink",
                Tar::new()
                    .link(tar::EntryType::Symlink, "evil", "OUTSIDE")
                    .link(tar::EntryType::Link, "pw", "evil/secret")
                    .bytes(),
            ),
        ];
        for (name, template) in cases {
            let base = tempfile::tempdir().unwrap();
            let outside = base.path().join("outside");
            std::fs::create_dir(&outside).unwrap();
            std::fs::write(outside.join("secret"), b"s").unwrap();
            let dest = base.path().join("layer");
            std::fs::create_dir(&dest).unwrap();
            // Absolute symlink targets point at the real outside dir; the
            // fixture's name field has room for the temp path.
            let tar = rewrite(&template, outside.to_str().unwrap());
            let err =
                unpack_layer(&tar[..], &dest, "sha256:bad", &LayerLimits::default()).unwrap_err();
            assert!(matches!(err, Error::UnsafeLayer { .. }), "{name}: {err}");
            let mut left: Vec<_> = std::fs::read_dir(&outside)
                .unwrap()
                .map(|e| e.unwrap().file_name())
                .collect();
            left.sort();
            assert_eq!(left, ["secret"], "{name}: something escaped");
            assert!(!base.path().join("escaped").exists(), "{name}");
            assert_eq!(std::fs::read(outside.join("secret")).unwrap(), b"s");
        }
    }

    /// A GNU header of `kind` announcing `size` bytes, as a block.
    fn gnu_block(name: &str, kind: tar::EntryType, size: u64) -> Vec<u8> {
        let mut h = tar::Header::new_gnu();
        h.as_gnu_mut().unwrap().name[..name.len()].copy_from_slice(name.as_bytes());
        h.set_entry_type(kind);
        h.set_size(size);
        h.set_mode(0o644);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(1);
        h.set_cksum();
        h.as_bytes().to_vec()
    }

    /// A tar stream made lazily: `blocks`, then `zeros` bytes of zeros, then
    /// a regular file and the end of the archive. Never held in memory.
    fn lazy_tar(blocks: Vec<u8>, zeros: u64) -> impl Read {
        let mut tail = gnu_block("after", tar::EntryType::Regular, 0);
        tail.extend_from_slice(&[0; 1024]);
        std::io::Cursor::new(blocks)
            .chain(std::io::repeat(0).take(zeros))
            .chain(std::io::Cursor::new(tail))
    }

    fn limit_key(err: &Error) -> &'static str {
        match err {
            Error::LayerLimit { key, .. } => key,
            other => panic!("not a limit error: {}", crate::error_chain(other)),
        }
    }

    #[test]
    fn huge_extension_headers_are_refused_before_they_are_buffered() {
        let gib = 1024 * 1024 * 1024;
        for kind in [
            tar::EntryType::GNULongName,
            tar::EntryType::GNULongLink,
            tar::EntryType::XHeader,
            tar::EntryType::XGlobalHeader,
        ] {
            let dest = tempfile::tempdir().unwrap();
            let input = lazy_tar(gnu_block("././@LongLink", kind, gib), gib);
            let started = std::time::Instant::now();
            let err = unpack_layer(input, dest.path(), "sha256:bomb", &LayerLimits::default())
                .unwrap_err();
            assert_eq!(limit_key(&err), "image.max_layer_header_bytes", "{kind:?}");
            assert!(err.to_string().contains("sha256:bomb"), "{err}");
            assert_eq!(err.kind(), crius_proto::ErrorKind::InvalidArgument);
            // Reading 1 GiB would take far longer than reading 1 MiB.
            assert!(started.elapsed() < std::time::Duration::from_secs(10));
        }
        // A long name of a sane size is fine.
        let dest = tempfile::tempdir().unwrap();
        let name = "d/".repeat(600) + "f";
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_size(1);
        h.set_mode(0o644);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(1);
        b.append_data(&mut h, &name, &b"x"[..]).unwrap();
        let tar = b.into_inner().unwrap();
        unpack_layer(&tar[..], dest.path(), "sha256:l", &LayerLimits::default()).unwrap();
        assert_eq!(std::fs::read(dest.path().join(&name)).unwrap(), b"x");
    }

    #[test]
    fn a_sparse_entry_claiming_a_terabyte_is_refused_before_writing() {
        let mut h = tar::Header::new_gnu();
        h.as_gnu_mut().unwrap().name[..6].copy_from_slice(b"sparse");
        h.set_entry_type(tar::EntryType::GNUSparse);
        h.set_size(512);
        h.set_mode(0o644);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(1);
        let tib: u64 = 1 << 40;
        let gnu = h.as_gnu_mut().unwrap();
        // base-256: a terabyte needs more than 11 octal digits
        gnu.realsize = [0; 12];
        gnu.realsize[0] = 0x80;
        gnu.realsize[4..].copy_from_slice(&tib.to_be_bytes());
        gnu.sparse[0].offset = [0; 12];
        gnu.sparse[0].offset[0] = 0x80;
        gnu.sparse[0].offset[4..].copy_from_slice(&(tib - 512).to_be_bytes());
        gnu.sparse[0].numbytes.copy_from_slice(b"00000001000\0");
        h.set_cksum();
        let mut blocks = h.as_bytes().to_vec();
        blocks.extend_from_slice(&[7; 512]);
        let dest = tempfile::tempdir().unwrap();
        let err = unpack_layer(
            lazy_tar(blocks, 0),
            dest.path(),
            "sha256:sparse",
            &LayerLimits::default(),
        )
        .unwrap_err();
        assert_eq!(limit_key(&err), "image.max_layer_unpacked_bytes", "{err}");
        let written = std::fs::metadata(dest.path().join("sparse")).map_or(0, |m| m.len());
        assert_eq!(written, 0);
    }

    #[test]
    fn size_and_entry_count_are_bounded() {
        let limits = LayerLimits {
            max_unpacked_bytes: 1024 * 1024,
            ..LayerLimits::default()
        };
        // one file over the limit: refused before writing
        let big = Tar::new().file("big", &vec![1; 2 * 1024 * 1024]).bytes();
        let dest = tempfile::tempdir().unwrap();
        let err = unpack_layer(&big[..], dest.path(), "sha256:big", &limits).unwrap_err();
        assert_eq!(limit_key(&err), "image.max_layer_unpacked_bytes");
        // many small ones: refused once their sum passes it
        let mut many = Tar::new();
        for i in 0..8 {
            many = many.file(&format!("f{i}"), &vec![1; 200 * 1024]);
        }
        let many = many.bytes();
        let dest = tempfile::tempdir().unwrap();
        let err = unpack_layer(&many[..], dest.path(), "sha256:many", &limits).unwrap_err();
        assert_eq!(limit_key(&err), "image.max_layer_unpacked_bytes");
        // a stream of zeros after the end of the archive counts too
        let mut padded = Tar::new().file("a", b"a").bytes();
        padded.resize(2 * 1024 * 1024, 0);
        let dest = tempfile::tempdir().unwrap();
        let err = unpack_layer(&padded[..], dest.path(), "sha256:pad", &limits).unwrap_err();
        assert_eq!(limit_key(&err), "image.max_layer_unpacked_bytes");
        let limits = LayerLimits {
            max_entries: 5,
            ..LayerLimits::default()
        };
        let mut files = Tar::new();
        for i in 0..10 {
            files = files.file(&format!("f{i}"), b"");
        }
        let files = files.bytes();
        let dest = tempfile::tempdir().unwrap();
        let err = unpack_layer(&files[..], dest.path(), "sha256:n", &limits).unwrap_err();
        assert_eq!(limit_key(&err), "image.max_layer_entries");
        assert!(err.to_string().contains("more than 5 tar entries"), "{err}");
    }

    /// Replaces the OUTSIDE placeholder in link names with a real path.
    fn rewrite(tar: &[u8], outside: &str) -> Vec<u8> {
        let mut archive = tar::Archive::new(tar);
        let mut b = tar::Builder::new(Vec::new());
        for entry in archive.entries().unwrap() {
            let mut entry = entry.unwrap();
            let mut h = entry.header().clone();
            if let Some(link) = h.link_name_bytes()
                && link.as_ref() == b"OUTSIDE"
            {
                let link = h.as_old_mut().linkname.as_mut();
                link.fill(0);
                link[..outside.len()].copy_from_slice(outside.as_bytes());
                h.set_cksum();
            }
            let mut data = Vec::new();
            entry.read_to_end(&mut data).unwrap();
            b.append(&h, &data[..]).unwrap();
        }
        b.into_inner().unwrap()
    }
}
