//! Text that reaches the output: cut to a size, kept on one line, and scrubbed of secrets; and
//! the percent-decoding of URL parts. A leaf module: peers and users control much of what is
//! printed, so every path goes here.

/// `s` cut to at most `max` bytes at a character boundary, with `…` when cut.
pub(crate) fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

/// One line: control characters (newlines, escape sequences, DEL, C1) escaped as `\n`, `\x1b`...
pub fn one_line(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() || matches!(c, '\u{2028}' | '\u{2029}') => {
                let n = c as u32;
                if n <= 0xff {
                    out.push_str(&format!("\\x{n:02x}"));
                } else {
                    out.push_str(&format!("\\u{{{n:x}}}"));
                }
            }
            c => out.push(c),
        }
    }
    out
}

/// Secrets shorter than this are not searched for in text (they stay redacted where the target
/// is printed): a query value `1` would hide every `1` of an address or a duration, and a secret
/// of three characters protects nothing.
const MIN_SCRUBBED: usize = 4;

/// Secrets this long or longer are also scrubbed piecewise: any run of [`PIECE`] characters
/// found in one is hidden (a server may quote only a prefix: Redis cuts quoted args at 128 bytes).
const PIECE: usize = 6;

/// `text` with every secret hidden: each occurrence (compared case-insensitively, a server may
/// upper-case what it quotes, and also percent-encoded) becomes `***`, and so does any run of
/// text sharing six or more consecutive characters with a secret.
pub fn scrub<S: AsRef<str>>(text: &str, secrets: &[S]) -> String {
    let mut forms: Vec<Vec<char>> = Vec::new();
    for secret in secrets {
        let secret = secret.as_ref();
        if secret.chars().count() < MIN_SCRUBBED {
            continue;
        }
        let encoded =
            percent_encoding::utf8_percent_encode(secret, percent_encoding::NON_ALPHANUMERIC)
                .to_string();
        for form in [secret, encoded.as_str()] {
            let chars: Vec<char> = form.chars().map(lower).collect();
            if !forms.contains(&chars) {
                forms.push(chars);
            }
        }
    }
    if forms.is_empty() {
        return text.to_string();
    }
    let hay: Vec<char> = text.chars().collect();
    let low: Vec<char> = hay.iter().copied().map(lower).collect();
    let mut hidden = vec![false; hay.len()];
    let mut pieces = std::collections::HashSet::new();
    for form in &forms {
        if form.len() >= PIECE {
            pieces.extend(form.windows(PIECE));
        } else {
            // Short secrets: whole occurrences only.
            for start in 0..low.len().saturating_sub(form.len() - 1) {
                if low[start..start + form.len()] == form[..] {
                    hidden[start..start + form.len()]
                        .iter_mut()
                        .for_each(|h| *h = true);
                }
            }
        }
    }
    if !pieces.is_empty() {
        for (start, window) in low.windows(PIECE).enumerate() {
            if pieces.contains(window) {
                hidden[start..start + PIECE]
                    .iter_mut()
                    .for_each(|h| *h = true);
            }
        }
    }
    let mut out = String::with_capacity(text.len());
    let mut in_hidden = false;
    for (c, h) in hay.iter().zip(&hidden) {
        match (h, in_hidden) {
            (true, false) => out.push_str("***"),
            (true, true) => {}
            (false, _) => out.push(*c),
        }
        in_hidden = *h;
    }
    out
}

/// One character lower-cased to one character (the first of its lower-case mapping).
fn lower(c: char) -> char {
    c.to_lowercase().next().unwrap_or(c)
}

/// The `&`-separated items of a raw query: (decoded key, decoded value, raw item).
pub(crate) fn split_query(query: &str) -> impl Iterator<Item = (String, String, &str)> {
    query.split('&').filter(|s| !s.is_empty()).map(|item| {
        let (k, v) = item.split_once('=').unwrap_or((item, ""));
        (percent_decode(k), percent_decode(v), item)
    })
}

/// Percent-decoding only: a `+` is a plus sign (form decoding would turn it into a space).
pub(crate) fn percent_decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Escapes keep a reason on one line and make escape sequences visible.
    #[test]
    fn control_characters_are_escaped() {
        assert_eq!(one_line("a\nb\x1b[31mc\u{7f}"), "a\\nb\\x1b[31mc\\x7f");
    }

    /// A secret is removed whatever its case, and percent-encoded.
    #[test]
    fn scrub_is_case_insensitive() {
        let s = scrub("ERR args: 'AUTH' 'HUNTER2' x%2Fyz", &["hunter2", "x/yz"]);
        assert_eq!(s, "ERR args: 'AUTH' '***' ***");
        assert_eq!(scrub("ÄBCD äbcd", &["äbcd"]), "*** ***");
        // A quoted prefix of a long secret is hidden too.
        let long = "Zq9x-0123456789abcdef";
        assert_eq!(scrub("args: 'ZQ9X-01234'", &[long]), "args: '***'");
        assert_eq!(scrub("nothing here", &[long]), "nothing here");
    }

    /// A value of under four characters (`?full=1`) is not searched for: it would hide every `1`
    /// of an address or a duration, and protects nothing.
    #[test]
    fn short_values_do_not_mangle_addresses() {
        let reason = "timed out after 1s waiting for the response from 127.0.0.1:8080";
        assert_eq!(scrub(reason, &["1", "80", "tru"]), reason);
    }
}
