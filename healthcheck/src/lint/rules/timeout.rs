//! HC004: a probe whose own deadline is not below the orchestrator's timeout.

use std::time::Duration;

use super::super::finding::{Finding, format_secs};
use super::super::model::{Check, Project, Unit, commands, go_duration, program};
use super::common::{check_key, finding, probe_runs};

/// The probe's default deadline (healthcheck::config::DEFAULT_TIMEOUT).
const PROBE_DEFAULT: Duration = crate::config::DEFAULT_TIMEOUT;

pub(super) fn check(project: &Project, out: &mut Vec<Finding>) {
    for unit in &project.units {
        for c in &unit.checks {
            if !c.execs() {
                continue;
            }
            let limit = c.timeout_or_default();
            for (what, own) in own_timeouts(c, unit) {
                if own >= limit {
                    let key = format!("{}.timeout", check_key(c));
                    let theirs = match c.role {
                        super::super::model::Role::Docker => "timeout",
                        _ => "timeoutSeconds",
                    };
                    let default = if c.timeout.is_none() {
                        " (the default)"
                    } else {
                        ""
                    };
                    out.push(finding(
                        "HC004",
                        unit,
                        &key,
                        &c.at,
                        format!(
                            "{}: {key}: {what} {} is not below {theirs} {}{default}: the probe is killed before it can say why",
                            unit.name,
                            format_secs(own),
                            format_secs(limit)
                        ),
                    ));
                }
            }
        }
    }
}

/// The deadlines the check's commands set themselves.
fn own_timeouts(c: &Check, unit: &Unit) -> Vec<(String, Duration)> {
    let mut out = Vec::new();
    for args in probe_runs(c) {
        let flag = args.iter().enumerate().find_map(|(i, a)| {
            if a == "--timeout" {
                args.get(i + 1).cloned()
            } else {
                a.strip_prefix("--timeout=").map(String::from)
            }
        });
        let (what, value) = match flag {
            Some(v) => ("healthcheck --timeout", go_duration(&v)),
            None => match unit
                .env_var("HEALTHCHECK_TIMEOUT")
                .and_then(|e| e.value.clone())
            {
                Some(v) => ("HEALTHCHECK_TIMEOUT", go_duration(&v)),
                None => ("the probe's default deadline", Some(PROBE_DEFAULT)),
            },
        };
        if let Some(d) = value {
            out.push((what.to_string(), d));
        }
    }
    for cmd in commands(&c.words()) {
        let Some((prog, args)) = program(&cmd) else {
            continue;
        };
        let value_of = |short: &str, long: &str| {
            args.iter().enumerate().find_map(|(i, a)| {
                if a == short || a == long {
                    args.get(i + 1).cloned()
                } else {
                    a.strip_prefix(&format!("{long}=")).map(String::from)
                }
            })
        };
        let found = match prog {
            "curl" => value_of("-m", "--max-time").map(|v| ("curl --max-time", v)),
            "wget" => value_of("-T", "--timeout").map(|v| ("wget --timeout", v)),
            "timeout" => args
                .iter()
                .find(|a| !a.starts_with('-'))
                .map(|v| ("timeout", v.clone())),
            _ => None,
        };
        if let Some((what, v)) = found
            && let Some(d) = go_duration(&v)
        {
            out.push((what.to_string(), d));
        }
    }
    out
}
