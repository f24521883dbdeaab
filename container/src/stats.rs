//! Resource usage for the CRI stats RPCs, read straight from cgroup files
//! (v1 and v2), the overlay upper dir and `/proc/<pid>/net/dev`: no process
//! is spawned per call, so ListContainerStats stays cheap.
//!
//! `usage_nano_cores` needs two samples: the previous one of each container
//! is kept in memory ([`CpuSamples`]); the first call averages over the
//! container's lifetime instead.

use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// Limits at or above this are "no limit" (cgroup v1 reports
/// `PAGE_COUNTER_MAX * PAGE_SIZE`, about 2^63).
const UNLIMITED: u64 = 1 << 62;

/// Where the cgroup hierarchy is mounted and which version it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cgroups {
    pub root: PathBuf,
    /// The unified hierarchy (v2) rather than per-controller v1 mounts.
    pub v2: bool,
}

/// What one cgroup reports. A figure the kernel does not provide (missing
/// controller or file) is `None`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CgroupUsage {
    /// Total CPU time of the cgroup's tasks, nanoseconds.
    pub cpu_usage_ns: Option<u64>,
    pub memory: Option<MemoryUsage>,
    /// Tasks (threads) in the cgroup.
    pub pids: Option<u64>,
    pub swap: Option<SwapUsage>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SwapUsage {
    /// Bytes of the cgroup's memory swapped out.
    pub usage: u64,
    /// How much it may swap, `None` if unlimited.
    pub limit: Option<u64>,
}

impl SwapUsage {
    /// Swap left before the limit, when there is one.
    pub fn available(&self) -> Option<u64> {
        self.limit.map(|l| l.saturating_sub(self.usage))
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MemoryUsage {
    pub usage: u64,
    /// usage minus inactive file cache: what the kubelet evicts on.
    pub working_set: u64,
    pub rss: u64,
    pub page_faults: u64,
    pub major_page_faults: u64,
    /// The memory limit, `None` if unlimited.
    pub limit: Option<u64>,
}

impl MemoryUsage {
    /// Bytes left before the limit, when there is one.
    pub fn available(&self) -> Option<u64> {
        self.limit.map(|l| l.saturating_sub(self.working_set))
    }
}

/// The cgroup counters and limits cAdvisor-style metrics report beyond
/// the CRI stats. A figure the kernel does not provide is `None`; a limit
/// that is not set is `Some(0)`, as cAdvisor reports it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CgroupDetail {
    pub cfs_periods: Option<u64>,
    pub cfs_throttled_periods: Option<u64>,
    pub cfs_throttled_ns: Option<u64>,
    pub cpu_user_ns: Option<u64>,
    pub cpu_system_ns: Option<u64>,
    pub cpu_period_us: Option<u64>,
    pub cpu_shares: Option<u64>,
    /// Page cache (`file` in v2).
    pub memory_cache: Option<u64>,
    pub memory_mapped_file: Option<u64>,
    pub memory_kernel: Option<u64>,
    pub memory_max_usage: Option<u64>,
    /// Times the limit was hit (`max` events in v2).
    pub memory_failcnt: Option<u64>,
    pub oom_kills: Option<u64>,
    pub memory_limit: Option<u64>,
    /// Memory plus swap in v1, swap alone in v2, as cAdvisor reports them.
    pub swap_limit: Option<u64>,
    pub threads: Option<u64>,
    pub threads_max: Option<u64>,
    pub io: Vec<DeviceIo>,
}

/// Block I/O of a cgroup on one device.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeviceIo {
    pub major: u64,
    pub minor: u64,
    pub read_bytes: u64,
    pub write_bytes: u64,
    pub reads: u64,
    pub writes: u64,
}

/// v1 `cpuacct.stat` counts in USER_HZ ticks, 100 per second on Linux.
const NANOS_PER_TICK: u64 = 10_000_000;

impl Cgroups {
    pub fn new(root: impl Into<PathBuf>, v2: bool) -> Self {
        Cgroups {
            root: root.into(),
            v2,
        }
    }

    /// The host's hierarchy at `/sys/fs/cgroup`: v2 when the unified
    /// hierarchy is mounted there (`cgroup.controllers`), else v1 (also for
    /// hybrid hosts, whose controllers live in the v1 mounts).
    pub fn host() -> Self {
        let root = PathBuf::from("/sys/fs/cgroup");
        let v2 = root.join("cgroup.controllers").exists();
        Cgroups { root, v2 }
    }

    /// The directory of `cgroup` (a path as given to runc, e.g.
    /// `/kubepods/pod1/crius-<id>` or `kubepods.slice:crius:<id>`, or a
    /// pod's parent, see [`cgroup_rel`]) for a v1 `controller`; v2 ignores
    /// it.
    pub fn dir(&self, controller: &str, cgroup: &str) -> Option<PathBuf> {
        let rel = cgroup_rel(cgroup)?;
        Some(if self.v2 {
            self.root.join(rel)
        } else {
            self.root.join(controller).join(rel)
        })
    }

    /// Reads CPU, memory and pids figures of one cgroup. Nothing here fails:
    /// a cgroup that is gone (the container exited) yields `None`s.
    pub fn usage(&self, cgroup: &str) -> CgroupUsage {
        CgroupUsage {
            cpu_usage_ns: self.cpu_usage(cgroup),
            memory: self.memory(cgroup),
            pids: self
                .dir("pids", cgroup)
                .and_then(|d| read_u64(&d.join("pids.current"))),
            swap: self.swap(cgroup),
        }
    }

    /// The counters and limits of [`CgroupDetail`] for `cgroup`.
    pub fn detail(&self, cgroup: &str) -> CgroupDetail {
        if self.v2 {
            self.detail_v2(cgroup).unwrap_or_default()
        } else {
            self.detail_v1(cgroup)
        }
    }

    fn detail_v2(&self, cgroup: &str) -> Option<CgroupDetail> {
        let dir = self.dir("", cgroup)?;
        let file = |f: &str| read(&dir.join(f)).unwrap_or_default();
        let cpu = file("cpu.stat");
        let memory = file("memory.stat");
        let events = file("memory.events");
        let cpu_max = file("cpu.max");
        let limit = |f: &str| read(&dir.join(f)).map(|t| unlimited_as_zero(&t));
        Some(CgroupDetail {
            cfs_periods: stat_value(&cpu, "nr_periods"),
            cfs_throttled_periods: stat_value(&cpu, "nr_throttled"),
            cfs_throttled_ns: stat_value(&cpu, "throttled_usec").map(|u| u * 1000),
            cpu_user_ns: stat_value(&cpu, "user_usec").map(|u| u * 1000),
            cpu_system_ns: stat_value(&cpu, "system_usec").map(|u| u * 1000),
            cpu_period_us: cpu_max
                .split_whitespace()
                .nth(1)
                .and_then(|p| p.parse().ok()),
            cpu_shares: read_u64(&dir.join("cpu.weight")).map(weight_to_shares),
            memory_cache: stat_value(&memory, "file"),
            memory_mapped_file: stat_value(&memory, "file_mapped"),
            memory_kernel: stat_value(&memory, "kernel").or_else(|| {
                Some(stat_value(&memory, "kernel_stack")? + stat_value(&memory, "slab")?)
            }),
            memory_max_usage: read_u64(&dir.join("memory.peak")),
            memory_failcnt: stat_value(&events, "max"),
            oom_kills: stat_value(&events, "oom_kill"),
            memory_limit: limit("memory.max"),
            swap_limit: limit("memory.swap.max"),
            threads: read_u64(&dir.join("pids.current")),
            threads_max: limit("pids.max"),
            io: parse_io_stat(&file("io.stat")),
        })
    }

    fn detail_v1(&self, cgroup: &str) -> CgroupDetail {
        let file = |controller: &str, f: &str| {
            self.dir(controller, cgroup)
                .and_then(|d| read(&d.join(f)))
                .unwrap_or_default()
        };
        let num = |controller: &str, f: &str| file(controller, f).trim().parse::<u64>().ok();
        let limit = |controller: &str, f: &str| {
            let text = file(controller, f);
            (!text.is_empty()).then(|| unlimited_as_zero(&text))
        };
        let cpu = file("cpu", "cpu.stat");
        let acct = file("cpuacct", "cpuacct.stat");
        let memory = file("memory", "memory.stat");
        let blkio = |f: &str| file("blkio", f);
        CgroupDetail {
            cfs_periods: stat_value(&cpu, "nr_periods"),
            cfs_throttled_periods: stat_value(&cpu, "nr_throttled"),
            cfs_throttled_ns: stat_value(&cpu, "throttled_time"),
            cpu_user_ns: stat_value(&acct, "user").map(|t| t * NANOS_PER_TICK),
            cpu_system_ns: stat_value(&acct, "system").map(|t| t * NANOS_PER_TICK),
            cpu_period_us: num("cpu", "cpu.cfs_period_us"),
            cpu_shares: num("cpu", "cpu.shares"),
            memory_cache: stat_value(&memory, "total_cache"),
            memory_mapped_file: stat_value(&memory, "total_mapped_file"),
            memory_kernel: num("memory", "memory.kmem.usage_in_bytes"),
            memory_max_usage: num("memory", "memory.max_usage_in_bytes"),
            memory_failcnt: num("memory", "memory.failcnt"),
            oom_kills: stat_value(&file("memory", "memory.oom_control"), "oom_kill"),
            memory_limit: limit("memory", "memory.limit_in_bytes"),
            swap_limit: limit("memory", "memory.memsw.limit_in_bytes"),
            threads: num("pids", "pids.current"),
            threads_max: limit("pids", "pids.max"),
            io: parse_blkio(
                &blkio("blkio.throttle.io_service_bytes"),
                &blkio("blkio.throttle.io_serviced"),
            ),
        }
    }

    /// Open file descriptors and, of those, sockets of the processes in
    /// `cgroup`.
    pub fn open_files(&self, cgroup: &str) -> Option<(u64, u64)> {
        let procs = read(&self.dir("pids", cgroup)?.join("cgroup.procs"))?;
        let (mut fds, mut sockets) = (0, 0);
        for pid in procs.split_whitespace() {
            let Ok(entries) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
                continue;
            };
            for e in entries.flatten() {
                fds += 1;
                if std::fs::read_link(e.path())
                    .is_ok_and(|l| l.to_string_lossy().starts_with("socket:"))
                {
                    sockets += 1;
                }
            }
        }
        Some((fds, sockets))
    }

    /// v2 counts swap on its own (`memory.swap.*`); v1 only memory plus swap
    /// (`memory.memsw.*`, present when the kernel accounts swap), from which
    /// the plain memory figures are subtracted.
    fn swap(&self, cgroup: &str) -> Option<SwapUsage> {
        let dir = self.dir("memory", cgroup)?;
        let limit = |f: &str| read_u64(&dir.join(f)).filter(|l| *l < UNLIMITED);
        if self.v2 {
            return Some(SwapUsage {
                usage: read_u64(&dir.join("memory.swap.current"))?,
                limit: limit("memory.swap.max"),
            });
        }
        let both = read_u64(&dir.join("memory.memsw.usage_in_bytes"))?;
        let memory = read_u64(&dir.join("memory.usage_in_bytes"))?;
        Some(SwapUsage {
            usage: both.saturating_sub(memory),
            limit: limit("memory.memsw.limit_in_bytes")
                .zip(limit("memory.limit_in_bytes"))
                .map(|(both, memory)| both.saturating_sub(memory)),
        })
    }

    fn cpu_usage(&self, cgroup: &str) -> Option<u64> {
        if self.v2 {
            let text = read(&self.dir("", cgroup)?.join("cpu.stat"))?;
            return stat_value(&text, "usage_usec").map(|us| us.saturating_mul(1000));
        }
        read_u64(&self.dir("cpuacct", cgroup)?.join("cpuacct.usage"))
    }

    fn memory(&self, cgroup: &str) -> Option<MemoryUsage> {
        let dir = self.dir("memory", cgroup)?;
        if self.v2 {
            let usage = read_u64(&dir.join("memory.current"))?;
            let stat = read(&dir.join("memory.stat")).unwrap_or_default();
            let inactive = stat_value(&stat, "inactive_file").unwrap_or(0);
            return Some(MemoryUsage {
                usage,
                working_set: usage.saturating_sub(inactive),
                rss: stat_value(&stat, "anon").unwrap_or(0),
                page_faults: stat_value(&stat, "pgfault").unwrap_or(0),
                major_page_faults: stat_value(&stat, "pgmajfault").unwrap_or(0),
                // "max" does not parse: unlimited.
                limit: read_u64(&dir.join("memory.max")).filter(|l| *l < UNLIMITED),
            });
        }
        let usage = read_u64(&dir.join("memory.usage_in_bytes"))?;
        let stat = read(&dir.join("memory.stat")).unwrap_or_default();
        let inactive = stat_value(&stat, "total_inactive_file").unwrap_or(0);
        Some(MemoryUsage {
            usage,
            working_set: usage.saturating_sub(inactive),
            rss: stat_value(&stat, "total_rss").unwrap_or(0),
            page_faults: stat_value(&stat, "total_pgfault").unwrap_or(0),
            major_page_faults: stat_value(&stat, "total_pgmajfault").unwrap_or(0),
            limit: read_u64(&dir.join("memory.limit_in_bytes")).filter(|l| *l < UNLIMITED),
        })
    }
}

/// Where a cgroup lives below the hierarchy root. Takes what crius hands
/// runc or gets from the kubelet: a cgroupfs path (`/kubepods/pod1/crius-<id>`),
/// a systemd slice (a pod's parent, `kubepods-burstable-pod1.slice`) or
/// runc's systemd triple `slice:prefix:name` (a container: the scope
/// `prefix-name.scope` in that slice; an empty slice is `system.slice`, as
/// runc does). `None` for a path that would leave the hierarchy or a
/// malformed slice.
pub fn cgroup_rel(cgroup: &str) -> Option<PathBuf> {
    if cgroup.contains(':') {
        let parts: Vec<&str> = cgroup.split(':').collect();
        let [slice, prefix, name] = parts[..] else {
            return None;
        };
        let slice = if slice.is_empty() {
            "system.slice"
        } else {
            slice
        };
        let unit = if name.ends_with(".slice") {
            name.to_string()
        } else if prefix.is_empty() {
            format!("{name}.scope")
        } else {
            format!("{prefix}-{name}.scope")
        };
        if name.is_empty() || unit.contains('/') || unit.starts_with('.') {
            return None;
        }
        return Some(expand_slice(slice)?.join(unit));
    }
    if !cgroup.contains('/') && cgroup.ends_with(".slice") {
        return expand_slice(cgroup);
    }
    let rel = cgroup.trim_start_matches('/');
    if rel.split('/').any(|c| c == "..") {
        return None;
    }
    Some(PathBuf::from(rel))
}

/// The directory of a systemd slice: each dash in the name is a level, so
/// `kubepods-burstable-pod1.slice` is
/// `kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod1.slice`
/// (runc's `ExpandSlice`, systemd.slice(5)); `-.slice` is the root. `None`
/// if `slice` is not a valid slice name.
pub fn expand_slice(slice: &str) -> Option<PathBuf> {
    let base = slice.strip_suffix(".slice")?;
    if slice.contains('/') {
        return None;
    }
    if base == "-" {
        return Some(PathBuf::new());
    }
    let mut path = PathBuf::new();
    let mut prefix = String::new();
    for part in base.split('-') {
        if part.is_empty() || part == "." || part == ".." {
            return None;
        }
        if !prefix.is_empty() {
            prefix.push('-');
        }
        prefix.push_str(part);
        path.push(format!("{prefix}.slice"));
    }
    Some(path)
}

fn read(path: &Path) -> Option<String> {
    std::fs::read_to_string(path).ok()
}

fn read_u64(path: &Path) -> Option<u64> {
    read(path)?.trim().parse().ok()
}

/// The value of `key` in a flat-keyed cgroup file (`key value` lines).
fn stat_value(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|l| {
        let (k, v) = l.split_once(' ')?;
        (k == key).then(|| v.trim().parse().ok()).flatten()
    })
}

/// A limit file's value; "max" and v1's near-2^63 "no limit" are 0.
fn unlimited_as_zero(text: &str) -> u64 {
    text.trim()
        .parse::<u64>()
        .ok()
        .filter(|l| *l < UNLIMITED)
        .unwrap_or(0)
}

/// cgroup v2 `cpu.weight` back to v1 shares, inverting runc's conversion
/// (`weight = 1 + (shares - 2) * 9999 / 262142`) as far as its rounding
/// allows: 1024 shares are weight 39, which reads back as 998.
fn weight_to_shares(weight: u64) -> u64 {
    2 + weight.saturating_sub(1) * 262_142 / 9999
}

/// v2 `io.stat`: `MAJ:MIN rbytes=.. wbytes=.. rios=.. wios=.. ...`.
fn parse_io_stat(text: &str) -> Vec<DeviceIo> {
    text.lines()
        .filter_map(|l| {
            let mut words = l.split_whitespace();
            let (major, minor) = words.next()?.split_once(':')?;
            let mut io = DeviceIo {
                major: major.parse().ok()?,
                minor: minor.parse().ok()?,
                ..Default::default()
            };
            for w in words {
                let Some((k, v)) = w.split_once('=') else {
                    continue;
                };
                let v = v.parse().unwrap_or(0);
                match k {
                    "rbytes" => io.read_bytes = v,
                    "wbytes" => io.write_bytes = v,
                    "rios" => io.reads = v,
                    "wios" => io.writes = v,
                    _ => {}
                }
            }
            Some(io)
        })
        .collect()
}

/// v1 `blkio.throttle.io_service_bytes` and `.io_serviced`: `MAJ:MIN Op N`
/// lines (Op Read, Write, ...; a final `Total N`).
fn parse_blkio(bytes: &str, ops: &str) -> Vec<DeviceIo> {
    let mut out: Vec<DeviceIo> = Vec::new();
    for (text, is_bytes) in [(bytes, true), (ops, false)] {
        for l in text.lines() {
            let f: Vec<&str> = l.split_whitespace().collect();
            let [dev, op, n] = f[..] else { continue };
            let Some((Ok(major), Ok(minor))) = dev
                .split_once(':')
                .map(|(a, b)| (a.parse::<u64>(), b.parse::<u64>()))
            else {
                continue;
            };
            let n: u64 = n.parse().unwrap_or(0);
            let pos = match out
                .iter()
                .position(|d| (d.major, d.minor) == (major, minor))
            {
                Some(pos) => pos,
                None => {
                    out.push(DeviceIo {
                        major,
                        minor,
                        ..Default::default()
                    });
                    out.len() - 1
                }
            };
            let d = &mut out[pos];
            match (op, is_bytes) {
                ("Read", true) => d.read_bytes = n,
                ("Write", true) => d.write_bytes = n,
                ("Read", false) => d.reads = n,
                ("Write", false) => d.writes = n,
                _ => {}
            }
        }
    }
    out
}

/// Size and inodes of the filesystem holding `path`:
/// `(bytes, inodes, free inodes)`.
pub fn filesystem_capacity(path: &Path) -> Option<(u64, u64, u64)> {
    let st = nix::sys::statvfs::statvfs(path).ok()?;
    Some((
        st.blocks() as u64 * st.fragment_size() as u64,
        st.files() as u64,
        st.files_free() as u64,
    ))
}

/// Previous CPU samples per container (or pod), for `usage_nano_cores`.
#[derive(Debug, Default)]
pub struct CpuSamples {
    last: Mutex<HashMap<String, (i64, u64)>>,
}

impl CpuSamples {
    /// Records `(timestamp, usage)` for `key` and returns the rate since
    /// the previous sample in nanocores; the first time, the average since
    /// `since` (the start time, ns since the epoch; 0 = unknown).
    pub fn rate(&self, key: &str, timestamp: i64, usage_ns: u64, since: i64) -> Option<u64> {
        let prev = self
            .last
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key.to_string(), (timestamp, usage_ns));
        let (t0, u0) = match prev {
            Some(p) if p.0 < timestamp && p.1 <= usage_ns => p,
            // Same instant or a counter reset (a restarted cgroup).
            Some(_) => return None,
            None if since > 0 && since < timestamp => (since, 0),
            None => return None,
        };
        let dt = (timestamp - t0) as u128;
        Some(((usage_ns - u0) as u128 * 1_000_000_000 / dt) as u64)
    }

    /// Forgets the samples of keys not in `keep`, so removed containers do
    /// not pile up.
    pub fn retain(&self, keep: impl Fn(&str) -> bool) {
        self.last
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|k, _| keep(k));
    }
}

/// Bytes and inodes used by a writable layer (the overlay upper dir),
/// counting each hard-linked inode once. Not following symlinks, not
/// crossing into other filesystems.
pub fn dir_usage(dir: &Path) -> Option<(u64, u64)> {
    let root = std::fs::symlink_metadata(dir).ok()?;
    let dev = root.dev();
    let mut seen = std::collections::HashSet::new();
    let (mut bytes, mut inodes) = (0u64, 0u64);
    let mut stack = vec![dir.to_path_buf()];
    seen.insert(root.ino());
    bytes += root.blocks() * 512;
    inodes += 1;
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let Ok(md) = e.metadata() else { continue };
            if md.dev() != dev || !seen.insert(md.ino()) {
                continue;
            }
            bytes += md.blocks() * 512;
            inodes += 1;
            if md.is_dir() {
                stack.push(e.path());
            }
        }
    }
    Some((bytes, inodes))
}

/// `(bytes, inodes)` of a writable layer.
pub type LayerUsage = (u64, u64);

/// Writable-layer usage per container, recomputed at most every `ttl`:
/// walking a large upper dir on every ListContainerStats would make the
/// kubelet's periodic stats calls cost O(files). (containerd refreshes
/// snapshot usage on a timer for the same reason.)
#[derive(Debug)]
pub struct LayerUsageCache {
    ttl: std::time::Duration,
    entries: Mutex<HashMap<PathBuf, (std::time::Instant, Option<LayerUsage>)>>,
}

impl LayerUsageCache {
    pub fn new(ttl: std::time::Duration) -> Self {
        LayerUsageCache {
            ttl,
            entries: Mutex::default(),
        }
    }

    /// `(bytes, inodes)` of `dir`, from the cache when fresh enough.
    pub fn usage(&self, dir: &Path) -> Option<(u64, u64)> {
        let now = std::time::Instant::now();
        if let Some((at, v)) = self
            .entries
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(dir)
            && now.duration_since(*at) < self.ttl
        {
            return *v;
        }
        let v = dir_usage(dir);
        self.entries
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(dir.to_path_buf(), (now, v));
        v
    }

    /// Forgets dirs not in `keep`.
    pub fn retain(&self, keep: impl Fn(&Path) -> bool) {
        self.entries
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|k, _| keep(k));
    }
}

/// Traffic of one network interface.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InterfaceUsage {
    pub name: String,
    pub rx_bytes: u64,
    pub rx_packets: u64,
    pub rx_errors: u64,
    pub rx_dropped: u64,
    pub tx_bytes: u64,
    pub tx_packets: u64,
    pub tx_errors: u64,
    pub tx_dropped: u64,
}

/// Parses `/proc/<pid>/net/dev`.
pub fn parse_net_dev(text: &str) -> Vec<InterfaceUsage> {
    text.lines()
        .skip(2)
        .filter_map(|l| {
            let (name, rest) = l.split_once(':')?;
            let f: Vec<u64> = rest
                .split_whitespace()
                .map(|v| v.parse().unwrap_or(0))
                .collect();
            // rx: bytes packets errs drop fifo frame compressed multicast,
            // tx: bytes packets errs ...
            (f.len() >= 12).then(|| InterfaceUsage {
                name: name.trim().to_string(),
                rx_bytes: f[0],
                rx_packets: f[1],
                rx_errors: f[2],
                rx_dropped: f[3],
                tx_bytes: f[8],
                tx_packets: f[9],
                tx_errors: f[10],
                tx_dropped: f[11],
            })
        })
        .collect()
}

/// Interface counters of the network namespace `pid` lives in.
pub fn net_dev_of_pid(pid: i32) -> Option<Vec<InterfaceUsage>> {
    read(&PathBuf::from(format!("/proc/{pid}/net/dev"))).map(|t| parse_net_dev(&t))
}

/// Interface counters of a pinned network namespace, read by a short-lived
/// thread that joins it (threads, unlike forks, are safe in tokio; the
/// thread ends right after so no other work runs in the pod's netns).
pub fn net_dev_of_netns(netns: &Path) -> Option<Vec<InterfaceUsage>> {
    let ns = std::fs::File::open(netns).ok()?;
    std::thread::spawn(move || {
        // Joining a network namespace is per thread; /proc/thread-self/net
        // then shows this thread's namespace, not the process's.
        nix::sched::setns(&ns, nix::sched::CloneFlags::CLONE_NEWNET).ok()?;
        read(Path::new("/proc/thread-self/net/dev")).map(|t| parse_net_dev(&t))
    })
    .join()
    .ok()
    .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) {
        std::fs::create_dir_all(dir).unwrap();
        std::fs::write(dir.join(name), text).unwrap();
    }

    #[test]
    fn v2_fixture() {
        let root = tempfile::tempdir().unwrap();
        let d = root.path().join("kubepods/pod1/crius-abc");
        write(
            &d,
            "cpu.stat",
            "usage_usec 2500\nuser_usec 2000\nsystem_usec 500\n",
        );
        write(&d, "memory.current", "10485760\n");
        write(
            &d,
            "memory.stat",
            "anon 4096000\nfile 6000000\ninactive_file 1048576\npgfault 321\npgmajfault 7\n",
        );
        write(&d, "memory.max", "max\n");
        write(&d, "pids.current", "3\n");
        let cg = Cgroups::new(root.path(), true);
        let u = cg.usage("/kubepods/pod1/crius-abc");
        assert_eq!(u.cpu_usage_ns, Some(2_500_000));
        assert_eq!(u.pids, Some(3));
        let m = u.memory.unwrap();
        assert_eq!(m.usage, 10_485_760);
        assert_eq!(m.working_set, 10_485_760 - 1_048_576);
        assert_eq!(m.rss, 4_096_000);
        assert_eq!((m.page_faults, m.major_page_faults), (321, 7));
        assert_eq!(m.limit, None);
        assert_eq!(m.available(), None);
        write(&d, "memory.max", "20971520\n");
        let m = cg.usage("/kubepods/pod1/crius-abc").memory.unwrap();
        assert_eq!(m.available(), Some(20_971_520 - (10_485_760 - 1_048_576)));
        // No swap files: no swap figures.
        assert_eq!(u.swap, None);
        write(&d, "memory.swap.current", "65536\n");
        write(&d, "memory.swap.max", "max\n");
        let swap = cg.usage("/kubepods/pod1/crius-abc").swap.unwrap();
        assert_eq!(
            (swap.usage, swap.limit, swap.available()),
            (65536, None, None)
        );
        write(&d, "memory.swap.max", "1048576\n");
        let swap = cg.usage("/kubepods/pod1/crius-abc").swap.unwrap();
        assert_eq!(swap.available(), Some(1_048_576 - 65536));
    }

    #[test]
    fn v1_fixture() {
        let root = tempfile::tempdir().unwrap();
        let rel = "crius/crius-abc";
        write(
            &root.path().join("cpuacct").join(rel),
            "cpuacct.usage",
            "123456789\n",
        );
        let mem = root.path().join("memory").join(rel);
        write(&mem, "memory.usage_in_bytes", "8192000\n");
        write(&mem, "memory.limit_in_bytes", "9223372036854771712\n");
        write(
            &mem,
            "memory.stat",
            "cache 100\nrss 1\ninactive_file 5\ntotal_cache 4096\ntotal_rss 409600\n\
             total_inactive_file 8192\ntotal_pgfault 55\ntotal_pgmajfault 2\n",
        );
        write(&root.path().join("pids").join(rel), "pids.current", "1\n");
        let u = Cgroups::new(root.path(), false).usage(rel);
        assert_eq!(u.cpu_usage_ns, Some(123_456_789));
        assert_eq!(u.pids, Some(1));
        let m = u.memory.unwrap();
        assert_eq!(m.working_set, 8_192_000 - 8192);
        assert_eq!(m.rss, 409_600);
        assert_eq!((m.page_faults, m.major_page_faults), (55, 2));
        assert_eq!(m.limit, None);
        assert_eq!(u.swap, None);
        // With swap accounting: memsw is memory plus swap.
        write(&mem, "memory.memsw.usage_in_bytes", "8200192\n");
        write(&mem, "memory.memsw.limit_in_bytes", "9223372036854771712\n");
        let cg = Cgroups::new(root.path(), false);
        let swap = cg.usage(rel).swap.unwrap();
        assert_eq!((swap.usage, swap.limit), (8192, None));
        write(&mem, "memory.limit_in_bytes", "16777216\n");
        write(&mem, "memory.memsw.limit_in_bytes", "33554432\n");
        let swap = cg.usage(rel).swap.unwrap();
        assert_eq!(swap.limit, Some(16_777_216));
        assert_eq!(swap.available(), Some(16_777_216 - 8192));
    }

    #[test]
    fn missing_cgroup_and_hostile_paths() {
        let root = tempfile::tempdir().unwrap();
        let cg = Cgroups::new(root.path(), false);
        assert_eq!(cg.usage("/gone"), CgroupUsage::default());
        assert_eq!(cg.dir("memory", "/a/../../etc"), None);
        assert_eq!(cg.dir("memory", "a.slice:crius:x:y"), None);
        assert_eq!(cg.dir("memory", "a.slice:crius:"), None);
        assert_eq!(cg.dir("memory", "a.slice:crius:../x"), None);
        assert_eq!(cg.dir("memory", "../a.slice:crius:x"), None);
        assert_eq!(cg.dir("memory", "a--b.slice:crius:x"), None);
        assert_eq!(cg.dir("memory", "a-..-b.slice"), None);
        assert_eq!(cg.dir("memory", "kubepods:crius:x"), None);
    }

    #[test]
    fn systemd_slices_expand_to_their_hierarchy() {
        let exp = |s: &str| expand_slice(s).map(|p| p.display().to_string());
        assert_eq!(exp("-.slice").as_deref(), Some(""));
        assert_eq!(exp("system.slice").as_deref(), Some("system.slice"));
        assert_eq!(
            exp("kubepods-burstable-pod123.slice").as_deref(),
            Some("kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod123.slice")
        );
        assert_eq!(exp("kubepods"), None);
        assert_eq!(exp("-kubepods.slice"), None);
        assert_eq!(exp("kubepods-.slice"), None);

        for (given, dir) in [
            (
                "kubepods-besteffort-pod9.slice:crius:abc",
                "kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod9.slice/crius-abc.scope",
            ),
            (":crius:abc", "system.slice/crius-abc.scope"),
            ("kubepods.slice::abc", "kubepods.slice/abc.scope"),
            (
                "kubepods.slice:crius:kubepods-pod1.slice",
                "kubepods.slice/kubepods-pod1.slice",
            ),
            // A pod's parent as the kubelet's systemd driver gives it.
            ("kubepods-pod1.slice", "kubepods.slice/kubepods-pod1.slice"),
            // cgroupfs paths are unchanged, even if a component ends in .slice.
            ("/kubepods/pod1/crius-abc", "kubepods/pod1/crius-abc"),
            ("/a/b.slice", "a/b.slice"),
        ] {
            assert_eq!(cgroup_rel(given), Some(PathBuf::from(dir)), "{given}");
        }
    }

    #[test]
    fn stats_of_a_systemd_scope() {
        let root = tempfile::tempdir().unwrap();
        let scope = root.path().join(
            "kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod1.slice/crius-abc.scope",
        );
        write(&scope, "cpu.stat", "usage_usec 7\n");
        write(&scope, "memory.current", "4096\n");
        write(&scope, "pids.current", "2\n");
        let cg = Cgroups::new(root.path(), true);
        let u = cg.usage("kubepods-burstable-pod1.slice:crius:abc");
        assert_eq!(u.cpu_usage_ns, Some(7000));
        assert_eq!(u.memory.map(|m| m.usage), Some(4096));
        assert_eq!(u.pids, Some(2));
        // The pod's slice, as PodSandboxStats reads it.
        let pod = scope.parent().unwrap();
        write(pod, "cpu.stat", "usage_usec 9\n");
        assert_eq!(
            cg.usage("kubepods-burstable-pod1.slice").cpu_usage_ns,
            Some(9000)
        );
    }

    #[test]
    fn nano_cores_from_successive_samples() {
        let s = CpuSamples::default();
        // First sample: average since the start (1 s, half a core).
        assert_eq!(
            s.rate("c", 2_000_000_000, 500_000_000, 1_000_000_000),
            Some(500_000_000)
        );
        // 1 s later, 2 cores busy.
        assert_eq!(
            s.rate("c", 3_000_000_000, 2_500_000_000, 0),
            Some(2_000_000_000)
        );
        // Counter went back: no rate.
        assert_eq!(s.rate("c", 4_000_000_000, 1, 0), None);
        assert_eq!(s.rate("d", 1, 1, 0), None);
        s.retain(|k| k == "d");
        assert_eq!(s.rate("c", 5_000_000_000, 1, 0), None);
    }

    #[test]
    fn net_dev() {
        let text = "Inter-|   Receive                                                |  Transmit\n \
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed\n    \
lo:    1000      10    0    0    0     0          0         0     1000      10    0    0    0     0       0          0\n  \
eth0: 5000 40 1 3 0 0 0 0 7000 50 2 4 0 0 0 0\n";
        let v = parse_net_dev(text);
        assert_eq!(v.len(), 2);
        assert_eq!(v[0].name, "lo");
        assert_eq!(
            v[1],
            InterfaceUsage {
                name: "eth0".into(),
                rx_bytes: 5000,
                rx_packets: 40,
                rx_errors: 1,
                rx_dropped: 3,
                tx_bytes: 7000,
                tx_packets: 50,
                tx_errors: 2,
                tx_dropped: 4,
            }
        );
    }

    fn write_files(dir: &Path, files: &[(&str, &str)]) {
        for (name, text) in files {
            let path = dir.join(name);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        }
    }

    #[test]
    fn detail_v2() {
        let root = tempfile::tempdir().unwrap();
        write_files(
            &root.path().join("pod/c"),
            &[
                (
                    "cpu.stat",
                    "usage_usec 9\nuser_usec 5\nsystem_usec 4\nnr_periods 7\nnr_throttled 2\nthrottled_usec 30\n",
                ),
                ("cpu.max", "20000 100000\n"),
                ("cpu.weight", "39\n"),
                (
                    "memory.stat",
                    "anon 1\nfile 100\nfile_mapped 20\nkernel 300\n",
                ),
                ("memory.events", "low 0\nhigh 0\nmax 6\noom 1\noom_kill 1\n"),
                ("memory.peak", "4096\n"),
                ("memory.max", "67108864\n"),
                ("memory.swap.max", "max\n"),
                ("pids.current", "3\n"),
                ("pids.max", "max\n"),
                (
                    "io.stat",
                    "8:0 rbytes=10 wbytes=20 rios=1 wios=2 dbytes=0 dios=0\n",
                ),
            ],
        );
        let d = Cgroups::new(root.path(), true).detail("/pod/c");
        assert_eq!(
            d,
            CgroupDetail {
                cfs_periods: Some(7),
                cfs_throttled_periods: Some(2),
                cfs_throttled_ns: Some(30_000),
                cpu_user_ns: Some(5000),
                cpu_system_ns: Some(4000),
                cpu_period_us: Some(100_000),
                cpu_shares: Some(998),
                memory_cache: Some(100),
                memory_mapped_file: Some(20),
                memory_kernel: Some(300),
                memory_max_usage: Some(4096),
                memory_failcnt: Some(6),
                oom_kills: Some(1),
                memory_limit: Some(64 << 20),
                swap_limit: Some(0),
                threads: Some(3),
                threads_max: Some(0),
                io: vec![DeviceIo {
                    major: 8,
                    minor: 0,
                    read_bytes: 10,
                    write_bytes: 20,
                    reads: 1,
                    writes: 2,
                }],
            }
        );
    }

    #[test]
    fn detail_v1() {
        let root = tempfile::tempdir().unwrap();
        let r = root.path();
        write_files(
            r,
            &[
                (
                    "cpu/pod/c/cpu.stat",
                    "nr_periods 7\nnr_throttled 2\nthrottled_time 30\n",
                ),
                ("cpu/pod/c/cpu.cfs_period_us", "100000\n"),
                ("cpu/pod/c/cpu.shares", "1024\n"),
                ("cpuacct/pod/c/cpuacct.stat", "user 5\nsystem 4\n"),
                (
                    "memory/pod/c/memory.stat",
                    "cache 1\ntotal_cache 100\ntotal_mapped_file 20\n",
                ),
                ("memory/pod/c/memory.kmem.usage_in_bytes", "300\n"),
                ("memory/pod/c/memory.max_usage_in_bytes", "4096\n"),
                ("memory/pod/c/memory.failcnt", "6\n"),
                (
                    "memory/pod/c/memory.oom_control",
                    "oom_kill_disable 0\nunder_oom 0\noom_kill 1\n",
                ),
                (
                    "memory/pod/c/memory.limit_in_bytes",
                    "9223372036854771712\n",
                ),
                ("memory/pod/c/memory.memsw.limit_in_bytes", "67108864\n"),
                ("pids/pod/c/pids.current", "3\n"),
                ("pids/pod/c/pids.max", "max\n"),
                (
                    "blkio/pod/c/blkio.throttle.io_service_bytes",
                    "8:0 Read 10\n8:0 Write 20\n8:0 Total 30\nTotal 30\n",
                ),
                (
                    "blkio/pod/c/blkio.throttle.io_serviced",
                    "8:0 Read 1\n8:0 Write 2\nTotal 3\n",
                ),
            ],
        );
        let d = Cgroups::new(r, false).detail("/pod/c");
        assert_eq!(d.cfs_throttled_ns, Some(30));
        assert_eq!(d.cpu_user_ns, Some(50_000_000));
        assert_eq!(d.cpu_system_ns, Some(40_000_000));
        assert_eq!((d.cpu_period_us, d.cpu_shares), (Some(100_000), Some(1024)));
        assert_eq!(
            (d.memory_cache, d.memory_mapped_file),
            (Some(100), Some(20))
        );
        assert_eq!(
            (d.memory_kernel, d.memory_max_usage),
            (Some(300), Some(4096))
        );
        assert_eq!((d.memory_failcnt, d.oom_kills), (Some(6), Some(1)));
        assert_eq!((d.memory_limit, d.swap_limit), (Some(0), Some(64 << 20)));
        assert_eq!((d.threads, d.threads_max), (Some(3), Some(0)));
        assert_eq!(
            d.io,
            [DeviceIo {
                major: 8,
                minor: 0,
                read_bytes: 10,
                write_bytes: 20,
                reads: 1,
                writes: 2,
            }]
        );
        // A cgroup that is gone: nothing, no error.
        assert_eq!(
            Cgroups::new(r, false).detail("/gone"),
            CgroupDetail::default()
        );
    }

    #[test]
    fn weight_to_shares_inverts_runc() {
        assert_eq!(weight_to_shares(1), 2);
        assert_eq!(weight_to_shares(10_000), 262_144);
        for shares in [512u64, 1024, 4096] {
            let weight = 1 + ((shares - 2) * 9999) / 262_142;
            let back = weight_to_shares(weight);
            assert!(back <= shares && shares - back < 27, "{shares} {back}");
        }
    }

    #[test]
    fn open_files_of_this_process() {
        let root = tempfile::tempdir().unwrap();
        write_files(
            root.path(),
            &[("pids/c/cgroup.procs", &format!("{}\n", std::process::id()))],
        );
        let _socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let (fds, sockets) = Cgroups::new(root.path(), false).open_files("/c").unwrap();
        assert!(fds > sockets && sockets >= 1, "{fds} {sockets}");
        assert!(filesystem_capacity(root.path()).is_some_and(|(b, i, _)| b > 0 && i > 0));
    }

    #[test]
    fn writable_layer_usage_counts_inodes_once() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir(d.path().join("sub")).unwrap();
        std::fs::write(d.path().join("sub/f"), vec![1u8; 10_000]).unwrap();
        std::fs::hard_link(d.path().join("sub/f"), d.path().join("g")).unwrap();
        let (bytes, inodes) = dir_usage(d.path()).unwrap();
        assert_eq!(inodes, 3);
        assert!(bytes >= 10_000, "{bytes}");
        assert_eq!(dir_usage(&d.path().join("nope")), None);
    }

    #[test]
    fn layer_usage_is_cached_for_its_ttl() {
        let d = tempfile::tempdir().unwrap();
        let cache = LayerUsageCache::new(std::time::Duration::from_secs(3600));
        let (_, inodes) = cache.usage(d.path()).unwrap();
        assert_eq!(inodes, 1);
        std::fs::write(d.path().join("f"), "x").unwrap();
        assert_eq!(cache.usage(d.path()).unwrap().1, 1);
        let fresh = LayerUsageCache::new(std::time::Duration::ZERO);
        assert_eq!(fresh.usage(d.path()).unwrap().1, 2);
        cache.retain(|_| false);
        assert_eq!(cache.usage(d.path()).unwrap().1, 2);
    }

    #[test]
    fn net_dev_of_own_netns() {
        let v = net_dev_of_netns(Path::new("/proc/self/ns/net")).unwrap();
        assert!(v.iter().any(|i| i.name == "lo"), "{v:?}");
        assert!(net_dev_of_pid(std::process::id() as i32).is_some());
    }
}
