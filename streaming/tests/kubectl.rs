//! Interoperability with the real Go clients: `kubectl exec` and
//! `kubectl port-forward` against a fake API server that, like the
//! apiserver and kubelet, parks the request on the streaming server and
//! proxies the upgraded connection to the returned URL.
//!
//! Fails, never skips, when no `kubectl` binary is on PATH.

mod common;

use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use common::kube_api::*;
use common::*;
use streaming::StreamingServer;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Parks exec/attach/portforward requests on the streaming server, as the
/// kubelet does, and hands out the URL it returns.
fn park_on(streaming: Arc<StreamingServer>) -> Resolve {
    Arc::new(move |path: String, query: String| {
        let streaming = streaming.clone();
        Box::pin(async move {
            let query = query.as_str();
            if path.ends_with("/exec") {
                Some(
                    streaming
                        .register_exec(crius_proto::ExecRequest {
                            container_id: "c".into(),
                            cmd: query_values(query, "command"),
                            tty: flag(query, "tty"),
                            stdin: flag(query, "stdin"),
                            stdout: flag(query, "stdout"),
                            stderr: flag(query, "stderr"),
                        })
                        .unwrap(),
                )
            } else if path.ends_with("/attach") {
                Some(
                    streaming
                        .register_attach(crius_proto::AttachRequest {
                            container_id: "c".into(),
                            tty: flag(query, "tty"),
                            stdin: flag(query, "stdin"),
                            stdout: flag(query, "stdout"),
                            stderr: flag(query, "stderr"),
                        })
                        .unwrap(),
                )
            } else if path.ends_with("/portforward") {
                Some(
                    streaming
                        .register_port_forward(crius_proto::PortForwardRequest {
                            pod_sandbox_id: "mypod".into(),
                            port: vec![],
                        })
                        .unwrap(),
                )
            } else {
                None
            }
        })
    })
}

async fn setup() -> (std::path::PathBuf, u16, Upgrades) {
    let kubectl = kubectl();
    // Frequent server pings, so the Go clients are seen answering them.
    let (server, _) = start(streaming::Config {
        ping_interval: Duration::from_millis(100),
        ..Default::default()
    })
    .await;
    let upgrades = Upgrades::default();
    let api = fake_apiserver(park_on(Arc::new(server)), upgrades.clone()).await;
    (kubectl, api, upgrades)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_exec_over_spdy_and_websocket() {
    let (_, api, upgrades) = setup().await;
    for ws in [false, true] {
        upgrades.lock().unwrap().clear();
        let (code, out, err) =
            kubectl_exec(api, ws, &["mypod", "--", "echo", "hello", "kubectl"], None).await;
        assert_eq!(
            (code, out.as_str()),
            (0, "hello kubectl\n"),
            "websockets={ws} stderr: {err}"
        );

        let (code, out, err) = kubectl_exec(
            api,
            ws,
            &["-i", "mypod", "--", "cat"],
            Some(b"piped stdin\n"),
        )
        .await;
        assert_eq!(
            (code, out.as_str()),
            (0, "piped stdin\n"),
            "websockets={ws} stderr: {err}"
        );

        let (code, _, err) = kubectl_exec(api, ws, &["mypod", "--", "exit", "7"], None).await;
        assert_eq!(code, 7, "websockets={ws} stderr: {err}");

        // Silent for several server ping intervals, then output.
        let (code, out, err) = kubectl_exec(api, ws, &["mypod", "--", "delay", "700"], None).await;
        assert_eq!(
            (code, out.as_str()),
            (0, "done\n"),
            "websockets={ws} stderr: {err}"
        );
        // No silent fallback: every session used the transport asked for.
        let want = if ws { "websocket" } else { "spdy/3.1" };
        let seen = upgrades.lock().unwrap().clone();
        assert_eq!(seen, vec![want; 4], "websockets={ws}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_port_forward_over_spdy_and_websocket_tunnel() {
    let (_, api, upgrades) = setup().await;
    let remote = page_server().await;
    for ws in [false, true] {
        upgrades.lock().unwrap().clear();
        let local = closed_port().await;
        let mut child = kubectl_port_forward(api, ws, local, remote);
        // Wait until kubectl listens.
        let mut tcp = None;
        for _ in 0..200 {
            if let Ok(t) = TcpStream::connect(("127.0.0.1", local)).await {
                tcp = Some(t);
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let mut tcp = tcp.expect("kubectl port-forward listens");
        for i in 0..2 {
            if i > 0 {
                tcp = TcpStream::connect(("127.0.0.1", local)).await.unwrap();
            }
            tcp.write_all(format!("GET /{i} HTTP/1.0\r\n\r\n").as_bytes())
                .await
                .unwrap();
            let mut resp = String::new();
            tokio::time::timeout(Duration::from_secs(20), tcp.read_to_string(&mut resp))
                .await
                .expect("response in time")
                .unwrap();
            assert!(
                resp.ends_with(&format!("you asked: GET /{i} HTTP/1.0")),
                "websockets={ws}: {resp:?}"
            );
        }
        child.kill().await.unwrap();
        let want = if ws { "websocket" } else { "spdy/3.1" };
        let seen = upgrades.lock().unwrap().clone();
        assert!(
            !seen.is_empty() && seen.iter().all(|u| u == want),
            "websockets={ws}: {seen:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_exec_tty_sends_terminal_size() {
    let (kubectl, api, upgrades) = setup().await;
    assert!(
        std::path::Path::new("/usr/bin/script").exists(),
        "script(1) from util-linux is required for this test"
    );
    for ws in [false, true] {
        upgrades.lock().unwrap().clear();
        // script(1) gives kubectl a terminal of a known size; kubectl sends
        // it on the resize stream (SPDY v4) or channel 4 (WebSocket v5).
        let inner = format!(
            "stty cols 91 rows 33; {} --server http://127.0.0.1:{api} exec -it mypod -- tty once",
            kubectl.display()
        );
        let out = tokio::time::timeout(
            Duration::from_secs(60),
            tokio::process::Command::new("script")
                .args(["-qec", &inner, "/dev/null"])
                .env(
                    "KUBECTL_REMOTE_COMMAND_WEBSOCKETS",
                    if ws { "true" } else { "false" },
                )
                .env("KUBECONFIG", "/dev/null")
                .stdin(Stdio::piped())
                .kill_on_drop(true)
                .output(),
        )
        .await
        .expect("kubectl finishes")
        .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("resize 91x33"), "websockets={ws}: {text:?}");
        let want = if ws { "websocket" } else { "spdy/3.1" };
        assert_eq!(
            upgrades.lock().unwrap().clone(),
            vec![want],
            "websockets={ws}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_attach_over_spdy_and_websocket() {
    let (kubectl, api, upgrades) = setup().await;
    for ws in [false, true] {
        upgrades.lock().unwrap().clear();
        let mut child = tokio::process::Command::new(&kubectl)
            .args([
                "--server",
                &format!("http://127.0.0.1:{api}"),
                "attach",
                "-i",
                "mypod",
            ])
            .env(
                "KUBECTL_REMOTE_COMMAND_WEBSOCKETS",
                if ws { "true" } else { "false" },
            )
            .env("KUBECONFIG", "/dev/null")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("kubectl runs");
        let mut si = child.stdin.take().unwrap();
        si.write_all(b"to the main process\n").await.unwrap();
        drop(si);
        let out = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
            .await
            .expect("kubectl finishes")
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stdout.contains("to the main process"),
            "websockets={ws}: {stdout:?} {stderr}"
        );
        let want = if ws { "websocket" } else { "spdy/3.1" };
        assert_eq!(
            upgrades.lock().unwrap().clone(),
            vec![want],
            "websockets={ws}"
        );
    }
}
