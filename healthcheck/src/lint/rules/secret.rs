//! HC005 and HC006: secrets on a check's command line and in plain environment values. A
//! finding names the key, the flag or the argument's position, never the value.

use super::super::finding::{Finding, Severity};
use super::super::model::{Platform, Project, commands, is_assignment, program};
use super::common::{check_key, finding, with_severity};

pub(super) fn check(project: &Project, out: &mut Vec<Finding>) {
    for unit in &project.units {
        for c in &unit.checks {
            let key = format!("{}.test", check_key(c));
            if let Some(how) = secret_in_argv(&c.words()) {
                out.push(finding(
                    "HC005",
                    unit,
                    &key,
                    &c.at,
                    format!("{}: {key}: a secret on the command line ({how}): docker inspect and ps show it", unit.name),
                ));
            }
        }
        for e in &unit.env {
            let url_secret = e.value.as_deref().is_some_and(url_has_password);
            if !(secret_name(&e.name) || url_secret) {
                continue;
            }
            let key = format!("environment.{}", e.name);
            let (severity, how) = match (&e.raw, &e.value) {
                (None, _) if unit.platform == Platform::Kubernetes => continue,
                (None, _) => (
                    Severity::Warning,
                    "passed through from the host's environment",
                ),
                (Some(raw), Some(value)) => {
                    if !url_secret && !looks_like_secret_value(value) {
                        continue;
                    }
                    if raw.contains('$') {
                        (Severity::Warning, "set from a variable")
                    } else {
                        (Severity::Error, "written in the file")
                    }
                }
                _ => continue,
            };
            let what = if url_secret {
                "a URL with a password"
            } else {
                "a secret"
            };
            out.push(with_severity(
                finding(
                    "HC006",
                    unit,
                    &key,
                    &e.at,
                    format!(
                        "{}: {key}: {what} in a plain environment value ({how}): {} shows it",
                        unit.name,
                        match unit.platform {
                            Platform::Compose => "docker inspect",
                            Platform::Kubernetes => "kubectl get pod -o yaml",
                        }
                    ),
                ),
                severity,
            ));
        }
    }
}

/// True when a variable's name says it holds a secret (and not a path to one).
fn secret_name(name: &str) -> bool {
    let upper = name.to_ascii_uppercase();
    let tokens: Vec<&str> = upper.split(['_', '-', '.']).collect();
    let last = tokens.last().copied().unwrap_or("");
    if matches!(
        last,
        "FILE"
            | "PATH"
            | "DIR"
            | "FILENAME"
            | "LENGTH"
            | "MIN"
            | "MAX"
            | "ENABLED"
            | "REQUIRED"
            | "POLICY"
            | "ALGORITHM"
            | "TTL"
            | "EXPIRY"
            | "TYPE"
            | "METHOD"
            | "NAME"
            | "USER"
            | "USERNAME"
            | "HEADER"
            | "URL"
            | "HOST"
            | "PORT"
            | "ID"
            | "MODE"
            | "SIZE"
    ) {
        return false;
    }
    tokens.iter().any(|t| {
        matches!(
            *t,
            "PASSWORD"
                | "PASSWD"
                | "PASS"
                | "PWD"
                | "SECRET"
                | "TOKEN"
                | "APIKEY"
                | "CREDENTIALS"
                | "CREDENTIAL"
        )
    }) || upper.contains("API_KEY")
        || upper.contains("ACCESS_KEY")
        || upper.contains("PRIVATE_KEY")
        || upper.contains("SECRET_KEY")
}

/// A value that could be a secret (not empty, not a yes/no switch, not a path).
fn looks_like_secret_value(v: &str) -> bool {
    let v = v.trim();
    !(v.is_empty()
        || v.starts_with('/')
        || matches!(
            v.to_ascii_lowercase().as_str(),
            "true" | "false" | "yes" | "no" | "0" | "1" | "on" | "off"
        ))
}

/// True for `scheme://user:password@host` or a NATS `nats://token@host`.
fn url_has_password(word: &str) -> bool {
    let Some((scheme, rest)) = word.split_once("://") else {
        return false;
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let Some((userinfo, _)) = authority.rsplit_once('@') else {
        return false;
    };
    match userinfo.split_once(':') {
        Some((_, pw)) => !pw.is_empty(),
        // `nats://NAME@host` is a user (password from a file) or a token: only a long,
        // random-looking one is taken for a token.
        None => {
            matches!(scheme, "nats" | "tls")
                && userinfo.len() >= 16
                && userinfo.chars().any(|c| c.is_ascii_digit())
                && userinfo.chars().any(|c| c.is_ascii_alphabetic())
        }
    }
}

/// How a command line carries a secret, when it does (the flag, never the value).
fn secret_in_argv(words: &[String]) -> Option<String> {
    for (i, w) in words.iter().enumerate() {
        if url_has_password(w) {
            return Some(format!("a password in the URL of argument {}", i + 1));
        }
        if let Some((_, query)) = w.split_once("://").and_then(|(_, r)| r.split_once('?')) {
            for pair in query.split('&') {
                let k = pair.split('=').next().unwrap_or("").to_ascii_lowercase();
                if matches!(
                    k.as_str(),
                    "password"
                        | "pass"
                        | "token"
                        | "access_token"
                        | "apikey"
                        | "api_key"
                        | "secret"
                        | "auth"
                ) {
                    return Some(format!("{k}= in the query of argument {}", i + 1));
                }
            }
        }
    }
    for cmd in commands(words) {
        for a in cmd.iter().take_while(|a| is_assignment(a)) {
            let name = a.split('=').next().unwrap_or("");
            if secret_name(name) || name == "REDISCLI_AUTH" {
                return Some(format!("{name}= before the command"));
            }
        }
        let Some((prog, args)) = program(&cmd) else {
            continue;
        };
        for (i, a) in args.iter().enumerate() {
            let next_is_value = args.get(i + 1).is_some();
            let flag = match (prog, a.as_str()) {
                ("redis-cli", "-a" | "--pass") if next_is_value => Some(a.clone()),
                ("curl", "-u" | "--user") if args.get(i + 1).is_some_and(|v| v.contains(':')) => {
                    Some(a.clone())
                }
                ("curl" | "wget", "-H" | "--header")
                    if args.get(i + 1).is_some_and(|v| {
                        let v = v.to_ascii_lowercase();
                        v.starts_with("authorization")
                            || v.contains("token")
                            || v.contains("api-key")
                    }) =>
                {
                    Some(format!("{a} Authorization"))
                }
                ("mysqladmin" | "mysql", p) if p.starts_with("-p") && p.len() > 2 => {
                    Some("-p".into())
                }
                (_, p) if p.starts_with("--password=") || p.starts_with("--token=") => {
                    Some(p.split('=').next().unwrap_or("").to_string())
                }
                (_, "--password" | "--token" | "--auth") if next_is_value => Some(a.clone()),
                _ => None,
            };
            if let Some(flag) = flag {
                return Some(format!("{prog} {flag}"));
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(s: &[&str]) -> Vec<String> {
        s.iter().map(|x| x.to_string()).collect()
    }

    /// Each way a secret reaches argv is named without its value.
    #[test]
    fn argv_secrets() {
        let got = secret_in_argv(&w(&["redis-cli", "-a", "hunter2", "ping"])).unwrap();
        assert!(got.contains("-a") && !got.contains("hunter2"));
        assert!(
            secret_in_argv(&w(&["/hc/healthcheck", "redis://:hunter2@localhost:6379"])).is_some()
        );
        assert!(
            secret_in_argv(&w(&[
                "/hc/healthcheck",
                "nats://s3cr3tT0kenAbcdefgh@localhost:4222"
            ]))
            .is_some()
        );
        assert!(
            secret_in_argv(&w(&["curl", "-H", "Authorization: Bearer x", "http://l/"])).is_some()
        );
        assert!(secret_in_argv(&w(&["http://api/h?access_token=x"])).is_some());
        assert!(
            secret_in_argv(&w(&[
                "/hc/healthcheck",
                "redis://localhost?password_file=/run/s"
            ]))
            .is_none()
        );
        assert!(secret_in_argv(&w(&["/hc/healthcheck", "redis://probe@localhost"])).is_none());
        assert!(secret_in_argv(&w(&["/hc/healthcheck", "nats://agents@nats:4222"])).is_none());
    }

    /// Secret names, and the names of paths to secrets.
    #[test]
    fn names() {
        assert!(secret_name("POSTGRES_PASSWORD"));
        assert!(secret_name("OPENAI_API_KEY"));
        assert!(secret_name("NATS_TOKEN"));
        assert!(!secret_name("REDIS_PASSWORD_FILE"));
        assert!(!secret_name("TOKEN_TTL"));
        assert!(!secret_name("KEY_PREFIX"));
    }
}
