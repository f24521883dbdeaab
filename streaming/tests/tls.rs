//! The streaming server over TLS, with a certificate made by `openssl`
//! (skipped when the binary is missing): SPDY exec and WebSocket exec on
//! `https://` URLs, and a start-up error for a missing key.

mod common;

use std::path::Path;
use std::sync::Arc;

use common::*;
use futures_util::StreamExt;
use streaming::spdy::{self, Connection, Role};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};

/// A self-signed certificate for 127.0.0.1, made by openssl (installed by
/// hack/install-deps.sh); the test fails, never skips, without it.
fn make_cert(dir: &Path) -> streaming::TlsFiles {
    let files = streaming::TlsFiles {
        cert: dir.join("cert.pem"),
        key: dir.join("key.pem"),
    };
    let out = std::process::Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
        ])
        .args(["-nodes", "-days", "1", "-subj", "/CN=crius-test"])
        .args(["-addext", "subjectAltName=IP:127.0.0.1"])
        // webpki refuses a CA certificate as the server's own.
        .args(["-addext", "basicConstraints=critical,CA:FALSE"])
        .args(["-addext", "extendedKeyUsage=serverAuth"])
        .arg("-keyout")
        .arg(&files.key)
        .arg("-out")
        .arg(&files.cert)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .output()
        .expect("openssl is required for the TLS test");
    assert!(
        out.status.success(),
        "openssl req failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    files
}

async fn tls_connect(url: &str, cert: &Path) -> (TlsStream<TcpStream>, String, String) {
    let rest = url.strip_prefix("https://").expect("https url");
    let (host, path) = rest.split_at(rest.find('/').unwrap());
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(cert).unwrap() {
        roots.add(c.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let tcp = TcpStream::connect(host).await.unwrap();
    let name = ServerName::IpAddress(std::net::Ipv4Addr::LOCALHOST.into());
    let tls = TlsConnector::from(Arc::new(cfg))
        .connect(name, tcp)
        .await
        .expect("tls handshake with the served certificate");
    (tls, host.to_owned(), path.to_owned())
}

#[tokio::test]
async fn spdy_and_websocket_exec_over_tls() {
    let dir = tempfile::tempdir().unwrap();
    let files = make_cert(dir.path());
    let cfg = streaming::Config {
        tls: Some(files.clone()),
        ..Default::default()
    };
    let (server, _) = start(cfg).await;

    // SPDY.
    let url = server
        .register_exec(exec_req(&["echo", "secure"], false, true, false, false))
        .unwrap();
    assert!(url.starts_with("https://"), "{url}");
    let (mut tls, host, path) = tls_connect(&url, &files.cert).await;
    let req = format!(
        "POST {path} HTTP/1.1\r\nHost: {host}\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\nX-Stream-Protocol-Version: v4.channel.k8s.io\r\n\r\n"
    );
    tls.write_all(req.as_bytes()).await.unwrap();
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        head.push(tls.read_u8().await.unwrap());
    }
    assert!(head.starts_with(b"HTTP/1.1 101"));
    let (conn, incoming) = Connection::new(tls, Role::Client, spdy::Options::default());
    let c = SpdyClient {
        conn,
        incoming,
        protocol: None,
    };
    let mut error = c.stream(&[("streamType", "error")], true).await;
    let mut out = c.stream(&[("streamType", "stdout")], true).await;
    assert_eq!(read_all(&mut out).await, "secure\n");
    assert!(read_all(&mut error).await.contains("Success"));

    // WebSocket.
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let url = server
        .register_exec(exec_req(&["echo", "wss"], false, true, false, false))
        .unwrap();
    let (tls, _, _) = tls_connect(&url, &files.cert).await;
    let mut req = url
        .replacen("https://", "wss://", 1)
        .into_client_request()
        .unwrap();
    req.headers_mut().insert(
        "sec-websocket-protocol",
        "v5.channel.k8s.io".parse().unwrap(),
    );
    let (mut ws, _) = tokio_tungstenite::client_async(req, tls).await.unwrap();
    let mut stdout = Vec::new();
    while let Some(Ok(m)) = ws.next().await {
        if let Some((1, data)) = streaming::ws::decode(false, &m) {
            stdout.extend(data);
        }
    }
    assert_eq!(stdout, b"wss\n");
}

#[tokio::test]
async fn missing_key_fails_start() {
    let dir = tempfile::tempdir().unwrap();
    let mut files = make_cert(dir.path());
    files.key = dir.path().join("nope.pem");
    let cfg = streaming::Config {
        tls: Some(files),
        ..Default::default()
    };
    let err = streaming::StreamingServer::start(cfg, Arc::new(FakeBackend::default()))
        .await
        .unwrap_err();
    assert!(
        matches!(err, streaming::Error::TlsFile { what: "key", .. }),
        "{err}"
    );
    assert_eq!(err.kind(), crius_proto::ErrorKind::InvalidArgument);
}
