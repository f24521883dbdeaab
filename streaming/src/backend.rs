//! The seam between the streaming protocols and the container runtime.
//!
//! The daemon implements [`Backend`]; this crate calls it once a client has
//! connected and its streams are set up. A backend future is dropped when the
//! client goes away, so backends must clean up on drop (kill the exec'd
//! process, close the attach socket) rather than rely on running to the end.

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc;

/// A failure the backend reports; its text reaches the client.
pub type BackendError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// A stream the client reads from or writes to.
pub type BoxReader = Box<dyn AsyncRead + Send + Unpin + 'static>;
/// A stream the backend writes the process's output to.
pub type BoxWriter = Box<dyn AsyncWrite + Send + Unpin + 'static>;

/// A bidirectional byte stream (one forwarded TCP connection).
pub trait DuplexIo: AsyncRead + AsyncWrite + Send + Unpin + 'static {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> DuplexIo for T {}

/// A terminal size, as the Kubernetes clients send it on the resize stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TerminalSize {
    #[serde(rename = "Width")]
    pub width: u16,
    #[serde(rename = "Height")]
    pub height: u16,
}

/// The streams of one exec or attach session, as the request asked for.
///
/// `stdin` reaches EOF when the client closes it; the writers should be
/// shut down (or dropped) when the output ends. With a TTY there is no
/// separate stderr and `resize` carries the client's terminal size changes.
#[derive(Default)]
pub struct Streams {
    pub stdin: Option<BoxReader>,
    pub stdout: Option<BoxWriter>,
    pub stderr: Option<BoxWriter>,
    pub resize: Option<mpsc::Receiver<TerminalSize>>,
}

impl std::fmt::Debug for Streams {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Streams")
            .field("stdin", &self.stdin.is_some())
            .field("stdout", &self.stdout.is_some())
            .field("stderr", &self.stderr.is_some())
            .field("resize", &self.resize.is_some())
            .finish()
    }
}

/// How an exec'd process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExitStatus {
    /// The exit code; 0 is success.
    pub code: i32,
}

/// What the daemon does when a client connected to a streaming URL.
#[async_trait::async_trait]
pub trait Backend: Send + Sync + 'static {
    /// Runs `cmd` in the container with the given streams and returns how
    /// it exited (a process killed by signal N should report 128 + N, as a
    /// shell would). An `Err` means the command could not be run at all.
    async fn exec(
        &self,
        container_id: &str,
        cmd: &[String],
        tty: bool,
        streams: Streams,
    ) -> Result<ExitStatus, BackendError>;

    /// Attaches the streams to the container's main process until the
    /// client detaches or the process ends.
    async fn attach(
        &self,
        container_id: &str,
        tty: bool,
        streams: Streams,
    ) -> Result<(), BackendError>;

    /// Connects `stream` to `localhost:port` in the sandbox's network
    /// namespace and copies both ways. Return once the pod side has closed
    /// and its data is written (shut `stream` down), as containerd and CRI-O
    /// do: clients wait for the session to end before they close their side.
    /// EOF from the client should be passed on as a write shutdown.
    async fn port_forward(
        &self,
        pod_sandbox_id: &str,
        port: u16,
        stream: Box<dyn DuplexIo>,
    ) -> Result<(), BackendError>;
}
