//! The daemon side of the streaming server: Exec runs `runc exec` (pipes,
//! or a pty received over runc's console socket), Attach talks to conmon's
//! attach socket and ctl fifo, PortForward connects inside the pod's
//! network namespace from a thread that entered it.
//!
//! The streaming server drops a session's future when its client goes
//! away: everything started here is owned by that future (a `JoinSet`, the
//! runc child with kill-on-drop, the exec guard) so nothing outlives it.

mod pty;

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use streaming::{Backend, BackendError, DuplexIo, ExitStatus, Streams};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::task::JoinSet;

/// conmon's attach socket sends at most this much per message, behind a
/// one-byte stream tag (conmon `src/conn_sock.h`: CONN_SOCK_BUF_SIZE).
const ATTACH_BUF: usize = 8192;
/// Stream tags of conmon's attach socket (conmon `stdpipe_t`).
const ATTACH_STDOUT: u8 = 2;
const ATTACH_STDERR: u8 = 3;
/// How long runc may take to hand over the pty of a tty exec.
const CONSOLE_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a port-forward connect inside the pod may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

pub struct CriBackend {
    pub containers: Arc<container::ContainerManager>,
    pub sandboxes: Arc<pod_sandbox::Sandboxes>,
}

fn err(message: impl Into<String>) -> BackendError {
    message.into().into()
}

/// Copies `from` to `to` until EOF, then shuts `to` down.
async fn pump<R, W>(mut from: R, mut to: W) -> std::io::Result<u64>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let n = tokio::io::copy(&mut from, &mut to).await?;
    to.shutdown().await?;
    Ok(n)
}

/// Removes the console socket file when the exec ends, however it ends.
struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

#[async_trait::async_trait]
impl Backend for CriBackend {
    async fn exec(
        &self,
        container_id: &str,
        cmd: &[String],
        tty: bool,
        streams: Streams,
    ) -> Result<ExitStatus, BackendError> {
        let prepared = self.containers.prepare_exec(container_id, cmd, tty)?;
        let code = if tty {
            self.exec_tty(prepared, streams).await?
        } else {
            exec_pipes(prepared, streams).await?
        };
        Ok(ExitStatus { code })
    }

    async fn attach(
        &self,
        container_id: &str,
        _tty: bool,
        streams: Streams,
    ) -> Result<(), BackendError> {
        let id = self.containers.running_id(container_id, "attach to it")?;
        let bundle = self.containers.bundle_path(&id)?;
        let socket = pty::connect_seqpacket(&bundle, "attach").map_err(|e| {
            err(format!(
                "failed to connect to the attach socket of {id}: {e}"
            ))
        })?;
        let (mut from_conmon, mut to_conmon) = socket.into_split();
        let mut tasks = JoinSet::new();
        let Streams {
            stdin,
            mut stdout,
            mut stderr,
            resize,
        } = streams;
        if let Some(mut resize) = resize {
            let containers = self.containers.clone();
            let id = id.clone();
            tasks.spawn(async move {
                while let Some(size) = resize.recv().await {
                    if let Err(e) = containers.resize_terminal(&id, size.width, size.height) {
                        tracing::warn!(%id, %e, "terminal resize failed");
                    }
                }
            });
        }
        let stdin_done = match stdin {
            Some(mut stdin) => {
                let (tx, rx) = tokio::sync::oneshot::channel::<()>();
                tasks.spawn(async move {
                    // One seqpacket message per write, no larger than
                    // conmon's receive buffer (it would truncate).
                    let mut buf = vec![0u8; ATTACH_BUF];
                    loop {
                        match stdin.read(&mut buf).await {
                            Ok(0) | Err(_) => break,
                            Ok(n) => {
                                if to_conmon.write_all(&buf[..n]).await.is_err() {
                                    break;
                                }
                            }
                        }
                    }
                    // The client closed stdin: conmon sees EOF on this
                    // connection and, for a stdin_once container, closes
                    // the container's stdin.
                    let _ = to_conmon.shutdown().await;
                    let _ = tx.send(());
                    std::future::pending::<()>().await;
                });
                Some(rx)
            }
            None => {
                // Keep the write side open: shutting it down would count
                // as a detach and close a stdin_once container's stdin.
                tasks.spawn(async move {
                    let _keep = to_conmon;
                    std::future::pending::<()>().await;
                });
                None
            }
        };
        let mut buf = vec![0u8; ATTACH_BUF + 1];
        loop {
            let n = from_conmon.read(&mut buf).await?;
            if n == 0 {
                break;
            }
            let target = match buf[0] {
                ATTACH_STDOUT => stdout.as_mut(),
                ATTACH_STDERR => stderr.as_mut(),
                _ => None,
            };
            if let Some(w) = target {
                w.write_all(&buf[1..n]).await?;
                w.flush().await?;
            }
        }
        drop(stdin_done);
        for w in [stdout.as_mut(), stderr.as_mut()].into_iter().flatten() {
            let _ = w.shutdown().await;
        }
        Ok(())
    }

    async fn port_forward(
        &self,
        pod_sandbox_id: &str,
        port: u16,
        stream: Box<dyn DuplexIo>,
    ) -> Result<(), BackendError> {
        let sandbox = self.sandboxes.get(pod_sandbox_id)?;
        let netns = sandbox.spec().netns.clone();
        let id = sandbox.id().to_owned();
        let tcp = match &netns {
            None => tokio::time::timeout(
                CONNECT_TIMEOUT,
                tokio::net::TcpStream::connect(("127.0.0.1", port)),
            )
            .await
            .unwrap_or_else(|_| Err(std::io::ErrorKind::TimedOut.into())),
            Some(path) => connect_in_netns(path.clone(), port).await,
        }
        .map_err(|e| {
            err(format!(
                "failed to connect to localhost:{port} in pod sandbox {id}: {e}"
            ))
        })?;
        let (pod_rd, pod_wr) = tcp.into_split();
        let (client_rd, client_wr) = tokio::io::split(stream);
        let mut tasks = JoinSet::new();
        // Client EOF becomes a write shutdown towards the pod; the session
        // ends when the pod side has closed and its data is delivered.
        tasks.spawn(async move {
            let _ = pump(client_rd, pod_wr).await;
            std::future::pending::<()>().await;
        });
        pump(pod_rd, client_wr).await?;
        Ok(())
    }
}

/// Opens a TCP connection to localhost:`port` in the network namespace at
/// `netns`: a fresh OS thread enters it (the namespace sticks to the
/// thread, which then ends) and hands the connected socket back.
async fn connect_in_netns(netns: PathBuf, port: u16) -> std::io::Result<tokio::net::TcpStream> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("crius-portfwd".into())
        .spawn(move || {
            let result = (|| -> std::io::Result<std::net::TcpStream> {
                let ns = std::fs::File::open(&netns)?;
                nix::sched::setns(&ns, nix::sched::CloneFlags::CLONE_NEWNET)
                    .map_err(std::io::Error::from)?;
                let v4 = std::net::SocketAddr::from(([127, 0, 0, 1], port));
                let stream = match std::net::TcpStream::connect_timeout(&v4, CONNECT_TIMEOUT) {
                    Ok(s) => s,
                    Err(e4) => {
                        let v6 = std::net::SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, port));
                        std::net::TcpStream::connect_timeout(&v6, CONNECT_TIMEOUT)
                            .map_err(|_| e4)?
                    }
                };
                stream.set_nonblocking(true)?;
                Ok(stream)
            })();
            let _ = tx.send(result);
        })?;
    let stream = rx
        .await
        .map_err(|_| std::io::Error::other("port-forward connect thread died"))??;
    tokio::net::TcpStream::from_std(stream)
}

/// Copies the pty's output to the client. The master reads EOF (EIO)
/// whenever no one holds the slave side, which also happens before runc
/// has opened it for the process: EOF counts only once the process exited.
async fn tty_output(
    mut pty: pty::Pty,
    mut to: streaming::BoxWriter,
    exited: tokio::sync::watch::Receiver<bool>,
) -> std::io::Result<()> {
    let mut buf = vec![0u8; 32 * 1024];
    loop {
        let n = pty.read(&mut buf).await?;
        if n == 0 {
            if *exited.borrow() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        }
        to.write_all(&buf[..n]).await?;
        to.flush().await?;
    }
    to.shutdown().await
}

/// A non-tty exec: runc's stdio piped to the client's streams.
async fn exec_pipes(
    prepared: container::StreamExec,
    streams: Streams,
) -> Result<i32, BackendError> {
    let container::StreamExec {
        program,
        args,
        guard,
        ..
    } = prepared;
    let mut command = tokio::process::Command::new(program);
    // Its own process group, so that nothing it starts shares crius' group.
    command.args(args).process_group(0).kill_on_drop(true);
    let piped = |wanted: bool| {
        if wanted {
            Stdio::piped()
        } else {
            Stdio::null()
        }
    };
    command
        .stdin(piped(streams.stdin.is_some()))
        .stdout(piped(streams.stdout.is_some()))
        .stderr(piped(streams.stderr.is_some()));
    let mut child = command
        .spawn()
        .map_err(|e| err(format!("failed to run runc exec: {e}")))?;
    let mut inputs = JoinSet::new();
    if let (Some(from), Some(to)) = (streams.stdin, child.stdin.take()) {
        inputs.spawn(async move {
            let _ = pump(from, to).await;
        });
    }
    let mut outputs = JoinSet::new();
    if let (Some(from), Some(to)) = (child.stdout.take(), streams.stdout) {
        outputs.spawn(pump(from, to));
    }
    if let (Some(from), Some(to)) = (child.stderr.take(), streams.stderr) {
        outputs.spawn(pump(from, to));
    }
    let status = child.wait().await?;
    // The pipes close when the process and everything it started are gone;
    // all its output reaches the client before the exit status does.
    while outputs.join_next().await.is_some() {}
    Ok(guard.finish(status)?)
}

impl CriBackend {
    /// A tty exec: a pty of our own is runc's stdio and the controlling
    /// terminal of its new session (so ^C reaches the process); the
    /// client's stdin goes to the master, its output to stdout, and resize
    /// events become TIOCSWINSZ on it.
    async fn exec_tty(
        &self,
        prepared: container::StreamExec,
        streams: Streams,
    ) -> Result<i32, BackendError> {
        let container::StreamExec {
            program,
            args,
            console_socket,
            guard,
        } = prepared;
        let socket_path = console_socket.ok_or_else(|| err("tty exec without console socket"))?;
        let _ = std::fs::remove_file(&socket_path);
        let listener = tokio::net::UnixListener::bind(&socket_path)
            .map_err(|e| err(format!("failed to listen on {socket_path:?}: {e}")))?;
        let _socket_file = RemoveOnDrop(socket_path);
        // runc only hands out a pty when detached: the exec-wait helper
        // (a child subreaper) waits for the exec'd process instead.
        let mut child = tokio::process::Command::new("/proc/self/exe")
            .arg("exec-wait")
            .arg(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| err(format!("failed to run runc exec: {e}")))?;
        let conn = tokio::select! {
            accepted = tokio::time::timeout(CONSOLE_TIMEOUT, listener.accept()) => match accepted {
                Ok(Ok((conn, _))) => conn,
                Ok(Err(e)) => return Err(err(format!("console socket accept failed: {e}"))),
                Err(_) => return Err(err("runc did not send the terminal in time")),
            },
            status = child.wait() => {
                let status = status?;
                // runc failed before it got to the terminal.
                let code = guard.finish(status)?;
                return Err(err(format!("runc exec exited with {code} before sending the terminal")));
            }
        };
        drop(listener);
        let master = pty::receive_fd(&conn).await?;
        drop(conn);
        let master = pty::Pty::new(master)?;
        let mut tasks = JoinSet::new();
        if let Some(mut resize) = streams.resize {
            let pty = master.clone();
            tasks.spawn(async move {
                while let Some(size) = resize.recv().await {
                    if let Err(e) = pty.set_size(size.width, size.height) {
                        tracing::warn!(%e, "terminal resize failed");
                    }
                }
            });
        }
        if let Some(stdin) = streams.stdin {
            let pty = master.clone();
            tasks.spawn(async move {
                // A pty has no half-close: EOF from the client ends here.
                let mut pty = pty;
                let mut stdin = stdin;
                let _ = tokio::io::copy(&mut stdin, &mut pty).await;
            });
        }
        let (exited_tx, exited_rx) = tokio::sync::watch::channel(false);
        let output = streams
            .stdout
            .map(|to| tokio::spawn(tty_output(master.clone(), to, exited_rx)));
        drop(master);
        // Aborts the output copy with the session if the client goes away.
        struct AbortOnDrop(Option<tokio::task::JoinHandle<std::io::Result<()>>>);
        impl Drop for AbortOnDrop {
            fn drop(&mut self) {
                if let Some(h) = &self.0 {
                    h.abort();
                }
            }
        }
        let mut output = AbortOnDrop(output);
        let status = child.wait().await?;
        let _ = exited_tx.send(true);
        if let Some(h) = output.0.take() {
            let _ = h.await;
        }
        drop(tasks);
        Ok(guard.finish(status)?)
    }
}
