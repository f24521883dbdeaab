//! Exec, attach and port-forward over WebSocket, as Kubernetes' `wsstream`
//! channel protocols define them: every message starts with a channel byte
//! (binary), or an ASCII digit followed by base64 (the `base64.` variants).

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use base64::Engine as _;
use futures_util::stream::FuturesUnordered;
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::sync::{Notify, mpsc};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_util::sync::{CancellationToken, PollSender};

use crate::backend::{Backend, Streams};
use crate::remotecommand::{self, ChanReader, Command, StreamOptions};
use crate::server::Config;

/// Exec/attach subprotocols, most preferred first.
pub(crate) const REMOTECOMMAND_PROTOCOLS: &[&str] = &[
    "v5.channel.k8s.io",
    "v4.channel.k8s.io",
    "v4.base64.channel.k8s.io",
    "channel.k8s.io",
    "base64.channel.k8s.io",
];

/// Port-forward subprotocols, most preferred first.
pub(crate) const PORTFORWARD_PROTOCOLS: &[&str] = &[
    TUNNEL_PROTOCOL,
    "v4.channel.k8s.io",
    "v4.base64.channel.k8s.io",
];

/// SPDY carried in binary WebSocket messages, for port-forward.
pub(crate) const TUNNEL_PROTOCOL: &str = "SPDY/3.1+portforward.k8s.io";

pub const STDIN: u8 = 0;
pub const STDOUT: u8 = 1;
pub const STDERR: u8 = 2;
pub const ERROR: u8 = 3;
pub const RESIZE: u8 = 4;
/// v5: a message on this channel closes the channel named by its payload.
pub const CLOSE: u8 = 255;

/// Largest payload we put in one message.
const MAX_MESSAGE: usize = 32 * 1024;

/// Encodes one channel message.
pub fn encode(base64: bool, channel: u8, data: &[u8]) -> Message {
    if base64 {
        let mut s = String::with_capacity(1 + data.len().div_ceil(3) * 4);
        s.push(char::from(b'0' + channel));
        base64::engine::general_purpose::STANDARD.encode_string(data, &mut s);
        Message::text(s)
    } else {
        let mut v = Vec::with_capacity(1 + data.len());
        v.push(channel);
        v.extend_from_slice(data);
        Message::binary(v)
    }
}

/// Decodes one channel message; `None` for control messages and malformed
/// data messages.
pub fn decode(base64: bool, msg: &Message) -> Option<(u8, Vec<u8>)> {
    match msg {
        Message::Binary(b) if !base64 => {
            let (&ch, rest) = b.split_first()?;
            Some((ch, rest.to_vec()))
        }
        Message::Text(t) if base64 => {
            let b = t.as_bytes();
            let (&ch, rest) = b.split_first()?;
            if !ch.is_ascii_digit() {
                return None;
            }
            let data = base64::engine::general_purpose::STANDARD
                .decode(rest)
                .ok()?;
            Some((ch - b'0', data))
        }
        _ => None,
    }
}

/// Writes bytes as messages on one channel, with backpressure from the
/// shared outgoing queue.
pub(crate) struct ChannelWriter {
    tx: PollSender<Message>,
    channel: u8,
    base64: bool,
}

impl ChannelWriter {
    fn new(tx: mpsc::Sender<Message>, channel: u8, base64: bool) -> Self {
        Self {
            tx: PollSender::new(tx),
            channel,
            base64,
        }
    }
}

fn gone() -> io::Error {
    io::Error::new(io::ErrorKind::BrokenPipe, "websocket connection closed")
}

impl AsyncWrite for ChannelWriter {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        ready!(self.tx.poll_reserve(cx)).map_err(|_| gone())?;
        let n = buf.len().min(MAX_MESSAGE);
        let msg = encode(self.base64, self.channel, &buf[..n]);
        self.tx.send_item(msg).map_err(|_| gone())?;
        Poll::Ready(Ok(n))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// The write side of a session: one task owns the sink so that messages
/// from every channel are serialized.
struct Outgoing {
    tx: mpsc::Sender<Message>,
    done: tokio::task::JoinHandle<()>,
    /// Cancelled when writing to the client failed: the client is gone.
    gone: CancellationToken,
}

/// How long a new session holds back its first messages. client-go's
/// WebSocket executor (kubectl 1.30+) starts reading frames before it has
/// registered its streams and drops frames for streams it does not know yet
/// ("Unknown stream id 1, discarding message"): a command as quick as `echo`
/// could otherwise lose its whole output. Through the apiserver a network
/// round trip hides that race; talking to the client directly, this pause
/// does. Only the first frames of a session wait.
const SETTLE: Duration = Duration::from_millis(100);

fn start_writer<S>(mut sink: S, activity: Arc<Notify>, ping_every: Duration) -> Outgoing
where
    S: futures_util::Sink<Message> + Unpin + Send + 'static,
{
    let (tx, mut rx) = mpsc::channel::<Message>(64);
    let gone = CancellationToken::new();
    let gone_w = gone.clone();
    let done = tokio::spawn(async move {
        tokio::time::sleep(SETTLE).await;
        let mut ping =
            tokio::time::interval_at(tokio::time::Instant::now() + ping_every, ping_every);
        loop {
            let msg = tokio::select! {
                m = rx.recv() => match m {
                    Some(m) => m,
                    None => break,
                },
                // A keepalive probe: a vanished client makes this write
                // fail. It is not activity for the idle timeout.
                _ = ping.tick() => {
                    if sink.send(Message::Ping(Vec::new().into())).await.is_err() {
                        gone_w.cancel();
                        return;
                    }
                    continue;
                }
            };
            let close = msg.is_close();
            if sink.send(msg).await.is_err() {
                gone_w.cancel();
                return;
            }
            activity.notify_one();
            if close {
                break;
            }
        }
        let _ = sink.close().await;
    });
    Outgoing { tx, done, gone }
}

async fn idle(limit: std::time::Duration, activity: Arc<Notify>) {
    while tokio::time::timeout(limit, activity.notified())
        .await
        .is_ok()
    {}
    tracing::debug!("websocket session idle, closing");
}

async fn finish(out: Outgoing) {
    let _ = out
        .tx
        .send(Message::Close(Some(CloseFrame {
            code: CloseCode::Normal,
            reason: "".into(),
        })))
        .await;
    drop(out.tx);
    let _ = tokio::time::timeout(std::time::Duration::from_secs(5), out.done).await;
}

/// Serves one exec or attach session.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn serve_remotecommand<T>(
    ws: WebSocketStream<T>,
    protocol: String,
    command: Command,
    opts: StreamOptions,
    backend: Arc<dyn Backend>,
    cfg: Arc<Config>,
    shutdown: CancellationToken,
) where
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let base64 = protocol.starts_with("base64.") || protocol.starts_with("v4.base64.");
    let v4 = protocol.starts_with("v4.") || protocol.starts_with("v5.");
    let v5 = protocol.starts_with("v5.");
    let activity = Arc::new(Notify::new());
    let (sink, mut source) = ws.split();
    let out = start_writer(sink, activity.clone(), cfg.ping_interval);

    // The reader stops reading the socket while this is full (the backend
    // is not reading stdin); it then also cannot notice the client leaving,
    // so keep it roomy: up to 64 client messages (2 MiB from client-go).
    let (stdin_tx, stdin_rx) = mpsc::channel::<Vec<u8>>(64);
    let (resize_tx, resize_rx) = mpsc::channel(16);
    let streams = Streams {
        stdin: opts.stdin.then(|| Box::new(ChanReader::new(stdin_rx)) as _),
        stdout: opts
            .stdout
            .then(|| Box::new(ChannelWriter::new(out.tx.clone(), STDOUT, base64)) as _),
        stderr: opts
            .stderr
            .then(|| Box::new(ChannelWriter::new(out.tx.clone(), STDERR, base64)) as _),
        resize: opts.tty.then_some(resize_rx),
    };

    // Reads client messages until the client goes away.
    let reader = {
        let activity = activity.clone();
        async move {
            let mut stdin_tx = Some(stdin_tx);
            let mut resize = remotecommand::ResizeDecoder::default();
            while let Some(Ok(msg)) = source.next().await {
                if !msg.is_pong() {
                    activity.notify_one();
                }
                if msg.is_close() {
                    break;
                }
                let Some((channel, data)) = decode(base64, &msg) else {
                    continue;
                };
                match channel {
                    STDIN => {
                        if let Some(tx) = &stdin_tx
                            && !data.is_empty()
                            && tx.send(data).await.is_err()
                        {
                            stdin_tx = None;
                        }
                    }
                    RESIZE => {
                        for size in resize.push(&data) {
                            // Never block the reader on a backend that is
                            // slow to apply sizes; only the latest matters.
                            let _ = resize_tx.try_send(size);
                        }
                    }
                    // Half-close: the process sees EOF on stdin.
                    CLOSE if v5 && data.first() == Some(&STDIN) => stdin_tx = None,
                    _ => {}
                }
            }
        }
    };
    let gone = out.gone.clone();
    let cancel = async {
        tokio::select! {
            _ = reader => {}
            _ = gone.cancelled() => {}
            _ = idle(cfg.idle_timeout, activity.clone()) => {}
            _ = shutdown.cancelled() => {}
        }
    };
    let outcome = remotecommand::run(&*backend, &command, opts.tty, streams, cancel).await;
    match outcome {
        Some(outcome) => {
            let status = if v4 {
                Some(outcome.status_v4())
            } else {
                outcome.status_v1()
            };
            if let Some(status) = status {
                let _ = out.tx.send(encode(base64, ERROR, &status)).await;
            }
            finish(out).await;
        }
        None => {
            tracing::debug!("client went away, remote command cancelled");
            finish(out).await;
        }
    }
}

/// Serves port-forward over the `v4.channel.k8s.io` channel protocol: data
/// on channel 2n and errors on 2n+1 for the n-th requested port.
pub(crate) async fn serve_portforward<T>(
    ws: WebSocketStream<T>,
    protocol: String,
    pod_sandbox_id: String,
    ports: Vec<u16>,
    backend: Arc<dyn Backend>,
    cfg: Arc<Config>,
    shutdown: CancellationToken,
) where
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let base64 = protocol.contains("base64");
    let activity = Arc::new(Notify::new());
    let (sink, mut source) = ws.split();
    let out = start_writer(sink, activity.clone(), cfg.ping_interval);

    let mut inputs = Vec::new();
    let forwards = FuturesUnordered::new();
    for (i, port) in ports.iter().copied().enumerate() {
        let data_ch = (2 * i) as u8;
        let err_ch = data_ch + 1;
        // Each channel opens with the port it belongs to.
        let port_bytes = port.to_le_bytes();
        let _ = out.tx.send(encode(base64, data_ch, &port_bytes)).await;
        let _ = out.tx.send(encode(base64, err_ch, &port_bytes)).await;
        let (tx, rx) = mpsc::channel::<Vec<u8>>(64);
        inputs.push(Some(tx));
        let io = tokio::io::join(
            ChanReader::new(rx),
            ChannelWriter::new(out.tx.clone(), data_ch, base64),
        );
        let mut err = ChannelWriter::new(out.tx.clone(), err_ch, base64);
        let backend = backend.clone();
        let id = pod_sandbox_id.clone();
        forwards.push(async move {
            if let Err(e) = backend.port_forward(&id, port, Box::new(io)).await {
                let msg = format!("error forwarding port {port} to pod {id}: {e}");
                tracing::debug!(%msg, "port forward failed");
                let _ = err.write_all(msg.as_bytes()).await;
            }
        });
    }
    let all_done = forwards.collect::<Vec<()>>();
    let reader = {
        let activity = activity.clone();
        async move {
            while let Some(Ok(msg)) = source.next().await {
                if !msg.is_pong() {
                    activity.notify_one();
                }
                if msg.is_close() {
                    break;
                }
                let Some((channel, data)) = decode(base64, &msg) else {
                    continue;
                };
                let idx = usize::from(channel / 2);
                if channel % 2 == 0
                    && !data.is_empty()
                    && let Some(Some(tx)) = inputs.get(idx)
                    && tx.send(data).await.is_err()
                {
                    inputs[idx] = None;
                }
            }
        }
    };
    let gone = out.gone.clone();
    tokio::select! {
        _ = all_done => {}
        _ = gone.cancelled() => tracing::debug!("port-forward client went away"),
        _ = reader => tracing::debug!("port-forward client went away"),
        _ = idle(cfg.idle_timeout, activity.clone()) => {}
        _ = shutdown.cancelled() => {}
    }
    finish(out).await;
}

/// Turns binary WebSocket messages into a byte stream (the SPDY tunnel);
/// works for either end of the WebSocket.
pub fn tunnel<T>(ws: WebSocketStream<T>) -> tokio::io::DuplexStream
where
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (user, mine) = tokio::io::duplex(64 * 1024);
    tokio::spawn(async move {
        let (mut sink, mut source) = ws.split();
        let (mut r, mut w) = tokio::io::split(mine);
        let inbound = async {
            while let Some(Ok(msg)) = source.next().await {
                match msg {
                    Message::Binary(b) if w.write_all(&b).await.is_err() => break,
                    Message::Close(_) => break,
                    _ => {}
                }
            }
            let _ = w.shutdown().await;
        };
        let outbound = async {
            use tokio::io::AsyncReadExt;
            let mut buf = vec![0u8; MAX_MESSAGE];
            loop {
                match r.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        if sink.send(Message::binary(buf[..n].to_vec())).await.is_err() {
                            break;
                        }
                    }
                }
            }
            let _ = sink.close().await;
        };
        // Either direction ending ends the tunnel: SPDY never half-closes
        // the transport.
        tokio::select! {
            _ = inbound => {}
            _ = outbound => {}
        }
    });
    user
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binary_channel_framing() {
        let m = encode(false, STDOUT, b"hello");
        assert_eq!(m, Message::binary(b"\x01hello".to_vec()));
        assert_eq!(decode(false, &m), Some((STDOUT, b"hello".to_vec())));
        assert_eq!(decode(false, &Message::binary(Vec::new())), None);
        // A text message is not a data message in the binary protocols.
        assert_eq!(decode(false, &Message::text("1aGk=")), None);
    }

    #[test]
    fn base64_channel_framing() {
        let m = encode(true, STDERR, b"hi");
        assert_eq!(m, Message::text("2aGk="));
        assert_eq!(decode(true, &m), Some((STDERR, b"hi".to_vec())));
        assert_eq!(decode(true, &Message::text("x")), None);
        assert_eq!(decode(true, &Message::text("0!!!")), None);
    }

    #[test]
    fn v5_close_signal_is_channel_255() {
        let m = encode(false, CLOSE, &[STDIN]);
        assert_eq!(decode(false, &m), Some((255, vec![0])));
    }
}
