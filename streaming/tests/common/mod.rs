//! Shared test parts: a fake backend and real SPDY and WebSocket clients.
#![allow(dead_code)]

pub mod client;
pub mod kube_api;

pub use client::*;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

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

/// Reads to EOF within 10 s as UTF-8 text.
pub async fn read_all<R: tokio::io::AsyncRead + Unpin>(r: &mut R) -> String {
    String::from_utf8(read_all_within(r, Duration::from_secs(10)).await).unwrap()
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
