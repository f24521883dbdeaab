//! remotecommand and portforward over SPDY/3.1, driven by a real SPDY
//! client built on the crate's frame and connection code.

mod common;

use std::sync::atomic::Ordering;
use std::time::Duration;

use common::*;
use tokio::io::AsyncWriteExt;

const V4: &str = "v4.channel.k8s.io";

#[tokio::test]
async fn exec_echo_reports_success_on_v4() {
    let (server, _) = start_default().await;
    let url = server
        .register_exec(exec_req(
            &["echo", "hello", "world"],
            false,
            true,
            false,
            false,
        ))
        .unwrap();
    let c = spdy_connect(&url, &[V4, "v3.channel.k8s.io"])
        .await
        .unwrap();
    assert_eq!(c.protocol.as_deref(), Some(V4));
    let mut error = c.stream(&[("streamType", "error")], true).await;
    let mut stdout = c.stream(&[("streamType", "stdout")], true).await;
    assert_eq!(read_all(&mut stdout).await, "hello world\n");
    let status: serde_json::Value = serde_json::from_str(&read_all(&mut error).await).unwrap();
    assert_eq!(status["status"], "Success");
}

#[tokio::test]
async fn exec_stdin_round_trip_with_half_close() {
    let (server, _) = start_default().await;
    let url = server
        .register_exec(exec_req(&["cat"], true, true, false, false))
        .unwrap();
    let c = spdy_connect(&url, &[V4]).await.unwrap();
    let mut error = c.stream(&[("streamType", "error")], true).await;
    let mut stdin = c.stream(&[("streamType", "stdin")], false).await;
    let mut stdout = c.stream(&[("streamType", "stdout")], true).await;
    // Larger than the 64 KiB initial window, so flow control is exercised.
    let payload: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    let expected = payload.clone();
    let writer = tokio::spawn(async move {
        stdin.write_all(&payload).await.unwrap();
        // FIN on stdin: the process sees EOF.
        stdin.shutdown().await.unwrap();
        stdin
    });
    let mut got = Vec::new();
    tokio::time::timeout(
        Duration::from_secs(10),
        tokio::io::AsyncReadExt::read_to_end(&mut stdout, &mut got),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(got.len(), expected.len());
    assert!(got == expected);
    let _stdin = writer.await.unwrap();
    let status: serde_json::Value = serde_json::from_str(&read_all(&mut error).await).unwrap();
    assert_eq!(status["status"], "Success");
}

#[tokio::test]
async fn exec_exit_code_7_is_non_zero_exit_code_on_v4() {
    let (server, _) = start_default().await;
    let url = server
        .register_exec(exec_req(&["exit", "7"], false, true, true, false))
        .unwrap();
    let c = spdy_connect(&url, &[V4]).await.unwrap();
    let mut error = c.stream(&[("streamType", "error")], true).await;
    let _stdout = c.stream(&[("streamType", "stdout")], true).await;
    let _stderr = c.stream(&[("streamType", "stderr")], true).await;
    let status: serde_json::Value = serde_json::from_str(&read_all(&mut error).await).unwrap();
    assert_eq!(status["status"], "Failure");
    assert_eq!(status["reason"], "NonZeroExitCode");
    assert_eq!(status["details"]["causes"][0]["reason"], "ExitCode");
    assert_eq!(status["details"]["causes"][0]["message"], "7");
}

#[tokio::test]
async fn exec_exit_code_on_v2_is_plain_text() {
    let (server, _) = start_default().await;
    let url = server
        .register_exec(exec_req(&["exit", "3"], false, true, false, false))
        .unwrap();
    let c = spdy_connect(&url, &["v2.channel.k8s.io"]).await.unwrap();
    assert_eq!(c.protocol.as_deref(), Some("v2.channel.k8s.io"));
    let mut error = c.stream(&[("streamType", "error")], true).await;
    let _stdout = c.stream(&[("streamType", "stdout")], true).await;
    let text = read_all(&mut error).await;
    assert!(
        text.contains("non-zero exit code") && text.ends_with('3'),
        "{text}"
    );
}

#[tokio::test]
async fn exec_failure_is_internal_error() {
    let (server, _) = start_default().await;
    let url = server
        .register_exec(exec_req(&["fail"], false, true, false, false))
        .unwrap();
    let c = spdy_connect(&url, &[V4]).await.unwrap();
    let mut error = c.stream(&[("streamType", "error")], true).await;
    let _stdout = c.stream(&[("streamType", "stdout")], true).await;
    let status: serde_json::Value = serde_json::from_str(&read_all(&mut error).await).unwrap();
    assert_eq!(status["reason"], "InternalError");
    assert!(
        status["message"]
            .as_str()
            .unwrap()
            .contains("no such executable")
    );
}

#[tokio::test]
async fn stderr_stream_carries_stderr() {
    let (server, _) = start_default().await;
    let url = server
        .register_exec(exec_req(&["stderr", "oops"], false, true, true, false))
        .unwrap();
    let c = spdy_connect(&url, &["v3.channel.k8s.io"]).await.unwrap();
    let mut error = c.stream(&[("streamType", "error")], true).await;
    let mut stdout = c.stream(&[("streamType", "stdout")], true).await;
    let mut stderr = c.stream(&[("streamType", "stderr")], true).await;
    assert_eq!(read_all(&mut stderr).await, "oops");
    assert_eq!(read_all(&mut stdout).await, "");
    // v3 reports success as silence.
    assert_eq!(read_all(&mut error).await, "");
}

#[tokio::test]
async fn tty_resize_events_reach_the_backend() {
    let (server, _) = start_default().await;
    let url = server
        .register_exec(exec_req(&["tty"], true, true, false, true))
        .unwrap();
    let c = spdy_connect(&url, &[V4]).await.unwrap();
    let mut error = c.stream(&[("streamType", "error")], true).await;
    let mut stdin = c.stream(&[("streamType", "stdin")], false).await;
    let mut stdout = c.stream(&[("streamType", "stdout")], true).await;
    let mut resize = c.stream(&[("streamType", "resize")], false).await;
    resize
        .write_all(br#"{"Width":100,"Height":40}"#)
        .await
        .unwrap();
    resize.write_all(br#"{"Width":120,"#).await.unwrap();
    resize.write_all(br#""Height":50}"#).await.unwrap();
    let mut seen = String::new();
    while !seen.contains("resize 120x50") {
        let mut buf = [0u8; 256];
        let n = tokio::time::timeout(
            Duration::from_secs(5),
            tokio::io::AsyncReadExt::read(&mut stdout, &mut buf),
        )
        .await
        .unwrap()
        .unwrap();
        assert!(n > 0, "stdout ended early: {seen:?}");
        seen.push_str(std::str::from_utf8(&buf[..n]).unwrap());
    }
    assert_eq!(seen, "resize 100x40\nresize 120x50\n");
    stdin.shutdown().await.unwrap();
    let status: serde_json::Value = serde_json::from_str(&read_all(&mut error).await).unwrap();
    assert_eq!(status["status"], "Success");
}

#[tokio::test]
async fn attach_copies_stdin_to_stdout() {
    let (server, _) = start_default().await;
    let url = server
        .register_attach(crius_proto::AttachRequest {
            container_id: "ctr".into(),
            stdin: true,
            tty: false,
            stdout: true,
            stderr: false,
        })
        .unwrap();
    assert!(url.contains("/attach/"));
    let c = spdy_connect(&url, &[V4]).await.unwrap();
    let mut error = c.stream(&[("streamType", "error")], true).await;
    let mut stdin = c.stream(&[("streamType", "stdin")], false).await;
    let mut stdout = c.stream(&[("streamType", "stdout")], true).await;
    stdin.write_all(b"attached\n").await.unwrap();
    stdin.shutdown().await.unwrap();
    assert_eq!(read_all(&mut stdout).await, "attached\n");
    let status: serde_json::Value = serde_json::from_str(&read_all(&mut error).await).unwrap();
    assert_eq!(status["status"], "Success");
}

fn pf_req() -> crius_proto::PortForwardRequest {
    crius_proto::PortForwardRequest {
        pod_sandbox_id: "sandbox".into(),
        port: vec![],
    }
}

#[tokio::test]
async fn port_forward_get_round_trip_and_many_requests() {
    let (server, _) = start_default().await;
    let port = page_server().await;
    let url = server.register_port_forward(pf_req()).unwrap();
    let c = spdy_connect(&url, &["portforward.k8s.io"]).await.unwrap();
    assert_eq!(c.protocol.as_deref(), Some("portforward.k8s.io"));
    let p = port.to_string();
    // Several forwarded connections on one SPDY connection, as kubectl
    // does for each local connection.
    for id in 0..3 {
        let rid = id.to_string();
        let mut error = c
            .stream(
                &[("streamType", "error"), ("port", &p), ("requestID", &rid)],
                true,
            )
            .await;
        let mut data = c
            .stream(
                &[("streamType", "data"), ("port", &p), ("requestID", &rid)],
                false,
            )
            .await;
        data.write_all(format!("GET /{id} HTTP/1.0\r\n\r\n").as_bytes())
            .await
            .unwrap();
        let resp = read_all(&mut data).await;
        assert!(resp.starts_with("HTTP/1.0 200 OK"), "{resp}");
        assert!(
            resp.ends_with(&format!("you asked: GET /{id} HTTP/1.0")),
            "{resp}"
        );
        assert_eq!(read_all(&mut error).await, "");
    }
}

#[tokio::test]
async fn port_forward_to_closed_port_reports_error() {
    let (server, _) = start_default().await;
    let port = closed_port().await.to_string();
    let url = server.register_port_forward(pf_req()).unwrap();
    let c = spdy_connect(&url, &["portforward.k8s.io"]).await.unwrap();
    let mut error = c
        .stream(
            &[("streamType", "error"), ("port", &port), ("requestID", "0")],
            true,
        )
        .await;
    let mut data = c
        .stream(
            &[("streamType", "data"), ("port", &port), ("requestID", "0")],
            false,
        )
        .await;
    let msg = read_all(&mut error).await;
    assert!(
        msg.contains(&format!("error forwarding port {port}")),
        "{msg}"
    );
    assert_eq!(read_all(&mut data).await, "");
}

#[tokio::test]
async fn token_is_single_use_and_expires() {
    let cfg = streaming::Config {
        token_ttl: Duration::from_millis(300),
        ..Default::default()
    };
    let (server, _) = start(cfg).await;
    let url = server
        .register_exec(exec_req(&["echo", "x"], false, true, false, false))
        .unwrap();
    let c = spdy_connect(&url, &[V4]).await.unwrap();
    let mut error = c.stream(&[("streamType", "error")], true).await;
    let _out = c.stream(&[("streamType", "stdout")], true).await;
    read_all(&mut error).await;
    let reuse = spdy_connect(&url, &[V4])
        .await
        .err()
        .expect("reuse refused");
    assert_eq!(reuse.0, 404);

    let late = server
        .register_exec(exec_req(&["echo", "x"], false, true, false, false))
        .unwrap();
    tokio::time::sleep(Duration::from_millis(400)).await;
    let expired = spdy_connect(&late, &[V4])
        .await
        .err()
        .expect("expired refused");
    assert_eq!(expired.0, 404);

    let bogus = format!("http://{}/exec/not-a-token", server.local_addr());
    assert_eq!(spdy_connect(&bogus, &[V4]).await.err().unwrap().0, 404);
}

#[tokio::test]
async fn unknown_protocol_is_forbidden() {
    let (server, _) = start_default().await;
    let url = server
        .register_exec(exec_req(&["echo"], false, true, false, false))
        .unwrap();
    let (status, body) = spdy_connect(&url, &["v9.channel.k8s.io"])
        .await
        .err()
        .unwrap();
    assert_eq!(status, 403);
    assert!(body.contains("unable to negotiate protocol"), "{body}");
}

#[tokio::test]
async fn client_disconnect_cancels_the_backend() {
    let (server, counters) = start_default().await;
    let url = server
        .register_exec(exec_req(&["sleep"], true, true, false, false))
        .unwrap();
    let c = spdy_connect(&url, &[V4]).await.unwrap();
    let _error = c.stream(&[("streamType", "error")], true).await;
    let _stdin = c.stream(&[("streamType", "stdin")], false).await;
    let _stdout = c.stream(&[("streamType", "stdout")], true).await;
    wait_for("backend start", || {
        counters.started.load(Ordering::SeqCst) == 1
    })
    .await;
    // Vanish without a goodbye: the TCP connection just closes.
    c.conn.abort();
    drop(c);
    wait_for("backend drop", || {
        counters.dropped.load(Ordering::SeqCst) == 1
    })
    .await;
    assert_eq!(counters.finished.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn missing_streams_time_out() {
    let cfg = streaming::Config {
        stream_creation_timeout: Duration::from_millis(200),
        ..Default::default()
    };
    let (server, counters) = start(cfg).await;
    let url = server
        .register_exec(exec_req(&["echo", "x"], false, true, false, false))
        .unwrap();
    let mut c = spdy_connect(&url, &[V4]).await.unwrap();
    let _error = c.stream(&[("streamType", "error")], true).await;
    // No stdout stream: the server gives up and closes the connection.
    tokio::time::timeout(Duration::from_secs(5), c.conn.closed())
        .await
        .expect("server closes the connection");
    assert!(c.incoming.accept().await.is_none());
    assert_eq!(counters.started.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn idle_session_is_closed() {
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
    let c = spdy_connect(&url, &[V4]).await.unwrap();
    let _error = c.stream(&[("streamType", "error")], true).await;
    let _stdin = c.stream(&[("streamType", "stdin")], false).await;
    let _stdout = c.stream(&[("streamType", "stdout")], true).await;
    tokio::time::timeout(Duration::from_secs(5), c.conn.closed())
        .await
        .expect("idle connection closed");
    wait_for("backend drop", || {
        counters.dropped.load(Ordering::SeqCst) == 1
    })
    .await;
}

#[tokio::test]
async fn ping_is_echoed() {
    let (server, _) = start_default().await;
    let url = server
        .register_exec(exec_req(&["echo", "x"], false, true, false, false))
        .unwrap();
    let c = spdy_connect(&url, &[V4]).await.unwrap();
    // The client's ping ids are odd; the echo keeps the connection alive and
    // must not break the session.
    c.conn.ping(1).await.unwrap();
    let mut error = c.stream(&[("streamType", "error")], true).await;
    let mut out = c.stream(&[("streamType", "stdout")], true).await;
    assert_eq!(read_all(&mut out).await, "x\n");
    assert!(read_all(&mut error).await.contains("Success"));
}

#[tokio::test]
async fn shutdown_ends_sessions() {
    let (server, counters) = start_default().await;
    let url = server
        .register_exec(exec_req(&["sleep"], true, true, false, false))
        .unwrap();
    let c = spdy_connect(&url, &[V4]).await.unwrap();
    let _error = c.stream(&[("streamType", "error")], true).await;
    let _stdin = c.stream(&[("streamType", "stdin")], false).await;
    let _stdout = c.stream(&[("streamType", "stdout")], true).await;
    wait_for("backend start", || {
        counters.started.load(Ordering::SeqCst) == 1
    })
    .await;
    tokio::time::timeout(Duration::from_secs(10), server.shutdown())
        .await
        .expect("shutdown finishes");
    assert_eq!(counters.dropped.load(Ordering::SeqCst), 1);
    assert!(
        tokio::net::TcpStream::connect(server.local_addr())
            .await
            .is_err()
    );
}

#[tokio::test]
async fn peer_without_flow_control_is_not_stalled() {
    // Go's spdystream (kubectl, crictl) never sends WINDOW_UPDATE; the
    // server must keep sending past the initial 64 KiB window anyway.
    let (server, _) = start_default().await;
    let url = server
        .register_exec(exec_req(&["cat"], true, true, false, false))
        .unwrap();
    let opts = streaming::spdy::Options {
        window_updates: false,
        ..Default::default()
    };
    let c = spdy_connect_with(&url, &[V4], opts).await.unwrap();
    let mut error = c.stream(&[("streamType", "error")], true).await;
    let mut stdin = c.stream(&[("streamType", "stdin")], false).await;
    let mut stdout = c.stream(&[("streamType", "stdout")], true).await;
    let payload = vec![b'z'; 300_000];
    let writer = tokio::spawn(async move {
        stdin.write_all(&payload).await.unwrap();
        stdin.shutdown().await.unwrap();
        stdin
    });
    let out = read_all(&mut stdout).await;
    assert_eq!(out.len(), 300_000);
    let _stdin = writer.await.unwrap();
    assert!(read_all(&mut error).await.contains("Success"));
}

#[tokio::test]
async fn incomplete_port_forward_pair_is_dropped() {
    let cfg = streaming::Config {
        stream_creation_timeout: Duration::from_millis(200),
        ..Default::default()
    };
    let (server, counters) = start(cfg).await;
    let url = server.register_port_forward(pf_req()).unwrap();
    let c = spdy_connect(&url, &["portforward.k8s.io"]).await.unwrap();
    // An error stream whose data stream never comes is reset after the
    // stream creation timeout: reading it ends instead of hanging.
    let mut error = c
        .stream(
            &[("streamType", "error"), ("port", "80"), ("requestID", "1")],
            true,
        )
        .await;
    assert_eq!(read_all(&mut error).await, "");
    assert_eq!(counters.started.load(Ordering::SeqCst), 0);
}

#[tokio::test(flavor = "current_thread")]
async fn finished_and_abandoned_sessions_leave_no_tasks() {
    let (server, counters) = start_default().await;
    let metrics = tokio::runtime::Handle::current().metrics();
    let baseline = metrics.num_alive_tasks();
    for i in 0..5 {
        // A finished session...
        let url = server
            .register_exec(exec_req(&["echo", "x"], false, true, false, false))
            .unwrap();
        let c = spdy_connect(&url, &[V4]).await.unwrap();
        let mut error = c.stream(&[("streamType", "error")], true).await;
        let mut out = c.stream(&[("streamType", "stdout")], true).await;
        assert_eq!(read_all(&mut out).await, "x\n");
        read_all(&mut error).await;
        drop((error, out, c));
        // ...and one whose client vanishes mid-stream.
        let url = server
            .register_exec(exec_req(&["sleep"], true, true, false, false))
            .unwrap();
        let c = spdy_connect(&url, &[V4]).await.unwrap();
        let s1 = c.stream(&[("streamType", "error")], true).await;
        let s2 = c.stream(&[("streamType", "stdin")], false).await;
        let s3 = c.stream(&[("streamType", "stdout")], true).await;
        wait_for("backend start", || {
            counters.started.load(Ordering::SeqCst) == 2 * i + 2
        })
        .await;
        c.conn.abort();
        drop((s1, s2, s3, c));
    }
    wait_for("all backends dropped", || {
        counters.dropped.load(Ordering::SeqCst) == 5
    })
    .await;
    wait_for("tasks back to baseline", || {
        metrics.num_alive_tasks() <= baseline
    })
    .await;
}

#[tokio::test]
async fn disconnect_is_noticed_while_stdin_backs_up() {
    // The backend never reads stdin, the client floods it and vanishes: the
    // server has stopped reading the socket, so only its keepalive pings
    // can notice the client is gone.
    let cfg = streaming::Config {
        ping_interval: Duration::from_millis(100),
        ..Default::default()
    };
    let (server, counters) = start(cfg).await;
    let url = server
        .register_exec(exec_req(&["sleep"], true, true, false, false))
        .unwrap();
    let opts = streaming::spdy::Options {
        window_updates: false,
        ..Default::default()
    };
    let c = spdy_connect_with(&url, &[V4], opts).await.unwrap();
    let _error = c.stream(&[("streamType", "error")], true).await;
    let mut stdin = c.stream(&[("streamType", "stdin")], false).await;
    let _stdout = c.stream(&[("streamType", "stdout")], true).await;
    wait_for("backend start", || {
        counters.started.load(Ordering::SeqCst) == 1
    })
    .await;
    let flood = tokio::spawn(async move {
        let chunk = vec![0u8; 32 * 1024];
        loop {
            if stdin.write_all(&chunk).await.is_err() {
                return;
            }
        }
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    c.conn.abort();
    wait_for("backend drop", || {
        counters.dropped.load(Ordering::SeqCst) == 1
    })
    .await;
    flood.abort();
}
