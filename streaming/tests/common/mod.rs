//! Shared test parts: a fake backend and real SPDY and WebSocket clients.
#![allow(dead_code)]

pub mod kube_api;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use streaming::spdy::{self, Connection, Headers, Incoming, Role, Stream};
use streaming::{Backend, BackendError, DuplexIo, ExitStatus, Streams};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::sync::Notify;

/// Counts backend calls that started and that were dropped before the end.
#[derive(Default)]
pub struct Counters {
    pub started: AtomicUsize,
    pub dropped: AtomicUsize,
    pub finished: AtomicUsize,
    pub started_notify: Notify,
}

struct Guard(Arc<Counters>, bool);

impl Drop for Guard {
    fn drop(&mut self) {
        if self.1 {
            self.0.finished.fetch_add(1, Ordering::SeqCst);
        } else {
            self.0.dropped.fetch_add(1, Ordering::SeqCst);
        }
    }
}

/// Commands: `echo ARGS..`, `cat`, `exit N`, `stderr TEXT`, `tty [once]`
/// (reports resizes on stdout until stdin ends, or after the first one),
/// `delay MS` (prints `done` after MS milliseconds), `sleep` (runs until
/// cancelled),
/// `fail` (cannot run).
#[derive(Default)]
pub struct FakeBackend {
    pub counters: Arc<Counters>,
}

impl FakeBackend {
    fn guard(&self) -> Guard {
        self.counters.started.fetch_add(1, Ordering::SeqCst);
        self.counters.started_notify.notify_waiters();
        Guard(self.counters.clone(), false)
    }
}

#[async_trait::async_trait]
impl Backend for FakeBackend {
    async fn exec(
        &self,
        _container_id: &str,
        cmd: &[String],
        _tty: bool,
        mut streams: Streams,
    ) -> Result<ExitStatus, BackendError> {
        let mut guard = self.guard();
        let code = match cmd[0].as_str() {
            "echo" => {
                let out = streams.stdout.as_mut().ok_or("no stdout")?;
                out.write_all(format!("{}\n", cmd[1..].join(" ")).as_bytes())
                    .await?;
                out.shutdown().await?;
                0
            }
            "cat" => {
                let mut input = streams.stdin.take().ok_or("no stdin")?;
                let mut out = streams.stdout.take().ok_or("no stdout")?;
                tokio::io::copy(&mut input, &mut out).await?;
                out.shutdown().await?;
                0
            }
            "exit" => cmd[1].parse()?,
            "delay" => {
                let ms: u64 = cmd[1].parse()?;
                tokio::time::sleep(Duration::from_millis(ms)).await;
                let out = streams.stdout.as_mut().ok_or("no stdout")?;
                out.write_all(b"done\n").await?;
                out.shutdown().await?;
                0
            }
            "stderr" => {
                let err = streams.stderr.as_mut().ok_or("no stderr")?;
                err.write_all(cmd[1].as_bytes()).await?;
                0
            }
            "tty" => {
                let mut resize = streams.resize.take().ok_or("no resize")?;
                let mut input = streams.stdin.take().ok_or("no stdin")?;
                let out = streams.stdout.as_mut().ok_or("no stdout")?;
                let mut sink = Vec::new();
                let mut stdin_done = false;
                loop {
                    tokio::select! {
                        size = resize.recv() => match size {
                            Some(s) => {
                                out.write_all(format!("resize {}x{}\n", s.width, s.height).as_bytes()).await?;
                                if cmd.get(1).map(String::as_str) == Some("once") {
                                    break;
                                }
                            }
                            None => break,
                        },
                        n = input.read_buf(&mut sink), if !stdin_done => {
                            if n? == 0 { stdin_done = true; break; }
                        }
                    }
                }
                let _ = stdin_done;
                0
            }
            "sleep" => {
                std::future::pending::<()>().await;
                0
            }
            "fail" => return Err("no such executable".into()),
            other => return Err(format!("unknown fake command {other}").into()),
        };
        guard.1 = true;
        Ok(ExitStatus { code })
    }

    async fn attach(
        &self,
        _container_id: &str,
        _tty: bool,
        mut streams: Streams,
    ) -> Result<(), BackendError> {
        let mut guard = self.guard();
        let mut input = streams.stdin.take().ok_or("no stdin")?;
        let mut out = streams.stdout.take().ok_or("no stdout")?;
        tokio::io::copy(&mut input, &mut out).await?;
        guard.1 = true;
        Ok(())
    }

    async fn port_forward(
        &self,
        _pod_sandbox_id: &str,
        port: u16,
        stream: Box<dyn DuplexIo>,
    ) -> Result<(), BackendError> {
        let mut guard = self.guard();
        let tcp = TcpStream::connect(("127.0.0.1", port)).await?;
        let (mut tcp_r, mut tcp_w) = tcp.into_split();
        let (mut s_r, mut s_w) = tokio::io::split(stream);
        // Like containerd and CRI-O: done when the pod side is done; the
        // client's half-close is passed on to the pod.
        let upstream = async {
            tokio::io::copy(&mut s_r, &mut tcp_w).await?;
            tcp_w.shutdown().await?;
            std::future::pending::<std::io::Result<()>>().await
        };
        let downstream = async {
            tokio::io::copy(&mut tcp_r, &mut s_w).await?;
            s_w.shutdown().await
        };
        tokio::select! {
            r = upstream => r?,
            r = downstream => r?,
        }
        guard.1 = true;
        Ok(())
    }
}

pub async fn start(cfg: streaming::Config) -> (streaming::StreamingServer, Arc<Counters>) {
    let backend = FakeBackend::default();
    let counters = backend.counters.clone();
    let server = streaming::StreamingServer::start(cfg, Arc::new(backend))
        .await
        .expect("server starts");
    (server, counters)
}

pub async fn start_default() -> (streaming::StreamingServer, Arc<Counters>) {
    start(streaming::Config::default()).await
}

pub fn exec_req(
    cmd: &[&str],
    stdin: bool,
    stdout: bool,
    stderr: bool,
    tty: bool,
) -> crius_proto::ExecRequest {
    crius_proto::ExecRequest {
        container_id: "ctr".into(),
        cmd: cmd.iter().map(|s| s.to_string()).collect(),
        tty,
        stdin,
        stdout,
        stderr,
    }
}

/// A tiny HTTP-ish server on loopback: answers every connection's first
/// line with a fixed page, then closes.
pub async fn page_server() -> u16 {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = l.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let (r, mut w) = tcp.into_split();
                let mut line = String::new();
                let _ = BufReader::new(r).read_line(&mut line).await;
                let body = format!("you asked: {}", line.trim_end());
                let resp = format!(
                    "HTTP/1.0 200 OK\r\ncontent-length: {}\r\n\r\n{body}",
                    body.len()
                );
                let _ = w.write_all(resp.as_bytes()).await;
                let _ = w.shutdown().await;
            });
        }
    });
    port
}

/// A port nothing listens on.
pub async fn closed_port() -> u16 {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    l.local_addr().unwrap().port()
}

fn split_url(url: &str) -> (String, String) {
    let rest = url.strip_prefix("http://").expect("http url");
    let (host, path) = rest.split_at(rest.find('/').unwrap());
    (host.to_owned(), path.to_owned())
}

/// A SPDY client connection set up the way client-go does it.
pub struct SpdyClient {
    pub conn: Connection,
    pub incoming: Incoming,
    pub protocol: Option<String>,
}

/// Sends the upgrade request; `Err((status, body))` unless it got 101.
pub async fn spdy_connect(url: &str, protocols: &[&str]) -> Result<SpdyClient, (u16, String)> {
    spdy_connect_with(url, protocols, spdy::Options::default()).await
}

/// [`spdy_connect`] with explicit connection options.
pub async fn spdy_connect_with(
    url: &str,
    protocols: &[&str],
    opts: spdy::Options,
) -> Result<SpdyClient, (u16, String)> {
    let (host, path) = split_url(url);
    let mut tcp = TcpStream::connect(&host).await.expect("connect");
    let mut req = format!(
        "POST {path} HTTP/1.1\r\nHost: {host}\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\n"
    );
    for p in protocols {
        req.push_str(&format!("X-Stream-Protocol-Version: {p}\r\n"));
    }
    req.push_str("\r\n");
    tcp.write_all(req.as_bytes()).await.unwrap();
    // Read the head byte by byte: anything after it is already SPDY.
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut b = [0u8; 1];
        if tcp.read(&mut b).await.unwrap() == 0 {
            break;
        }
        head.push(b[0]);
    }
    let head = String::from_utf8_lossy(&head).to_string();
    let status: u16 = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    if status != 101 {
        let mut body = vec![0u8; 4096];
        let n = tokio::time::timeout(Duration::from_secs(2), tcp.read(&mut body))
            .await
            .ok()
            .and_then(|r| r.ok())
            .unwrap_or(0);
        return Err((status, String::from_utf8_lossy(&body[..n]).to_string()));
    }
    let protocol = head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim()
            .eq_ignore_ascii_case("x-stream-protocol-version")
            .then(|| v.trim().to_owned())
    });
    let (conn, incoming) = Connection::new(tcp, Role::Client, opts);
    Ok(SpdyClient {
        conn,
        incoming,
        protocol,
    })
}

impl SpdyClient {
    pub async fn stream(&self, pairs: &[(&str, &str)], fin: bool) -> Stream {
        let mut h = Headers::new();
        for (k, v) in pairs {
            h.insert(k, v);
        }
        self.conn.open_stream(h, fin).await.expect("open stream")
    }
}

pub async fn read_all<R: tokio::io::AsyncRead + Unpin>(r: &mut R) -> String {
    let mut v = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), r.read_to_end(&mut v))
        .await
        .expect("read finishes in time")
        .expect("read ok");
    String::from_utf8(v).unwrap()
}

pub async fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    for _ in 0..500 {
        if cond() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("timed out waiting for {what}");
}

pub type Ws = tokio_tungstenite::WebSocketStream<TcpStream>;

/// Opens a WebSocket with the given subprotocols.
pub async fn ws_connect(url: &str, protocols: &[&str]) -> Result<(Ws, Option<String>), u16> {
    use tokio_tungstenite::tungstenite::Error as WsError;
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let (host, _) = split_url(url);
    let ws_url = url.replacen("http://", "ws://", 1);
    let mut req = ws_url.into_client_request().unwrap();
    if !protocols.is_empty() {
        req.headers_mut().insert(
            "sec-websocket-protocol",
            protocols.join(", ").parse().unwrap(),
        );
    }
    let tcp = TcpStream::connect(&host).await.unwrap();
    match tokio_tungstenite::client_async(req, tcp).await {
        Ok((ws, resp)) => {
            let p = resp
                .headers()
                .get("sec-websocket-protocol")
                .map(|v| v.to_str().unwrap().to_owned());
            Ok((ws, p))
        }
        Err(WsError::Http(resp)) => Err(resp.status().as_u16()),
        Err(e) => panic!("websocket connect failed: {e}"),
    }
}
