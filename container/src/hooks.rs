//! OCI hooks configured by the node (oci-hooks(5), the 1.0.0 schema that
//! CRI-O and Podman read): JSON files in hook directories, each naming a
//! hook, the conditions (`when`) under which a container gets it and the
//! runtime stages it runs at.
//!
//! The directories are read at every CreateContainer: a hook installed or
//! removed takes effect for the next container without a restart, and there
//! is no cache to go stale. A file that cannot be read or parsed is logged
//! and skipped; it never fails a container.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use oci_spec::runtime::{Hook, Hooks, Spec};
use regex::Regex;
use serde::Deserialize;

/// The runtime stages a hook may be injected at (runtime-spec 1.0.2+).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    Prestart,
    CreateRuntime,
    CreateContainer,
    StartContainer,
    Poststart,
    Poststop,
}

impl Stage {
    fn parse(s: &str) -> Option<Stage> {
        Some(match s {
            "prestart" => Stage::Prestart,
            "createRuntime" => Stage::CreateRuntime,
            "createContainer" => Stage::CreateContainer,
            "startContainer" => Stage::StartContainer,
            "poststart" => Stage::Poststart,
            "poststop" => Stage::Poststop,
            _ => return None,
        })
    }
}

/// One hook file as written on disk. Unknown fields are ignored, as Podman
/// and CRI-O do.
#[derive(Debug, Deserialize)]
struct HookFile {
    version: String,
    hook: Hook,
    when: WhenFile,
    stages: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct WhenFile {
    always: Option<bool>,
    #[serde(default)]
    annotations: BTreeMap<String, String>,
    #[serde(default)]
    commands: Vec<String>,
    has_bind_mounts: Option<bool>,
}

/// When a hook applies: every condition that is set must match.
#[derive(Debug)]
pub struct When {
    pub always: Option<bool>,
    /// (key pattern, value pattern): some annotation must match both.
    pub annotations: Vec<(Regex, Regex)>,
    /// `process.args[0]` must match one of these (if any is given).
    pub commands: Vec<Regex>,
    pub has_bind_mounts: Option<bool>,
}

/// A validated hook definition.
#[derive(Debug)]
pub struct HookDef {
    /// The file it came from (for logs).
    pub source: PathBuf,
    pub hook: Hook,
    pub when: When,
    pub stages: Vec<Stage>,
}

/// What a hook condition is matched against.
pub struct Target<'a> {
    pub annotations: &'a HashMap<String, String>,
    /// The container's `process.args` (only the first is used).
    pub args: &'a [String],
    /// The request asked for host-to-container bind mounts.
    pub has_bind_mounts: bool,
}

impl When {
    /// True if every condition that is set matches (oci-hooks(5)).
    pub fn matches(&self, target: &Target<'_>) -> bool {
        if self.always == Some(false) {
            return false;
        }
        if let Some(want) = self.has_bind_mounts
            && want
            && !target.has_bind_mounts
        {
            return false;
        }
        for (k, v) in &self.annotations {
            if !target
                .annotations
                .iter()
                .any(|(ak, av)| k.is_match(ak) && v.is_match(av))
            {
                return false;
            }
        }
        if !self.commands.is_empty() {
            let Some(cmd) = target.args.first() else {
                return false;
            };
            if !self.commands.iter().any(|re| re.is_match(cmd)) {
                return false;
            }
        }
        true
    }
}

/// Parses and validates one hook file.
pub fn parse(source: &Path, data: &[u8]) -> Result<HookDef, String> {
    let file: HookFile = serde_json::from_slice(data).map_err(|e| e.to_string())?;
    if file.version != "1.0.0" {
        return Err(format!("unsupported hook version {:?}", file.version));
    }
    if !file.hook.path().is_absolute() {
        return Err(format!("hook path {:?} is not absolute", file.hook.path()));
    }
    if file.hook.timeout().is_some_and(|t| t <= 0) {
        return Err("hook timeout must be positive".into());
    }
    let w = file.when;
    if w.always.is_none()
        && w.annotations.is_empty()
        && w.commands.is_empty()
        && w.has_bind_mounts.is_none()
    {
        return Err("\"when\" sets no condition".into());
    }
    let re = |p: &str| Regex::new(p).map_err(|e| format!("invalid pattern {p:?}: {e}"));
    let annotations = w
        .annotations
        .iter()
        .map(|(k, v)| Ok((re(k)?, re(v)?)))
        .collect::<Result<Vec<_>, String>>()?;
    let commands = w
        .commands
        .iter()
        .map(|c| re(c))
        .collect::<Result<Vec<_>, String>>()?;
    if file.stages.is_empty() {
        return Err("no stages".into());
    }
    let stages = file
        .stages
        .iter()
        .map(|s| Stage::parse(s).ok_or_else(|| format!("unknown stage {s:?}")))
        .collect::<Result<Vec<_>, String>>()?;
    Ok(HookDef {
        source: source.to_path_buf(),
        hook: file.hook,
        when: When {
            always: w.always,
            annotations,
            commands,
            has_bind_mounts: w.has_bind_mounts,
        },
        stages,
    })
}

/// A hook file larger than this is refused unread.
const MAX_HOOK_FILE_BYTES: u64 = 1 << 20;

/// The contents of `path` if it is a regular file of at most `max` bytes.
pub(crate) fn read_bounded(path: &Path, max: u64) -> Result<Vec<u8>, String> {
    use std::io::Read;
    // Checked before opening: opening a FIFO would block.
    let md = std::fs::metadata(path).map_err(|e| e.to_string())?;
    if !md.is_file() {
        return Err("not a regular file".into());
    }
    let file = std::fs::File::open(path).map_err(|e| e.to_string())?;
    let mut data = Vec::new();
    file.take(max + 1)
        .read_to_end(&mut data)
        .map_err(|e| e.to_string())?;
    if data.len() as u64 > max {
        return Err(format!("larger than {max} bytes"));
    }
    Ok(data)
}

/// Every valid hook in `dirs`. A file in a later directory replaces the
/// same-named file of an earlier one; hooks come out ordered by lower-cased
/// file name, as oci-hooks(5) says. Missing directories are fine.
pub fn load(dirs: &[PathBuf]) -> Vec<HookDef> {
    let mut files: BTreeMap<String, (String, PathBuf)> = BTreeMap::new();
    for dir in dirs {
        let entries = match std::fs::read_dir(dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => {
                tracing::warn!(?dir, %e, "cannot read hooks directory");
                continue;
            }
        };
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if !name.ends_with(".json") {
                continue;
            }
            // Sorted by lower-cased name, then by name so the order is total.
            files.insert(name.clone(), (name.to_lowercase(), e.path()));
        }
    }
    let mut ordered: Vec<(String, PathBuf)> = files.into_values().collect();
    ordered.sort();
    let mut out = Vec::new();
    for (_, path) in ordered {
        let parsed = read_bounded(&path, MAX_HOOK_FILE_BYTES).and_then(|data| parse(&path, &data));
        match parsed {
            Ok(def) => out.push(def),
            Err(reason) => tracing::warn!(?path, %reason, "skipping invalid hook file"),
        }
    }
    out
}

/// Adds the hooks whose conditions match the spec (its annotations and
/// `process.args`) to its hook lists, after any already there.
pub fn apply(spec: &mut Spec, defs: &[HookDef], has_bind_mounts: bool) {
    let annotations = spec.annotations().clone().unwrap_or_default();
    let args = spec
        .process()
        .as_ref()
        .and_then(|p| p.args().clone())
        .unwrap_or_default();
    let target = Target {
        annotations: &annotations,
        args: &args,
        has_bind_mounts,
    };
    let mut hooks = spec.hooks().clone().unwrap_or_default();
    let mut added = false;
    for def in defs.iter().filter(|d| d.when.matches(&target)) {
        tracing::debug!(source = ?def.source, "injecting oci hook");
        for stage in &def.stages {
            push(&mut hooks, *stage, def.hook.clone());
            added = true;
        }
    }
    if added {
        spec.set_hooks(Some(hooks));
    }
}

/// Appends one hook at `stage`.
pub fn push(hooks: &mut Hooks, stage: Stage, hook: Hook) {
    let list = match stage {
        Stage::Prestart => hooks.prestart_mut(),
        Stage::CreateRuntime => hooks.create_runtime_mut(),
        Stage::CreateContainer => hooks.create_container_mut(),
        Stage::StartContainer => hooks.start_container_mut(),
        Stage::Poststart => hooks.poststart_mut(),
        Stage::Poststop => hooks.poststop_mut(),
    };
    list.get_or_insert_with(Vec::new).push(hook);
}

/// Parses a stage name as the runtime spec spells it.
pub fn stage(name: &str) -> Option<Stage> {
    Stage::parse(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn def(json: &str) -> HookDef {
        parse(Path::new("t.json"), json.as_bytes()).unwrap()
    }

    fn target<'a>(ann: &'a HashMap<String, String>, args: &'a [String], bind: bool) -> Target<'a> {
        Target {
            annotations: ann,
            args,
            has_bind_mounts: bind,
        }
    }

    const HOOK: &str = r#""version":"1.0.0","hook":{"path":"/bin/true"},"stages":["prestart"]"#;

    #[test]
    fn always_matches_and_false_never_does() {
        let ann = HashMap::new();
        let args = vec!["sh".to_string()];
        let t = target(&ann, &args, false);
        assert!(
            def(&format!(r#"{{{HOOK},"when":{{"always":true}}}}"#))
                .when
                .matches(&t)
        );
        assert!(
            !def(&format!(r#"{{{HOOK},"when":{{"always":false}}}}"#))
                .when
                .matches(&t)
        );
    }

    #[test]
    fn annotations_need_a_pair_matching_key_and_value() {
        let d = def(&format!(
            r#"{{{HOOK},"when":{{"annotations":{{"^example\\.com/marker$":"^yes$"}}}}}}"#
        ));
        let args = vec![];
        let mut ann = HashMap::new();
        assert!(!d.when.matches(&target(&ann, &args, false)));
        ann.insert("example.com/marker".into(), "no".into());
        assert!(!d.when.matches(&target(&ann, &args, false)));
        ann.insert("other".into(), "yes".into());
        assert!(!d.when.matches(&target(&ann, &args, false)));
        ann.insert("example.com/marker".into(), "yes".into());
        assert!(d.when.matches(&target(&ann, &args, false)));
    }

    #[test]
    fn commands_match_args0_only() {
        let d = def(&format!(
            r#"{{{HOOK},"when":{{"commands":[".*/init$","^sleep$"]}}}}"#
        ));
        let ann = HashMap::new();
        let m = |args: &[&str]| {
            let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
            d.when.matches(&target(&ann, &args, false))
        };
        assert!(m(&["/sbin/init"]));
        assert!(m(&["sleep", "10"]));
        assert!(!m(&["sh", "/sbin/init"]));
        assert!(!m(&[]));
    }

    #[test]
    fn has_bind_mounts_and_conditions_are_anded() {
        let d = def(&format!(
            r#"{{{HOOK},"when":{{"hasBindMounts":true,"commands":["^sh$"]}}}}"#
        ));
        let ann = HashMap::new();
        let sh = vec!["sh".to_string()];
        let top = vec!["top".to_string()];
        assert!(d.when.matches(&target(&ann, &sh, true)));
        assert!(!d.when.matches(&target(&ann, &sh, false)));
        assert!(!d.when.matches(&target(&ann, &top, true)));
    }

    #[test]
    fn invalid_files_are_refused() {
        for bad in [
            "not json".to_string(),
            format!(r#"{{{HOOK},"when":{{}}}}"#),
            r#"{"version":"2.0.0","hook":{"path":"/bin/true"},"when":{"always":true},"stages":["prestart"]}"#.into(),
            r#"{"version":"1.0.0","hook":{"path":"true"},"when":{"always":true},"stages":["prestart"]}"#.into(),
            r#"{"version":"1.0.0","hook":{"path":"/bin/true"},"when":{"always":true},"stages":["later"]}"#.into(),
            r#"{"version":"1.0.0","hook":{"path":"/bin/true"},"when":{"always":true},"stages":[]}"#.into(),
            format!(r#"{{{HOOK},"when":{{"commands":["("]}}}}"#),
        ] {
            assert!(parse(Path::new("x.json"), bad.as_bytes()).is_err(), "{bad}");
        }
    }

    #[test]
    fn load_orders_by_name_later_dirs_override_and_skips_bad_files() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        let hook = |path: &str| {
            format!(
                r#"{{"version":"1.0.0","hook":{{"path":"{path}"}},"when":{{"always":true}},"stages":["prestart","poststop"]}}"#
            )
        };
        std::fs::write(a.path().join("10-x.json"), hook("/a/x")).unwrap();
        std::fs::write(a.path().join("20-y.json"), hook("/a/y")).unwrap();
        std::fs::write(b.path().join("10-x.json"), hook("/b/x")).unwrap();
        std::fs::write(b.path().join("05-bad.json"), "{").unwrap();
        std::fs::write(b.path().join("README"), "not a hook").unwrap();
        std::fs::create_dir(b.path().join("30-dir.json")).unwrap();
        std::fs::write(b.path().join("40-huge.json"), vec![b' '; 2 << 20]).unwrap();
        let defs = load(&[
            a.path().to_path_buf(),
            b.path().to_path_buf(),
            PathBuf::from("/nonexistent/crius/hooks.d"),
        ]);
        let paths: Vec<_> = defs.iter().map(|d| d.hook.path().clone()).collect();
        assert_eq!(paths, vec![PathBuf::from("/b/x"), PathBuf::from("/a/y")]);

        let mut spec = Spec::default();
        apply(&mut spec, &defs, false);
        let hooks = spec.hooks().clone().unwrap();
        assert_eq!(hooks.prestart().as_ref().unwrap().len(), 2);
        assert_eq!(hooks.poststop().as_ref().unwrap().len(), 2);
        assert!(hooks.poststart().is_none());
    }
}
