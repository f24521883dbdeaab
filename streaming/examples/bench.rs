//! Streaming benchmark on loopback: exec round trip latency (SPDY v4 and
//! WebSocket v5, `echo` from an in-process backend) and port-forward
//! throughput over one SPDY connection to a local TCP sink.
//!
//! `cargo run --release -p streaming --example bench [MiB]` prints numbers;
//! nothing is asserted.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use streaming::spdy::{self, Connection, Headers, Role};
use streaming::{Backend, BackendError, DuplexIo, ExitStatus, Streams};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

struct Echo;

#[async_trait::async_trait]
impl Backend for Echo {
    async fn exec(
        &self,
        _: &str,
        cmd: &[String],
        _: bool,
        mut streams: Streams,
    ) -> Result<ExitStatus, BackendError> {
        let out = streams.stdout.as_mut().ok_or("no stdout")?;
        out.write_all(format!("{}\n", cmd[1..].join(" ")).as_bytes())
            .await?;
        out.shutdown().await?;
        Ok(ExitStatus { code: 0 })
    }

    async fn attach(&self, _: &str, _: bool, _: Streams) -> Result<(), BackendError> {
        Err("not benchmarked".into())
    }

    async fn port_forward(
        &self,
        _: &str,
        port: u16,
        stream: Box<dyn DuplexIo>,
    ) -> Result<(), BackendError> {
        let mut tcp = TcpStream::connect(("127.0.0.1", port)).await?;
        let mut stream = stream;
        tokio::io::copy_bidirectional(&mut tcp, &mut stream).await?;
        Ok(())
    }
}

async fn spdy_upgrade(url: &str, protocol: &str) -> TcpStream {
    let rest = url.strip_prefix("http://").unwrap();
    let (host, path) = rest.split_at(rest.find('/').unwrap());
    let mut tcp = TcpStream::connect(host).await.unwrap();
    let req = format!(
        "POST {path} HTTP/1.1\r\nHost: {host}\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\nX-Stream-Protocol-Version: {protocol}\r\n\r\n"
    );
    tcp.write_all(req.as_bytes()).await.unwrap();
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        head.push(tcp.read_u8().await.unwrap());
    }
    assert!(head.starts_with(b"HTTP/1.1 101"));
    tcp
}

fn headers(pairs: &[(&str, &str)]) -> Headers {
    let mut h = Headers::new();
    for (k, v) in pairs {
        h.insert(k, v);
    }
    h
}

fn exec_req() -> crius_proto::ExecRequest {
    crius_proto::ExecRequest {
        container_id: "c".into(),
        cmd: vec!["echo".into(), "hi".into()],
        stdout: true,
        ..Default::default()
    }
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

#[tokio::main]
async fn main() {
    let mib: u64 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1024);
    let server = streaming::StreamingServer::start(Default::default(), Arc::new(Echo))
        .await
        .unwrap();

    let mut spdy_times = Vec::new();
    for _ in 0..200 {
        let t = Instant::now();
        let url = server.register_exec(exec_req()).unwrap();
        let tcp = spdy_upgrade(&url, "v4.channel.k8s.io").await;
        let (conn, _inc) = Connection::new(tcp, Role::Client, spdy::Options::default());
        let mut err = conn
            .open_stream(headers(&[("streamType", "error")]), true)
            .await
            .unwrap();
        let mut out = conn
            .open_stream(headers(&[("streamType", "stdout")]), true)
            .await
            .unwrap();
        let mut s = String::new();
        out.read_to_string(&mut s).await.unwrap();
        let mut status = String::new();
        err.read_to_string(&mut status).await.unwrap();
        assert!(status.contains("Success") && s == "hi\n");
        spdy_times.push(t.elapsed());
        conn.abort();
    }

    let mut ws_times = Vec::new();
    for _ in 0..200 {
        use tokio_tungstenite::tungstenite::client::IntoClientRequest;
        let t = Instant::now();
        let url = server.register_exec(exec_req()).unwrap();
        let mut req = url
            .replacen("http://", "ws://", 1)
            .into_client_request()
            .unwrap();
        req.headers_mut().insert(
            "sec-websocket-protocol",
            "v5.channel.k8s.io".parse().unwrap(),
        );
        let (mut ws, _) = tokio_tungstenite::connect_async(req).await.unwrap();
        let mut got_status = false;
        while let Some(Ok(m)) = ws.next().await {
            if let Some((3, _)) = streaming::ws::decode(false, &m) {
                got_status = true;
            }
        }
        assert!(got_status);
        ws_times.push(t.elapsed());
    }

    // Port-forward: the backend copies into a TCP sink that counts bytes.
    let sink = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let sink_port = sink.local_addr().unwrap().port();
    let counted = tokio::spawn(async move {
        let (mut tcp, _) = sink.accept().await.unwrap();
        let mut buf = vec![0u8; 256 * 1024];
        let mut total = 0u64;
        loop {
            let n = tcp.read(&mut buf).await.unwrap();
            if n == 0 {
                return total;
            }
            total += n as u64;
        }
    });
    let url = server
        .register_port_forward(crius_proto::PortForwardRequest {
            pod_sandbox_id: "p".into(),
            port: vec![],
        })
        .unwrap();
    let tcp = spdy_upgrade(&url, "portforward.k8s.io").await;
    let (conn, _inc) = Connection::new(tcp, Role::Client, spdy::Options::default());
    let p = sink_port.to_string();
    let _err = conn
        .open_stream(
            headers(&[("streamType", "error"), ("port", &p), ("requestID", "0")]),
            true,
        )
        .await
        .unwrap();
    let mut data = conn
        .open_stream(
            headers(&[("streamType", "data"), ("port", &p), ("requestID", "0")]),
            false,
        )
        .await
        .unwrap();
    let chunk = vec![0x5au8; 64 * 1024];
    let total = mib * 1024 * 1024;
    let t = Instant::now();
    let mut sent = 0u64;
    while sent < total {
        data.write_all(&chunk).await.unwrap();
        sent += chunk.len() as u64;
    }
    data.shutdown().await.unwrap();
    let received = counted.await.unwrap();
    let secs = t.elapsed().as_secs_f64();
    assert_eq!(received, total);

    println!(
        "exec echo round trip, SPDY v4:      median {:.2} ms over 200",
        median(spdy_times).as_secs_f64() * 1000.0
    );
    println!(
        "exec echo round trip, WebSocket v5: median {:.2} ms over 200",
        median(ws_times).as_secs_f64() * 1000.0
    );
    println!(
        "port-forward over one SPDY connection: {mib} MiB in {secs:.2} s = {:.0} MB/s",
        total as f64 / secs / 1e6
    );
    server.shutdown().await;
}
