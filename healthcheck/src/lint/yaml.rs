//! The YAML tree the linter reads: every node carries the line it was written on, so a finding
//! can point at it. Parsing (anchors, aliases, merge keys, multi-document streams) is
//! serde-saphyr's; this file only chooses the shape of the tree and words the errors.

use std::fmt;
use std::path::Path;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_saphyr::Spanned;

/// One YAML value and the line (1-based) where it is used: for an alias or a merged key, the
/// line of the alias or of the `<<`, which is where the service that uses it is.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Node {
    pub(crate) value: Value,
    pub(crate) line: u32,
    /// Which input file it was read from (an index the loader gives out), so that a value
    /// merged in from an override or an `extends` file still points at its own file.
    pub(crate) file: u16,
}

/// A mapping key (any scalar, read as text) and its line.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Key {
    pub(crate) name: String,
    pub(crate) line: u32,
    pub(crate) file: u16,
}

/// The YAML data model, with mappings kept in their written order.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Value {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Seq(Vec<Node>),
    Map(Vec<(Key, Node)>),
}

/// A file that is not YAML, with where and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct YamlError {
    pub(crate) line: u64,
    pub(crate) column: u64,
    pub(crate) reason: String,
}

impl fmt::Display for YamlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line > 0 {
            write!(
                f,
                "line {} column {}: {}",
                self.line, self.column, self.reason
            )
        } else {
            f.write_str(&self.reason)
        }
    }
}

/// Parses every document of a YAML stream (a Compose file has one, a manifest may have many).
pub(crate) fn parse_documents(text: &str) -> Result<Vec<Node>, YamlError> {
    serde_saphyr::from_multiple::<Option<Node>>(text)
        .map(|docs| docs.into_iter().flatten().collect())
        .map_err(|e| {
            let (line, column) = e
                .location()
                .map(|l| (l.line(), l.column()))
                .unwrap_or((0, 0));
            // The crate renders a source snippet after its message; one line is enough here.
            let text = e.without_snippet().to_string();
            let reason = text
                .lines()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("not valid YAML")
                .trim()
                .to_string();
            YamlError {
                line,
                column,
                reason,
            }
        })
}

impl Node {
    /// The value under `key` when this is a mapping.
    pub(crate) fn get(&self, key: &str) -> Option<&Node> {
        match &self.value {
            Value::Map(entries) => entries.iter().find(|(k, _)| k.name == key).map(|(_, v)| v),
            _ => None,
        }
    }

    /// The value at a path of keys.
    pub(crate) fn at(&self, path: &[&str]) -> Option<&Node> {
        path.iter().try_fold(self, |node, key| node.get(key))
    }

    /// The entries when this is a mapping.
    pub(crate) fn entries(&self) -> &[(Key, Node)] {
        match &self.value {
            Value::Map(entries) => entries,
            _ => &[],
        }
    }

    /// The items when this is a sequence.
    pub(crate) fn items(&self) -> &[Node] {
        match &self.value {
            Value::Seq(items) => items,
            _ => &[],
        }
    }

    /// A scalar as text (`30`, `true`, `30s`), as Compose reads most settings.
    pub(crate) fn scalar(&self) -> Option<String> {
        match &self.value {
            Value::Str(s) => Some(s.clone()),
            Value::Int(i) => Some(i.to_string()),
            Value::Float(x) => Some(x.to_string()),
            Value::Bool(b) => Some(b.to_string()),
            Value::Null | Value::Seq(_) | Value::Map(_) => None,
        }
    }

    /// A string value.
    pub(crate) fn str(&self) -> Option<&str> {
        match &self.value {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    /// Marks this node and everything under it as read from input file `file`.
    pub(crate) fn set_file(&mut self, file: u16) {
        self.file = file;
        match &mut self.value {
            Value::Seq(items) => items.iter_mut().for_each(|n| n.set_file(file)),
            Value::Map(entries) => entries.iter_mut().for_each(|(k, v)| {
                k.file = file;
                v.set_file(file);
            }),
            _ => {}
        }
    }

    /// A mapping node built by a loader (normalised short forms).
    pub(crate) fn map(entries: Vec<(Key, Node)>, line: u32, file: u16) -> Node {
        Node {
            value: Value::Map(entries),
            line,
            file,
        }
    }

    /// A string node built by a loader.
    pub(crate) fn string(s: String, line: u32, file: u16) -> Node {
        Node {
            value: Value::Str(s),
            line,
            file,
        }
    }

    /// True for a mapping.
    pub(crate) fn is_map(&self) -> bool {
        matches!(self.value, Value::Map(_))
    }
}

/// Where a file is, for error messages: `path:line`.
pub(crate) fn place(path: &Path, line: u64) -> String {
    if line > 0 {
        format!("{}:{line}", path.display())
    } else {
        path.display().to_string()
    }
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let spanned = Spanned::<Value>::deserialize(d)?;
        Ok(Node {
            line: u32::try_from(spanned.referenced.line()).unwrap_or(u32::MAX),
            value: spanned.value,
            file: 0,
        })
    }
}

impl<'de> Deserialize<'de> for Key {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let spanned = Spanned::<KeyText>::deserialize(d)?;
        Ok(Key {
            line: u32::try_from(spanned.referenced.line()).unwrap_or(u32::MAX),
            name: spanned.value.0,
            file: 0,
        })
    }
}

/// A mapping key read as text whatever its scalar type (`8080:` is a key too).
struct KeyText(String);

impl<'de> Deserialize<'de> for KeyText {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = KeyText;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a scalar mapping key")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<KeyText, E> {
                Ok(KeyText(v.to_string()))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<KeyText, E> {
                Ok(KeyText(v))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<KeyText, E> {
                Ok(KeyText(v.to_string()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<KeyText, E> {
                Ok(KeyText(v.to_string()))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<KeyText, E> {
                Ok(KeyText(v.to_string()))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<KeyText, E> {
                Ok(KeyText(v.to_string()))
            }
            fn visit_unit<E: de::Error>(self) -> Result<KeyText, E> {
                Ok(KeyText(String::new()))
            }
        }
        d.deserialize_any(V)
    }
}

impl<'de> Deserialize<'de> for Value {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Value;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any YAML value")
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Value, E> {
                Ok(Value::Bool(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Value, E> {
                Ok(Value::Int(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Value, E> {
                Ok(i64::try_from(v).map_or(Value::Float(v as f64), Value::Int))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
                Ok(Value::Float(v))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Value, E> {
                Ok(Value::Str(v.to_string()))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Value, E> {
                Ok(Value::Str(v))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
                Ok(Value::Null)
            }
            fn visit_none<E: de::Error>(self) -> Result<Value, E> {
                Ok(Value::Null)
            }
            fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
                Value::deserialize(d)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = seq.next_element::<Node>()? {
                    items.push(item);
                }
                Ok(Value::Seq(items))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
                let mut entries = Vec::new();
                while let Some((k, v)) = map.next_entry::<Key, Node>()? {
                    entries.push((k, v));
                }
                Ok(Value::Map(entries))
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Anchors, aliases and merge keys are resolved by the parser, and lines are kept.
    #[test]
    fn merge_keys_and_lines() {
        let text = "x-base: &base\n  interval: 30s\n  retries: 3\nservices:\n  web:\n    healthcheck:\n      <<: *base\n      retries: 5\n";
        let docs = parse_documents(text).unwrap();
        let hc = docs[0].at(&["services", "web", "healthcheck"]).unwrap();
        assert_eq!(hc.get("interval").unwrap().scalar().as_deref(), Some("30s"));
        assert_eq!(hc.get("retries").unwrap().scalar().as_deref(), Some("5"));
        assert_eq!(docs[0].entries()[1].0.line, 4);
        assert_eq!(
            docs[0].at(&["services", "web"]).unwrap().entries()[0]
                .0
                .line,
            6
        );
    }

    /// Several documents, and a syntax error names its line.
    #[test]
    fn documents_and_errors() {
        let docs = parse_documents("kind: A\n---\nkind: B\n").unwrap();
        assert_eq!(docs.len(), 2);
        let e = parse_documents("a: 1\nb: [1, 2\nc: 3\n").unwrap_err();
        assert!(e.line >= 2, "{e}");
    }
}
