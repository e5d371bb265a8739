//! Text that reaches the output: cut to a size, kept on one line, and scrubbed of secrets.
//! A leaf module: peers and users control much of what is printed, so every path goes here.

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

/// `text` with every occurrence of every secret replaced by `***`, compared case-insensitively
/// (a server may upper-case what it quotes). Secrets are also looked for percent-encoded.
pub fn scrub<S: AsRef<str>>(text: &str, secrets: &[S]) -> String {
    let mut out = text.to_string();
    for secret in secrets {
        let secret = secret.as_ref();
        if secret.is_empty() {
            continue;
        }
        out = replace_ci(&out, secret);
        let encoded =
            percent_encoding::utf8_percent_encode(secret, percent_encoding::NON_ALPHANUMERIC)
                .to_string();
        if encoded != secret {
            out = replace_ci(&out, &encoded);
        }
    }
    out
}

/// Replaces `needle` in `hay` by `***`, comparing characters case-insensitively.
fn replace_ci(hay: &str, needle: &str) -> String {
    let needle: Vec<char> = needle.chars().flat_map(char::to_lowercase).collect();
    let hay_chars: Vec<(usize, char)> = hay.char_indices().collect();
    let mut out = String::with_capacity(hay.len());
    let mut i = 0;
    'outer: while i < hay_chars.len() {
        // Compare lowercased characters from position i against the needle.
        let mut n = 0;
        let mut j = i;
        while n < needle.len() {
            let Some(&(_, c)) = hay_chars.get(j) else {
                break;
            };
            for lc in c.to_lowercase() {
                if needle.get(n) != Some(&lc) {
                    out.push(hay_chars[i].1);
                    i += 1;
                    continue 'outer;
                }
                n += 1;
            }
            j += 1;
        }
        if n == needle.len() {
            out.push_str("***");
            i = j;
        } else {
            out.push(hay_chars[i].1);
            i += 1;
        }
    }
    out
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
        let s = scrub("ERR args: 'AUTH' 'HUNTER2' x%2Fy", &["hunter2", "x/y"]);
        assert_eq!(s, "ERR args: 'AUTH' '***' ***");
        assert_eq!(scrub("ÄBC äbc", &["äbc"]), "*** ***");
    }
}
