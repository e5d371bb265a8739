//! The Redis keys of PROTOCOL.md, in both layouts: layout 1 (one server, or a master under
//! Sentinel) and layout 2 (Redis Cluster), where every key of an agent carries the hash tag of
//! the agent's shard so that one script call touches one slot.

use crate::Name;

/// Key prefix of every key this crate writes.
pub const KEY_PREFIX: &str = "ready-signal";

/// Slots of a Redis Cluster.
const SLOTS: u16 = 16384;

/// How many shards a namespace is split into in layout 2: each shard has its own agents index
/// and epoch counter, in the slot of its hash tag `{NAMESPACE:SS}`.
pub const SHARDS: u16 = 64;

/// How a store lays out its keys (PROTOCOL.md, "Keys").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Layout {
    /// Layout 1: one Redis server, or the master Sentinels name. `ready-signal:{ns}:...`.
    Single,
    /// Layout 2: Redis Cluster. `ready-signal:{{ns:SS}}:...`, SS the agent's shard.
    Cluster,
}

/// Redis Cluster's slot of `key` (`CLUSTER KEYSLOT`): CRC16-XMODEM of the key, or of its hash
/// tag (the text between the first `{` and the next `}`, when not empty), modulo 16384.
pub fn keyslot(key: &[u8]) -> u16 {
    let tagged = key.iter().position(|b| *b == b'{').and_then(|open| {
        let rest = &key[open + 1..];
        let close = rest.iter().position(|b| *b == b'}')?;
        (close > 0).then(|| &rest[..close])
    });
    crc16::State::<crc16::XMODEM>::calculate(tagged.unwrap_or(key)) % SLOTS
}

/// The layout-2 shard of `agent`: `keyslot(agent) % 64`.
pub fn shard(agent: &Name) -> u16 {
    keyslot(agent.as_str().as_bytes()) % SHARDS
}

/// The keys of one namespace in one layout.
///
/// ```
/// use ready_signal::{Keys, Layout, Name};
///
/// let ns = Name::new("prod")?;
/// let (agent, replica) = (Name::new("summarizer")?, Name::new("r1")?);
/// let single = Keys::new(Layout::Single, &ns);
/// assert_eq!(single.record(&agent, &replica), "ready-signal:prod:summarizer:r:r1");
/// let cluster = Keys::new(Layout::Cluster, &ns);
/// assert_eq!(cluster.record(&agent, &replica), "ready-signal:{prod:14}:summarizer:r:r1");
/// assert_eq!(cluster.agents(&agent), "ready-signal:{prod:14}:agents");
/// # Ok::<(), ready_signal::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keys {
    layout: Layout,
    namespace: Name,
}

impl Keys {
    /// The keys of `namespace` in `layout`.
    pub fn new(layout: Layout, namespace: &Name) -> Keys {
        Keys {
            layout,
            namespace: namespace.clone(),
        }
    }

    /// The layout.
    pub fn layout(&self) -> Layout {
        self.layout
    }

    /// `ready-signal:{ns}` (layout 1) or `ready-signal:{{ns:SS}}` with `agent`'s shard.
    fn prefix(&self, agent: &Name) -> String {
        match self.layout {
            Layout::Single => format!("{KEY_PREFIX}:{}", self.namespace),
            Layout::Cluster => self.shard_prefix(shard(agent)),
        }
    }

    fn shard_prefix(&self, shard: u16) -> String {
        format!("{KEY_PREFIX}:{{{}:{shard:02}}}", self.namespace)
    }

    /// The record hash of one replica.
    pub fn record(&self, agent: &Name, replica: &Name) -> String {
        format!("{}:{agent}:r:{replica}", self.prefix(agent))
    }

    /// The sorted set of `agent`'s replica names, scored by record expiry.
    pub fn replicas(&self, agent: &Name) -> String {
        format!("{}:{agent}:replicas", self.prefix(agent))
    }

    /// The agents index that lists `agent` (sorted set of agent names, scored by the latest
    /// expiry of their live records): the namespace's one (layout 1) or its shard's.
    pub fn agents(&self, agent: &Name) -> String {
        format!("{}:agents", self.prefix(agent))
    }

    /// The epoch counter `agent`'s writes use: the namespace's one (layout 1) or its shard's.
    pub fn epoch(&self, agent: &Name) -> String {
        format!("{}:epoch", self.prefix(agent))
    }

    /// The due index that holds `agent`'s replicas (sorted set of `agent:replica`, scored by
    /// the instant each turns stale unless it beats again): the namespace's one (layout 1) or
    /// its shard's. Revision 5 of the protocol.
    pub fn due(&self, agent: &Name) -> String {
        format!("{}:due", self.prefix(agent))
    }

    /// Every due index of the namespace, which together hold all its indexed replicas: one in
    /// layout 1, one per shard (64) in layout 2, in shard order.
    pub fn due_indexes(&self) -> Vec<String> {
        match self.layout {
            Layout::Single => vec![format!("{KEY_PREFIX}:{}:due", self.namespace)],
            Layout::Cluster => (0..SHARDS)
                .map(|s| format!("{}:due", self.shard_prefix(s)))
                .collect(),
        }
    }

    /// Every agents index of the namespace, which together list all its agents: one in layout 1,
    /// one per shard (64) in layout 2.
    pub fn agent_indexes(&self) -> Vec<String> {
        match self.layout {
            Layout::Single => vec![format!("{KEY_PREFIX}:{}:agents", self.namespace)],
            Layout::Cluster => (0..SHARDS)
                .map(|s| format!("{}:agents", self.shard_prefix(s)))
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The slot function is Redis's: known answers of `CLUSTER KEYSLOT`.
    #[test]
    fn keyslot_is_cluster_keyslot() {
        assert_eq!(keyslot(b"foo"), 12182);
        assert_eq!(keyslot(b"bar"), 5061);
        assert_eq!(keyslot(b"{user1000}.following"), keyslot(b"user1000"));
        assert_eq!(keyslot(b"foo{}{bar}"), keyslot(b"foo{}{bar}"));
        assert_ne!(keyslot(b"foo{}{bar}"), keyslot(b"bar"));
        assert_eq!(keyslot(b"foo{{bar}}zap"), keyslot(b"{bar"));
    }

    /// The worked example of PROTOCOL.md, "Layout 2".
    #[test]
    fn protocol_md_worked_example() {
        let agent = Name::new("summarizer").unwrap();
        assert_eq!(keyslot(b"summarizer"), 11342);
        assert_eq!(shard(&agent), 14);
        let keys = Keys::new(Layout::Cluster, &Name::new("prod").unwrap());
        assert_eq!(keys.epoch(&agent), "ready-signal:{prod:14}:epoch");
        assert_eq!(keyslot(keys.epoch(&agent).as_bytes()), 10156);
        assert_eq!(keys.agent_indexes().len(), 64);
        assert_eq!(keys.agent_indexes()[14], keys.agents(&agent));
        assert_eq!(keys.due(&agent), "ready-signal:{prod:14}:due");
    }

    fn names() -> impl Strategy<Value = Name> {
        "[A-Za-z0-9_-]{1,64}".prop_map(|s| Name::new(&s).unwrap())
    }

    proptest! {
        /// Every layout-2 key of one agent is in one slot (so the write script never crosses
        /// slots), and that slot is its shard's, whatever the names.
        #[test]
        fn an_agents_keys_share_one_slot(ns in names(), agent in names(), replica in names()) {
            let keys = Keys::new(Layout::Cluster, &ns);
            let slot = keyslot(keys.record(&agent, &replica).as_bytes());
            for key in [keys.replicas(&agent), keys.agents(&agent), keys.epoch(&agent), keys.due(&agent)] {
                prop_assert_eq!(keyslot(key.as_bytes()), slot, "{}", key);
            }
            let tag = format!("{ns}:{:02}", shard(&agent));
            prop_assert_eq!(slot, keyslot(tag.as_bytes()));
            prop_assert!(shard(&agent) < SHARDS);
            prop_assert!(keys.agent_indexes().contains(&keys.agents(&agent)));
            prop_assert_eq!(&keys.due_indexes()[usize::from(shard(&agent))], &keys.due(&agent));
        }
    }
}
