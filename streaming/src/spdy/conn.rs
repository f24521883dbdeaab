//! A SPDY/3.1 connection: stream lifecycle, flow control, ping and goaway.
//!
//! One driver task per connection reads frames and hands each new peer
//! stream to [`Incoming`]; a writer task owns the socket's write half and the
//! header compressor, so every frame, including header blocks, leaves in
//! the order it was queued. Each stream's outgoing bytes go through a small
//! pump task that respects the peer's send windows.
//!
//! Flow control: we advertise the default 64 KiB window and send
//! WINDOW_UPDATE (stream and session) as soon as a DATA frame is queued for
//! the reader; the queue is bounded, and when it is full the driver stops
//! reading the socket, which is how the Go `spdystream` library, the other end
//! of every kubectl/crictl session, behaves too. (While stopped it cannot see
//! the peer leave either: a backend that never reads stdin while the client
//! keeps sending more than the queue holds, about 2 MiB from Go clients, is
//! only cancelled by the idle timeout.) On the sending side we honour
//! the peer's windows once the peer has shown it does flow control (sent a
//! WINDOW_UPDATE or an INITIAL_WINDOW_SIZE setting): `spdystream` never sends
//! WINDOW_UPDATE, and honouring a window it never refills would stall every
//! session after 64 KiB.

use std::collections::HashMap;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, DuplexStream, ReadBuf};
use tokio::sync::{Notify, mpsc};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::compress::{HeaderCompressor, HeaderDecompressor, Headers};
use super::frame::{self, FLAG_FIN, Frame, rst};

/// Default SPDY/3 initial window, per stream and for the session.
pub const INITIAL_WINDOW: i64 = 64 * 1024;
/// Largest DATA payload we send in one frame.
const MAX_DATA_CHUNK: usize = 16 * 1024;
/// Bytes of received DATA buffered per stream, and per connection for all
/// streams together, before the driver stops reading the socket (which is
/// the peer's backpressure). Counted in bytes, not frames: one DATA frame
/// may carry up to 16 MiB. A single frame larger than a budget waits for
/// the whole budget, so at most one such frame is buffered beyond it.
pub const INBOUND_STREAM_BYTES: usize = 1 << 20;
/// See [`INBOUND_STREAM_BYTES`].
pub const INBOUND_CONNECTION_BYTES: usize = 8 << 20;
/// Upper bound for one control frame we accept, against memory exhaustion.
/// DATA frames may use the whole 24-bit length: Go's spdystream writes each
/// Write call as one frame, however large.
const MAX_CONTROL_FRAME: usize = 1024 * 1024;
/// Open streams per connection; more are refused with REFUSED_STREAM.
pub const MAX_STREAMS: usize = 1024;

/// Which end of the connection we are; decides stream and ping id parity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Client,
    Server,
}

enum Out {
    Frame(Frame),
    SynStream {
        stream_id: u32,
        fin: bool,
        headers: Headers,
    },
    SynReply {
        stream_id: u32,
        headers: Headers,
    },
    Shutdown,
}

/// Received DATA with the budget it holds until the reader is done with it.
struct Chunk {
    data: Vec<u8>,
    _budget: [tokio::sync::OwnedSemaphorePermit; 2],
}

/// The driver's end of a stream's inbound queue.
#[derive(Clone)]
struct InboundTx {
    tx: mpsc::UnboundedSender<Chunk>,
    /// This stream's byte budget.
    budget: Arc<tokio::sync::Semaphore>,
}

fn inbound_queue() -> (InboundTx, mpsc::UnboundedReceiver<Chunk>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let budget = Arc::new(tokio::sync::Semaphore::new(INBOUND_STREAM_BYTES));
    (InboundTx { tx, budget }, rx)
}

/// Permits for `len` bytes out of `budget` (the whole budget for a larger
/// frame); `None` if the budget is closed.
async fn take_budget(
    budget: &Arc<tokio::sync::Semaphore>,
    len: usize,
    cap: usize,
) -> Option<tokio::sync::OwnedSemaphorePermit> {
    let n = u32::try_from(len.min(cap)).unwrap_or(u32::MAX);
    budget.clone().acquire_many_owned(n).await.ok()
}

struct StreamEntry {
    inbound: Option<InboundTx>,
    send_window: i64,
    local_fin: bool,
    remote_fin: bool,
    reset: bool,
}

impl StreamEntry {
    fn new(inbound: InboundTx, send_window: i64) -> Self {
        Self {
            inbound: Some(inbound),
            send_window,
            local_fin: false,
            remote_fin: false,
            reset: false,
        }
    }
}

struct State {
    streams: HashMap<u32, StreamEntry>,
    next_stream_id: u32,
    last_peer_stream_id: u32,
    initial_send_window: i64,
    session_send_window: i64,
    peer_flow_control: bool,
    goaway_sent: bool,
    goaway_received: bool,
}

struct Shared {
    role: Role,
    /// DATA frames and what must follow them (GOAWAY, shutdown), bounded so
    /// that producers feel the socket's backpressure.
    out: mpsc::Sender<Out>,
    /// Control frames, written before queued DATA; never blocks the driver,
    /// so reading the socket cannot wait on writing it.
    ctl: mpsc::UnboundedSender<Out>,
    state: Mutex<State>,
    window_changed: Notify,
    closed: CancellationToken,
    pumps: TaskTracker,
    /// Byte budget of inbound DATA for all streams together.
    inbound_budget: Arc<tokio::sync::Semaphore>,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A poisoned lock means a panic elsewhere already; the state is
        // plain data, so keep going with it.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn maybe_remove(st: &mut State, id: u32) {
        if let Some(e) = st.streams.get(&id)
            && (e.reset || (e.local_fin && e.remote_fin))
        {
            st.streams.remove(&id);
        }
    }
}

/// A handle on a SPDY connection; cheap to clone.
#[derive(Clone)]
pub struct Connection {
    shared: Arc<Shared>,
}

/// Streams opened by the peer, in the order their SYN_STREAM arrived.
pub struct Incoming {
    rx: mpsc::UnboundedReceiver<Stream>,
}

impl Incoming {
    /// The next peer stream, or `None` once the connection is gone.
    pub async fn accept(&mut self) -> Option<Stream> {
        self.rx.recv().await
    }
}

/// Connection options.
#[derive(Debug, Clone)]
pub struct Options {
    /// Close the connection when no frame was read or written for this long.
    pub idle_timeout: Option<Duration>,
    /// Send WINDOW_UPDATE as received data is queued. Turning it off makes
    /// the connection behave like Go's `spdystream`, which never sends one;
    /// tests use that to check we do not stall such peers.
    pub window_updates: bool,
    /// Send a PING this often. A dead peer then shows up as a write error
    /// even while nothing else is written and the reader is held up, so the
    /// session's backend is cancelled. Our pings do not count as activity
    /// for the idle timeout.
    pub ping_interval: Option<Duration>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            idle_timeout: None,
            window_updates: true,
            ping_interval: None,
        }
    }
}

impl Connection {
    /// Starts the connection tasks on `io`.
    pub fn new<T>(io: T, role: Role, opts: Options) -> (Connection, Incoming)
    where
        T: AsyncRead + AsyncWrite + Send + 'static,
    {
        let (out_tx, out_rx) = mpsc::channel(256);
        let (ctl_tx, ctl_rx) = mpsc::unbounded_channel();
        let (in_tx, in_rx) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            role,
            out: out_tx,
            ctl: ctl_tx,
            state: Mutex::new(State {
                streams: HashMap::new(),
                next_stream_id: if role == Role::Client { 1 } else { 2 },
                last_peer_stream_id: 0,
                initial_send_window: INITIAL_WINDOW,
                session_send_window: INITIAL_WINDOW,
                peer_flow_control: false,
                goaway_sent: false,
                goaway_received: false,
            }),
            window_changed: Notify::new(),
            closed: CancellationToken::new(),
            pumps: TaskTracker::new(),
            inbound_budget: Arc::new(tokio::sync::Semaphore::new(INBOUND_CONNECTION_BYTES)),
        });
        let driver = Driver {
            shared: shared.clone(),
            window_updates: opts.window_updates,
            incoming: in_tx,
            decompressor: HeaderDecompressor::new(),
        };
        tokio::spawn(driver.run(io, out_rx, ctl_rx, opts));
        (Connection { shared }, Incoming { rx: in_rx })
    }

    /// Opens a stream to the peer (SYN_STREAM); `fin` half-closes our side.
    pub async fn open_stream(&self, headers: Headers, fin: bool) -> io::Result<Stream> {
        let (tx, rx) = inbound_queue();
        let id = {
            let mut st = self.shared.lock();
            if st.goaway_received || st.goaway_sent || self.shared.closed.is_cancelled() {
                return Err(io::Error::new(
                    io::ErrorKind::NotConnected,
                    "spdy connection is going away",
                ));
            }
            let id = st.next_stream_id;
            st.next_stream_id += 2;
            let mut entry = StreamEntry::new(tx, st.initial_send_window);
            entry.local_fin = fin;
            st.streams.insert(id, entry);
            id
        };
        self.shared
            .ctl
            .send(Out::SynStream {
                stream_id: id,
                fin,
                headers: headers.clone(),
            })
            .map_err(|_| closed_err())?;
        Ok(Stream::start(self.shared.clone(), id, headers, rx, fin))
    }

    /// Resolves once the connection is gone (peer closed, error, idle or
    /// [`Connection::close`]).
    pub async fn closed(&self) {
        self.shared.closed.cancelled().await
    }

    /// Whether the connection is gone.
    pub fn is_closed(&self) -> bool {
        self.shared.closed.is_cancelled()
    }

    /// Graceful close: waits (bounded) for streams to flush what their users
    /// wrote, sends GOAWAY and closes the socket.
    pub async fn close(&self) {
        self.shared.pumps.close();
        let _ = tokio::time::timeout(Duration::from_secs(5), self.shared.pumps.wait()).await;
        let last = {
            let mut st = self.shared.lock();
            st.goaway_sent = true;
            st.last_peer_stream_id
        };
        let _ = self
            .shared
            .out
            .send(Out::Frame(Frame::GoAway {
                last_good_stream_id: last,
                status: 0,
            }))
            .await;
        let _ = self.shared.out.send(Out::Shutdown).await;
        let _ = tokio::time::timeout(Duration::from_secs(5), self.closed()).await;
        self.shared.closed.cancel();
    }

    /// Drops the connection at once: no GOAWAY, queued frames are lost.
    pub fn abort(&self) {
        self.shared.closed.cancel();
    }

    /// Sends a PING; the reply is not awaited (pings keep NATs and idle
    /// timers alive).
    pub async fn ping(&self, id: u32) -> io::Result<()> {
        self.shared
            .ctl
            .send(Out::Frame(Frame::Ping { id }))
            .map_err(|_| closed_err())
    }
}

fn closed_err() -> io::Error {
    io::Error::new(io::ErrorKind::BrokenPipe, "spdy connection closed")
}

/// One SPDY stream: read what the peer sends, write what it should get.
///
/// Shutting down the write side sends FIN; dropping the stream does too.
pub struct Stream {
    id: u32,
    headers: Headers,
    rx: mpsc::UnboundedReceiver<Chunk>,
    /// The chunk being read, holding its budget until consumed.
    chunk: Option<Chunk>,
    pos: usize,
    out: DuplexStream,
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Stream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stream")
            .field("id", &self.id)
            .field("headers", &self.headers)
            .finish()
    }
}

impl Stream {
    fn start(
        shared: Arc<Shared>,
        id: u32,
        headers: Headers,
        rx: mpsc::UnboundedReceiver<Chunk>,
        local_fin: bool,
    ) -> Stream {
        let (user, pump_end) = tokio::io::duplex(64 * 1024);
        if !local_fin {
            shared.pumps.spawn(pump(shared.clone(), id, pump_end));
        }
        Stream {
            id,
            headers,
            rx,
            chunk: None,
            pos: 0,
            out: user,
            shared,
        }
    }

    /// The stream id.
    pub fn id(&self) -> u32 {
        self.id
    }

    /// The headers of the SYN_STREAM that opened it.
    pub fn headers(&self) -> &Headers {
        &self.headers
    }

    /// Aborts the stream with RST_STREAM(CANCEL).
    pub fn reset(&self) {
        {
            let mut st = self.shared.lock();
            if let Some(e) = st.streams.get_mut(&self.id) {
                e.reset = true;
            }
            Shared::maybe_remove(&mut st, self.id);
        }
        let _ = self.shared.ctl.send(Out::Frame(Frame::RstStream {
            stream_id: self.id,
            status: rst::CANCEL,
        }));
        self.shared.window_changed.notify_waiters();
    }
}

impl AsyncRead for Stream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        out: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        let consumed = this.chunk.as_ref().is_none_or(|c| this.pos == c.data.len());
        if consumed {
            // Done with the last chunk: its budget goes back to the driver.
            this.chunk = None;
            match this.rx.poll_recv(cx) {
                Poll::Ready(Some(chunk)) => {
                    this.chunk = Some(chunk);
                    this.pos = 0;
                }
                Poll::Ready(None) => return Poll::Ready(Ok(())),
                Poll::Pending => return Poll::Pending,
            }
        }
        let data = this.chunk.as_ref().map_or(&[][..], |c| &c.data[..]);
        let n = out.remaining().min(data.len() - this.pos);
        out.put_slice(&data[this.pos..this.pos + n]);
        this.pos += n;
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.out).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.out).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.out).poll_shutdown(cx)
    }
}

/// Moves what the user wrote into DATA frames, within the send windows.
async fn pump(shared: Arc<Shared>, id: u32, mut pipe: DuplexStream) {
    let mut buf = vec![0u8; MAX_DATA_CHUNK];
    loop {
        let n = tokio::select! {
            r = pipe.read(&mut buf) => r.unwrap_or(0),
            _ = shared.closed.cancelled() => return,
        };
        if n == 0 {
            break;
        }
        let mut sent = 0;
        while sent < n {
            let allowed = loop {
                let notified = shared.window_changed.notified();
                {
                    let mut st = shared.lock();
                    let flow = st.peer_flow_control;
                    let session = st.session_send_window;
                    let Some(e) = st.streams.get_mut(&id) else {
                        return;
                    };
                    if e.reset {
                        return;
                    }
                    let window = e.send_window.min(session);
                    let want = (n - sent) as i64;
                    if !flow || window > 0 {
                        let take = if flow { want.min(window) } else { want };
                        e.send_window -= take;
                        st.session_send_window -= take;
                        break take as usize;
                    }
                }
                tokio::select! {
                    _ = notified => {}
                    _ = shared.closed.cancelled() => return,
                }
            };
            let frame = Frame::Data {
                stream_id: id,
                flags: 0,
                data: buf[sent..sent + allowed].to_vec(),
            };
            if shared.out.send(Out::Frame(frame)).await.is_err() {
                return;
            }
            sent += allowed;
        }
    }
    {
        let mut st = shared.lock();
        match st.streams.get_mut(&id) {
            Some(e) if !e.reset => e.local_fin = true,
            _ => return,
        }
        Shared::maybe_remove(&mut st, id);
    }
    let _ = shared
        .out
        .send(Out::Frame(Frame::Data {
            stream_id: id,
            flags: FLAG_FIN,
            data: Vec::new(),
        }))
        .await;
}

struct Driver {
    shared: Arc<Shared>,
    window_updates: bool,
    incoming: mpsc::UnboundedSender<Stream>,
    decompressor: HeaderDecompressor,
}

impl Driver {
    async fn run<T>(
        mut self,
        io: T,
        out_rx: mpsc::Receiver<Out>,
        ctl_rx: mpsc::UnboundedReceiver<Out>,
        opts: Options,
    ) where
        T: AsyncRead + AsyncWrite + Send + 'static,
    {
        let (mut r, w) = tokio::io::split(io);
        let activity = Arc::new(Notify::new());
        let shared = self.shared.clone();
        let writer = write_loop(w, out_rx, ctl_rx, activity.clone());
        let idle = async {
            let Some(limit) = opts.idle_timeout else {
                return std::future::pending::<()>().await;
            };
            loop {
                if tokio::time::timeout(limit, activity.notified())
                    .await
                    .is_err()
                {
                    tracing::debug!("spdy connection idle, closing");
                    return;
                }
            }
        };
        tokio::pin!(writer);
        let mut protocol_error = false;
        let pinger = {
            let shared = shared.clone();
            async move {
                let Some(every) = opts.ping_interval else {
                    return std::future::pending::<()>().await;
                };
                let mut id: u32 = if shared.role == Role::Server { 2 } else { 1 };
                loop {
                    tokio::time::sleep(every).await;
                    if shared.ctl.send(Out::Frame(Frame::Ping { id })).is_err() {
                        return std::future::pending::<()>().await;
                    }
                    id = id.wrapping_add(2) & 0x7fff_ffff;
                }
            }
        };
        let graceful = {
            let reader = self.read_loop(&mut r, activity.clone());
            tokio::select! {
                _ = pinger => false,
                r = reader => {
                    if let Err(err) = r {
                        tracing::debug!(%err, "spdy connection read ended");
                        protocol_error = !matches!(err, crate::Error::Io(_));
                    }
                    false
                }
                r = &mut writer => match r {
                    Ok(()) => true,
                    Err(err) => {
                        tracing::debug!(%err, "spdy connection write ended");
                        false
                    }
                },
                _ = idle => false,
                _ = shared.closed.cancelled() => false,
            }
        };
        if protocol_error {
            // Tell the peer why (GOAWAY with PROTOCOL_ERROR) after whatever
            // replies are already queued, then close.
            let last = shared.lock().last_peer_stream_id;
            let _ = shared.ctl.send(Out::Frame(Frame::GoAway {
                last_good_stream_id: last,
                status: 1,
            }));
            let _ = shared.ctl.send(Out::Shutdown);
            let _ = tokio::time::timeout(Duration::from_secs(1), &mut writer).await;
        }
        if graceful {
            // We sent GOAWAY and FIN. Closing the socket while the peer's
            // last frames sit unread would make the kernel answer with RST,
            // which can discard data the peer has not read yet; so read and
            // discard until the peer closes too, for a bounded time.
            let drain = async {
                let mut sink = [0u8; 16 * 1024];
                while matches!(r.read(&mut sink).await, Ok(n) if n > 0) {}
            };
            let _ = tokio::time::timeout(Duration::from_secs(5), drain).await;
        }
        shared.closed.cancel();
        // Dropping the inbound senders ends every reader with EOF.
        shared.lock().streams.clear();
        shared.window_changed.notify_waiters();
    }

    async fn read_loop<R: AsyncRead + Unpin>(
        &mut self,
        r: &mut R,
        activity: Arc<Notify>,
    ) -> Result<(), crate::Error> {
        let mut buf: Vec<u8> = Vec::with_capacity(64 * 1024);
        loop {
            loop {
                match frame::parse(&buf) {
                    Ok(Some((frame, used))) => {
                        buf.drain(..used);
                        // Echoes of our own keepalive pings are not activity.
                        let ours = if self.shared.role == Role::Server {
                            0
                        } else {
                            1
                        };
                        if !matches!(frame, Frame::Ping { id } if id % 2 == ours) {
                            activity.notify_one();
                        }
                        self.handle(frame).await?;
                    }
                    Ok(None) => break,
                    Err(e) => {
                        return Err(crate::Error::SpdyFrame(e));
                    }
                }
            }
            if buf.len() >= 8 {
                let len =
                    (usize::from(buf[5]) << 16) | (usize::from(buf[6]) << 8) | usize::from(buf[7]);
                if buf[0] & 0x80 != 0 && len > MAX_CONTROL_FRAME {
                    return Err(crate::Error::SpdyFrameTooLarge(len));
                }
            }
            let mut chunk = [0u8; 16 * 1024];
            let n = r.read(&mut chunk).await.map_err(crate::Error::Io)?;
            if n == 0 {
                return Ok(());
            }
            buf.extend_from_slice(&chunk[..n]);
        }
    }

    async fn send(&self, out: Out) -> Result<(), crate::Error> {
        self.shared
            .ctl
            .send(out)
            .map_err(|_| crate::Error::Io(closed_err()))
    }

    async fn handle(&mut self, frame: Frame) -> Result<(), crate::Error> {
        match frame {
            Frame::SynStream {
                stream_id,
                flags,
                header_block,
                ..
            } => {
                let headers = self
                    .decompressor
                    .decompress(&header_block)
                    .map_err(crate::Error::SpdyHeaders)?;
                let peer_parity = if self.shared.role == Role::Server {
                    1
                } else {
                    0
                };
                let (tx, rx) = inbound_queue();
                let refuse = {
                    let mut st = self.shared.lock();
                    if stream_id % 2 != peer_parity
                        || stream_id <= st.last_peer_stream_id
                        || stream_id == 0
                    {
                        Some(rst::PROTOCOL_ERROR)
                    } else if st.goaway_sent || st.streams.len() >= MAX_STREAMS {
                        st.last_peer_stream_id = stream_id;
                        Some(rst::REFUSED_STREAM)
                    } else {
                        st.last_peer_stream_id = stream_id;
                        let mut e = StreamEntry::new(tx, st.initial_send_window);
                        if flags & FLAG_FIN != 0 {
                            e.remote_fin = true;
                            e.inbound = None;
                        }
                        st.streams.insert(stream_id, e);
                        None
                    }
                };
                if let Some(status) = refuse {
                    return self
                        .send(Out::Frame(Frame::RstStream { stream_id, status }))
                        .await;
                }
                if self.shared.role == Role::Server {
                    // Go's spdystream drops DATA for streams it has no reply
                    // for yet, so the reply must precede any data we send.
                    self.send(Out::SynReply {
                        stream_id,
                        headers: Headers::new(),
                    })
                    .await?;
                }
                let stream = Stream::start(self.shared.clone(), stream_id, headers, rx, false);
                if self.incoming.send(stream).is_err() {
                    tracing::debug!(stream_id, "no one accepts streams, dropping");
                }
            }
            Frame::SynReply {
                stream_id,
                flags,
                header_block,
            }
            | Frame::Headers {
                stream_id,
                flags,
                header_block,
            } => {
                // Decompress to keep the shared zlib context in step.
                self.decompressor
                    .decompress(&header_block)
                    .map_err(crate::Error::SpdyHeaders)?;
                if flags & FLAG_FIN != 0 {
                    self.remote_fin(stream_id);
                }
            }
            Frame::Data {
                stream_id,
                flags,
                data,
            } => {
                let len = data.len();
                enum Target {
                    Queue(Option<InboundTx>),
                    Closed,
                    Unknown(u32),
                }
                let target = {
                    let st = self.shared.lock();
                    match st.streams.get(&stream_id) {
                        Some(e) if !e.remote_fin => Target::Queue(e.inbound.clone()),
                        Some(_) => Target::Closed,
                        None => Target::Unknown(st.last_peer_stream_id),
                    }
                };
                match target {
                    Target::Queue(Some(inbound)) if len > 0 && !inbound.tx.is_closed() => {
                        // Waiting here stops reading the socket until the
                        // readers have taken enough: bytes, not frames,
                        // bound what is held.
                        let stream = take_budget(&inbound.budget, len, INBOUND_STREAM_BYTES).await;
                        let connection =
                            take_budget(&self.shared.inbound_budget, len, INBOUND_CONNECTION_BYTES)
                                .await;
                        if let (Some(a), Some(b)) = (stream, connection) {
                            // A closed receiver means the user dropped the
                            // stream; the data has nowhere to go.
                            let _ = inbound.tx.send(Chunk {
                                data,
                                _budget: [a, b],
                            });
                        }
                    }
                    Target::Queue(_) => {}
                    Target::Closed => {
                        return self
                            .send(Out::Frame(Frame::RstStream {
                                stream_id,
                                status: rst::STREAM_ALREADY_CLOSED,
                            }))
                            .await;
                    }
                    Target::Unknown(last) => {
                        if stream_id > last && stream_id % 2 == 1 {
                            return self
                                .send(Out::Frame(Frame::RstStream {
                                    stream_id,
                                    status: rst::INVALID_STREAM,
                                }))
                                .await;
                        }
                    }
                }
                if len > 0 && self.window_updates {
                    let delta = len as u32;
                    self.send(Out::Frame(Frame::WindowUpdate { stream_id, delta }))
                        .await?;
                    self.send(Out::Frame(Frame::WindowUpdate {
                        stream_id: 0,
                        delta,
                    }))
                    .await?;
                }
                if flags & FLAG_FIN != 0 {
                    self.remote_fin(stream_id);
                }
            }
            Frame::RstStream { stream_id, .. } => {
                let mut st = self.shared.lock();
                if let Some(e) = st.streams.get_mut(&stream_id) {
                    e.reset = true;
                    e.inbound = None;
                }
                Shared::maybe_remove(&mut st, stream_id);
                drop(st);
                self.shared.window_changed.notify_waiters();
            }
            Frame::Settings { entries, .. } => {
                let mut st = self.shared.lock();
                for s in entries {
                    if s.id == frame::SETTINGS_INITIAL_WINDOW_SIZE {
                        let new = i64::from(s.value);
                        let delta = new - st.initial_send_window;
                        st.initial_send_window = new;
                        st.peer_flow_control = true;
                        for e in st.streams.values_mut() {
                            e.send_window += delta;
                        }
                    }
                }
                drop(st);
                self.shared.window_changed.notify_waiters();
            }
            Frame::Ping { id } => {
                let ours = if self.shared.role == Role::Server {
                    0
                } else {
                    1
                };
                if id % 2 != ours {
                    self.send(Out::Frame(Frame::Ping { id })).await?;
                }
            }
            Frame::GoAway { .. } => {
                self.shared.lock().goaway_received = true;
            }
            Frame::WindowUpdate { stream_id, delta } => {
                let overflow = {
                    let mut st = self.shared.lock();
                    st.peer_flow_control = true;
                    let delta = i64::from(delta);
                    if stream_id == 0 {
                        st.session_send_window += delta;
                        false
                    } else if let Some(e) = st.streams.get_mut(&stream_id) {
                        e.send_window += delta;
                        e.reset = e.send_window > i64::from(i32::MAX);
                        e.reset
                    } else {
                        false
                    }
                };
                self.shared.window_changed.notify_waiters();
                if overflow {
                    return self
                        .send(Out::Frame(Frame::RstStream {
                            stream_id,
                            status: rst::FLOW_CONTROL_ERROR,
                        }))
                        .await;
                }
            }
            Frame::Unknown { frame_type, .. } => {
                tracing::debug!(frame_type, "ignoring unknown spdy control frame");
            }
        }
        Ok(())
    }

    fn remote_fin(&self, stream_id: u32) {
        let mut st = self.shared.lock();
        if let Some(e) = st.streams.get_mut(&stream_id) {
            e.remote_fin = true;
            e.inbound = None;
        }
        Shared::maybe_remove(&mut st, stream_id);
    }
}

async fn write_loop<W: AsyncWrite>(
    w: W,
    mut rx: mpsc::Receiver<Out>,
    mut ctl: mpsc::UnboundedReceiver<Out>,
    activity: Arc<Notify>,
) -> Result<(), crate::Error> {
    tokio::pin!(w);
    let mut compressor = HeaderCompressor::new();
    let mut buf = Vec::with_capacity(64 * 1024);
    let mut data_open = true;
    loop {
        let first = tokio::select! {
            biased;
            Some(c) = ctl.recv() => c,
            d = rx.recv(), if data_open => match d {
                Some(d) => d,
                None => {
                    data_open = false;
                    continue;
                }
            },
            else => return Ok(()),
        };
        let mut next = Some(first);
        let mut shutdown = false;
        // Our own pings are keepalive probes, not activity.
        let mut active = false;
        while let Some(out) = next.take() {
            active |= !matches!(out, Out::Frame(Frame::Ping { .. }));
            match out {
                Out::Frame(f) => f.encode(&mut buf),
                Out::SynStream {
                    stream_id,
                    fin,
                    headers,
                } => Frame::SynStream {
                    stream_id,
                    associated_id: 0,
                    priority: 0,
                    slot: 0,
                    flags: if fin { FLAG_FIN } else { 0 },
                    header_block: compressor.compress(&headers),
                }
                .encode(&mut buf),
                Out::SynReply { stream_id, headers } => Frame::SynReply {
                    stream_id,
                    flags: 0,
                    header_block: compressor.compress(&headers),
                }
                .encode(&mut buf),
                Out::Shutdown => {
                    shutdown = true;
                    break;
                }
            }
            if buf.len() < 64 * 1024 {
                next = match ctl.try_recv() {
                    Ok(c) => Some(c),
                    Err(_) => rx.try_recv().ok(),
                };
            }
        }
        w.write_all(&buf).await.map_err(crate::Error::Io)?;
        w.flush().await.map_err(crate::Error::Io)?;
        buf.clear();
        if active {
            activity.notify_one();
        }
        if shutdown {
            let _ = w.shutdown().await;
            return Ok(());
        }
    }
}
