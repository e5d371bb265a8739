//! What both store URL grammars share: a URL of an allowed scheme, `host:port` with a default
//! port, and cutting a name for a message.

use url::Url;

use crate::error::Error;

/// Parses `url`, refusing a scheme outside `schemes` (naming the allowed ones).
pub(super) fn parse_url(url: &str, schemes: &[&str]) -> Result<Url, Error> {
    let parsed = Url::parse(url).map_err(|e| Error::Config(format!("not a URL ({e})")))?;
    if !schemes.contains(&parsed.scheme()) {
        let hint = if parsed.scheme() == "rediss" {
            " (TLS to the Redis store is not supported yet)"
        } else {
            ""
        };
        return Err(Error::Config(format!(
            "scheme `{}` is not one of {}{hint}",
            parsed.scheme(),
            schemes
                .iter()
                .map(|s| format!("{s}://"))
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    Ok(parsed)
}

/// `host:port` of a URL, with `default_port` when it names none.
pub(super) fn addr_of(url: &Url, default_port: u16) -> Result<String, Error> {
    let host = url
        .host_str()
        .filter(|h| !h.is_empty())
        .ok_or_else(|| Error::Config("the URL has no host".into()))?;
    Ok(format!("{host}:{}", url.port().unwrap_or(default_port)))
}

/// At most `max` bytes of `s`, cut at a character boundary.
pub(super) fn cut(s: &str, max: usize) -> &str {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}
