//! Targets: the URL grammar that picks a check and carries its options.
//!
//! Parsing is strict (an unknown option or scheme is an error naming it) because a typo in a
//! HEALTHCHECK line would otherwise silently check something weaker than intended.

use std::fmt;
use std::path::PathBuf;

use url::Url;

use crate::checks::{http, nats, ready, redis, tcp};
use crate::secret::{self, Secret};

/// One thing to check, parsed from a URL such as `redis://cache:6379?role=master`.
#[derive(Debug, Clone)]
pub struct Target {
    /// The URL as printed: secrets replaced by `***`.
    display: String,
    pub(crate) kind: Kind,
}

/// Which check a target runs, with its validated options.
#[derive(Debug, Clone)]
pub(crate) enum Kind {
    Redis(redis::RedisTarget),
    Nats(nats::NatsTarget),
    Http(http::HttpTarget),
    Tcp(tcp::TcpTarget),
    Ready(ready::ReadyTarget),
}

/// Why a target could not be parsed; the message names the target (redacted) and the problem.
#[derive(Debug, thiserror::Error)]
#[error("{target}: {problem}")]
pub struct TargetError {
    target: String,
    problem: String,
}

impl TargetError {
    pub(crate) fn new(target: &str, problem: impl Into<String>) -> TargetError {
        TargetError {
            target: secret::redact_url(target),
            problem: problem.into(),
        }
    }
}

impl Target {
    /// Parses one target after expanding `${NAME}` references from the environment.
    ///
    /// ```
    /// let t = healthcheck::Target::parse("redis://cache:6379?role=master").unwrap();
    /// assert_eq!(t.to_string(), "redis://cache:6379?role=master");
    /// ```
    pub fn parse(raw: &str) -> Result<Target, TargetError> {
        Target::parse_with(raw, &|name| std::env::var(name).ok())
    }

    /// Like [`Target::parse`], looking variables up with `env` (tests, and `ready-signal`'s flags).
    pub fn parse_with(
        raw: &str,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Target, TargetError> {
        let raw = raw.trim();
        let expanded = expand(raw, env).map_err(|p| TargetError::new(raw, p))?;
        let err = |p: String| TargetError::new(raw, p);
        // A bare `host:port` is a common slip, and would parse as a URL with scheme `host`.
        if !expanded.contains("://") {
            return Err(err("not a URL: write scheme://host:port (redis, rediss, nats, tls, http, https, tcp, ready)".into()));
        }
        // `scheme://user:pa/ss@host` is host `user` by URL rules, so the password would be used
        // as a host name and printed; HTTP URLs alone may hold an `@` after the host.
        if let Some((scheme, after)) = expanded.split_once("://")
            && !scheme.starts_with("http")
            && secret::stray_at(after).is_some()
        {
            return Err(err(
                "`@` after the host: percent-encode `/`, `?` and `#` in a password (%2F, %3F, %23)"
                    .into(),
            ));
        }
        let url = Url::parse(&expanded).map_err(|e| err(format!("not a valid URL: {e}")))?;
        let mut opts = Options::new(&url);
        let kind = match url.scheme() {
            "redis" | "rediss" => {
                Kind::Redis(redis::RedisTarget::from_url(&url, &mut opts, env).map_err(err)?)
            }
            "nats" | "tls" => {
                Kind::Nats(nats::NatsTarget::from_url(&url, &mut opts, env).map_err(err)?)
            }
            "http" | "https" => {
                Kind::Http(http::HttpTarget::from_url(&url, &mut opts).map_err(err)?)
            }
            "tcp" => Kind::Tcp(tcp::TcpTarget::from_url(&url, &mut opts).map_err(err)?),
            "ready" => {
                Kind::Ready(ready::ReadyTarget::from_url(&url, &mut opts, env).map_err(err)?)
            }
            other => {
                return Err(err(format!(
                    "unknown scheme `{other}` (expected redis, rediss, nats, tls, http, https, tcp or ready)"
                )));
            }
        };
        opts.finish().map_err(err)?;
        Ok(Target {
            display: secret::redact_url(&expanded),
            kind,
        })
    }

    /// A short name for the kind of check, as used in JSON output.
    pub fn check(&self) -> &'static str {
        match self.kind {
            Kind::Redis(_) => "redis",
            Kind::Nats(_) => "nats",
            Kind::Http(_) => "http",
            Kind::Tcp(_) => "tcp",
            Kind::Ready(_) => "ready",
        }
    }

    /// True for `ready://` targets, which `wait` can end early on NATS events.
    pub fn is_ready_signal(&self) -> bool {
        matches!(self.kind, Kind::Ready(_))
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.display)
    }
}

/// Expands `${NAME}` and `${NAME:-default}` from `env`; `$$` is a literal `$`.
///
/// Exec-form HEALTHCHECK has no shell, so the binary does the expansion itself. An unset
/// variable without a default is an error: silently checking `redis://:6379` would lie.
pub(crate) fn expand(raw: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<String, String> {
    let mut out = String::with_capacity(raw.len());
    let mut rest = raw;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(body) = after.strip_prefix('{') {
            let end = body
                .find('}')
                .ok_or_else(|| "unterminated `${` in target".to_string())?;
            let expr = &body[..end];
            let (name, default) = match expr.split_once(":-") {
                Some((n, d)) => (n, Some(d)),
                None => (expr, None),
            };
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Err(format!(
                    "`${{{expr}}}` is not a variable name (letters, digits, _)"
                ));
            }
            match (env(name).filter(|v| !v.is_empty()), default) {
                (Some(v), _) => out.push_str(&v),
                (None, Some(d)) => out.push_str(d),
                (None, None) => return Err(format!("environment variable {name} is not set")),
            }
            rest = &body[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    Ok(out)
}

/// The query options of one target; each check takes the ones it knows and
/// [`Options::finish`] rejects whatever is left, naming it.
#[derive(Debug)]
pub(crate) struct Options {
    pairs: Vec<(String, String)>,
}

impl Options {
    fn new(url: &Url) -> Options {
        Options {
            pairs: url
                .query_pairs()
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        }
    }

    /// Removes and returns option `name`; repeated options are an error.
    pub(crate) fn take(&mut self, name: &str) -> Result<Option<String>, String> {
        let mut found = None;
        let mut i = 0;
        while i < self.pairs.len() {
            if self.pairs[i].0 == name {
                let (_, v) = self.pairs.remove(i);
                if found.replace(v).is_some() {
                    return Err(format!("option `{name}` given twice"));
                }
            } else {
                i += 1;
            }
        }
        Ok(found)
    }

    pub(crate) fn take_bool(&mut self, name: &str) -> Result<bool, String> {
        match self.take(name)?.as_deref() {
            None | Some("false") | Some("0") | Some("no") => Ok(false),
            Some("") | Some("true") | Some("1") | Some("yes") => Ok(true),
            Some(other) => Err(format!(
                "option `{name}` must be true or false, not `{other}`"
            )),
        }
    }

    pub(crate) fn take_path(&mut self, name: &str) -> Result<Option<PathBuf>, String> {
        Ok(self.take(name)?.map(PathBuf::from))
    }

    /// A secret named by a `*_file` option, read now so a missing file fails at parse time.
    pub(crate) fn take_secret_file(&mut self, name: &str) -> Result<Option<Secret>, String> {
        match self.take_path(name)? {
            Some(path) => secret::read_file(&path).map(Some),
            None => Ok(None),
        }
    }

    /// Leaves the remaining options to the endpoint (HTTP query strings belong to the server).
    pub(crate) fn pass_through(&mut self) {
        self.pairs.clear();
    }

    fn finish(self) -> Result<(), String> {
        match self.pairs.first() {
            None => Ok(()),
            Some((k, _)) => Err(format!("unknown option `{k}`")),
        }
    }
}

/// Host and port of a network target, with the scheme's default port.
pub(crate) fn host_port(url: &Url, default_port: u16) -> Result<(String, u16), String> {
    let host = match url.host() {
        Some(url::Host::Ipv6(a)) => a.to_string(),
        Some(h) => h.to_string(),
        None => return Err("no host".into()),
    };
    if host.is_empty() {
        return Err("no host".into());
    }
    Ok((host, url.port().unwrap_or(default_port)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "HOST" => Some("cache".into()),
            "PW" => Some("s3cr3t-canary".into()),
            "EMPTY" => Some(String::new()),
            _ => None,
        }
    }

    #[test]
    fn expands_variables_defaults_and_dollars() {
        assert_eq!(
            expand("redis://${HOST}:6379", &env).unwrap(),
            "redis://cache:6379"
        );
        assert_eq!(expand("${MISSING:-x}/${EMPTY:-y}", &env).unwrap(), "x/y");
        assert_eq!(expand("a$$b$c", &env).unwrap(), "a$b$c");
        assert!(
            expand("${MISSING}", &env)
                .unwrap_err()
                .contains("MISSING is not set")
        );
        assert!(expand("${HOST", &env).unwrap_err().contains("unterminated"));
        assert!(
            expand("${a b}", &env)
                .unwrap_err()
                .contains("not a variable name")
        );
    }

    #[test]
    fn display_redacts_expanded_password() {
        let t = Target::parse_with("redis://:${PW}@${HOST}:6379", &env).unwrap();
        assert_eq!(t.to_string(), "redis://:***@cache:6379");
    }

    #[test]
    fn rejects_unknown_scheme_and_option_naming_them() {
        let e = Target::parse_with("mysql://db", &env)
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown scheme `mysql`"), "{e}");
        let e = Target::parse_with("tcp://db:1?colour=red", &env)
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown option `colour`"), "{e}");
        let e = Target::parse_with("db:6379", &env).unwrap_err().to_string();
        assert!(e.contains("not a URL"), "{e}");
    }

    #[test]
    fn error_for_bad_target_never_echoes_password() {
        let e = Target::parse_with("redis://:hunter2@cache:6379?nope=1", &env)
            .unwrap_err()
            .to_string();
        assert!(!e.contains("hunter2"), "{e}");
    }
}
