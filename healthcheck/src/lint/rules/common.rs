//! What the rule families share: building findings, reading what a check talks to, finding the
//! healers of a project.

use super::super::finding::{Finding, Rule, Severity};
use super::super::model::{Check, Location, Project, Test, Unit, commands, program};
use super::table::RULES;

/// The rule with this id.
pub(super) fn rule(id: &str) -> &'static Rule {
    RULES.iter().find(|r| r.id == id).unwrap_or(&RULES[0])
}

/// Builds a finding with the rule's own severity and fix.
pub(super) fn finding(id: &str, unit: &Unit, key: &str, at: &Location, message: String) -> Finding {
    let rule = rule(id);
    Finding {
        rule,
        severity: rule.severity,
        unit: unit.name.clone(),
        key: key.to_string(),
        message,
        at: at.clone(),
        fix: rule.fix.to_string(),
    }
}

/// The key a check is written under (`healthcheck`, `livenessProbe`; the Dockerfile's).
pub(super) fn check_key(check: &Check) -> String {
    if check.from_image {
        "HEALTHCHECK (Dockerfile)".into()
    } else {
        check.role.key().into()
    }
}

/// One thing a check talks to: a URL, or a host named by a tool's flag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Contact {
    pub(super) scheme: String,
    pub(super) host: String,
    /// The URL's query, for `store=file` and secrets.
    pub(super) query: String,
    pub(super) path: String,
}

impl Contact {
    /// True for this container itself.
    pub(super) fn is_local(&self) -> bool {
        matches!(
            self.host.as_str(),
            "" | "localhost" | "127.0.0.1" | "::1" | "[::1]" | "0.0.0.0"
        )
    }
}

/// Parses `scheme://[userinfo@]host[:port][/path][?query]` loosely (hosts, never secrets).
pub(super) fn parse_url(word: &str) -> Option<Contact> {
    let (scheme, rest) = word.split_once("://")?;
    if scheme.is_empty()
        || !scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "+.-".contains(c))
    {
        return None;
    }
    let (before_query, query) = rest.split_once('?').unwrap_or((rest, ""));
    let (authority, path) = match before_query.find('/') {
        Some(i) => (&before_query[..i], &before_query[i..]),
        None => (before_query, ""),
    };
    let hostport = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    // The first host of a seed list; the port cut off (IPv6 kept in brackets).
    let first = hostport.split(',').next().unwrap_or("");
    let host = if first.starts_with('[') {
        first
            .split(']')
            .next()
            .map(|h| format!("{h}]"))
            .unwrap_or_default()
    } else {
        first.split(':').next().unwrap_or("").to_string()
    };
    Some(Contact {
        scheme: scheme.to_ascii_lowercase(),
        host,
        query: query.to_string(),
        path: path.to_string(),
    })
}

/// Everything a check's commands talk to.
pub(super) fn contacts(check: &Check) -> Vec<Contact> {
    let mut out = Vec::new();
    match &check.test {
        Test::Http { host, path, .. } => out.push(Contact {
            scheme: "http".into(),
            host: host.clone().unwrap_or_default(),
            query: String::new(),
            path: path.clone(),
        }),
        Test::Tcp { host, .. } => out.push(Contact {
            scheme: "tcp".into(),
            host: host.clone().unwrap_or_default(),
            query: String::new(),
            path: String::new(),
        }),
        _ => {}
    }
    for cmd in commands(&check.words()) {
        for w in &cmd {
            if let Some(c) = parse_url(w) {
                out.push(c);
            }
        }
        let Some((prog, args)) = program(&cmd) else {
            continue;
        };
        let flag_host = |flag: &str| args.windows(2).find(|w| w[0] == flag).map(|w| w[1].clone());
        let host = match prog {
            "redis-cli" => flag_host("-h").map(|h| ("redis", h)),
            "pg_isready" | "psql" | "mysqladmin" => flag_host("-h")
                .or_else(|| flag_host("--host"))
                .map(|h| ("postgres", h)),
            "nc" | "ncat" | "netcat" => args
                .iter()
                .find(|a| !a.starts_with('-') && a.parse::<u16>().is_err())
                .map(|h| ("tcp", h.clone())),
            _ => None,
        };
        if let Some((scheme, host)) = host {
            out.push(Contact {
                scheme: scheme.into(),
                host,
                query: String::new(),
                path: String::new(),
            });
        }
    }
    out
}

/// The arguments of each run of this project's probe in a check (`healthcheck ...`, not its
/// `wait`, `install` or `lint`).
pub(super) fn probe_runs(check: &Check) -> Vec<Vec<String>> {
    commands(&check.words())
        .iter()
        .filter_map(|cmd| {
            let (prog, args) = program(cmd)?;
            let sub = args.first().map(String::as_str);
            (prog == "healthcheck" && !matches!(sub, Some("wait" | "install" | "lint")))
                .then(|| args.to_vec())
        })
        .collect()
}

/// The healers in the project: (unit name, kind) for `healthcheck-sidecar --heal`,
/// docker-autoheal and deunhealth.
pub(super) fn healers(project: &Project) -> Vec<(&Unit, &'static str)> {
    project
        .units
        .iter()
        .filter_map(|u| healer_kind(u).map(|k| (u, k)))
        .collect()
}

/// Which healer a unit runs, if any.
pub(super) fn healer_kind(u: &Unit) -> Option<&'static str> {
    let image = u.image.as_deref().unwrap_or("");
    let sidecar = u.argv.iter().any(|a| a.ends_with("healthcheck-sidecar"));
    let heal_flag = u.argv.iter().any(|a| {
        a == "--heal" || (a.starts_with("--heal=") && !matches!(&a[7..], "off" | "false" | "no"))
    });
    if sidecar && heal_flag {
        Some("healthcheck-sidecar")
    } else if image.contains("autoheal") {
        Some("docker-autoheal")
    } else if image.contains("deunhealth") {
        Some("deunhealth")
    } else {
        None
    }
}

/// The severity for a finding of rule `id` raised to `severity`.
pub(super) fn with_severity(mut f: Finding, severity: Severity) -> Finding {
    f.severity = severity;
    f
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Ids are unique, in order, and every rule says why and how to fix it.
    #[test]
    fn rules_are_complete() {
        for (i, r) in RULES.iter().enumerate() {
            assert_eq!(r.id, format!("HC{:03}", i + 1));
            assert!(!r.why.is_empty() && !r.fix.is_empty() && !r.what.is_empty());
        }
    }

    /// Hosts come out of URLs with credentials, ports and seed lists.
    #[test]
    fn urls() {
        let c = parse_url("redis://:pw@cache:6379/0?role=master").unwrap();
        assert_eq!((c.scheme.as_str(), c.host.as_str()), ("redis", "cache"));
        assert_eq!(parse_url("nats://a:4222,b:4222").unwrap().host, "a");
        assert!(parse_url("http://[::1]:8080/").unwrap().is_local());
        assert_eq!(
            parse_url("ready://worker?replica=self").unwrap().host,
            "worker"
        );
        assert!(parse_url("not a url").is_none());
    }
}
