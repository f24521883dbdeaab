//! Exec, Attach and PortForward through the real daemon: the RPC returns a
//! URL on crius' streaming server, and a Rust client speaking SPDY/3.1 or
//! WebSocket (as kubectl and crictl do) follows it to a process run by
//! runc under conmon. Images come from the local test registry
//! (hack/test-registry.sh); pods use a loopback-only CNI network, so each
//! has a network namespace of its own.

use std::time::{Duration, Instant};

use crius_e2e::Daemon;
use crius_e2e::pods::*;
use crius_e2e::stream_client::*;
use crius_proto::runtime_service_client::RuntimeServiceClient;
use crius_proto::*;
use futures_util::SinkExt;
use streaming::ws::{CLOSE, ERROR, RESIZE, STDIN, STDOUT};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tonic::Code;
use tonic::transport::Channel;

const V4: &str = "v4.channel.k8s.io";
const V5: &str = "v5.channel.k8s.io";

/// A pod with one long-running busybox container.
async fn sleeper(daemon: &Daemon, name: &str) -> (Pod, String) {
    let pod = run_pod(daemon, name).await;
    let id = create_and_start(
        &mut daemon.runtime().await,
        &pod,
        container_config("main", "busybox", &["sleep", "1000"]),
    )
    .await;
    (pod, id)
}

fn exec_req(id: &str, cmd: &[&str], stdin: bool, stderr: bool, tty: bool) -> ExecRequest {
    ExecRequest {
        container_id: id.into(),
        cmd: cmd.iter().map(|s| s.to_string()).collect(),
        tty,
        stdin,
        stdout: true,
        stderr,
    }
}

async fn exec_url(client: &mut RuntimeServiceClient<Channel>, req: ExecRequest) -> String {
    client.exec(req).await.expect("Exec RPC").into_inner().url
}

/// An Attach of the container's main process, always with stdout.
fn attach_req(id: &str, stdin: bool, stderr: bool, tty: bool) -> AttachRequest {
    AttachRequest {
        container_id: id.into(),
        stdin,
        tty,
        stdout: true,
        stderr,
    }
}

async fn attach_url(client: &mut RuntimeServiceClient<Channel>, req: AttachRequest) -> String {
    client
        .attach(req)
        .await
        .expect("Attach RPC")
        .into_inner()
        .url
}

/// Over WebSocket v5: sends `data` as stdin, then CLOSE for stdin, and
/// returns what came back on each channel until the server closed.
async fn ws_stdin_then_close(url: &str, data: &[u8]) -> Vec<Vec<u8>> {
    let (mut ws, _) = ws_connect(url, &[V5]).await.unwrap();
    ws.send(streaming::ws::encode(false, STDIN, data))
        .await
        .unwrap();
    ws.send(streaming::ws::encode(false, CLOSE, &[STDIN]))
        .await
        .unwrap();
    ws_collect(&mut ws).await
}

/// Over WebSocket v5 to a tty: sets the terminal size, gives it time to
/// land, then types `script`; returns what came back on each channel until
/// the server closed.
async fn ws_tty_script(url: &str, width: u16, height: u16, script: &[u8]) -> Vec<Vec<u8>> {
    let (mut ws, _) = ws_connect(url, &[V5]).await.unwrap();
    let size = format!(r#"{{"Width":{width},"Height":{height}}}"#);
    ws.send(streaming::ws::encode(false, RESIZE, size.as_bytes()))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    ws.send(streaming::ws::encode(false, STDIN, script))
        .await
        .unwrap();
    ws_collect(&mut ws).await
}

fn json(b: &[u8]) -> serde_json::Value {
    serde_json::from_slice(b).unwrap_or_else(|e| panic!("{e}: {:?}", String::from_utf8_lossy(b)))
}

async fn exec_sync(client: &mut RuntimeServiceClient<Channel>, id: &str, cmd: &[&str]) -> String {
    let out = client
        .exec_sync(ExecSyncRequest {
            container_id: id.into(),
            cmd: cmd.iter().map(|s| s.to_string()).collect(),
            timeout: 10,
        })
        .await
        .expect("ExecSync")
        .into_inner();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test]
async fn exec_over_spdy_and_websocket() {
    crius_e2e::require_root();
    let daemon = daemon(&["busybox"]).await;
    let (pod, id) = sleeper(&daemon, "exec").await;
    let mut client = daemon.runtime().await;

    // echo over SPDY v4, reading stdout and the Success status.
    let url = exec_url(
        &mut client,
        exec_req(&id, &["echo", "hello", "world"], false, true, false),
    )
    .await;
    let c = spdy_connect(&url, &[V4]).await.unwrap();
    assert_eq!(c.protocol.as_deref(), Some(V4));
    let mut error = c.stream(&[("streamType", "error")], true).await;
    let mut stdout = c.stream(&[("streamType", "stdout")], true).await;
    let mut stderr = c.stream(&[("streamType", "stderr")], true).await;
    assert_eq!(read_all(&mut stdout).await, "hello world\n");
    assert_eq!(read_all(&mut stderr).await, "");
    assert_eq!(
        json(read_all(&mut error).await.as_bytes())["status"],
        "Success"
    );

    // The token was used: a second connection gets 404.
    let reused = spdy_connect(&url, &[V4])
        .await
        .err()
        .expect("reuse refused");
    assert_eq!(reused.0, 404, "{reused:?}");

    // echo over WebSocket v5.
    let url = exec_url(
        &mut client,
        exec_req(&id, &["echo", "over", "ws"], false, true, false),
    )
    .await;
    let (mut ws, proto) = ws_connect(&url, &[V5, V4]).await.unwrap();
    assert_eq!(proto.as_deref(), Some(V5));
    let chans = ws_collect(&mut ws).await;
    assert_eq!(chans[usize::from(STDOUT)], b"over ws\n");
    assert_eq!(json(&chans[usize::from(ERROR)])["status"], "Success");

    // stdin round trip through cat over SPDY, larger than one pipe buffer.
    let url = exec_url(&mut client, exec_req(&id, &["cat"], true, false, false)).await;
    let c = spdy_connect(&url, &[V4]).await.unwrap();
    let mut error = c.stream(&[("streamType", "error")], true).await;
    let mut stdin = c.stream(&[("streamType", "stdin")], false).await;
    let mut stdout = c.stream(&[("streamType", "stdout")], true).await;
    let payload: Vec<u8> = (0..300_000u32).map(|i| b'a' + (i % 26) as u8).collect();
    let expected = payload.clone();
    let writer = tokio::spawn(async move {
        stdin.write_all(&payload).await.unwrap();
        stdin.shutdown().await.unwrap();
        stdin
    });
    let got = read_all_within(&mut stdout, Duration::from_secs(30)).await;
    assert_eq!(got.len(), expected.len());
    assert!(got == expected, "cat returned different bytes");
    let _stdin = writer.await.unwrap();
    assert_eq!(
        json(read_all(&mut error).await.as_bytes())["status"],
        "Success"
    );

    // stdin round trip over WebSocket v5 with the CLOSE signal.
    let url = exec_url(&mut client, exec_req(&id, &["cat"], true, false, false)).await;
    let chans = ws_stdin_then_close(&url, b"ping over ws\n").await;
    assert_eq!(chans[usize::from(STDOUT)], b"ping over ws\n");

    // exit code 7 surfaces as 7 (NonZeroExitCode with the code in details).
    let url = exec_url(
        &mut client,
        exec_req(
            &id,
            &["sh", "-c", "echo oops >&2; exit 7"],
            false,
            true,
            false,
        ),
    )
    .await;
    let c = spdy_connect(&url, &[V4]).await.unwrap();
    let mut error = c.stream(&[("streamType", "error")], true).await;
    let _stdout = c.stream(&[("streamType", "stdout")], true).await;
    let mut stderr = c.stream(&[("streamType", "stderr")], true).await;
    assert_eq!(read_all(&mut stderr).await, "oops\n");
    let status = json(read_all(&mut error).await.as_bytes());
    assert_eq!(status["status"], "Failure", "{status}");
    assert_eq!(status["reason"], "NonZeroExitCode", "{status}");
    let causes = status["details"]["causes"].as_array().expect("causes");
    assert!(
        causes
            .iter()
            .any(|c| c["reason"] == "ExitCode" && c["message"] == "7"),
        "{status}"
    );

    // Exec on a missing container is NotFound at the RPC.
    let err = client
        .exec(exec_req("no-such-container", &["true"], false, true, false))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound, "{err}");
    teardown(&daemon, &pod).await;
}

#[tokio::test]
async fn exec_with_tty_applies_resize() {
    crius_e2e::require_root();
    let daemon = daemon(&["busybox"]).await;
    let (pod, id) = sleeper(&daemon, "tty").await;
    let mut client = daemon.runtime().await;

    // SPDY: the size is sent before the shell asks for it.
    let url = exec_url(
        &mut client,
        exec_req(&id, &["sh", "-c", "sleep 1; stty size"], true, false, true),
    )
    .await;
    let c = spdy_connect(&url, &[V4]).await.unwrap();
    let mut error = c.stream(&[("streamType", "error")], true).await;
    let _stdin = c.stream(&[("streamType", "stdin")], false).await;
    let mut stdout = c.stream(&[("streamType", "stdout")], true).await;
    let mut resize = c.stream(&[("streamType", "resize")], false).await;
    resize
        .write_all(br#"{"Width":100,"Height":40}"#)
        .await
        .unwrap();
    resize
        .write_all(br#"{"Width":123,"Height":45}"#)
        .await
        .unwrap();
    let out = read_all(&mut stdout).await;
    assert_eq!(out.trim(), "45 123", "{out:?}");
    assert_eq!(
        json(read_all(&mut error).await.as_bytes())["status"],
        "Success"
    );

    // WebSocket v5: an interactive shell on the tty.
    let url = exec_url(&mut client, exec_req(&id, &["sh"], true, false, true)).await;
    let chans = ws_tty_script(&url, 77, 21, b"stty size; exit 3\n").await;
    let out = String::from_utf8_lossy(&chans[usize::from(STDOUT)]).into_owned();
    assert!(out.contains("21 77"), "{out:?}");
    let status = json(&chans[usize::from(ERROR)]);
    assert_eq!(status["reason"], "NonZeroExitCode", "{status}");
    teardown(&daemon, &pod).await;
}

#[tokio::test]
async fn attach_to_printing_and_reading_containers() {
    crius_e2e::require_root();
    let daemon = daemon(&["busybox"]).await;
    let pod = run_pod(&daemon, "attach").await;
    let mut client = daemon.runtime().await;

    // A container printing on a loop: attached stdout sees new lines.
    let printer = create_and_start(
        &mut daemon.runtime().await,
        &pod,
        container_config(
            "printer",
            "busybox",
            &[
                "sh",
                "-c",
                "i=0; while true; do echo tick $i; i=$((i+1)); sleep 0.2; done",
            ],
        ),
    )
    .await;
    let url = attach_url(&mut client, attach_req(&printer, false, true, false)).await;
    let c = spdy_connect(&url, &[V4]).await.unwrap();
    let _error = c.stream(&[("streamType", "error")], true).await;
    let mut stdout = c.stream(&[("streamType", "stdout")], true).await;
    let _stderr = c.stream(&[("streamType", "stderr")], true).await;
    read_until(&mut stdout, Duration::from_secs(5), |seen| {
        String::from_utf8_lossy(seen).matches("tick").count() >= 3
    })
    .await;
    drop(c);

    // A container reading stdin (stdin_once): what we send comes back, and
    // closing our stdin ends it.
    let mut config = container_config("reader", "busybox", &["cat"]);
    config.stdin = true;
    config.stdin_once = true;
    let reader = create_and_start(&mut daemon.runtime().await, &pod, config).await;
    let url = attach_url(&mut client, attach_req(&reader, true, false, false)).await;
    let chans = ws_stdin_then_close(&url, b"hello attach\n").await;
    assert_eq!(chans[usize::from(STDOUT)], b"hello attach\n");
    // stdin_once: cat saw EOF and the container exited 0.
    let st = wait_state(
        &mut client,
        &reader,
        ContainerState::ContainerExited,
        Duration::from_secs(20),
    )
    .await;
    assert_eq!(st.exit_code, 0);
    // The output also went to the container log.
    let log =
        std::fs::read_to_string(daemon.dirs.base.path().join("pods/attach/reader.log")).unwrap();
    assert!(log.contains("stdout F hello attach"), "{log}");

    // Attach to an exited container is refused at the RPC.
    let err = client
        .attach(attach_req(&reader, false, false, false))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "{err}");
    teardown(&daemon, &pod).await;
}

/// A pod whose conflist does not chain the `loopback` plugin (bridge +
/// host-local + portmap, as Calico's, Flannel's and Cilium's conflists
/// have none either) has `lo` up in its network namespace, set by crius
/// before CNI ADD: a server on 127.0.0.1 answers another container of the
/// pod and port-forward (which connects to localhost in the pod). Bridge
/// `crius-crit61`, 10.88.61.0/24.
#[tokio::test]
async fn localhost_and_port_forward_without_the_loopback_plugin() {
    crius_e2e::require_root();
    let dirs = crius_e2e::Dirs::new();
    let net = BridgeNet::without_loopback(&dirs, 61);
    let mut daemon = daemon_in(dirs.clone(), &["busybox"], &[]).await;
    let pod = run_pod(&daemon, "no-lo-plugin").await;
    let mut client = daemon.runtime().await;

    // lo is UP in the pinned netns, as `ip` on the host sees it.
    let netns = dirs.runroot().join("ns/net").join(&pod.id);
    assert!(lo_is_up(&netns), "lo is down in {netns:?}");
    create_and_start(
        &mut client,
        &pod,
        container_config(
            "web",
            "busybox",
            &[
                "sh",
                "-c",
                "mkdir -p /www && echo hello over lo > /www/index.html && exec httpd -f -p 127.0.0.1:8080 -h /www",
            ],
        ),
    )
    .await;
    let other = create_and_start(
        &mut client,
        &pod,
        container_config("client", "busybox", &["sleep", "1000"]),
    )
    .await;
    // Another container of the pod reaches the server on localhost.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let get = ["wget", "-q", "-O", "-", "http://127.0.0.1:8080/index.html"];
        let out = exec(&mut client, &other, &get, 10)
            .await
            .expect("exec wget");
        if out.exit_code == 0 {
            assert_eq!(String::from_utf8_lossy(&out.stdout), "hello over lo\n");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "localhost:8080 unreachable in the pod: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Port-forward connects to localhost:8080 in the pod's namespace.
    let url = client
        .port_forward(PortForwardRequest {
            pod_sandbox_id: pod.id.clone(),
            port: vec![8080],
        })
        .await
        .expect("PortForward RPC")
        .into_inner()
        .url;
    let c = spdy_connect(&url, &["portforward.k8s.io"]).await.unwrap();
    let mut error = c
        .stream(
            &[
                ("streamType", "error"),
                ("port", "8080"),
                ("requestID", "0"),
            ],
            true,
        )
        .await;
    let mut data = c
        .stream(
            &[("streamType", "data"), ("port", "8080"), ("requestID", "0")],
            false,
        )
        .await;
    data.write_all(b"GET /index.html HTTP/1.0\r\n\r\n")
        .await
        .unwrap();
    let resp = read_all(&mut data).await;
    assert!(resp.ends_with("hello over lo\n"), "{resp}");
    assert_eq!(read_all(&mut error).await, "");
    drop(c);

    // A crius restarted under the pod brings lo back up (a pod made by an
    // older crius, or whose lo was set down since).
    nsenter_net(&netns, &["ip", "link", "set", "lo", "down"]);
    assert!(!lo_is_up(&netns));
    daemon.restart().await;
    assert!(lo_is_up(&netns), "lo still down after a restart");

    teardown(&daemon, &pod).await;
    drop(daemon);
    net.assert_clean();
}

/// Runs a host tool in the network namespace pinned at `netns`.
fn nsenter_net(netns: &std::path::Path, cmd: &[&str]) -> String {
    let out = std::process::Command::new("nsenter")
        .arg(format!("--net={}", netns.display()))
        .args(cmd)
        .output()
        .expect("nsenter and ip are required for this test");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{cmd:?}: {text} {out:?}");
    text
}

/// Whether `ip link` shows the UP flag on `lo` in `netns`.
fn lo_is_up(netns: &std::path::Path) -> bool {
    let link = nsenter_net(netns, &["ip", "-o", "link", "show", "lo"]);
    link.split_once('<')
        .and_then(|(_, rest)| rest.split_once('>'))
        .is_some_and(|(flags, _)| flags.split(',').any(|f| f == "UP"))
}

#[tokio::test]
async fn port_forward_into_the_pod_network_namespace() {
    crius_e2e::require_root();
    let daemon = daemon(&["busybox"]).await;
    let pod = run_pod(&daemon, "web").await;
    let web = create_and_start(&mut daemon.runtime().await, &pod,
        container_config("web", "busybox", &["sh", "-c", "mkdir -p /www && echo hello from the pod > /www/index.html && exec httpd -f -p 8080 -h /www"]),
    )
    .await;
    let mut client = daemon.runtime().await;
    // Wait for httpd to listen (inside the pod only: the host has no 8080).
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let out = exec_sync(
            &mut client,
            &web,
            &["cat", "/proc/net/tcp", "/proc/net/tcp6"],
        )
        .await;
        if out.contains(":1F90") {
            break;
        }
        assert!(Instant::now() < deadline, "httpd not listening: {out}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let url = client
        .port_forward(PortForwardRequest {
            pod_sandbox_id: pod.id.clone(),
            port: vec![8080],
        })
        .await
        .expect("PortForward RPC")
        .into_inner()
        .url;
    let c = spdy_connect(&url, &["portforward.k8s.io"]).await.unwrap();
    for rid in ["0", "1"] {
        let mut error = c
            .stream(
                &[
                    ("streamType", "error"),
                    ("port", "8080"),
                    ("requestID", rid),
                ],
                true,
            )
            .await;
        let mut data = c
            .stream(
                &[("streamType", "data"), ("port", "8080"), ("requestID", rid)],
                false,
            )
            .await;
        data.write_all(b"GET /index.html HTTP/1.0\r\n\r\n")
            .await
            .unwrap();
        let resp = read_all(&mut data).await;
        assert!(
            resp.starts_with("HTTP/1.") && resp.contains(" 200 "),
            "{resp}"
        );
        assert!(resp.ends_with("hello from the pod\n"), "{resp}");
        assert_eq!(read_all(&mut error).await, "");
    }
    // Nothing listens on 8081: an error on the error stream, not a hang.
    let mut error = c
        .stream(
            &[
                ("streamType", "error"),
                ("port", "8081"),
                ("requestID", "2"),
            ],
            true,
        )
        .await;
    let mut data = c
        .stream(
            &[("streamType", "data"), ("port", "8081"), ("requestID", "2")],
            false,
        )
        .await;
    let msg = read_all(&mut error).await;
    assert!(
        msg.contains("8081") && msg.to_lowercase().contains("refused"),
        "{msg}"
    );
    assert_eq!(read_all(&mut data).await, "");

    // A missing sandbox is NotFound.
    let err = client
        .port_forward(PortForwardRequest {
            pod_sandbox_id: "no-such-pod".into(),
            port: vec![80],
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound, "{err}");
    teardown(&daemon, &pod).await;
}

#[tokio::test]
async fn fifty_concurrent_exec_sessions() {
    crius_e2e::require_root();
    let daemon = daemon(&["busybox"]).await;
    let (pod, id) = sleeper(&daemon, "many").await;
    let mut client = daemon.runtime().await;
    let mut urls = Vec::new();
    for i in 0..50 {
        let word = format!("session-{i}");
        urls.push((
            word.clone(),
            exec_url(
                &mut client,
                exec_req(&id, &["echo", &word], false, false, false),
            )
            .await,
        ));
    }
    let mut tasks = tokio::task::JoinSet::new();
    for (i, (word, url)) in urls.into_iter().enumerate() {
        tasks.spawn(async move {
            if i % 2 == 0 {
                let c = spdy_connect(&url, &[V4]).await.unwrap();
                let mut error = c.stream(&[("streamType", "error")], true).await;
                let mut stdout = c.stream(&[("streamType", "stdout")], true).await;
                assert_eq!(read_all(&mut stdout).await, format!("{word}\n"));
                assert_eq!(
                    json(read_all(&mut error).await.as_bytes())["status"],
                    "Success"
                );
            } else {
                let (mut ws, _) = ws_connect(&url, &[V5]).await.unwrap();
                let chans = ws_collect(&mut ws).await;
                assert_eq!(chans[usize::from(STDOUT)], format!("{word}\n").into_bytes());
            }
        });
    }
    while let Some(r) = tasks.join_next().await {
        r.expect("session ok");
    }
    teardown(&daemon, &pod).await;
}

#[tokio::test]
async fn client_disconnect_leaves_no_process_behind() {
    crius_e2e::require_root();
    let daemon = daemon(&["busybox"]).await;
    let (pod, id) = sleeper(&daemon, "gone").await;
    let mut client = daemon.runtime().await;
    for tty in [false, true] {
        let marker = if tty { "4242" } else { "4141" };
        let url = exec_url(
            &mut client,
            exec_req(
                &id,
                &[
                    "sh",
                    "-c",
                    &format!("echo started; sleep {marker}; echo never"),
                ],
                false,
                false,
                tty,
            ),
        )
        .await;
        let c = spdy_connect(&url, &[V4]).await.unwrap();
        let error = c.stream(&[("streamType", "error")], true).await;
        let mut stdout = c.stream(&[("streamType", "stdout")], true).await;
        // kubectl always opens the resize stream with a tty.
        let resize = if tty {
            Some(c.stream(&[("streamType", "resize")], false).await)
        } else {
            None
        };
        let mut buf = [0u8; 64];
        let n = tokio::time::timeout(Duration::from_secs(10), stdout.read(&mut buf))
            .await
            .expect("started in time")
            .unwrap();
        assert!(String::from_utf8_lossy(&buf[..n]).contains("started"));
        assert!(
            exec_sync(&mut client, &id, &["ps"])
                .await
                .contains(&format!("sleep {marker}"))
        );
        // Hang up mid-stream, as a killed kubectl would.
        c.conn.abort();
        drop((stdout, error, resize, c));
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let ps = exec_sync(&mut client, &id, &["ps"]).await;
            if !ps.contains(marker) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "exec'd process still running (tty {tty}):\n{ps}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    // No exec or console-socket files are left in the runroot.
    let leftovers: Vec<_> = walk(&daemon.dirs.runroot())
        .into_iter()
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            name.starts_with("exec-")
        })
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    teardown(&daemon, &pod).await;
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                out.extend(walk(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}

#[tokio::test]
async fn attach_with_tty_resizes_through_conmon_and_urls_expire() {
    crius_e2e::require_root();
    let daemon = daemon_with(&["busybox"], &["--streaming-token-ttl-secs", "1"]).await;
    let pod = run_pod(&daemon, "ttyattach").await;
    let mut config = container_config("shell", "busybox", &["sh"]);
    config.tty = true;
    config.stdin = true;
    let id = create_and_start(&mut daemon.runtime().await, &pod, config).await;
    let mut client = daemon.runtime().await;

    // An unused URL expires after the configured TTL.
    let url = exec_url(&mut client, exec_req(&id, &["true"], false, true, false)).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let expired = spdy_connect(&url, &[V4])
        .await
        .err()
        .expect("expired URL refused");
    assert_eq!(expired.0, 404, "{expired:?}");

    // Attach to the tty: the resize goes to conmon's ctl fifo, and the
    // shell sees it.
    let url = attach_url(&mut client, attach_req(&id, true, false, true)).await;
    let chans = ws_tty_script(&url, 88, 22, b"stty size; exit 0\n").await;
    let out = String::from_utf8_lossy(&chans[usize::from(STDOUT)]).into_owned();
    assert!(out.contains("22 88"), "{out:?}");
    teardown(&daemon, &pod).await;
}
