//! Pinned namespaces, made by a re-exec of the crius binary (`crius pinns`)
//! rather than by forking inside the async runtime: the helper unshares the
//! pod's namespaces, brings up `lo` in a new network namespace, sets the
//! hostname and sysctls inside them, bind-mounts `/proc/self/ns/<kind>`
//! onto `<dir>/<kind>/<id>` and, for a pod PID namespace, starts the infra
//! process (`crius pause`) as its PID 1.

use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::mount::{MntFlags, MsFlags};
use nix::sched::CloneFlags;
use serde::{Deserialize, Serialize};

/// The namespaces a pod may pin, as named under `/proc/self/ns`.
pub const PINNABLE: [&str; 3] = ["net", "ipc", "uts"];

/// The `crius pinns` command line; the server passes these flags to its own
/// binary and the hidden subcommand parses them back.
#[derive(Debug, Clone, Default, PartialEq, clap::Args)]
pub struct PinnsArgs {
    /// The sandbox id: the pin file name and the infra process's tag.
    #[arg(long)]
    pub id: String,
    /// Pins go to `<dir>/<kind>/<id>`.
    #[arg(long)]
    pub dir: PathBuf,
    #[arg(long)]
    pub net: bool,
    #[arg(long)]
    pub ipc: bool,
    #[arg(long)]
    pub uts: bool,
    /// Start the infra process in a new PID namespace.
    #[arg(long)]
    pub pid: bool,
    #[arg(long)]
    pub hostname: Option<String>,
    /// `key=value`, applied inside the new namespaces.
    #[arg(long = "sysctl")]
    pub sysctls: Vec<String>,
}

impl PinnsArgs {
    /// The flags after the subcommand name, parsed back by clap.
    pub fn to_args(&self) -> Vec<String> {
        let mut args = vec![
            "--id".to_string(),
            self.id.clone(),
            "--dir".into(),
            self.dir.to_string_lossy().into_owned(),
        ];
        for (set, flag) in [
            (self.net, "--net"),
            (self.ipc, "--ipc"),
            (self.uts, "--uts"),
            (self.pid, "--pid"),
        ] {
            if set {
                args.push(flag.into());
            }
        }
        if let Some(hostname) = &self.hostname {
            args.push("--hostname".into());
            args.push(hostname.clone());
        }
        for sysctl in &self.sysctls {
            args.push(format!("--sysctl={sysctl}"));
        }
        args
    }

    fn kinds(&self) -> impl Iterator<Item = &'static str> + '_ {
        PINNABLE
            .into_iter()
            .zip([self.net, self.ipc, self.uts])
            .filter_map(|(kind, set)| set.then_some(kind))
    }
}

/// What `crius pinns` prints on success.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct PinnsOutput {
    /// The infra process, as seen from the host PID namespace.
    pub infra_pid: Option<i32>,
}

#[derive(Debug, thiserror::Error)]
pub enum NsError {
    #[error("failed to run the namespace helper {exe:?}")]
    Spawn {
        exe: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("namespace helper for sandbox {id} timed out after {timeout:?}")]
    Timeout { id: String, timeout: Duration },
    #[error("namespace helper for sandbox {id} failed: {message}")]
    Helper { id: String, message: String },
    #[error("failed to unpin namespace {path:?}")]
    Unpin {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("failed to make {dir:?} a private mount")]
    Private {
        dir: PathBuf,
        #[source]
        source: nix::Error,
    },
}

/// The pin file of one namespace kind.
pub fn pin_path(dir: &Path, kind: &str, id: &str) -> PathBuf {
    dir.join(kind).join(id)
}

/// Runs `exe pinns ...` and returns what it started.
pub async fn pin(exe: &Path, args: &PinnsArgs, timeout: Duration) -> Result<PinnsOutput, NsError> {
    let mut cmd = tokio::process::Command::new(exe);
    cmd.arg("pinns")
        .args(args.to_args())
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    let output = tokio::time::timeout(timeout, cmd.output())
        .await
        .map_err(|_| NsError::Timeout {
            id: args.id.clone(),
            timeout,
        })?
        .map_err(|source| NsError::Spawn {
            exe: exe.to_owned(),
            source,
        })?;
    if !output.status.success() {
        let mut message = String::from_utf8_lossy(&output.stderr).trim().to_string();
        if message.is_empty() {
            message = format!("exited with {}", output.status);
        }
        return Err(NsError::Helper {
            id: args.id.clone(),
            message,
        });
    }
    serde_json::from_slice(&output.stdout).map_err(|e| NsError::Helper {
        id: args.id.clone(),
        message: format!("invalid output: {e}"),
    })
}

/// Unmounts and removes a pin; a pin that is already gone is fine.
pub fn unpin(path: &Path) -> Result<(), NsError> {
    match nix::mount::umount2(path, MntFlags::MNT_DETACH) {
        Ok(()) | Err(nix::Error::EINVAL) | Err(nix::Error::ENOENT) => {}
        Err(e) => {
            return Err(NsError::Unpin {
                path: path.to_owned(),
                source: e.into(),
            });
        }
    }
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(NsError::Unpin {
            path: path.to_owned(),
            source,
        }),
    }
}

/// Bind-mounting a namespace into a shared mount would propagate the pin to
/// every peer (and nsfs mounts there can pin namespaces forever), so, as
/// CRI-O does, `dir` is made a private bind mount of itself when the mount
/// holding it is shared. Returns true when `dir` is its own mount point (made
/// now or by an earlier crius), which `close` may then unmount.
pub fn ensure_private(dir: &Path) -> Result<bool, NsError> {
    let err = |source| NsError::Private {
        dir: dir.to_owned(),
        source,
    };
    let canonical = dir.canonicalize().unwrap_or_else(|_| dir.to_owned());
    let Some((mount_point, shared)) = containing_mount(&canonical) else {
        return Ok(false);
    };
    if !shared {
        return Ok(mount_point == canonical);
    }
    let mut added = false;
    if mount_point != canonical {
        nix::mount::mount(
            Some(&canonical),
            &canonical,
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )
        .map_err(err)?;
        added = true;
    }
    nix::mount::mount(
        None::<&str>,
        &canonical,
        None::<&str>,
        MsFlags::MS_PRIVATE,
        None::<&str>,
    )
    .map_err(err)?;
    Ok(added)
}

/// The mount point holding `path` and whether it is shared, from
/// `/proc/self/mountinfo` (the last matching entry is the top of the stack).
fn containing_mount(path: &Path) -> Option<(PathBuf, bool)> {
    let text = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    let mut best: Option<(PathBuf, bool)> = None;
    for line in text.lines() {
        let fields: Vec<&str> = line.split(' ').collect();
        let Some(point) = fields.get(4).map(|p| PathBuf::from(unescape(p))) else {
            continue;
        };
        let optional = fields
            .iter()
            .skip(6)
            .take_while(|f| **f != "-")
            .any(|f| f.starts_with("shared:"));
        if path.starts_with(&point)
            && best
                .as_ref()
                .is_none_or(|(b, _)| point.as_os_str().len() >= b.as_os_str().len())
        {
            best = Some((point, optional));
        }
    }
    best
}

/// Mount points under `prefix`, for tests and leak checks.
pub fn mounts_under(prefix: &Path) -> Vec<PathBuf> {
    let text = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    text.lines()
        .filter_map(|l| l.split(' ').nth(4).map(|p| PathBuf::from(unescape(p))))
        .filter(|p| p.starts_with(prefix))
        .collect()
}

/// mountinfo escapes space, tab, newline and backslash as `\ooo`.
fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\'
            && i + 3 < bytes.len()
            && bytes[i + 1..i + 4]
                .iter()
                .all(|b| (b'0'..=b'7').contains(b))
        {
            let n = (bytes[i + 1] - b'0') * 64 + (bytes[i + 2] - b'0') * 8 + (bytes[i + 3] - b'0');
            out.push(n);
            i += 4;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The body of `crius pinns`. Runs in a fresh single-threaded process, so
/// unshare affects the whole helper and nothing of the daemon.
pub fn pinns_main(args: &PinnsArgs) -> Result<PinnsOutput, String> {
    let mut flags = CloneFlags::empty();
    for (set, flag) in [
        (args.net, CloneFlags::CLONE_NEWNET),
        (args.ipc, CloneFlags::CLONE_NEWIPC),
        (args.uts, CloneFlags::CLONE_NEWUTS),
        (args.pid, CloneFlags::CLONE_NEWPID),
    ] {
        if set {
            flags |= flag;
        }
    }
    nix::sched::unshare(flags).map_err(|e| format!("unshare: {e}"))?;
    if args.net {
        // Before any CNI plugin runs: the conflist may not chain `loopback`.
        crate::loopback::up_here().map_err(|e| {
            let cause = std::error::Error::source(&e)
                .map(|c| format!(": {c}"))
                .unwrap_or_default();
            format!("{e}{cause}")
        })?;
    }
    if let Some(hostname) = &args.hostname {
        if !args.uts {
            return Err("--hostname needs --uts".into());
        }
        nix::unistd::sethostname(hostname).map_err(|e| format!("sethostname: {e}"))?;
    }
    for sysctl in &args.sysctls {
        let (key, value) = sysctl
            .split_once('=')
            .ok_or_else(|| format!("invalid sysctl {sysctl:?}"))?;
        if key.is_empty() || key.contains("..") || key.contains('/') {
            return Err(format!("invalid sysctl key {key:?}"));
        }
        let path = Path::new("/proc/sys").join(key.replace('.', "/"));
        std::fs::write(&path, value).map_err(|e| format!("sysctl {key}={value}: {e}"))?;
    }
    let mut pinned: Vec<PathBuf> = Vec::new();
    let result = (|| {
        for kind in args.kinds() {
            let path = pin_path(&args.dir, kind, &args.id);
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent).map_err(|e| format!("mkdir {parent:?}: {e}"))?;
            }
            std::fs::File::create_new(&path).map_err(|e| format!("create {path:?}: {e}"))?;
            pinned.push(path.clone());
            let source = format!("/proc/self/ns/{kind}");
            nix::mount::mount(
                Some(source.as_str()),
                &path,
                None::<&str>,
                MsFlags::MS_BIND,
                None::<&str>,
            )
            .map_err(|e| format!("bind {source} to {path:?}: {e}"))?;
        }
        let mut output = PinnsOutput::default();
        if args.pid {
            // The first child after unshare(CLONE_NEWPID) is the new
            // namespace's PID 1; it outlives this helper.
            let child = std::process::Command::new("/proc/self/exe")
                .args(["pause", "--id", &args.id, "--ns-dir"])
                .arg(&args.dir)
                .stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .map_err(|e| format!("start infra process: {e}"))?;
            output.infra_pid = i32::try_from(child.id()).ok();
        }
        Ok(output)
    })();
    if result.is_err() {
        for path in pinned {
            let _ = unpin(&path);
        }
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Wrapper {
        #[command(flatten)]
        args: PinnsArgs,
    }

    #[test]
    fn args_round_trip_through_the_command_line() {
        let args = PinnsArgs {
            id: "abc".into(),
            dir: "/run/crius/ns".into(),
            net: true,
            ipc: false,
            uts: true,
            pid: true,
            hostname: Some("pod-1".into()),
            sysctls: vec![
                "net.ipv4.ip_forward=1".into(),
                "kernel.shm_rmid_forced=1".into(),
            ],
        };
        let parsed = Wrapper::parse_from(std::iter::once("x".to_string()).chain(args.to_args()));
        assert_eq!(parsed.args, args);
    }

    #[test]
    fn mountinfo_escapes_are_decoded() {
        assert_eq!(unescape(r"/a\040b"), "/a b");
        assert_eq!(unescape(r"/plain"), "/plain");
        assert_eq!(unescape(r"/end\04"), r"/end\04");
    }

    #[test]
    fn the_root_mount_contains_everything() {
        let (point, _) = containing_mount(Path::new("/definitely/not/mounted")).unwrap();
        assert_eq!(point, PathBuf::from("/"));
    }
}
