//! The protocol-independent part of exec and attach: which streams a
//! request wants, running the backend, and reporting how it ended in the
//! format each protocol version expects.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use serde_json::json;
use tokio::io::{AsyncRead, ReadBuf};
use tokio::sync::mpsc;

use crate::backend::{Backend, Streams, TerminalSize};

/// Which of the standard streams a session carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct StreamOptions {
    pub stdin: bool,
    pub stdout: bool,
    pub stderr: bool,
    pub tty: bool,
}

impl StreamOptions {
    pub fn new(stdin: bool, stdout: bool, stderr: bool, tty: bool) -> Self {
        // With a TTY, stderr is merged into stdout; the kubelet drops it too.
        Self {
            stdin,
            stdout,
            stderr: stderr && !tty,
            tty,
        }
    }
}

/// What to run once the streams are up.
#[derive(Debug, Clone)]
pub(crate) enum Command {
    Exec {
        container_id: String,
        cmd: Vec<String>,
    },
    Attach {
        container_id: String,
    },
}

/// How a session ended, before it is encoded for the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Outcome {
    Success,
    ExitCode(i32),
    Failed(String),
}

impl Outcome {
    /// The `metav1.Status` JSON that v4 and v5 clients decode.
    pub fn status_v4(&self) -> Vec<u8> {
        let v = match self {
            Outcome::Success => json!({"metadata": {}, "status": "Success"}),
            Outcome::ExitCode(code) => json!({
                "metadata": {},
                "status": "Failure",
                "message": format!("command terminated with non-zero exit code: exit status {code}"),
                "reason": "NonZeroExitCode",
                "details": {"causes": [{"reason": "ExitCode", "message": code.to_string()}]},
            }),
            Outcome::Failed(msg) => json!({
                "metadata": {},
                "status": "Failure",
                "message": format!("Internal error occurred: {msg}"),
                "reason": "InternalError",
                "details": {"causes": [{"message": msg}]},
                "code": 500,
            }),
        };
        serde_json::to_vec(&v).expect("a json value serializes")
    }

    /// The plain error text that protocol versions before v4 expect; nothing
    /// on success.
    pub fn status_v1(&self) -> Option<Vec<u8>> {
        match self {
            Outcome::Success => None,
            Outcome::ExitCode(code) => Some(
                format!("command terminated with non-zero exit code: exit status {code}")
                    .into_bytes(),
            ),
            Outcome::Failed(msg) => Some(msg.clone().into_bytes()),
        }
    }
}

/// Runs the backend until it finishes or `cancel` resolves (the client went
/// away); `None` means cancelled, and the backend future has been dropped.
pub(crate) async fn run(
    backend: &dyn Backend,
    command: &Command,
    tty: bool,
    streams: Streams,
    cancel: impl Future<Output = ()>,
) -> Option<Outcome> {
    let work = async {
        match command {
            Command::Exec { container_id, cmd } => {
                match backend.exec(container_id, cmd, tty, streams).await {
                    Ok(st) if st.code == 0 => Outcome::Success,
                    Ok(st) => Outcome::ExitCode(st.code),
                    Err(err) => {
                        Outcome::Failed(format!("error executing command in container: {err}"))
                    }
                }
            }
            Command::Attach { container_id } => {
                match backend.attach(container_id, tty, streams).await {
                    Ok(()) => Outcome::Success,
                    Err(err) => Outcome::Failed(format!("error attaching to container: {err}")),
                }
            }
        }
    };
    tokio::select! {
        outcome = work => Some(outcome),
        _ = cancel => None,
    }
}

/// Splits the resize stream's concatenated JSON objects into sizes.
#[derive(Debug, Default)]
pub(crate) struct ResizeDecoder {
    buf: Vec<u8>,
}

/// Bytes of an unfinished resize message we keep before giving up on it.
const MAX_RESIZE_BUFFER: usize = 4096;

impl ResizeDecoder {
    pub fn push(&mut self, data: &[u8]) -> Vec<TerminalSize> {
        self.buf.extend_from_slice(data);
        let mut sizes = Vec::new();
        let mut consumed = 0;
        let mut it =
            serde_json::Deserializer::from_slice(&self.buf).into_iter::<serde_json::Value>();
        loop {
            match it.next() {
                Some(Ok(v)) => {
                    consumed = it.byte_offset();
                    match serde_json::from_value::<TerminalSize>(v) {
                        Ok(size) => sizes.push(size),
                        Err(err) => tracing::debug!(%err, "ignoring invalid resize message"),
                    }
                }
                Some(Err(e)) if e.is_eof() => break,
                Some(Err(err)) => {
                    tracing::debug!(%err, "discarding undecodable resize data");
                    consumed = self.buf.len();
                    break;
                }
                None => {
                    consumed = self.buf.len();
                    break;
                }
            }
        }
        self.buf.drain(..consumed);
        if self.buf.len() > MAX_RESIZE_BUFFER {
            self.buf.clear();
        }
        sizes
    }
}

/// Feeds a resize byte stream into the backend's channel until either ends.
pub(crate) async fn pump_resize<R: AsyncRead + Unpin>(mut r: R, tx: mpsc::Sender<TerminalSize>) {
    use tokio::io::AsyncReadExt;
    let mut dec = ResizeDecoder::default();
    let mut buf = [0u8; 1024];
    loop {
        let n = match r.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        for size in dec.push(&buf[..n]) {
            if tx.send(size).await.is_err() {
                return;
            }
        }
    }
}

/// An [`AsyncRead`] over chunks arriving on a channel; EOF when the sender
/// is dropped.
#[derive(Debug)]
pub(crate) struct ChanReader {
    rx: mpsc::Receiver<Vec<u8>>,
    buf: Vec<u8>,
    pos: usize,
}

impl ChanReader {
    pub fn new(rx: mpsc::Receiver<Vec<u8>>) -> Self {
        Self {
            rx,
            buf: Vec::new(),
            pos: 0,
        }
    }
}

impl AsyncRead for ChanReader {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        out: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = &mut *self;
        while this.pos == this.buf.len() {
            match this.rx.poll_recv(cx) {
                Poll::Ready(Some(chunk)) => {
                    this.buf = chunk;
                    this.pos = 0;
                }
                Poll::Ready(None) => return Poll::Ready(Ok(())),
                Poll::Pending => return Poll::Pending,
            }
        }
        let n = out.remaining().min(this.buf.len() - this.pos);
        out.put_slice(&this.buf[this.pos..this.pos + n]);
        this.pos += n;
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_code_status_is_what_kubectl_decodes() {
        let v: serde_json::Value =
            serde_json::from_slice(&Outcome::ExitCode(7).status_v4()).unwrap();
        assert_eq!(v["status"], "Failure");
        assert_eq!(v["reason"], "NonZeroExitCode");
        assert_eq!(v["details"]["causes"][0]["reason"], "ExitCode");
        assert_eq!(v["details"]["causes"][0]["message"], "7");
        let ok: serde_json::Value = serde_json::from_slice(&Outcome::Success.status_v4()).unwrap();
        assert_eq!(ok["status"], "Success");
        assert_eq!(Outcome::Success.status_v1(), None);
    }

    #[test]
    fn resize_messages_split_across_chunks() {
        let mut d = ResizeDecoder::default();
        assert!(d.push(br#"{"Width":80,"He"#).is_empty());
        let got = d.push(br#"ight":24}{"Width":100,"Height":30}"#);
        assert_eq!(
            got,
            vec![
                TerminalSize {
                    width: 80,
                    height: 24
                },
                TerminalSize {
                    width: 100,
                    height: 30
                }
            ]
        );
        assert!(d.push(b"garbage").is_empty());
        assert_eq!(
            d.push(br#"{"Width":1,"Height":2}"#),
            vec![TerminalSize {
                width: 1,
                height: 2
            }]
        );
    }

    #[test]
    fn tty_drops_stderr() {
        let o = StreamOptions::new(true, true, true, true);
        assert!(!o.stderr);
        assert!(StreamOptions::new(false, true, true, false).stderr);
    }
}
