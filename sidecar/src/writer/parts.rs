//! Which part of a namespace holds a replica (its shard on a Redis Cluster, the whole namespace
//! on one server), and why that part cannot be read: the rule the book judges by and the store
//! merge files failures under. A leaf of the writer: it imports nothing of the book.

use std::collections::BTreeMap;

use tokio::time::Instant;

use crate::error::Error;

/// Why `agent`'s part of `namespace` cannot be read, when it cannot.
pub(super) fn part_failure(
    parts: &BTreeMap<String, usize>,
    failures: &BTreeMap<(String, usize), (Error, Instant)>,
    namespace: &str,
    agent: &str,
) -> Option<String> {
    let parts = *parts.get(namespace)?;
    let part = part_of(parts, agent);
    failures.get(&(namespace.to_string(), part)).map(|(e, _)| {
        if parts > 1 {
            format!("shard {part:02} of the store: {e}")
        } else {
            e.to_string()
        }
    })
}

/// The part of a namespace of `parts` parts that holds `agent`: its shard on a Cluster.
pub(crate) fn part_of(parts: usize, agent: &str) -> usize {
    if parts <= 1 {
        return 0;
    }
    ready_signal::Name::new(agent).map_or(0, |a| usize::from(ready_signal::shard(&a)))
}
