//! `healthcheck lint`: the health mistakes of Compose files and Kubernetes manifests, found
//! before they bite, with what the checks cost.
//!
//! Layout:
//! - `yaml`: the YAML tree with lines (serde-saphyr parses: anchors, merge keys, documents).
//! - `interpolate`, `compose`, `dockerfile`: Compose files read as Compose reads them
//!   (discovery, `.env`, `${VAR:-default}`, `extends`, overrides, profiles).
//! - `kube`: Kubernetes workloads and their probes.
//! - `model`: the units (services, containers) and checks the rules read.
//! - `rules/`: one file per family of rules; [`RULES`] lists them all.
//! - `images`, [`labels`]: what is known of images, and the sidecar's heal labels.
//! - `cost`: the cost line. `output`: text, JSON and SARIF 2.1.0.
//! - `silence`: `# healthcheck-lint: ignore ID` comments.

mod args;
pub mod compose;
pub mod cost;
mod dockerfile;
mod images;
mod interpolate;
mod kube;
pub mod labels;
mod model;
mod output;
mod rules;
mod silence;
mod yaml;

use std::collections::BTreeSet;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use args::{Args, explain};
pub use compose::ComposeOptions;
pub use cost::{Chain, Cost};
pub use model::Location;
pub use rules::{RULES, Rule};

/// How bad a finding is; `--fail-on` picks the lowest that fails the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    /// Worth knowing; nothing breaks.
    Note,
    /// Likely wrong, or costly.
    Warning,
    /// Breaks health checking, gating or healing, or leaks a secret.
    Error,
}

impl Severity {
    /// `error`, `warning`, `note` (SARIF's level names).
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Note => "note",
            Severity::Warning => "warning",
            Severity::Error => "error",
        }
    }
}

/// One mistake found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// The rule that found it.
    pub rule: &'static Rule,
    /// Its severity (the rule's, or raised or lowered by what the rule knows).
    pub severity: Severity,
    /// The service (Compose) or `Kind/name[/container]` (Kubernetes).
    pub unit: String,
    /// The key it is about (`healthcheck.test`, `livenessProbe`, `labels.healthcheck.heal.after`).
    pub key: String,
    /// One line naming the service and the key; never a secret's value.
    pub message: String,
    /// Where it is written.
    pub at: Location,
    /// The fix for this case (a snippet), or the rule's general fix.
    pub fix: String,
}

/// The output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// One line per finding, grouped by service, then the cost lines.
    Text,
    /// One JSON object: findings, cost, summary.
    Json,
    /// SARIF 2.1.0, for code-scanning tools.
    Sarif,
}

/// A validated lint run.
#[derive(Debug, Clone)]
pub struct Options {
    /// Files or directories; empty: find the Compose files as Compose does.
    pub paths: Vec<PathBuf>,
    /// Where discovery starts when `paths` is empty.
    pub dir: PathBuf,
    /// Output format.
    pub format: Format,
    /// The lowest severity that makes the run fail (None: never fail on findings).
    pub fail_on: Option<Severity>,
    /// Rule ids silenced everywhere.
    pub ignore: BTreeSet<String>,
    /// Compose's environment and profiles.
    pub compose: ComposeOptions,
    /// Machine CPU of one health-check exec (79 ms measured, BENCHMARKS.md).
    pub exec_cost: Duration,
}

/// The per-exec CPU cost measured on this project's machines (BENCHMARKS.md, the 24-agent stack).
pub const DEFAULT_EXEC_COST: Duration = Duration::from_millis(79);

/// What a lint run found.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// Findings, by unit then line.
    pub findings: Vec<Finding>,
    /// How many findings were silenced (comments, extension keys, `--ignore`).
    pub silenced: usize,
    /// The files read.
    pub files: Vec<PathBuf>,
    /// How many units (services, containers) were read.
    pub units: usize,
    /// The rendered cost lines' data.
    pub cost: cost::Cost,
}

impl Outcome {
    /// True when a finding at or above `fail_on` exists.
    pub fn fails(&self, fail_on: Option<Severity>) -> bool {
        fail_on.is_some_and(|f| self.findings.iter().any(|x| x.severity >= f))
    }

    /// The report in `format`.
    pub fn render(&self, format: Format) -> String {
        match format {
            Format::Text => output::text(self),
            Format::Json => output::json(self),
            Format::Sarif => output::sarif(self),
        }
    }
}

/// Why the inputs could not be linted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LintError {
    /// A file that cannot be read or is not what it must be: the place (`path[:line]`) and why.
    #[error("{0}: {1}")]
    Input(String, String),
    /// Nothing to lint was found.
    #[error("{0}")]
    NothingFound(String),
    /// A flag's value is wrong.
    #[error("{0}")]
    Usage(String),
}

/// Reads a file, naming it in the error.
pub(crate) fn read(path: &Path) -> Result<String, LintError> {
    std::fs::read_to_string(path)
        .map_err(|e| LintError::Input(path.display().to_string(), format!("cannot read: {e}")))
}

/// A YAML error as a lint error naming the file and line.
pub(crate) fn yaml_error(path: &Path, e: &yaml::YamlError) -> LintError {
    LintError::Input(
        yaml::place(path, e.line),
        format!("not valid YAML (column {}): {}", e.column, e.reason),
    )
}

/// Runs the linter.
pub fn run(options: &Options) -> Result<Outcome, LintError> {
    let mut compose_files = Vec::new();
    let mut manifests: Vec<(PathBuf, String)> = Vec::new();
    if options.paths.is_empty() {
        compose_files = compose::discover(&options.dir, &options.compose.env)?;
    }
    for path in &options.paths {
        if path.is_dir() {
            if compose::DEFAULT_FILES
                .iter()
                .any(|f| path.join(f).is_file())
            {
                compose_files.extend(compose::discover(path, &Default::default())?);
                continue;
            }
            let mut entries: Vec<PathBuf> = std::fs::read_dir(path)
                .map_err(|e| {
                    LintError::Input(path.display().to_string(), format!("cannot read: {e}"))
                })?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.is_file() && p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
                .collect();
            entries.sort();
            for p in entries {
                let text = read(&p)?;
                let docs = yaml::parse_documents(&text).map_err(|e| yaml_error(&p, &e))?;
                if kube::is_manifest(&docs) {
                    manifests.push((p, text));
                }
            }
            continue;
        }
        let text = read(path)?;
        let docs = yaml::parse_documents(&text).map_err(|e| yaml_error(path, &e))?;
        if kube::is_manifest(&docs) {
            manifests.push((path.clone(), text));
        } else if docs.first().is_some_and(|d| d.get("services").is_some()) || docs.is_empty() {
            compose_files.push(path.clone());
        } else {
            return Err(LintError::Input(
                path.display().to_string(),
                "neither a Compose file (no services:) nor a Kubernetes manifest (no apiVersion and kind)".into(),
            ));
        }
    }
    let (mut units, _profiles) = compose::load(&compose_files, &options.compose)?;
    for (path, text) in &manifests {
        units.extend(kube::load(path, text)?);
    }
    let project = model::Project {
        units,
        ..Default::default()
    };
    let mut all = rules::check(&project);
    let before = all.len();
    all.retain(|f| {
        !options.ignore.contains(f.rule.id)
            && !project
                .units
                .iter()
                .any(|u| u.name == f.unit && u.ignored.contains(f.rule.id))
    });
    let silenced = before - all.len();
    all.sort_by(|a, b| (&a.unit, &a.at, a.rule.id).cmp(&(&b.unit, &b.at, b.rule.id)));
    let mut files: Vec<PathBuf> = compose_files;
    files.extend(manifests.into_iter().map(|(p, _)| p));
    Ok(Outcome {
        findings: all,
        silenced,
        files,
        units: project.units.len(),
        cost: cost::cost(&project, options.exec_cost),
    })
}

/// A duration as a finding writes it: `800ms`, `2s`, `1.5s`, `2m`.
pub(crate) fn format_secs(d: Duration) -> String {
    let ms = d.as_millis();
    if ms < 1000 {
        format!("{ms}ms")
    } else if ms.is_multiple_of(60_000) {
        format!("{}m", ms / 60_000)
    } else if ms.is_multiple_of(1000) {
        format!("{}s", ms / 1000)
    } else {
        format!("{:.1}s", d.as_secs_f64())
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
