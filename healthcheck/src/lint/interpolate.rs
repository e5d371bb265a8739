//! Compose's variable interpolation, applied to every string value of a Compose file before
//! anything else reads it: `$VAR`, `${VAR}`, `${VAR:-default}`, `${VAR-default}`,
//! `${VAR:?error}`, `${VAR?error}`, `${VAR:+alt}`, `${VAR+alt}`, nested defaults, `$$` for `$`.
//!
//! One deliberate difference: a variable that is unset and has no default is left as written
//! (`${REDIS_PASSWORD}`), where Compose would substitute an empty string. A linter runs where the
//! secrets are not, and the rules need to see that a value comes from a variable.

use std::collections::BTreeMap;

/// The variables interpolation reads: the process environment over a `.env` file.
pub(crate) type Env = BTreeMap<String, String>;

/// What interpolation found wrong (`${VAR:?message}` with VAR unset, or an unclosed `${`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct InterpolationError(pub(crate) String);

/// Interpolates one string.
pub(crate) fn interpolate(s: &str, env: &Env) -> Result<String, InterpolationError> {
    if !s.contains('$') {
        return Ok(s.to_string());
    }
    let chars: Vec<char> = s.chars().collect();
    let mut out = String::with_capacity(s.len());
    let mut i = 0;
    while i < chars.len() {
        if chars[i] != '$' {
            out.push(chars[i]);
            i += 1;
            continue;
        }
        match chars.get(i + 1) {
            Some('$') => {
                out.push('$');
                i += 2;
            }
            Some('{') => {
                let end = closing_brace(&chars, i + 2)
                    .ok_or_else(|| InterpolationError(format!("unclosed ${{ in {s:?}")))?;
                let inner: String = chars[i + 2..end].iter().collect();
                out.push_str(&braced(&inner, env)?);
                i = end + 1;
            }
            Some(c) if c.is_ascii_alphabetic() || *c == '_' => {
                let mut j = i + 1;
                while j < chars.len() && (chars[j].is_ascii_alphanumeric() || chars[j] == '_') {
                    j += 1;
                }
                let name: String = chars[i + 1..j].iter().collect();
                match env.get(&name) {
                    Some(v) => out.push_str(v),
                    None => {
                        out.push('$');
                        out.push_str(&name);
                    }
                }
                i = j;
            }
            _ => {
                out.push('$');
                i += 1;
            }
        }
    }
    Ok(out)
}

/// The index of the `}` closing a `${` whose content starts at `from` (nesting counted).
fn closing_brace(chars: &[char], from: usize) -> Option<usize> {
    let mut depth = 1;
    let mut i = from;
    while i < chars.len() {
        match chars[i] {
            '$' if chars.get(i + 1) == Some(&'{') => {
                depth += 1;
                i += 1;
            }
            '}' => {
                depth -= 1;
                if depth == 0 {
                    return Some(i);
                }
            }
            _ => {}
        }
        i += 1;
    }
    None
}

/// `NAME`, `NAME:-default`, `NAME-default`, `NAME:?err`, `NAME?err`, `NAME:+alt`, `NAME+alt`.
fn braced(inner: &str, env: &Env) -> Result<String, InterpolationError> {
    let name_len = inner
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(inner.len());
    let (name, rest) = inner.split_at(name_len);
    let value = env.get(name);
    let set_nonempty = value.is_some_and(|v| !v.is_empty());
    let (op, arg) = if let Some(a) = rest.strip_prefix(":-") {
        (":-", a)
    } else if let Some(a) = rest.strip_prefix(":?") {
        (":?", a)
    } else if let Some(a) = rest.strip_prefix(":+") {
        (":+", a)
    } else if let Some(a) = rest.strip_prefix('-') {
        ("-", a)
    } else if let Some(a) = rest.strip_prefix('?') {
        ("?", a)
    } else if let Some(a) = rest.strip_prefix('+') {
        ("+", a)
    } else if rest.is_empty() {
        ("", "")
    } else {
        return Err(InterpolationError(format!(
            "invalid interpolation ${{{inner}}}"
        )));
    };
    let kept = || format!("${{{name}}}");
    Ok(match op {
        "" => value.cloned().unwrap_or_else(kept),
        ":-" if set_nonempty => value.cloned().unwrap_or_default(),
        ":-" => interpolate(arg, env)?,
        "-" => match value {
            Some(v) => v.clone(),
            None => interpolate(arg, env)?,
        },
        ":?" | "?" => {
            let ok = if op == ":?" {
                set_nonempty
            } else {
                value.is_some()
            };
            if ok {
                value.cloned().unwrap_or_default()
            } else {
                // Compose refuses to start; the linter keeps the reference and goes on (the
                // variable is usually set where the stack runs, not where it is linted).
                kept()
            }
        }
        ":+" if set_nonempty => interpolate(arg, env)?,
        "+" if value.is_some() => interpolate(arg, env)?,
        _ => String::new(),
    })
}

/// Reads a `.env` file: `KEY=VALUE` lines, `#` comments, an optional `export `, quotes.
pub(crate) fn parse_dotenv(text: &str) -> Env {
    let mut env = Env::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").unwrap_or(line);
        let Some((k, v)) = line.split_once('=') else {
            continue;
        };
        let v = v.trim();
        let v = if let Some(q) = v.strip_prefix('"').and_then(|r| r.split('"').next()) {
            q.to_string()
        } else if let Some(q) = v.strip_prefix('\'').and_then(|r| r.split('\'').next()) {
            q.to_string()
        } else {
            // An unquoted value ends at ` #` (a trailing comment).
            v.split(" #").next().unwrap_or("").trim().to_string()
        };
        env.insert(k.trim().to_string(), v);
    }
    env
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env() -> Env {
        [("SET", "v"), ("EMPTY", "")]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    /// Every form of the grammar, against set, empty and unset variables.
    #[test]
    fn the_grammar() {
        let e = env();
        let i = |s: &str| interpolate(s, &e).unwrap();
        assert_eq!(i("a${SET}b $SET"), "avb v");
        assert_eq!(i("${UNSET:-30s}"), "30s");
        assert_eq!(i("${EMPTY:-d}"), "d");
        assert_eq!(i("${EMPTY-d}"), "");
        assert_eq!(i("${UNSET-d}"), "d");
        assert_eq!(i("${UNSET:-${SET}}"), "v");
        assert_eq!(i("${SET:+alt}|${UNSET:+alt}"), "alt|");
        assert_eq!(i("$$SET and $${SET}"), "$SET and ${SET}");
        assert_eq!(i("${UNSET}"), "${UNSET}");
        assert_eq!(i("${UNSET:?must be set}"), "${UNSET}");
        assert_eq!(i("${SET:?x}"), "v");
        assert!(interpolate("${OPEN", &e).is_err());
    }

    /// `.env` lines: comments, export, quotes, trailing comments.
    #[test]
    fn dotenv() {
        let e = parse_dotenv("# c\nexport A=1\nB=\"two words\"\nC='x#y'\nD=3 # note\n");
        assert_eq!(e["A"], "1");
        assert_eq!(e["B"], "two words");
        assert_eq!(e["C"], "x#y");
        assert_eq!(e["D"], "3");
    }
}
