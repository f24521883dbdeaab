//! Clients for the streaming server (SPDY and WebSocket), the same ones the
//! streaming crate's tests use, plus reading a stream to its end.

#[path = "../../streaming/tests/common/client.rs"]
mod client;

use std::time::{Duration, Instant};

use tokio::io::AsyncReadExt;

pub use client::*;

/// Reads to EOF (at most 30 s) as text.
pub async fn read_all<R: tokio::io::AsyncRead + Unpin>(r: &mut R) -> String {
    String::from_utf8_lossy(&read_all_within(r, Duration::from_secs(30)).await).into_owned()
}

/// Reads until what was read satisfies `done`; fails the test if the
/// stream ends first or `within` passes. Returns all that was read.
pub async fn read_until<R: tokio::io::AsyncRead + Unpin>(
    r: &mut R,
    within: Duration,
    done: impl Fn(&[u8]) -> bool,
) -> Vec<u8> {
    let deadline = Instant::now() + within;
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    while !done(&got) {
        let left = deadline.saturating_duration_since(Instant::now());
        let n = tokio::time::timeout(left, r.read(&mut buf))
            .await
            .unwrap_or_else(|_| panic!("no more output within {within:?}: {got:?}"))
            .expect("stream read");
        assert!(
            n > 0,
            "stream ended early: {:?}",
            String::from_utf8_lossy(&got)
        );
        got.extend_from_slice(&buf[..n]);
    }
    got
}
