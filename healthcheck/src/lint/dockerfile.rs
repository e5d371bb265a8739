//! What a service's own Dockerfile says that the rules need: the base image of its last stage
//! (`FROM scratch` has no shell) and its `HEALTHCHECK`. Only these two instructions are read.

use std::path::Path;

use super::model::{Check, Location, Role, Test, go_duration};

/// The facts read from a Dockerfile.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Facts {
    /// The last stage's base image, stage names followed to their own base.
    pub(crate) base: Option<String>,
    /// The last stage's `HEALTHCHECK`.
    pub(crate) healthcheck: Option<Check>,
}

/// Reads the facts; lines that are not understood are skipped.
pub(crate) fn read(text: &str, path: &Path) -> Facts {
    let mut stages: Vec<(Option<String>, String)> = Vec::new();
    let mut facts = Facts::default();
    let mut logical = String::new();
    let mut start_line = 0u32;
    for (i, line) in text.lines().enumerate() {
        let trimmed = line.trim();
        if logical.is_empty() && (trimmed.starts_with('#') || trimmed.is_empty()) {
            continue;
        }
        if logical.is_empty() {
            start_line = u32::try_from(i + 1).unwrap_or(u32::MAX);
        }
        if let Some(cont) = trimmed.strip_suffix('\\') {
            logical.push_str(cont);
            logical.push(' ');
            continue;
        }
        logical.push_str(trimmed);
        let instruction = std::mem::take(&mut logical);
        let (word, rest) = instruction
            .split_once(char::is_whitespace)
            .unwrap_or((instruction.as_str(), ""));
        match word.to_ascii_uppercase().as_str() {
            "FROM" => {
                let parts: Vec<&str> = rest
                    .split_whitespace()
                    .filter(|p| !p.starts_with("--"))
                    .collect();
                let image = parts.first().map(|s| s.to_string()).unwrap_or_default();
                let alias = match parts.as_slice() {
                    [_, as_, name, ..] if as_.eq_ignore_ascii_case("as") => Some(name.to_string()),
                    _ => None,
                };
                // A stage built on an earlier stage has that stage's base.
                let base = stages
                    .iter()
                    .find(|(a, _)| a.as_deref() == Some(image.as_str()))
                    .map(|(_, b)| b.clone())
                    .unwrap_or(image);
                stages.push((alias, base.clone()));
                facts.base = Some(base);
                facts.healthcheck = None;
            }
            "HEALTHCHECK" => {
                facts.healthcheck = healthcheck(
                    rest,
                    Location {
                        file: path.to_path_buf(),
                        line: start_line,
                    },
                );
            }
            _ => {}
        }
    }
    facts
}

/// `HEALTHCHECK [--interval=..] CMD ...` or `HEALTHCHECK NONE`.
fn healthcheck(rest: &str, at: Location) -> Option<Check> {
    let mut check = Check {
        role: Role::Docker,
        test: Test::Disabled,
        interval: None,
        timeout: None,
        retries: None,
        start_period: None,
        start_interval: None,
        at,
        from_image: true,
    };
    let mut rest = rest.trim();
    while let Some(opt) = rest.strip_prefix("--") {
        let (flag, tail) = opt.split_once(char::is_whitespace).unwrap_or((opt, ""));
        let (name, value) = flag.split_once('=').unwrap_or((flag, ""));
        let d = go_duration(value);
        match name {
            "interval" => check.interval = d,
            "timeout" => check.timeout = d,
            "start-period" => check.start_period = d,
            "start-interval" => check.start_interval = d,
            "retries" => check.retries = value.parse().ok(),
            _ => {}
        }
        rest = tail.trim_start();
    }
    if rest.eq_ignore_ascii_case("NONE") {
        return Some(check);
    }
    let cmd = rest
        .strip_prefix("CMD")
        .or_else(|| rest.strip_prefix("cmd"))?
        .trim();
    check.test = match serde_json::from_str::<Vec<String>>(cmd) {
        Ok(argv) => Test::Exec(argv),
        Err(_) => Test::Shell(cmd.to_string()),
    };
    Some(check)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The last stage's base (through a stage name) and its HEALTHCHECK, exec form.
    #[test]
    fn last_stage() {
        let f = read(
            "FROM rust AS build\nRUN x\nFROM scratch AS base\nFROM base\nHEALTHCHECK --interval=5s \\\n  CMD [\"/healthcheck\", \"tcp://localhost:1\"]\n",
            Path::new("Dockerfile"),
        );
        assert_eq!(f.base.as_deref(), Some("scratch"));
        let hc = f.healthcheck.unwrap();
        assert_eq!(hc.interval, Some(std::time::Duration::from_secs(5)));
        assert_eq!(hc.at.line, 5);
        assert!(matches!(hc.test, Test::Exec(ref a) if a[0] == "/healthcheck"));
    }
}
