//! Container Device Interface (CDI): devices that GPU and device-plugin
//! vendors describe in spec files (JSON or YAML) under the node's CDI
//! directories, requested by fully qualified name (`vendor.com/class=name`)
//! in the CRI `cdi_devices` field or in `cdi.k8s.io/<key>` annotations of
//! the container or its pod.
//!
//! [`resolve`] reads the spec files and turns the requested devices into
//! concrete [`Edits`] before anything is created, so an unknown device or a
//! missing host node fails CreateContainer with nothing to undo; [`apply`]
//! then folds the edits into the OCI spec. Spec files are read at each
//! request (CDI specs are small and the vendor's tooling rewrites them
//! whenever devices change). A spec file that cannot be parsed is logged and
//! skipped: it must not take down the devices of other vendors.
//!
//! Implemented here rather than with the `container-device-interface`
//! crate: that crate pulls in a JSON-schema validator and a CLI
//! (jsonschema, clap, anyhow), reports errors as strings or boxed errors
//! that cannot be mapped to a gRPC code, and drops spec-file errors on the
//! floor; what crius needs (parse, qualified names, env/deviceNodes/mounts/
//! hooks edits) is small.

use std::collections::{BTreeMap, HashMap};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use oci_spec::runtime::{Hook, LinuxDevice, LinuxDeviceCgroup, LinuxDeviceType, Mount, Spec};
use serde::Deserialize;

use crate::error::{Error, Result};
use crate::hooks::Stage;

/// Annotation keys with this prefix request CDI devices; the value is a
/// comma-separated list of qualified device names.
pub const ANNOTATION_PREFIX: &str = "cdi.k8s.io/";

/// A CDI spec file (the parts crius uses; unknown fields are ignored for
/// forward compatibility, unsupported edits are refused when requested).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct SpecFile {
    cdi_version: String,
    kind: String,
    #[serde(default)]
    devices: Vec<DeviceFile>,
    #[serde(default)]
    container_edits: EditsFile,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct DeviceFile {
    name: String,
    #[serde(default)]
    container_edits: EditsFile,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
struct EditsFile {
    #[serde(default)]
    env: Vec<String>,
    #[serde(default)]
    device_nodes: Vec<DeviceNodeFile>,
    #[serde(default)]
    hooks: Vec<HookFile>,
    #[serde(default)]
    mounts: Vec<MountFile>,
    #[serde(default, alias = "additionalGIDs")]
    additional_gids: Vec<u32>,
    intel_rdt: Option<serde_yaml::Value>,
    net_devices: Option<serde_yaml::Value>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
struct DeviceNodeFile {
    path: String,
    host_path: Option<String>,
    #[serde(rename = "type")]
    typ: Option<String>,
    major: Option<i64>,
    minor: Option<i64>,
    file_mode: Option<u32>,
    permissions: Option<String>,
    uid: Option<u32>,
    gid: Option<u32>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
struct HookFile {
    hook_name: String,
    path: String,
    #[serde(default)]
    args: Vec<String>,
    #[serde(default)]
    env: Vec<String>,
    timeout: Option<i64>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
struct MountFile {
    host_path: String,
    container_path: String,
    #[serde(default)]
    options: Vec<String>,
    #[serde(rename = "type")]
    typ: Option<String>,
}

/// A qualified device name, `vendor/class=name`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QualifiedName {
    pub vendor: String,
    pub class: String,
    pub name: String,
}

fn valid_vendor(s: &str) -> bool {
    valid_ident(s, |c| {
        c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')
    })
}

fn valid_class(s: &str) -> bool {
    valid_ident(s, |c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_'))
}

/// Starts with a letter (vendor, class) and ends with a letter or digit.
fn valid_ident(s: &str, allowed: impl Fn(char) -> bool) -> bool {
    s.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
        && s.chars().last().is_some_and(|c| c.is_ascii_alphanumeric())
        && s.chars().all(allowed)
}

fn valid_device_name(s: &str) -> bool {
    s.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
        && s.chars().last().is_some_and(|c| c.is_ascii_alphanumeric())
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':'))
}

/// Splits a kind (`vendor/class`) into checked parts.
fn parse_kind(kind: &str) -> std::result::Result<(String, String), String> {
    let (vendor, class) = kind
        .split_once('/')
        .ok_or_else(|| format!("kind {kind:?} is not vendor/class"))?;
    if !valid_vendor(vendor) {
        return Err(format!("invalid vendor {vendor:?} in {kind:?}"));
    }
    if !valid_class(class) {
        return Err(format!("invalid class {class:?} in {kind:?}"));
    }
    Ok((vendor.into(), class.into()))
}

impl QualifiedName {
    pub fn parse(s: &str) -> std::result::Result<Self, String> {
        let (kind, name) = s
            .split_once('=')
            .ok_or_else(|| "not of the form vendor/class=name".to_string())?;
        let (vendor, class) = parse_kind(kind)?;
        if !valid_device_name(name) {
            return Err(format!("invalid device name {name:?}"));
        }
        Ok(QualifiedName {
            vendor,
            class,
            name: name.into(),
        })
    }
}

impl std::fmt::Display for QualifiedName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}={}", self.vendor, self.class, self.name)
    }
}

/// The CDI devices a container asks for: the CRI field first, then the
/// `cdi.k8s.io/` annotations of the container, then those of its pod;
/// each name once, in that order.
pub fn requested(
    config: &crius_proto::ContainerConfig,
    pod_annotations: &HashMap<String, String>,
) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut add = |name: &str| {
        let name = name.trim();
        if !name.is_empty() && !out.iter().any(|n| n == name) {
            out.push(name.to_string());
        }
    };
    for d in &config.cdi_devices {
        add(&d.name);
    }
    for annotations in [&config.annotations, pod_annotations] {
        // Sorted so the order (and thus the edits' order) is stable.
        let sorted: BTreeMap<_, _> = annotations
            .iter()
            .filter(|(k, _)| k.starts_with(ANNOTATION_PREFIX))
            .collect();
        for v in sorted.values() {
            v.split(',').for_each(&mut add);
        }
    }
    out
}

/// One parsed spec file.
struct LoadedSpec {
    path: PathBuf,
    edits: EditsFile,
    devices: HashMap<String, EditsFile>,
}

/// Every valid spec file in `dirs` and the index of qualified device names
/// to (spec, device). A device defined in a later directory replaces the
/// one of an earlier directory.
fn scan(dirs: &[PathBuf]) -> (Vec<LoadedSpec>, HashMap<String, usize>) {
    let mut specs = Vec::new();
    let mut index = HashMap::new();
    for dir in dirs {
        let mut paths: Vec<PathBuf> = match std::fs::read_dir(dir) {
            Ok(entries) => entries
                .flatten()
                .map(|e| e.path())
                .filter(|p| {
                    matches!(
                        p.extension().and_then(|e| e.to_str()),
                        Some("json" | "yaml" | "yml")
                    )
                })
                .collect(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => {
                tracing::warn!(?dir, %e, "cannot read cdi spec directory");
                continue;
            }
        };
        paths.sort();
        for path in paths {
            match load_spec(&path) {
                Ok((kind, spec)) => {
                    for name in spec.devices.keys() {
                        let qualified = format!("{kind}={name}");
                        if let Some(prev) = index.insert(qualified.clone(), specs.len()) {
                            let prev: &LoadedSpec = &specs[prev];
                            tracing::debug!(device = %qualified, overridden = ?prev.path, by = ?path, "cdi device redefined");
                        }
                    }
                    specs.push(spec);
                }
                Err(reason) => tracing::warn!(?path, %reason, "skipping invalid cdi spec file"),
            }
        }
    }
    (specs, index)
}

/// A spec file larger than this is refused unread.
const MAX_SPEC_FILE_BYTES: u64 = 4 << 20;

fn load_spec(path: &Path) -> std::result::Result<(String, LoadedSpec), String> {
    let data = crate::hooks::read_bounded(path, MAX_SPEC_FILE_BYTES)?;
    // YAML is a superset of JSON: one parser reads both.
    let file: SpecFile = serde_yaml::from_slice(&data).map_err(|e| e.to_string())?;
    if file.cdi_version.is_empty() {
        return Err("cdiVersion is missing".into());
    }
    parse_kind(&file.kind)?;
    let mut devices = HashMap::new();
    for d in file.devices {
        if !valid_device_name(&d.name) {
            return Err(format!("invalid device name {:?}", d.name));
        }
        if devices.insert(d.name.clone(), d.container_edits).is_some() {
            return Err(format!("device {:?} is defined twice", d.name));
        }
    }
    Ok((
        file.kind,
        LoadedSpec {
            path: path.to_path_buf(),
            edits: file.container_edits,
            devices,
        },
    ))
}

/// Concrete changes to a container's OCI spec, from resolved CDI devices.
#[derive(Debug, Default, Clone)]
pub struct Edits {
    /// `KEY=value`; replaces a variable of the same name.
    pub env: Vec<String>,
    pub devices: Vec<LinuxDevice>,
    /// Device cgroup rules allowing `devices` (block and char nodes).
    pub device_rules: Vec<LinuxDeviceCgroup>,
    pub mounts: Vec<Mount>,
    pub hooks: Vec<(Stage, Hook)>,
    pub additional_gids: Vec<u32>,
}

impl Edits {
    pub fn is_empty(&self) -> bool {
        self.env.is_empty()
            && self.devices.is_empty()
            && self.mounts.is_empty()
            && self.hooks.is_empty()
            && self.additional_gids.is_empty()
    }
}

/// Resolves `names` against the spec files in `dirs`. An invalid or unknown
/// name, or an edit that cannot be honoured (a missing host device node, an
/// unsupported edit), is InvalidArgument naming the device.
pub fn resolve(dirs: &[PathBuf], names: &[String]) -> Result<Edits> {
    let mut out = Edits::default();
    if names.is_empty() {
        return Ok(out);
    }
    for n in names {
        QualifiedName::parse(n).map_err(|why| {
            Error::InvalidArgument(format!("invalid CDI device name {n:?}: {why}"))
        })?;
    }
    let (specs, index) = scan(dirs);
    let unknown: Vec<&String> = names.iter().filter(|n| !index.contains_key(*n)).collect();
    if !unknown.is_empty() {
        return Err(Error::InvalidArgument(format!(
            "unresolvable CDI devices {unknown:?} (spec dirs {dirs:?})"
        )));
    }
    let mut spec_edits_done = Vec::new();
    for n in names {
        let si = index[n];
        let spec = &specs[si];
        let dev_name = n.split_once('=').map(|(_, d)| d).unwrap_or_default();
        // Spec-level edits apply once if any device of the spec is used.
        if !spec_edits_done.contains(&si) {
            spec_edits_done.push(si);
            add_edits(&mut out, &spec.edits, n, &spec.path)?;
        }
        add_edits(&mut out, &spec.devices[dev_name], n, &spec.path)?;
    }
    Ok(out)
}

fn add_edits(out: &mut Edits, e: &EditsFile, device: &str, path: &Path) -> Result<()> {
    let bad = |why: String| {
        Error::InvalidArgument(format!("CDI device {device:?} (spec {path:?}): {why}"))
    };
    if e.intel_rdt.is_some() {
        return Err(bad("intelRdt edits are not supported".into()));
    }
    if e.net_devices.is_some() {
        return Err(bad("netDevices edits are not supported".into()));
    }
    for v in &e.env {
        if v.split_once('=').is_none_or(|(k, _)| k.is_empty()) {
            return Err(bad(format!("invalid environment variable {v:?}")));
        }
        out.env.push(v.clone());
    }
    for d in &e.device_nodes {
        let (dev, rule) = device_node(d).map_err(bad)?;
        out.devices.push(dev);
        out.device_rules.extend(rule);
    }
    for m in &e.mounts {
        if !m.container_path.starts_with('/') || m.host_path.is_empty() {
            return Err(bad(format!(
                "invalid mount {:?} -> {:?}",
                m.host_path, m.container_path
            )));
        }
        let mut mount = Mount::default();
        mount
            .set_destination(PathBuf::from(&m.container_path))
            .set_source(Some(PathBuf::from(&m.host_path)))
            .set_typ(Some(m.typ.clone().unwrap_or_else(|| "bind".into())))
            .set_options(Some(m.options.clone()));
        out.mounts.push(mount);
    }
    for h in &e.hooks {
        let stage = crate::hooks::stage(&h.hook_name)
            .ok_or_else(|| bad(format!("unknown hook stage {:?}", h.hook_name)))?;
        if !h.path.starts_with('/') {
            return Err(bad(format!("hook path {:?} is not absolute", h.path)));
        }
        if h.timeout.is_some_and(|t| t <= 0) {
            return Err(bad(format!("hook {:?} has a non-positive timeout", h.path)));
        }
        let mut hook = Hook::default();
        hook.set_path(PathBuf::from(&h.path))
            .set_args((!h.args.is_empty()).then(|| h.args.clone()))
            .set_env((!h.env.is_empty()).then(|| h.env.clone()))
            .set_timeout(h.timeout);
        out.hooks.push((stage, hook));
    }
    for g in &e.additional_gids {
        if !out.additional_gids.contains(g) {
            out.additional_gids.push(*g);
        }
    }
    Ok(())
}

/// A device node edit made concrete: type, major and minor (and the mode)
/// come from the host node when the spec leaves them out.
fn device_node(
    d: &DeviceNodeFile,
) -> std::result::Result<(LinuxDevice, Option<LinuxDeviceCgroup>), String> {
    if !d.path.starts_with('/') || d.path.split('/').any(|c| c == "..") {
        return Err(format!("invalid device path {:?}", d.path));
    }
    let host = d.host_path.as_deref().unwrap_or(&d.path);
    let mut typ = match d.typ.as_deref() {
        None | Some("") => None,
        Some("c" | "u") => Some(LinuxDeviceType::C),
        Some("b") => Some(LinuxDeviceType::B),
        Some("p") => Some(LinuxDeviceType::P),
        Some(t) => return Err(format!("invalid device type {t:?} for {:?}", d.path)),
    };
    let (mut major, mut minor, mut mode) = (d.major, d.minor, d.file_mode);
    let needs_host = typ.is_none() || (typ != Some(LinuxDeviceType::P) && major.is_none());
    if needs_host {
        let md = std::fs::metadata(host).map_err(|e| format!("device node {host:?}: {e}"))?;
        let ft = md.file_type();
        let host_typ = if ft.is_char_device() {
            LinuxDeviceType::C
        } else if ft.is_block_device() {
            LinuxDeviceType::B
        } else if ft.is_fifo() {
            LinuxDeviceType::P
        } else {
            return Err(format!("{host:?} is not a device node"));
        };
        if typ.is_some_and(|t| t != host_typ) {
            return Err(format!(
                "device {:?} has type {:?} but host node {host:?} is {host_typ:?}",
                d.path, d.typ
            ));
        }
        typ = Some(host_typ);
        if host_typ != LinuxDeviceType::P {
            major = Some(nix::sys::stat::major(md.rdev()) as i64);
            minor = Some(nix::sys::stat::minor(md.rdev()) as i64);
        }
        mode = mode.or(Some(md.mode() & 0o777));
    }
    let typ = typ.unwrap_or(LinuxDeviceType::C);
    let mut dev = LinuxDevice::default();
    dev.set_path(PathBuf::from(&d.path))
        .set_typ(typ)
        .set_major(major.unwrap_or(0))
        .set_minor(minor.unwrap_or(0))
        .set_file_mode(mode)
        .set_uid(d.uid)
        .set_gid(d.gid);
    if typ == LinuxDeviceType::P {
        return Ok((dev, None));
    }
    let access = match d.permissions.as_deref() {
        None | Some("") => "rwm",
        Some(p) if p.chars().all(|c| matches!(c, 'r' | 'w' | 'm')) => p,
        Some(p) => return Err(format!("invalid permissions {p:?} for {:?}", d.path)),
    };
    let mut rule = LinuxDeviceCgroup::default();
    rule.set_allow(true)
        .set_typ(Some(typ))
        .set_major(major)
        .set_minor(minor)
        .set_access(Some(access.to_string()));
    Ok((dev, Some(rule)))
}

/// Folds resolved edits into the spec: env by name, device nodes by path
/// (with their cgroup rules), mounts by destination, hooks appended,
/// additional groups added to the process user. Device nodes without an
/// owner get the process user's, as CDI says.
pub fn apply(spec: &mut Spec, edits: &Edits) {
    if edits.is_empty() {
        return;
    }
    if let Some(process) = spec.process_mut() {
        let mut env = process.env().clone().unwrap_or_default();
        for v in &edits.env {
            let key = v.split_once('=').map(|(k, _)| k).unwrap_or(v);
            match env
                .iter_mut()
                .find(|e| e.split_once('=').map(|(k, _)| k) == Some(key))
            {
                Some(e) => *e = v.clone(),
                None => env.push(v.clone()),
            }
        }
        process.set_env(Some(env));
        if !edits.additional_gids.is_empty() {
            let user = process.user_mut();
            let mut gids = user.additional_gids().clone().unwrap_or_default();
            for g in &edits.additional_gids {
                if !gids.contains(g) {
                    gids.push(*g);
                }
            }
            user.set_additional_gids(Some(gids));
        }
    }
    let (uid, gid) = spec
        .process()
        .as_ref()
        .map(|p| (p.user().uid(), p.user().gid()))
        .unwrap_or_default();
    if let Some(linux) = spec.linux_mut() {
        let mut devices = linux.devices().clone().unwrap_or_default();
        for d in &edits.devices {
            let mut d = d.clone();
            if d.uid().is_none() && uid > 0 {
                d.set_uid(Some(uid));
            }
            if d.gid().is_none() && gid > 0 {
                d.set_gid(Some(gid));
            }
            devices.retain(|x| x.path() != d.path());
            devices.push(d);
        }
        linux.set_devices(Some(devices));
        if !edits.device_rules.is_empty() {
            let mut resources = linux.resources().clone().unwrap_or_default();
            let mut rules = resources.devices().clone().unwrap_or_default();
            rules.extend(edits.device_rules.iter().cloned());
            resources.set_devices(Some(rules));
            linux.set_resources(Some(resources));
        }
    }
    if !edits.mounts.is_empty() {
        let mut mounts = spec.mounts().clone().unwrap_or_default();
        for m in &edits.mounts {
            mounts.retain(|x| x.destination() != m.destination());
            mounts.push(m.clone());
        }
        spec.set_mounts(Some(mounts));
    }
    if !edits.hooks.is_empty() {
        let mut hooks = spec.hooks().clone().unwrap_or_default();
        for (stage, hook) in &edits.hooks {
            crate::hooks::push(&mut hooks, *stage, hook.clone());
        }
        spec.set_hooks(Some(hooks));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_spec::runtime::{LinuxBuilder, LinuxResourcesBuilder, ProcessBuilder, UserBuilder};

    #[test]
    fn qualified_names() {
        let q = QualifiedName::parse("example.com/device=fake0").unwrap();
        assert_eq!(
            (q.vendor.as_str(), q.class.as_str(), q.name.as_str()),
            ("example.com", "device", "fake0")
        );
        assert_eq!(q.to_string(), "example.com/device=fake0");
        assert!(QualifiedName::parse("nvidia.com/gpu=GPU-0:1_a.b").is_ok());
        for bad in [
            "fake0",
            "example.com=fake0",
            "example.com/device",
            "example.com/dev.ice=x",
            "1example.com/device=x",
            "example.com/device=-x",
            "example.com/device=x y",
            "/device=x",
            "example.com/=x",
        ] {
            assert!(QualifiedName::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn requested_merges_field_and_annotations_once() {
        let mut config = crius_proto::ContainerConfig::default();
        config.cdi_devices.push(crius_proto::CdiDevice {
            name: "a.com/x=1".into(),
        });
        config
            .annotations
            .insert("cdi.k8s.io/ctr".into(), "a.com/x=1, a.com/x=2".into());
        config
            .annotations
            .insert("other".into(), "a.com/x=9".into());
        let pod = HashMap::from([("cdi.k8s.io/pod".to_string(), "b.com/y=3,".to_string())]);
        assert_eq!(
            requested(&config, &pod),
            vec!["a.com/x=1", "a.com/x=2", "b.com/y=3"]
        );
    }

    const FAKE_JSON: &str = r#"{
        "cdiVersion": "0.6.0",
        "kind": "example.com/device",
        "containerEdits": {"env": ["VENDOR=example"]},
        "devices": [
            {"name": "fake0", "containerEdits": {
                "env": ["FAKE_DEVICE=1"],
                "deviceNodes": [{"path": "/dev/fake0", "hostPath": "/dev/null"}],
                "mounts": [{"hostPath": "/etc/hostname", "containerPath": "/etc/fake", "options": ["ro", "bind"]}],
                "hooks": [{"hookName": "createContainer", "path": "/bin/true", "args": ["true"]}]
            }},
            {"name": "fake1", "containerEdits": {"env": ["FAKE_DEVICE=2"]}}
        ]
    }"#;

    fn dirs_with(files: &[(&str, &str)]) -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        for (name, text) in files {
            std::fs::write(d.path().join(name), text).unwrap();
        }
        d
    }

    fn base_spec(uid: u32) -> Spec {
        let mut spec = Spec::default();
        spec.set_process(Some(
            ProcessBuilder::default()
                .env(vec!["PATH=/bin".to_string(), "FAKE_DEVICE=0".to_string()])
                .user(UserBuilder::default().uid(uid).gid(uid).build().unwrap())
                .build()
                .unwrap(),
        ));
        spec.set_linux(Some(
            LinuxBuilder::default()
                .resources(LinuxResourcesBuilder::default().build().unwrap())
                .build()
                .unwrap(),
        ));
        spec
    }

    #[test]
    fn resolves_and_applies_device_and_spec_edits() {
        let d = dirs_with(&[("fake.json", FAKE_JSON)]);
        let edits = resolve(&[d.path().into()], &["example.com/device=fake0".into()]).unwrap();
        let mut spec = base_spec(1000);
        apply(&mut spec, &edits);

        let env = spec.process().as_ref().unwrap().env().clone().unwrap();
        assert_eq!(env, vec!["PATH=/bin", "FAKE_DEVICE=1", "VENDOR=example"]);
        let linux = spec.linux().as_ref().unwrap();
        let devs = linux.devices().clone().unwrap();
        assert_eq!(devs.len(), 1);
        assert_eq!(devs[0].path(), Path::new("/dev/fake0"));
        assert_eq!(devs[0].typ(), LinuxDeviceType::C);
        assert_eq!((devs[0].major(), devs[0].minor()), (1, 3));
        assert_eq!(devs[0].uid(), Some(1000));
        let rules = linux
            .resources()
            .as_ref()
            .unwrap()
            .devices()
            .clone()
            .unwrap();
        assert!(rules.iter().any(|r| r.allow()
            && r.typ() == Some(LinuxDeviceType::C)
            && r.major() == Some(1)
            && r.minor() == Some(3)
            && r.access().as_deref() == Some("rwm")));
        let mounts = spec.mounts().clone().unwrap();
        assert!(
            mounts
                .iter()
                .any(|m| m.destination() == Path::new("/etc/fake"))
        );
        let hooks = spec.hooks().clone().unwrap();
        assert_eq!(hooks.create_container().as_ref().unwrap().len(), 1);
    }

    #[test]
    fn yaml_specs_and_later_dirs_override() {
        let yaml = "cdiVersion: 0.6.0\nkind: example.com/device\ndevices:\n- name: fake1\n  containerEdits:\n    env: [FROM_YAML=1]\n";
        let a = dirs_with(&[("fake.json", FAKE_JSON)]);
        let b = dirs_with(&[("override.yaml", yaml), ("broken.yaml", "kind: [")]);
        let edits = resolve(
            &[a.path().into(), b.path().into()],
            &["example.com/device=fake1".into()],
        )
        .unwrap();
        assert_eq!(edits.env, vec!["FROM_YAML=1"]);
        // The earlier dir's other devices stay visible.
        let edits = resolve(
            &[a.path().into(), b.path().into()],
            &["example.com/device=fake0".into()],
        )
        .unwrap();
        assert!(edits.env.contains(&"FAKE_DEVICE=1".to_string()));
    }

    #[test]
    fn unknown_invalid_and_unsatisfiable_devices_are_invalid_argument() {
        let missing_node = r#"{"cdiVersion":"0.6.0","kind":"example.com/device","devices":[
            {"name":"gone","containerEdits":{"deviceNodes":[{"path":"/dev/crius-no-such-node"}]}},
            {"name":"rdt","containerEdits":{"intelRdt":{"closID":"x"}}}]}"#;
        let d = dirs_with(&[("fake.json", FAKE_JSON), ("more.json", missing_node)]);
        for (name, needle) in [
            ("example.com/device=nope", "example.com/device=nope"),
            ("not-qualified", "not-qualified"),
            ("example.com/device=gone", "crius-no-such-node"),
            ("example.com/device=rdt", "intelRdt"),
        ] {
            let err = resolve(&[d.path().into()], &[name.into()]).unwrap_err();
            assert_eq!(err.kind(), crius_proto::ErrorKind::InvalidArgument, "{err}");
            assert!(err.to_string().contains(needle), "{err}");
        }
    }
}
