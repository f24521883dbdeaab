//! Clients for the streaming server, built on the streaming crate's own
//! SPDY connection and WebSocket framing: what kubectl and crictl do when
//! they follow an Exec/Attach/PortForward URL. Shared by the streaming
//! crate's tests and, by `#[path]`, by crius-e2e's `stream_client`.
#![allow(dead_code)]

use std::time::Duration;

use streaming::spdy::{self, Connection, Headers, Incoming, Role, Stream};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn split_url(url: &str) -> (String, String) {
    let rest = url.strip_prefix("http://").expect("http url");
    let (host, path) = rest.split_at(rest.find('/').expect("url path"));
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
    tcp.write_all(req.as_bytes()).await.expect("send upgrade");
    // Byte by byte: anything after the head is already SPDY.
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut b = [0u8; 1];
        if tcp.read(&mut b).await.expect("read head") == 0 {
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
    /// Opens a stream with these headers (`fin`: no data from us).
    pub async fn stream(&self, pairs: &[(&str, &str)], fin: bool) -> Stream {
        let mut h = Headers::new();
        for (k, v) in pairs {
            h.insert(k, v);
        }
        self.conn.open_stream(h, fin).await.expect("open stream")
    }
}

/// Reads to EOF within `limit`, panicking on timeout.
pub async fn read_all_within<R: tokio::io::AsyncRead + Unpin>(
    r: &mut R,
    limit: Duration,
) -> Vec<u8> {
    let mut v = Vec::new();
    tokio::time::timeout(limit, r.read_to_end(&mut v))
        .await
        .expect("stream ends in time")
        .expect("stream read");
    v
}

pub type Ws = tokio_tungstenite::WebSocketStream<TcpStream>;

/// Opens a WebSocket offering `protocols`; `Err(status)` if refused.
pub async fn ws_connect(url: &str, protocols: &[&str]) -> Result<(Ws, Option<String>), u16> {
    use tokio_tungstenite::tungstenite::Error as WsError;
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let (host, _) = split_url(url);
    let ws_url = url.replacen("http://", "ws://", 1);
    let mut req = ws_url.into_client_request().expect("ws request");
    if !protocols.is_empty() {
        req.headers_mut().insert(
            "sec-websocket-protocol",
            protocols.join(", ").parse().expect("header"),
        );
    }
    let tcp = TcpStream::connect(&host).await.expect("connect");
    match tokio_tungstenite::client_async(req, tcp).await {
        Ok((ws, resp)) => {
            let p = resp
                .headers()
                .get("sec-websocket-protocol")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            Ok((ws, p))
        }
        Err(WsError::Http(resp)) => Err(resp.status().as_u16()),
        Err(e) => panic!("websocket connect failed: {e}"),
    }
}

/// Everything received per channel until the server closes the socket.
pub async fn ws_collect(ws: &mut Ws) -> Vec<Vec<u8>> {
    use futures_util::StreamExt;
    use tokio_tungstenite::tungstenite::Message;
    let mut chans = vec![Vec::new(); 8];
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(30), ws.next())
            .await
            .expect("server answers in time");
        match msg {
            Some(Ok(Message::Close(_))) | None => return chans,
            Some(Ok(m)) => {
                if let Some((ch, data)) = streaming::ws::decode(false, &m)
                    && let Some(c) = chans.get_mut(usize::from(ch))
                {
                    c.extend_from_slice(&data);
                }
            }
            Some(Err(e)) => panic!("websocket error: {e}"),
        }
    }
}
