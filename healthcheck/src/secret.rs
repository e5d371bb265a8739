//! Secrets (passwords, tokens, nkey seeds) and the redaction of every URL we print.
//!
//! A HEALTHCHECK's command line and its output both end up in `docker inspect`, so secrets come
//! from files or the environment, and no printed URL or error ever carries one. Redaction works
//! on the parsed URL: what does not parse is never printed beyond its scheme.

use std::fmt;
use std::path::Path;

use url::Url;

use crate::failure::Failure;
use ready_signal::files::{self, SECRET_LIMIT};

/// A credential. `Debug` and `Display` never show it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a credential.
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    /// The credential itself, for handing to a client library.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// Reads a secret file (Docker and Kubernetes secrets), trimming one trailing newline.
/// The file must be regular and at most 64 KiB; the error names the file, never its contents.
pub(crate) fn read_file(path: &Path) -> Result<Secret, Failure> {
    let bytes = files::read_bounded(path, SECRET_LIMIT)
        .map_err(|e| Failure::config(format!("cannot read secret file {}: {e}", path.display())))?;
    let mut s = String::from_utf8(bytes)
        .map_err(|_| Failure::config(format!("secret file {}: not UTF-8 text", path.display())))?;
    if s.ends_with('\n') {
        s.pop();
        if s.ends_with('\r') {
            s.pop();
        }
    }
    Ok(Secret(s))
}

/// A secret from the environment: `NAME_FILE` (a path) wins over `NAME` (the value).
pub(crate) fn from_env(
    name: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Option<Secret>, Failure> {
    if let Some(path) = env(&format!("{name}_FILE")).filter(|p| !p.is_empty()) {
        return read_file(Path::new(&path)).map(Some);
    }
    Ok(env(name).filter(|v| !v.is_empty()).map(Secret))
}

/// A URL fit to print: passwords and tokens become `***`, and so does every query value except
/// those `harmless` names; `hide` (values expanded from the environment) are redacted in the
/// path and query. The fragment is dropped.
pub(crate) fn redact_parsed(url: &Url, harmless: &dyn Fn(&str) -> bool, hide: &[String]) -> String {
    let scheme = url.scheme();
    let mut out = format!("{scheme}://");
    // Userinfo is credentials whatever the scheme (a NATS or HTTP user alone is a token, a Redis
    // user names an ACL account): its shape is kept, its text never printed.
    let user = url.username();
    match (
        user.is_empty(),
        url.password().is_some_and(|p| !p.is_empty()),
    ) {
        (true, true) => out.push_str(":***@"),
        (false, true) => out.push_str("***:***@"),
        (false, false) => out.push_str("***@"),
        (true, false) => {}
    }
    match url.host() {
        Some(url::Host::Ipv6(a)) => out.push_str(&format!("[{a}]")),
        Some(h) => out.push_str(&h.to_string()),
        None => {}
    }
    if let Some(port) = url.port() {
        out.push_str(&format!(":{port}"));
    }
    let path = url.path();
    if path != "/" || url.query().is_some() {
        out.push_str(&crate::text::scrub(path, hide));
    }
    if let Some(query) = url.query() {
        out.push('?');
        out.push_str(&redact_query(query, harmless, hide));
    }
    out
}

/// Query items with their values replaced by `***` unless the option is harmless.
pub(crate) fn redact_query(
    query: &str,
    harmless: &dyn Fn(&str) -> bool,
    hide: &[String],
) -> String {
    let items: Vec<String> = crate::text::split_query(query)
        .map(|(key, _, raw)| match raw.split_once('=') {
            Some((k, v)) if harmless(&key) => format!("{k}={}", crate::text::scrub(v, hide)),
            Some((k, _)) => format!("{}=***", crate::text::scrub(k, hide)),
            // A bare item that is not a known flag may be a secret pasted without its name.
            None if harmless(&key) => crate::text::scrub(raw, hide),
            None => "***".to_string(),
        })
        .collect();
    items.join("&")
}

/// What may be printed of text that is not a valid target: its scheme (lower-cased) when it
/// looks like one, never anything else.
pub(crate) fn scheme_only(raw: &str) -> String {
    let end = raw.find(':').unwrap_or(0);
    let scheme = &raw[..end];
    let looks_like_scheme = !scheme.is_empty()
        && scheme.len() <= 16
        && scheme.starts_with(|c: char| c.is_ascii_alphabetic())
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    if looks_like_scheme {
        format!("{}://…", scheme.to_ascii_lowercase())
    } else {
        "target".into()
    }
}

/// A URL fit to print, from text that may not parse: the parsed URL redacted (every query value
/// hidden), or only its scheme.
pub fn redact_url(raw: &str) -> String {
    match Url::parse(raw) {
        Ok(url) if raw.contains("://") && stray_at(raw).is_none() => {
            redact_parsed(&url, &|_| false, &[])
        }
        _ => scheme_only(raw),
    }
}

/// In a target, the byte offset of an `@` that is not in the authority by URL rules: the end of a
/// userinfo whose password holds an unencoded `/`, `?` or `#`. For HTTP any `@` after the host
/// counts (an `@` in a path or query must be written `%40` in a target).
pub(crate) fn stray_at(raw: &str) -> Option<usize> {
    let start = raw.find("://")? + 3;
    let after = &raw[start..];
    let http = raw[..start].to_ascii_lowercase().starts_with("http");
    // For http(s), URL parsers treat `\` as `/`: it ends the authority too.
    let delimiters: &[char] = if http {
        &['/', '?', '#', '\\']
    } else {
        &['/', '?', '#']
    };
    let authority_end = after.find(delimiters).unwrap_or(after.len());
    // Option values may hold `@` (`password_file=/run/a@b`). A password's own `?`, `&` or `=`
    // may look like an option, so only the probe's option names open a value.
    // HTTP: an `@` anywhere after the host, query included, may end a password holding `/`, `?`,
    // `#` or `\`, so it must be written `%40` there.
    let end = if http {
        after.len()
    } else {
        let tail = &after[authority_end..];
        tail.match_indices(['?', '&'])
            .find_map(|(i, _)| {
                let (name, _) = tail[i + 1..].split_once('=')?;
                OPTION_NAMES.contains(&name).then_some(authority_end + i)
            })
            .unwrap_or(after.len())
    };
    if end <= authority_end {
        return None;
    }
    after[authority_end..end]
        .rfind('@')
        .map(|i| start + authority_end + i)
}

/// Every option name of the non-HTTP schemes (their values may hold an `@`).
const OPTION_NAMES: [&str; 14] = [
    "role",
    "db",
    "password_file",
    "ca_file",
    "server_name",
    "insecure",
    "jetstream",
    "token_file",
    "nkey_file",
    "creds_file",
    "min",
    "replica",
    "namespace",
    "status",
];

#[cfg(test)]
mod tests {
    use super::*;

    fn redact(s: &str) -> String {
        let url = Url::parse(s).unwrap();
        redact_parsed(&url, &|k| k == "role", &[])
    }

    /// Passwords, tokens and every query value not known harmless are hidden.
    #[test]
    fn redacts_passwords_tokens_and_query_values() {
        assert_eq!(redact("redis://u:pw@h:1/0"), "redis://***:***@h:1/0");
        assert_eq!(redact("redis://:pw@h"), "redis://:***@h");
        assert_eq!(redact("nats://tok@h:4222"), "nats://***@h:4222");
        assert_eq!(redact("NATS://tok@h:4222"), "nats://***@h:4222");
        assert_eq!(redact("redis://user@h"), "redis://***@h");
        // A bare item that is not a known flag may be a secret pasted without a name.
        assert_eq!(
            redact("http://h/p?token=abc&x=1&role=m&v"),
            "http://h/p?token=***&x=***&role=m&***"
        );
    }

    /// Text that does not parse prints as its scheme alone.
    #[test]
    fn unparseable_prints_scheme_only() {
        assert_eq!(redact_url("redis://u:p/ss@h"), "redis://…");
        assert_eq!(redact_url("Redis:/:pw@h"), "redis://…");
        assert_eq!(redact_url("garbage pw@"), "target");
        assert_eq!(stray_at("http://user:pw/with/slash@host/"), Some(25));
        assert!(stray_at("http://h/p?x=a@b").is_some());
        assert!(stray_at("http://M?M:pw@127.0.0.1:1/health").is_some());
        assert!(stray_at("http://M\\M:pw@127.0.0.1:1/health").is_some());
        assert_eq!(stray_at("http://u:p@h/p?x=a%40b"), None);
        assert_eq!(stray_at("redis://h?password_file=/a@b"), None);
        assert!(stray_at("nats://Tok/en+x=@h:4222").is_some());
        assert!(stray_at("nats://to?en=x@h:4222").is_some());
        assert!(stray_at("redis://u:p@s/s@host").is_some());
        assert_eq!(stray_at("redis://u:p@ss@host/0"), None);
    }

    /// `Debug` never shows the secret.
    #[test]
    fn secret_debug_is_redacted() {
        assert_eq!(format!("{:?}", Secret::new("canary")), "Secret(***)");
    }

    /// `NAME_FILE` wins over `NAME`, one newline is trimmed, a missing file is named.
    #[test]
    fn file_wins_over_value_and_newline_is_trimmed() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("pw");
        std::fs::write(&f, "from-file\n").unwrap();
        let path = f.display().to_string();
        let env = |n: &str| match n {
            "P_FILE" => Some(path.clone()),
            "P" => Some("from-env".to_string()),
            _ => None,
        };
        assert_eq!(from_env("P", &env).unwrap().unwrap().expose(), "from-file");
        let e = read_file(Path::new("/nonexistent/pw"))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("/nonexistent/pw") && e.contains("no such file"),
            "{e}"
        );
    }
}
