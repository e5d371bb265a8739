//! HC001: checks that only prove a port accepts connections.

use super::super::finding::{Finding, Severity};
use super::super::model::{Check, Platform, Project, Test, Unit, commands, program};
use super::common::{check_key, finding, parse_url, probe_runs, with_severity};

pub(super) fn check(project: &Project, out: &mut Vec<Finding>) {
    for unit in &project.units {
        for c in &unit.checks {
            let Some(how) = port_only(c, unit) else {
                continue;
            };
            let gated = project.units.iter().any(|d| {
                d.depends_on.iter().any(|dep| {
                    dep.service == unit.service
                        && dep.condition.as_deref() == Some("service_healthy")
                })
            });
            let why_worse = if unit.publishes_ready_signal() {
                Some("it publishes a ready signal: check that instead")
            } else if gated && unit.platform == Platform::Compose {
                Some("dependents wait on it with service_healthy")
            } else {
                None
            };
            let key = format!("{}.test", check_key(c));
            let message = format!(
                "{}: {key}: port-only check ({how}){}",
                unit.name,
                why_worse.map(|w| format!(": {w}")).unwrap_or_default()
            );
            let mut f = finding("HC001", unit, &key, &c.at, message);
            f.fix = fix(unit);
            out.push(if why_worse.is_some() {
                with_severity(f, Severity::Error)
            } else {
                f
            });
        }
    }
}

/// The fix for this unit: its ready signal, or the right check for its image.
fn fix(unit: &Unit) -> String {
    let image = unit.image.as_deref().unwrap_or("");
    let target = if unit.publishes_ready_signal() {
        let agent = unit
            .env_var("AGENT_NAME")
            .and_then(|e| e.value.clone())
            .unwrap_or_else(|| unit.service.clone());
        format!("ready://{agent}?replica=self")
    } else if image.contains("redis") || image.contains("valkey") {
        "redis://localhost:6379".into()
    } else if image.contains("nats") {
        "nats://localhost:4222".into()
    } else {
        "http://localhost:PORT/health (an endpoint that answers only when ready)".into()
    };
    format!("test: [\"CMD\", \"/hc/healthcheck\", \"{target}\"]")
}

/// How the check is port-only, when it is.
fn port_only(c: &Check, unit: &Unit) -> Option<String> {
    if let Test::Tcp { .. } = c.test {
        return Some("tcpSocket".into());
    }
    if let Test::Shell(s) = &c.test
        && s.contains("/dev/tcp/")
    {
        return Some("/dev/tcp".into());
    }
    for args in probe_runs(c) {
        let targets: Vec<&String> = args.iter().filter(|a| a.contains("://")).collect();
        if !targets.is_empty() && targets.iter().all(|t| t.starts_with("tcp://")) {
            return Some("healthcheck tcp://".into());
        }
    }
    for cmd in commands(&c.words()) {
        let Some((prog, args)) = program(&cmd) else {
            continue;
        };
        match prog {
            "nc" | "ncat" | "netcat"
                if args
                    .iter()
                    .any(|a| a.starts_with('-') && !a.starts_with("--") && a.contains('z')) =>
            {
                return Some(format!("{prog} -z"));
            }
            "curl" | "wget" => {
                let bare = args
                    .iter()
                    .filter_map(|a| parse_url(a))
                    .any(|u| (u.path.is_empty() || u.path == "/") && u.query.is_empty());
                if bare {
                    return Some(format!("{prog} of a bare port"));
                }
            }
            "redis-cli" if args.iter().any(|a| a.eq_ignore_ascii_case("ping")) => {
                let auth = args
                    .iter()
                    .any(|a| matches!(a.as_str(), "-a" | "--pass" | "--user" | "--askpass"))
                    || unit.env_var("REDISCLI_AUTH").is_some();
                if !auth {
                    return Some(
                        "redis-cli ping without -a: exits 0 on NOAUTH and while LOADING".into(),
                    );
                }
            }
            _ => {}
        }
    }
    None
}
