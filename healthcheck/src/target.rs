//! Targets: the URL grammar that picks a check and carries its options, and the dispatch to it.
//!
//! Parsing is strict (an unknown option or scheme is an error naming it) because a typo in a
//! HEALTHCHECK line would otherwise silently check something weaker than intended. Parsing comes
//! before printing: text that does not parse is shown as its scheme and a byte position only.

use std::fmt;

use url::Url;

use crate::checks::{cluster, http, nats, ready, redis, sentinel, tcp};
use crate::failure::Failure;
use crate::options::Options;
use crate::progress::Progress;
use crate::secret;

/// One thing to check, parsed from a URL such as `redis://cache:6379?role=master`.
///
/// `Debug` shows the redacted URL only: the parsed options hold secrets.
#[derive(Clone)]
pub struct Target {
    /// The URL as printed: secrets replaced by `***`.
    display: String,
    /// Every secret this target holds, to scrub from whatever a peer says back.
    secrets: Vec<String>,
    kind: Kind,
}

/// Which check a target runs, with its validated options.
#[derive(Debug, Clone)]
enum Kind {
    Redis(redis::RedisTarget),
    Sentinel(sentinel::SentinelTarget),
    Cluster(cluster::ClusterTarget),
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
    problem: Failure,
}

impl TargetError {
    /// The problem, as a configuration failure.
    pub fn failure(&self) -> &Failure {
        &self.problem
    }
}

/// The longest target accepted: far beyond any real URL, short enough that a pasted file or a
/// runaway variable fails at once instead of being resolved as a host name.
pub const MAX_TARGET_LEN: usize = 4096;

/// The longest host name DNS allows.
const MAX_HOST_LEN: usize = 253;

/// The schemes a target may have, compared case-insensitively.
const SCHEMES: &str = "redis, rediss, redis+sentinel, nats, tls, http, https, tcp or ready";

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
        let unparsed = |problem: String| TargetError {
            target: secret::scheme_only(raw),
            problem: Failure::config(problem),
        };
        if raw.len() > MAX_TARGET_LEN {
            return Err(unparsed(format!(
                "{} bytes: a target is at most {MAX_TARGET_LEN} bytes",
                raw.len()
            )));
        }
        // The URL parser silently drops tabs and newlines; a target holding one is a mistake.
        if let Some(at) = raw.find(|c: char| c.is_control()) {
            return Err(unparsed(format!("control character at byte {at}")));
        }
        let Expanded {
            text: expanded,
            from_env,
            masked,
        } = expand(raw, env).map_err(|problem| TargetError {
            target: secret::scheme_only(raw),
            problem,
        })?;
        let unparsed = |problem: String| TargetError {
            target: secret::scheme_only(raw),
            problem: Failure::config(problem),
        };
        // A bare `host:port` is a common slip, and would parse as a URL with scheme `host`.
        let Some(scheme_end) = expanded.find("://") else {
            return Err(unparsed(format!(
                "not a URL: write scheme://host:port (scheme {SCHEMES})"
            )));
        };
        let scheme = expanded[..scheme_end].to_ascii_lowercase();
        if !matches!(
            scheme.as_str(),
            "redis"
                | "rediss"
                | "redis+sentinel"
                | "nats"
                | "tls"
                | "http"
                | "https"
                | "tcp"
                | "ready"
        ) {
            return Err(unparsed(format!("unknown scheme (expected {SCHEMES})")));
        }
        // `scheme://user:pa/ss@host` is host `user` by URL rules, so the password would be used
        // as a host name and printed.
        if let Some(at) = secret::stray_at(&expanded) {
            return Err(unparsed(format!(
                "`@` at byte {at} after the host: percent-encode `/`, `?`, `#` and `@` in a password \
                 or path (%2F, %3F, %23, %40)"
            )));
        }
        // A seed list (`nats://a,b,c`, `redis+sentinel://a,b/name`) is not URL syntax: the URL is
        // parsed with the first host, and every host is parsed on its own.
        let (expanded, seeds) = if matches!(scheme.as_str(), "redis+sentinel" | "nats" | "tls") {
            split_seeds(&expanded, &scheme).map_err(unparsed)?
        } else {
            (expanded, Vec::new())
        };
        if matches!(scheme.as_str(), "redis" | "rediss")
            && split_seeds(&expanded, &scheme).is_ok_and(|(_, hosts)| hosts.len() > 1)
        {
            return Err(unparsed(
                "a host list is for redis+sentinel:// (and nats://); a Redis Cluster node is checked \
                 alone: redis://host:port?cluster=true"
                    .into(),
            ));
        }
        let masked = match seeds.len() {
            0 | 1 => masked,
            _ => split_seeds(&masked, &scheme)
                .map(|(m, _)| m)
                .unwrap_or(masked),
        };
        let url = Url::parse(&expanded).map_err(|e| unparsed(format!("not a valid URL: {e}")))?;
        // (`ready://` lists agent names where a host would be: no DNS limit there.)
        if scheme != "ready" && url.host_str().is_some_and(|h| h.len() > MAX_HOST_LEN) {
            return Err(unparsed(format!(
                "the host name is longer than {MAX_HOST_LEN} bytes"
            )));
        }
        if expanded.len() > MAX_TARGET_LEN {
            return Err(unparsed(format!(
                "{} bytes after expansion: a target is at most {MAX_TARGET_LEN} bytes",
                expanded.len()
            )));
        }
        let harmless = harmless_options(&scheme);
        // Printed from the masked expansion: a value from the environment that lands in the path
        // or query prints as `***` whatever characters it holds (a `?` in it would otherwise
        // split it between path and query, beyond the reach of a search for the whole value).
        let display = match Url::parse(&masked) {
            Ok(m) if masked != expanded => secret::redact_parsed(&m, &harmless, &from_env),
            _ => secret::redact_parsed(&url, &harmless, &from_env),
        };
        let display = with_seeds(display, &seeds);
        let mut secrets = from_env;
        if let Some(p) = url.password() {
            secrets.push(p.to_string());
            secrets.push(crate::options::percent_decode(p));
        }
        // A user name is a credential position too (a NATS user alone is a token; an ACL user
        // names an account an attacker would guess next): never printed, scrubbed from replies.
        if !url.username().is_empty() {
            secrets.push(url.username().to_string());
            secrets.push(crate::options::percent_decode(url.username()));
        }
        for (key, value, raw_item) in crate::options::split_query(url.query().unwrap_or_default()) {
            if !harmless(&key) && !value.is_empty() {
                secrets.push(value);
                if let Some((_, v)) = raw_item.split_once('=') {
                    secrets.push(v.to_string());
                }
            }
        }
        secrets.retain(|s| !s.is_empty());
        secrets.sort();
        secrets.dedup();
        let err = |problem: Failure| TargetError {
            target: display.clone(),
            problem: problem.map_message(|m| crate::text::scrub(m, &secrets)),
        };
        let mut opts = Options::new(&url);
        let kind = match scheme.as_str() {
            "redis" | "rediss" => {
                let in_cluster = opts.take_bool("cluster").map_err(err)?;
                let all_masters = opts.take_bool("all_masters").map_err(err)?;
                let node = redis::RedisTarget::from_url(&url, &mut opts, env).map_err(err)?;
                match (in_cluster, all_masters) {
                    (false, false) => Kind::Redis(node),
                    (false, true) => {
                        return Err(err(Failure::config("all_masters needs cluster=true")));
                    }
                    (true, _) => Kind::Cluster(cluster::ClusterTarget { node, all_masters }),
                }
            }
            "redis+sentinel" => Kind::Sentinel(
                sentinel::SentinelTarget::from_url(&url, seed_addrs(&seeds, 26379), &mut opts, env)
                    .map_err(err)?,
            ),
            "nats" | "tls" => Kind::Nats(
                nats::NatsTarget::from_url(&url, &mut opts, env)
                    .map_err(err)?
                    .with_seeds(seed_addrs(&seeds, 4222)),
            ),
            "http" | "https" => {
                Kind::Http(http::HttpTarget::from_url(&url, &mut opts).map_err(err)?)
            }
            "tcp" => Kind::Tcp(tcp::TcpTarget::from_url(&url, &mut opts).map_err(err)?),
            _ => Kind::Ready(ready::ReadyTarget::from_url(&url, &mut opts, env).map_err(err)?),
        };
        opts.finish().map_err(err)?;
        match &kind {
            Kind::Redis(r) => r.secrets(&mut secrets),
            Kind::Sentinel(r) => r.secrets(&mut secrets),
            Kind::Cluster(r) => r.secrets(&mut secrets),
            Kind::Nats(n) => n.secrets(&mut secrets),
            Kind::Ready(r) => r.secrets(&mut secrets),
            _ => {}
        }
        secrets.retain(|s| !s.is_empty());
        Ok(Target {
            display,
            secrets,
            kind,
        })
    }

    /// A short name for the kind of check, as used in JSON output.
    pub fn check(&self) -> &'static str {
        match self.kind {
            Kind::Redis(_) => "redis",
            Kind::Sentinel(_) => "redis-sentinel",
            Kind::Cluster(_) => "redis-cluster",
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

    /// For a `ready://` target whose store publishes events over NATS: that store and the agents
    /// to listen for. `wait` uses it to end early on a ready event.
    pub fn ready_events(&self) -> Option<(ready_signal::StoreConfig, Vec<ready_signal::Name>)> {
        let Kind::Ready(r) = &self.kind else {
            return None;
        };
        let store = r.store().ok()?;
        store.has_nats().then(|| (store, r.agents.clone()))
    }

    /// Text with every secret this target holds replaced by `***`.
    pub fn scrub(&self, text: &str) -> String {
        crate::text::scrub(text, &self.secrets)
    }

    /// Runs this target's check. `Ok` carries an optional detail worth printing (a role, a
    /// status code), `Err` the reason the target is unhealthy.
    pub(crate) async fn run(&self, progress: &Progress) -> Result<Option<String>, Failure> {
        match &self.kind {
            Kind::Redis(t) => redis::check(t, progress).await,
            Kind::Sentinel(t) => sentinel::check(t, progress).await,
            Kind::Cluster(t) => cluster::check(t, progress).await,
            Kind::Nats(t) => nats::check(t, progress).await,
            Kind::Http(t) => http::check(t, progress).await,
            Kind::Tcp(t) => tcp::check(t, progress).await,
            Kind::Ready(t) => ready::check(t, progress).await,
        }
    }

    #[cfg(test)]
    pub(crate) fn http_url(&self) -> Option<&Url> {
        match &self.kind {
            Kind::Http(h) => Some(h.url()),
            _ => None,
        }
    }
}

/// Query options whose values are printed: the probe's own options, none of which holds a
/// secret (see [`crate::options::TARGET_OPTIONS`]).
fn harmless_options(scheme: &str) -> impl Fn(&str) -> bool + use<> {
    let names = crate::options::options_of(scheme);
    move |k: &str| names.contains(&k)
}

impl fmt::Debug for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Target")
            .field("url", &self.display)
            .field("check", &self.check())
            .finish_non_exhaustive()
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.display)
    }
}

/// Splits a seed list out of a target's authority: the target with only the first host, and every
/// host as written (`a:1`, `[::1]:2`, `b`). Errors name the problem, never the text.
fn split_seeds(text: &str, scheme: &str) -> Result<(String, Vec<String>), String> {
    let start = scheme.len() + 3;
    let authority_end = text[start..]
        .find(['/', '?', '#'])
        .map_or(text.len(), |i| start + i);
    let hosts_start = text[start..authority_end]
        .rfind('@')
        .map_or(start, |i| start + i + 1);
    let hosts = &text[hosts_start..authority_end];
    if !hosts.contains(',') {
        return Ok((text.to_string(), vec![hosts.to_string()]));
    }
    let seeds: Vec<String> = hosts.split(',').map(str::to_string).collect();
    if seeds.iter().any(|s| s.is_empty()) {
        return Err("empty host in the seed list (write host1:port,host2:port)".into());
    }
    if seeds.len() > MAX_SEEDS {
        return Err(format!("more than {MAX_SEEDS} hosts in the seed list"));
    }
    for (i, seed) in seeds.iter().enumerate() {
        let parsed = Url::parse(&format!("{scheme}://{seed}"))
            .map_err(|e| format!("host {} of the seed list: {e}", i + 1))?;
        if parsed
            .host_str()
            .is_none_or(|h| h.is_empty() || h.len() > MAX_HOST_LEN)
            || !matches!(parsed.path(), "" | "/")
            || parsed.query().is_some()
        {
            return Err(format!("host {} of the seed list is not host:port", i + 1));
        }
    }
    let first = format!(
        "{}{}{}",
        &text[..hosts_start],
        seeds[0],
        &text[authority_end..]
    );
    Ok((first, seeds))
}

/// The most hosts a seed list may name.
const MAX_SEEDS: usize = 64;

/// The printed target with its whole seed list where the first host is (hosts hold no secret).
fn with_seeds(display: String, seeds: &[String]) -> String {
    if seeds.len() < 2 {
        return display;
    }
    let start = display.find("://").map_or(0, |i| i + 3);
    let end = display[start..]
        .find(['/', '?'])
        .map_or(display.len(), |i| start + i);
    let hosts_start = display[start..end]
        .rfind('@')
        .map_or(start, |i| start + i + 1);
    format!(
        "{}{}{}",
        &display[..hosts_start],
        seeds.join(","),
        &display[end..]
    )
}

/// Host and port of every seed (each parsed by [`split_seeds`] already).
fn seed_addrs(seeds: &[String], default_port: u16) -> Vec<(String, u16)> {
    seeds
        .iter()
        .filter_map(|s| {
            let u = Url::parse(&format!("redis://{s}")).ok()?;
            crate::options::host_port(&u, default_port).ok()
        })
        .collect()
}

/// A target after `${NAME}` expansion.
#[derive(Debug)]
pub(crate) struct Expanded {
    /// The target to parse.
    pub(crate) text: String,
    /// The values that came from the environment (redacted wherever printed).
    pub(crate) from_env: Vec<String>,
    /// The same expansion with every value that lands after the authority replaced by `***`.
    pub(crate) masked: String,
}

/// Expands `${NAME}` and `${NAME:-default}` from `env`; `$$` is a literal `$`.
///
/// Exec-form HEALTHCHECK has no shell, so the binary does the expansion itself. An unset
/// variable without a default is an error: silently checking `redis://:6379` would lie.
pub(crate) fn expand(raw: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<Expanded, Failure> {
    // Where the path or query starts in what was written: values expanded from there on are masked.
    let tail_start = raw
        .find("://")
        .map(|i| i + 3)
        .and_then(|start| raw[start..].find(['/', '?', '#']).map(|j| start + j))
        .unwrap_or(raw.len());
    let mut out = String::with_capacity(raw.len());
    let mut masked = String::with_capacity(raw.len());
    let mut from_env = Vec::new();
    let mut rest = raw;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        masked.push_str(&rest[..i]);
        let at = raw.len() - rest.len() + i;
        let after = &rest[i + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            masked.push('$');
            rest = tail;
        } else if let Some(body) = after.strip_prefix('{') {
            let end = body
                .find('}')
                .ok_or_else(|| Failure::config(format!("unterminated `${{` at byte {at}")))?;
            let expr = &body[..end];
            let (name, default) = match expr.split_once(":-") {
                Some((n, d)) => (n, Some(d)),
                None => (expr, None),
            };
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Err(Failure::config(format!(
                    "`${{` at byte {at} is not followed by a variable name (letters, digits, _)"
                )));
            }
            match (env(name).filter(|v| !v.is_empty()), default) {
                (Some(v), _) => {
                    out.push_str(&v);
                    masked.push_str(if at >= tail_start { "***" } else { &v });
                    from_env.push(v);
                }
                (None, Some(d)) => {
                    out.push_str(d);
                    masked.push_str(d);
                }
                (None, None) => {
                    return Err(Failure::config(format!(
                        "environment variable {name} is not set"
                    )));
                }
            }
            rest = &body[end + 1..];
        } else {
            out.push('$');
            masked.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    masked.push_str(rest);
    Ok(Expanded {
        text: out,
        from_env,
        masked,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "HOST" => Some("cache".into()),
            "PW" => Some("s3cr3t-canary".into()),
            "Q" => Some("a?b&c=d/e".into()),
            "EMPTY" => Some(String::new()),
            _ => None,
        }
    }

    /// `${NAME}`, defaults and `$$` expand; mistakes are errors naming the variable.
    #[test]
    fn expands_variables_defaults_and_dollars() {
        assert_eq!(
            expand("redis://${HOST}:6379", &env).unwrap().text,
            "redis://cache:6379"
        );
        assert_eq!(
            expand("${MISSING:-x}/${EMPTY:-y}", &env).unwrap().text,
            "x/y"
        );
        assert_eq!(expand("a$$b$c", &env).unwrap().text, "a$b$c");
        assert!(
            expand("${MISSING}", &env)
                .unwrap_err()
                .message()
                .contains("MISSING is not set")
        );
        assert!(
            expand("${HOST", &env)
                .unwrap_err()
                .message()
                .contains("unterminated")
        );
        assert!(
            expand("${a b}", &env)
                .unwrap_err()
                .message()
                .contains("not followed by a variable name")
        );
    }

    /// `Debug` shows no secret either.
    #[test]
    fn debug_is_redacted() {
        let t = Target::parse_with("http://u:hunter2@h/p?token=hunter3", &env).unwrap();
        let d = format!("{t:?}");
        assert!(!d.contains("hunter"), "{d}");
    }

    /// A password or path segment that came from the environment is never printed.
    #[test]
    fn display_redacts_expanded_values() {
        let t = Target::parse_with("redis://:${PW}@${HOST}:6379", &env).unwrap();
        assert_eq!(t.to_string(), "redis://:***@cache:6379");
        let t = Target::parse_with("http://${HOST}/h/${PW}/x", &env).unwrap();
        assert_eq!(t.to_string(), "http://cache/h/***/x");
        let t = Target::parse_with("http://${HOST}/h/${Q}", &env).unwrap();
        assert_eq!(t.to_string(), "http://cache/h/***");
        let t = Target::parse_with("http://u:${PW}@${HOST}/?k=${Q}", &env).unwrap();
        assert_eq!(t.to_string(), "http://***:***@cache/?k=***");
    }

    /// A huge target or host name is a config error at once, naming no text.
    #[test]
    fn huge_target_and_host_are_config_errors() {
        let e = Target::parse_with(&format!("redis://{}:6379", "h".repeat(300)), &env).unwrap_err();
        assert!(
            e.failure().is_config() && e.to_string().contains("longer than 253"),
            "{e}"
        );
        let e = Target::parse_with(&format!("redis://h:1?db={}", "1".repeat(5000)), &env)
            .unwrap_err()
            .to_string();
        assert!(e.contains("at most 4096 bytes") && e.len() < 200, "{e}");
    }

    /// Unknown schemes and options are named; schemes compare case-insensitively.
    #[test]
    fn rejects_unknown_scheme_and_option_naming_them() {
        let e = Target::parse_with("mysql://db", &env)
            .unwrap_err()
            .to_string();
        assert!(e.contains("mysql://…: unknown scheme"), "{e}");
        let e = Target::parse_with("tcp://db:1?colour=red", &env)
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown option (option 1 of the query"), "{e}");
        // A bare unknown item may be a secret pasted without a name: printed nowhere.
        let e = Target::parse_with("tcp://db:1?Zk3sEcReT9", &env)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("unknown option") && !e.contains("Zk3sEcReT9"),
            "{e}"
        );
        let e = Target::parse_with("db:6379", &env).unwrap_err().to_string();
        assert!(e.contains("not a URL"), "{e}");
        let t = Target::parse_with("Redis://:pw@h", &env).unwrap();
        assert_eq!(t.to_string(), "redis://:***@h");
    }

    /// No error ever echoes a password, whether or not the target parses.
    #[test]
    fn error_for_bad_target_never_echoes_password() {
        for bad in [
            "redis://:hunter2@cache:6379?nope=1",
            "redis:/:hunter2@h",
            "http://user:hunter2/with/slash@host/",
            "NATS://u:hun/ter2@h",
            "redis://:hunter2@h:99999",
        ] {
            let e = Target::parse_with(bad, &env).unwrap_err().to_string();
            assert!(
                !e.to_lowercase().contains("hunter2") && !e.contains("ter2"),
                "{e}"
            );
        }
    }
}
