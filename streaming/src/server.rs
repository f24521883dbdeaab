//! The HTTP/1.1 server that the streaming URLs point to.
//!
//! Requests are `GET` or `POST` on `/exec/<token>`, `/attach/<token>` or
//! `/portforward/<token>` asking to upgrade to SPDY/3.1 or WebSocket. The
//! token picks the parked CRI request; the upgrade picks the protocol.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use http::header::{CONNECTION, UPGRADE};
use http::{HeaderMap, HeaderValue, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::Role as WsRole;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::backend::Backend;
use crate::remotecommand::{Command, StreamOptions};
use crate::tokens::{self, TokenCache};
use crate::{Error, over_spdy, over_ws};

/// The header Kubernetes clients use to offer and confirm SPDY subprotocols.
const PROTOCOL_HEADER: &str = "x-stream-protocol-version";
const ACCEPTED_PROTOCOLS_HEADER: &str = "x-accepted-stream-protocol-versions";
/// How long a client may take to send its request head.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// Streaming server settings; every field has a sensible default.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where to listen; port 0 picks a free port.
    pub addr: SocketAddr,
    /// Base of the returned URLs (`http://host:port`); defaults to the bound
    /// address, which is only useful when that is not a wildcard address.
    pub base_url: Option<String>,
    /// How long a returned URL stays usable.
    pub token_ttl: Duration,
    /// Close sessions that moved no data for this long.
    pub idle_timeout: Duration,
    /// How long a SPDY client may take to open its streams.
    pub stream_creation_timeout: Duration,
    /// How often the server pings the client (SPDY PING, WebSocket ping):
    /// a client that vanished is noticed by the failing write, and its
    /// session cancelled, even if nothing else is being sent.
    pub ping_interval: Duration,
    /// Serve HTTPS with this certificate chain and key (PEM files); URLs
    /// then start with `https://`.
    pub tls: Option<TlsFiles>,
}

/// PEM files for serving TLS.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    /// The certificate chain, leaf first.
    pub cert: PathBuf,
    /// The private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

fn tls_acceptor(files: &TlsFiles) -> Result<TlsAcceptor, Error> {
    let certs = CertificateDer::pem_file_iter(&files.cert)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|source| Error::TlsFile {
            what: "certificate",
            path: files.cert.clone(),
            source,
        })?;
    let key = PrivateKeyDer::from_pem_file(&files.key).map_err(|source| Error::TlsFile {
        what: "key",
        path: files.key.clone(),
        source,
    })?;
    // Name the provider: other crates in the workspace may enable more than
    // one rustls backend, and then the implicit default is ambiguous.
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .and_then(|b| b.with_no_client_auth().with_single_cert(certs, key))
        .map_err(Error::TlsConfig)?;
    Ok(TlsAcceptor::from(Arc::new(cfg)))
}

impl Default for Config {
    fn default() -> Self {
        Self {
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            base_url: None,
            token_ttl: Duration::from_secs(60),
            idle_timeout: Duration::from_secs(4 * 60 * 60),
            stream_creation_timeout: Duration::from_secs(30),
            ping_interval: Duration::from_secs(30),
            tls: None,
        }
    }
}

struct Inner {
    cfg: Arc<Config>,
    tokens: TokenCache,
    backend: Arc<dyn Backend>,
    shutdown: CancellationToken,
    tasks: TaskTracker,
}

/// A running streaming server.
pub struct StreamingServer {
    inner: Arc<Inner>,
    local_addr: SocketAddr,
    base_url: String,
}

impl std::fmt::Debug for StreamingServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamingServer")
            .field("local_addr", &self.local_addr)
            .field("base_url", &self.base_url)
            .finish()
    }
}

impl StreamingServer {
    /// Binds the listener and starts serving.
    pub async fn start(cfg: Config, backend: Arc<dyn Backend>) -> Result<Self, Error> {
        let tls = cfg.tls.as_ref().map(tls_acceptor).transpose()?;
        let listener = TcpListener::bind(cfg.addr)
            .await
            .map_err(|source| Error::Bind {
                addr: cfg.addr,
                source,
            })?;
        let local_addr = listener.local_addr().map_err(|source| Error::Bind {
            addr: cfg.addr,
            source,
        })?;
        let base_url = cfg
            .base_url
            .clone()
            .unwrap_or_else(|| {
                let scheme = if tls.is_some() { "https" } else { "http" };
                format!("{scheme}://{local_addr}")
            })
            .trim_end_matches('/')
            .to_owned();
        let inner = Arc::new(Inner {
            tokens: TokenCache::new(cfg.token_ttl),
            cfg: Arc::new(cfg),
            backend,
            shutdown: CancellationToken::new(),
            tasks: TaskTracker::new(),
        });
        inner.tasks.spawn(accept_loop(inner.clone(), listener, tls));
        Ok(Self {
            inner,
            local_addr,
            base_url,
        })
    }

    /// The address the server listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The `scheme://host:port` prefix of the URLs handed out.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    fn register(&self, kind: &str, req: tokens::Request) -> Result<String, Error> {
        let token = self
            .inner
            .tokens
            .insert(req)
            .map_err(|_| Error::TooManySessions)?;
        Ok(format!("{}/{kind}/{token}", self.base_url))
    }

    /// Parks a validated Exec request and returns the URL for the client.
    pub fn register_exec(&self, req: crius_proto::ExecRequest) -> Result<String, Error> {
        check_streams(req.stdin, req.stdout, req.stderr, req.tty)?;
        if req.cmd.is_empty() {
            return Err(Error::InvalidRequest {
                what: "command",
                value: String::new(),
            });
        }
        self.register("exec", tokens::Request::Exec(req))
    }

    /// Parks a validated Attach request and returns the URL for the client.
    pub fn register_attach(&self, req: crius_proto::AttachRequest) -> Result<String, Error> {
        check_streams(req.stdin, req.stdout, req.stderr, req.tty)?;
        self.register("attach", tokens::Request::Attach(req))
    }

    /// Parks a validated PortForward request and returns the URL.
    pub fn register_port_forward(
        &self,
        req: crius_proto::PortForwardRequest,
    ) -> Result<String, Error> {
        if let Some(p) = req.port.iter().find(|p| !(1..=65535).contains(*p)) {
            return Err(Error::InvalidRequest {
                what: "port",
                value: p.to_string(),
            });
        }
        self.register("portforward", tokens::Request::PortForward(req))
    }

    /// Stops accepting, ends every session (their backend futures are
    /// dropped) and waits for their tasks to finish.
    pub async fn shutdown(&self) {
        self.inner.shutdown.cancel();
        self.inner.tasks.close();
        self.inner.tasks.wait().await;
    }
}

impl Drop for StreamingServer {
    /// A dropped server stops accepting and ends its sessions (without
    /// waiting for them; use [`StreamingServer::shutdown`] for that).
    fn drop(&mut self) {
        self.inner.shutdown.cancel();
    }
}

fn check_streams(stdin: bool, stdout: bool, stderr: bool, tty: bool) -> Result<(), Error> {
    if !(stdin || stdout || stderr) {
        return Err(Error::InvalidRequest {
            what: "streams",
            value: "one of stdin, stdout, and stderr must be set".into(),
        });
    }
    if tty && stderr {
        return Err(Error::InvalidRequest {
            what: "streams",
            value: "tty and stderr cannot both be set".into(),
        });
    }
    Ok(())
}

async fn accept_loop(inner: Arc<Inner>, listener: TcpListener, tls: Option<TlsAcceptor>) {
    loop {
        let (tcp, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(c) => c,
                Err(err) => {
                    tracing::warn!(%err, "streaming accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = inner.shutdown.cancelled() => return,
        };
        let _ = tcp.set_nodelay(true);
        let conn_inner = inner.clone();
        let tls = tls.clone();
        inner.tasks.spawn(async move {
            let shutdown = conn_inner.shutdown.clone();
            let serve = async move {
                match tls {
                    None => serve_http(conn_inner, tcp, peer).await,
                    Some(acceptor) => {
                        match tokio::time::timeout(HEADER_READ_TIMEOUT, acceptor.accept(tcp)).await
                        {
                            Ok(Ok(stream)) => serve_http(conn_inner, stream, peer).await,
                            Ok(Err(err)) => tracing::debug!(%peer, %err, "tls handshake failed"),
                            Err(_) => tracing::debug!(%peer, "tls handshake timed out"),
                        }
                    }
                }
            };
            tokio::select! {
                _ = serve => {}
                _ = shutdown.cancelled() => {}
            }
        });
    }
}

async fn serve_http<I>(inner: Arc<Inner>, io: I, peer: SocketAddr)
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let svc = service_fn(move |req| handle(inner.clone(), req));
    // The timer arms hyper's header read timeout, so a client that connects
    // and never sends a request does not hold a task.
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .serve_connection(TokioIo::new(io), svc)
        .with_upgrades();
    if let Err(err) = conn.await {
        tracing::debug!(%peer, %err, "streaming http connection failed");
    }
}

type Resp = Response<Full<Bytes>>;

fn plain(status: StatusCode, msg: impl Into<String>) -> Resp {
    let mut r = Response::new(Full::new(Bytes::from(msg.into())));
    *r.status_mut() = status;
    r.headers_mut()
        .insert("content-type", HeaderValue::from_static("text/plain"));
    r
}

fn header_has_token(h: &HeaderMap, name: impl http::header::AsHeaderName, token: &str) -> bool {
    h.get_all(name).iter().any(|v| {
        v.to_str()
            .unwrap_or("")
            .split(',')
            .any(|t| t.trim().eq_ignore_ascii_case(token))
    })
}

/// Every value of a possibly repeated, comma-separated header.
fn header_list(h: &HeaderMap, name: &str) -> Vec<String> {
    h.get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim().to_owned())
        .filter(|t| !t.is_empty())
        .collect()
}

/// The first protocol the client offers that we serve, as the Kubernetes
/// negotiation does (client order wins).
fn negotiate(offered: &[String], ours: &[&str]) -> Option<String> {
    offered.iter().find(|p| ours.contains(&p.as_str())).cloned()
}

enum Session {
    Remote {
        command: Command,
        opts: StreamOptions,
    },
    PortForward {
        pod_sandbox_id: String,
        ports: Vec<u16>,
    },
}

fn query_ports(query: Option<&str>) -> Result<Vec<u16>, String> {
    let mut ports = Vec::new();
    for pair in query.unwrap_or("").split('&') {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        if k != "port" {
            continue;
        }
        for p in v.split(',').filter(|p| !p.is_empty()) {
            match p.parse::<u16>() {
                Ok(p) if p > 0 => ports.push(p),
                _ => return Err(format!("invalid port {p:?}")),
            }
        }
    }
    Ok(ports)
}

async fn handle(inner: Arc<Inner>, mut req: Request<Incoming>) -> Result<Resp, Infallible> {
    if req.method() != http::Method::GET && req.method() != http::Method::POST {
        return Ok(plain(StatusCode::METHOD_NOT_ALLOWED, "method not allowed"));
    }
    let path = req.uri().path().to_owned();
    let mut parts = path.trim_start_matches('/').splitn(2, '/');
    let (kind, token) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    if !matches!(kind, "exec" | "attach" | "portforward") || token.is_empty() {
        return Ok(plain(StatusCode::NOT_FOUND, "not found"));
    }
    let parked = match inner.tokens.consume(token) {
        Some(r) => r,
        None => return Ok(plain(StatusCode::NOT_FOUND, "unknown or expired token")),
    };
    let session = match (kind, parked) {
        ("exec", tokens::Request::Exec(r)) => Session::Remote {
            opts: StreamOptions::new(r.stdin, r.stdout, r.stderr, r.tty),
            command: Command::Exec {
                container_id: r.container_id,
                cmd: r.cmd,
            },
        },
        ("attach", tokens::Request::Attach(r)) => Session::Remote {
            opts: StreamOptions::new(r.stdin, r.stdout, r.stderr, r.tty),
            command: Command::Attach {
                container_id: r.container_id,
            },
        },
        ("portforward", tokens::Request::PortForward(r)) => {
            let ports = match query_ports(req.uri().query()) {
                Ok(p) => p,
                Err(e) => return Ok(plain(StatusCode::BAD_REQUEST, e)),
            };
            let ports = if ports.is_empty() {
                r.port
                    .iter()
                    .filter_map(|p| u16::try_from(*p).ok())
                    .collect()
            } else {
                ports
            };
            Session::PortForward {
                pod_sandbox_id: r.pod_sandbox_id,
                ports,
            }
        }
        _ => {
            return Ok(plain(
                StatusCode::NOT_FOUND,
                "token is for another endpoint",
            ));
        }
    };

    let headers = req.headers();
    if !header_has_token(headers, CONNECTION, "upgrade") {
        return Ok(plain(
            StatusCode::BAD_REQUEST,
            "connection upgrade expected",
        ));
    }
    if header_has_token(headers, UPGRADE, "websocket") {
        upgrade_websocket(inner, &mut req, session)
    } else if header_has_token(headers, UPGRADE, "spdy/3.1") {
        upgrade_spdy(inner, &mut req, session)
    } else {
        Ok(plain(
            StatusCode::BAD_REQUEST,
            "upgrade to SPDY/3.1 or websocket expected",
        ))
    }
}

fn upgrade_spdy(
    inner: Arc<Inner>,
    req: &mut Request<Incoming>,
    session: Session,
) -> Result<Resp, Infallible> {
    let ours: &[&str] = match session {
        Session::Remote { .. } => over_spdy::REMOTECOMMAND_PROTOCOLS,
        Session::PortForward { .. } => &[over_spdy::PORTFORWARD_PROTOCOL],
    };
    let offered = header_list(req.headers(), PROTOCOL_HEADER);
    // Clients from before protocol negotiation send nothing and get v1.
    let protocol = if offered.is_empty() {
        String::new()
    } else {
        match negotiate(&offered, ours) {
            Some(p) => p,
            None => {
                let mut r = plain(
                    StatusCode::FORBIDDEN,
                    format!(
                        "unable to upgrade: unable to negotiate protocol: client supports {offered:?}, server accepts {ours:?}"
                    ),
                );
                for p in ours {
                    r.headers_mut()
                        .append(ACCEPTED_PROTOCOLS_HEADER, HeaderValue::from_static(p));
                }
                return Ok(r);
            }
        }
    };
    let on_upgrade = hyper::upgrade::on(req);
    let mut resp = Response::new(Full::new(Bytes::new()));
    *resp.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    resp.headers_mut()
        .insert(CONNECTION, HeaderValue::from_static("Upgrade"));
    resp.headers_mut()
        .insert(UPGRADE, HeaderValue::from_static("SPDY/3.1"));
    if !protocol.is_empty()
        && let Ok(v) = HeaderValue::from_str(&protocol)
    {
        resp.headers_mut().insert(PROTOCOL_HEADER, v);
    }
    let tasks = inner.tasks.clone();
    tasks.spawn(async move {
        let upgraded = match on_upgrade.await {
            Ok(u) => TokioIo::new(u),
            Err(err) => {
                tracing::debug!(%err, "spdy upgrade failed");
                return;
            }
        };
        let (cfg, backend, shutdown) = (
            inner.cfg.clone(),
            inner.backend.clone(),
            inner.shutdown.clone(),
        );
        match session {
            Session::Remote { command, opts } => {
                over_spdy::serve_remotecommand(
                    upgraded, protocol, command, opts, backend, cfg, shutdown,
                )
                .await
            }
            Session::PortForward { pod_sandbox_id, .. } => {
                over_spdy::serve_portforward(upgraded, pod_sandbox_id, backend, cfg, shutdown).await
            }
        }
    });
    Ok(resp)
}

fn upgrade_websocket(
    inner: Arc<Inner>,
    req: &mut Request<Incoming>,
    session: Session,
) -> Result<Resp, Infallible> {
    let Some(key) = req.headers().get("sec-websocket-key").cloned() else {
        return Ok(plain(StatusCode::BAD_REQUEST, "missing sec-websocket-key"));
    };
    let ours: &[&str] = match session {
        Session::Remote { .. } => over_ws::REMOTECOMMAND_PROTOCOLS,
        Session::PortForward { .. } => over_ws::PORTFORWARD_PROTOCOLS,
    };
    let offered = header_list(req.headers(), "sec-websocket-protocol");
    let protocol = if offered.is_empty() {
        // No subprotocol: the original binary channel protocol.
        String::new()
    } else {
        match negotiate(&offered, ours) {
            Some(p) => p,
            None => {
                return Ok(plain(
                    StatusCode::BAD_REQUEST,
                    format!(
                        "unable to negotiate websocket protocol: client supports {offered:?}, server accepts {ours:?}"
                    ),
                ));
            }
        }
    };
    if let Session::PortForward { ports, .. } = &session
        && ports.is_empty()
        && protocol != over_ws::TUNNEL_PROTOCOL
    {
        return Ok(plain(
            StatusCode::BAD_REQUEST,
            "query parameter \"port\" is required",
        ));
    }
    let on_upgrade = hyper::upgrade::on(req);
    let mut resp = Response::new(Full::new(Bytes::new()));
    *resp.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = resp.headers_mut();
    h.insert(CONNECTION, HeaderValue::from_static("Upgrade"));
    h.insert(UPGRADE, HeaderValue::from_static("websocket"));
    if let Ok(v) = HeaderValue::from_str(&derive_accept_key(key.as_bytes())) {
        h.insert("sec-websocket-accept", v);
    }
    if !protocol.is_empty()
        && let Ok(v) = HeaderValue::from_str(&protocol)
    {
        h.insert("sec-websocket-protocol", v);
    }
    let tasks = inner.tasks.clone();
    tasks.spawn(async move {
        let upgraded = match on_upgrade.await {
            Ok(u) => TokioIo::new(u),
            Err(err) => {
                tracing::debug!(%err, "websocket upgrade failed");
                return;
            }
        };
        let ws = WebSocketStream::from_raw_socket(upgraded, WsRole::Server, None).await;
        let (cfg, backend, shutdown) = (
            inner.cfg.clone(),
            inner.backend.clone(),
            inner.shutdown.clone(),
        );
        match session {
            Session::Remote { command, opts } => {
                over_ws::serve_remotecommand(ws, protocol, command, opts, backend, cfg, shutdown)
                    .await
            }
            // SPDY inside: ports come in each stream's headers.
            Session::PortForward { pod_sandbox_id, .. } if protocol == over_ws::TUNNEL_PROTOCOL => {
                let io = over_ws::tunnel(ws);
                over_spdy::serve_portforward(io, pod_sandbox_id, backend, cfg, shutdown).await
            }
            Session::PortForward {
                pod_sandbox_id,
                ports,
            } => {
                over_ws::serve_portforward(
                    ws,
                    protocol,
                    pod_sandbox_id,
                    ports,
                    backend,
                    cfg,
                    shutdown,
                )
                .await
            }
        }
    });
    Ok(resp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negotiation_follows_client_order() {
        let offered = vec![
            "v5.channel.k8s.io".to_owned(),
            "v4.channel.k8s.io".to_owned(),
        ];
        assert_eq!(
            negotiate(&offered, over_spdy::REMOTECOMMAND_PROTOCOLS).as_deref(),
            Some("v4.channel.k8s.io")
        );
        assert_eq!(
            negotiate(&offered, over_ws::REMOTECOMMAND_PROTOCOLS).as_deref(),
            Some("v5.channel.k8s.io")
        );
        assert_eq!(negotiate(&["x".into()], &["y"]), None);
    }

    #[test]
    fn ports_from_query() {
        assert_eq!(
            query_ports(Some("port=80&port=8080,9090")),
            Ok(vec![80, 8080, 9090])
        );
        assert_eq!(query_ports(None), Ok(vec![]));
        assert!(query_ports(Some("port=0")).is_err());
        assert!(query_ports(Some("port=http")).is_err());
    }

    #[tokio::test]
    async fn urls_use_the_bound_address_or_the_configured_base() {
        struct Nothing;
        #[async_trait::async_trait]
        impl Backend for Nothing {
            async fn exec(
                &self,
                _: &str,
                _: &[String],
                _: bool,
                _: crate::Streams,
            ) -> Result<crate::ExitStatus, crate::BackendError> {
                Err("unused".into())
            }
            async fn attach(
                &self,
                _: &str,
                _: bool,
                _: crate::Streams,
            ) -> Result<(), crate::BackendError> {
                Err("unused".into())
            }
            async fn port_forward(
                &self,
                _: &str,
                _: u16,
                _: Box<dyn crate::DuplexIo>,
            ) -> Result<(), crate::BackendError> {
                Err("unused".into())
            }
        }
        let s = StreamingServer::start(Config::default(), Arc::new(Nothing))
            .await
            .unwrap();
        assert_ne!(s.local_addr().port(), 0);
        assert_eq!(s.base_url(), format!("http://{}", s.local_addr()));
        let url = s
            .register_port_forward(crius_proto::PortForwardRequest {
                pod_sandbox_id: "p".into(),
                port: vec![80],
            })
            .unwrap();
        assert!(url.starts_with(&format!("http://{}/portforward/", s.local_addr())));
        let bad = s.register_port_forward(crius_proto::PortForwardRequest {
            pod_sandbox_id: "p".into(),
            port: vec![70000],
        });
        assert_eq!(
            bad.unwrap_err().kind(),
            crius_proto::ErrorKind::InvalidArgument
        );
        let empty_cmd = s.register_exec(crius_proto::ExecRequest {
            stdout: true,
            ..Default::default()
        });
        assert!(empty_cmd.is_err());

        let cfg = Config {
            base_url: Some("http://10.0.0.5:10010/".into()),
            ..Default::default()
        };
        let s = StreamingServer::start(cfg, Arc::new(Nothing))
            .await
            .unwrap();
        let url = s
            .register_attach(crius_proto::AttachRequest {
                container_id: "c".into(),
                stdout: true,
                ..Default::default()
            })
            .unwrap();
        assert!(url.starts_with("http://10.0.0.5:10010/attach/"), "{url}");
    }

    #[test]
    fn error_kinds() {
        use crius_proto::ErrorKind;
        let bind = Error::Bind {
            addr: "127.0.0.1:1".parse().unwrap(),
            source: std::io::Error::other("x"),
        };
        assert_eq!(bind.kind(), ErrorKind::Unavailable);
        assert_eq!(Error::TooManySessions.kind(), ErrorKind::Unavailable);
        assert_eq!(
            Error::InvalidRequest {
                what: "port",
                value: "0".into()
            }
            .kind(),
            ErrorKind::InvalidArgument
        );
        assert_eq!(
            Error::Io(std::io::Error::other("x")).kind(),
            ErrorKind::Unavailable
        );
        assert_eq!(
            Error::SpdyFrameTooLarge(1 << 30).kind(),
            ErrorKind::InvalidArgument
        );
        // Messages are lower-case without a trailing period.
        for e in [bind.to_string(), Error::TooManySessions.to_string()] {
            assert!(
                !e.ends_with('.') && e.chars().next().unwrap().is_lowercase(),
                "{e}"
            );
        }
    }

    #[test]
    fn stream_checks() {
        assert!(check_streams(false, false, false, false).is_err());
        assert!(check_streams(false, true, true, true).is_err());
        assert!(check_streams(true, true, false, true).is_ok());
    }
}
