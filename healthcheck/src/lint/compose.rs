//! Loading Compose files the way Compose does before the rules see them: discovery of the
//! default files and their override, `.env` and interpolation, `extends` (same file and other
//! files), several files merged in `-f` order, profiles; then one [`Unit`] per service.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::dockerfile;
use super::error::LintError;
use super::interpolate::{Env, interpolate, parse_dotenv};
use super::model::{
    Check, Dependency, EnvVar, Label, Location, Platform, Role, Test, Unit, go_duration,
    shell_words,
};
use super::silence;
use super::yaml::{Key, Node, Value, parse_documents};

/// The files Compose looks for, in its order, and their overrides.
pub const DEFAULT_FILES: [&str; 4] = [
    "compose.yaml",
    "compose.yml",
    "docker-compose.yaml",
    "docker-compose.yml",
];
/// The override file Compose merges over the default one when it exists.
pub const OVERRIDE_FILES: [&str; 4] = [
    "compose.override.yaml",
    "compose.override.yml",
    "docker-compose.override.yaml",
    "docker-compose.override.yml",
];

/// Finds the Compose files as `docker compose` does with no `-f`: `COMPOSE_FILE` if set, else
/// the first default file in `dir` or its parents, plus the override beside it.
pub fn discover(dir: &Path, env: &BTreeMap<String, String>) -> Result<Vec<PathBuf>, LintError> {
    // Paths are shown as the user would type them: `compose.yaml`, `../compose.yaml`.
    let under = |d: &Path, f: &str| {
        if d == Path::new(".") {
            PathBuf::from(f)
        } else {
            d.join(f)
        }
    };
    if let Some(list) = env.get("COMPOSE_FILE").filter(|v| !v.is_empty()) {
        let sep = env
            .get("COMPOSE_PATH_SEPARATOR")
            .and_then(|s| s.chars().next())
            .unwrap_or(':');
        return Ok(list.split(sep).map(|p| under(dir, p)).collect());
    }
    let depth = dir
        .canonicalize()
        .map(|p| p.components().count())
        .unwrap_or(1);
    for up in 0..depth {
        let mut d = dir.to_path_buf();
        for _ in 0..up {
            d.push("..");
        }
        if let Some(base) = DEFAULT_FILES.iter().find(|f| d.join(f).is_file()) {
            let mut files = vec![under(&d, base)];
            files.extend(
                OVERRIDE_FILES
                    .iter()
                    .find(|f| d.join(f).is_file())
                    .map(|f| under(&d, f)),
            );
            return Ok(files);
        }
    }
    Err(LintError::NothingFound(format!(
        "no {} in {} or its parents (name files to lint, or set COMPOSE_FILE)",
        DEFAULT_FILES.join(", "),
        dir.display()
    )))
}

/// One Compose file, read and interpolated.
#[derive(Debug)]
struct File {
    path: PathBuf,
    text: String,
    doc: Node,
}

/// The files read so far (inputs and `extends` targets), indexed as the nodes' `file`.
#[derive(Debug, Default)]
pub(crate) struct Files {
    files: Vec<File>,
}

impl Files {
    /// The path of file `idx`.
    pub(crate) fn path(&self, idx: u16) -> PathBuf {
        self.files
            .get(usize::from(idx))
            .map(|f| f.path.clone())
            .unwrap_or_default()
    }

    fn load(&mut self, path: &Path, env: &Env) -> Result<u16, LintError> {
        if let Some(i) = self.files.iter().position(|f| f.path == path) {
            return Ok(u16::try_from(i).unwrap_or(u16::MAX));
        }
        let idx = u16::try_from(self.files.len())
            .map_err(|_| LintError::Input(path.display().to_string(), "too many files".into()))?;
        let text = super::error::read(path)?;
        let mut docs = parse_documents(&text).map_err(|e| super::error::yaml_error(path, &e))?;
        let mut doc = if docs.is_empty() {
            Node::map(Vec::new(), 1, idx)
        } else {
            docs.swap_remove(0)
        };
        if !doc.is_map() {
            return Err(LintError::Input(
                super::yaml::place(path, u64::from(doc.line)),
                "a Compose file must be a mapping (services: ...)".into(),
            ));
        }
        doc.set_file(idx);
        interpolate_node(&mut doc, env)
            .map_err(|(line, e)| LintError::Input(super::yaml::place(path, u64::from(line)), e))?;
        self.files.push(File {
            path: path.to_path_buf(),
            text,
            doc,
        });
        Ok(idx)
    }

    fn doc(&self, idx: u16) -> &Node {
        &self.files[usize::from(idx)].doc
    }
}

/// Interpolates every string value (keys are left alone, as Compose does).
fn interpolate_node(node: &mut Node, env: &Env) -> Result<(), (u32, String)> {
    match &mut node.value {
        Value::Str(s) => {
            *s = interpolate(s, env).map_err(|e| (node.line, e.0))?;
        }
        Value::Seq(items) => {
            for item in items {
                interpolate_node(item, env)?;
            }
        }
        Value::Map(entries) => {
            for (k, v) in entries {
                // Environment values stay as written until a unit is built, which keeps both
                // the text (`${DB_PASSWORD}` or a literal) and its value.
                if k.name != "environment" {
                    interpolate_node(v, env)?;
                }
            }
        }
        _ => {}
    }
    Ok(())
}

/// What the Compose side of a lint run needs besides the files.
#[derive(Debug, Clone, Default)]
pub struct ComposeOptions {
    /// The process environment (interpolation; `COMPOSE_PROFILES`).
    pub env: BTreeMap<String, String>,
    /// `--profile` values.
    pub profiles: Vec<String>,
}

/// Loads, extends and merges the files (in `-f` order) into one unit per service.
pub(crate) fn load(
    paths: &[PathBuf],
    options: &ComposeOptions,
) -> Result<(Vec<Unit>, BTreeSet<String>), LintError> {
    let Some(first) = paths.first() else {
        return Ok((Vec::new(), BTreeSet::new()));
    };
    let project_dir = first
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."));
    // `.env` beside the first file; the process environment wins over it.
    let mut env = match std::fs::read_to_string(project_dir.join(".env")) {
        Ok(text) => parse_dotenv(&text),
        Err(_) => Env::new(),
    };
    env.extend(options.env.clone());
    let mut profiles: BTreeSet<String> = options.profiles.iter().cloned().collect();
    if let Some(p) = env.get("COMPOSE_PROFILES") {
        profiles.extend(
            p.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(String::from),
        );
    }

    let mut files = Files::default();
    let mut merged: Vec<(String, Node)> = Vec::new();
    let mut key_lines: BTreeMap<String, Vec<(u16, u32)>> = BTreeMap::new();
    let mut file_ignores: BTreeSet<String> = BTreeSet::new();
    let mut inputs = Vec::new();
    for path in paths {
        let idx = files.load(path, &env)?;
        inputs.push(idx);
        let doc = files.doc(idx).clone();
        file_ignores.extend(ignore_list(doc.get("x-healthcheck-lint")));
        let Some(services) = doc.get("services") else {
            continue;
        };
        if !services.is_map() && services.value != Value::Null {
            return Err(LintError::Input(
                super::yaml::place(path, u64::from(services.line)),
                "services: must be a mapping of service names".into(),
            ));
        }
        for (key, _) in services.entries() {
            let mut seen = Vec::new();
            let service = resolve(&mut files, idx, &key.name, &env, &mut seen)?;
            key_lines
                .entry(key.name.clone())
                .or_default()
                .push((idx, key.line));
            match merged.iter_mut().find(|(n, _)| *n == key.name) {
                Some((_, base)) => merge(base, service, ""),
                None => merged.push((key.name.clone(), service)),
            }
        }
    }

    // Comments that silence rules, per file, attributed to the service they sit in or above.
    let mut comment_ignores: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for &idx in &inputs {
        let file = &files.files[usize::from(idx)];
        let mut starts: Vec<(u32, String)> = key_lines
            .iter()
            .flat_map(|(name, at)| {
                at.iter()
                    .filter(|(f, _)| *f == idx)
                    .map(move |(_, line)| (*line, name.clone()))
            })
            .collect();
        starts.sort();
        let ends = top_level_lines(&file.doc);
        for (name, ids) in silence::attribute(&file.text, &starts, &ends) {
            comment_ignores.entry(name).or_default().extend(ids);
        }
    }

    let mut units = Vec::new();
    for (name, node) in merged {
        let mut unit = unit(&name, &node, &files, &project_dir, &profiles, &env);
        unit.ignored.extend(file_ignores.iter().cloned());
        if let Some(ids) = comment_ignores.get(&name) {
            unit.ignored.extend(ids.iter().cloned());
        }
        if let Some((f, line)) = key_lines.get(&name).and_then(|v| v.first()) {
            unit.at = Location {
                file: files.path(*f),
                line: *line,
            };
        }
        units.push(unit);
    }
    Ok((units, profiles))
}

/// Lines of the top-level keys after `services:` (a comment block's service ends there).
fn top_level_lines(doc: &Node) -> Vec<u32> {
    doc.entries().iter().map(|(k, _)| k.line).collect()
}

/// A service with its `extends` chain applied (the base first, the service over it).
fn resolve(
    files: &mut Files,
    file: u16,
    name: &str,
    env: &Env,
    seen: &mut Vec<(u16, String)>,
) -> Result<Node, LintError> {
    let path = files.path(file);
    if seen.iter().any(|(f, n)| *f == file && n == name) {
        return Err(LintError::Input(
            path.display().to_string(),
            format!("service {name}: extends forms a cycle"),
        ));
    }
    seen.push((file, name.to_string()));
    let doc = files.doc(file).clone();
    let Some(service) = doc.get("services").and_then(|s| s.get(name)) else {
        return Err(LintError::Input(
            path.display().to_string(),
            format!("extends: no service {name} in this file"),
        ));
    };
    let mut service = service.clone();
    if service.value == Value::Null {
        service = Node::map(Vec::new(), service.line, file);
    }
    normalize(&mut service);
    let Some(ext) = take(&mut service, "extends") else {
        return Ok(service);
    };
    let (base_name, base_file) = match (&ext.value, ext.get("service")) {
        (Value::Str(s), _) => (s.clone(), None),
        (_, Some(s)) => (
            s.scalar().unwrap_or_default(),
            ext.get("file").and_then(Node::scalar),
        ),
        _ => {
            return Err(LintError::Input(
                super::yaml::place(&path, u64::from(ext.line)),
                format!("service {name}: extends needs a service name"),
            ));
        }
    };
    let base_idx = match base_file {
        None => file,
        Some(f) => {
            let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
            files.load(&dir.join(f), env)?
        }
    };
    let mut base = resolve(files, base_idx, &base_name, env, seen)?;
    merge(&mut base, service, "");
    Ok(base)
}

/// Removes and returns a key of a mapping.
fn take(node: &mut Node, key: &str) -> Option<Node> {
    if let Value::Map(entries) = &mut node.value {
        let i = entries.iter().position(|(k, _)| k.name == key)?;
        return Some(entries.remove(i).1);
    }
    None
}

/// Turns the list forms Compose accepts into mappings, so that files merge key by key:
/// `environment` and `labels` (`- K=V`), `depends_on` (`- db`: no condition).
fn normalize(service: &mut Node) {
    let Value::Map(entries) = &mut service.value else {
        return;
    };
    for (k, v) in entries.iter_mut() {
        match k.name.as_str() {
            "environment" | "labels" => list_to_map(v),
            "depends_on" => {
                if let Value::Seq(items) = &v.value {
                    let map = items
                        .iter()
                        .filter_map(|i| {
                            i.scalar().map(|name| {
                                let key = Key {
                                    name,
                                    line: i.line,
                                    file: i.file,
                                };
                                let null = Node {
                                    value: Value::Null,
                                    line: i.line,
                                    file: i.file,
                                };
                                (key, null)
                            })
                        })
                        .collect();
                    *v = Node::map(map, v.line, v.file);
                }
            }
            "deploy" => {
                if let Value::Map(d) = &mut v.value {
                    for (dk, dv) in d.iter_mut() {
                        if dk.name == "labels" {
                            list_to_map(dv);
                        }
                    }
                }
            }
            _ => {}
        }
    }
}

/// `[K=V, K2]` → `{K: V, K2: null}`.
fn list_to_map(v: &mut Node) {
    if let Value::Seq(items) = &v.value {
        let map = items
            .iter()
            .filter_map(|i| {
                let s = i.scalar()?;
                let (k, val) = match s.split_once('=') {
                    Some((k, val)) => {
                        (k.to_string(), Node::string(val.to_string(), i.line, i.file))
                    }
                    None => (
                        s.clone(),
                        Node {
                            value: Value::Null,
                            line: i.line,
                            file: i.file,
                        },
                    ),
                };
                Some((
                    Key {
                        name: k,
                        line: i.line,
                        file: i.file,
                    },
                    val,
                ))
            })
            .collect();
        *v = Node::map(map, v.line, v.file);
    }
}

/// Keys whose sequences an override replaces instead of extending.
const REPLACED: [&str; 4] = ["command", "entrypoint", "healthcheck.test", "profiles"];

/// Merges `over` into `base` as Compose merges an override file or an `extends` base:
/// mappings key by key, most sequences appended, commands and `healthcheck.test` replaced.
pub(crate) fn merge(base: &mut Node, mut over: Node, path: &str) {
    if path.is_empty() {
        normalize(base);
        normalize(&mut over);
    }
    match (&mut base.value, over.value) {
        (Value::Map(b), Value::Map(o)) => {
            for (k, v) in o {
                let sub = if path.is_empty() {
                    k.name.clone()
                } else {
                    format!("{path}.{}", k.name)
                };
                match b.iter_mut().find(|(bk, _)| bk.name == k.name) {
                    Some((_, bv)) => merge(bv, v, &sub),
                    None => b.push((k, v)),
                }
            }
        }
        (Value::Seq(b), Value::Seq(o)) if !REPLACED.contains(&path) => {
            for item in o {
                if !b.iter().any(|x| x.value == item.value) {
                    b.push(item);
                }
            }
        }
        (_, value) => {
            base.value = value;
            base.line = over.line;
            base.file = over.file;
        }
    }
}

/// The rule ids of an `x-healthcheck-lint: {ignore: [...]}` value.
pub(crate) fn ignore_list(ext: Option<&Node>) -> Vec<String> {
    let Some(ignore) = ext.and_then(|e| e.get("ignore")) else {
        return Vec::new();
    };
    match &ignore.value {
        Value::Seq(items) => items.iter().filter_map(Node::scalar).collect(),
        Value::Str(s) => s
            .split([',', ' '])
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect(),
        _ => Vec::new(),
    }
}

fn duration(node: Option<&Node>) -> Option<Duration> {
    node.and_then(Node::scalar).and_then(|s| go_duration(&s))
}

/// A Compose `healthcheck:` mapping as a [`Check`] (None when it only inherits the image's).
pub(crate) fn healthcheck(hc: &Node, at: Location) -> Option<Check> {
    let disabled = hc
        .get("disable")
        .is_some_and(|d| matches!(d.value, Value::Bool(true)));
    let test = match hc.get("test").map(|t| &t.value) {
        _ if disabled => Test::Disabled,
        Some(Value::Str(s)) => Test::Shell(s.clone()),
        Some(Value::Seq(items)) => {
            let words: Vec<String> = items.iter().filter_map(Node::scalar).collect();
            match words.split_first() {
                Some((first, rest)) if first == "CMD" => Test::Exec(rest.to_vec()),
                Some((first, rest)) if first == "CMD-SHELL" => Test::Shell(rest.join(" ")),
                Some((first, _)) if first == "NONE" => Test::Disabled,
                // No CMD/CMD-SHELL/NONE: Compose treats it as exec form.
                Some(_) => Test::Exec(words),
                None => return None,
            }
        }
        _ => return None,
    };
    Some(Check {
        role: Role::Docker,
        test,
        interval: duration(hc.get("interval")),
        timeout: duration(hc.get("timeout")),
        retries: hc
            .get("retries")
            .and_then(Node::scalar)
            .and_then(|s| s.trim().parse().ok()),
        start_period: duration(hc.get("start_period")),
        start_interval: duration(hc.get("start_interval")),
        at,
        from_image: false,
    })
}

/// A command (`entrypoint`, `command`) as words.
fn argv(node: Option<&Node>) -> Vec<String> {
    match node.map(|n| &n.value) {
        Some(Value::Str(s)) => shell_words(s),
        Some(Value::Seq(items)) => items.iter().filter_map(Node::scalar).collect(),
        _ => Vec::new(),
    }
}

/// One service as a unit.
fn unit(
    name: &str,
    node: &Node,
    files: &Files,
    project_dir: &Path,
    profiles: &BTreeSet<String>,
    vars: &Env,
) -> Unit {
    let loc = |n: &Node| Location {
        file: files.path(n.file),
        line: n.line,
    };
    let key_loc = |k: &Key| Location {
        file: files.path(k.file),
        line: k.line,
    };
    let key_of = |key: &str| node.entries().iter().find(|(k, _)| k.name == key);
    let image = node.get("image").and_then(Node::scalar);
    let mut checks = Vec::new();
    let mut built_from = None;
    if let Some(build) = node.get("build") {
        let (context, dockerfile) = match &build.value {
            Value::Str(s) => (s.clone(), None),
            _ => (
                build
                    .get("context")
                    .and_then(Node::scalar)
                    .unwrap_or_else(|| ".".into()),
                build.get("dockerfile").and_then(Node::scalar),
            ),
        };
        let path = project_dir
            .join(&context)
            .join(dockerfile.unwrap_or_else(|| "Dockerfile".into()));
        if let Ok(text) = std::fs::read_to_string(&path) {
            let facts = dockerfile::read(&text, &path);
            built_from = facts.base;
            checks.extend(facts.healthcheck);
        }
    }
    if let Some((k, hc)) = key_of("healthcheck") {
        if let Some(check) = healthcheck(hc, key_loc(k)) {
            // The file's own healthcheck replaces the image's.
            checks.retain(|c| !c.from_image);
            checks.push(check);
        } else if let Some(c) = checks.iter_mut().find(|c| c.from_image) {
            // A healthcheck: with timings only keeps the image's test.
            c.interval = duration(hc.get("interval")).or(c.interval);
            c.timeout = duration(hc.get("timeout")).or(c.timeout);
            c.start_period = duration(hc.get("start_period")).or(c.start_period);
            c.start_interval = duration(hc.get("start_interval")).or(c.start_interval);
        }
    }
    let env = node
        .get("environment")
        .map(|e| {
            e.entries()
                .iter()
                .map(|(k, v)| EnvVar {
                    name: k.name.clone(),
                    value: v.scalar().map(|raw| interpolate(&raw, vars).unwrap_or(raw)),
                    raw: v.scalar(),
                    at: key_loc(k),
                })
                .collect()
        })
        .unwrap_or_default();
    let mut labels: Vec<Label> = Vec::new();
    let mut read_labels = |n: Option<&Node>, deploy: bool| {
        for (k, v) in n.map(Node::entries).unwrap_or_default() {
            labels.push(Label {
                key: k.name.clone(),
                value: v.scalar().unwrap_or_default(),
                at: key_loc(k),
                deploy,
            });
        }
    };
    read_labels(node.get("labels"), false);
    read_labels(node.at(&["deploy", "labels"]), true);
    let depends_on = node
        .get("depends_on")
        .map(|d| {
            d.entries()
                .iter()
                .map(|(k, v)| Dependency {
                    service: k.name.clone(),
                    condition: v.get("condition").and_then(Node::scalar),
                    at: key_loc(k),
                })
                .collect()
        })
        .unwrap_or_default();
    let mut args = argv(node.get("entrypoint"));
    args.extend(argv(node.get("command")));
    let replicas = node
        .at(&["deploy", "replicas"])
        .or_else(|| node.get("scale"))
        .and_then(Node::scalar)
        .and_then(|s| s.parse().ok())
        .unwrap_or(1);
    let unit_profiles: Vec<String> = node
        .get("profiles")
        .map(|p| p.items().iter().filter_map(Node::scalar).collect())
        .unwrap_or_default();
    let active = unit_profiles.is_empty() || unit_profiles.iter().any(|p| profiles.contains(p));
    let mut aliases: Vec<String> = ["hostname", "container_name"]
        .iter()
        .filter_map(|k| node.get(k).and_then(Node::scalar))
        .collect();
    for (_, net) in node.get("networks").map(Node::entries).unwrap_or_default() {
        aliases.extend(
            net.get("aliases")
                .map(|a| {
                    a.items()
                        .iter()
                        .filter_map(Node::scalar)
                        .collect::<Vec<_>>()
                })
                .unwrap_or_default(),
        );
    }
    Unit {
        name: name.to_string(),
        service: name.to_string(),
        platform: Platform::Compose,
        at: loc(node),
        image,
        built_from,
        checks,
        env,
        labels,
        depends_on,
        argv: args,
        publishes_ports: node.get("ports").is_some_and(|p| !p.items().is_empty()),
        replicas,
        active,
        ignored: ignore_list(node.get("x-healthcheck-lint"))
            .into_iter()
            .collect(),
        aliases,
        mounts: node
            .get("volumes")
            .map(Node::items)
            .unwrap_or_default()
            .iter()
            .filter_map(|v| match &v.value {
                Value::Str(s) => s.split(':').nth(1).map(String::from),
                _ => v.get("target").and_then(Node::scalar),
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Go durations as Compose reads them.
    #[test]
    fn durations() {
        assert_eq!(go_duration("1m30s"), Some(Duration::from_secs(90)));
        assert_eq!(go_duration("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(go_duration("1.5s"), Some(Duration::from_millis(1500)));
        assert_eq!(go_duration("10"), Some(Duration::from_secs(10)));
        assert_eq!(go_duration("soon"), None);
        assert_eq!(go_duration("${HC_INTERVAL}"), None);
    }
}
