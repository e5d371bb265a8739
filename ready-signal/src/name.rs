//! Validated agent, replica and namespace names.

use std::fmt;
use std::str::FromStr;

use crate::Error;

/// The longest name accepted, in bytes.
pub const MAX_NAME_LEN: usize = 64;

/// An agent, replica or namespace name: 1 to 64 ASCII letters, digits, `_` or `-`.
///
/// Names become parts of Redis keys, NATS subjects and file paths, so nothing else is accepted:
/// no `:`, `.`, `*`, `>`, `/` or whitespace can reach a key or a subject.
///
/// ```
/// use ready_signal::Name;
///
/// assert!(Name::new("worker-7").is_ok());
/// assert!(Name::new("a.b").is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Name(pub(crate) String);

impl Name {
    /// Validates `name`.
    pub fn new(name: &str) -> Result<Name, Error> {
        let invalid = |reason: String| Error::InvalidName {
            value: crate::escape::shown(name, 80),
            reason,
        };
        if name.is_empty() {
            return Err(invalid("it is empty".into()));
        }
        if name.len() > MAX_NAME_LEN {
            return Err(invalid(format!(
                "it is {} bytes long; at most {MAX_NAME_LEN} are allowed",
                name.len()
            )));
        }
        if let Some(c) = name
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || *c == '_' || *c == '-'))
        {
            return Err(invalid(format!(
                "{c:?} is not allowed; use letters, digits, `_` and `-`"
            )));
        }
        Ok(Name(name.to_string()))
    }

    /// The name as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for Name {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl FromStr for Name {
    type Err = Error;

    fn from_str(s: &str) -> Result<Name, Error> {
        Name::new(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_documented_alphabet() {
        for ok in ["a", "worker-7", "A_b-C", &"x".repeat(64)] {
            assert!(Name::new(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn rejects_anything_that_could_reach_a_key_or_subject() {
        for bad in [
            "",
            "a:b",
            "a.b",
            "a*",
            "a>",
            "a/b",
            "a b",
            "ä",
            "a\n",
            &"x".repeat(65),
        ] {
            let err = Name::new(bad).unwrap_err().to_string();
            assert!(err.starts_with("invalid name"), "{bad:?}: {err}");
        }
        assert!(
            Name::new("a:b")
                .unwrap_err()
                .to_string()
                .contains("':' is not allowed")
        );
        assert!(
            Name::new(&"x".repeat(65))
                .unwrap_err()
                .to_string()
                .contains("65 bytes")
        );
    }
}
