//! kubectl against the real daemon: a fake API server answers kubectl's
//! pod lookups and, as the apiserver and kubelet do, turns exec and
//! port-forward requests into CRI Exec/PortForward calls on crius and
//! splices the upgraded connection to the returned URL. kubectl then
//! talks SPDY or WebSocket to crius' streaming server, which runs the
//! command with runc in a real container.
//!
//! Fails, never skips, when kubectl or the test registry is missing.

#[path = "../../streaming/tests/common/kube_api.rs"]
mod kube_api;

use std::sync::Arc;
use std::time::{Duration, Instant};

use crius_e2e::Daemon;
use crius_e2e::pods::*;
use crius_proto::runtime_service_client::RuntimeServiceClient;
use crius_proto::*;
use kube_api::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tonic::transport::Channel;

/// The CRI objects kubectl's "mypod" stands for.
#[derive(Clone)]
struct Target {
    client: RuntimeServiceClient<Channel>,
    container_id: String,
    pod_id: String,
}

/// Turns exec/portforward requests into CRI Exec/PortForward calls on
/// crius, as the kubelet does, and hands out the URL crius returns.
fn ask_crius(target: Target) -> Resolve {
    Arc::new(move |path: String, query: String| {
        let mut target = target.clone();
        Box::pin(async move {
            let query = query.as_str();
            if path.ends_with("/exec") {
                Some(
                    target
                        .client
                        .exec(ExecRequest {
                            container_id: target.container_id.clone(),
                            cmd: query_values(query, "command"),
                            tty: flag(query, "tty"),
                            stdin: flag(query, "stdin"),
                            stdout: flag(query, "stdout"),
                            stderr: flag(query, "stderr"),
                        })
                        .await
                        .expect("Exec RPC")
                        .into_inner()
                        .url,
                )
            } else if path.ends_with("/portforward") {
                Some(
                    target
                        .client
                        .port_forward(PortForwardRequest {
                            pod_sandbox_id: target.pod_id.clone(),
                            port: vec![],
                        })
                        .await
                        .expect("PortForward RPC")
                        .into_inner()
                        .url,
                )
            } else {
                None
            }
        })
    })
}

/// A daemon with a pod running busybox `httpd` on 8080 and a shell-able
/// container; returns the fake API server's port.
async fn setup() -> (Daemon, u16, Upgrades, Pod) {
    let daemon = daemon(&["busybox"]).await;
    let pod = run_pod_config(
        &daemon,
        PodSandboxConfig {
            metadata: Some(PodSandboxMetadata {
                name: "mypod".into(),
                uid: "uid-mypod".into(),
                namespace: "default".into(),
                attempt: 0,
            }),
            ..Default::default()
        },
    )
    .await;
    let mut client = daemon.runtime().await;
    let container_id = create_and_start(
        &mut client,
        &pod,
        container_config(
            "c",
            "busybox",
            &[
                "sh",
                "-c",
                "mkdir -p /www && echo served by crius > /www/index.html && exec httpd -f -p 8080 -h /www",
            ],
        ),
    )
    .await;
    let upgrades = Upgrades::default();
    let target = Target {
        client,
        container_id,
        pod_id: pod.id.clone(),
    };
    let api = fake_apiserver(ask_crius(target), upgrades.clone()).await;
    (daemon, api, upgrades, pod)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_exec_and_port_forward_against_crius() {
    crius_e2e::require_root();
    let (daemon, api, upgrades, pod) = setup().await;
    for ws in [false, true] {
        upgrades.lock().unwrap().clear();
        let (code, out, err) =
            kubectl_exec(api, ws, &["mypod", "--", "echo", "hello", "kubectl"], None).await;
        assert_eq!(
            (code, out.as_str()),
            (0, "hello kubectl\n"),
            "ws={ws}: {err}"
        );
        let (code, out, err) = kubectl_exec(
            api,
            ws,
            &["-i", "mypod", "--", "cat"],
            Some(b"piped stdin\n"),
        )
        .await;
        assert_eq!((code, out.as_str()), (0, "piped stdin\n"), "ws={ws}: {err}");
        let (code, _, err) =
            kubectl_exec(api, ws, &["mypod", "--", "sh", "-c", "exit 7"], None).await;
        assert_eq!(code, 7, "ws={ws}: {err}");
        let want = if ws { "websocket" } else { "spdy/3.1" };
        assert_eq!(upgrades.lock().unwrap().clone(), vec![want; 3], "ws={ws}");
    }

    // kubectl port-forward to httpd inside the pod's network namespace.
    for ws in [false, true] {
        let local = {
            let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
            l.local_addr().unwrap().port()
        };
        let mut child = kubectl_port_forward(api, ws, local, 8080);
        let deadline = Instant::now() + Duration::from_secs(20);
        let resp = loop {
            assert!(
                Instant::now() < deadline,
                "no answer through kubectl port-forward (ws={ws})"
            );
            let Ok(mut tcp) = TcpStream::connect(("127.0.0.1", local)).await else {
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            };
            tcp.write_all(b"GET /index.html HTTP/1.0\r\n\r\n")
                .await
                .unwrap();
            let mut resp = String::new();
            let _ =
                tokio::time::timeout(Duration::from_secs(10), tcp.read_to_string(&mut resp)).await;
            // httpd may not listen yet: kubectl then closes the connection.
            if resp.contains("served by crius") {
                break resp;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        assert!(resp.starts_with("HTTP/1."), "{resp}");
        child.kill().await.unwrap();
    }
    // Containers outlive the daemon by design: remove what we started.
    teardown(&daemon, &pod).await;
}
