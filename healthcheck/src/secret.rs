//! Secrets (passwords, tokens, nkey seeds) and the redaction of everything we print.
//!
//! A HEALTHCHECK's command line and its output both end up in `docker inspect`, so secrets come
//! from files or the environment, and no printed URL or error ever carries one.

use std::fmt;
use std::path::Path;

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
/// The error names the file, never its contents.
pub(crate) fn read_file(path: &Path) -> Result<Secret, String> {
    let mut s = std::fs::read_to_string(path).map_err(|e| {
        format!(
            "cannot read secret file {}: {}",
            path.display(),
            io_reason(&e)
        )
    })?;
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
) -> Result<Option<Secret>, String> {
    if let Some(path) = env(&format!("{name}_FILE")).filter(|p| !p.is_empty()) {
        return read_file(Path::new(&path)).map(Some);
    }
    Ok(env(name).filter(|v| !v.is_empty()).map(Secret))
}

/// An I/O error without the path noise std adds ("No such file or directory (os error 2)").
pub(crate) fn io_reason(e: &std::io::Error) -> String {
    let s = e.to_string();
    match s.find(" (os error") {
        Some(i) => s[..i].to_lowercase(),
        None => s,
    }
}

/// A URL fit to print: any password in the userinfo becomes `***`, as do secret query options.
///
/// Works on strings that do not parse as URLs too (it is used on bad input in error messages).
pub fn redact_url(raw: &str) -> String {
    let Some(scheme_end) = raw.find("://") else {
        return redact_query(raw);
    };
    let after = &raw[scheme_end + 3..];
    let mut authority_end = after.find(['/', '?', '#']).unwrap_or(after.len());
    // A password holding an unencoded `/`, `?` or `#` ends the authority early by URL rules, so
    // the password would be printed as a host, path or option (found by fuzzing): then the
    // userinfo ends at the stray `@`. Only for HTTP can a valid URL hold an `@` after its host.
    let http = raw.starts_with("http");
    if let Some(at) = stray_at(after)
        && (!http || url::Url::parse(raw).is_err())
    {
        let host = &after[at + 1..];
        authority_end = at + 1 + host.find(['/', '?', '#']).unwrap_or(host.len());
    }
    let authority = &after[..authority_end];
    let redacted_authority = match authority.rfind('@') {
        Some(at) => {
            let userinfo = &authority[..at];
            let shown = match userinfo.split_once(':') {
                // `nats://TOKEN:@host`: no password, so the NATS check uses the user as a token.
                Some((_, "")) if raw.starts_with("nats") || raw.starts_with("tls") => {
                    "***".to_string()
                }
                Some((user, _)) => format!("{user}:***"),
                // `nats://TOKEN@host`: a lone userinfo on NATS is a token.
                None if raw.starts_with("nats") || raw.starts_with("tls") => "***".to_string(),
                None => userinfo.to_string(),
            };
            format!("{shown}@{}", &authority[at + 1..])
        }
        None => authority.to_string(),
    };
    let rest = redact_query(&after[authority_end..]);
    format!("{}://{redacted_authority}{rest}", &raw[..scheme_end])
}

/// In the part of a URL after `scheme://`, an `@` that is not in the authority by URL rules and
/// not inside an option value (`password_file=/run/a@b`): the end of a userinfo whose password
/// holds an unencoded `/`, `?` or `#`.
pub(crate) fn stray_at(after: &str) -> Option<usize> {
    let authority_end = after.find(['/', '?', '#']).unwrap_or(after.len());
    if after[..authority_end].contains('@') {
        return None;
    }
    let value_start = after[authority_end..]
        .find('=')
        .map_or(after.len(), |i| authority_end + i);
    after[..value_start].rfind('@')
}

/// Query options whose value is itself a secret (not a path to one).
const SECRET_OPTIONS: [&str; 4] = ["password", "token", "nkey", "pass"];

fn redact_query(s: &str) -> String {
    let Some(q) = s.find('?') else {
        return s.to_string();
    };
    let (head, query) = s.split_at(q + 1);
    let parts: Vec<String> = query
        .split('&')
        .map(|kv| match kv.split_once('=') {
            Some((k, _)) if SECRET_OPTIONS.contains(&k.to_ascii_lowercase().as_str()) => {
                format!("{k}=***")
            }
            _ => kv.to_string(),
        })
        .collect();
    format!("{head}{}", parts.join("&"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_passwords_tokens_and_secret_options() {
        assert_eq!(redact_url("redis://u:pw@h:1/0"), "redis://u:***@h:1/0");
        assert_eq!(redact_url("redis://:pw@h"), "redis://:***@h");
        assert_eq!(redact_url("nats://tok@h:4222"), "nats://***@h:4222");
        assert_eq!(redact_url("redis://user@h"), "redis://user@h");
        assert_eq!(
            redact_url("http://h/p?token=abc&x=1"),
            "http://h/p?token=***&x=1"
        );
        assert_eq!(redact_url("redis://u:p@ss@h"), "redis://u:***@h");
        assert_eq!(redact_url("garbage:pw@"), "garbage:pw@");
    }

    #[test]
    fn secret_debug_is_redacted() {
        assert_eq!(format!("{:?}", Secret::new("canary")), "Secret(***)");
    }

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
        let e = read_file(Path::new("/nonexistent/pw")).unwrap_err();
        assert!(
            e.contains("/nonexistent/pw") && e.contains("no such file"),
            "{e}"
        );
    }
}
