//! Received SPDY DATA is buffered within a byte budget, per stream and per
//! connection, whatever the size of the frames: a peer sending few huge
//! frames that nobody reads gets backpressure, not our memory.

use std::time::Duration;

use streaming::spdy::compress::HeaderCompressor;
use streaming::spdy::conn::{INBOUND_CONNECTION_BYTES, INBOUND_STREAM_BYTES};
use streaming::spdy::{Connection, Frame, Headers, Options, Role, Stream};
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream, WriteHalf};

const MIB: usize = 1 << 20;

/// A server connection over an in-memory pipe, the peer's writing half,
/// and `streams` peer streams accepted on it and never read.
async fn server_with_streams(streams: u32) -> (Connection, WriteHalf<DuplexStream>, Vec<Stream>) {
    let (server_io, peer_io) = tokio::io::duplex(64 * 1024);
    let (conn, mut incoming) = Connection::new(server_io, Role::Server, Options::default());
    let (mut peer_r, mut peer_w) = tokio::io::split(peer_io);
    // Whatever the server answers (SYN_REPLY, WINDOW_UPDATE) is drained.
    tokio::spawn(async move {
        let mut sink = vec![0u8; 64 * 1024];
        while matches!(peer_r.read(&mut sink).await, Ok(n) if n > 0) {}
    });
    let mut compressor = HeaderCompressor::new();
    let mut accepted = Vec::new();
    for i in 0..streams {
        let mut headers = Headers::new();
        headers.insert("streamtype", "stdin");
        let syn = Frame::SynStream {
            stream_id: 2 * i + 1,
            associated_id: 0,
            priority: 0,
            slot: 0,
            flags: 0,
            header_block: compressor.compress(&headers),
        };
        peer_w.write_all(&syn.to_bytes()).await.unwrap();
        accepted.push(incoming.accept().await.expect("stream accepted"));
    }
    (conn, peer_w, accepted)
}

fn data(stream_id: u32, len: usize) -> Vec<u8> {
    Frame::Data {
        stream_id,
        flags: 0,
        data: vec![7u8; len],
    }
    .to_bytes()
}

/// Writes each frame in turn until one does not go through within a
/// moment (the server stopped reading); returns how many went through.
async fn write_until_blocked(w: &mut WriteHalf<DuplexStream>, frames: &[Vec<u8>]) -> usize {
    for (n, frame) in frames.iter().enumerate() {
        let write = tokio::time::timeout(Duration::from_secs(2), w.write_all(frame));
        if write.await.is_err() {
            return n;
        }
    }
    frames.len()
}

#[tokio::test]
async fn one_stream_buffers_bytes_not_frames() {
    let (_conn, mut peer, mut streams) = server_with_streams(1).await;
    // 64 frames of 1 MiB: the old queue of 64 frames took them all.
    let frames: Vec<Vec<u8>> = (0..64).map(|_| data(1, MIB)).collect();
    let through = write_until_blocked(&mut peer, &frames).await;
    // The budget, the frame the driver holds waiting for it, and what the
    // 64 KiB pipe holds of the next.
    let bound = INBOUND_STREAM_BYTES / MIB + 2;
    assert!(
        through <= bound,
        "{through} MiB accepted with nobody reading (bound {bound})"
    );
    // Reading frees the budget and the data is all there, in order.
    let mut got = vec![0u8; MIB];
    streams[0].read_exact(&mut got).await.unwrap();
    assert!(got.iter().all(|b| *b == 7));
}

#[tokio::test]
async fn all_streams_together_stay_within_the_connection_budget() {
    let streams = (INBOUND_CONNECTION_BYTES / INBOUND_STREAM_BYTES) as u32 * 4;
    let (_conn, mut peer, _held) = server_with_streams(streams).await;
    // Half a stream budget to each stream: every stream has room of its
    // own, only the connection budget can stop them.
    let each = INBOUND_STREAM_BYTES / 2;
    let frames: Vec<Vec<u8>> = (0..streams).map(|i| data(2 * i + 1, each)).collect();
    let through = write_until_blocked(&mut peer, &frames).await;
    let bound = INBOUND_CONNECTION_BYTES / each + 2;
    assert!(
        through <= bound,
        "{through} frames of {each} bytes accepted with nobody reading (bound {bound})"
    );
}
