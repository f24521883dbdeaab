//! What the benchmark binaries (`sandbox-bench`, `container-bench`) share:
//! the runtime under test (crius started in temp dirs with a bridge network,
//! or any CRI socket given with `--socket PATH --pid PID`), latency
//! summaries, and memory readings from `/proc`.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tonic::transport::Channel;

use crate::{Daemon, Dirs, connect};

/// The bridge of the network crius gets when the bench starts it; the
/// containerd script uses `crius-bench1` so that the two never meet.
pub const BRIDGE: &str = "crius-bench0";

/// A bridge + host-local (ipMasq) + portmap + loopback chain on [`BRIDGE`],
/// 10.88.250.0/24, leases kept in `ipam_dir`.
pub fn bridge_conflist(ipam_dir: &Path) -> String {
    serde_json::json!({
        "cniVersion": "1.0.0",
        "name": "crius-bench",
        "plugins": [
            {
                "type": "bridge", "bridge": BRIDGE, "isGateway": true, "ipMasq": true,
                "ipam": {
                    "type": "host-local", "dataDir": ipam_dir,
                    "routes": [{"dst": "0.0.0.0/0"}],
                    "ranges": [[{"subnet": "10.88.250.0/24"}]]
                }
            },
            {"type": "portmap", "capabilities": {"portMappings": true}},
            {"type": "loopback"}
        ]
    })
    .to_string()
}

/// The command line flags that choose the runtime under test.
pub struct TargetArgs {
    socket: Option<String>,
    pid: Option<u32>,
    helpers: Vec<String>,
    pub label: String,
}

impl Default for TargetArgs {
    fn default() -> Self {
        TargetArgs {
            socket: None,
            pid: None,
            helpers: Vec::new(),
            label: "crius".into(),
        }
    }
}

impl TargetArgs {
    /// Takes `flag` (reading its value with `value`) if it is one of
    /// `--socket PATH`, `--pid PID`, `--helpers SUBSTR` (repeatable: a
    /// helper process's command line must contain every one) or
    /// `--label TEXT`; false if the flag is not one of these.
    fn take(&mut self, flag: &str, value: &mut dyn FnMut() -> String) -> bool {
        match flag {
            "--socket" => self.socket = Some(value()),
            "--pid" => self.pid = Some(value().parse().expect("--pid PID")),
            "--helpers" => self.helpers.push(value()),
            "--label" => self.label = value(),
            _ => return false,
        }
        true
    }
}

/// Reads the command line: the [`TargetArgs`] flags, and every other flag
/// through `other(flag, value)`, which reads the flag's value with `value`
/// and answers false for a flag it does not know.
pub fn parse_flags(mut other: impl FnMut(&str, &mut dyn FnMut() -> String) -> bool) -> TargetArgs {
    let mut target = TargetArgs::default();
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().unwrap_or_else(|| panic!("{flag} needs a value"));
        if !target.take(&flag, &mut value) && !other(&flag, &mut value) {
            panic!("unknown flag {flag}");
        }
    }
    target
}

/// The runtime being measured. When the bench started crius itself, dropping
/// this stops it and deletes [`BRIDGE`].
pub struct Target {
    pub dirs: Arc<Dirs>,
    pub channel: Channel,
    /// The runtime daemon, whose memory is reported.
    pub pid: u32,
    /// Substrings that together pick out the runtime's per-pod or
    /// per-container helper processes (conmon, shims, infra processes) by
    /// command line; empty when none were named.
    pub helpers: Vec<String>,
    pub label: String,
    daemon: Option<Daemon>,
}

impl Target {
    /// Connects to `--socket`, or starts crius (`$CRIUS_BIN`) in fresh temp
    /// dirs on the bench bridge network; `crius_helpers` gives the helper
    /// patterns for a crius started here when `--helpers` was not given.
    pub async fn start(args: TargetArgs, crius_helpers: impl FnOnce(&Dirs) -> Vec<String>) -> Self {
        let dirs = Dirs::new();
        let (daemon, channel, pid) = match &args.socket {
            None => {
                let conflist = bridge_conflist(&dirs.base.path().join("ipam"));
                std::fs::write(dirs.cni_config_dir().join("10-bench.conflist"), conflist)
                    .expect("write bench conflist");
                let daemon =
                    Daemon::start_with(dirs.clone(), &["--cni-plugin-dir", "/usr/lib/cni"]).await;
                let channel = daemon.channel().await;
                let pid = daemon.pid();
                (Some(daemon), channel, pid)
            }
            Some(socket) => {
                let channel = connect(Path::new(socket))
                    .await
                    .expect("connect to --socket");
                (
                    None,
                    channel,
                    args.pid.expect("--pid of the runtime daemon"),
                )
            }
        };
        let helpers = match (&daemon, args.helpers.is_empty()) {
            (Some(_), true) => crius_helpers(&dirs),
            _ => args.helpers,
        };
        Target {
            dirs,
            channel,
            pid,
            helpers,
            label: args.label,
            daemon,
        }
    }

    /// Count, summed RSS and summed PSS (KiB) of the helper processes.
    pub fn helpers_memory(&self) -> Option<(usize, u64, u64)> {
        if self.helpers.is_empty() {
            return None;
        }
        let (mut count, mut rss, mut pss) = (0, 0, 0);
        let me = std::process::id();
        for entry in std::fs::read_dir("/proc").unwrap().flatten() {
            let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
                continue;
            };
            // Our own command line may carry the pattern (--helpers), and
            // the daemon's names the same dirs as its helpers.
            if pid == me || pid == self.pid {
                continue;
            }
            let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
            let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            if self.helpers.iter().all(|p| cmdline.contains(p.as_str())) {
                count += 1;
                rss += rss_kib(pid);
                pss += pss_kib(pid);
            }
        }
        Some((count, rss, pss))
    }
}

impl Drop for Target {
    fn drop(&mut self) {
        if let Some(daemon) = self.daemon.take() {
            drop(daemon);
            let _ = std::process::Command::new("ip")
                .args(["link", "del", BRIDGE])
                .output();
        }
    }
}

/// Awaits one CRI call, panicking on error, and times it.
pub async fn timed<T, F: std::future::Future<Output = Result<T, tonic::Status>>>(
    f: F,
) -> (T, Duration) {
    let start = Instant::now();
    let out = f.await.unwrap_or_else(|s| panic!("CRI call failed: {s:?}"));
    (out, start.elapsed())
}

/// The `p` quantile (0..=1) of `samples`, nearest rank; sorts them.
pub fn percentile(samples: &mut [Duration], p: f64) -> Duration {
    samples.sort();
    let idx = ((samples.len() as f64 - 1.0) * p).round() as usize;
    samples[idx]
}

/// Milliseconds with one decimal.
pub fn ms(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1000.0)
}

/// `median | p95 | max` cells (ms) of a Markdown table row.
pub fn latency_cells(samples: &mut [Duration]) -> String {
    let (median, p95) = (percentile(samples, 0.5), percentile(samples, 0.95));
    let max = samples.last().copied().unwrap_or_default();
    format!("{} | {} | {}", ms(median), ms(p95), ms(max))
}

fn status_kib(pid: u32, file: &str, key: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/{file}"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(key))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

pub fn rss_kib(pid: u32) -> u64 {
    status_kib(pid, "status", "VmRSS:")
}

/// Proportional set size: shared pages (the mapped binary) split among the
/// processes sharing them, so N helpers are not charged N times for one file.
pub fn pss_kib(pid: u32) -> u64 {
    status_kib(pid, "smaps_rollup", "Pss:")
}
