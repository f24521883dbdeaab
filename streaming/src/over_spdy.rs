//! Exec, attach and port-forward sessions on an upgraded SPDY/3.1
//! connection, as Kubernetes' `remotecommand` and `portforward` packages
//! speak them.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::backend::{Backend, Streams};
use crate::remotecommand::{self, Command, Outcome, StreamOptions};
use crate::server::Config;
use crate::spdy::{self, Connection, Role, Stream};

/// Protocol versions we serve for exec/attach, most preferred first.
pub(crate) const REMOTECOMMAND_PROTOCOLS: &[&str] = &[
    "v4.channel.k8s.io",
    "v3.channel.k8s.io",
    "v2.channel.k8s.io",
    "channel.k8s.io",
];

/// The port-forward protocol.
pub(crate) const PORTFORWARD_PROTOCOL: &str = "portforward.k8s.io";

fn protocol_version(protocol: &str) -> u8 {
    match protocol {
        "v4.channel.k8s.io" => 4,
        "v3.channel.k8s.io" => 3,
        "v2.channel.k8s.io" => 2,
        _ => 1,
    }
}

fn options(cfg: &Config) -> spdy::Options {
    spdy::Options {
        idle_timeout: Some(cfg.idle_timeout),
        ping_interval: Some(cfg.ping_interval),
        ..Default::default()
    }
}

#[derive(Default)]
struct Received {
    error: Option<Stream>,
    stdin: Option<Stream>,
    stdout: Option<Stream>,
    stderr: Option<Stream>,
    resize: Option<Stream>,
}

impl Received {
    fn count(&self) -> usize {
        [
            self.error.is_some(),
            self.stdin.is_some(),
            self.stdout.is_some(),
            self.stderr.is_some(),
            self.resize.is_some(),
        ]
        .iter()
        .filter(|b| **b)
        .count()
    }
}

/// Serves one exec or attach session; returns when it is over.
pub(crate) async fn serve_remotecommand<T>(
    io: T,
    protocol: String,
    command: Command,
    opts: StreamOptions,
    backend: Arc<dyn Backend>,
    cfg: Arc<Config>,
    shutdown: CancellationToken,
) where
    T: AsyncRead + AsyncWrite + Send + 'static,
{
    let version = protocol_version(&protocol);
    let (conn, mut incoming) = Connection::new(io, Role::Server, options(&cfg));
    let resize_supported = version >= 3;
    let expected = 1
        + usize::from(opts.stdin)
        + usize::from(opts.stdout)
        + usize::from(opts.stderr)
        + usize::from(opts.tty && resize_supported);

    let mut got = Received::default();
    let deadline = tokio::time::sleep(cfg.stream_creation_timeout);
    tokio::pin!(deadline);
    while got.count() < expected {
        let stream = tokio::select! {
            s = incoming.accept() => match s {
                Some(s) => s,
                None => return,
            },
            _ = &mut deadline => {
                tracing::debug!(%protocol, "timed out waiting for the client to create streams");
                drop(got);
                conn.close().await;
                return;
            }
            _ = shutdown.cancelled() => {
                drop(got);
                conn.close().await;
                return;
            }
        };
        let kind = stream.headers().get("streamtype").unwrap_or("").to_owned();
        let slot = match kind.as_str() {
            "error" => &mut got.error,
            "stdin" if opts.stdin => &mut got.stdin,
            "stdout" if opts.stdout => &mut got.stdout,
            "stderr" if opts.stderr => &mut got.stderr,
            "resize" if opts.tty && resize_supported => &mut got.resize,
            _ => {
                tracing::debug!(%kind, "unexpected stream type, resetting");
                stream.reset();
                continue;
            }
        };
        if slot.is_some() {
            stream.reset();
        } else {
            *slot = Some(stream);
        }
    }
    // The incoming queue is not needed any more; further streams are refused
    // by dropping them.
    drop(incoming);

    let mut streams = Streams {
        stdin: got.stdin.take().map(|s| Box::new(s) as _),
        stdout: got.stdout.take().map(|s| Box::new(s) as _),
        stderr: got.stderr.take().map(|s| Box::new(s) as _),
        resize: None,
    };
    if let Some(resize) = got.resize.take() {
        let (tx, rx) = mpsc::channel(16);
        streams.resize = Some(rx);
        tokio::spawn(remotecommand::pump_resize(resize, tx));
    }
    let cancel = {
        let conn = conn.clone();
        let shutdown = shutdown.clone();
        async move {
            tokio::select! {
                _ = conn.closed() => {}
                _ = shutdown.cancelled() => {}
            }
        }
    };
    let outcome = remotecommand::run(&*backend, &command, opts.tty, streams, cancel).await;
    match outcome {
        Some(outcome) => {
            if let Some(mut error) = got.error.take() {
                let status = if version >= 4 {
                    Some(outcome.status_v4())
                } else {
                    outcome.status_v1()
                };
                if let Some(status) = status {
                    let _ = error.write_all(&status).await;
                }
                let _ = error.shutdown().await;
            }
            if outcome != Outcome::Success {
                tracing::debug!(?outcome, "remote command ended");
            }
        }
        None => tracing::debug!("client went away, remote command cancelled"),
    }
    drop(got);
    conn.close().await;
}

/// Serves one port-forward connection: any number of data/error stream
/// pairs, each forwarded to its `port` in the sandbox.
pub(crate) async fn serve_portforward<T>(
    io: T,
    pod_sandbox_id: String,
    backend: Arc<dyn Backend>,
    cfg: Arc<Config>,
    shutdown: CancellationToken,
) where
    T: AsyncRead + AsyncWrite + Send + 'static,
{
    let (conn, mut incoming) = Connection::new(io, Role::Server, options(&cfg));
    let mut pairs: HashMap<String, Pair> = HashMap::new();
    let mut forwards = FuturesUnordered::new();
    let mut sweep =
        tokio::time::interval(cfg.stream_creation_timeout.max(Duration::from_millis(100)));
    loop {
        tokio::select! {
            _ = sweep.tick() => {
                // A request whose partner stream never came is dropped, as
                // the kubelet does, so a sloppy client cannot pile them up.
                let limit = cfg.stream_creation_timeout;
                pairs.retain(|id, p| {
                    let keep = p.created.elapsed() < limit;
                    if !keep {
                        tracing::debug!(request_id = %id, "port-forward stream pair incomplete, dropping");
                        for s in [p.data.take(), p.error.take()].into_iter().flatten() {
                            s.reset();
                        }
                    }
                    keep
                });
            }
            s = incoming.accept() => {
                let Some(stream) = s else { break };
                let kind = stream.headers().get("streamtype").unwrap_or("").to_owned();
                // Old clients send no request id; their error stream's id is
                // two below the data stream's.
                let request_id = match stream.headers().get("requestid") {
                    Some(id) => id.to_owned(),
                    None if kind == "data" => stream.id().saturating_sub(2).to_string(),
                    None => stream.id().to_string(),
                };
                let entry = pairs.entry(request_id.clone()).or_insert_with(|| Pair {
                    data: None,
                    error: None,
                    created: Instant::now(),
                });
                let slot = match kind.as_str() {
                    "data" => &mut entry.data,
                    "error" => &mut entry.error,
                    _ => {
                        tracing::debug!(%kind, "unexpected port-forward stream type");
                        stream.reset();
                        continue;
                    }
                };
                if slot.is_some() {
                    stream.reset();
                    continue;
                }
                *slot = Some(stream);
                if let Some(Pair { data: Some(_), error: Some(_), .. }) = pairs.get(&request_id)
                    && let Some(Pair { data: Some(data), error: Some(error), .. }) =
                        pairs.remove(&request_id)
                {
                    forwards.push(forward(backend.clone(), pod_sandbox_id.clone(), data, error));
                }
            }
            Some(()) = forwards.next(), if !forwards.is_empty() => {}
            _ = shutdown.cancelled() => break,
        }
    }
    drop(forwards);
    drop(pairs);
    conn.close().await;
}

/// The two streams of one forwarded connection, as they arrive.
struct Pair {
    data: Option<Stream>,
    error: Option<Stream>,
    created: Instant,
}

async fn forward(
    backend: Arc<dyn Backend>,
    pod_sandbox_id: String,
    data: Stream,
    mut error: Stream,
) {
    let port = data.headers().get("port").unwrap_or("").to_owned();
    let result = match port.parse::<u16>() {
        Ok(p) if p > 0 => backend
            .port_forward(&pod_sandbox_id, p, Box::new(data))
            .await
            .map_err(|e| format!("error forwarding port {p} to pod {pod_sandbox_id}: {e}")),
        _ => Err(format!("invalid port {port:?}")),
    };
    if let Err(msg) = result {
        tracing::debug!(%msg, "port forward failed");
        let _ = error.write_all(msg.as_bytes()).await;
    }
    let _ = error.shutdown().await;
}
