//! Node integration: the daemon's own Prometheus metrics endpoint, scraped
//! over HTTP as Prometheus would, after the CRI calls a kubelet makes.

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::Duration;

use crius_e2e::pods::*;
use crius_e2e::{Dirs, require_root, run_crius};
use crius_proto::*;

/// A loopback address nothing listens on right now.
fn free_address() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().unwrap().to_string()
}

/// `GET /metrics` with the given Accept header; the status line, the
/// headers and the body.
fn get_metrics(address: &str, accept: &str) -> std::io::Result<(String, String, String)> {
    let addr: SocketAddr = address.parse().unwrap();
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        stream,
        "GET /metrics HTTP/1.1\r\nHost: {address}\r\nAccept: {accept}\r\nConnection: close\r\n\r\n"
    )?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let (head, body) = response
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no end of headers in {response:?}"));
    let (status, headers) = head.split_once("\r\n").unwrap_or((head, ""));
    Ok((status.to_string(), headers.to_string(), body.to_string()))
}

/// The body of a Prometheus-text scrape, which must succeed.
fn scrape(address: &str) -> String {
    let (status, headers, body) =
        get_metrics(address, "text/plain").unwrap_or_else(|e| panic!("GET /metrics: {e}"));
    assert_eq!(status, "HTTP/1.1 200 OK", "{headers}\n{body}");
    assert!(
        headers
            .to_ascii_lowercase()
            .contains("content-type: text/plain; version=0.0.4"),
        "{headers}"
    );
    body
}

/// The value of the sample `series` (name and labels exactly as
/// exposed), or `None` if it is not there.
fn sample(body: &str, series: &str) -> Option<f64> {
    body.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .map(|v| {
            v.parse()
                .unwrap_or_else(|e| panic!("{series} = {v:?}: {e}"))
        })
}

fn must(body: &str, series: &str) -> f64 {
    sample(body, series).unwrap_or_else(|| panic!("no {series} in\n{body}"))
}

fn ops(operation: &str, code: &str) -> String {
    format!(r#"crius_operations_total{{operation="{operation}",code="{code}"}}"#)
}

#[tokio::test]
async fn metrics_count_rpcs_by_code_with_latencies_pulls_and_states() {
    let address = free_address();
    let daemon = daemon_with(
        &["busybox"],
        &["--enable-metrics", "--metrics-address", &address],
    )
    .await;
    let mut client = daemon.runtime().await;
    let pod = run_pod(&daemon, "metrics").await;
    let id = create_and_start(
        &mut client,
        &pod,
        container_config("sleeper", "busybox", &["sleep", "60"]),
    )
    .await;

    let body = scrape(&address);
    assert_eq!(must(&body, r#"crius_pods{state="ready"}"#), 1.0);
    assert_eq!(must(&body, r#"crius_pods{state="notready"}"#), 0.0);
    assert_eq!(must(&body, r#"crius_containers{state="running"}"#), 1.0);
    assert_eq!(must(&body, r#"crius_containers{state="exited"}"#), 0.0);

    client
        .stop_container(StopContainerRequest {
            container_id: id.clone(),
            timeout: 0,
        })
        .await
        .expect("stop container");
    let body = scrape(&address);
    assert_eq!(must(&body, r#"crius_containers{state="running"}"#), 0.0);
    assert_eq!(must(&body, r#"crius_containers{state="exited"}"#), 1.0);
    client
        .remove_container(RemoveContainerRequest {
            container_id: id.clone(),
        })
        .await
        .expect("remove container");
    // A failed RPC is counted with its code.
    let missing = client
        .container_status(ContainerStatusRequest {
            container_id: "0123456789abcdef-no-such-container".into(),
            verbose: false,
        })
        .await
        .expect_err("status of a missing container");
    assert_eq!(missing.code(), tonic::Code::NotFound);
    teardown(&daemon, &pod).await;

    let body = scrape(&address);
    for op in [
        "PullImage",
        "RunPodSandbox",
        "CreateContainer",
        "StartContainer",
        "StopContainer",
        "RemoveContainer",
        "StopPodSandbox",
        "RemovePodSandbox",
    ] {
        assert_eq!(must(&body, &ops(op, "OK")), 1.0, "{op}");
    }
    assert_eq!(must(&body, &ops("ContainerStatus", "NotFound")), 1.0);
    assert_eq!(sample(&body, &ops("ContainerStatus", "OK")), None);
    // Latency histograms: cumulative buckets ending in +Inf, with a count
    // matching the RPCs.
    let bucket = |op: &str, le: &str| {
        format!(r#"crius_operations_latency_seconds_bucket{{operation="{op}",le="{le}"}}"#)
    };
    assert_eq!(must(&body, &bucket("RunPodSandbox", "+Inf")), 1.0);
    assert_eq!(must(&body, &bucket("RunPodSandbox", "120")), 1.0);
    assert_eq!(must(&body, &bucket("ContainerStatus", "+Inf")), 1.0);
    assert_eq!(
        must(
            &body,
            r#"crius_operations_latency_seconds_count{operation="CreateContainer"}"#
        ),
        1.0
    );
    assert!(
        must(
            &body,
            r#"crius_operations_latency_seconds_sum{operation="CreateContainer"}"#
        ) > 0.0
    );
    // The image pull: its duration and the layer bytes it received.
    assert_eq!(must(&body, "crius_image_pull_duration_seconds_count"), 1.0);
    assert!(
        must(&body, "crius_image_pull_layer_bytes_total") > 0.0,
        "{body}"
    );
    assert_eq!(must(&body, r#"crius_pods{state="ready"}"#), 0.0);
    assert_eq!(must(&body, r#"crius_containers{state="exited"}"#), 0.0);
    assert_eq!(must(&body, "crius_containers_oom_kills_total"), 0.0);

    // Prometheus asks for OpenMetrics first, and gets it.
    let (status, headers, body) = get_metrics(
        &address,
        "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5",
    )
    .unwrap();
    assert_eq!(status, "HTTP/1.1 200 OK");
    assert!(
        headers
            .to_ascii_lowercase()
            .contains("content-type: application/openmetrics-text; version=1.0.0"),
        "{headers}"
    );
    assert!(body.ends_with("# EOF\n"), "{body}");
    assert!(body.contains(&ops("RunPodSandbox", "OK")), "{body}");
}

#[tokio::test]
async fn oom_killed_containers_are_counted() {
    let address = free_address();
    let daemon = daemon_with(
        &["busybox"],
        &["--enable-metrics", "--metrics-address", &address],
    )
    .await;
    let pod = run_pod(&daemon, "metrics-oom").await;
    let mut client = daemon.runtime().await;
    let st = run_memory_hog(&mut client, &pod).await;
    assert_eq!(st.reason, "OOMKilled", "{st:?}");
    // The counter follows the exit event; give it a moment.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let body = scrape(&address);
        if must(&body, "crius_containers_oom_kills_total") == 1.0 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "OOM kill not counted:\n{body}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    teardown(&daemon, &pod).await;
}

#[tokio::test]
async fn metrics_are_off_by_default() {
    let address = free_address();
    let daemon = daemon_with(&[], &["--metrics-address", &address]).await;
    // The daemon is up and serving the CRI...
    daemon
        .runtime()
        .await
        .version(VersionRequest::default())
        .await
        .expect("Version");
    // ...but nothing listens on the metrics address.
    let err = get_metrics(&address, "text/plain").expect_err("metrics served while disabled");
    assert_eq!(
        err.kind(),
        std::io::ErrorKind::ConnectionRefused,
        "{err}\n{}",
        daemon.log()
    );
}

#[test]
fn metrics_address_in_use_stops_the_daemon_naming_it() {
    require_root();
    let taken = TcpListener::bind("127.0.0.1:0").expect("bind a port");
    let address = taken.local_addr().unwrap().to_string();
    let dirs = Dirs::new();
    std::fs::write(dirs.base.path().join("crius.toml"), "").unwrap();
    let mut args: Vec<String> = dirs.args();
    args.extend([
        "--enable-metrics".into(),
        "--metrics-address".into(),
        address.clone(),
    ]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (status, output) = run_crius(&args);
    assert!(!status.success(), "crius started on a taken port: {output}");
    assert!(
        output.contains(&format!("failed to listen for metrics on {address}")),
        "{output}"
    );
    assert!(!dirs.socket().exists(), "socket left behind: {output}");
}
