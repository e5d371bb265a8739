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
mod error;
mod finding;
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
use std::path::PathBuf;
use std::time::Duration;

pub use args::{Args, explain};
pub use compose::ComposeOptions;
pub use cost::{Chain, Cost};
pub use error::LintError;
use error::{read, yaml_error};
pub use finding::{Finding, Format, Outcome, Severity};
pub use model::Location;
pub use rules::{RULES, Rule};

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
