//! The daemon's own Prometheus metrics, served as `GET /metrics` on
//! `metrics.address` when `metrics.enable` is set. They describe crius
//! itself (RPCs, image pulls, what it holds); the pod and container
//! metrics the kubelet asks for over the CRI are in `runtime/metrics.rs`.
//!
//! Counters and histograms are updated as things happen: every RPC in
//! [`crate::rpc::serve`], pull durations in PullImage, OOM kills from the
//! container manager's events. Pod and container counts and the pulled
//! bytes are read from the stores at scrape time, so they cannot drift.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::Full;
use hyper_util::rt::TokioIo;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};
use tokio::sync::broadcast;
use tonic::Code;

use crate::Cri;

/// What Prometheus asks for first; plain Prometheus text otherwise.
const OPENMETRICS_CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// RPC latency buckets in seconds: from List calls (milliseconds) to
/// StopContainer with a long grace period and RunPodSandbox with slow CNI.
const RPC_BUCKETS: [f64; 15] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 120.0,
];

/// Pull duration buckets in seconds: a cached image to a large one.
const PULL_BUCKETS: [f64; 12] = [
    0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0,
];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OperationCode {
    operation: &'static str,
    code: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Operation {
    operation: &'static str,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

/// The metrics crius updates as it works. Cheap enough to update whether
/// or not they are served.
pub(crate) struct Metrics {
    operations: Family<OperationCode, Counter>,
    latency: HistogramFamily<Operation>,
    pull_duration: Histogram,
    oom_kills: Counter,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            operations: Family::default(),
            latency: Family::new_with_constructor(|| Histogram::new(RPC_BUCKETS)),
            pull_duration: Histogram::new(PULL_BUCKETS),
            oom_kills: Counter::default(),
        }
    }
}

impl Metrics {
    /// One finished RPC: its outcome and how long it took.
    pub(crate) fn record_rpc(&self, operation: &'static str, code: Code, elapsed: Duration) {
        self.operations
            .get_or_create(&OperationCode {
                operation,
                code: code_name(code),
            })
            .inc();
        self.latency
            .get_or_create(&Operation { operation })
            .observe(elapsed.as_secs_f64());
    }

    /// One successful image pull.
    pub(crate) fn record_pull(&self, elapsed: Duration) {
        self.pull_duration.observe(elapsed.as_secs_f64());
    }

    /// Counts containers that the kernel's OOM killer ended, as the
    /// container manager reports their exits, until the manager goes away.
    pub(crate) fn watch_oom_kills(&self, containers: Arc<container::ContainerManager>) {
        let mut rx = containers.subscribe_events();
        let oom_kills = self.oom_kills.clone();
        tokio::spawn(async move {
            loop {
                let event = match rx.recv().await {
                    Ok(event) => event,
                    Err(broadcast::error::RecvError::Lagged(missed)) => {
                        tracing::warn!(missed, "container events missed by the OOM kill counter");
                        continue;
                    }
                    Err(broadcast::error::RecvError::Closed) => return,
                };
                if event.kind != container::EventKind::Stopped {
                    continue;
                }
                // The exit reason is recorded before the event is sent.
                if containers
                    .status(&event.container_id, false)
                    .is_ok_and(|(status, _)| status.reason == container::manager::REASON_OOM)
                {
                    oom_kills.inc();
                }
            }
        });
    }

    /// The registry served at `/metrics`: these metrics, plus the counts
    /// read from `cri`'s stores at each scrape.
    fn registry(&self, cri: &Arc<Cri>) -> Registry {
        let mut registry = Registry::with_prefix("crius");
        registry.register(
            "operations",
            "CRI RPCs served, by RPC name and gRPC status code",
            self.operations.clone(),
        );
        registry.register_with_unit(
            "operations_latency",
            "Time to serve a CRI RPC, by RPC name",
            Unit::Seconds,
            self.latency.clone(),
        );
        registry.register_with_unit(
            "image_pull_duration",
            "Time of successful image pulls, from request to stored image",
            Unit::Seconds,
            self.pull_duration.clone(),
        );
        registry.register(
            "containers_oom_kills",
            "Containers ended by the OOM killer since crius started",
            self.oom_kills.clone(),
        );
        registry.register_collector(Box::new(StoreCounts {
            images: cri.images.clone(),
            sandboxes: cri.sandboxes.clone(),
            containers: cri.containers.clone(),
        }));
        registry
    }
}

/// The gRPC name of `code`, as Go's `codes.Code.String()` spells it (what
/// CRI-O's and containerd's metrics use).
fn code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "Canceled",
        Code::Unknown => "Unknown",
        Code::InvalidArgument => "InvalidArgument",
        Code::DeadlineExceeded => "DeadlineExceeded",
        Code::NotFound => "NotFound",
        Code::AlreadyExists => "AlreadyExists",
        Code::PermissionDenied => "PermissionDenied",
        Code::ResourceExhausted => "ResourceExhausted",
        Code::FailedPrecondition => "FailedPrecondition",
        Code::Aborted => "Aborted",
        Code::OutOfRange => "OutOfRange",
        Code::Unimplemented => "Unimplemented",
        Code::Internal => "Internal",
        Code::Unavailable => "Unavailable",
        Code::DataLoss => "DataLoss",
        Code::Unauthenticated => "Unauthenticated",
    }
}

/// Pods and containers by state and bytes pulled, read at scrape time.
struct StoreCounts {
    images: image_service::ImageService,
    sandboxes: Arc<pod_sandbox::Sandboxes>,
    containers: Arc<container::ContainerManager>,
}

impl std::fmt::Debug for StoreCounts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreCounts").finish_non_exhaustive()
    }
}

impl Collector for StoreCounts {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        use pod_sandbox::State as PodState;
        // Every state appears, at 0 if empty, so that a series does not
        // vanish when its last member goes.
        let mut pods: BTreeMap<&str, i64> =
            [PodState::Creating, PodState::Ready, PodState::NotReady]
                .into_iter()
                .map(|s| (pod_state_name(s), 0))
                .collect();
        for sandbox in self.sandboxes.list() {
            *pods
                .entry(pod_state_name(sandbox.status().state))
                .or_default() += 1;
        }
        encode_gauges(&mut encoder, "pods", "Pod sandboxes by state.", &pods)?;

        use crius_proto::ContainerState as C;
        let mut containers: BTreeMap<&str, i64> = [
            C::ContainerCreated,
            C::ContainerRunning,
            C::ContainerExited,
            C::ContainerUnknown,
        ]
        .into_iter()
        .map(|s| (container_state_name(s), 0))
        .collect();
        for c in self.containers.list(None) {
            let state = C::try_from(c.state).unwrap_or(C::ContainerUnknown);
            *containers.entry(container_state_name(state)).or_default() += 1;
        }
        encode_gauges(
            &mut encoder,
            "containers",
            "Containers by state.",
            &containers,
        )?;

        let bytes = ConstCounter::new(self.images.downloaded_bytes());
        let metric = encoder.encode_descriptor(
            "image_pull_layer",
            "Layer bytes received from registries since crius started.",
            Some(&Unit::Bytes),
            bytes.metric_type(),
        )?;
        bytes.encode(metric)
    }
}

fn encode_gauges(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    by_state: &BTreeMap<&str, i64>,
) -> Result<(), std::fmt::Error> {
    let mut metric = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
    for (&state, &count) in by_state {
        let labels = [("state", state)];
        ConstGauge::new(count).encode(metric.encode_family(&labels)?)?;
    }
    Ok(())
}

fn pod_state_name(state: pod_sandbox::State) -> &'static str {
    use pod_sandbox::State;
    match state {
        State::Creating => "creating",
        State::Ready => "ready",
        State::NotReady => "notready",
    }
}

fn container_state_name(state: crius_proto::ContainerState) -> &'static str {
    use crius_proto::ContainerState as C;
    match state {
        C::ContainerCreated => "created",
        C::ContainerRunning => "running",
        C::ContainerExited => "exited",
        C::ContainerUnknown => "unknown",
    }
}

/// Binds `address` now, so that a port in use stops the daemon at start
/// with a message naming it, then serves `/metrics` on a task of its own.
pub(crate) fn start_server(cri: &Arc<Cri>, address: &str) -> anyhow::Result<SocketAddr> {
    let addr: SocketAddr = address
        .parse()
        .with_context(|| format!("invalid metrics address {address:?}"))?;
    let listener = std::net::TcpListener::bind(addr)
        .and_then(|l| l.set_nonblocking(true).map(|()| l))
        .and_then(tokio::net::TcpListener::from_std)
        .with_context(|| format!("failed to listen for metrics on {addr}"))?;
    let local = listener.local_addr().unwrap_or(addr);
    let registry = Arc::new(cri.metrics.registry(cri));
    tokio::spawn(async move {
        loop {
            let (stream, peer) = match listener.accept().await {
                Ok(conn) => conn,
                Err(err) => {
                    // Out of file descriptors and the like: back off rather
                    // than spin.
                    tracing::warn!(%err, "failed to accept a metrics connection");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let registry = registry.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req| {
                    let response = handle(&registry, &req);
                    async move { Ok::<_, std::convert::Infallible>(response) }
                });
                if let Err(err) = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await
                {
                    tracing::debug!(%peer, %err, "metrics connection failed");
                }
            });
        }
    });
    Ok(local)
}

fn handle<B>(registry: &Registry, req: &Request<B>) -> Response<Full<Bytes>> {
    let reply = |status: StatusCode, content_type: &str, body: String| {
        let mut response = Response::new(Full::new(Bytes::from(body)));
        *response.status_mut() = status;
        if let Ok(value) = header::HeaderValue::from_str(content_type) {
            response.headers_mut().insert(header::CONTENT_TYPE, value);
        }
        response
    };
    if req.uri().path() != "/metrics" {
        return reply(
            StatusCode::NOT_FOUND,
            "text/plain; charset=utf-8",
            "not found: metrics are at /metrics\n".into(),
        );
    }
    if req.method() != Method::GET && req.method() != Method::HEAD {
        let mut response = reply(
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain; charset=utf-8",
            "method not allowed: use GET\n".into(),
        );
        response
            .headers_mut()
            .insert(header::ALLOW, header::HeaderValue::from_static("GET, HEAD"));
        return response;
    }
    let openmetrics = req
        .headers()
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains("application/openmetrics-text"));
    let mut body = String::new();
    let (encoded, content_type) = if openmetrics {
        (
            prometheus_client::encoding::text::encode(&mut body, registry),
            OPENMETRICS_CONTENT_TYPE,
        )
    } else {
        (
            prometheus_client::encoding::prometheus_text::encode(&mut body, registry),
            prometheus_client::encoding::prometheus_text::CONTENT_TYPE,
        )
    };
    match encoded {
        Ok(()) => reply(StatusCode::OK, content_type, body),
        Err(_) => reply(
            StatusCode::INTERNAL_SERVER_ERROR,
            "text/plain; charset=utf-8",
            "failed to encode metrics\n".into(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode(metrics: &Metrics) -> String {
        let mut registry = Registry::with_prefix("crius");
        registry.register("operations", "ops", metrics.operations.clone());
        registry.register_with_unit(
            "operations_latency",
            "latency",
            Unit::Seconds,
            metrics.latency.clone(),
        );
        let mut out = String::new();
        prometheus_client::encoding::prometheus_text::encode(&mut out, &registry).unwrap();
        out
    }

    #[test]
    fn rpcs_are_counted_by_name_and_code_with_latency_buckets() {
        let metrics = Metrics::default();
        metrics.record_rpc("Version", Code::Ok, Duration::from_millis(2));
        metrics.record_rpc("Version", Code::Ok, Duration::from_millis(3));
        metrics.record_rpc("ContainerStatus", Code::NotFound, Duration::from_secs(200));
        let text = encode(&metrics);
        assert!(
            text.contains(r#"crius_operations_total{operation="Version",code="OK"} 2"#),
            "{text}"
        );
        assert!(
            text.contains(
                r#"crius_operations_total{operation="ContainerStatus",code="NotFound"} 1"#
            ),
            "{text}"
        );
        for line in [
            r#"crius_operations_latency_seconds_bucket{operation="Version",le="0.001"} 0"#,
            r#"crius_operations_latency_seconds_bucket{operation="Version",le="0.0025"} 1"#,
            r#"crius_operations_latency_seconds_bucket{operation="Version",le="0.005"} 2"#,
            r#"crius_operations_latency_seconds_count{operation="Version"} 2"#,
            // Past the last bucket, only +Inf holds it.
            r#"crius_operations_latency_seconds_bucket{operation="ContainerStatus",le="120"} 0"#,
            r#"crius_operations_latency_seconds_bucket{operation="ContainerStatus",le="+Inf"} 1"#,
        ] {
            assert!(text.lines().any(|l| l == line), "no {line:?} in\n{text}");
        }
    }

    #[test]
    fn every_code_has_its_go_name() {
        assert_eq!(code_name(Code::Ok), "OK");
        assert_eq!(code_name(Code::Cancelled), "Canceled");
        assert_eq!(code_name(Code::NotFound), "NotFound");
        assert_eq!(code_name(Code::Unauthenticated), "Unauthenticated");
    }

    #[test]
    fn only_get_of_metrics_is_served() {
        let registry = Registry::default();
        let get = |method: Method, path: &str, accept: Option<&str>| {
            let mut req = Request::builder().method(method).uri(path);
            if let Some(accept) = accept {
                req = req.header(header::ACCEPT, accept);
            }
            handle(&registry, &req.body(()).unwrap())
        };
        let ok = get(Method::GET, "/metrics", None);
        assert_eq!(ok.status(), StatusCode::OK);
        assert_eq!(
            ok.headers()[header::CONTENT_TYPE],
            prometheus_client::encoding::prometheus_text::CONTENT_TYPE
        );
        let om = get(
            Method::GET,
            "/metrics",
            Some("application/openmetrics-text;version=1.0.0,text/plain;q=0.5"),
        );
        assert_eq!(om.headers()[header::CONTENT_TYPE], OPENMETRICS_CONTENT_TYPE);
        assert_eq!(get(Method::GET, "/", None).status(), StatusCode::NOT_FOUND);
        assert_eq!(
            get(Method::POST, "/metrics", None).status(),
            StatusCode::METHOD_NOT_ALLOWED
        );
    }
}
