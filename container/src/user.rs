//! Resolving the container user (`name`, `uid`, `name:group`, `uid:gid`)
//! against the container's own `/etc/passwd` and `/etc/group`.
//!
//! The rootfs comes from untrusted image layers: files are looked up with
//! [`secure_join`], which resolves symlinks as if the rootfs were `/`, so a
//! hostile `/etc/passwd -> /../../host/file` cannot make crius read host files.

use std::ffi::OsStr;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Component, Path, PathBuf};

use crate::error::{Error, Result};

/// At most this many bytes of /etc/passwd or /etc/group are read.
const MAX_DB_SIZE: u64 = 4 << 20;
const MAX_SYMLINKS: usize = 255;

/// Joins `unsafe_path` onto `root`, resolving every symlink inside `root`
/// (absolute targets are relative to `root`, `..` never climbs above it).
/// The result may not exist.
pub fn secure_join(root: &Path, unsafe_path: &Path) -> std::io::Result<PathBuf> {
    // `resolved` is always relative to root, free of symlinks and `..`.
    let mut resolved = PathBuf::new();
    let mut links = 0;
    let mut queue: std::collections::VecDeque<std::ffi::OsString> = Default::default();
    for c in unsafe_path.components() {
        match c {
            Component::Normal(n) => queue.push_back(n.to_os_string()),
            Component::ParentDir => queue.push_back("..".into()),
            _ => {}
        }
    }
    while let Some(part) = queue.pop_front() {
        if part == OsStr::new("..") {
            resolved.pop();
            continue;
        }
        let candidate = resolved.join(&part);
        let full = root.join(&candidate);
        match std::fs::symlink_metadata(&full) {
            Ok(md) if md.file_type().is_symlink() => {
                links += 1;
                if links > MAX_SYMLINKS {
                    return Err(std::io::Error::other("too many levels of symbolic links"));
                }
                let target = std::fs::read_link(&full)?;
                if target.is_absolute() {
                    resolved = PathBuf::new();
                }
                let mut new_parts: Vec<std::ffi::OsString> = Vec::new();
                for c in target.components() {
                    match c {
                        Component::Normal(n) => new_parts.push(n.to_os_string()),
                        Component::ParentDir => new_parts.push("..".into()),
                        _ => {}
                    }
                }
                for p in new_parts.into_iter().rev() {
                    queue.push_front(p);
                }
            }
            _ => resolved = candidate,
        }
    }
    Ok(root.join(resolved))
}

/// Reads a small file inside `root`, without following symlinks out of it.
/// A missing file reads as empty. The file comes from an untrusted image:
/// only a regular file is read (a FIFO would block forever, a device node
/// would be opened on the host), and at most [`MAX_DB_SIZE`] bytes of it.
/// `user` names the user being resolved, for the error.
fn read_in_root(root: &Path, path: &str, user: &str) -> Result<String> {
    let host = secure_join(root, Path::new(path))
        .map_err(|e| Error::io("failed to resolve path in rootfs", root.join(path), e))?;
    // O_PATH opens nothing: no FIFO rendezvous, no device driver open.
    let handle = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_PATH | libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(&host);
    let handle = match handle {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(String::new()),
        Err(e) => return Err(Error::io("failed to open", host, e)),
    };
    let not_regular = |md: &std::fs::Metadata| {
        use std::os::unix::fs::FileTypeExt;
        let t = md.file_type();
        let kind = if t.is_fifo() {
            "a fifo"
        } else if t.is_char_device() {
            "a character device"
        } else if t.is_block_device() {
            "a block device"
        } else if t.is_socket() {
            "a socket"
        } else if t.is_dir() {
            "a directory"
        } else if t.is_symlink() {
            "a symbolic link"
        } else {
            return None;
        };
        Some(Error::User {
            user: user.to_string(),
            reason: format!("{path} in the image is {kind}, not a regular file"),
        })
    };
    let md = handle
        .metadata()
        .map_err(|e| Error::io("failed to stat", &host, e))?;
    if let Some(e) = not_regular(&md) {
        return Err(e);
    }
    // Reopen the very inode checked above, never the path again.
    let fd_path = format!("/proc/self/fd/{}", std::os::fd::AsRawFd::as_raw_fd(&handle));
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(&fd_path)
        .map_err(|e| Error::io("failed to open", &host, e))?;
    let reopened = file
        .metadata()
        .map_err(|e| Error::io("failed to stat", &host, e))?;
    {
        use std::os::unix::fs::MetadataExt;
        if (reopened.dev(), reopened.ino()) != (md.dev(), md.ino()) {
            return Err(Error::User {
                user: user.to_string(),
                reason: format!("{path} in the image changed while it was read"),
            });
        }
    }
    let mut buf = Vec::new();
    file.take(MAX_DB_SIZE)
        .read_to_end(&mut buf)
        .map_err(|e| Error::io("failed to read", &host, e))?;
    Ok(String::from_utf8_lossy(&buf).into_owned())
}

#[derive(Debug, Clone, PartialEq)]
pub struct PasswdEntry {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
}

#[derive(Debug, Clone, PartialEq)]
pub struct GroupEntry {
    pub name: String,
    pub gid: u32,
    pub members: Vec<String>,
}

pub fn parse_passwd(text: &str) -> Vec<PasswdEntry> {
    text.lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            Some(PasswdEntry {
                name: f.first()?.to_string(),
                uid: f.get(2)?.parse().ok()?,
                gid: f.get(3)?.parse().ok()?,
            })
        })
        .collect()
}

pub fn parse_group(text: &str) -> Vec<GroupEntry> {
    text.lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            Some(GroupEntry {
                name: f.first()?.to_string(),
                gid: f.get(2)?.parse().ok()?,
                members: f
                    .get(3)
                    .map(|m| {
                        m.split(',')
                            .map(str::trim)
                            .filter(|s| !s.is_empty())
                            .map(String::from)
                            .collect()
                    })
                    .unwrap_or_default(),
            })
        })
        .collect()
}

/// The user request of a container, before resolution.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct UserRequest {
    pub run_as_user: Option<i64>,
    pub run_as_username: String,
    pub run_as_group: Option<i64>,
    pub image_user: String,
    pub supplemental_groups: Vec<i64>,
    /// CRI `SupplementalGroupsPolicy::Strict`: the image's /etc/group
    /// memberships of the user are not added, only the primary group and
    /// `supplemental_groups` (Merge, the default, adds them).
    pub strict_groups: bool,
}

impl UserRequest {
    /// The user as asked for, for messages.
    fn display(&self) -> String {
        match (self.run_as_user, self.run_as_username.as_str()) {
            (Some(uid), _) => uid.to_string(),
            (None, "") if self.image_user.is_empty() => "0".into(),
            (None, "") => self.image_user.clone(),
            (None, name) => name.to_string(),
        }
    }
}

/// The resolved process identity.
#[derive(Debug, Clone, PartialEq)]
pub struct ResolvedUser {
    pub uid: u32,
    pub gid: u32,
    /// Primary gid first, then /etc/group memberships (unless the policy is
    /// Strict), then the requested supplemental groups; no duplicates.
    pub additional_gids: Vec<u32>,
    pub username: Option<String>,
}

fn id_from_i64(v: i64, what: &str) -> Result<u32> {
    u32::try_from(v).map_err(|_| Error::InvalidArgument(format!("{what} {v} is out of range")))
}

/// Resolves a user request against the rootfs `root`.
pub fn resolve_user(root: &Path, req: &UserRequest) -> Result<ResolvedUser> {
    let user = req.display();
    let passwd = parse_passwd(&read_in_root(root, "/etc/passwd", &user)?);
    let groups = parse_group(&read_in_root(root, "/etc/group", &user)?);
    resolve_with(&passwd, &groups, req)
}

/// The rules of kubelet/containerd: `run_as_user` beats `run_as_username`
/// beats the image USER; `run_as_group` overrides any group part, but only
/// with a user named in the request: a group on its own is refused, as
/// containerd refuses it and critest ("runtime should return error if
/// RunAsGroup is set without RunAsUser") expects. The kubelet always sends
/// the image's user along with a group, so it never hits this.
pub fn resolve_with(
    passwd: &[PasswdEntry],
    groups: &[GroupEntry],
    req: &UserRequest,
) -> Result<ResolvedUser> {
    if let Some(g) = req.run_as_group
        && req.run_as_user.is_none()
        && req.run_as_username.is_empty()
    {
        return Err(Error::InvalidArgument(format!(
            "run_as_group {g} is set without run_as_user or run_as_username"
        )));
    }
    let (user_part, group_part): (String, Option<String>) = if let Some(uid) = req.run_as_user {
        (id_from_i64(uid, "run_as_user")?.to_string(), None)
    } else if !req.run_as_username.is_empty() {
        (req.run_as_username.clone(), None)
    } else {
        match req.image_user.split_once(':') {
            Some((u, g)) => (u.to_string(), Some(g.to_string())),
            None => (req.image_user.clone(), None),
        }
    };
    let user_part = if user_part.is_empty() {
        "0".to_string()
    } else {
        user_part
    };
    let display = match &group_part {
        Some(g) => format!("{user_part}:{g}"),
        None => user_part.clone(),
    };

    let (uid, mut gid, username) = match user_part.parse::<u32>() {
        Ok(uid) => match passwd.iter().find(|p| p.uid == uid) {
            Some(p) => (uid, p.gid, Some(p.name.clone())),
            None => (uid, 0, None),
        },
        Err(_) => match passwd.iter().find(|p| p.name == user_part) {
            Some(p) => (p.uid, p.gid, Some(p.name.clone())),
            None => {
                return Err(Error::User {
                    user: display,
                    reason: "no such user in /etc/passwd".into(),
                });
            }
        },
    };

    if let Some(g) = &group_part {
        gid = match g.parse::<u32>() {
            Ok(gid) => gid,
            Err(_) => match groups.iter().find(|e| &e.name == g) {
                Some(e) => e.gid,
                None => {
                    return Err(Error::User {
                        user: display,
                        reason: format!("no such group {g:?} in /etc/group"),
                    });
                }
            },
        };
    }
    if let Some(g) = req.run_as_group {
        gid = id_from_i64(g, "run_as_group")?;
    }

    let mut additional = vec![gid];
    if let Some(name) = username.as_ref().filter(|_| !req.strict_groups) {
        for g in groups
            .iter()
            .filter(|g| g.members.iter().any(|m| m == name))
        {
            if !additional.contains(&g.gid) {
                additional.push(g.gid);
            }
        }
    }
    for g in &req.supplemental_groups {
        let g = id_from_i64(*g, "supplemental group")?;
        if !additional.contains(&g) {
            additional.push(g);
        }
    }
    Ok(ResolvedUser {
        uid,
        gid,
        additional_gids: additional,
        username,
    })
}

/// True if `name` is a safe single path component (no `/`, not `.`/`..`).
pub(crate) fn is_plain_component(name: &str) -> bool {
    !name.is_empty()
        && name != "."
        && name != ".."
        && !name.as_bytes().contains(&b'/')
        && !OsStr::new(name).as_bytes().contains(&0)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\n\
        daemon:x:1:1::/:/bin/false\n\
        app:x:1000:1000:App:/home/app:/bin/sh\n\
        # comment\n\
        nobody:x:65534:65534::/:/bin/false\n";
    const GROUP: &str = "root:x:0:\n\
        wheel:x:10:app,root\n\
        app:x:1000:\n\
        video:x:44:app\n\
        staff:x:50:\n";

    fn db() -> (Vec<PasswdEntry>, Vec<GroupEntry>) {
        (parse_passwd(PASSWD), parse_group(GROUP))
    }

    fn resolve(req: UserRequest) -> Result<ResolvedUser> {
        let (p, g) = db();
        resolve_with(&p, &g, &req)
    }

    #[test]
    fn default_is_root_with_root_groups() {
        let u = resolve(UserRequest::default()).unwrap();
        assert_eq!((u.uid, u.gid), (0, 0));
        assert_eq!(u.additional_gids, vec![0, 10]);
        assert_eq!(u.username.as_deref(), Some("root"));
    }

    #[test]
    fn image_user_by_name_gets_primary_and_member_groups() {
        let u = resolve(UserRequest {
            image_user: "app".into(),
            ..Default::default()
        })
        .unwrap();
        assert_eq!((u.uid, u.gid), (1000, 1000));
        assert_eq!(u.additional_gids, vec![1000, 10, 44]);
    }

    #[test]
    fn image_user_uid_gid_and_name_group() {
        let u = resolve(UserRequest {
            image_user: "1234:5678".into(),
            ..Default::default()
        })
        .unwrap();
        assert_eq!((u.uid, u.gid), (1234, 5678));
        assert_eq!(u.username, None);
        let u = resolve(UserRequest {
            image_user: "app:staff".into(),
            ..Default::default()
        })
        .unwrap();
        assert_eq!((u.uid, u.gid), (1000, 50));
    }

    #[test]
    fn unknown_uid_gets_gid_zero() {
        let u = resolve(UserRequest {
            image_user: "4242".into(),
            ..Default::default()
        })
        .unwrap();
        assert_eq!((u.uid, u.gid), (4242, 0));
    }

    #[test]
    fn run_as_user_beats_username_and_image() {
        let u = resolve(UserRequest {
            run_as_user: Some(1),
            run_as_username: "app".into(),
            image_user: "nobody".into(),
            ..Default::default()
        })
        .unwrap();
        assert_eq!((u.uid, u.gid), (1, 1));
        let u = resolve(UserRequest {
            run_as_username: "app".into(),
            image_user: "nobody".into(),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(u.uid, 1000);
    }

    #[test]
    fn run_as_group_and_supplemental_groups() {
        let u = resolve(UserRequest {
            run_as_user: Some(1000),
            run_as_group: Some(3000),
            supplemental_groups: vec![4000, 44],
            ..Default::default()
        })
        .unwrap();
        assert_eq!((u.uid, u.gid), (1000, 3000));
        assert_eq!(u.additional_gids, vec![3000, 10, 44, 4000]);
    }

    #[test]
    fn strict_policy_leaves_out_image_group_memberships() {
        let u = resolve(UserRequest {
            run_as_username: "app".into(),
            run_as_group: Some(3000),
            supplemental_groups: vec![4000, 44],
            strict_groups: true,
            ..Default::default()
        })
        .unwrap();
        assert_eq!((u.uid, u.gid), (1000, 3000));
        assert_eq!(u.additional_gids, vec![3000, 4000, 44]);
        // The user's own primary group stays when run_as_group is unset.
        let u = resolve(UserRequest {
            run_as_username: "app".into(),
            strict_groups: true,
            ..Default::default()
        })
        .unwrap();
        assert_eq!(u.additional_gids, vec![1000]);
    }

    #[test]
    fn a_group_without_a_requested_user_is_refused() {
        for image_user in ["", "app"] {
            let e = resolve(UserRequest {
                image_user: image_user.into(),
                run_as_group: Some(3000),
                ..Default::default()
            })
            .unwrap_err();
            assert!(
                matches!(&e, Error::InvalidArgument(m) if m.contains("run_as_group 3000")),
                "{e:?}"
            );
        }
    }

    #[test]
    fn unknown_names_are_errors() {
        let e = resolve(UserRequest {
            image_user: "ghost".into(),
            ..Default::default()
        })
        .unwrap_err();
        assert!(e.to_string().contains("ghost"), "{e}");
        let e = resolve(UserRequest {
            image_user: "app:ghosts".into(),
            ..Default::default()
        })
        .unwrap_err();
        assert!(e.to_string().contains("ghosts"), "{e}");
        assert!(
            resolve(UserRequest {
                run_as_user: Some(-1),
                ..Default::default()
            })
            .is_err()
        );
    }

    #[test]
    fn secure_join_keeps_symlinks_inside_root() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("rootfs");
        std::fs::create_dir_all(root.join("etc")).unwrap();
        std::fs::write(dir.path().join("secret"), "host").unwrap();
        std::os::unix::fs::symlink("/../../secret", root.join("etc/passwd")).unwrap();
        std::os::unix::fs::symlink("../../../secret", root.join("etc/group")).unwrap();
        assert_eq!(
            secure_join(&root, Path::new("/etc/passwd")).unwrap(),
            root.join("secret")
        );
        assert_eq!(
            secure_join(&root, Path::new("/etc/group")).unwrap(),
            root.join("secret")
        );
        // The escaping links resolve to missing files inside the root.
        assert_eq!(read_in_root(&root, "/etc/passwd", "u").unwrap(), "");
        std::os::unix::fs::symlink("real", root.join("etc/link")).unwrap();
        std::fs::write(root.join("etc/real"), "x:x:7:7::/:/bin/sh\n").unwrap();
        assert_eq!(
            read_in_root(&root, "/etc/link", "u").unwrap(),
            "x:x:7:7::/:/bin/sh\n"
        );
    }

    /// A rootfs whose `etc/<file>` is made by `make`, resolved as user `app`.
    fn resolve_with_etc(file: &str, make: impl FnOnce(&Path)) -> Result<ResolvedUser> {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("rootfs");
        std::fs::create_dir_all(root.join("etc")).unwrap();
        std::fs::write(root.join("etc/passwd"), PASSWD).unwrap();
        std::fs::write(root.join("etc/group"), GROUP).unwrap();
        std::fs::remove_file(root.join("etc").join(file)).unwrap();
        make(&root.join("etc").join(file));
        // On a thread: the old code blocks forever opening a FIFO.
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let req = UserRequest {
                run_as_username: "app".into(),
                ..Default::default()
            };
            let _ = tx.send(resolve_user(&root, &req));
            drop(dir);
        });
        rx.recv_timeout(std::time::Duration::from_secs(10))
            .expect("user lookup hung")
    }

    fn mkfifo(p: &Path) {
        nix::unistd::mkfifo(p, nix::sys::stat::Mode::from_bits_truncate(0o644)).unwrap();
    }

    #[test]
    fn a_fifo_as_passwd_or_group_is_refused_without_blocking() {
        for file in ["passwd", "group"] {
            let e = resolve_with_etc(file, mkfifo).unwrap_err();
            assert!(
                matches!(&e, Error::User { user, reason }
                    if user == "app" && reason == &format!("/etc/{file} in the image is a fifo, not a regular file")),
                "{e:?}"
            );
        }
    }

    #[test]
    fn a_device_node_as_passwd_is_never_opened() {
        // /dev/null's numbers: reading it would succeed (empty), so only a
        // refusal shows that crius looked at the type first. mknod needs
        // CAP_MKNOD, which the unit tests have as root only.
        assert!(
            nix::unistd::geteuid().is_root(),
            "this test creates a device node and must run as root"
        );
        let e = resolve_with_etc("passwd", |p| {
            nix::sys::stat::mknod(
                p,
                nix::sys::stat::SFlag::S_IFCHR,
                nix::sys::stat::Mode::from_bits_truncate(0o644),
                nix::sys::stat::makedev(1, 3),
            )
            .unwrap()
        })
        .unwrap_err();
        assert!(
            e.to_string()
                .contains("/etc/passwd in the image is a character device"),
            "{e}"
        );
    }

    #[test]
    fn a_directory_or_socket_as_group_is_refused() {
        let e = resolve_with_etc("group", |p| std::fs::create_dir(p).unwrap()).unwrap_err();
        assert!(e.to_string().contains("is a directory"), "{e}");
        let e = resolve_with_etc("group", |p| {
            std::os::unix::net::UnixListener::bind(p).unwrap();
        })
        .unwrap_err();
        assert!(e.to_string().contains("is a socket"), "{e}");
    }

    #[test]
    fn a_regular_passwd_still_resolves_and_is_bounded() {
        let u = resolve_with_etc("passwd", |p| std::fs::write(p, PASSWD).unwrap()).unwrap();
        assert_eq!(u.uid, 1000);
        // A huge file: only the first MAX_DB_SIZE bytes count.
        let e = resolve_with_etc("passwd", |p| {
            let f = std::fs::File::create(p).unwrap();
            f.set_len(MAX_DB_SIZE * 4).unwrap();
            use std::io::Write;
            let mut f = f;
            use std::io::Seek;
            f.seek(std::io::SeekFrom::Start(MAX_DB_SIZE * 2)).unwrap();
            f.write_all(b"\napp:x:1000:1000::/:/bin/sh\n").unwrap();
        })
        .unwrap_err();
        assert!(e.to_string().contains("no such user"), "{e}");
    }

    #[test]
    fn secure_join_symlink_loop_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink("b", dir.path().join("a")).unwrap();
        std::os::unix::fs::symlink("a", dir.path().join("b")).unwrap();
        assert!(secure_join(dir.path(), Path::new("/a")).is_err());
    }

    #[test]
    fn plain_components() {
        assert!(is_plain_component("abc"));
        assert!(!is_plain_component(".."));
        assert!(!is_plain_component("a/b"));
        assert!(!is_plain_component(""));
    }
}
