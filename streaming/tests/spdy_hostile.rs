//! Hostile SPDY input: raw frames written on the upgraded socket, answers
//! parsed with the crate's own frame parser.

mod common;

use std::time::Duration;

use common::*;
use streaming::spdy::compress::HeaderCompressor;
use streaming::spdy::{Frame, Headers, parse};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

async fn upgraded(url: &str) -> TcpStream {
    upgraded_with(url, "v4.channel.k8s.io").await
}

async fn upgraded_with(url: &str, protocol: &str) -> TcpStream {
    let rest = url.strip_prefix("http://").unwrap();
    let (host, path) = rest.split_at(rest.find('/').unwrap());
    let mut tcp = TcpStream::connect(host).await.unwrap();
    let req = format!(
        "POST {path} HTTP/1.1\r\nHost: {host}\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\nX-Stream-Protocol-Version: {protocol}\r\n\r\n"
    );
    tcp.write_all(req.as_bytes()).await.unwrap();
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        head.push(tcp.read_u8().await.unwrap());
    }
    assert!(
        head.starts_with(b"HTTP/1.1 101"),
        "{}",
        String::from_utf8_lossy(&head)
    );
    tcp
}

/// Reads frames until the server closes the socket.
async fn frames_until_close(tcp: &mut TcpStream) -> Vec<Frame> {
    let mut buf = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), tcp.read_to_end(&mut buf))
        .await
        .expect("server closes")
        .ok();
    let mut frames = Vec::new();
    let mut at = 0;
    while let Ok(Some((f, used))) = parse(&buf[at..]) {
        frames.push(f);
        at += used;
    }
    frames
}

fn url(server: &streaming::StreamingServer) -> String {
    server
        .register_exec(exec_req(&["echo", "x"], false, true, false, false))
        .unwrap()
}

#[tokio::test]
async fn bad_version_gets_goaway_protocol_error() {
    let (server, counters) = start_default().await;
    let mut tcp = upgraded(&url(&server)).await;
    // A PING claiming SPDY version 2.
    tcp.write_all(&[0x80, 0x02, 0x00, 0x06, 0, 0, 0, 4, 0, 0, 0, 1])
        .await
        .unwrap();
    let frames = frames_until_close(&mut tcp).await;
    assert!(
        frames
            .iter()
            .any(|f| matches!(f, Frame::GoAway { status: 1, .. })),
        "{frames:?}"
    );
    assert_eq!(
        counters.started.load(std::sync::atomic::Ordering::SeqCst),
        0
    );
}

#[tokio::test]
async fn corrupt_header_block_closes_the_connection() {
    let (server, _) = start_default().await;
    let mut tcp = upgraded(&url(&server)).await;
    let f = Frame::SynStream {
        stream_id: 1,
        associated_id: 0,
        priority: 0,
        slot: 0,
        flags: 0,
        header_block: b"definitely not zlib".to_vec(),
    };
    tcp.write_all(&f.to_bytes()).await.unwrap();
    // The connection ends rather than the server hanging or panicking.
    frames_until_close(&mut tcp).await;
}

#[tokio::test]
async fn server_parity_stream_id_is_refused_and_ping_echoed() {
    let (server, _) = start_default().await;
    let mut tcp = upgraded(&url(&server)).await;
    let mut z = HeaderCompressor::new();
    let mut h = Headers::new();
    h.insert("streamtype", "error");
    // Even ids belong to the server.
    let bad = Frame::SynStream {
        stream_id: 2,
        associated_id: 0,
        priority: 0,
        slot: 0,
        flags: 0,
        header_block: z.compress(&h),
    };
    let mut bytes = bad.to_bytes();
    Frame::Ping { id: 5 }.encode(&mut bytes);
    // An oversized control frame header: nothing that large is accepted.
    bytes.extend_from_slice(&[0x80, 3, 0, 8, 0, 0xff, 0xff, 0xff]);
    tcp.write_all(&bytes).await.unwrap();
    let frames = frames_until_close(&mut tcp).await;
    assert!(
        frames.iter().any(|f| matches!(
            f,
            Frame::RstStream {
                stream_id: 2,
                status: 1
            }
        )),
        "{frames:?}"
    );
    assert!(frames.contains(&Frame::Ping { id: 5 }), "{frames:?}");
}

#[tokio::test]
async fn stream_flood_is_refused_past_the_limit() {
    let (server, _) = start_default().await;
    let url = server
        .register_port_forward(crius_proto::PortForwardRequest {
            pod_sandbox_id: "p".into(),
            port: vec![],
        })
        .unwrap();
    let mut tcp = upgraded_with(&url, "portforward.k8s.io").await;
    let mut z = HeaderCompressor::new();
    let mut bytes = Vec::new();
    let limit = streaming::spdy::conn::MAX_STREAMS as u32;
    // Data streams whose error partner never comes stay open (until the
    // stream creation timeout), so they count against the limit.
    for i in 0..limit + 10 {
        let mut h = Headers::new();
        h.insert("streamtype", "data")
            .insert("port", "80")
            .insert("requestid", &i.to_string());
        Frame::SynStream {
            stream_id: 2 * i + 1,
            associated_id: 0,
            priority: 0,
            slot: 0,
            flags: 0,
            header_block: z.compress(&h),
        }
        .encode(&mut bytes);
    }
    tcp.write_all(&bytes).await.unwrap();
    let (mut replies, mut refused) = (0u32, Vec::new());
    let mut buf = Vec::new();
    while replies + (refused.len() as u32) < limit + 10 {
        let mut chunk = [0u8; 16 * 1024];
        let got = tokio::time::timeout(Duration::from_secs(10), tcp.read(&mut chunk))
            .await
            .expect("answers in time")
            .unwrap();
        assert!(got > 0, "closed after {replies} replies");
        buf.extend_from_slice(&chunk[..got]);
        while let Ok(Some((f, used))) = parse(&buf) {
            buf.drain(..used);
            match f {
                Frame::SynReply { .. } => replies += 1,
                Frame::RstStream { stream_id, status } => {
                    assert_eq!(status, 3, "REFUSED_STREAM");
                    refused.push(stream_id);
                }
                _ => {}
            }
        }
    }
    assert_eq!(replies, limit);
    let first_refused = 2 * limit + 1;
    assert_eq!(
        refused,
        (0..10).map(|i| first_refused + 2 * i).collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn one_huge_data_frame_is_accepted() {
    // Go's spdystream turns one Write into one DATA frame; a Go program
    // handing client-go a strings.Reader sends all of stdin in one frame.
    let (server, _) = start_default().await;
    let url = server
        .register_exec(exec_req(&["cat"], true, true, false, false))
        .unwrap();
    let mut tcp = upgraded(&url).await;
    let mut z = HeaderCompressor::new();
    let mut bytes = Vec::new();
    for (id, kind, flags) in [(1, "error", 1), (3, "stdin", 0), (5, "stdout", 1)] {
        let mut h = Headers::new();
        h.insert("streamtype", kind);
        Frame::SynStream {
            stream_id: id,
            associated_id: 0,
            priority: 0,
            slot: 0,
            flags,
            header_block: z.compress(&h),
        }
        .encode(&mut bytes);
    }
    let size = 3 << 20;
    Frame::Data {
        stream_id: 3,
        flags: 1,
        data: vec![7u8; size],
    }
    .encode(&mut bytes);
    let (mut r, mut w) = tcp.split();
    let write = async {
        w.write_all(&bytes).await.unwrap();
    };
    let read = async {
        let mut buf = Vec::new();
        let mut got = 0usize;
        let mut chunk = vec![0u8; 64 * 1024];
        loop {
            let n = r.read(&mut chunk).await.unwrap();
            assert!(n > 0, "closed after {got} bytes");
            buf.extend_from_slice(&chunk[..n]);
            while let Ok(Some((f, used))) = parse(&buf) {
                buf.drain(..used);
                if let Frame::Data {
                    stream_id: 5,
                    flags,
                    data,
                } = f
                {
                    assert!(data.iter().all(|b| *b == 7));
                    got += data.len();
                    if flags & 1 != 0 {
                        return got;
                    }
                }
            }
        }
    };
    let (_, got) =
        tokio::time::timeout(Duration::from_secs(20), async { tokio::join!(write, read) })
            .await
            .expect("echoed in time");
    assert_eq!(got, size);
}
