//! Flags as plain values ([`ProbeArgs`]; clap parses them in the binary) and the validated
//! [`Config`] built from them, the environment and a TOML file.
//!
//! An image can bake `HEALTHCHECK ["CMD", "/healthcheck"]` and let users choose targets with
//! `HEALTHCHECK_TARGETS` or `HEALTHCHECK_CONFIG`, with no shell anywhere. Every problem found is
//! reported at once, each naming where it came from (argument, variable or file and index).

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::target::Target;
use ready_signal::files::CONFIG_LIMIT;

/// The most targets one probe takes: beyond it the deadline cannot be kept (each target costs a
/// socket and memory), and no real stack has that many dependencies.
pub const MAX_TARGETS: usize = 1000;

/// The probe's deadline when none is given. Below Kubernetes' default `timeoutSeconds` (1 s), so
/// the probe gives its own reason before the kubelet kills it.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_millis(900);

/// The longest deadline accepted: a deadline is a point in time, and one centuries away does not
/// fit the clock.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(365 * 24 * 3600);

/// How long `wait` waits by default.
pub const DEFAULT_WAIT_TIMEOUT: Duration = Duration::from_secs(60);

/// Flags of a one-shot probe (or of `wait`, without `format`), as typed.
#[derive(Debug, Default, Clone)]
pub struct ProbeArgs {
    /// `--timeout`.
    pub timeout: Option<String>,
    /// `--format`.
    pub format: Option<Format>,
    /// `--config`.
    pub config: Option<PathBuf>,
    /// Target arguments.
    pub targets: Vec<String>,
}

/// Output format of a probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// One line: the verdict, then each target with its latency or reason.
    #[default]
    Text,
    /// One compact JSON object.
    Json,
}

/// The TOML file's shape.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    timeout: Option<String>,
    format: Option<Format>,
    #[serde(default)]
    targets: Vec<String>,
}

/// Validated configuration of one probe or wait.
#[derive(Debug)]
pub struct Config {
    /// What to check, at least one.
    pub targets: Vec<Target>,
    /// The overall deadline.
    pub timeout: Duration,
    /// How to print the verdict.
    pub format: Format,
}

/// Every problem found in the configuration, each naming where it came from.
#[derive(Debug, Default, thiserror::Error)]
#[error("{}", .0.join("; "))]
pub struct ConfigError(Vec<String>, Option<Format>);

impl ConfigError {
    fn one(message: String) -> ConfigError {
        ConfigError(vec![message], None)
    }

    /// The output format asked for, when it was found before the error (flag or config file):
    /// a configuration error is printed in it.
    pub fn format(&self) -> Option<Format> {
        self.1
    }

    fn into_result<T>(self, value: T) -> Result<T, ConfigError> {
        if self.0.is_empty() {
            Ok(value)
        } else {
            Err(self)
        }
    }
}

impl Config {
    /// Builds the configuration of a one-shot probe from flags and the real environment.
    pub fn from_probe_args(args: &ProbeArgs) -> Result<Config, ConfigError> {
        let env = |n: &str| std::env::var(n).ok();
        Config::build(
            &args.targets,
            args.timeout.as_deref(),
            args.format,
            args.config.as_deref(),
            DEFAULT_TIMEOUT,
            &env,
        )
    }

    /// Builds the configuration of `wait` from flags and the real environment.
    pub fn from_wait_args(args: &ProbeArgs) -> Result<Config, ConfigError> {
        let env = |n: &str| std::env::var(n).ok();
        Config::build(
            &args.targets,
            args.timeout.as_deref(),
            args.format,
            args.config.as_deref(),
            DEFAULT_WAIT_TIMEOUT,
            &env,
        )
    }

    /// Merges the sources: targets from arguments if any were given, else from the config file and
    /// `HEALTHCHECK_TARGETS`; the timeout from the flag, else `HEALTHCHECK_TIMEOUT`, else the file.
    fn build(
        arg_targets: &[String],
        arg_timeout: Option<&str>,
        arg_format: Option<Format>,
        arg_config: Option<&Path>,
        default_timeout: Duration,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        let mut errors = ConfigError::default();
        let config_path = arg_config.map(Path::to_path_buf).or_else(|| {
            env("HEALTHCHECK_CONFIG")
                .filter(|s| !s.is_empty())
                .map(PathBuf::from)
        });
        let file = match &config_path {
            Some(path) => read_config(path).map_err(|e| ConfigError(e.0, arg_format))?,
            None => FileConfig::default(),
        };

        // Counted before parsing: 20,000 targets must fail at once, not after parsing them all.
        let env_list = env("HEALTHCHECK_TARGETS");
        let count = if arg_targets.is_empty() {
            file.targets.len()
                + env_list
                    .as_deref()
                    .map_or(0, |l| l.split_whitespace().count())
        } else {
            arg_targets.len()
        };
        if count > MAX_TARGETS {
            return Err(ConfigError(
                vec![format!(
                    "{count} targets: at most {MAX_TARGETS} are checked by one probe; split them"
                )],
                arg_format.or(file.format),
            ));
        }
        let mut targets = Vec::new();
        let mut parse = |raw: &str, place: String| match Target::parse_with(raw, env) {
            Ok(t) => targets.push(t),
            Err(e) => errors.0.push(format!("{place}: {e}")),
        };
        if !arg_targets.is_empty() {
            for (i, raw) in arg_targets.iter().enumerate() {
                parse(raw, format!("target {}", i + 1));
            }
        } else {
            if let Some(path) = &config_path {
                for (i, raw) in file.targets.iter().enumerate() {
                    parse(raw, format!("{} targets[{i}]", path.display()));
                }
            }
            if let Some(list) = &env_list {
                let items: Vec<&str> = list.split_whitespace().collect();
                // `scheme://to ken@host`: a credential holding whitespace splits into items; the
                // first would print its piece of the credential as a host. Neither is parsed.
                let mut skip = vec![false; items.len()];
                let mut split = Vec::new();
                for i in 1..items.len() {
                    if !items[i].contains("://") && items[i].contains('@') {
                        let start = (0..i)
                            .rev()
                            .find(|&j| items[j].contains("://"))
                            .unwrap_or(0);
                        skip[start..=i].iter_mut().for_each(|s| *s = true);
                        split.push(format!(
                            "HEALTHCHECK_TARGETS items {} to {}: whitespace before an `@` (a space, \
                             tab or newline in a credential must be percent-encoded: %20, %09, %0A)",
                            start + 1,
                            i + 1
                        ));
                    }
                }
                for (i, raw) in items.iter().enumerate() {
                    if !skip[i] {
                        parse(raw, format!("HEALTHCHECK_TARGETS item {}", i + 1));
                    }
                }
                errors.0.append(&mut split);
            }
        }
        if targets.is_empty() && errors.0.is_empty() {
            errors.0.push("no targets: give TARGET arguments, HEALTHCHECK_TARGETS or a config file (--config, HEALTHCHECK_CONFIG)".into());
        }

        let timeout = match (
            arg_timeout,
            env("HEALTHCHECK_TIMEOUT").filter(|s| !s.is_empty()),
            &file.timeout,
        ) {
            (Some(t), _, _) => parse_timeout(t, "--timeout"),
            (None, Some(t), _) => parse_timeout(&t, "HEALTHCHECK_TIMEOUT"),
            (None, None, Some(t)) => parse_timeout(
                t,
                &format!(
                    "{} timeout",
                    config_path
                        .as_deref()
                        .unwrap_or(Path::new("config"))
                        .display()
                ),
            ),
            (None, None, None) => Ok(default_timeout),
        };
        let timeout = timeout.unwrap_or_else(|e| {
            errors.0.extend(e.0);
            default_timeout
        });
        let format = arg_format.or(file.format).unwrap_or_default();
        errors.1 = arg_format.or(file.format);
        errors.into_result(Config {
            targets,
            timeout,
            format,
        })
    }
}

fn read_config(path: &Path) -> Result<FileConfig, ConfigError> {
    let bytes = ready_signal::files::read_bounded(path, CONFIG_LIMIT)
        .map_err(|e| ConfigError::one(format!("cannot read config {}: {e}", path.display())))?;
    let text = String::from_utf8(bytes).map_err(|e| {
        ConfigError::one(format!(
            "config {}: not UTF-8 at byte {}",
            path.display(),
            e.utf8_error().valid_up_to()
        ))
    })?;
    toml::from_str(&text).map_err(|e| {
        // A syntax error's message says what is wrong without quoting values; a file that is
        // TOML but not the probe's keys is described in our words (see `describe_keys`).
        let msg = match toml::from_str::<toml::Table>(&text) {
            Err(syntax) => syntax.message().to_string(),
            Ok(table) => describe_keys(&table),
        };
        let at = e
            .span()
            .map(|s| line_col(&text, s.start))
            .map(|(l, c)| format!(" at line {l} column {c}"))
            .unwrap_or_default();
        ConfigError::one(format!(
            "config {}{at}: {}",
            path.display(),
            crate::text::truncate(&crate::text::one_line(&msg), 300)
        ))
    })
}

fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
    (line, col)
}

/// `2s`, `500ms`, `1m`, or a bare number of seconds (`5`, as Docker and Kubernetes write them).
/// An error names the place, never the value: a value in the wrong place may be a secret
/// (`--timeout redis://:pw@h`, arguments out of order).
pub fn parse_timeout(s: &str, place: &str) -> Result<Duration, ConfigError> {
    let s = s.trim();
    let d = match s.parse::<f64>() {
        Ok(secs) if secs.is_finite() && (0.0..1e9).contains(&secs) => Duration::from_secs_f64(secs),
        Ok(_) => {
            return Err(ConfigError::one(format!(
                "{place}: out of range (at most 365 days)"
            )));
        }
        Err(_) => humantime::parse_duration(s).map_err(|_| {
            ConfigError::one(format!(
                "{place}: not a duration ({} bytes); write a number and a unit, e.g. 2s, 500ms or 1m",
                s.len()
            ))
        })?,
    };
    if d.is_zero() {
        return Err(ConfigError::one(format!("{place}: must be more than zero")));
    }
    if d > MAX_TIMEOUT {
        return Err(ConfigError::one(format!(
            "{place}: out of range (at most 365 days)"
        )));
    }
    Ok(d)
}

/// What is wrong in a config file that parsed as TOML but not as the probe's keys, in the
/// probe's words: serde's own messages quote the value (`invalid type: string "redis://:pw@h"`,
/// `unknown variant ...`, `unknown field ...`), which may be a secret.
fn describe_keys(table: &toml::Table) -> String {
    for (key, value) in table {
        let problem = match key.as_str() {
            "timeout" if !value.is_str() => "`timeout` must be a string such as \"2s\"".to_string(),
            "format" if !matches!(value.as_str(), Some("text" | "json")) => {
                "`format` must be \"text\" or \"json\"".to_string()
            }
            "targets" => match value.as_array() {
                None => "`targets` must be an array of strings".to_string(),
                Some(items) => match items.iter().position(|v| !v.is_str()) {
                    Some(n) => format!("`targets` item {} is not a string", n + 1),
                    None => continue,
                },
            },
            "timeout" | "format" => continue,
            // The error's line and column point at it.
            _ => "a key the probe does not know (timeout, format, targets)".to_string(),
        };
        return problem;
    }
    "not the probe's keys (timeout, format, targets)".to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn build(
        args: &[&str],
        vars: &[(&str, &str)],
        config: Option<&Path>,
    ) -> Result<Config, String> {
        let vars: Vec<(String, String)> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let env = move |n: &str| vars.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone());
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        Config::build(&args, None, None, config, DEFAULT_TIMEOUT, &env).map_err(|e| e.to_string())
    }

    /// More targets than the cap is a config error naming the cap, before any is parsed.
    #[test]
    fn too_many_targets_is_a_config_error() {
        let many = vec!["tcp://h:1"; MAX_TARGETS + 1];
        let e = build(&many, &[], None).unwrap_err();
        assert!(e.contains("at most 1000"), "{e}");
        assert_eq!(
            build(&many[..MAX_TARGETS], &[], None)
                .unwrap()
                .targets
                .len(),
            MAX_TARGETS
        );
    }

    #[test]
    fn targets_from_environment_when_no_arguments() {
        let c = build(
            &[],
            &[
                ("HEALTHCHECK_TARGETS", " redis://a:1 \n tcp://b:2 "),
                ("HEALTHCHECK_TIMEOUT", "3s"),
            ],
            None,
        )
        .unwrap();
        assert_eq!(c.targets.len(), 2);
        assert_eq!(c.timeout, Duration::from_secs(3));
    }

    #[test]
    fn arguments_override_environment_targets() {
        let c = build(
            &["tcp://x:1"],
            &[("HEALTHCHECK_TARGETS", "redis://a:1")],
            None,
        )
        .unwrap();
        assert_eq!(c.targets.len(), 1);
        assert_eq!(c.targets[0].to_string(), "tcp://x:1");
    }

    #[test]
    fn every_bad_target_is_reported_with_its_place() {
        let e = build(&["tcp://x:1", "bogus://y", "tcp://z"], &[], None).unwrap_err();
        assert!(e.contains("target 2: bogus://…: unknown scheme"), "{e}");
        assert!(
            e.contains("target 3: tcp://z: tcp targets need a port"),
            "{e}"
        );
    }

    #[test]
    fn config_file_targets_timeout_and_errors_with_line() {
        let dir = tempfile::tempdir().unwrap();
        let good = dir.path().join("good.toml");
        std::fs::write(
            &good,
            "timeout = \"250ms\"\nformat = \"json\"\ntargets = [\"tcp://a:1\", \"redis://b\"]\n",
        )
        .unwrap();
        let c = build(&[], &[], Some(&good)).unwrap();
        assert_eq!(
            (c.targets.len(), c.timeout, c.format),
            (2, Duration::from_millis(250), Format::Json)
        );

        let bad = dir.path().join("bad.toml");
        std::fs::write(&bad, "targets = [\"tcp://a:1\"]\ntimout = \"1s\"\n").unwrap();
        let e = build(&[], &[], Some(&bad)).unwrap_err();
        assert!(
            e.contains("bad.toml at line 2 column 1")
                && e.contains("a key the probe does not know"),
            "{e}"
        );
        assert!(!e.contains('\n'), "{e}");

        let e = build(&[], &[], Some(Path::new("/nonexistent/hc.toml"))).unwrap_err();
        assert!(e.contains("cannot read config /nonexistent/hc.toml"), "{e}");
    }

    #[test]
    fn no_targets_anywhere_is_an_error() {
        assert!(build(&[], &[], None).unwrap_err().contains("no targets"));
    }

    #[test]
    fn timeouts_parse_with_units_or_seconds() {
        assert_eq!(
            parse_timeout("1.5", "t").unwrap(),
            Duration::from_millis(1500)
        );
        assert_eq!(
            parse_timeout("250ms", "t").unwrap(),
            Duration::from_millis(250)
        );
        assert!(
            parse_timeout("0", "t")
                .unwrap_err()
                .to_string()
                .contains("more than zero")
        );
        assert!(
            parse_timeout("580000000000y", "t")
                .unwrap_err()
                .to_string()
                .contains("out of range")
        );
        assert!(
            parse_timeout("soon", "--timeout")
                .unwrap_err()
                .to_string()
                .starts_with("--timeout: not a duration")
        );
    }
}
