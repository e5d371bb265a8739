//! The lint command's flags as plain values (clap lives in the binary), validated into
//! [`Options`].

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use super::error::LintError;
use super::finding::{Format, Severity};
use super::model::go_duration;
use super::rules::RULES;
use super::{ComposeOptions, DEFAULT_EXEC_COST, Options};

/// `healthcheck lint` flags, as typed.
#[derive(Debug, Clone, Default)]
pub struct Args {
    /// Files or directories.
    pub paths: Vec<PathBuf>,
    /// `text`, `json` or `sarif` (default text).
    pub format: Option<String>,
    /// `error`, `warning`, `note` or `never` (default error).
    pub fail_on: Option<String>,
    /// Rule ids to silence everywhere (each may be comma-separated).
    pub ignore: Vec<String>,
    /// Compose profiles to enable.
    pub profiles: Vec<String>,
    /// Machine CPU per exec (`79ms`).
    pub exec_cost: Option<String>,
    /// The working directory (discovery) and the environment (interpolation).
    pub dir: PathBuf,
    /// The process environment.
    pub env: BTreeMap<String, String>,
}

impl Options {
    /// Validates the flags: formats, severities, rule ids and the exec cost.
    pub fn from_args(args: Args) -> Result<Options, LintError> {
        let format = match args.format.as_deref().unwrap_or("text") {
            "text" => Format::Text,
            "json" => Format::Json,
            "sarif" => Format::Sarif,
            other => {
                return Err(LintError::Usage(format!(
                    "--format {other}: expected text, json or sarif"
                )));
            }
        };
        let fail_on = match args.fail_on.as_deref().unwrap_or("error") {
            "error" => Some(Severity::Error),
            "warning" => Some(Severity::Warning),
            "note" => Some(Severity::Note),
            "never" => None,
            other => {
                return Err(LintError::Usage(format!(
                    "--fail-on {other}: expected error, warning, note or never"
                )));
            }
        };
        let mut ignore = BTreeSet::new();
        for id in args.ignore.iter().flat_map(|s| s.split(',')) {
            let id = id.trim().to_ascii_uppercase();
            if id.is_empty() {
                continue;
            }
            if !RULES.iter().any(|r| r.id == id) {
                return Err(LintError::Usage(format!(
                    "--ignore {id}: no such rule (HC001 to HC{:03})",
                    RULES.len()
                )));
            }
            ignore.insert(id);
        }
        let exec_cost = match &args.exec_cost {
            None => DEFAULT_EXEC_COST,
            Some(v) => go_duration(v).filter(|d| !d.is_zero()).ok_or_else(|| {
                LintError::Usage(format!("--exec-cost {v}: expected a duration such as 79ms"))
            })?,
        };
        Ok(Options {
            paths: args.paths,
            dir: args.dir,
            format,
            fail_on,
            ignore,
            compose: ComposeOptions {
                env: args.env,
                profiles: args.profiles,
            },
            exec_cost,
        })
    }
}

/// The explanation of one rule (or of all, for `all`), for `--explain`.
pub fn explain(id: &str) -> Result<String, LintError> {
    let pick: Vec<_> = RULES
        .iter()
        .filter(|r| id.eq_ignore_ascii_case("all") || r.id.eq_ignore_ascii_case(id))
        .collect();
    if pick.is_empty() {
        return Err(LintError::Usage(format!("--explain {id}: no such rule")));
    }
    Ok(pick
        .iter()
        .map(|r| {
            format!(
                "{} {} ({})\n  what: {}\n  why:  {}\n  fix:  {}\n",
                r.id, r.name, r.severity, r.what, r.why, r.fix
            )
        })
        .collect::<Vec<_>>()
        .join("\n"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Bad values are named; defaults are text, fail on error, 79 ms.
    #[test]
    fn validation() {
        let o = Options::from_args(Args::default()).unwrap();
        assert_eq!(o.format, Format::Text);
        assert_eq!(o.fail_on, Some(Severity::Error));
        assert_eq!(o.exec_cost, DEFAULT_EXEC_COST);
        let bad = |a: Args| Options::from_args(a).unwrap_err().to_string();
        assert!(
            bad(Args {
                format: Some("xml".into()),
                ..Default::default()
            })
            .contains("--format xml")
        );
        assert!(
            bad(Args {
                ignore: vec!["HC999".into()],
                ..Default::default()
            })
            .contains("HC999")
        );
        assert!(
            bad(Args {
                exec_cost: Some("soon".into()),
                ..Default::default()
            })
            .contains("--exec-cost")
        );
        let o = Options::from_args(Args {
            ignore: vec!["hc001,HC004".into()],
            ..Default::default()
        })
        .unwrap();
        assert_eq!(o.ignore.len(), 2);
        assert!(explain("HC001").unwrap().contains("port-only"));
        assert!(explain("HC000").is_err());
    }
}
