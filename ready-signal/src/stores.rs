//! What a configured store is, as plain data: the URL grammars of `config` produce it, the Redis
//! and NATS connections read it. A leaf module: it imports nothing of the crate, so the builder
//! and the connections both depend on it and never on each other.

/// A Redis store: where its data nodes are, how to authenticate to them, and how messages name
/// it.
#[derive(Clone)]
pub(crate) struct RedisStore {
    pub(crate) topology: Topology,
    /// Database, user and password of the data nodes.
    pub(crate) settings: redis::RedisConnectionInfo,
    /// `host:port`, or the host list and what it is (`a:26379,b:26379 (sentinels, master m)`).
    pub(crate) addr: String,
}

/// How the data nodes of a Redis store are found.
#[derive(Clone)]
pub(crate) enum Topology {
    /// One server at `host:port`.
    Single(String),
    /// The master that Sentinels name.
    Sentinel(Sentinels),
    /// A Redis Cluster, found from these seed nodes (`host:port`).
    Cluster(Vec<String>),
}

/// Where to find a master through Sentinels.
#[derive(Clone)]
pub(crate) struct Sentinels {
    /// Every Sentinel's `host:port`, as listed.
    pub(crate) addrs: Vec<String>,
    /// The master's name in the Sentinels' configuration.
    pub(crate) master: String,
    /// The Sentinels' own password (`requirepass` of the Sentinels), when they have one.
    pub(crate) password: Option<String>,
}

/// NATS servers (one, or the seeds of a cluster) and how to authenticate to them.
#[derive(Clone)]
pub(crate) struct NatsStore {
    /// Every seed, in the order given, without credentials.
    pub(crate) servers: Vec<async_nats::ServerAddr>,
    /// `host:port` of every seed, comma-separated, for messages.
    pub(crate) addr: String,
    /// The user named in the URL, for a password given by file.
    pub(crate) user: Option<String>,
    pub(crate) auth: NatsAuth,
}

/// NATS credentials given outside the URL.
#[derive(Clone, Default)]
pub(crate) enum NatsAuth {
    #[default]
    None,
    Token(String),
    UserPassword(String, String),
}
