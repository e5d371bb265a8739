//! The rules: one file per family, each a function over the whole project that pushes findings.
//! [`RULES`] is the one list of ids, severities, reasons and fixes (LINT.md's table is tested
//! against it).

mod dependency;
mod heal;
mod image;
mod port;
mod secret;
mod selfref;
mod timeout;
mod timing;

use super::model::{Check, Location, Project, Test, Unit, commands, program};
use super::{Finding, Severity};

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

/// Every rule, in id order.
pub static RULES: [Rule; 15] = [
    Rule {
        id: "HC001",
        name: "port-only-check",
        severity: Severity::Warning,
        what: "a check that only proves a port accepts (tcp://, nc -z, /dev/tcp, curl of a bare port, redis-cli ping without -a, tcpSocket); an error on a service that publishes a ready signal or gates a dependent",
        why: "a port accepts long before the service is ready (the 24-agent report's root cause): Redis answers PING while LOADING and exits 0 on NOAUTH, an agent's port is open while its models load",
        fix: "check what ready means: test: [\"CMD\", \"/hc/healthcheck\", \"ready://NAME?replica=self\"] for an agent, redis://localhost:6379 or nats://localhost:4222?jetstream=true for the stores",
    },
    Rule {
        id: "HC002",
        name: "shell-form-without-shell",
        severity: Severity::Error,
        what: "a shell-form test (CMD-SHELL, a string, sh -c) in an image with no /bin/sh (scratch, distroless, the official nats image, this project's images)",
        why: "Docker cannot exec /bin/sh: every check fails with exit -1 and the container never becomes healthy",
        fix: "use the exec form with a static probe: test: [\"CMD\", \"/hc/healthcheck\", \"http://localhost:8080/health\"]",
    },
    Rule {
        id: "HC003",
        name: "missing-tool",
        severity: Severity::Error,
        what: "a test runs a tool the image does not have (curl in redis, nats, alpine, distroless, slim images)",
        why: "the exec fails (exit -1, or 127 from the shell): the check can never pass",
        fix: "inject a static probe (healthcheck install /hc into a shared volume) and use it: test: [\"CMD\", \"/hc/healthcheck\", \"http://localhost:8080/health\"]",
    },
    Rule {
        id: "HC004",
        name: "probe-timeout-not-below-orchestrator",
        severity: Severity::Error,
        what: "the probe's own timeout (--timeout, curl -m, wget -T, timeout N) is at or above the orchestrator's (Docker timeout, default 30s; Kubernetes timeoutSeconds, default 1s)",
        why: "the orchestrator kills the probe first (SIGKILL): the check fails with \"Health check exceeded timeout\" and no reason, instead of the probe saying which target hung",
        fix: "keep the probe's deadline below the orchestrator's: healthcheck --timeout 800ms with timeoutSeconds: 2 (or timeout: 2s)",
    },
    Rule {
        id: "HC005",
        name: "secret-in-check-argv",
        severity: Severity::Error,
        what: "a password or token on a check's command line (URL userinfo, -a, --password, -u user:pass, Authorization headers, password= in a query)",
        why: "the test's argv is shown by docker inspect, in exec events and in ps: the secret leaks to anyone who can read them",
        fix: "read it from a file: REDIS_PASSWORD_FILE=/run/secrets/redis (or ?password_file=/run/secrets/redis) with test: [\"CMD\", \"/hc/healthcheck\", \"redis://localhost:6379\"]",
    },
    Rule {
        id: "HC006",
        name: "secret-in-environment",
        severity: Severity::Error,
        what: "a secret in a plain environment value (a literal is an error, ${VAR} or a pass-through a warning)",
        why: "environment values are part of the container's configuration: docker inspect and kubectl get pod show them; a literal is also committed with the file",
        fix: "mount the secret as a file (Compose secrets:, a Kubernetes Secret volume) and pass its path: REDIS_PASSWORD_FILE: /run/secrets/redis; or valueFrom.secretKeyRef",
    },
    Rule {
        id: "HC007",
        name: "start-interval-without-start-period",
        severity: Severity::Warning,
        what: "start_interval set without a start_period",
        why: "Docker uses start_interval only during start_period: without one it is silently ignored (moby#49900) and start-up checks run at the slow interval",
        fix: "give it a start period: start_period: 120s with start_interval: 2s",
    },
    Rule {
        id: "HC008",
        name: "start-period-covers-no-check",
        severity: Severity::Warning,
        what: "a start_period shorter than the interval, with no start_interval",
        why: "the first check runs one interval after the start (on engines before 25, or without start_interval): a start period that ends sooner covers no check and does nothing; grace before unhealthy is start_period + interval x retries",
        fix: "make the start period cover the slow start (start_period: 120s) and check often during it (start_interval: 2s, Engine 25+), or drop it",
    },
    Rule {
        id: "HC009",
        name: "restart-on-shared-dependency",
        severity: Severity::Error,
        what: "a Kubernetes liveness or startup probe, or the check of a heal-labelled container, that depends on a shared dependency (redis://, nats://, ready:// through the store, another service's endpoint)",
        why: "when the dependency blips, every container that checks it fails at once and is restarted together: a restart storm that makes the outage worse and fixes nothing",
        fix: "check dependencies in readiness only; liveness checks the container's own progress: [\"/hc/healthcheck\", \"--timeout\", \"800ms\", \"ready://NAME?replica=self&store=file&state=any\"]",
    },
    Rule {
        id: "HC010",
        name: "depends-on-without-condition",
        severity: Severity::Warning,
        what: "depends_on without a condition on a service that has a healthcheck",
        why: "the short form means service_started: the dependent starts before its dependency is ready, and fails or retries in cascade",
        fix: "depends_on: { db: { condition: service_healthy } }, or gate in the entrypoint: [\"/hc/healthcheck\", \"wait\", \"--timeout\", \"120s\", \"redis://redis:6379\", \"--\", \"/app\"]",
    },
    Rule {
        id: "HC011",
        name: "service-healthy-without-healthcheck",
        severity: Severity::Error,
        what: "condition: service_healthy on a service that has no healthcheck (or a disabled one)",
        why: "Compose refuses to start the stack (\"dependency has no healthcheck\"), or waits on a check that never runs",
        fix: "give the dependency a check: healthcheck: { test: [\"CMD\", \"/hc/healthcheck\", \"redis://localhost:6379\"], interval: 30s, timeout: 2s }",
    },
    Rule {
        id: "HC012",
        name: "self-target",
        severity: Severity::Error,
        what: "a service responsible for its own restart or readiness: a healer labelled for healing, a check that kills or restarts its own container, a wait for its own ready signal, a dependency on itself",
        why: "an agent that restarts itself on its own alert loops forever, and one that waits for itself never starts (the field's self-restart paradox)",
        fix: "let an outside observer decide (the sidecar with --heal, or Kubernetes liveness); remove the label from the healer, the kill from the check, its own name from the wait",
    },
    Rule {
        id: "HC013",
        name: "unknown-heal-label",
        severity: Severity::Warning,
        what: "a healthcheck.heal.* label the sidecar does not know (a typo)",
        why: "the sidecar ignores it: the setting meant for this container silently does not apply",
        fix: "use one of healthcheck.heal, .after, .backoff, .backoff-max, .budget, .window, .release-after, .earn-back-after, .start-grace",
    },
    Rule {
        id: "HC014",
        name: "unreadable-heal-label",
        severity: Severity::Error,
        what: "a heal label whose value the sidecar cannot use (opt-in other than true, a duration that does not parse or is zero, a budget that is not a whole number, backoff-max below backoff)",
        why: "the sidecar leaves such a container alone entirely (and only says so in its log): the opt-in does nothing",
        fix: "healthcheck.heal: \"true\", durations such as 10s or 5m, budget a whole number",
    },
    Rule {
        id: "HC015",
        name: "heal-label-never-watched",
        severity: Severity::Warning,
        what: "heal labels that no healer will act on: tuning labels without the opt-in, labels under deploy.labels, an opted-in service with no check and no ready signal, no healer in these files",
        why: "the container looks protected and is not: nothing will ever restart it",
        fix: "put healthcheck.heal: \"true\" under the service's labels:, give it a check or a ready signal, and run healthcheck-sidecar --heal in the stack",
    },
];

/// The rule with this id.
pub(crate) fn rule(id: &str) -> &'static Rule {
    RULES.iter().find(|r| r.id == id).unwrap_or(&RULES[0])
}

/// Builds a finding with the rule's own severity and fix.
pub(crate) fn finding(id: &str, unit: &Unit, key: &str, at: &Location, message: String) -> Finding {
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

/// Runs every family.
pub(crate) fn check(project: &Project) -> Vec<Finding> {
    let mut out = Vec::new();
    port::check(project, &mut out);
    image::check(project, &mut out);
    timeout::check(project, &mut out);
    secret::check(project, &mut out);
    timing::check(project, &mut out);
    dependency::check(project, &mut out);
    selfref::check(project, &mut out);
    heal::check(project, &mut out);
    out
}

/// The key a check is written under (`healthcheck`, `livenessProbe`; the Dockerfile's).
pub(crate) fn check_key(check: &Check) -> String {
    if check.from_image {
        "HEALTHCHECK (Dockerfile)".into()
    } else {
        check.role.key().into()
    }
}

/// One thing a check talks to: a URL, or a host named by a tool's flag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Contact {
    pub(crate) scheme: String,
    pub(crate) host: String,
    /// The URL's query, for `store=file` and secrets.
    pub(crate) query: String,
    pub(crate) path: String,
}

impl Contact {
    /// True for this container itself.
    pub(crate) fn is_local(&self) -> bool {
        matches!(
            self.host.as_str(),
            "" | "localhost" | "127.0.0.1" | "::1" | "[::1]" | "0.0.0.0"
        )
    }
}

/// Parses `scheme://[userinfo@]host[:port][/path][?query]` loosely (hosts, never secrets).
pub(crate) fn parse_url(word: &str) -> Option<Contact> {
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
pub(crate) fn contacts(check: &Check) -> Vec<Contact> {
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
pub(crate) fn probe_runs(check: &Check) -> Vec<Vec<String>> {
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
pub(crate) fn healers(project: &Project) -> Vec<(&Unit, &'static str)> {
    project
        .units
        .iter()
        .filter_map(|u| healer_kind(u).map(|k| (u, k)))
        .collect()
}

/// Which healer a unit runs, if any.
pub(crate) fn healer_kind(u: &Unit) -> Option<&'static str> {
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
pub(crate) fn with_severity(mut f: Finding, severity: Severity) -> Finding {
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
