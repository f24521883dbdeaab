//! Seccomp: the built-in default profile (equivalent to Docker's default:
//! an allowlist, EPERM for the rest, with syscalls that need a capability
//! allowed only when the container has it), Localhost profiles loaded from
//! JSON files, and Unconfined.
//!
//! Profiles are OCI `LinuxSeccomp`; runc skips syscall names its libseccomp
//! does not know, so the lists may name newer syscalls.

use std::collections::HashSet;
use std::path::Path;

use crius_proto::{ContainerConfig, security_profile::ProfileType};
use oci_spec::runtime::{Capability, LinuxSeccomp};
use serde_json::json;

use crate::error::{Error, Result};

/// What the node does for containers that do not name a profile. The CRI
/// says an unset profile is Unconfined (the kubelet sends RuntimeDefault
/// explicitly when its SeccompDefault feature is on), as containerd does;
/// RuntimeDefault is the operator's opt-in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum NodeDefault {
    RuntimeDefault,
    #[default]
    Unconfined,
}

impl std::str::FromStr for NodeDefault {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "runtime/default" | "RuntimeDefault" => Ok(NodeDefault::RuntimeDefault),
            "unconfined" | "Unconfined" => Ok(NodeDefault::Unconfined),
            other => Err(format!(
                "unknown seccomp default {other:?} (runtime/default or unconfined)"
            )),
        }
    }
}

/// The profile a container asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Requested {
    RuntimeDefault,
    Unconfined,
    Localhost(String),
}

/// The `seccomp` field wins over the deprecated `seccomp_profile_path`
/// (`runtime/default`, `docker/default`, `unconfined`, `localhost/<path>`);
/// neither given: the node default.
// The deprecated field is still sent by older kubelets and crictl.
#[allow(deprecated)]
pub fn requested(config: &ContainerConfig, node: NodeDefault) -> Result<Requested> {
    let sec = config
        .linux
        .as_ref()
        .and_then(|l| l.security_context.as_ref());
    if let Some(p) = sec.and_then(|s| s.seccomp.as_ref()) {
        return Ok(match ProfileType::try_from(p.profile_type) {
            Ok(ProfileType::RuntimeDefault) => Requested::RuntimeDefault,
            Ok(ProfileType::Unconfined) => Requested::Unconfined,
            Ok(ProfileType::Localhost) => Requested::Localhost(p.localhost_ref.clone()),
            Err(_) => {
                return Err(Error::InvalidArgument(format!(
                    "unknown seccomp profile type {}",
                    p.profile_type
                )));
            }
        });
    }
    let path = sec.map(|s| s.seccomp_profile_path.as_str()).unwrap_or("");
    Ok(match path {
        "" => match node {
            NodeDefault::RuntimeDefault => Requested::RuntimeDefault,
            NodeDefault::Unconfined => Requested::Unconfined,
        },
        "runtime/default" | "docker/default" => Requested::RuntimeDefault,
        "unconfined" => Requested::Unconfined,
        p => match p.strip_prefix("localhost/") {
            Some(rest) => Requested::Localhost(rest.to_string()),
            None => {
                return Err(Error::InvalidArgument(format!(
                    "unknown seccomp profile {p:?}"
                )));
            }
        },
    })
}

/// The profile for the spec: `None` = unconfined. `caps` is the
/// container's bounding set (the default profile opens syscalls for it).
/// Reads the file of a Localhost profile.
pub fn resolve(
    config: &ContainerConfig,
    node: NodeDefault,
    caps: &HashSet<Capability>,
) -> Result<Option<LinuxSeccomp>> {
    let privileged = config
        .linux
        .as_ref()
        .and_then(|l| l.security_context.as_ref())
        .is_some_and(|s| s.privileged);
    let req = requested(config, node)?;
    if privileged {
        return Ok(None);
    }
    match req {
        Requested::Unconfined => Ok(None),
        Requested::RuntimeDefault => Ok(Some(default_profile(std::env::consts::ARCH, caps))),
        Requested::Localhost(path) => load(Path::new(&path)).map(Some),
    }
}

/// A Localhost profile: an absolute path to an OCI / Docker seccomp JSON.
pub fn load(path: &Path) -> Result<LinuxSeccomp> {
    if !path.is_absolute() {
        return Err(Error::InvalidArgument(format!(
            "seccomp profile path {path:?} must be absolute"
        )));
    }
    let data = std::fs::read(path).map_err(|e| {
        Error::InvalidArgument(format!("cannot read seccomp profile {path:?}: {e}"))
    })?;
    serde_json::from_slice(&data)
        .map_err(|e| Error::InvalidArgument(format!("invalid seccomp profile {path:?}: {e}")))
}

/// True if the host kernel has AppArmor enabled.
pub fn apparmor_enabled() -> bool {
    std::fs::read_to_string("/sys/module/apparmor/parameters/enabled")
        .is_ok_and(|s| s.trim() == "Y")
}

/// AppArmor and SELinux requests. crius applies no AppArmor profile yet,
/// so only `unconfined` and the runtime default (nothing) are accepted;
/// a named profile is refused rather than silently not applied.
/// SELinux options are accepted and ignored (the host has SELinux off).
#[allow(deprecated)]
pub fn check_lsm(config: &ContainerConfig, apparmor_enabled: bool) -> Result<()> {
    let Some(sec) = config
        .linux
        .as_ref()
        .and_then(|l| l.security_context.as_ref())
    else {
        return Ok(());
    };
    let named = match &sec.apparmor {
        Some(p) if p.profile_type == ProfileType::Localhost as i32 => Some(p.localhost_ref.clone()),
        Some(_) => None,
        None => match sec.apparmor_profile.as_str() {
            "" | "runtime/default" | "unconfined" => None,
            other => Some(
                other
                    .strip_prefix("localhost/")
                    .unwrap_or(other)
                    .to_string(),
            ),
        },
    };
    if let Some(profile) = named {
        let why = if apparmor_enabled {
            "crius does not apply AppArmor profiles yet"
        } else {
            "AppArmor is not enabled on this host"
        };
        return Err(Error::InvalidArgument(format!(
            "cannot apply AppArmor profile {profile:?}: {why}"
        )));
    }
    if let Some(se) = &sec.selinux_options {
        tracing::debug!(
            user = %se.user,
            role = %se.role,
            r#type = %se.r#type,
            level = %se.level,
            "SELinux options ignored: SELinux is not enabled"
        );
    }
    Ok(())
}

/// Syscalls every container may use (Docker's unconditional allowlist).
const ALLOWED: &[&str] = &[
    "accept",
    "accept4",
    "access",
    "adjtimex",
    "alarm",
    "bind",
    "brk",
    "cachestat",
    "capget",
    "capset",
    "chdir",
    "chmod",
    "chown",
    "chown32",
    "clock_adjtime",
    "clock_adjtime64",
    "clock_getres",
    "clock_getres_time64",
    "clock_gettime",
    "clock_gettime64",
    "clock_nanosleep",
    "clock_nanosleep_time64",
    "close",
    "close_range",
    "connect",
    "copy_file_range",
    "creat",
    "dup",
    "dup2",
    "dup3",
    "epoll_create",
    "epoll_create1",
    "epoll_ctl",
    "epoll_ctl_old",
    "epoll_pwait",
    "epoll_pwait2",
    "epoll_wait",
    "epoll_wait_old",
    "eventfd",
    "eventfd2",
    "execve",
    "execveat",
    "exit",
    "exit_group",
    "faccessat",
    "faccessat2",
    "fadvise64",
    "fadvise64_64",
    "fallocate",
    "fanotify_mark",
    "fchdir",
    "fchmod",
    "fchmodat",
    "fchmodat2",
    "fchown",
    "fchown32",
    "fchownat",
    "fcntl",
    "fcntl64",
    "fdatasync",
    "fgetxattr",
    "flistxattr",
    "flock",
    "fork",
    "fremovexattr",
    "fsetxattr",
    "fstat",
    "fstat64",
    "fstatat64",
    "fstatfs",
    "fstatfs64",
    "fsync",
    "ftruncate",
    "ftruncate64",
    "futex",
    "futex_requeue",
    "futex_time64",
    "futex_wait",
    "futex_waitv",
    "futex_wake",
    "futimesat",
    "getcpu",
    "getcwd",
    "getdents",
    "getdents64",
    "getegid",
    "getegid32",
    "geteuid",
    "geteuid32",
    "getgid",
    "getgid32",
    "getgroups",
    "getgroups32",
    "getitimer",
    "getpeername",
    "getpgid",
    "getpgrp",
    "getpid",
    "getppid",
    "getpriority",
    "getrandom",
    "getresgid",
    "getresgid32",
    "getresuid",
    "getresuid32",
    "getrlimit",
    "get_robust_list",
    "getrusage",
    "getsid",
    "getsockname",
    "getsockopt",
    "get_thread_area",
    "gettid",
    "gettimeofday",
    "getuid",
    "getuid32",
    "getxattr",
    "inotify_add_watch",
    "inotify_init",
    "inotify_init1",
    "inotify_rm_watch",
    "io_cancel",
    "ioctl",
    "io_destroy",
    "io_getevents",
    "io_pgetevents",
    "io_pgetevents_time64",
    "ioprio_get",
    "ioprio_set",
    "io_setup",
    "io_submit",
    "ipc",
    "kill",
    "landlock_add_rule",
    "landlock_create_ruleset",
    "landlock_restrict_self",
    "lchown",
    "lchown32",
    "lgetxattr",
    "link",
    "linkat",
    "listen",
    "listxattr",
    "llistxattr",
    "_llseek",
    "lremovexattr",
    "lseek",
    "lsetxattr",
    "lstat",
    "lstat64",
    "madvise",
    "map_shadow_stack",
    "membarrier",
    "memfd_create",
    "memfd_secret",
    "mincore",
    "mkdir",
    "mkdirat",
    "mknod",
    "mknodat",
    "mlock",
    "mlock2",
    "mlockall",
    "mmap",
    "mmap2",
    "mprotect",
    "mq_getsetattr",
    "mq_notify",
    "mq_open",
    "mq_timedreceive",
    "mq_timedreceive_time64",
    "mq_timedsend",
    "mq_timedsend_time64",
    "mq_unlink",
    "mremap",
    "msgctl",
    "msgget",
    "msgrcv",
    "msgsnd",
    "msync",
    "munlock",
    "munlockall",
    "munmap",
    "name_to_handle_at",
    "nanosleep",
    "newfstatat",
    "_newselect",
    "open",
    "openat",
    "openat2",
    "pause",
    "pidfd_open",
    "pidfd_send_signal",
    "pipe",
    "pipe2",
    "pkey_alloc",
    "pkey_free",
    "pkey_mprotect",
    "poll",
    "ppoll",
    "ppoll_time64",
    "prctl",
    "pread64",
    "preadv",
    "preadv2",
    "prlimit64",
    "process_mrelease",
    "pselect6",
    "pselect6_time64",
    "pwrite64",
    "pwritev",
    "pwritev2",
    "read",
    "readahead",
    "readlink",
    "readlinkat",
    "readv",
    "recv",
    "recvfrom",
    "recvmmsg",
    "recvmmsg_time64",
    "recvmsg",
    "remap_file_pages",
    "removexattr",
    "rename",
    "renameat",
    "renameat2",
    "restart_syscall",
    "rmdir",
    "rseq",
    "rt_sigaction",
    "rt_sigpending",
    "rt_sigprocmask",
    "rt_sigqueueinfo",
    "rt_sigreturn",
    "rt_sigsuspend",
    "rt_sigtimedwait",
    "rt_sigtimedwait_time64",
    "rt_tgsigqueueinfo",
    "sched_getaffinity",
    "sched_getattr",
    "sched_getparam",
    "sched_get_priority_max",
    "sched_get_priority_min",
    "sched_getscheduler",
    "sched_rr_get_interval",
    "sched_rr_get_interval_time64",
    "sched_setaffinity",
    "sched_setattr",
    "sched_setparam",
    "sched_setscheduler",
    "sched_yield",
    "seccomp",
    "select",
    "semctl",
    "semget",
    "semop",
    "semtimedop",
    "semtimedop_time64",
    "send",
    "sendfile",
    "sendfile64",
    "sendmmsg",
    "sendmsg",
    "sendto",
    "setfsgid",
    "setfsgid32",
    "setfsuid",
    "setfsuid32",
    "setgid",
    "setgid32",
    "setgroups",
    "setgroups32",
    "setitimer",
    "setpgid",
    "setpriority",
    "setregid",
    "setregid32",
    "setresgid",
    "setresgid32",
    "setresuid",
    "setresuid32",
    "setreuid",
    "setreuid32",
    "setrlimit",
    "set_robust_list",
    "setsid",
    "setsockopt",
    "set_thread_area",
    "set_tid_address",
    "setuid",
    "setuid32",
    "setxattr",
    "shmat",
    "shmctl",
    "shmdt",
    "shmget",
    "shutdown",
    "sigaltstack",
    "signalfd",
    "signalfd4",
    "sigprocmask",
    "sigreturn",
    "socket",
    "socketcall",
    "socketpair",
    "splice",
    "stat",
    "stat64",
    "statfs",
    "statfs64",
    "statx",
    "symlink",
    "symlinkat",
    "sync",
    "sync_file_range",
    "syncfs",
    "sysinfo",
    "tee",
    "tgkill",
    "time",
    "timer_create",
    "timer_delete",
    "timer_getoverrun",
    "timer_gettime",
    "timer_gettime64",
    "timer_settime",
    "timer_settime64",
    "timerfd_create",
    "timerfd_gettime",
    "timerfd_gettime64",
    "timerfd_settime",
    "timerfd_settime64",
    "times",
    "tkill",
    "truncate",
    "truncate64",
    "ugetrlimit",
    "umask",
    "uname",
    "unlink",
    "unlinkat",
    "utime",
    "utimensat",
    "utimensat_time64",
    "utimes",
    "vfork",
    "vmsplice",
    "wait4",
    "waitid",
    "waitpid",
    "write",
    "writev",
    // Safe since kernel 4.8 (ptrace can no longer bypass seccomp).
    "ptrace",
    "process_vm_readv",
    "process_vm_writev",
];

/// Syscalls opened by a capability, as in Docker's profile.
const BY_CAPABILITY: &[(Capability, &[&str])] = &[
    (
        Capability::SysAdmin,
        &[
            "bpf",
            "clone",
            "clone3",
            "fanotify_init",
            "fsconfig",
            "fsmount",
            "fsopen",
            "fspick",
            "lookup_dcookie",
            "mount",
            "mount_setattr",
            "move_mount",
            "open_tree",
            "perf_event_open",
            "quotactl",
            "quotactl_fd",
            "setdomainname",
            "sethostname",
            "setns",
            "syslog",
            "umount",
            "umount2",
            "unshare",
        ],
    ),
    (Capability::SysBoot, &["reboot"]),
    (Capability::SysChroot, &["chroot"]),
    (
        Capability::SysModule,
        &["delete_module", "init_module", "finit_module"],
    ),
    (Capability::SysPacct, &["acct"]),
    (
        Capability::SysPtrace,
        &["kcmp", "pidfd_getfd", "process_madvise"],
    ),
    (Capability::SysRawio, &["iopl", "ioperm"]),
    (
        Capability::SysTime,
        &["settimeofday", "stime", "clock_settime", "clock_settime64"],
    ),
    (Capability::SysTtyConfig, &["vhangup"]),
    (
        Capability::SysNice,
        &[
            "get_mempolicy",
            "mbind",
            "set_mempolicy",
            "set_mempolicy_home_node",
        ],
    ),
    (Capability::Syslog, &["syslog"]),
    (Capability::Bpf, &["bpf"]),
    (Capability::Perfmon, &["perf_event_open"]),
];

/// The namespace flags of clone(2) a container without CAP_SYS_ADMIN may
/// not pass: CLONE_NEWNS|NEWCGROUP|NEWUTS|NEWIPC|NEWUSER|NEWPID|NEWNET.
const CLONE_NS_FLAGS: u64 = 0x7E02_0000;

/// The built-in default profile for `arch` (Rust's `std::env::consts::ARCH`
/// names) and a container with capabilities `caps`.
pub fn default_profile(arch: &str, caps: &HashSet<Capability>) -> LinuxSeccomp {
    let architectures: &[&str] = match arch {
        "x86_64" => &["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        "x86" => &["SCMP_ARCH_X86"],
        "aarch64" => &["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"],
        "arm" => &["SCMP_ARCH_ARM"],
        "s390x" => &["SCMP_ARCH_S390X", "SCMP_ARCH_S390"],
        "powerpc64" => &["SCMP_ARCH_PPC64LE"],
        "riscv64" => &["SCMP_ARCH_RISCV64"],
        _ => &[],
    };
    let mut allowed: Vec<&str> = ALLOWED.to_vec();
    let x86 = matches!(arch, "x86_64" | "x86");
    if x86 {
        allowed.extend(["arch_prctl", "modify_ldt"]);
    }
    if matches!(arch, "aarch64" | "arm") {
        allowed.extend([
            "arm_fadvise64_64",
            "arm_sync_file_range",
            "breakpoint",
            "cacheflush",
            "set_tls",
            "sync_file_range2",
        ]);
    }
    if arch == "s390x" {
        allowed.extend([
            "s390_pci_mmio_read",
            "s390_pci_mmio_write",
            "s390_runtime_instr",
        ]);
    }
    for (cap, names) in BY_CAPABILITY {
        if caps.contains(cap) {
            allowed.extend(names.iter().copied());
        }
    }
    allowed.sort_unstable();
    allowed.dedup();
    let mut syscalls = vec![json!({"names": allowed, "action": "SCMP_ACT_ALLOW"})];
    // personality(2): only the harmless personas.
    syscalls.push(json!({
        "names": ["personality"],
        "action": "SCMP_ACT_ALLOW",
        "args": [{"index": 0, "value": 0, "op": "SCMP_CMP_EQ"}],
    }));
    for persona in [0x8u64, 0x20000, 0x20008, 0xffff_ffff] {
        syscalls.push(json!({
            "names": ["personality"],
            "action": "SCMP_ACT_ALLOW",
            "args": [{"index": 0, "value": persona, "op": "SCMP_CMP_EQ"}],
        }));
    }
    if !caps.contains(&Capability::SysAdmin) {
        // clone without namespace flags (the flags are argument 1 on s390).
        let index = if arch == "s390x" { 1 } else { 0 };
        syscalls.push(json!({
            "names": ["clone"],
            "action": "SCMP_ACT_ALLOW",
            "args": [{"index": index, "value": CLONE_NS_FLAGS, "valueTwo": 0,
                      "op": "SCMP_CMP_MASKED_EQ"}],
        }));
        // clone3's flags live in memory seccomp cannot read: ENOSYS makes
        // libcs fall back to clone, which is filtered above.
        syscalls.push(json!({
            "names": ["clone3"],
            "action": "SCMP_ACT_ERRNO",
            "errnoRet": libc::ENOSYS,
        }));
    }
    let profile = json!({
        "defaultAction": "SCMP_ACT_ERRNO",
        "defaultErrnoRet": libc::EPERM,
        "architectures": architectures,
        "syscalls": syscalls,
    });
    serde_json::from_value(profile).expect("the built-in seccomp profile is valid")
}

#[cfg(test)]
#[allow(deprecated)]
mod tests {
    use super::*;
    use crius_proto::{LinuxContainerConfig, LinuxContainerSecurityContext, SecurityProfile};
    use oci_spec::runtime::{Arch, LinuxSeccompAction};

    fn cfg(sec: LinuxContainerSecurityContext) -> ContainerConfig {
        ContainerConfig {
            linux: Some(LinuxContainerConfig {
                resources: None,
                security_context: Some(sec),
            }),
            ..Default::default()
        }
    }

    fn allowed(p: &LinuxSeccomp) -> Vec<String> {
        p.syscalls()
            .as_ref()
            .unwrap()
            .iter()
            .filter(|s| s.action() == LinuxSeccompAction::ScmpActAllow && s.args().is_none())
            .flat_map(|s| s.names().clone())
            .collect()
    }

    #[test]
    fn default_profile_follows_arch_and_capabilities() {
        let none = HashSet::new();
        let p = default_profile("x86_64", &none);
        assert_eq!(p.default_action(), LinuxSeccompAction::ScmpActErrno);
        assert_eq!(p.default_errno_ret(), Some(1));
        assert_eq!(
            p.architectures().as_ref().unwrap(),
            &vec![Arch::ScmpArchX86_64, Arch::ScmpArchX86, Arch::ScmpArchX32]
        );
        let a = allowed(&p);
        for s in ["read", "execve", "arch_prctl", "socket"] {
            assert!(a.contains(&s.to_string()), "{s}");
        }
        for s in [
            "mount",
            "unshare",
            "setns",
            "reboot",
            "clone3",
            "kexec_load",
            "keyctl",
        ] {
            assert!(!a.contains(&s.to_string()), "{s}");
        }
        let admin: HashSet<_> = [Capability::SysAdmin, Capability::SysChroot].into();
        let a = allowed(&default_profile("x86_64", &admin));
        for s in ["mount", "unshare", "clone", "clone3", "chroot"] {
            assert!(a.contains(&s.to_string()), "{s}");
        }
        let arm = default_profile("aarch64", &none);
        assert_eq!(
            arm.architectures().as_ref().unwrap(),
            &vec![Arch::ScmpArchAarch64, Arch::ScmpArchArm]
        );
        assert!(!allowed(&arm).contains(&"arch_prctl".to_string()));
    }

    #[test]
    fn field_wins_over_deprecated_path_and_node_default_applies() {
        // Unset is Unconfined unless the node opts in to RuntimeDefault.
        assert_eq!(NodeDefault::default(), NodeDefault::Unconfined);
        let node = NodeDefault::RuntimeDefault;
        assert_eq!(
            requested(&ContainerConfig::default(), node).unwrap(),
            Requested::RuntimeDefault
        );
        assert_eq!(
            requested(&ContainerConfig::default(), NodeDefault::Unconfined).unwrap(),
            Requested::Unconfined
        );
        let c = cfg(LinuxContainerSecurityContext {
            seccomp: Some(SecurityProfile {
                profile_type: ProfileType::Localhost as i32,
                localhost_ref: "/p.json".into(),
            }),
            seccomp_profile_path: "unconfined".into(),
            ..Default::default()
        });
        assert_eq!(
            requested(&c, node).unwrap(),
            Requested::Localhost("/p.json".into())
        );
        for (path, want) in [
            ("unconfined", Requested::Unconfined),
            ("runtime/default", Requested::RuntimeDefault),
            ("docker/default", Requested::RuntimeDefault),
            ("localhost//x.json", Requested::Localhost("/x.json".into())),
        ] {
            let c = cfg(LinuxContainerSecurityContext {
                seccomp_profile_path: path.into(),
                ..Default::default()
            });
            assert_eq!(requested(&c, node).unwrap(), want, "{path}");
        }
        let c = cfg(LinuxContainerSecurityContext {
            seccomp_profile_path: "bogus".into(),
            ..Default::default()
        });
        assert!(requested(&c, node).is_err());
        let c = cfg(LinuxContainerSecurityContext {
            privileged: true,
            ..Default::default()
        });
        assert_eq!(resolve(&c, node, &HashSet::new()).unwrap(), None);
    }

    #[test]
    fn apparmor_profiles_are_refused_unless_unconfined_or_default() {
        for (p, ok) in [
            (None, true),
            (Some((ProfileType::RuntimeDefault, "")), true),
            (Some((ProfileType::Unconfined, "")), true),
            (Some((ProfileType::Localhost, "my-profile")), false),
        ] {
            let c = cfg(LinuxContainerSecurityContext {
                apparmor: p.map(|(t, r)| SecurityProfile {
                    profile_type: t as i32,
                    localhost_ref: r.into(),
                }),
                selinux_options: Some(Default::default()),
                ..Default::default()
            });
            let res = check_lsm(&c, false);
            assert_eq!(res.is_ok(), ok, "{p:?}");
            if let Err(e) = res {
                assert!(e.to_string().contains("AppArmor is not enabled"), "{e}");
                assert_eq!(e.kind(), crius_proto::ErrorKind::InvalidArgument);
            }
        }
        for (path, ok) in [
            ("", true),
            ("runtime/default", true),
            ("unconfined", true),
            ("localhost/x", false),
        ] {
            let c = cfg(LinuxContainerSecurityContext {
                apparmor_profile: path.into(),
                ..Default::default()
            });
            assert_eq!(check_lsm(&c, false).is_ok(), ok, "{path}");
        }
    }

    #[test]
    fn localhost_profiles_must_exist_and_parse() {
        let d = tempfile::tempdir().unwrap();
        let good = d.path().join("good.json");
        std::fs::write(
            &good,
            r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["mkdir","mkdirat"],"action":"SCMP_ACT_ERRNO","errnoRet":1}]}"#,
        )
        .unwrap();
        let p = load(&good).unwrap();
        assert_eq!(p.default_action(), LinuxSeccompAction::ScmpActAllow);
        let bad = d.path().join("bad.json");
        std::fs::write(&bad, "{not json").unwrap();
        for path in [bad, d.path().join("missing.json"), "rel.json".into()] {
            let e = load(&path).unwrap_err();
            assert_eq!(e.kind(), crius_proto::ErrorKind::InvalidArgument, "{e}");
        }
    }
}
