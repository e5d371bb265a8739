//! The vocabulary of a lint run's result: severities, findings, the outcome. A leaf: it imports
//! nothing of the linter but locations and the cost.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use super::cost::Cost;
use super::model::Location;

/// A rule: a stable id, its default severity, what it finds, why it matters, the fix.
#[derive(Debug, PartialEq, Eq)]
pub struct Rule {
    /// `HC001` ... (never reused).
    pub id: &'static str,
    /// A short kebab-case name.
    pub name: &'static str,
    /// Default severity.
    pub severity: Severity,
    /// What it finds, one line.
    pub what: &'static str,
    /// Why it matters.
    pub why: &'static str,
    /// The general fix (findings may carry a more specific one).
    pub fix: &'static str,
}

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
    pub cost: Cost,
}

impl Outcome {
    /// True when a finding at or above `fail_on` exists.
    pub fn fails(&self, fail_on: Option<Severity>) -> bool {
        fail_on.is_some_and(|f| self.findings.iter().any(|x| x.severity >= f))
    }
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
