//! Node integration through the whole daemon: CDI devices (as GPU and
//! device-plugin nodes use them) and OCI hooks from hooks.d files.
//!
//! Each daemon reads CDI specs and hooks only from its own temp dirs
//! (`Dirs::cdi_dir`, `Dirs::hooks_dir`), never from /etc. Pods use a
//! loopback-only CNI network; images come from the local registry
//! (hack/test-registry.sh).

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use crius_e2e::pods::*;
use crius_proto::runtime_service_client::RuntimeServiceClient;
use crius_proto::*;
use tonic::Code;
use tonic::transport::Channel;

/// A CDI vendor spec exposing the host's /dev/null as /dev/fake0 with an
/// environment variable.
const FAKE_CDI_SPEC: &str = r#"
cdiVersion: "0.6.0"
kind: example.com/device
devices:
  - name: fake0
    containerEdits:
      env:
        - FAKE_DEVICE=1
      deviceNodes:
        - path: /dev/fake0
          hostPath: /dev/null
"#;

/// What a container sees of /dev/fake0 and $FAKE_DEVICE: "<type> <env>",
/// after writing to the device.
async fn probe_fake_device(client: &mut RuntimeServiceClient<Channel>, id: &str) -> String {
    let out = exec(
        client,
        id,
        &[
            "sh",
            "-c",
            "if [ -c /dev/fake0 ]; then t=char; else t=missing; fi; \
             echo x > /dev/fake0 || t=unwritable; echo \"$t $FAKE_DEVICE\"",
        ],
        10,
    )
    .await
    .expect("exec in container");
    assert_eq!(
        out.exit_code,
        0,
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

async fn container_ids(client: &mut RuntimeServiceClient<Channel>) -> Vec<String> {
    client
        .list_containers(ListContainersRequest::default())
        .await
        .expect("list containers")
        .into_inner()
        .containers
        .into_iter()
        .map(|c| c.id)
        .collect()
}

fn dir_entries(dir: &Path) -> usize {
    std::fs::read_dir(dir).map(|d| d.count()).unwrap_or(0)
}

#[tokio::test]
async fn cdi_devices_from_the_cri_field_and_annotations_reach_the_container() {
    let daemon = daemon(&["busybox"]).await;
    std::fs::write(daemon.dirs.cdi_dir().join("example.yaml"), FAKE_CDI_SPEC).unwrap();
    let pod = run_pod(&daemon, "cdi").await;
    let mut client = daemon.runtime().await;

    let mut by_field = container_config("by-field", "busybox", &["sleep", "3600"]);
    by_field.cdi_devices.push(CdiDevice {
        name: "example.com/device=fake0".into(),
    });
    let by_field = create_and_start(&mut client, &pod, by_field).await;
    assert_eq!(probe_fake_device(&mut client, &by_field).await, "char 1");

    let mut by_annotation = container_config("by-annotation", "busybox", &["sleep", "3600"]);
    by_annotation
        .annotations
        .insert("cdi.k8s.io/fake".into(), "example.com/device=fake0".into());
    let by_annotation = create_and_start(&mut client, &pod, by_annotation).await;
    assert_eq!(
        probe_fake_device(&mut client, &by_annotation).await,
        "char 1"
    );

    // Without a request, no device and no variable.
    let plain = create_and_start(
        &mut client,
        &pod,
        container_config("plain", "busybox", &["sleep", "3600"]),
    )
    .await;
    let out = exec(
        &mut client,
        &plain,
        &[
            "sh",
            "-c",
            "test -e /dev/fake0 || echo \"absent$FAKE_DEVICE\"",
        ],
        10,
    )
    .await
    .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "absent");

    // An unknown device: InvalidArgument naming it, and nothing created.
    let before = container_ids(&mut client).await;
    let containers_dir = daemon.dirs.root().join("containers");
    let dirs_before = dir_entries(&containers_dir);
    let mut unknown = container_config("unknown", "busybox", &["sleep", "3600"]);
    unknown.cdi_devices.push(CdiDevice {
        name: "example.com/device=fake0".into(),
    });
    unknown
        .annotations
        .insert("cdi.k8s.io/gpu".into(), "example.com/device=nosuch7".into());
    let err = create(&mut client, &pod, unknown).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    assert!(
        err.message().contains("example.com/device=nosuch7"),
        "{err:?}"
    );
    assert_eq!(container_ids(&mut client).await, before);
    assert_eq!(dir_entries(&containers_dir), dirs_before);
    // The name is free: the same container without the bad device works.
    let mut fixed = container_config("unknown", "busybox", &["sleep", "3600"]);
    fixed.cdi_devices.push(CdiDevice {
        name: "example.com/device=fake0".into(),
    });
    create(&mut client, &pod, fixed)
        .await
        .expect("create after a refused create");

    teardown(&daemon, &pod).await;
}

#[tokio::test]
async fn cdi_devices_requested_by_pod_annotation() {
    let daemon = daemon(&["busybox"]).await;
    std::fs::write(daemon.dirs.cdi_dir().join("example.yaml"), FAKE_CDI_SPEC).unwrap();
    let mut config = PodSandboxConfig {
        metadata: Some(PodSandboxMetadata {
            name: "cdi-pod".into(),
            uid: "uid-cdi-pod".into(),
            namespace: "e2e".into(),
            attempt: 0,
        }),
        hostname: "cdi-pod".into(),
        ..Default::default()
    };
    config.annotations.insert(
        "cdi.k8s.io/pod-devices".into(),
        "example.com/device=fake0".into(),
    );
    let pod = run_pod_config(&daemon, config).await;
    let mut client = daemon.runtime().await;
    let id = create_and_start(
        &mut client,
        &pod,
        container_config("ctr", "busybox", &["sleep", "3600"]),
    )
    .await;
    assert_eq!(probe_fake_device(&mut client, &id).await, "char 1");
    teardown(&daemon, &pod).await;
}

/// A hook script recording "<stage> <container id> <status>" (id and
/// status from the state JSON runc passes on stdin) in
/// `<markers>/<stage>-<id>`.
fn write_marker_hook(hooks_dir: &Path, markers: &Path) -> std::path::PathBuf {
    let script = hooks_dir.parent().unwrap().join("marker-hook.sh");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\nstate=$(cat)\n\
             id=$(printf '%s' \"$state\" | sed -n 's/.*\"id\": *\"\\([^\"]*\\)\".*/\\1/p')\n\
             status=$(printf '%s' \"$state\" | sed -n 's/.*\"status\": *\"\\([^\"]*\\)\".*/\\1/p')\n\
             echo \"$1 $id $status\" > {markers}/\"$1-$id\"\n",
            markers = markers.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    for stage in ["prestart", "poststop"] {
        std::fs::write(
            hooks_dir.join(format!("50-marker-{stage}.json")),
            format!(
                r#"{{
  "version": "1.0.0",
  "hook": {{
    "path": "{script}",
    "args": ["marker-hook.sh", "{stage}"],
    "env": ["PATH=/usr/sbin:/usr/bin:/sbin:/bin"],
    "timeout": 10
  }},
  "when": {{"annotations": {{"^example\\.com/marker$": "^yes$"}}}},
  "stages": ["{stage}"]
}}"#,
                script = script.display()
            ),
        )
        .unwrap();
    }
    script
}

#[tokio::test]
async fn oci_hooks_run_for_matching_containers_only() {
    let daemon = daemon(&["busybox"]).await;
    let hooks_dir = daemon.dirs.hooks_dir();
    let markers = daemon.dirs.base.path().join("markers");
    std::fs::create_dir_all(&markers).unwrap();
    write_marker_hook(&hooks_dir, &markers);
    // Broken files in the same dir are skipped, not fatal.
    std::fs::write(hooks_dir.join("00-broken.json"), "{ not json").unwrap();
    std::fs::write(
        hooks_dir.join("10-bad-regex.json"),
        r#"{"version":"1.0.0","hook":{"path":"/bin/false"},"when":{"commands":["("]},"stages":["prestart"]}"#,
    )
    .unwrap();

    let pod = run_pod(&daemon, "hooks").await;
    let mut client = daemon.runtime().await;
    let mut marked = container_config("marked", "busybox", &["sleep", "3600"]);
    marked
        .annotations
        .insert("example.com/marker".into(), "yes".into());
    let marked = create_and_start(&mut client, &pod, marked).await;
    let mut other = container_config("other", "busybox", &["sleep", "3600"]);
    other
        .annotations
        .insert("example.com/marker".into(), "no".into());
    let other = create_and_start(&mut client, &pod, other).await;

    let prestart = markers.join(format!("prestart-{marked}"));
    let text = std::fs::read_to_string(&prestart)
        .unwrap_or_else(|e| panic!("prestart marker {prestart:?}: {e}\n{}", daemon.log()));
    assert!(text.starts_with(&format!("prestart {marked} ")), "{text}");
    let poststop = markers.join(format!("poststop-{marked}"));
    assert!(
        !poststop.exists(),
        "poststop ran before the container stopped"
    );

    for id in [&marked, &other] {
        client
            .stop_container(StopContainerRequest {
                container_id: id.to_string(),
                timeout: 5,
            })
            .await
            .expect("stop container");
        wait_state(
            &mut client,
            id,
            ContainerState::ContainerExited,
            Duration::from_secs(10),
        )
        .await;
        client
            .remove_container(RemoveContainerRequest {
                container_id: id.to_string(),
            })
            .await
            .expect("remove container");
    }
    let text = std::fs::read_to_string(&poststop)
        .unwrap_or_else(|e| panic!("poststop marker {poststop:?}: {e}\n{}", daemon.log()));
    assert_eq!(text.trim(), format!("poststop {marked} stopped"));

    let names: Vec<String> = std::fs::read_dir(&markers)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names.len(), 2, "{names:?}");
    assert!(!names.iter().any(|n| n.contains(&other)), "{names:?}");
    let log = daemon.log();
    assert!(log.contains("skipping invalid hook file"), "{log}");

    teardown(&daemon, &pod).await;
}
