//! Clients for the streaming server (SPDY and WebSocket), the same ones the
//! streaming crate's tests use, plus reading a stream to its end.

#[path = "../../streaming/tests/common/client.rs"]
mod client;

use std::time::Duration;

pub use client::*;

/// Reads to EOF (at most 30 s) as text.
pub async fn read_all<R: tokio::io::AsyncRead + Unpin>(r: &mut R) -> String {
    String::from_utf8_lossy(&read_all_within(r, Duration::from_secs(30)).await).into_owned()
}
