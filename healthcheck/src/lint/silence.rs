//! Silencing rules with a comment, `# healthcheck-lint: ignore HC001 HC004`: a comment applies
//! to the service (or manifest document) whose block it sits in, or to the one it sits directly
//! above (only comments and blank lines between them).

use std::collections::{BTreeMap, BTreeSet};

/// The marker of a silencing comment.
pub(crate) const MARKER: &str = "healthcheck-lint:";

/// The rule ids a comment line silences, when it is one.
pub(crate) fn directive(line: &str) -> Option<Vec<String>> {
    let hash = line.find('#')?;
    let comment = &line[hash + 1..];
    let rest = comment.trim_start().strip_prefix(MARKER)?;
    let rest = rest.trim_start().strip_prefix("ignore")?;
    Some(
        rest.split([',', ' ', '\t'])
            .map(str::trim)
            .take_while(|w| !w.starts_with('#') && !w.starts_with('('))
            .filter(|w| !w.is_empty())
            .map(|w| w.to_ascii_uppercase())
            .collect(),
    )
}

/// Attributes the file's silencing comments to blocks. `starts` are the sorted first lines of
/// the blocks with their names; `ends` are lines that end any block (the next top-level key).
pub(crate) fn attribute(
    text: &str,
    starts: &[(u32, String)],
    ends: &[u32],
) -> BTreeMap<String, BTreeSet<String>> {
    let lines: Vec<&str> = text.lines().collect();
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (i, line) in lines.iter().enumerate() {
        let Some(ids) = directive(line) else {
            continue;
        };
        let n = u32::try_from(i + 1).unwrap_or(u32::MAX);
        // Directly above a block: only comments and blank lines until its first line.
        let next = starts.iter().find(|(s, _)| *s >= n);
        let above = next.is_some_and(|(s, _)| {
            (n..*s).all(|l| {
                let t = lines.get(l as usize - 1).map_or("", |t| t.trim());
                t.is_empty() || t.starts_with('#')
            })
        });
        let owner = if above {
            next.map(|(_, name)| name.clone())
        } else {
            // Inside the last block that started before it, unless a top-level key ended it.
            starts
                .iter()
                .rev()
                .find(|(s, _)| *s <= n)
                .filter(|(s, _)| !ends.iter().any(|e| *e > *s && *e <= n))
                .map(|(_, name)| name.clone())
        };
        if let Some(name) = owner {
            out.entry(name).or_default().extend(ids);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A comment above a service, inside one, and one after a top-level key that owns nothing.
    #[test]
    fn attribution() {
        let text = "services:\n  # healthcheck-lint: ignore HC001, hc004\n  a:\n    image: x\n  b:\n    image: y  # healthcheck-lint: ignore HC002\nvolumes:\n  # healthcheck-lint: ignore HC009\n  v: {}\n";
        let starts = vec![(3, "a".to_string()), (5, "b".to_string())];
        let got = attribute(text, &starts, &[1, 7]);
        assert_eq!(
            got["a"],
            ["HC001", "HC004"].iter().map(|s| s.to_string()).collect()
        );
        assert_eq!(got["b"], ["HC002"].iter().map(|s| s.to_string()).collect());
        assert_eq!(got.len(), 2);
        assert_eq!(directive("# not a directive"), None);
    }
}
