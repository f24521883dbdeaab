//! The fake Kubernetes API server that kubectl tests share (in
//! streaming/tests and e2e/tests, the latter by `#[path]`): kubectl itself,
//! the discovery documents and pod it asks for, HTTP request parsing, and
//! the server that answers discovery and splices exec/attach/portforward
//! upgrades to the URL the runtime side hands out.
#![allow(dead_code)]

use std::future::Future;
use std::pin::Pin;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// kubectl from PATH; these tests fail, never skip, without it.
pub fn kubectl() -> std::path::PathBuf {
    std::env::var_os("PATH")
        .and_then(|p| {
            std::env::split_paths(&p)
                .map(|d| d.join("kubectl"))
                .find(|p| p.is_file())
        })
        .expect("kubectl is required on PATH for these tests")
}

pub const POD: &str = r#"{"apiVersion":"v1","kind":"Pod","metadata":{"name":"mypod","namespace":"default","uid":"u1"},"spec":{"containers":[{"name":"c","image":"busybox"}]},"status":{"phase":"Running","containerStatuses":[{"name":"c","ready":true,"restartCount":0,"image":"busybox","imageID":"","state":{"running":{}}}]}}"#;

pub const VERSION: &str =
    r#"{"major":"1","minor":"32","gitVersion":"v1.32.0","platform":"linux/amd64"}"#;
pub const API: &str = r#"{"kind":"APIVersions","versions":["v1"],"serverAddressByClientCIDRs":[{"clientCIDR":"0.0.0.0/0","serverAddress":"127.0.0.1"}]}"#;
pub const APIS: &str = r#"{"kind":"APIGroupList","apiVersion":"v1","groups":[]}"#;
pub const API_V1: &str = r#"{"kind":"APIResourceList","groupVersion":"v1","resources":[{"name":"pods/attach","singularName":"","namespaced":true,"kind":"PodAttachOptions","verbs":["create","get"]},{"name":"pods","singularName":"pod","namespaced":true,"kind":"Pod","verbs":["get","list"],"shortNames":["po"]},{"name":"pods/exec","singularName":"","namespaced":true,"kind":"PodExecOptions","verbs":["create","get"]},{"name":"pods/portforward","singularName":"","namespaced":true,"kind":"PodPortForwardOptions","verbs":["create","get"]}]}"#;

pub async fn read_head(tcp: &mut TcpStream) -> Option<String> {
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut b = [0u8; 1];
        if tcp.read(&mut b).await.ok()? == 0 {
            return None;
        }
        head.push(b[0]);
    }
    Some(String::from_utf8_lossy(&head).into_owned())
}

pub fn query_values(query: &str, key: &str) -> Vec<String> {
    query
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .filter(|(k, _)| *k == key)
        .map(|(_, v)| {
            let v = v.replace('+', " ");
            let mut out = Vec::new();
            let b = v.as_bytes();
            let mut i = 0;
            while i < b.len() {
                if b[i] == b'%'
                    && i + 2 < b.len()
                    && let Ok(x) = u8::from_str_radix(&v[i + 1..i + 3], 16)
                {
                    out.push(x);
                    i += 3;
                    continue;
                }
                out.push(b[i]);
                i += 1;
            }
            String::from_utf8(out).unwrap()
        })
        .collect()
}

pub fn flag(query: &str, key: &str) -> bool {
    query_values(query, key)
        .first()
        .is_some_and(|v| v == "true" || v == "1")
}

/// The Upgrade header of every request proxied to the streaming server.
pub type Upgrades = Arc<Mutex<Vec<String>>>;

/// The streaming URL for a request `(path, query)` to a pod subresource
/// (exec, attach, portforward), or `None` for anything else.
pub type Resolve = Arc<
    dyn Fn(String, String) -> Pin<Box<dyn Future<Output = Option<String>> + Send>> + Send + Sync,
>;

/// Answers kubectl's discovery and pod GETs; for a request `resolve` gives
/// a URL, splices the connection to it like the kubelet's upgrade-aware
/// proxy (the same request, pointed at the token URL) and records the
/// Upgrade header. Returns the port it listens on.
pub async fn fake_apiserver(resolve: Resolve, upgrades: Upgrades) -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let Ok((mut tcp, _)) = l.accept().await else {
                return;
            };
            let resolve = resolve.clone();
            let upgrades = upgrades.clone();
            tokio::spawn(async move {
                while let Some(head) = read_head(&mut tcp).await {
                    let target = head.split_whitespace().nth(1).unwrap_or("").to_owned();
                    let (path, query) = target.split_once('?').unwrap_or((&target, ""));
                    if let Some(url) = resolve(path.to_owned(), query.to_owned()).await {
                        let new_target = url.trim_start_matches("http://");
                        let (host, new_path) = new_target.split_at(new_target.find('/').unwrap());
                        let new_target = if query.is_empty() {
                            new_path.to_owned()
                        } else {
                            format!("{new_path}?{query}")
                        };
                        let head = head.replacen(&target, &new_target, 1);
                        let upgrade = head
                            .lines()
                            .find_map(|l| {
                                let (k, v) = l.split_once(':')?;
                                k.eq_ignore_ascii_case("upgrade")
                                    .then(|| v.trim().to_ascii_lowercase())
                            })
                            .unwrap_or_default();
                        upgrades.lock().unwrap().push(upgrade);
                        let mut up = TcpStream::connect(host).await.unwrap();
                        up.write_all(head.as_bytes()).await.unwrap();
                        let _ = tokio::io::copy_bidirectional(&mut tcp, &mut up).await;
                        return;
                    }
                    let found = match path {
                        "/api/v1/namespaces/default/pods/mypod" => Some(POD),
                        "/version" => Some(VERSION),
                        "/api" => Some(API),
                        "/apis" => Some(APIS),
                        "/api/v1" => Some(API_V1),
                        _ => None,
                    };
                    let (status, body) = if let Some(body) = found {
                        ("200 OK", body.to_owned())
                    } else {
                        eprintln!("fake apiserver: 404 for {target}");
                        ("404 Not Found", r#"{"kind":"Status","apiVersion":"v1","status":"Failure","reason":"NotFound","code":404}"#.to_owned())
                    };
                    let resp = format!(
                        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                        body.len()
                    );
                    if tcp.write_all(resp.as_bytes()).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    port
}

/// `kubectl exec` against the fake API server on `api`, over WebSocket or
/// SPDY, with `stdin` piped in when given: (exit code, stdout, stderr).
pub async fn kubectl_exec(
    api: u16,
    websockets: bool,
    args: &[&str],
    stdin: Option<&[u8]>,
) -> (i32, String, String) {
    let mut cmd = tokio::process::Command::new(kubectl());
    cmd.args(["--server", &format!("http://127.0.0.1:{api}"), "exec"])
        .args(args)
        .env(
            "KUBECTL_REMOTE_COMMAND_WEBSOCKETS",
            if websockets { "true" } else { "false" },
        )
        .env("KUBECONFIG", "/dev/null")
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = cmd.spawn().expect("kubectl runs");
    if let Some(input) = stdin {
        let mut si = child.stdin.take().unwrap();
        si.write_all(input).await.unwrap();
        drop(si);
    }
    let out = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
        .await
        .expect("kubectl finishes")
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `kubectl port-forward pod/mypod local:remote` against the fake API
/// server on `api`, over the WebSocket tunnel or SPDY; killed on drop.
pub fn kubectl_port_forward(
    api: u16,
    websockets: bool,
    local: u16,
    remote: u16,
) -> tokio::process::Child {
    tokio::process::Command::new(kubectl())
        .args([
            "--server",
            &format!("http://127.0.0.1:{api}"),
            "port-forward",
            "pod/mypod",
            &format!("{local}:{remote}"),
        ])
        .env(
            "KUBECTL_PORT_FORWARD_WEBSOCKETS",
            if websockets { "true" } else { "false" },
        )
        .env("KUBECONFIG", "/dev/null")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("kubectl runs")
}
