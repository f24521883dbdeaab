//! The loopback interface of a pod's network namespace. A new network
//! namespace has `lo` down, and many CNI conflists (Calico's, Flannel's,
//! Cilium's, a plain bridge + host-local + portmap) do not chain the
//! `loopback` plugin, so crius brings `lo` up itself: without it nothing in
//! the pod reaches localhost, port-forward included (it connects to
//! localhost:PORT inside the pod's namespace).
//!
//! [`up_here`] works on the calling thread's namespace (`crius pinns` calls
//! it right after unshare, before CNI ADD); [`up_in`] enters a pinned
//! namespace on a short-lived OS thread of its own, never on a tokio worker.

// SIOCGIFFLAGS / SIOCSIFFLAGS have no safe wrapper in nix 0.30.
#![allow(unsafe_code)]

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};

/// Why `lo` could not be brought up.
#[derive(Debug, thiserror::Error)]
pub enum LoopbackError {
    #[error("failed to enter network namespace {path:?}")]
    Enter {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("failed to {step} of lo")]
    Ioctl {
        step: &'static str,
        #[source]
        source: std::io::Error,
    },
}

/// Sets `lo` up in the calling thread's network namespace. Returns false
/// when it already was up (and nothing was changed).
pub fn up_here() -> Result<bool, LoopbackError> {
    let err = |step| move |source| LoopbackError::Ioctl { step, source };
    // SAFETY: socket(2) takes no memory; the result is a new fd or -1.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(err("open a socket for the flags")(
            std::io::Error::last_os_error(),
        ));
    }
    // SAFETY: a fresh fd that nothing else owns.
    let sock = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: ifreq is plain old data, valid when zeroed.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in req.ifr_name.iter_mut().zip(b"lo\0") {
        *dst = *src as libc::c_char;
    }
    // SAFETY: SIOCGIFFLAGS reads the NUL-terminated name from `req` and
    // writes the flags into it; `req` outlives the call.
    if unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS, &mut req) } < 0 {
        return Err(err("read the flags")(std::io::Error::last_os_error()));
    }
    // SAFETY: SIOCGIFFLAGS filled the flags member of the union.
    let flags = unsafe { req.ifr_ifru.ifru_flags };
    let up = libc::IFF_UP as libc::c_short;
    if flags & up != 0 {
        return Ok(false);
    }
    req.ifr_ifru.ifru_flags = flags | up;
    // SAFETY: SIOCSIFFLAGS reads the name and flags from `req`, which
    // outlives the call.
    if unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS, &req) } < 0 {
        return Err(err("set the flags")(std::io::Error::last_os_error()));
    }
    Ok(true)
}

/// [`up_in`] for many pinned network namespaces from one thread, which
/// enters each in turn and then ends: recovery brings up `lo` of hundreds
/// of pods without a thread each. One result per namespace, in order.
pub fn up_in_each(netns: Vec<PathBuf>) -> Vec<Result<bool, LoopbackError>> {
    let count = netns.len();
    let worker = std::thread::Builder::new()
        .name("crius-lo-up".into())
        .spawn(move || {
            netns
                .into_iter()
                .map(|path| {
                    let enter = |source| LoopbackError::Enter {
                        path: path.clone(),
                        source,
                    };
                    let ns = std::fs::File::open(&path).map_err(enter)?;
                    nix::sched::setns(&ns, nix::sched::CloneFlags::CLONE_NEWNET)
                        .map_err(|e| enter(e.into()))?;
                    up_here()
                })
                .collect()
        });
    let failed = |why: &str| {
        (0..count)
            .map(|_| {
                Err(LoopbackError::Enter {
                    path: PathBuf::new(),
                    source: std::io::Error::other(why.to_string()),
                })
            })
            .collect()
    };
    match worker {
        Ok(handle) => handle
            .join()
            .unwrap_or_else(|_| failed("the lo thread panicked")),
        Err(e) => failed(&format!("cannot start the lo thread: {e}")),
    }
}

/// Sets `lo` up in the network namespace pinned at `netns`, from a thread
/// that joins it and then ends (a namespace sticks to the thread that
/// entered it, so no other work ever runs there). Returns false when it
/// already was up.
pub fn up_in(netns: &Path) -> Result<bool, LoopbackError> {
    let path = netns.to_owned();
    let enter = |source| LoopbackError::Enter {
        path: netns.to_owned(),
        source,
    };
    let ns = std::fs::File::open(netns).map_err(enter)?;
    std::thread::Builder::new()
        .name("crius-lo-up".into())
        .spawn(move || {
            nix::sched::setns(&ns, nix::sched::CloneFlags::CLONE_NEWNET).map_err(|e| {
                LoopbackError::Enter {
                    path,
                    source: e.into(),
                }
            })?;
            up_here()
        })
        .map_err(enter)?
        .join()
        .map_err(|_| enter(std::io::Error::other("the lo thread panicked")))?
}
