//! Building the OCI runtime spec (`config.json`) of a container from the CRI
//! request, the image config and the pod sandbox.
//!
//! Pure: every side effect (creating host paths, mounting the rootfs,
//! reading /etc/passwd) happens before, in the caller; the results come in
//! through [`SpecInput`]: host devices and CRI device nodes
//! ([`crate::devices`]), the seccomp filter ([`crate::seccomp`]) and crius'
//! own capability bounding set (the ceiling for privileged containers).

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use crius_proto::{ContainerConfig, MountPropagation, NamespaceMode};
use oci_spec::runtime::{
    Capability, LinuxBuilder, LinuxCapabilities, LinuxDeviceCgroupBuilder, LinuxNamespace,
    LinuxNamespaceType, LinuxResourcesBuilder, Mount, Process, Root, Spec, User,
};

use crate::error::{Error, Result};
use crate::types::{CgroupManager, ImageInfo, SandboxInfo};
use crate::user::ResolvedUser;

/// Docker's and containerd's default capability set.
pub const DEFAULT_CAPABILITIES: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];

pub const DEFAULT_MASKED_PATHS: &[&str] = &[
    "/proc/acpi",
    "/proc/asound",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];

pub const DEFAULT_READONLY_PATHS: &[&str] = &[
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

const DEFAULT_PATH: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Annotations set on every container, as CRI-O and containerd do, so OCI
/// hooks and tools can tell containers from sandboxes.
pub mod annotations {
    pub const CONTAINER_TYPE: &str = "io.kubernetes.cri.container-type";
    pub const CONTAINER_NAME: &str = "io.kubernetes.cri.container-name";
    pub const SANDBOX_ID: &str = "io.kubernetes.cri.sandbox-id";
    pub const SANDBOX_NAME: &str = "io.kubernetes.cri.sandbox-name";
    pub const SANDBOX_NAMESPACE: &str = "io.kubernetes.cri.sandbox-namespace";
    pub const SANDBOX_UID: &str = "io.kubernetes.cri.sandbox-uid";
    pub const IMAGE_NAME: &str = "io.kubernetes.cri.image-name";
    /// Set by kubelet: where the container writes its termination message.
    pub const TERMINATION_MESSAGE_PATH: &str = "io.kubernetes.container.terminationMessagePath";
}

/// How the container's PID namespace is set up, already resolved from the
/// CRI namespace mode (TARGET resolves to a path of the target container).
#[derive(Debug, Clone, PartialEq)]
pub enum PidNamespace {
    /// A new PID namespace for this container.
    Private,
    /// Join an existing PID namespace (the pod's, or a target container's).
    Join(PathBuf),
    /// The host's PID namespace.
    Host,
}

/// Everything [`build_spec`] needs, with side effects already done.
pub struct SpecInput<'a> {
    pub id: &'a str,
    pub config: &'a ContainerConfig,
    pub image: &'a ImageInfo,
    pub sandbox: &'a SandboxInfo,
    /// The mounted container rootfs (absolute).
    pub rootfs: &'a Path,
    pub user: &'a ResolvedUser,
    pub pid_namespace: PidNamespace,
    /// `(container path, host file)` of the termination log when crius
    /// provides it (no CRI mount at that path).
    pub termination_log: Option<(&'a str, &'a Path)>,
    pub default_capabilities: &'a [String],
    /// crius' own capability bounding set (bit mask).
    pub capability_bound: u64,
    pub cgroup_manager: CgroupManager,
    /// Device nodes to create (CRI devices; all host devices if privileged).
    pub devices: &'a [oci_spec::runtime::LinuxDevice],
    /// Device cgroup rules after the initial deny-all.
    pub device_rules: &'a [oci_spec::runtime::LinuxDeviceCgroup],
    /// The seccomp filter; `None` = unconfined.
    pub seccomp: Option<&'a oci_spec::runtime::LinuxSeccomp>,
    /// The node's pids limit; 0 = none.
    pub pids_limit: i64,
    /// Whether the OCI runtime can mount recursively read-only.
    pub recursive_read_only: bool,
    /// Edits of the CDI devices the container asked for.
    pub cdi: &'a crate::cdi::Edits,
    /// The node's OCI hook definitions; those matching the container are
    /// injected.
    pub hooks: &'a [crate::hooks::HookDef],
}

/// The process arguments, following Kubernetes: `command` replaces the
/// image ENTRYPOINT (and then the image CMD is ignored), `args` replaces
/// the image CMD.
pub fn process_args(config: &ContainerConfig, image: &ImageInfo) -> Result<Vec<String>> {
    let out = if !config.command.is_empty() {
        let mut v = config.command.clone();
        v.extend(config.args.iter().cloned());
        v
    } else {
        let mut v = image.config.entrypoint.clone();
        if config.args.is_empty() {
            v.extend(image.config.cmd.iter().cloned());
        } else {
            v.extend(config.args.iter().cloned());
        }
        v
    };
    if out.is_empty() {
        return Err(Error::InvalidArgument(
            "no command specified: the container config and the image have neither entrypoint nor command"
                .into(),
        ));
    }
    Ok(out)
}

/// Image env overridden (by key) by the CRI env; a default PATH if neither
/// sets one; HOSTNAME from the pod.
pub fn process_env(config: &ContainerConfig, image: &ImageInfo, hostname: &str) -> Vec<String> {
    let mut env: Vec<String> = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    let mut set = |env: &mut Vec<String>, kv: String| {
        let key = kv
            .split_once('=')
            .map(|(k, _)| k)
            .unwrap_or(&kv)
            .to_string();
        match index.get(&key) {
            Some(&i) => env[i] = kv,
            None => {
                index.insert(key, env.len());
                env.push(kv);
            }
        }
    };
    if !image.config.env.iter().any(|e| e.starts_with("PATH=")) {
        set(&mut env, DEFAULT_PATH.to_string());
    }
    if !hostname.is_empty() {
        set(&mut env, format!("HOSTNAME={hostname}"));
    }
    for e in &image.config.env {
        set(&mut env, e.clone());
    }
    for kv in &config.envs {
        if kv.key.is_empty() {
            continue;
        }
        set(&mut env, format!("{}={}", kv.key, kv.value));
    }
    env
}

/// Working dir: the CRI config, else the image, else `/`.
pub fn working_dir(config: &ContainerConfig, image: &ImageInfo) -> String {
    if !config.working_dir.is_empty() {
        config.working_dir.clone()
    } else if !image.config.working_dir.is_empty() {
        image.config.working_dir.clone()
    } else {
        "/".into()
    }
}

fn parse_capability(name: &str) -> Result<Capability> {
    let upper = name.to_ascii_uppercase();
    // strum names are without the CAP_ prefix
    let short = upper.strip_prefix("CAP_").unwrap_or(&upper);
    Capability::from_str(short)
        .map_err(|_| Error::InvalidArgument(format!("unknown capability {name:?}")))
}

/// The capability set: the configured default plus CRI add, minus CRI drop
/// (`ALL` clears the defaults); privileged (or add `ALL`) gives every
/// capability in `bound` (crius' own bounding set, as a bit mask: runc
/// cannot grant what crius lacks). `add_ambient_capabilities` are raised
/// in the ambient set too, and so in the inheritable and permitted sets
/// the kernel requires for them.
pub fn capabilities(
    config: &ContainerConfig,
    defaults: &[String],
    bound: u64,
) -> Result<LinuxCapabilities> {
    let mut set: HashSet<Capability> = HashSet::new();
    let sec = security(config);
    let privileged = sec.is_some_and(|s| s.privileged);
    let caps = sec.and_then(|s| s.capabilities.as_ref());
    let all = || {
        all_capability_names()
            .iter()
            .enumerate()
            .filter(|(bit, _)| bound & (1u64 << bit) != 0)
            .filter_map(|(_, n)| parse_capability(n).ok())
            .collect::<Vec<_>>()
    };
    let drop_all = caps
        .map(|c| {
            c.drop_capabilities
                .iter()
                .any(|d| d.eq_ignore_ascii_case("ALL"))
        })
        .unwrap_or(false);
    if privileged {
        set.extend(all());
    } else if !drop_all {
        for c in defaults {
            set.insert(parse_capability(c)?);
        }
    }
    let mut ambient: HashSet<Capability> = HashSet::new();
    if let Some(c) = caps
        && !privileged
    {
        for a in &c.add_capabilities {
            if a.eq_ignore_ascii_case("ALL") {
                set.extend(all());
            } else {
                set.insert(parse_capability(a)?);
            }
        }
        for d in &c.drop_capabilities {
            if !d.eq_ignore_ascii_case("ALL") {
                set.remove(&parse_capability(d)?);
            }
        }
    }
    if let Some(c) = caps {
        for a in &c.add_ambient_capabilities {
            let cap = parse_capability(a)?;
            set.insert(cap);
            ambient.insert(cap);
        }
    }
    let mut caps = LinuxCapabilities::default();
    caps.set_bounding(Some(set.clone()))
        .set_effective(Some(set.clone()))
        .set_permitted(Some(set))
        .set_inheritable((!ambient.is_empty()).then(|| ambient.clone()))
        .set_ambient((!ambient.is_empty()).then_some(ambient));
    Ok(caps)
}

/// Every capability, in kernel bit order (`CAP_CHOWN` = 0).
fn all_capability_names() -> &'static [&'static str] {
    &[
        "CAP_CHOWN",
        "CAP_DAC_OVERRIDE",
        "CAP_DAC_READ_SEARCH",
        "CAP_FOWNER",
        "CAP_FSETID",
        "CAP_KILL",
        "CAP_SETGID",
        "CAP_SETUID",
        "CAP_SETPCAP",
        "CAP_LINUX_IMMUTABLE",
        "CAP_NET_BIND_SERVICE",
        "CAP_NET_BROADCAST",
        "CAP_NET_ADMIN",
        "CAP_NET_RAW",
        "CAP_IPC_LOCK",
        "CAP_IPC_OWNER",
        "CAP_SYS_MODULE",
        "CAP_SYS_RAWIO",
        "CAP_SYS_CHROOT",
        "CAP_SYS_PTRACE",
        "CAP_SYS_PACCT",
        "CAP_SYS_ADMIN",
        "CAP_SYS_BOOT",
        "CAP_SYS_NICE",
        "CAP_SYS_RESOURCE",
        "CAP_SYS_TIME",
        "CAP_SYS_TTY_CONFIG",
        "CAP_MKNOD",
        "CAP_LEASE",
        "CAP_AUDIT_WRITE",
        "CAP_AUDIT_CONTROL",
        "CAP_SETFCAP",
        "CAP_MAC_OVERRIDE",
        "CAP_MAC_ADMIN",
        "CAP_SYSLOG",
        "CAP_WAKE_ALARM",
        "CAP_BLOCK_SUSPEND",
        "CAP_AUDIT_READ",
        "CAP_PERFMON",
        "CAP_BPF",
        "CAP_CHECKPOINT_RESTORE",
    ]
}

fn mount(dest: &str, typ: &str, source: impl Into<PathBuf>, options: &[&str]) -> Mount {
    let mut m = Mount::default();
    m.set_destination(PathBuf::from(dest))
        .set_typ(Some(typ.to_string()))
        .set_source(Some(source.into()))
        .set_options(Some(options.iter().map(|s| s.to_string()).collect()));
    m
}

/// Clean absolute container path, or an error naming the mount.
fn clean_container_path(p: &str) -> Result<String> {
    if !p.starts_with('/') {
        return Err(Error::InvalidArgument(format!(
            "mount container path {p:?} is not absolute"
        )));
    }
    let mut parts = Vec::new();
    for c in p.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                return Err(Error::InvalidArgument(format!(
                    "mount container path {p:?} contains \"..\""
                )));
            }
            c => parts.push(c),
        }
    }
    Ok(format!("/{}", parts.join("/")))
}

/// Checks the CRI mounts of a request and returns them with cleaned
/// container paths. Called before any side effect of create.
pub fn validate_mounts(
    config: &ContainerConfig,
    recursive_read_only: bool,
) -> Result<Vec<(String, &crius_proto::Mount)>> {
    let mut cri: Vec<(String, &crius_proto::Mount)> = Vec::new();
    for m in &config.mounts {
        // CRI: a runtime must refuse what it cannot honour rather than
        // silently mount something weaker.
        if m.image.as_ref().is_some_and(|i| !i.image.is_empty()) {
            return Err(Error::InvalidArgument(format!(
                "mount to {:?}: image volume mounts are not supported",
                m.container_path
            )));
        }
        if m.recursive_read_only {
            // As the kubelet requires: only a private, read-only mount can
            // be read-only all the way down.
            let why = if !recursive_read_only {
                Some("is not supported by this OCI runtime (runc 1.1+ on Linux 5.12+ needed)")
            } else if !m.readonly {
                Some("needs readonly to be set")
            } else if m.propagation != MountPropagation::PropagationPrivate as i32 {
                Some("needs private propagation")
            } else {
                None
            };
            if let Some(why) = why {
                return Err(Error::InvalidArgument(format!(
                    "mount to {:?}: recursive read-only {why}",
                    m.container_path
                )));
            }
        }
        if !m.uid_mappings.is_empty() || !m.gid_mappings.is_empty() {
            return Err(Error::InvalidArgument(format!(
                "mount to {:?}: id-mapped mounts are not supported",
                m.container_path
            )));
        }
        if m.host_path.is_empty() {
            return Err(Error::InvalidArgument(format!(
                "mount to {:?} has no host path",
                m.container_path
            )));
        }
        if !m.host_path.starts_with('/') {
            return Err(Error::InvalidArgument(format!(
                "mount host path {:?} is not absolute",
                m.host_path
            )));
        }
        cri.push((clean_container_path(&m.container_path)?, m));
    }
    Ok(cri)
}

/// The mounts of the container: defaults first, then the pod files, then
/// CRI mounts (sorted parents-first) which replace defaults at the same
/// destination. Returns the rootfs propagation the CRI mounts need.
pub fn mounts(input: &SpecInput<'_>) -> Result<(Vec<Mount>, Option<String>)> {
    let config = input.config;
    let readonly_rootfs = security(config).map(|s| s.readonly_rootfs).unwrap_or(false);
    // Privileged containers get /sys and the cgroup fs read-write.
    let sys_mode = if security(config).is_some_and(|s| s.privileged) {
        "rw"
    } else {
        "ro"
    };
    let mut cri = validate_mounts(config, input.recursive_read_only)?;
    let taken: HashSet<&str> = cri.iter().map(|(d, _)| d.as_str()).collect();

    let mut out = vec![
        mount("/proc", "proc", "proc", &["nosuid", "noexec", "nodev"]),
        mount(
            "/dev",
            "tmpfs",
            "tmpfs",
            &["nosuid", "strictatime", "mode=755", "size=65536k"],
        ),
        mount(
            "/dev/pts",
            "devpts",
            "devpts",
            &[
                "nosuid",
                "noexec",
                "newinstance",
                "ptmxmode=0666",
                "mode=0620",
                "gid=5",
            ],
        ),
        mount(
            "/dev/mqueue",
            "mqueue",
            "mqueue",
            &["nosuid", "noexec", "nodev"],
        ),
        mount(
            "/sys",
            "sysfs",
            "sysfs",
            &["nosuid", "noexec", "nodev", sys_mode],
        ),
        mount(
            "/sys/fs/cgroup",
            "cgroup",
            "cgroup",
            &["nosuid", "noexec", "nodev", "relatime", sys_mode],
        ),
    ];
    out.retain(|m| !taken.contains(m.destination().to_str().unwrap_or("")));

    if !taken.contains("/dev/shm") {
        match &input.sandbox.shm_path {
            Some(p) => out.push(mount(
                "/dev/shm",
                "bind",
                p,
                &["rbind", "rprivate", "nosuid", "noexec", "nodev", "rw"],
            )),
            None => out.push(mount(
                "/dev/shm",
                "tmpfs",
                "shm",
                &["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"],
            )),
        }
    }
    let pod_file_mode = if readonly_rootfs { "ro" } else { "rw" };
    for (dest, file) in [
        ("/etc/hosts", &input.sandbox.hosts_file),
        ("/etc/resolv.conf", &input.sandbox.resolv_conf_file),
        ("/etc/hostname", &input.sandbox.hostname_file),
    ] {
        if let Some(file) = file
            && !taken.contains(dest)
        {
            out.push(mount(
                dest,
                "bind",
                file,
                &["rbind", "rprivate", pod_file_mode],
            ));
        }
    }
    if let Some((dest, host)) = input.termination_log {
        let dest = clean_container_path(dest)?;
        if !taken.contains(dest.as_str()) {
            out.push(mount(&dest, "bind", host, &["rbind", "rprivate", "rw"]));
        }
    }

    // Parents before children, as containerd does, so a mount at /a/b is
    // not hidden by a later mount at /a.
    cri.sort_by_key(|(d, _)| d.split('/').filter(|s| !s.is_empty()).count());
    let mut rootfs_propagation: Option<String> = None;
    for (dest, m) in cri {
        let propagation = match MountPropagation::try_from(m.propagation) {
            Ok(MountPropagation::PropagationPrivate) => "rprivate",
            Ok(MountPropagation::PropagationHostToContainer) => {
                if rootfs_propagation.is_none() {
                    rootfs_propagation = Some("rslave".into());
                }
                "rslave"
            }
            Ok(MountPropagation::PropagationBidirectional) => {
                rootfs_propagation = Some("rshared".into());
                "rshared"
            }
            Err(_) => {
                return Err(Error::InvalidArgument(format!(
                    "mount to {dest:?} has unknown propagation {}",
                    m.propagation
                )));
            }
        };
        let mode = match (m.readonly, m.recursive_read_only) {
            (true, true) => "rro",
            (true, false) => "ro",
            (false, _) => "rw",
        };
        out.push(mount(
            &dest,
            "bind",
            &m.host_path,
            &["rbind", propagation, mode],
        ));
    }
    Ok((out, rootfs_propagation))
}

fn security(config: &ContainerConfig) -> Option<&crius_proto::LinuxContainerSecurityContext> {
    config
        .linux
        .as_ref()
        .and_then(|l| l.security_context.as_ref())
}

/// The cgroups path runc is given: `<parent>/crius-<id>` for cgroupfs,
/// `<slice>:crius:<id>` for systemd.
pub fn cgroups_path(manager: CgroupManager, parent: &str, id: &str) -> String {
    match manager {
        CgroupManager::Cgroupfs => {
            let parent = if parent.is_empty() { "/crius" } else { parent };
            format!("{}/crius-{id}", parent.trim_end_matches('/'))
        }
        CgroupManager::Systemd => {
            let parent = if parent.is_empty() {
                "system.slice"
            } else {
                parent
            };
            format!("{parent}:crius:{id}")
        }
    }
}

/// Where systemd, when it runs as init, says so (sd_booted(3)).
pub const SYSTEMD_BOOTED_MARKER: &str = "/run/systemd/system";

/// Checks that a container can be placed under the pod's cgroup `parent`
/// with `manager`, as the kubelet pairs them: the systemd driver needs
/// systemd running (`marker` present) and a slice (or nothing) as parent;
/// cgroupfs refuses a slice, which means kubelet and crius disagree on the
/// driver (CRI-O refuses it too).
pub fn check_cgroup_placement(manager: CgroupManager, parent: &str, marker: &Path) -> Result<()> {
    let is_slice = !parent.contains('/') && parent.ends_with(".slice");
    match manager {
        CgroupManager::Cgroupfs if is_slice => Err(Error::InvalidArgument(format!(
            "cgroup parent {parent:?} is a systemd slice but the cgroup manager is cgroupfs"
        ))),
        CgroupManager::Cgroupfs => Ok(()),
        CgroupManager::Systemd => {
            if !marker.is_dir() {
                return Err(Error::SystemdNotRunning {
                    marker: marker.to_path_buf(),
                });
            }
            if !parent.is_empty() && crate::stats::expand_slice(parent).is_none() {
                return Err(Error::InvalidArgument(format!(
                    "cgroup parent {parent:?} is not a systemd slice \
                     (e.g. kubepods-burstable-pod<uid>.slice) but the cgroup manager is systemd"
                )));
            }
            Ok(())
        }
    }
}

fn namespace(typ: LinuxNamespaceType, path: Option<&Path>) -> LinuxNamespace {
    let mut ns = LinuxNamespace::default();
    ns.set_typ(typ).set_path(path.map(Path::to_path_buf));
    ns
}

/// Resolves the CRI PID mode against the pod (TARGET is resolved by the
/// caller, which knows the target container).
pub fn pid_namespace(config: &ContainerConfig, sandbox: &SandboxInfo) -> Result<PidNamespace> {
    let mode = security(config)
        .and_then(|s| s.namespace_options.as_ref())
        .map(|n| n.pid)
        .unwrap_or(NamespaceMode::Container as i32);
    match NamespaceMode::try_from(mode) {
        Ok(NamespaceMode::Container) => Ok(PidNamespace::Private),
        Ok(NamespaceMode::Node) => Ok(PidNamespace::Host),
        Ok(NamespaceMode::Pod) => {
            if sandbox.host_pid {
                Ok(PidNamespace::Host)
            } else {
                match &sandbox.pidns_path {
                    Some(p) => Ok(PidNamespace::Join(p.clone())),
                    None => Err(Error::InvalidArgument(format!(
                        "pid namespace mode POD requested but pod {} has no pid namespace",
                        sandbox.id
                    ))),
                }
            }
        }
        Ok(NamespaceMode::Target) => Err(Error::InvalidArgument(
            "pid namespace mode TARGET must be resolved against the target container".into(),
        )),
        Err(_) => Err(Error::InvalidArgument(format!(
            "unknown pid namespace mode {mode}"
        ))),
    }
}

fn cri_resources(config: &ContainerConfig) -> Option<&crius_proto::LinuxContainerResources> {
    config.linux.as_ref().and_then(|l| l.resources.as_ref())
}

/// The CRI `oom_score_adj`, only when non-negative: lowering it needs
/// CAP_SYS_RESOURCE, which crius may not have, and a failed write would make
/// every create fail (issue 6 decides the policy).
pub fn oom_score_adj(config: &ContainerConfig) -> Option<i32> {
    cri_resources(config)
        .map(|r| r.oom_score_adj)
        .filter(|v| *v > 0)
        .and_then(|v| i32::try_from(v).ok())
}

/// CPU and memory limits of the CRI request.
pub fn apply_resources(
    config: &ContainerConfig,
    resources: &mut oci_spec::runtime::LinuxResources,
) {
    if let Some(r) = cri_resources(config) {
        oci_resources(r, resources);
    }
}

/// Sets the OCI CPU and memory resources for the CRI ones that are given
/// (non-zero, non-empty); the rest is left alone, which is also what
/// `runc update` does with absent fields.
pub fn oci_resources(
    r: &crius_proto::LinuxContainerResources,
    resources: &mut oci_spec::runtime::LinuxResources,
) {
    if r.memory_limit_in_bytes > 0 {
        let mut mem = oci_spec::runtime::LinuxMemory::default();
        mem.set_limit(Some(r.memory_limit_in_bytes));
        if r.memory_swap_limit_in_bytes > 0 {
            mem.set_swap(Some(r.memory_swap_limit_in_bytes));
        }
        resources.set_memory(Some(mem));
    }
    let mut cpu = oci_spec::runtime::LinuxCpu::default();
    let mut any = false;
    if r.cpu_shares > 0 {
        cpu.set_shares(Some(r.cpu_shares as u64));
        any = true;
    }
    if r.cpu_quota != 0 {
        cpu.set_quota(Some(r.cpu_quota));
        any = true;
    }
    if r.cpu_period > 0 {
        cpu.set_period(Some(r.cpu_period as u64));
        any = true;
    }
    if !r.cpuset_cpus.is_empty() {
        cpu.set_cpus(Some(r.cpuset_cpus.clone()));
        any = true;
    }
    if !r.cpuset_mems.is_empty() {
        cpu.set_mems(Some(r.cpuset_mems.clone()));
        any = true;
    }
    if any {
        resources.set_cpu(Some(cpu));
    }
    if !r.unified.is_empty() {
        resources.set_unified(Some(r.unified.clone().into_iter().collect()));
    }
    if !r.hugepage_limits.is_empty() {
        resources.set_hugepage_limits(Some(
            r.hugepage_limits
                .iter()
                .map(|h| {
                    let mut l = oci_spec::runtime::LinuxHugepageLimit::default();
                    // Both say sizes as "2MB", "1GB".
                    l.set_page_size(h.page_size.clone())
                        .set_limit(h.limit as i64);
                    l
                })
                .collect(),
        ));
    }
}

/// Masked and read-only paths. A container without a security context gets
/// the defaults; one with a security context gets exactly its lists, so an
/// empty list means none (the kubelet always sends its default lists, and
/// empty ones for an Unmasked procMount). Privileged containers get none.
pub fn apply_security_defaults(config: &ContainerConfig, linux: &mut oci_spec::runtime::Linux) {
    let owned = |paths: &[&str]| paths.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let (masked, readonly) = match security(config) {
        Some(s) if s.privileged => {
            linux.set_masked_paths(None).set_readonly_paths(None);
            return;
        }
        Some(s) => (s.masked_paths.clone(), s.readonly_paths.clone()),
        None => (owned(DEFAULT_MASKED_PATHS), owned(DEFAULT_READONLY_PATHS)),
    };
    linux
        .set_masked_paths(Some(masked))
        .set_readonly_paths(Some(readonly));
}

/// The full runtime spec.
pub fn build_spec(input: &SpecInput<'_>) -> Result<Spec> {
    let spec_err = |source| Error::Spec {
        id: input.id.to_string(),
        source,
    };
    let config = input.config;
    let sandbox = input.sandbox;
    let sec = security(config);

    let mut user = User::default();
    user.set_uid(input.user.uid)
        .set_gid(input.user.gid)
        .set_additional_gids(Some(input.user.additional_gids.clone()));

    let mut process = Process::default();
    process
        .set_terminal(Some(config.tty))
        .set_user(user)
        .set_args(Some(process_args(config, input.image)?))
        .set_env(Some(process_env(config, input.image, &sandbox.hostname)))
        .set_cwd(PathBuf::from(working_dir(config, input.image)))
        .set_capabilities(Some(capabilities(
            config,
            input.default_capabilities,
            input.capability_bound,
        )?))
        .set_rlimits(None)
        .set_no_new_privileges(Some(sec.map(|s| s.no_new_privs).unwrap_or(false)))
        .set_oom_score_adj(oom_score_adj(config));

    let mut root = Root::default();
    root.set_path(input.rootfs.to_path_buf())
        .set_readonly(Some(sec.map(|s| s.readonly_rootfs).unwrap_or(false)));

    let mut namespaces = vec![namespace(LinuxNamespaceType::Mount, None)];
    if let Some(p) = &sandbox.netns_path {
        namespaces.push(namespace(LinuxNamespaceType::Network, Some(p)));
    }
    if let Some(p) = &sandbox.ipcns_path {
        namespaces.push(namespace(LinuxNamespaceType::Ipc, Some(p)));
    }
    if let Some(p) = &sandbox.utsns_path {
        namespaces.push(namespace(LinuxNamespaceType::Uts, Some(p)));
    }
    match &input.pid_namespace {
        PidNamespace::Private => namespaces.push(namespace(LinuxNamespaceType::Pid, None)),
        PidNamespace::Join(p) => namespaces.push(namespace(LinuxNamespaceType::Pid, Some(p))),
        PidNamespace::Host => {}
    }

    let (mounts, rootfs_propagation) = mounts(input)?;

    let deny_all = LinuxDeviceCgroupBuilder::default()
        .allow(false)
        .access("rwm")
        .build()
        .map_err(spec_err)?;
    let mut rules = vec![deny_all];
    rules.extend(input.device_rules.iter().cloned());
    let mut resources = LinuxResourcesBuilder::default()
        .devices(rules)
        .build()
        .map_err(spec_err)?;
    apply_resources(config, &mut resources);
    if input.pids_limit > 0 {
        let mut pids = oci_spec::runtime::LinuxPids::default();
        pids.set_limit(input.pids_limit);
        resources.set_pids(Some(pids));
    }
    let mut linux = LinuxBuilder::default()
        .namespaces(namespaces)
        .resources(resources)
        .cgroups_path(PathBuf::from(cgroups_path(
            input.cgroup_manager,
            &sandbox.cgroup_parent,
            input.id,
        )))
        .build()
        .map_err(spec_err)?;
    if let Some(p) = rootfs_propagation {
        linux.set_rootfs_propagation(Some(p));
    }
    if !input.devices.is_empty() {
        linux.set_devices(Some(input.devices.to_vec()));
    }
    linux.set_seccomp(input.seccomp.cloned());
    apply_security_defaults(config, &mut linux);

    let mut annotations: HashMap<String, String> = config.annotations.clone();
    let name = config
        .metadata
        .as_ref()
        .map(|m| m.name.clone())
        .unwrap_or_default();
    for (k, v) in [
        (annotations::CONTAINER_TYPE, "container".to_string()),
        (annotations::CONTAINER_NAME, name),
        (annotations::SANDBOX_ID, sandbox.id.clone()),
        (annotations::SANDBOX_NAME, sandbox.name.clone()),
        (annotations::SANDBOX_NAMESPACE, sandbox.namespace.clone()),
        (annotations::SANDBOX_UID, sandbox.uid.clone()),
        (annotations::IMAGE_NAME, input.image.reference.clone()),
    ] {
        annotations.insert(k.to_string(), v);
    }

    let mut spec = Spec::default();
    spec.set_version("1.0.2".to_string())
        .set_process(Some(process))
        .set_root(Some(root))
        .set_hostname(None)
        .set_mounts(Some(mounts))
        .set_annotations(Some(annotations))
        .set_linux(Some(linux));
    // Node-provided additions come last: CDI devices, then OCI hooks, whose
    // conditions see the finished spec (annotations, process args).
    crate::cdi::apply(&mut spec, input.cdi);
    crate::hooks::apply(&mut spec, input.hooks, !config.mounts.is_empty());
    Ok(spec)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crius_proto::{
        Capability as CriCapability, ContainerMetadata, KeyValue, LinuxContainerConfig,
        LinuxContainerSecurityContext, NamespaceOption,
    };

    fn image(entrypoint: &[&str], cmd: &[&str]) -> ImageInfo {
        ImageInfo {
            id: "sha256:abc".into(),
            reference: "docker.io/library/busybox:latest".into(),
            layers: vec![],
            config: crate::types::ImageConfig {
                entrypoint: entrypoint.iter().map(|s| s.to_string()).collect(),
                cmd: cmd.iter().map(|s| s.to_string()).collect(),
                env: vec!["PATH=/bin".into(), "A=image".into(), "B=image".into()],
                working_dir: "/img".into(),
                ..Default::default()
            },
        }
    }

    fn cfg(command: &[&str], args: &[&str]) -> ContainerConfig {
        ContainerConfig {
            metadata: Some(ContainerMetadata {
                name: "c".into(),
                attempt: 0,
            }),
            command: command.iter().map(|s| s.to_string()).collect(),
            args: args.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        }
    }

    fn with_sec(mut c: ContainerConfig, s: LinuxContainerSecurityContext) -> ContainerConfig {
        c.linux = Some(LinuxContainerConfig {
            resources: None,
            security_context: Some(s),
        });
        c
    }

    #[test]
    fn args_rules() {
        let img = image(&["/ep"], &["cmd1", "cmd2"]);
        assert_eq!(
            process_args(&cfg(&[], &[]), &img).unwrap(),
            ["/ep", "cmd1", "cmd2"]
        );
        assert_eq!(process_args(&cfg(&[], &["a"]), &img).unwrap(), ["/ep", "a"]);
        // command replaces the entrypoint and the image CMD is dropped
        assert_eq!(process_args(&cfg(&["/c"], &[]), &img).unwrap(), ["/c"]);
        assert_eq!(
            process_args(&cfg(&["/c"], &["x", "y"]), &img).unwrap(),
            ["/c", "x", "y"]
        );
        let no_ep = image(&[], &["sh"]);
        assert_eq!(process_args(&cfg(&[], &[]), &no_ep).unwrap(), ["sh"]);
        assert_eq!(process_args(&cfg(&[], &["ls"]), &no_ep).unwrap(), ["ls"]);
        let err = process_args(&cfg(&[], &[]), &image(&[], &[])).unwrap_err();
        assert_eq!(err.kind(), crius_proto::ErrorKind::InvalidArgument);
    }

    #[test]
    fn env_overrides_by_key_and_keeps_order() {
        let mut c = cfg(&["x"], &[]);
        c.envs = vec![
            KeyValue {
                key: "B".into(),
                value: "cri".into(),
            },
            KeyValue {
                key: "C".into(),
                value: "x=y".into(),
            },
        ];
        let env = process_env(&c, &image(&[], &[]), "pod-host");
        assert_eq!(
            env,
            [
                "HOSTNAME=pod-host",
                "PATH=/bin",
                "A=image",
                "B=cri",
                "C=x=y"
            ]
        );
        let mut img = image(&[], &[]);
        img.config.env.clear();
        assert_eq!(process_env(&cfg(&[], &[]), &img, "")[0], DEFAULT_PATH);
    }

    #[test]
    fn working_dir_rules() {
        let mut c = cfg(&[], &[]);
        assert_eq!(working_dir(&c, &image(&[], &[])), "/img");
        c.working_dir = "/cri".into();
        assert_eq!(working_dir(&c, &image(&[], &[])), "/cri");
        let mut img = image(&[], &[]);
        img.config.working_dir.clear();
        assert_eq!(working_dir(&cfg(&[], &[]), &img), "/");
    }

    #[test]
    fn capability_add_drop() {
        let defaults: Vec<String> = DEFAULT_CAPABILITIES.iter().map(|s| s.to_string()).collect();
        let caps = capabilities(&cfg(&[], &[]), &defaults, u64::MAX).unwrap();
        assert_eq!(caps.bounding().as_ref().unwrap().len(), 14);
        let c = with_sec(
            cfg(&[], &[]),
            LinuxContainerSecurityContext {
                capabilities: Some(CriCapability {
                    add_capabilities: vec!["NET_ADMIN".into()],
                    drop_capabilities: vec!["CAP_KILL".into()],
                    add_ambient_capabilities: vec![],
                }),
                ..Default::default()
            },
        );
        let caps = capabilities(&c, &defaults, u64::MAX).unwrap();
        let b = caps.bounding().as_ref().unwrap();
        assert!(b.contains(&Capability::NetAdmin));
        assert!(!b.contains(&Capability::Kill));
        assert_eq!(b.len(), 14);
        let c = with_sec(
            cfg(&[], &[]),
            LinuxContainerSecurityContext {
                capabilities: Some(CriCapability {
                    add_capabilities: vec!["CHOWN".into()],
                    drop_capabilities: vec!["ALL".into()],
                    add_ambient_capabilities: vec![],
                }),
                ..Default::default()
            },
        );
        let caps = capabilities(&c, &defaults, u64::MAX).unwrap();
        assert_eq!(caps.effective().as_ref().unwrap().len(), 1);
        let bad = with_sec(
            cfg(&[], &[]),
            LinuxContainerSecurityContext {
                capabilities: Some(CriCapability {
                    add_capabilities: vec!["NOPE".into()],
                    ..Default::default()
                }),
                ..Default::default()
            },
        );
        assert!(capabilities(&bad, &defaults, u64::MAX).is_err());
    }

    #[test]
    fn hugepages_unified_and_cpuset_resources() {
        let r = crius_proto::LinuxContainerResources {
            cpuset_cpus: "0-1".into(),
            cpuset_mems: "0".into(),
            hugepage_limits: vec![crius_proto::HugepageLimit {
                page_size: "2MB".into(),
                limit: 4 << 20,
            }],
            unified: [("memory.high".to_string(), "1000000".to_string())].into(),
            ..Default::default()
        };
        let mut res = oci_spec::runtime::LinuxResources::default();
        oci_resources(&r, &mut res);
        let h = &res.hugepage_limits().as_ref().unwrap()[0];
        assert_eq!((h.page_size().as_str(), h.limit()), ("2MB", 4 << 20));
        let cpu = res.cpu().as_ref().unwrap();
        assert_eq!(cpu.cpus().as_deref(), Some("0-1"));
        assert_eq!(cpu.mems().as_deref(), Some("0"));
        assert_eq!(
            res.unified()
                .as_ref()
                .unwrap()
                .get("memory.high")
                .map(String::as_str),
            Some("1000000")
        );
        // Nothing asked: nothing set (runc update leaves those alone).
        let mut res = oci_spec::runtime::LinuxResources::default();
        oci_resources(&Default::default(), &mut res);
        assert!(res.cpu().is_none() && res.memory().is_none());
        assert!(res.hugepage_limits().is_none());
    }

    #[test]
    fn privileged_and_ambient_capabilities() {
        let defaults: Vec<String> = DEFAULT_CAPABILITIES.iter().map(|s| s.to_string()).collect();
        let priv_cfg = with_sec(
            cfg(&[], &[]),
            LinuxContainerSecurityContext {
                privileged: true,
                ..Default::default()
            },
        );
        let caps = capabilities(&priv_cfg, &defaults, u64::MAX).unwrap();
        assert_eq!(caps.bounding().as_ref().unwrap().len(), 41);
        // Without CAP_SYS_RESOURCE (bit 24) in crius' own bounding set.
        let caps = capabilities(&priv_cfg, &defaults, !(1u64 << 24)).unwrap();
        let b = caps.bounding().as_ref().unwrap();
        assert_eq!(b.len(), 40);
        assert!(!b.contains(&Capability::SysResource));
        assert!(b.contains(&Capability::SysAdmin));
        let c = with_sec(
            cfg(&[], &[]),
            LinuxContainerSecurityContext {
                capabilities: Some(CriCapability {
                    add_ambient_capabilities: vec!["CAP_NET_ADMIN".into()],
                    ..Default::default()
                }),
                ..Default::default()
            },
        );
        let caps = capabilities(&c, &defaults, u64::MAX).unwrap();
        for set in [caps.ambient(), caps.inheritable(), caps.permitted()] {
            assert!(set.as_ref().unwrap().contains(&Capability::NetAdmin));
        }
        assert_eq!(caps.ambient().as_ref().unwrap().len(), 1);
        assert!(
            capabilities(&cfg(&[], &[]), &defaults, u64::MAX)
                .unwrap()
                .ambient()
                .is_none()
        );
    }

    #[test]
    fn privileged_spec_has_no_masks_and_rw_sys() {
        let c = with_sec(
            cfg(&["sh"], &[]),
            LinuxContainerSecurityContext {
                privileged: true,
                ..Default::default()
            },
        );
        let spec = build(&c, &sandbox(), PidNamespace::Private).unwrap();
        let linux = spec.linux().as_ref().unwrap();
        assert!(linux.masked_paths().is_none());
        assert!(linux.readonly_paths().is_none());
        let sys = spec
            .mounts()
            .as_ref()
            .unwrap()
            .iter()
            .find(|m| m.destination() == Path::new("/sys"))
            .unwrap();
        assert!(sys.options().as_ref().unwrap().contains(&"rw".to_string()));
    }

    fn sandbox() -> SandboxInfo {
        SandboxInfo {
            id: "pod1".into(),
            name: "pod".into(),
            namespace: "ns".into(),
            uid: "uid1".into(),
            netns_path: Some("/run/netns/x".into()),
            ipcns_path: Some("/run/ipcns/x".into()),
            utsns_path: None,
            hostname: "pod-host".into(),
            hosts_file: Some("/pod/hosts".into()),
            resolv_conf_file: Some("/pod/resolv.conf".into()),
            hostname_file: Some("/pod/hostname".into()),
            shm_path: Some("/pod/shm".into()),
            cgroup_parent: "/kubepods/pod1".into(),
            ..Default::default()
        }
    }

    fn build(c: &ContainerConfig, sb: &SandboxInfo, pid: PidNamespace) -> Result<Spec> {
        let img = image(&["/bin/sh"], &[]);
        let user = ResolvedUser {
            uid: 0,
            gid: 0,
            additional_gids: vec![0],
            username: Some("root".into()),
        };
        let defaults: Vec<String> = DEFAULT_CAPABILITIES.iter().map(|s| s.to_string()).collect();
        build_spec(&SpecInput {
            id: "abc",
            config: c,
            image: &img,
            sandbox: sb,
            rootfs: Path::new("/r/rootfs"),
            user: &user,
            pid_namespace: pid,
            termination_log: Some(("/dev/termination-log", Path::new("/c/termination-log"))),
            default_capabilities: &defaults,
            capability_bound: u64::MAX,
            devices: &[],
            device_rules: &[],
            seccomp: None,
            pids_limit: 0,
            recursive_read_only: true,
            cgroup_manager: CgroupManager::Cgroupfs,
            cdi: &crate::cdi::Edits::default(),
            hooks: &[],
        })
    }

    fn dests(spec: &Spec) -> Vec<String> {
        spec.mounts()
            .as_ref()
            .unwrap()
            .iter()
            .map(|m| m.destination().display().to_string())
            .collect()
    }

    #[test]
    fn default_mounts_and_pod_files() {
        let spec = build(&cfg(&[], &[]), &sandbox(), PidNamespace::Private).unwrap();
        assert_eq!(
            dests(&spec),
            [
                "/proc",
                "/dev",
                "/dev/pts",
                "/dev/mqueue",
                "/sys",
                "/sys/fs/cgroup",
                "/dev/shm",
                "/etc/hosts",
                "/etc/resolv.conf",
                "/etc/hostname",
                "/dev/termination-log"
            ]
        );
        let shm = &spec.mounts().as_ref().unwrap()[6];
        assert_eq!(shm.source().as_ref().unwrap(), Path::new("/pod/shm"));
        let mut sb = sandbox();
        sb.shm_path = None;
        let spec = build(&cfg(&[], &[]), &sb, PidNamespace::Private).unwrap();
        let shm = &spec.mounts().as_ref().unwrap()[6];
        assert_eq!(shm.typ().as_deref(), Some("tmpfs"));
    }

    #[test]
    fn cri_mounts_replace_defaults_and_sort() {
        let mut c = cfg(&[], &[]);
        c.mounts = vec![
            crius_proto::Mount {
                container_path: "/data/sub".into(),
                host_path: "/h/sub".into(),
                readonly: true,
                ..Default::default()
            },
            crius_proto::Mount {
                container_path: "/data/".into(),
                host_path: "/h/data".into(),
                propagation: MountPropagation::PropagationHostToContainer as i32,
                ..Default::default()
            },
            crius_proto::Mount {
                container_path: "/etc/hosts".into(),
                host_path: "/h/hosts".into(),
                ..Default::default()
            },
        ];
        let spec = build(&c, &sandbox(), PidNamespace::Private).unwrap();
        let d = dests(&spec);
        assert_eq!(d.iter().filter(|d| *d == "/etc/hosts").count(), 1);
        let pos = |p: &str| d.iter().position(|x| x == p).unwrap();
        assert!(pos("/data") < pos("/data/sub"));
        let ms = spec.mounts().as_ref().unwrap();
        let sub = &ms[pos("/data/sub")];
        assert_eq!(
            sub.options().as_ref().unwrap(),
            &["rbind", "rprivate", "ro"]
        );
        let data = &ms[pos("/data")];
        assert_eq!(data.options().as_ref().unwrap(), &["rbind", "rslave", "rw"]);
        assert_eq!(
            spec.linux()
                .as_ref()
                .unwrap()
                .rootfs_propagation()
                .as_deref(),
            Some("rslave")
        );
        let hosts = &ms[pos("/etc/hosts")];
        assert_eq!(hosts.source().as_ref().unwrap(), Path::new("/h/hosts"));

        let mut bad = cfg(&[], &[]);
        bad.mounts = vec![crius_proto::Mount {
            container_path: "/a/../../b".into(),
            host_path: "/h".into(),
            ..Default::default()
        }];
        assert!(build(&bad, &sandbox(), PidNamespace::Private).is_err());
        bad.mounts[0].container_path = "rel".into();
        assert!(build(&bad, &sandbox(), PidNamespace::Private).is_err());
        bad.mounts[0].container_path = "/ok".into();
        bad.mounts[0].host_path = "rel".into();
        assert!(build(&bad, &sandbox(), PidNamespace::Private).is_err());
    }

    #[test]
    fn unsupported_mount_features_are_refused() {
        let base = crius_proto::Mount {
            container_path: "/x".into(),
            host_path: "/h".into(),
            ..Default::default()
        };
        let mut idmap = base.clone();
        idmap.uid_mappings = vec![crius_proto::IdMapping {
            host_id: 1000,
            container_id: 0,
            length: 1,
        }];
        let mut image = base.clone();
        image.host_path.clear();
        image.image = Some(crius_proto::ImageSpec {
            image: "busybox".into(),
            ..Default::default()
        });
        for m in [idmap, image] {
            let mut c = cfg(&[], &[]);
            c.mounts = vec![m];
            let e = build(&c, &sandbox(), PidNamespace::Private).unwrap_err();
            assert_eq!(e.kind(), crius_proto::ErrorKind::InvalidArgument);
            assert!(e.to_string().contains("not supported"), "{e}");
        }
    }

    #[test]
    fn recursive_read_only_mounts_are_rro_when_private_and_readonly() {
        let rro = crius_proto::Mount {
            container_path: "/x".into(),
            host_path: "/h".into(),
            readonly: true,
            recursive_read_only: true,
            propagation: MountPropagation::PropagationPrivate as i32,
            ..Default::default()
        };
        let mut c = cfg(&[], &[]);
        c.mounts = vec![rro.clone()];
        let spec = build(&c, &sandbox(), PidNamespace::Private).unwrap();
        let m = spec
            .mounts()
            .as_ref()
            .unwrap()
            .iter()
            .find(|m| m.destination() == Path::new("/x"))
            .unwrap();
        assert_eq!(
            m.options().as_deref().unwrap(),
            &["rbind", "rprivate", "rro"]
        );

        let mut writable = rro.clone();
        writable.readonly = false;
        let mut slave = rro.clone();
        slave.propagation = MountPropagation::PropagationHostToContainer as i32;
        for (m, why) in [(writable, "readonly"), (slave, "private")] {
            c.mounts = vec![m];
            let e = validate_mounts(&c, true).unwrap_err();
            assert_eq!(e.kind(), crius_proto::ErrorKind::InvalidArgument);
            assert!(e.to_string().contains(why), "{e}");
        }
        c.mounts = vec![rro];
        let e = validate_mounts(&c, false).unwrap_err();
        assert!(e.to_string().contains("not supported"), "{e}");
    }

    #[test]
    fn bidirectional_makes_rootfs_shared() {
        let mut c = cfg(&[], &[]);
        c.mounts = vec![crius_proto::Mount {
            container_path: "/x".into(),
            host_path: "/h".into(),
            propagation: MountPropagation::PropagationBidirectional as i32,
            ..Default::default()
        }];
        let spec = build(&c, &sandbox(), PidNamespace::Private).unwrap();
        assert_eq!(
            spec.linux()
                .as_ref()
                .unwrap()
                .rootfs_propagation()
                .as_deref(),
            Some("rshared")
        );
    }

    #[test]
    fn namespaces_follow_the_pod() {
        let spec = build(&cfg(&[], &[]), &sandbox(), PidNamespace::Private).unwrap();
        let ns = spec.linux().as_ref().unwrap().namespaces().clone().unwrap();
        let find = |t| ns.iter().find(|n| n.typ() == t).cloned();
        assert!(find(LinuxNamespaceType::Mount).unwrap().path().is_none());
        assert_eq!(
            find(LinuxNamespaceType::Network).unwrap().path().as_deref(),
            Some(Path::new("/run/netns/x"))
        );
        assert!(find(LinuxNamespaceType::Ipc).is_some());
        // no uts path = host uts: no namespace entry, no hostname
        assert!(find(LinuxNamespaceType::Uts).is_none());
        assert!(spec.hostname().is_none());
        assert!(find(LinuxNamespaceType::Pid).unwrap().path().is_none());
        let spec = build(&cfg(&[], &[]), &sandbox(), PidNamespace::Host).unwrap();
        let ns = spec.linux().as_ref().unwrap().namespaces().clone().unwrap();
        assert!(!ns.iter().any(|n| n.typ() == LinuxNamespaceType::Pid));
        let mut sb = sandbox();
        sb.netns_path = None;
        let spec = build(&cfg(&[], &[]), &sb, PidNamespace::Private).unwrap();
        let ns = spec.linux().as_ref().unwrap().namespaces().clone().unwrap();
        assert!(!ns.iter().any(|n| n.typ() == LinuxNamespaceType::Network));
    }

    #[test]
    fn pid_modes() {
        let mut sb = sandbox();
        let c = |mode: NamespaceMode| {
            with_sec(
                cfg(&[], &[]),
                LinuxContainerSecurityContext {
                    namespace_options: Some(NamespaceOption {
                        pid: mode as i32,
                        ..Default::default()
                    }),
                    ..Default::default()
                },
            )
        };
        assert_eq!(
            pid_namespace(&cfg(&[], &[]), &sb).unwrap(),
            PidNamespace::Private
        );
        assert_eq!(
            pid_namespace(&c(NamespaceMode::Node), &sb).unwrap(),
            PidNamespace::Host
        );
        assert!(pid_namespace(&c(NamespaceMode::Pod), &sb).is_err());
        sb.pidns_path = Some("/proc/42/ns/pid".into());
        assert_eq!(
            pid_namespace(&c(NamespaceMode::Pod), &sb).unwrap(),
            PidNamespace::Join("/proc/42/ns/pid".into())
        );
        sb.host_pid = true;
        assert_eq!(
            pid_namespace(&c(NamespaceMode::Pod), &sb).unwrap(),
            PidNamespace::Host
        );
    }

    #[test]
    fn masked_and_readonly_paths_default_only_without_a_security_context() {
        let spec = build(&cfg(&[], &[]), &sandbox(), PidNamespace::Private).unwrap();
        let linux = spec.linux().as_ref().unwrap();
        assert_eq!(
            linux.masked_paths().as_ref().unwrap().len(),
            DEFAULT_MASKED_PATHS.len()
        );
        assert_eq!(
            linux.readonly_paths().as_ref().unwrap().len(),
            DEFAULT_READONLY_PATHS.len()
        );
        let c = with_sec(
            cfg(&[], &[]),
            LinuxContainerSecurityContext {
                masked_paths: vec!["/proc/kcore".into()],
                readonly_paths: vec!["/proc/sys".into()],
                ..Default::default()
            },
        );
        let spec = build(&c, &sandbox(), PidNamespace::Private).unwrap();
        let linux = spec.linux().as_ref().unwrap();
        assert_eq!(
            linux.masked_paths().as_deref(),
            Some(&["/proc/kcore".to_string()][..])
        );
        assert_eq!(
            linux.readonly_paths().as_deref(),
            Some(&["/proc/sys".to_string()][..])
        );
    }

    #[test]
    fn process_user_tty_readonly_and_cgroups() {
        let mut c = with_sec(
            cfg(&[], &[]),
            LinuxContainerSecurityContext {
                readonly_rootfs: true,
                no_new_privs: true,
                ..Default::default()
            },
        );
        c.tty = true;
        let spec = build(&c, &sandbox(), PidNamespace::Private).unwrap();
        let p = spec.process().as_ref().unwrap();
        assert_eq!(p.terminal(), Some(true));
        assert_eq!(p.no_new_privileges(), Some(true));
        assert!(p.rlimits().is_none());
        assert!(p.oom_score_adj().is_none());
        assert_eq!(spec.root().as_ref().unwrap().readonly(), Some(true));
        let linux = spec.linux().as_ref().unwrap();
        assert_eq!(
            linux.cgroups_path().as_deref(),
            Some(Path::new("/kubepods/pod1/crius-abc"))
        );
        // A security context without lists: nothing masked (Unmasked).
        assert_eq!(linux.masked_paths().as_deref(), Some(&[][..]));
        assert_eq!(linux.readonly_paths().as_deref(), Some(&[][..]));
        let ms = spec.mounts().as_ref().unwrap();
        let hosts = ms
            .iter()
            .find(|m| m.destination() == Path::new("/etc/hosts"))
            .unwrap();
        assert!(
            hosts
                .options()
                .as_ref()
                .unwrap()
                .contains(&"ro".to_string())
        );
        let a = spec.annotations().as_ref().unwrap();
        assert_eq!(a[annotations::CONTAINER_TYPE], "container");
        assert_eq!(a[annotations::SANDBOX_ID], "pod1");
        assert_eq!(a[annotations::CONTAINER_NAME], "c");
        // the spec serializes to what runc reads
        let json = serde_json::to_value(&spec).unwrap();
        assert_eq!(json["process"]["user"]["uid"], 0);
        assert_eq!(json["linux"]["namespaces"][0]["type"], "mount");
    }

    #[test]
    fn resources_and_oom_score() {
        let mut c = cfg(&[], &[]);
        c.linux = Some(LinuxContainerConfig {
            resources: Some(crius_proto::LinuxContainerResources {
                memory_limit_in_bytes: 1 << 20,
                cpu_shares: 512,
                cpu_quota: 50_000,
                cpu_period: 100_000,
                oom_score_adj: -997,
                ..Default::default()
            }),
            security_context: None,
        });
        let spec = build(&c, &sandbox(), PidNamespace::Private).unwrap();
        let r = spec.linux().as_ref().unwrap().resources().clone().unwrap();
        assert_eq!(r.memory().unwrap().limit(), Some(1 << 20));
        assert_eq!(r.memory().unwrap().swap(), None);
        let cpu = r.cpu().clone().unwrap();
        assert_eq!(
            (cpu.shares(), cpu.quota(), cpu.period()),
            (Some(512), Some(50_000), Some(100_000))
        );
        // negative adjustments need CAP_SYS_RESOURCE: left out
        assert_eq!(spec.process().as_ref().unwrap().oom_score_adj(), None);
        c.linux
            .as_mut()
            .unwrap()
            .resources
            .as_mut()
            .unwrap()
            .oom_score_adj = 1000;
        assert_eq!(oom_score_adj(&c), Some(1000));
        assert!(!r.devices().as_ref().unwrap()[0].allow());
    }

    #[test]
    fn cgroups_paths() {
        assert_eq!(
            cgroups_path(CgroupManager::Cgroupfs, "", "x"),
            "/crius/crius-x"
        );
        assert_eq!(
            cgroups_path(CgroupManager::Cgroupfs, "/kubepods/", "x"),
            "/kubepods/crius-x"
        );
        assert_eq!(
            cgroups_path(CgroupManager::Systemd, "kubepods.slice", "x"),
            "kubepods.slice:crius:x"
        );
        assert_eq!(
            cgroups_path(CgroupManager::Systemd, "", "x"),
            "system.slice:crius:x"
        );
    }

    #[test]
    fn cgroup_placement_matches_driver_and_parent() {
        let dir = tempfile::tempdir().unwrap();
        let booted = dir.path();
        let not_booted = dir.path().join("missing");
        let check = |m, parent: &str, marker: &Path| check_cgroup_placement(m, parent, marker);
        use CgroupManager::{Cgroupfs, Systemd};
        assert!(check(Cgroupfs, "", &not_booted).is_ok());
        assert!(check(Cgroupfs, "/kubepods/burstable/pod1", &not_booted).is_ok());
        let e = check(Cgroupfs, "kubepods-pod1.slice", booted).unwrap_err();
        assert!(matches!(e, Error::InvalidArgument(_)), "{e}");

        let e = check(Systemd, "kubepods-pod1.slice", &not_booted).unwrap_err();
        assert!(matches!(e, Error::SystemdNotRunning { .. }), "{e}");
        assert_eq!(e.kind(), crius_proto::ErrorKind::FailedPrecondition);
        assert!(e.to_string().contains("missing"), "{e}");
        assert!(e.to_string().contains("cgroupfs"), "{e}");

        assert!(check(Systemd, "", booted).is_ok());
        assert!(check(Systemd, "kubepods-burstable-pod1.slice", booted).is_ok());
        for bad in ["/kubepods/pod1", "kubepods", "kubepods--x.slice"] {
            let e = check(Systemd, bad, booted).unwrap_err();
            assert!(matches!(e, Error::InvalidArgument(_)), "{bad}: {e}");
        }
    }
}
