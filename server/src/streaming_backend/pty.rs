//! File-descriptor plumbing for streaming: receiving runc's pty master over
//! SCM_RIGHTS, async I/O and TIOCSWINSZ on it, and connecting to conmon's
//! SOCK_SEQPACKET attach socket.
//!
//! Unsafe is needed for taking ownership of a descriptor the kernel just
//! installed for us, registering it with the reactor, and TIOCSWINSZ.
#![allow(unsafe_code)]

use std::io;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use nix::sys::socket::{
    AddressFamily, ControlMessageOwned, MsgFlags, SockFlag, SockType, UnixAddr, connect, recvmsg,
    socket,
};
use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncRead, AsyncWrite, Interest, ReadBuf};

nix::ioctl_write_ptr_bad!(tiocswinsz, libc::TIOCSWINSZ, libc::winsize);

/// Connects to the SOCK_SEQPACKET socket `name` in `dir`. The path goes
/// through `/proc/self/fd/<dir fd>/` so that a long bundle path does not hit
/// the 108-byte limit of unix socket addresses (conmon binds it that way).
/// tokio's `UnixStream` only issues read/write/shutdown, which keep message
/// boundaries on a seqpacket socket.
pub fn connect_seqpacket(dir: &Path, name: &str) -> io::Result<tokio::net::UnixStream> {
    use std::os::unix::fs::OpenOptionsExt;
    let dir_fd = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_PATH | libc::O_DIRECTORY)
        .open(dir)?;
    let addr = UnixAddr::new(format!("/proc/self/fd/{}/{name}", dir_fd.as_raw_fd()).as_str())?;
    let fd = socket(
        AddressFamily::Unix,
        SockType::SeqPacket,
        SockFlag::SOCK_CLOEXEC,
        None,
    )?;
    connect(fd.as_raw_fd(), &addr)?;
    let std_stream = std::os::unix::net::UnixStream::from(fd);
    std_stream.set_nonblocking(true)?;
    tokio::net::UnixStream::from_std(std_stream)
}

/// Receives the one descriptor runc sends on its console socket.
pub async fn receive_fd(conn: &tokio::net::UnixStream) -> io::Result<OwnedFd> {
    loop {
        conn.readable().await?;
        let got = conn.try_io(Interest::READABLE, || {
            // runc sends the pty's name as the payload.
            let mut name = [0u8; 4096];
            let mut iov = [io::IoSliceMut::new(&mut name)];
            let mut cmsg = nix::cmsg_space!([RawFd; 2]);
            let msg = recvmsg::<()>(
                conn.as_raw_fd(),
                &mut iov,
                Some(&mut cmsg),
                MsgFlags::MSG_CMSG_CLOEXEC,
            )
            .map_err(io::Error::from)?;
            let mut fds = Vec::new();
            for c in msg.cmsgs().map_err(io::Error::from)? {
                if let ControlMessageOwned::ScmRights(rights) = c {
                    fds.extend(rights);
                }
            }
            Ok(fds)
        });
        match got {
            Ok(fds) => {
                let mut owned: Vec<OwnedFd> = fds
                    .into_iter()
                    // SAFETY: SCM_RIGHTS installed these descriptors in our
                    // table for this message; nothing else owns them.
                    .map(|fd| unsafe { OwnedFd::from_raw_fd(fd) })
                    .collect();
                return match owned.len() {
                    1 => Ok(owned.remove(0)),
                    0 => Err(io::Error::other(
                        "no terminal received on the console socket",
                    )),
                    n => Err(io::Error::other(format!(
                        "{n} descriptors received on the console socket"
                    ))),
                };
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            Err(e) => return Err(e),
        }
    }
}

/// The master side of a pty, readable and writable asynchronously; clones
/// share the descriptor.
#[derive(Clone)]
pub struct Pty(Arc<AsyncFd<OwnedFd>>);

impl Pty {
    pub fn new(fd: OwnedFd) -> io::Result<Pty> {
        let flags = nix::fcntl::fcntl(&fd, nix::fcntl::FcntlArg::F_GETFL)?;
        let flags = nix::fcntl::OFlag::from_bits_retain(flags) | nix::fcntl::OFlag::O_NONBLOCK;
        nix::fcntl::fcntl(&fd, nix::fcntl::FcntlArg::F_SETFL(flags))?;
        // SAFETY: `fd` is an open descriptor that the AsyncFd owns from now
        // on; OwnedFd always reports that same descriptor.
        let registered = unsafe { AsyncFd::register(fd) }?;
        Ok(Pty(Arc::new(registered)))
    }

    pub fn set_size(&self, width: u16, height: u16) -> io::Result<()> {
        let ws = libc::winsize {
            ws_row: height,
            ws_col: width,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        // SAFETY: the descriptor is a valid open pty master owned by self,
        // and `ws` is a properly initialised winsize that outlives the call.
        unsafe { tiocswinsz(self.0.get_ref().as_raw_fd(), &ws) }?;
        Ok(())
    }
}

impl AsyncRead for Pty {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        loop {
            let mut guard = ready!(self.0.poll_read_ready(cx))?;
            let unfilled = buf.initialize_unfilled();
            match guard.try_io(|fd| {
                nix::unistd::read(fd.get_ref().as_fd(), unfilled).map_err(io::Error::from)
            }) {
                Ok(Ok(n)) => {
                    buf.advance(n);
                    return Poll::Ready(Ok(()));
                }
                // EIO: every holder of the slave side is gone, i.e. EOF.
                Ok(Err(e)) if e.raw_os_error() == Some(libc::EIO) => return Poll::Ready(Ok(())),
                Ok(Err(e)) => return Poll::Ready(Err(e)),
                Err(_would_block) => continue,
            }
        }
    }
}

impl AsyncWrite for Pty {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        loop {
            let mut guard = ready!(self.0.poll_write_ready(cx))?;
            match guard
                .try_io(|fd| nix::unistd::write(fd.get_ref().as_fd(), buf).map_err(io::Error::from))
            {
                Ok(result) => return Poll::Ready(result),
                Err(_would_block) => continue,
            }
        }
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}
