//! Pod sandbox benchmark: RunPodSandbox / StopPodSandbox / RemovePodSandbox
//! latency (median, p95) over N pods, sequentially and P at a time, and the
//! runtime's memory with N pods up.
//!
//! By default it starts crius itself (`$CRIUS_BIN`, build with
//! `cargo build --release` for real numbers) in temp dirs with a bridge
//! conflist on `crius-bench0` / 10.88.250.0/24. With `--socket PATH --pid
//! PID` it drives another CRI runtime (e.g. containerd) that the caller has
//! set up with an equivalent CNI config. `--helpers SUBSTR` names the
//! per-pod helper processes (by command line) whose RSS is summed too.
//!
//! Must run as root. Prints a Markdown table. Run with `RUST_LOG=warn` so
//! that the daemon's debug log (the harness default) does not skew it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crius_e2e::bench::{Target, TargetArgs, latency_cells, parse_flags, pss_kib, rss_kib, timed};
use crius_e2e::require_root;
use crius_proto::runtime_service_client::RuntimeServiceClient;
use crius_proto::*;
use tonic::transport::Channel;

struct Args {
    pods: usize,
    parallel: usize,
    target: TargetArgs,
}

fn parse_args() -> Args {
    let (mut pods, mut parallel) = (100, 10);
    let target = parse_flags(|flag, value| {
        match flag {
            "--pods" => pods = value().parse().expect("--pods N"),
            "--parallel" => parallel = value().parse().expect("--parallel N"),
            _ => return false,
        }
        true
    });
    Args {
        pods,
        parallel,
        target,
    }
}

fn config(i: usize, run: &str) -> PodSandboxConfig {
    PodSandboxConfig {
        metadata: Some(PodSandboxMetadata {
            name: format!("bench-{run}-{i}"),
            uid: format!("uid-bench-{run}-{i}"),
            namespace: "bench".into(),
            attempt: 0,
        }),
        hostname: format!("bench-{i}"),
        log_directory: format!("/tmp/crius-bench-logs/{run}-{i}"),
        linux: Some(LinuxPodSandboxConfig::default()),
        ..Default::default()
    }
}

async fn run_one(
    client: &mut RuntimeServiceClient<Channel>,
    cfg: PodSandboxConfig,
) -> (String, Duration) {
    let (resp, d) = timed(client.run_pod_sandbox(RunPodSandboxRequest {
        config: Some(cfg),
        runtime_handler: String::new(),
    }))
    .await;
    (resp.into_inner().pod_sandbox_id, d)
}

async fn stop_one(client: &mut RuntimeServiceClient<Channel>, id: &str) -> Duration {
    timed(client.stop_pod_sandbox(StopPodSandboxRequest {
        pod_sandbox_id: id.into(),
    }))
    .await
    .1
}

async fn remove_one(client: &mut RuntimeServiceClient<Channel>, id: &str) -> Duration {
    timed(client.remove_pod_sandbox(RemovePodSandboxRequest {
        pod_sandbox_id: id.into(),
    }))
    .await
    .1
}

struct Phase {
    name: &'static str,
    samples: Vec<Duration>,
    wall: Duration,
}

/// Runs `op` over `ids` with `parallel` workers, each with its own client.
async fn parallel_phase<F, Fut>(
    channel: &Channel,
    items: Vec<usize>,
    parallel: usize,
    op: F,
) -> (Vec<(usize, String, Duration)>, Duration)
where
    F: Fn(RuntimeServiceClient<Channel>, usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = (String, Duration)> + Send,
{
    let op = Arc::new(op);
    let queue = Arc::new(std::sync::Mutex::new(items));
    let start = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..parallel {
        let (op, queue, channel) = (op.clone(), queue.clone(), channel.clone());
        workers.push(tokio::spawn(async move {
            let mut out = Vec::new();
            loop {
                let Some(i) = queue.lock().unwrap().pop() else {
                    break;
                };
                let (id, d) = op(RuntimeServiceClient::new(channel.clone()), i).await;
                out.push((i, id, d));
            }
            out
        }));
    }
    let mut all = Vec::new();
    for w in workers {
        all.extend(w.await.unwrap());
    }
    (all, start.elapsed())
}

#[tokio::main]
async fn main() {
    require_root();
    let args = parse_args();
    let target = Target::start(args.target, |dirs| {
        vec![format!("--ns-dir {}", dirs.runroot().join("ns").display())]
    })
    .await;
    let (channel, pid) = (target.channel.clone(), target.pid);
    let mut client = RuntimeServiceClient::new(channel.clone());
    let idle_rss = rss_kib(pid);

    // Sequential.
    let mut phases = Vec::new();
    let mut ids = Vec::new();
    let mut samples = Vec::new();
    let start = Instant::now();
    for i in 0..args.pods {
        let (id, d) = run_one(&mut client, config(i, "seq")).await;
        ids.push(id);
        samples.push(d);
    }
    phases.push(Phase {
        name: "RunPodSandbox (sequential)",
        samples,
        wall: start.elapsed(),
    });
    let full_rss = rss_kib(pid);
    let full_pss = pss_kib(pid);
    let helper_rss = target.helpers_memory();
    for (name, remove) in [
        ("StopPodSandbox (sequential)", false),
        ("RemovePodSandbox (sequential)", true),
    ] {
        let mut samples = Vec::new();
        let start = Instant::now();
        for id in &ids {
            samples.push(if remove {
                remove_one(&mut client, id).await
            } else {
                stop_one(&mut client, id).await
            });
        }
        phases.push(Phase {
            name,
            samples,
            wall: start.elapsed(),
        });
    }

    // Parallel.
    let (ran, wall) = parallel_phase(
        &channel,
        (0..args.pods).collect(),
        args.parallel,
        |mut c, i| async move { run_one(&mut c, config(i, "par")).await },
    )
    .await;
    phases.push(Phase {
        name: "RunPodSandbox (parallel)",
        samples: ran.iter().map(|r| r.2).collect(),
        wall,
    });
    let ids: Arc<Vec<String>> = Arc::new(ran.into_iter().map(|r| r.1).collect());
    for (name, remove) in [
        ("StopPodSandbox (parallel)", false),
        ("RemovePodSandbox (parallel)", true),
    ] {
        let ids2 = ids.clone();
        let (done, wall) = parallel_phase(
            &channel,
            (0..ids.len()).collect(),
            args.parallel,
            move |mut c, i| {
                let id = ids2[i].clone();
                async move {
                    let d = if remove {
                        remove_one(&mut c, &id).await
                    } else {
                        stop_one(&mut c, &id).await
                    };
                    (id, d)
                }
            },
        )
        .await;
        phases.push(Phase {
            name,
            samples: done.iter().map(|r| r.2).collect(),
            wall,
        });
    }

    println!(
        "### {} — {} pods, parallelism {}\n",
        target.label, args.pods, args.parallel
    );
    println!("| operation | median ms | p95 ms | max ms | wall s |");
    println!("|---|---|---|---|---|");
    for mut p in phases {
        println!(
            "| {} | {} | {:.2} |",
            p.name,
            latency_cells(&mut p.samples),
            p.wall.as_secs_f64()
        );
    }
    println!();
    println!("| memory | KiB |");
    println!("|---|---|");
    println!("| daemon RSS, no pods | {idle_rss} |");
    println!("| daemon RSS, {} pods | {full_rss} |", args.pods);
    println!("| daemon PSS, {} pods | {full_pss} |", args.pods);
    if let Some((count, rss, pss)) = helper_rss {
        println!("| per-pod helper processes ({count}), summed RSS | {rss} |");
        println!("| per-pod helper processes ({count}), summed PSS | {pss} |");
    }
    drop(client);
    drop(channel);
    drop(target);
}
