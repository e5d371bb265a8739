//! What the rules read: Compose services and Kubernetes containers in one shape ("units"), each
//! with its checks, environment, labels and dependencies, already interpolated, merged and
//! extended. A leaf module: the loaders build it, the rules and the cost line read it.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Duration;

/// Where something was written.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Location {
    /// The file, as given or found.
    pub file: PathBuf,
    /// 1-based line, 0 when unknown.
    pub line: u32,
}

/// Which orchestrator runs the unit, and so which defaults apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Platform {
    Compose,
    Kubernetes,
}

/// What a check is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    /// Docker's HEALTHCHECK (Compose `healthcheck:` or the image's own).
    Docker,
    Liveness,
    Readiness,
    Startup,
}

impl Role {
    /// The key that holds the check, as written in the file.
    pub(crate) fn key(self) -> &'static str {
        match self {
            Role::Docker => "healthcheck",
            Role::Liveness => "livenessProbe",
            Role::Readiness => "readinessProbe",
            Role::Startup => "startupProbe",
        }
    }
}

/// How a check runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Test {
    /// Exec form: an argv run without a shell.
    Exec(Vec<String>),
    /// Shell form (`CMD-SHELL`, a string `test:`): needs `/bin/sh` in the image.
    Shell(String),
    /// Disabled (`NONE`, `disable: true`).
    Disabled,
    /// Kubernetes `httpGet` (done by the kubelet, no exec).
    Http {
        host: Option<String>,
        port: String,
        path: String,
    },
    /// Kubernetes `tcpSocket`.
    Tcp { host: Option<String>, port: String },
    /// Kubernetes `grpc`.
    Grpc { port: String },
}

/// One health check with its timing, as written (None: the orchestrator's default).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Check {
    pub(crate) role: Role,
    pub(crate) test: Test,
    pub(crate) interval: Option<Duration>,
    pub(crate) timeout: Option<Duration>,
    pub(crate) retries: Option<u32>,
    pub(crate) start_period: Option<Duration>,
    pub(crate) start_interval: Option<Duration>,
    /// Where the check is written (the `healthcheck:` key, the probe's key, the Dockerfile).
    pub(crate) at: Location,
    /// True when it comes from the image's Dockerfile `HEALTHCHECK`, not from this file.
    pub(crate) from_image: bool,
}

impl Check {
    /// The interval in force (Docker 30 s, Kubernetes `periodSeconds` 10 s).
    pub(crate) fn interval_or_default(&self) -> Duration {
        self.interval.unwrap_or(match self.role {
            Role::Docker => Duration::from_secs(30),
            _ => Duration::from_secs(10),
        })
    }

    /// The timeout in force (Docker 30 s, Kubernetes `timeoutSeconds` 1 s).
    pub(crate) fn timeout_or_default(&self) -> Duration {
        self.timeout.unwrap_or(match self.role {
            Role::Docker => Duration::from_secs(30),
            _ => Duration::from_secs(1),
        })
    }

    /// The argv or the shell words of the test, for the rules that read commands.
    pub(crate) fn words(&self) -> Vec<String> {
        match &self.test {
            Test::Exec(argv) => argv.clone(),
            Test::Shell(s) => shell_words(s),
            _ => Vec::new(),
        }
    }

    /// True when the check runs a process in the container (exec or shell form).
    pub(crate) fn execs(&self) -> bool {
        matches!(self.test, Test::Exec(_) | Test::Shell(_))
    }
}

/// A dependency edge (`depends_on`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Dependency {
    pub(crate) service: String,
    /// None for the short syntax (`depends_on: [db]`), which means `service_started`.
    pub(crate) condition: Option<String>,
    pub(crate) at: Location,
}

/// An environment variable as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct EnvVar {
    pub(crate) name: String,
    /// The value after interpolation; None for a value taken from elsewhere (Kubernetes
    /// `valueFrom`, Compose's bare `NAME` passed through from the host).
    pub(crate) value: Option<String>,
    /// The value as written before interpolation (to tell a literal from `${VAR}`).
    pub(crate) raw: Option<String>,
    pub(crate) at: Location,
}

/// A label as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Label {
    pub(crate) key: String,
    pub(crate) value: String,
    pub(crate) at: Location,
    /// True for `deploy.labels` (the Swarm service's labels, never the container's).
    pub(crate) deploy: bool,
}

/// A Compose service or a Kubernetes container.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Unit {
    /// `web`, or `Deployment/worker` for a manifest's container (`Deployment/worker/sidecar`
    /// when the pod has several).
    pub(crate) name: String,
    /// The Compose service name, or the container's name: what a dependency names.
    pub(crate) service: String,
    pub(crate) platform: Platform,
    pub(crate) at: Location,
    pub(crate) image: Option<String>,
    /// The base image of the last stage of the Dockerfile this service builds, when readable.
    pub(crate) built_from: Option<String>,
    pub(crate) checks: Vec<Check>,
    pub(crate) env: Vec<EnvVar>,
    pub(crate) labels: Vec<Label>,
    pub(crate) depends_on: Vec<Dependency>,
    /// Entrypoint then command, as one argv where known.
    pub(crate) argv: Vec<String>,
    /// True when it publishes ports to the host (`ports:`).
    pub(crate) publishes_ports: bool,
    /// How many containers run (`deploy.replicas`, `scale`, `spec.replicas`; default 1).
    pub(crate) replicas: u32,
    /// False when a profile that is not enabled keeps it from starting.
    pub(crate) active: bool,
    /// Rule ids silenced for this unit (comment or extension key).
    pub(crate) ignored: BTreeSet<String>,
    /// Other names the unit answers to (`hostname`, `container_name`, network aliases).
    pub(crate) aliases: Vec<String>,
    /// Paths mounted into the container (volumes, Kubernetes volumeMounts).
    pub(crate) mounts: Vec<String>,
}

impl Unit {
    /// The Docker check (Compose) or None.
    pub(crate) fn docker_check(&self) -> Option<&Check> {
        self.checks.iter().find(|c| c.role == Role::Docker)
    }

    /// True when a check that runs is configured (not disabled).
    pub(crate) fn has_docker_check(&self) -> bool {
        self.docker_check()
            .is_some_and(|c| !matches!(c.test, Test::Disabled))
    }

    /// A label's value.
    pub(crate) fn label(&self, key: &str) -> Option<&Label> {
        self.labels.iter().find(|l| l.key == key && !l.deploy)
    }

    /// An environment variable.
    pub(crate) fn env_var(&self, name: &str) -> Option<&EnvVar> {
        self.env.iter().find(|e| e.name == name)
    }

    /// True when the unit publishes an agent's ready signal (the ready-signal variables, or
    /// `ready-signal run` in its command).
    pub(crate) fn publishes_ready_signal(&self) -> bool {
        self.env.iter().any(|e| e.name.starts_with("READY_SIGNAL_"))
            || self
                .argv
                .iter()
                .any(|a| a.ends_with("ready-signal") || a == "ready-signal")
    }

    /// Every name another unit could use to reach this one.
    pub(crate) fn names(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.service.as_str()).chain(self.aliases.iter().map(String::as_str))
    }
}

/// Everything read from the inputs.
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct Project {
    pub(crate) units: Vec<Unit>,
    /// Profiles that were enabled (flags and `COMPOSE_PROFILES`).
    pub(crate) profiles: BTreeSet<String>,
    /// Comment lines that silence rules: file → line → rule ids (resolved by the loaders).
    pub(crate) notes: Vec<String>,
}

impl Project {
    /// The unit a Compose dependency names.
    pub(crate) fn service(&self, name: &str) -> Option<&Unit> {
        self.units
            .iter()
            .find(|u| u.platform == Platform::Compose && u.service == name)
    }
}

/// Splits a shell command into words: quotes removed, operators (`&&`, `||`, `;`, `|`) kept as
/// their own words. Enough to find commands and their flags; no expansion.
pub(crate) fn shell_words(s: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut quote: Option<char> = None;
    let mut in_word = false;
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => cur.push(c),
            None => match c {
                '\'' | '"' => {
                    quote = Some(c);
                    in_word = true;
                }
                '\\' => {
                    if let Some(n) = chars.next() {
                        cur.push(n);
                        in_word = true;
                    }
                }
                c if c.is_whitespace() => {
                    if in_word {
                        words.push(std::mem::take(&mut cur));
                        in_word = false;
                    }
                }
                ';' | '|' | '&' | '(' | ')' => {
                    if in_word {
                        words.push(std::mem::take(&mut cur));
                        in_word = false;
                    }
                    let mut op = c.to_string();
                    if (c == '|' || c == '&') && chars.peek() == Some(&c) {
                        op.push(c);
                        chars.next();
                    }
                    words.push(op);
                }
                _ => {
                    cur.push(c);
                    in_word = true;
                }
            },
        }
    }
    if in_word {
        words.push(cur);
    }
    words
}

/// The commands of a word list: each run of words between shell operators, with leading
/// `VAR=value` assignments and wrappers (`exec`, `timeout N`, `sh -c` bodies split again) kept
/// as written. The first word of each is the program.
pub(crate) fn commands(words: &[String]) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    let mut cur: Vec<String> = Vec::new();
    for w in words {
        if matches!(w.as_str(), ";" | "|" | "||" | "&&" | "&" | "(" | ")") {
            if !cur.is_empty() {
                out.push(std::mem::take(&mut cur));
            }
        } else {
            cur.push(w.clone());
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    // `sh -c "..."` inside an exec-form test: its body is commands too.
    let mut nested = Vec::new();
    for cmd in &out {
        if let [sh, flag, body, ..] = cmd.as_slice()
            && is_shell(sh)
            && flag == "-c"
        {
            nested.extend(commands(&shell_words(body)));
        }
    }
    out.extend(nested);
    out
}

/// True for a shell program (`sh`, `/bin/bash` ...).
pub(crate) fn is_shell(program: &str) -> bool {
    matches!(
        program.rsplit('/').next().unwrap_or(program),
        "sh" | "bash" | "ash" | "dash" | "zsh" | "ksh"
    )
}

/// The program of a command without its directory and leading `VAR=x` assignments or `exec`.
pub(crate) fn program(cmd: &[String]) -> Option<(&str, &[String])> {
    let mut i = 0;
    while i < cmd.len() && (cmd[i] == "exec" || is_assignment(&cmd[i])) {
        i += 1;
    }
    let first = cmd.get(i)?;
    Some((first.rsplit('/').next().unwrap_or(first), &cmd[i + 1..]))
}

/// `NAME=value` before a command.
pub(crate) fn is_assignment(word: &str) -> bool {
    word.split_once('=').is_some_and(|(k, _)| {
        !k.is_empty() && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
    })
}

/// A duration as Compose writes it (`1m30s`, `500ms`, `10s`); a bare number is seconds.
pub(crate) fn go_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    if s.is_empty() {
        return None;
    }
    if let Ok(n) = s.parse::<f64>() {
        return (n >= 0.0).then(|| Duration::from_secs_f64(n));
    }
    let mut total = 0f64;
    let mut rest = s;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if num_len == 0 {
            return None;
        }
        let n: f64 = rest[..num_len].parse().ok()?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_len] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return None,
        };
        total += n * scale;
        rest = &rest[unit_len..];
    }
    Some(Duration::from_secs_f64(total))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Shell words keep operators apart and drop quotes.
    #[test]
    fn words_and_commands() {
        let w = shell_words("curl -f 'http://x/a b' && nc -z db 5432||exit 1");
        assert_eq!(
            w,
            [
                "curl",
                "-f",
                "http://x/a b",
                "&&",
                "nc",
                "-z",
                "db",
                "5432",
                "||",
                "exit",
                "1"
            ]
        );
        let c = commands(&w);
        assert_eq!(c.len(), 3);
        assert_eq!(program(&c[1]).unwrap().0, "nc");
        let argv: Vec<String> = ["/bin/sh", "-c", "PGPASSWORD=x pg_isready -h db"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let c = commands(&argv);
        assert_eq!(program(&c[1]).unwrap().0, "pg_isready");
    }
}
