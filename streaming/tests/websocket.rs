//! remotecommand and portforward over WebSocket, driven by a
//! tokio-tungstenite client, plus the SPDY-in-WebSocket tunnel and many
//! concurrent sessions over both transports.

mod common;

use std::sync::atomic::Ordering;
use std::time::Duration;

use common::*;
use futures_util::{SinkExt, StreamExt};
use streaming::spdy::{self, Connection, Role};
use streaming::ws::{self, CLOSE, ERROR, RESIZE, STDIN, STDOUT};
use tokio::io::AsyncWriteExt;
use tokio_tungstenite::tungstenite::Message;

/// Everything received per channel until the server closes.
async fn collect(ws: &mut Ws, base64: bool) -> Vec<Vec<u8>> {
    let mut chans = vec![Vec::new(); 8];
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .expect("server answers in time");
        match msg {
            Some(Ok(Message::Close(_))) | None => return chans,
            Some(Ok(m)) => {
                if let Some((ch, data)) = ws::decode(base64, &m) {
                    chans[usize::from(ch)].extend_from_slice(&data);
                }
            }
            Some(Err(e)) => panic!("websocket error: {e}"),
        }
    }
}

fn json(b: &[u8]) -> serde_json::Value {
    serde_json::from_slice(b).unwrap_or_else(|e| panic!("{e}: {:?}", String::from_utf8_lossy(b)))
}

#[tokio::test]
async fn v5_exec_echo() {
    let (server, _) = start_default().await;
    let url = server
        .register_exec(exec_req(
            &["echo", "hi", "there"],
            false,
            true,
            false,
            false,
        ))
        .unwrap();
    let (mut ws, proto) = ws_connect(&url, &["v5.channel.k8s.io", "v4.channel.k8s.io"])
        .await
        .unwrap();
    assert_eq!(proto.as_deref(), Some("v5.channel.k8s.io"));
    let chans = collect(&mut ws, false).await;
    assert_eq!(chans[1], b"hi there\n");
    assert_eq!(json(&chans[3])["status"], "Success");
}

#[tokio::test]
async fn v5_stdin_round_trip_with_close_signal() {
    let (server, _) = start_default().await;
    let url = server
        .register_exec(exec_req(&["cat"], true, true, false, false))
        .unwrap();
    let (mut ws, _) = ws_connect(&url, &["v5.channel.k8s.io"]).await.unwrap();
    ws.send(ws::encode(false, STDIN, b"line one\n"))
        .await
        .unwrap();
    ws.send(ws::encode(false, STDIN, b"line two\n"))
        .await
        .unwrap();
    // v5: close stdin, keep the connection.
    ws.send(ws::encode(false, CLOSE, &[STDIN])).await.unwrap();
    let chans = collect(&mut ws, false).await;
    assert_eq!(chans[1], b"line one\nline two\n");
    assert_eq!(json(&chans[3])["status"], "Success");
}

#[tokio::test]
async fn v4_exit_code_7() {
    let (server, _) = start_default().await;
    let url = server
        .register_exec(exec_req(&["exit", "7"], false, true, true, false))
        .unwrap();
    let (mut ws, proto) = ws_connect(&url, &["v4.channel.k8s.io"]).await.unwrap();
    assert_eq!(proto.as_deref(), Some("v4.channel.k8s.io"));
    let status = json(&collect(&mut ws, false).await[usize::from(ERROR)]);
    assert_eq!(status["reason"], "NonZeroExitCode");
    assert_eq!(status["details"]["causes"][0]["reason"], "ExitCode");
    assert_eq!(status["details"]["causes"][0]["message"], "7");
}

#[tokio::test]
async fn base64_protocol_uses_text_frames() {
    let (server, _) = start_default().await;
    let url = server
        .register_exec(exec_req(&["stderr", "b64 err"], false, true, true, false))
        .unwrap();
    let (mut ws, proto) = ws_connect(&url, &["base64.channel.k8s.io"]).await.unwrap();
    assert_eq!(proto.as_deref(), Some("base64.channel.k8s.io"));
    let mut texts = 0;
    let mut stderr = Vec::new();
    loop {
        match tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .unwrap()
        {
            Some(Ok(Message::Close(_))) | None => break,
            Some(Ok(m)) => {
                assert!(m.is_text(), "base64 protocol sent {m:?}");
                texts += 1;
                let (ch, data) = ws::decode(true, &m).unwrap();
                if ch == 2 {
                    stderr.extend(data);
                }
            }
            Some(Err(e)) => panic!("{e}"),
        }
    }
    assert!(texts >= 1);
    assert_eq!(stderr, b"b64 err");
}

#[tokio::test]
async fn legacy_channel_protocol_reports_exit_as_text() {
    let (server, _) = start_default().await;
    let url = server
        .register_exec(exec_req(&["exit", "2"], false, true, false, false))
        .unwrap();
    let (mut ws, _) = ws_connect(&url, &["channel.k8s.io"]).await.unwrap();
    let chans = collect(&mut ws, false).await;
    let text = String::from_utf8(chans[3].clone()).unwrap();
    assert!(text.contains("non-zero exit code"), "{text}");
}

#[tokio::test]
async fn v5_tty_resize() {
    let (server, _) = start_default().await;
    let url = server
        .register_exec(exec_req(&["tty"], true, true, false, true))
        .unwrap();
    let (mut ws, _) = ws_connect(&url, &["v5.channel.k8s.io"]).await.unwrap();
    ws.send(ws::encode(false, RESIZE, br#"{"Width":80,"Height":24}"#))
        .await
        .unwrap();
    let mut out = Vec::new();
    while !out.ends_with(b"resize 80x24\n") {
        let m = tokio::time::timeout(Duration::from_secs(5), ws.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        if let Some((STDOUT, data)) = ws::decode(false, &m) {
            out.extend(data);
        }
    }
    ws.send(ws::encode(false, CLOSE, &[STDIN])).await.unwrap();
    let chans = collect(&mut ws, false).await;
    assert_eq!(json(&chans[3])["status"], "Success");
}

#[tokio::test]
async fn unsupported_subprotocol_is_refused() {
    let (server, _) = start_default().await;
    let url = server
        .register_exec(exec_req(&["echo"], false, true, false, false))
        .unwrap();
    assert_eq!(
        ws_connect(&url, &["v9.channel.k8s.io"]).await.err(),
        Some(400)
    );
}

#[tokio::test]
async fn token_reuse_is_404() {
    let (server, _) = start_default().await;
    let url = server
        .register_exec(exec_req(&["echo", "once"], false, true, false, false))
        .unwrap();
    let (mut ws, _) = ws_connect(&url, &["v5.channel.k8s.io"]).await.unwrap();
    assert_eq!(collect(&mut ws, false).await[1], b"once\n");
    assert_eq!(
        ws_connect(&url, &["v5.channel.k8s.io"]).await.err(),
        Some(404)
    );
}

#[tokio::test]
async fn client_disconnect_cancels_the_backend() {
    let (server, counters) = start_default().await;
    let url = server
        .register_exec(exec_req(&["sleep"], true, true, false, false))
        .unwrap();
    let (ws, _) = ws_connect(&url, &["v5.channel.k8s.io"]).await.unwrap();
    wait_for("backend start", || {
        counters.started.load(Ordering::SeqCst) == 1
    })
    .await;
    drop(ws);
    wait_for("backend drop", || {
        counters.dropped.load(Ordering::SeqCst) == 1
    })
    .await;
}

fn pf_req() -> crius_proto::PortForwardRequest {
    crius_proto::PortForwardRequest {
        pod_sandbox_id: "sandbox".into(),
        port: vec![],
    }
}

#[tokio::test]
async fn v4_port_forward_get_and_closed_port() {
    let (server, _) = start_default().await;
    let open = page_server().await;
    let closed = closed_port().await;
    let url = server.register_port_forward(pf_req()).unwrap();
    let url = format!("{url}?port={open}&port={closed}");
    let (mut ws, proto) = ws_connect(&url, &["v4.channel.k8s.io"]).await.unwrap();
    assert_eq!(proto.as_deref(), Some("v4.channel.k8s.io"));
    // Every channel opens with its port, little-endian.
    let mut firsts = std::collections::HashMap::new();
    while firsts.len() < 4 {
        let m = ws.next().await.unwrap().unwrap();
        let (ch, data) = ws::decode(false, &m).unwrap();
        assert!(
            firsts.insert(ch, data).is_none(),
            "channel {ch} opened twice"
        );
    }
    assert_eq!(firsts[&0], open.to_le_bytes());
    assert_eq!(firsts[&1], open.to_le_bytes());
    assert_eq!(firsts[&2], closed.to_le_bytes());
    assert_eq!(firsts[&3], closed.to_le_bytes());
    ws.send(ws::encode(false, 0, b"GET /ws HTTP/1.0\r\n\r\n"))
        .await
        .unwrap();
    let chans = collect(&mut ws, false).await;
    let page = String::from_utf8(chans[0].clone()).unwrap();
    assert!(page.ends_with("you asked: GET /ws HTTP/1.0"), "{page}");
    assert!(chans[1].is_empty());
    let err = String::from_utf8(chans[3].clone()).unwrap();
    assert!(
        err.contains(&format!("error forwarding port {closed}")),
        "{err}"
    );
}

#[tokio::test]
async fn port_forward_without_ports_is_bad_request() {
    let (server, _) = start_default().await;
    let url = server.register_port_forward(pf_req()).unwrap();
    assert_eq!(
        ws_connect(&url, &["v4.channel.k8s.io"]).await.err(),
        Some(400)
    );
}

#[tokio::test]
async fn spdy_tunnelled_in_websocket_port_forward() {
    let (server, _) = start_default().await;
    let port = page_server().await.to_string();
    let url = server.register_port_forward(pf_req()).unwrap();
    let (ws, proto) = ws_connect(&url, &["SPDY/3.1+portforward.k8s.io"])
        .await
        .unwrap();
    assert_eq!(proto.as_deref(), Some("SPDY/3.1+portforward.k8s.io"));
    let (conn, _incoming) = Connection::new(ws::tunnel(ws), Role::Client, spdy::Options::default());
    let c = SpdyClient {
        conn,
        incoming: _incoming,
        protocol: None,
    };
    let mut error = c
        .stream(
            &[("streamType", "error"), ("port", &port), ("requestID", "7")],
            true,
        )
        .await;
    let mut data = c
        .stream(
            &[("streamType", "data"), ("port", &port), ("requestID", "7")],
            false,
        )
        .await;
    data.write_all(b"GET /tunnel HTTP/1.0\r\n\r\n")
        .await
        .unwrap();
    let resp = read_all(&mut data).await;
    assert!(resp.ends_with("you asked: GET /tunnel HTTP/1.0"), "{resp}");
    assert_eq!(read_all(&mut error).await, "");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_concurrent_sessions_over_both_transports() {
    let (server, counters) = start_default().await;
    let server = std::sync::Arc::new(server);
    let mut tasks = Vec::new();
    for i in 0..50 {
        let server = server.clone();
        tasks.push(tokio::spawn(async move {
            let word = format!("session-{i}");
            let url = server
                .register_exec(exec_req(&["cat"], true, true, false, false))
                .unwrap();
            if i % 2 == 0 {
                let c = spdy_connect(&url, &["v4.channel.k8s.io"]).await.unwrap();
                let mut error = c.stream(&[("streamType", "error")], true).await;
                let mut stdin = c.stream(&[("streamType", "stdin")], false).await;
                let mut stdout = c.stream(&[("streamType", "stdout")], true).await;
                stdin.write_all(word.as_bytes()).await.unwrap();
                stdin.shutdown().await.unwrap();
                assert_eq!(read_all(&mut stdout).await, word);
                assert!(read_all(&mut error).await.contains("Success"));
            } else {
                let (mut ws, _) = ws_connect(&url, &["v5.channel.k8s.io"]).await.unwrap();
                ws.send(ws::encode(false, STDIN, word.as_bytes()))
                    .await
                    .unwrap();
                ws.send(ws::encode(false, CLOSE, &[STDIN])).await.unwrap();
                let chans = collect(&mut ws, false).await;
                assert_eq!(chans[1], word.as_bytes());
                assert_eq!(json(&chans[3])["status"], "Success");
            }
        }));
    }
    for t in tasks {
        tokio::time::timeout(Duration::from_secs(30), t)
            .await
            .expect("session finishes")
            .expect("session ok");
    }
    assert_eq!(counters.finished.load(Ordering::SeqCst), 50);
    assert_eq!(counters.dropped.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn idle_websocket_session_is_closed() {
    // Keepalive pings (and their answers) must not count as activity.
    let cfg = streaming::Config {
        idle_timeout: Duration::from_millis(300),
        ping_interval: Duration::from_millis(50),
        ..Default::default()
    };
    let (server, counters) = start(cfg).await;
    let url = server
        .register_exec(exec_req(&["sleep"], true, true, false, false))
        .unwrap();
    let (mut ws, _) = ws_connect(&url, &["v5.channel.k8s.io"]).await.unwrap();
    // Nothing moves: the server closes the session and drops the backend.
    collect(&mut ws, false).await;
    wait_for("backend drop", || {
        counters.dropped.load(Ordering::SeqCst) == 1
    })
    .await;
}

#[tokio::test]
async fn shutdown_ends_websocket_sessions() {
    let (server, counters) = start_default().await;
    let url = server
        .register_exec(exec_req(&["sleep"], true, true, false, false))
        .unwrap();
    let (mut ws, _) = ws_connect(&url, &["v5.channel.k8s.io"]).await.unwrap();
    wait_for("backend start", || {
        counters.started.load(Ordering::SeqCst) == 1
    })
    .await;
    tokio::time::timeout(Duration::from_secs(10), server.shutdown())
        .await
        .expect("shutdown finishes");
    assert_eq!(counters.dropped.load(Ordering::SeqCst), 1);
    collect(&mut ws, false).await;
}

#[tokio::test]
async fn websocket_pings_are_answered_while_the_process_is_silent() {
    // client-go's WebSocket executor sends heartbeat pings and gives up on
    // the connection when no pong comes back.
    let (server, counters) = start_default().await;
    let url = server
        .register_exec(exec_req(&["sleep"], true, true, false, false))
        .unwrap();
    let (mut ws, _) = ws_connect(&url, &["v5.channel.k8s.io"]).await.unwrap();
    wait_for("backend start", || {
        counters.started.load(Ordering::SeqCst) == 1
    })
    .await;
    for i in 0..3u8 {
        ws.send(Message::Ping(vec![i].into())).await.unwrap();
        let m = tokio::time::timeout(Duration::from_secs(5), ws.next())
            .await
            .expect("pong in time")
            .unwrap()
            .unwrap();
        assert_eq!(m, Message::Pong(vec![i].into()));
    }
    assert_eq!(counters.dropped.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn disconnect_is_noticed_while_stdin_backs_up() {
    let cfg = streaming::Config {
        ping_interval: Duration::from_millis(100),
        ..Default::default()
    };
    let (server, counters) = start(cfg).await;
    let url = server
        .register_exec(exec_req(&["sleep"], true, true, false, false))
        .unwrap();
    let (mut ws, _) = ws_connect(&url, &["v5.channel.k8s.io"]).await.unwrap();
    wait_for("backend start", || {
        counters.started.load(Ordering::SeqCst) == 1
    })
    .await;
    let flood = tokio::spawn(async move {
        let chunk = vec![0u8; 32 * 1024];
        loop {
            if ws.send(ws::encode(false, STDIN, &chunk)).await.is_err() {
                return;
            }
        }
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    // Dropping the task drops the socket mid-flood.
    flood.abort();
    wait_for("backend drop", || {
        counters.dropped.load(Ordering::SeqCst) == 1
    })
    .await;
}
