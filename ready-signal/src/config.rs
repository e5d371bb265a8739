//! Where records go: Redis, NATS and the local-file backend, from the environment or a builder.

use std::fmt;
use std::path::{Path, PathBuf};

use url::Url;

use crate::redis_store::keys::{Keys, Layout};
use crate::redis_store::sentinel::Sentinels;
use crate::{Error, Name};

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

impl RedisStore {
    /// The key layout: layout 2 in a Cluster, layout 1 otherwise.
    pub(crate) fn layout(&self) -> Layout {
        match self.topology {
            Topology::Cluster(_) => Layout::Cluster,
            Topology::Single(_) | Topology::Sentinel(_) => Layout::Single,
        }
    }
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

    /// Reads `READY_SIGNAL_REDIS_URL`, `READY_SIGNAL_REDIS_PASSWORD_FILE`,
    /// `READY_SIGNAL_REDIS_SENTINEL_PASSWORD_FILE`, `READY_SIGNAL_NATS_URL`,
    /// `READY_SIGNAL_NATS_PASSWORD_FILE`, `READY_SIGNAL_NATS_TOKEN_FILE`, `READY_SIGNAL_DIR` and
    /// `READY_SIGNAL_NAMESPACE`. Empty variables count as unset.
    pub fn from_env() -> Result<StoreConfig, Error> {
        StoreConfig::from_lookup(|name| std::env::var(name).ok())
    }

    /// As [`StoreConfig::from_env`], with variables looked up by `env`.
    pub fn from_lookup(env: impl Fn(&str) -> Option<String>) -> Result<StoreConfig, Error> {
        let var = |name: &str| env(name).filter(|v| !v.is_empty());
        let mut store = StoreConfig::new();
        if let Some(url) = var("READY_SIGNAL_REDIS_URL") {
            store = store
                .redis(&url)
                .map_err(|e| in_var("READY_SIGNAL_REDIS_URL", e))?;
        }
        if let Some(file) = var("READY_SIGNAL_REDIS_PASSWORD_FILE") {
            store =
                store.redis_password(read_secret("READY_SIGNAL_REDIS_PASSWORD_FILE", &file)?)?;
        }
        if let Some(file) = var("READY_SIGNAL_REDIS_SENTINEL_PASSWORD_FILE") {
            let password = read_secret("READY_SIGNAL_REDIS_SENTINEL_PASSWORD_FILE", &file)?;
            store = store
                .redis_sentinel_password(password)
                .map_err(|e| in_var("READY_SIGNAL_REDIS_SENTINEL_PASSWORD_FILE", e))?;
        }
        if let Some(url) = var("READY_SIGNAL_NATS_URL") {
            store = store
                .nats(&url)
                .map_err(|e| in_var("READY_SIGNAL_NATS_URL", e))?;
        }
        if let Some(file) = var("READY_SIGNAL_NATS_PASSWORD_FILE") {
            let password = read_secret("READY_SIGNAL_NATS_PASSWORD_FILE", &file)?;
            store = store.nats_auth(|user| match user {
                Some(user) => Ok(NatsAuth::UserPassword(user.to_string(), password)),
                None => Err(Error::Config(
                    "READY_SIGNAL_NATS_PASSWORD_FILE needs a user in READY_SIGNAL_NATS_URL (nats://USER@host)".into(),
                )),
            })?;
        }
        if let Some(file) = var("READY_SIGNAL_NATS_TOKEN_FILE") {
            let token = read_secret("READY_SIGNAL_NATS_TOKEN_FILE", &file)?;
            store = store.nats_auth(|_| Ok(NatsAuth::Token(token)))?;
        }
        if let Some(dir) = var("READY_SIGNAL_DIR") {
            store = store.dir(dir);
        }
        if let Some(ns) = var("READY_SIGNAL_NAMESPACE") {
            store =
                store.namespace(Name::new(&ns).map_err(|e| in_var("READY_SIGNAL_NAMESPACE", e))?);
        }
        Ok(store)
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
        self.redis = Some(parse_redis(url)?);
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
        let (first, others) = split_seeds(url)?;
        let in_seed = |i: usize, e: Error| match others.is_empty() {
            true => e,
            false => Error::Config(format!(
                "host {} of the seed list: {}",
                i + 1,
                config_text(e)
            )),
        };
        let mut parsed = parse_url(&first, &["nats", "tls"]).map_err(|e| in_seed(0, e))?;
        let scheme = parsed.scheme().to_string();
        // Credentials leave the URL here and reach async-nats as options, so that no URL this
        // crate hands over (async-nats logs its server URLs at debug level) carries a secret.
        // Only `%XX` is decoded: in userinfo a `+` is a plus sign, not a space.
        let decode = |s: &str| {
            percent_encoding::percent_decode_str(s)
                .decode_utf8_lossy()
                .into_owned()
        };
        let user = Some(decode(parsed.username())).filter(|u| !u.is_empty());
        let auth = match (&user, parsed.password().map(decode)) {
            (Some(u), Some(p)) => NatsAuth::UserPassword(u.clone(), p),
            (Some(token), None) => NatsAuth::Token(token.clone()),
            _ => NatsAuth::None,
        };
        let _ = parsed.set_username("");
        let _ = parsed.set_password(None);
        let mut addrs = vec![addr_of(&parsed, 4222).map_err(|e| in_seed(0, e))?];
        for (i, seed) in others.iter().enumerate() {
            let seed_url = parse_url(&format!("{scheme}://{seed}"), &["nats", "tls"])
                .map_err(|e| in_seed(i + 1, e))?;
            if !matches!(seed_url.path(), "" | "/") || seed_url.query().is_some() {
                return Err(in_seed(i + 1, Error::Config("not host[:port]".into())));
            }
            addrs.push(addr_of(&seed_url, 4222).map_err(|e| in_seed(i + 1, e))?);
        }
        let servers = addrs
            .iter()
            .enumerate()
            .map(|(i, addr)| {
                format!("{scheme}://{addr}")
                    .parse::<async_nats::ServerAddr>()
                    .map_err(|e| in_seed(i, Error::Config(e.to_string())))
            })
            .collect::<Result<Vec<_>, _>>()?;
        self.nats = Some(NatsStore {
            servers,
            addr: addrs.join(","),
            user,
            auth,
        });
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
        let layout = self
            .redis
            .as_ref()
            .map_or(Layout::Single, RedisStore::layout);
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
            Topology::Sentinel(Sentinels { addrs: hosts, .. }) | Topology::Cluster(hosts) => {
                match hosts.as_slice() {
                    [one] => Some(one),
                    _ => None,
                }
            }
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

fn in_var(var: &str, e: Error) -> Error {
    Error::Config(format!("{var}: {e}"))
}

fn parse_url(url: &str, schemes: &[&str]) -> Result<Url, Error> {
    let parsed = Url::parse(url).map_err(|e| Error::Config(format!("not a URL ({e})")))?;
    if !schemes.contains(&parsed.scheme()) {
        let hint = if parsed.scheme() == "rediss" {
            " (TLS to the Redis store is not supported yet)"
        } else {
            ""
        };
        return Err(Error::Config(format!(
            "scheme `{}` is not one of {}{hint}",
            parsed.scheme(),
            schemes
                .iter()
                .map(|s| format!("{s}://"))
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    Ok(parsed)
}

/// The most hosts a Sentinel or Cluster host list may name.
const MAX_HOSTS: usize = 64;

/// Parses a Redis store URL (see [`StoreConfig::redis`]).
fn parse_redis(url: &str) -> Result<RedisStore, Error> {
    let scheme = url.split_once("://").map(|(s, _)| s.to_ascii_lowercase());
    let default_port = if scheme.as_deref() == Some("redis+sentinel") {
        26379
    } else {
        6379
    };
    let (first, hosts) = split_hosts(url, default_port)?;
    let parsed = parse_url(&first, &["redis", "redis+sentinel"])?;
    let mut options: Vec<(String, String)> = parsed
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let mut take = |name: &str| {
        let at = options.iter().position(|(k, _)| k == name)?;
        Some(options.remove(at).1)
    };
    let (topology, db) = if parsed.scheme() == "redis+sentinel" {
        let master = percent_encoding::percent_decode_str(parsed.path().trim_start_matches('/'))
            .decode_utf8_lossy()
            .into_owned();
        if master.is_empty() || master.contains('/') || master.len() > 200 {
            return Err(Error::Config(
                "name the master in the path: redis+sentinel://host:26379,host:26379/MASTER_NAME"
                    .into(),
            ));
        }
        let db = match take("db") {
            Some(db) => db
                .parse::<i64>()
                .ok()
                .filter(|d| *d >= 0)
                .ok_or_else(|| Error::Config("option `db` must be a database number".into()))?,
            None => 0,
        };
        if let Some((k, _)) = options.first() {
            return Err(Error::Config(format!(
                "unknown option `{}` (redis+sentinel:// takes db=N)",
                cut(k, 40)
            )));
        }
        let topology = Topology::Sentinel(Sentinels {
            addrs: hosts,
            master,
            password: None,
        });
        (topology, db)
    } else {
        let cluster = match take("cluster").as_deref() {
            None | Some("false") => false,
            Some("true") => true,
            Some(_) => {
                return Err(Error::Config(
                    "option `cluster` must be true or false".into(),
                ));
            }
        };
        if hosts.len() > 1 && !cluster {
            return Err(Error::Config(
                "a host list is for a Redis Cluster (redis://HOSTS?cluster=true) or Sentinels \
                 (redis+sentinel://HOSTS/MASTER_NAME)"
                    .into(),
            ));
        }
        let db = match parsed.path().trim_matches('/') {
            "" => 0,
            db => db.parse::<i64>().ok().filter(|d| *d >= 0).ok_or_else(|| {
                Error::Config("the path must be a database number (redis://host/0)".into())
            })?,
        };
        if cluster && db != 0 {
            return Err(Error::Config("a Redis Cluster has only database 0".into()));
        }
        let topology = if cluster {
            Topology::Cluster(hosts)
        } else {
            Topology::Single(addr_of(&parsed, 6379)?)
        };
        (topology, db)
    };
    // User and password as redis-rs reads them (percent-decoded; `+` stays a plus sign).
    let mut plain = parsed.clone();
    plain
        .set_scheme("redis")
        .map_err(|()| Error::Config("not a redis URL".into()))?;
    plain.set_path(&format!("/{db}"));
    if !matches!(topology, Topology::Single(_)) {
        plain.set_query(None);
    }
    let info = redis::IntoConnectionInfo::into_connection_info(plain.as_str())
        .map_err(|e| Error::Config(format!("redis URL: {}", e.detail().unwrap_or("invalid"))))?;
    let settings = info.redis_settings().clone().set_skip_set_lib_name();
    let addr = match &topology {
        Topology::Single(addr) => addr.clone(),
        Topology::Sentinel(s) => format!(
            "{} (sentinels, master {})",
            s.addrs.join(","),
            cut(&s.master, 60)
        ),
        Topology::Cluster(seeds) => format!("{} (cluster)", seeds.join(",")),
    };
    Ok(RedisStore {
        topology,
        settings,
        addr,
    })
}

/// Splits a host list out of a URL's authority (`redis+sentinel://u:p@a:1,b:2/name`): the URL
/// with its first host only, and every host as `host:port`. Errors name a host by its position,
/// never its text (the text around it may hold a password).
fn split_hosts(url: &str, default_port: u16) -> Result<(String, Vec<String>), Error> {
    let Some(start) = url.find("://").map(|i| i + 3) else {
        return Ok((url.to_string(), Vec::new()));
    };
    let end = url[start..]
        .find(['/', '?', '#'])
        .map_or(url.len(), |i| start + i);
    let hosts_start = url[start..end].rfind('@').map_or(start, |i| start + i + 1);
    let list = &url[hosts_start..end];
    let seeds: Vec<&str> = list.split(',').collect();
    if seeds.len() > MAX_HOSTS {
        return Err(Error::Config(format!(
            "more than {MAX_HOSTS} hosts in the host list"
        )));
    }
    let mut hosts = Vec::with_capacity(seeds.len());
    for (i, seed) in seeds.iter().enumerate() {
        let at = i + 1;
        if seed.is_empty() {
            return Err(Error::Config(format!(
                "host {at} of the host list is empty (write host1:port,host2:port)"
            )));
        }
        let parsed = Url::parse(&format!("redis://{seed}"))
            .map_err(|e| Error::Config(format!("host {at} of the host list: {e}")))?;
        if !matches!(parsed.path(), "" | "/") || parsed.query().is_some() {
            return Err(Error::Config(format!(
                "host {at} of the host list is not host:port"
            )));
        }
        hosts.push(
            addr_of(&parsed, default_port)
                .map_err(|e| Error::Config(format!("host {at} of the host list: {e}")))?,
        );
    }
    let first = format!("{}{}{}", &url[..hosts_start], seeds[0], &url[end..]);
    Ok((first, hosts))
}

/// At most `max` bytes of `s`, cut at a character boundary.
fn cut(s: &str, max: usize) -> &str {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// The most hosts a NATS seed list may name (as in the probe's `nats://` targets).
const MAX_SEEDS: usize = 64;

/// Splits a NATS seed list (`scheme://[userinfo@]h1,h2,h3[/...]`): the URL with only the first
/// host, and the other hosts as written. A URL without a comma in its authority comes back whole.
/// Errors name a position in the list, never its text (the first host carries the credentials).
fn split_seeds(url: &str) -> Result<(String, Vec<String>), Error> {
    let Some(start) = url.find("://").map(|i| i + 3) else {
        return Ok((url.to_string(), Vec::new()));
    };
    let end = url[start..]
        .find(['/', '?', '#'])
        .map_or(url.len(), |i| start + i);
    let authority = &url[start..end];
    if !authority.contains(',') {
        return Ok((url.to_string(), Vec::new()));
    }
    let hosts: Vec<&str> = authority.split(',').collect();
    if hosts.len() > MAX_SEEDS {
        return Err(Error::Config(format!(
            "more than {MAX_SEEDS} hosts in the seed list"
        )));
    }
    for (i, host) in hosts.iter().enumerate() {
        // The first host's credentials end at its last `@`; nothing after it is a host then.
        let host = match i {
            0 => host.rsplit_once('@').map_or(*host, |(_, h)| h),
            _ => host,
        };
        if host.is_empty() {
            return Err(Error::Config(format!(
                "host {} of the seed list is empty (write host1:port,host2:port)",
                i + 1
            )));
        }
        if host.contains('@') {
            return Err(Error::Config(format!(
                "host {} of the seed list carries credentials: give them once, before the first \
                 host (nats://user:password@host1,host2), with `,` and `@` in them \
                 percent-encoded (%2C, %40)",
                i + 1
            )));
        }
    }
    let first = format!("{}{}{}", &url[..start], hosts[0], &url[end..]);
    Ok((first, hosts[1..].iter().map(|h| h.to_string()).collect()))
}

/// The text of a configuration error, for a message that adds where it was found.
fn config_text(e: Error) -> String {
    match e {
        Error::Config(text) => text,
        other => other.to_string(),
    }
}

fn addr_of(url: &Url, default_port: u16) -> Result<String, Error> {
    let host = url
        .host_str()
        .filter(|h| !h.is_empty())
        .ok_or_else(|| Error::Config("the URL has no host".into()))?;
    Ok(format!("{host}:{}", url.port().unwrap_or(default_port)))
}

fn read_secret(var: &str, path: &str) -> Result<String, Error> {
    let bytes = crate::file_store::read_bounded(Path::new(path))
        .map_err(|source| Error::Config(format!("{var}: cannot read {path}: {source}")))?;
    let text = String::from_utf8(bytes)
        .map_err(|_| Error::Config(format!("{var}: {path} is not UTF-8 text")))?;
    let secret = text.trim_end_matches(['\r', '\n']).to_string();
    if secret.is_empty() {
        return Err(Error::Config(format!("{var}: {path} is empty")));
    }
    Ok(secret)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lookup(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |k| {
            pairs
                .iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn nothing_configured_means_files() {
        let s = StoreConfig::from_lookup(lookup(&[])).unwrap();
        assert!(!s.has_redis() && !s.has_nats() && s.files_always());
        assert!(s.describe().starts_with("files in "));
    }

    #[test]
    fn reads_every_variable_and_redacts() {
        let s = StoreConfig::from_lookup(lookup(&[
            ("READY_SIGNAL_REDIS_URL", "redis://u:canary-pw@redis:6380/2"),
            ("READY_SIGNAL_NATS_URL", "nats://tok-canary@nats"),
            ("READY_SIGNAL_NAMESPACE", "prod"),
        ]))
        .unwrap();
        assert_eq!(
            s.describe(),
            "redis at redis:6380, nats at nats:4222, namespace prod"
        );
        assert!(!format!("{s:?}").contains("canary"));
    }

    #[test]
    fn bad_values_name_the_variable() {
        let e = StoreConfig::from_lookup(lookup(&[("READY_SIGNAL_REDIS_URL", "http://x")]))
            .unwrap_err();
        assert!(
            e.to_string()
                .starts_with("READY_SIGNAL_REDIS_URL: scheme `http`"),
            "{e}"
        );
        let e = StoreConfig::from_lookup(lookup(&[("READY_SIGNAL_NAMESPACE", "a.b")])).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("READY_SIGNAL_NAMESPACE: invalid name `a.b`"),
            "{e}"
        );
        let e = StoreConfig::from_lookup(lookup(&[(
            "READY_SIGNAL_REDIS_PASSWORD_FILE",
            "/nonexistent",
        )]))
        .unwrap_err();
        assert!(e.to_string().contains("/nonexistent"), "{e}");
    }

    /// A Sentinel URL names its hosts and master; passwords (the URL's, the Sentinels') never
    /// show in `describe()` or Debug.
    #[test]
    fn sentinel_urls_parse_and_redact() {
        let s = StoreConfig::new()
            .redis("redis+sentinel://u:canary-pw@s1,[::1]:26380/my%20master?db=3")
            .unwrap()
            .redis_sentinel_password("canary-sentinel".into())
            .unwrap();
        assert_eq!(
            s.describe(),
            "redis at s1:26379,[::1]:26380 (sentinels, master my master), namespace default"
        );
        let debug = format!("{s:?}");
        assert!(
            !debug.contains("canary") && !s.describe().contains("canary"),
            "{debug}"
        );
        let r = s.redis.as_ref().unwrap();
        assert_eq!(r.settings.db(), 3);
        assert_eq!(r.settings.password(), Some("canary-pw"));
        assert_eq!(r.settings.username(), Some("u"));
        let Topology::Sentinel(sentinels) = &r.topology else {
            panic!("not a sentinel store")
        };
        assert_eq!(sentinels.addrs, ["s1:26379", "[::1]:26380"]);
        assert_eq!(sentinels.password.as_deref(), Some("canary-sentinel"));
        assert_eq!(s.redis_addr(), None);
    }

    /// A Cluster seed list (or a single seed) with `cluster=true` means layout 2; only db 0.
    #[test]
    fn cluster_urls_parse_and_redact() {
        let s = StoreConfig::new()
            .redis("redis://:canary@a:7000,b:7001,c?cluster=true")
            .unwrap();
        assert_eq!(
            s.describe(),
            "redis at a:7000,b:7001,c:6379 (cluster), namespace default"
        );
        assert!(!format!("{s:?}").contains("canary"));
        assert_eq!(s.keys().layout(), Layout::Cluster);
        assert_eq!(s.redis_addr(), None);
        let one = StoreConfig::new()
            .redis("redis://a:7000?cluster=true")
            .unwrap();
        assert_eq!(one.redis_addr(), Some("a:7000"));
        assert_eq!(one.keys().layout(), Layout::Cluster);
        let single = StoreConfig::new().redis("redis://a?cluster=false").unwrap();
        assert_eq!(single.keys().layout(), Layout::Single);
        let err = |url: &str| StoreConfig::new().redis(url).unwrap_err().to_string();
        assert!(err("redis://a:1/2?cluster=true").contains("only database 0"));
        assert!(err("redis://a?cluster=yes").contains("must be true or false"));
        let e = err("redis://:canary@a:1,b:x?cluster=true");
        assert!(e.starts_with("host 2 of the host list: "), "{e}");
        assert!(!e.contains("canary"), "{e}");
    }

    /// Bad hosts are named by position and no part of the URL (which may hold a password)
    /// is echoed; a missing master name or an unknown option is said.
    #[test]
    fn bad_host_lists_name_the_position() {
        let err = |url: &str| StoreConfig::new().redis(url).unwrap_err().to_string();
        let e = err("redis+sentinel://:canary@a:1,,c/m");
        assert!(e.contains("host 2 of the host list is empty"), "{e}");
        let e = err("redis+sentinel://:canary@a:1,b:99999/m");
        assert!(e.starts_with("host 2 of the host list: "), "{e}");
        assert!(!e.contains("canary"), "{e}");
        let e = err("redis+sentinel://a:1,b:2");
        assert!(e.contains("name the master"), "{e}");
        let e = err("redis+sentinel://a/m?cluster=true");
        assert!(e.contains("unknown option `cluster`"), "{e}");
        let e = err("redis://:canary@a:1,b:2");
        assert!(e.contains("redis+sentinel://"), "{e}");
        assert!(!e.contains("canary"), "{e}");
        let e = StoreConfig::new()
            .redis("redis://a")
            .unwrap()
            .redis_sentinel_password("x".into())
            .unwrap_err()
            .to_string();
        assert!(e.contains("not redis+sentinel://"), "{e}");
        let e = StoreConfig::from_lookup(lookup(&[(
            "READY_SIGNAL_REDIS_SENTINEL_PASSWORD_FILE",
            "/nonexistent",
        )]))
        .unwrap_err();
        assert!(
            e.to_string()
                .starts_with("READY_SIGNAL_REDIS_SENTINEL_PASSWORD_FILE: cannot read /nonexistent"),
            "{e}"
        );
    }

    #[test]
    fn nats_credentials_leave_the_url() {
        let s = StoreConfig::new()
            .nats("nats://u:canary%40pw@nats:4222")
            .unwrap();
        let nats = s.nats.as_ref().unwrap();
        assert!(
            !format!("{:?}", nats.servers).contains("canary"),
            "{:?}",
            nats.servers
        );
        assert!(matches!(&nats.auth, NatsAuth::UserPassword(u, p) if u == "u" && p == "canary@pw"));
        let s = StoreConfig::new().nats("nats://u:a+b@nats").unwrap();
        assert!(
            matches!(&s.nats.as_ref().unwrap().auth, NatsAuth::UserPassword(_, p) if p == "a+b")
        );
        let s = StoreConfig::new().nats("nats://tok-canary@nats").unwrap();
        assert!(matches!(&s.nats.as_ref().unwrap().auth, NatsAuth::Token(t) if t == "tok-canary"));
        assert!(!format!("{:?}", servers(&s)).contains("canary"));
    }

    fn servers(s: &StoreConfig) -> Vec<String> {
        let nats = s.nats.as_ref().unwrap();
        nats.servers
            .iter()
            .map(|a| a.as_url_str().to_string())
            .collect()
    }

    /// A seed list gives every host, each with 4222 unless it names a port, in the order given.
    #[test]
    fn nats_seed_list_with_default_ports() {
        let s = StoreConfig::new()
            .nats("nats://n1,n2:4223,10.0.0.3,[::1]:4225")
            .unwrap();
        assert_eq!(
            servers(&s),
            [
                "nats://n1:4222",
                "nats://n2:4223",
                "nats://10.0.0.3:4222",
                "nats://[::1]:4225"
            ]
        );
        assert!(
            s.describe()
                .starts_with("nats at n1:4222,n2:4223,10.0.0.3:4222,[::1]:4225,"),
            "{}",
            s.describe()
        );
        let one = StoreConfig::new().nats("nats://n1").unwrap();
        assert_eq!(servers(&one), ["nats://n1:4222"]);
    }

    /// `tls://` applies to every seed.
    #[test]
    fn nats_seed_list_keeps_the_tls_scheme() {
        let s = StoreConfig::new().nats("tls://n1:4443,n2").unwrap();
        assert_eq!(servers(&s), ["tls://n1:4443", "tls://n2:4222"]);
        assert!(
            s.nats
                .as_ref()
                .unwrap()
                .servers
                .iter()
                .all(|a| a.tls_required())
        );
    }

    /// Credentials before the first host apply to every seed and appear in no URL, message or
    /// `Debug`; a password file names the user of the seed list's URL.
    #[test]
    fn nats_seed_list_credentials_apply_to_all_and_stay_hidden() {
        let s = StoreConfig::new()
            .nats("nats://u:canary%2Cpw@n1,n2,n3:4300")
            .unwrap();
        let nats = s.nats.as_ref().unwrap();
        assert!(matches!(&nats.auth, NatsAuth::UserPassword(u, p) if u == "u" && p == "canary,pw"));
        assert_eq!(nats.servers.len(), 3);
        let shown = format!("{s:?} {} {:?}", s.describe(), servers(&s));
        assert!(!shown.contains("canary"), "{shown}");

        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("pw");
        std::fs::write(&file, "canary-file\n").unwrap();
        let file = file.display().to_string();
        let s = StoreConfig::from_lookup(move |k| match k {
            "READY_SIGNAL_NATS_URL" => Some("nats://svc@n1,n2".into()),
            "READY_SIGNAL_NATS_PASSWORD_FILE" => Some(file.clone()),
            _ => None,
        })
        .unwrap();
        let nats = s.nats.as_ref().unwrap();
        assert!(
            matches!(&nats.auth, NatsAuth::UserPassword(u, p) if u == "svc" && p == "canary-file")
        );
        assert_eq!(servers(&s), ["nats://n1:4222", "nats://n2:4222"]);
    }

    /// Errors in a seed list name the host's position and the variable, never the credentials.
    #[test]
    fn nats_seed_list_errors_name_the_position() {
        let err = |url: &'static str| {
            let e = StoreConfig::from_lookup(move |k| {
                (k == "READY_SIGNAL_NATS_URL").then(|| url.to_string())
            })
            .unwrap_err();
            assert!(matches!(e, Error::Config(_)), "{e:?}");
            let text = e.to_string();
            assert!(text.starts_with("READY_SIGNAL_NATS_URL: "), "{text}");
            assert!(!text.contains("canary"), "{text}");
            text
        };
        let t = err("nats://u:canary@n1,v:canary2@n2,n3");
        assert!(
            t.contains("host 2 of the seed list carries credentials"),
            "{t}"
        );
        let t = err("nats://n1,n2,canary@n3");
        assert!(
            t.contains("host 3 of the seed list carries credentials"),
            "{t}"
        );
        let t = err("nats://u:canary@n1,,n3");
        assert!(t.contains("host 2 of the seed list is empty"), "{t}");
        let t = err("nats://u:canary@n1,n2:99999");
        assert!(t.contains("host 2 of the seed list: not a URL"), "{t}");
        let t = err("nats://u:canary@n1:x,n2");
        assert!(t.contains("host 1 of the seed list"), "{t}");
        let t = err("http://u:canary@n1,n2");
        assert!(t.contains("scheme `http`"), "{t}");
    }
}
