//! Where records go: Redis, NATS and the local-file backend, built by [`StoreConfig`]'s setters.
//!
//! The grammars live beside this builder, one file each: `env` (the `READY_SIGNAL_*` variables
//! and secret files), `redis_url` (one server, Sentinels, a Cluster), `nats_url` (a server or a
//! seed list), and `url` (what both URL grammars share). What they produce is plain data in
//! `crate::stores`, which the connections read without knowing any grammar.

use std::fmt;
use std::path::PathBuf;

use crate::error::Error;
use crate::name::Name;
use crate::redis_store::keys::{Keys, Layout};
use crate::stores::{NatsAuth, NatsStore, RedisStore, Topology};

mod env;
mod nats_url;
mod redis_url;
mod url;

/// The namespace used when none is configured.
pub const DEFAULT_NAMESPACE: &str = "default";

/// The stores an agent publishes to and an observer reads from.
///
/// - Redis holds the records (state, with a server-side TTL). When configured, it is what
///   observers read.
/// - NATS carries an event at every transition, so waiters react in milliseconds.
/// - The local-file backend holds the records when Redis is not configured, is written as well
///   when a directory is set, and is the fallback an agent writes when Redis cannot be reached.
///
/// `Debug` and [`StoreConfig::describe`] show addresses only, never passwords.
///
/// ```
/// use ready_signal::StoreConfig;
///
/// let store = StoreConfig::new().redis("redis://worker:s3cret@redis:6379")?;
/// assert_eq!(store.describe(), "redis at redis:6379, namespace default");
/// assert!(!format!("{store:?}").contains("s3cret"));
/// # Ok::<(), ready_signal::Error>(())
/// ```
#[derive(Clone)]
pub struct StoreConfig {
    pub(crate) redis: Option<RedisStore>,
    pub(crate) nats: Option<NatsStore>,
    pub(crate) dir: Option<PathBuf>,
    pub(crate) namespace: Name,
}

impl Default for StoreConfig {
    fn default() -> StoreConfig {
        StoreConfig::new()
    }
}

impl StoreConfig {
    /// No network store: records go to the local-file backend in the default directory.
    pub fn new() -> StoreConfig {
        StoreConfig {
            redis: None,
            nats: None,
            dir: None,
            namespace: Name(DEFAULT_NAMESPACE.to_string()),
        }
    }

    /// Uses the Redis store at `url`:
    ///
    /// - `redis://[user[:password]@]host[:port][/db]`: one server;
    /// - `redis+sentinel://[user[:password]@]host:26379[,host:26379...]/MASTER_NAME[?db=N]`: the
    ///   master that these Sentinels name (the user and password are the data nodes'; the
    ///   Sentinels' own password is [`StoreConfig::redis_sentinel_password`]);
    /// - `redis://[user[:password]@]host:port[,host:port...]?cluster=true`: a Redis Cluster,
    ///   found from these seed nodes (one is enough; the keys then follow layout 2).
    ///
    /// Errors name the host by its position in a list, never the URL.
    ///
    /// ```
    /// use ready_signal::StoreConfig;
    ///
    /// let store = StoreConfig::new().redis("redis+sentinel://:s3cret@s1,s2:26380/mymaster")?;
    /// assert_eq!(
    ///     store.describe(),
    ///     "redis at s1:26379,s2:26380 (sentinels, master mymaster), namespace default"
    /// );
    /// # Ok::<(), ready_signal::Error>(())
    /// ```
    pub fn redis(mut self, url: &str) -> Result<StoreConfig, Error> {
        self.redis = Some(redis_url::parse(url)?);
        Ok(self)
    }

    /// Sets the Redis password (for example read from a secret file); the URL's user is kept.
    /// Under Sentinel, this is the data nodes' password.
    pub fn redis_password(mut self, password: String) -> Result<StoreConfig, Error> {
        let Some(redis) = self.redis.as_mut() else {
            return Err(Error::Config(
                "a Redis password was given but no Redis URL".into(),
            ));
        };
        redis.settings = redis.settings.clone().set_password(password);
        Ok(self)
    }

    /// Sets the password of the Sentinels themselves (their `requirepass`), for a
    /// `redis+sentinel://` store.
    pub fn redis_sentinel_password(mut self, password: String) -> Result<StoreConfig, Error> {
        match self.redis.as_mut().map(|r| &mut r.topology) {
            Some(Topology::Sentinel(s)) => s.password = Some(password),
            _ => {
                return Err(Error::Config(
                    "a Sentinel password was given but the Redis URL is not redis+sentinel://"
                        .into(),
                ));
            }
        }
        Ok(self)
    }

    /// Uses the NATS server at `url`: `nats://[user:password@|token@]host[:port]`, or `tls://`.
    ///
    /// A cluster is given as a seed list, `nats://[credentials@]host1[:port],host2[:port],...`
    /// (the probe's `nats://` target syntax): each host without a port takes 4222, the
    /// credentials are given once, before the first host, and apply to every seed. The client
    /// connects to any seed that answers and, when its server goes away, reconnects to another.
    ///
    /// ```
    /// use ready_signal::StoreConfig;
    ///
    /// let store = StoreConfig::new()
    ///     .nats("nats://worker:s3cret@n1,n2:4223,n3")?
    ///     .dir("/data");
    /// assert_eq!(
    ///     store.describe(),
    ///     "nats at n1:4222,n2:4223,n3:4222, files in /data, namespace default"
    /// );
    /// assert!(!format!("{store:?}").contains("s3cret"));
    /// # Ok::<(), ready_signal::Error>(())
    /// ```
    pub fn nats(mut self, url: &str) -> Result<StoreConfig, Error> {
        self.nats = Some(nats_url::parse(url)?);
        Ok(self)
    }

    fn nats_auth(
        mut self,
        auth: impl FnOnce(Option<&str>) -> Result<NatsAuth, Error>,
    ) -> Result<StoreConfig, Error> {
        let Some(nats) = self.nats.as_mut() else {
            return Err(Error::Config(
                "a NATS credential file was given but no NATS URL".into(),
            ));
        };
        nats.auth = auth(nats.user.as_deref())?;
        Ok(self)
    }

    /// Also writes (and, without Redis, reads) record files under `dir`.
    pub fn dir(mut self, dir: impl Into<PathBuf>) -> StoreConfig {
        self.dir = Some(dir.into());
        self
    }

    /// Reads and writes the local-file backend only: Redis and NATS are dropped, the directory
    /// (configured or default) kept. A liveness probe reads the agent's own record this way, so a
    /// shared store being down never restarts the agents that use it.
    ///
    /// ```
    /// use ready_signal::StoreConfig;
    ///
    /// let store = StoreConfig::new().redis("redis://redis:6379")?.dir("/run/ready-signal");
    /// assert_eq!(store.files_only().describe(), "files in /run/ready-signal, namespace default");
    /// # Ok::<(), ready_signal::Error>(())
    /// ```
    pub fn files_only(mut self) -> StoreConfig {
        self.redis = None;
        self.nats = None;
        self
    }

    /// Separates the records of different stacks sharing one Redis or NATS.
    pub fn namespace(mut self, namespace: Name) -> StoreConfig {
        self.namespace = namespace;
        self
    }

    /// The namespace.
    pub fn namespace_name(&self) -> &Name {
        &self.namespace
    }

    /// Whether Redis is configured (it is then the store observers read).
    pub fn has_redis(&self) -> bool {
        self.redis.is_some()
    }

    /// The Redis keys of this store's namespace, in its layout (layout 2 for a Redis Cluster,
    /// layout 1 otherwise, and without Redis).
    pub fn keys(&self) -> Keys {
        let layout = self.redis.as_ref().map_or(Layout::Single, layout);
        Keys::new(layout, &self.namespace)
    }

    /// Whether NATS is configured.
    pub fn has_nats(&self) -> bool {
        self.nats.is_some()
    }

    /// Whether writers keep a record file on every heartbeat: a directory is set
    /// (`READY_SIGNAL_DIR`), or there is no Redis to hold the records. Only then does a
    /// [`StoreConfig::files_only`] reader find one.
    pub fn keeps_files(&self) -> bool {
        self.files_always()
    }

    /// The directory record files go to: the configured one, or `$TMPDIR/ready-signal`.
    pub fn file_dir(&self) -> PathBuf {
        self.dir
            .clone()
            .unwrap_or_else(|| std::env::temp_dir().join("ready-signal"))
    }

    /// Whether record files are written on every heartbeat: a directory is set, or there is no
    /// Redis to hold the records.
    pub(crate) fn files_always(&self) -> bool {
        // NATS alone carries events, not state: without Redis the files hold the records.
        self.dir.is_some() || self.redis.is_none()
    }

    /// `host:port` of the Redis store, when there is one server to name (a probe resolves it
    /// first, to say "resolving HOST" rather than a client library's message). `None` for a
    /// list of Sentinels or Cluster nodes: each is resolved when it is tried.
    pub fn redis_addr(&self) -> Option<&str> {
        match &self.redis.as_ref()?.topology {
            Topology::Single(addr) => Some(addr),
            Topology::Sentinel(crate::stores::Sentinels { addrs: hosts, .. })
            | Topology::Cluster(hosts) => match hosts.as_slice() {
                [one] => Some(one),
                _ => None,
            },
        }
    }

    /// One line naming the stores, for logs and probe output; no credentials.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if let Some(r) = &self.redis {
            parts.push(format!("redis at {}", r.addr));
        }
        if let Some(n) = &self.nats {
            parts.push(format!("nats at {}", n.addr));
        }
        if self.files_always() {
            parts.push(format!("files in {}", self.file_dir().display()));
        }
        parts.push(format!("namespace {}", self.namespace));
        parts.join(", ")
    }
}

impl fmt::Debug for StoreConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoreConfig")
            .field("redis", &self.redis.as_ref().map(|r| &r.addr))
            .field("nats", &self.nats.as_ref().map(|n| &n.addr))
            .field("dir", &self.dir)
            .field("namespace", &self.namespace)
            .finish()
    }
}

/// The key layout of a Redis store: layout 2 in a Cluster, layout 1 otherwise.
fn layout(store: &RedisStore) -> Layout {
    match store.topology {
        Topology::Cluster(_) => Layout::Cluster,
        Topology::Single(_) | Topology::Sentinel(_) => Layout::Single,
    }
}
