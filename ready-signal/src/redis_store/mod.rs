//! The Redis side of PROTOCOL.md: keys, the fenced write script, and reads by Redis's own clock,
//! on one server, under Sentinel (`sentinel`) or in a Cluster (`cluster`).

use std::sync::{Arc, LazyLock};
use std::time::Duration;

use redis::{Script, Value};

use crate::error::Error;
use crate::fence::{Applied, Op};
use crate::name::Name;
use crate::record::{Record, decode_raw, malformed};
use crate::stores::{RedisStore, Topology};

pub(crate) mod cluster;
pub(crate) mod index;
pub(crate) mod keys;
pub(crate) mod node;
pub(crate) mod sentinel;

use cluster::ClusterReader;
use keys::Keys;
use node::{Budget, NodeConn, redis_error};

/// The one write: fenced by epoch, timed by Redis's clock, atomic.
///
/// An instance's epoch is handed out by the script at its first write, from a counter in Redis,
/// so Redis alone orders instances. A write with a lower epoch than the stored one's is refused
/// (returns 0): a late heartbeat or `stopping` of a predecessor never overwrites its successor.
const WRITE: &str = include_str!("../write.lua");

/// The write script with its SHA1 computed once: `EVALSHA`, and `EVAL` on `NOSCRIPT`.
static WRITE_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(WRITE));

/// What a writer says about itself; the script adds the times and the sequence number.
#[derive(Debug, Clone)]
pub(crate) struct Write<'a> {
    pub(crate) keys: &'a Keys,
    pub(crate) agent: &'a Name,
    pub(crate) replica: &'a Name,
    pub(crate) instance: &'a str,
    /// The epoch the script gave this instance; 0 before its first write.
    pub(crate) epoch: u64,
    pub(crate) state: &'a str,
    pub(crate) reason: &'a str,
    pub(crate) pid: u32,
    pub(crate) host: &'a str,
    pub(crate) interval_ms: u64,
    pub(crate) ttl_ms: u64,
    /// The container the writer runs in (64 lowercase hex digits), or empty.
    pub(crate) container: &'a str,
}

/// A writer's connection to the Redis store: the server, the master the Sentinels name, or
/// redis-rs's cluster client.
#[derive(Clone)]
pub(crate) enum RedisConn {
    Node(NodeConn),
    Sentinel(Arc<sentinel::Followed>),
    Cluster {
        conn: redis::cluster_async::ClusterConnection,
        store: String,
    },
}

impl std::fmt::Debug for RedisConn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisConn")
            .field("addr", &self.addr())
            .finish()
    }
}

impl RedisConn {
    /// Connects (and authenticates) within `timeout`; every later command is bounded by it too.
    /// Under Sentinel, the master is asked of the Sentinels at every connection.
    pub(crate) async fn connect(store: &RedisStore, timeout: Duration) -> Result<RedisConn, Error> {
        let unbounded = Budget::unbounded();
        Ok(match &store.topology {
            Topology::Single(addr) => {
                RedisConn::Node(NodeConn::open(addr, &store.settings, timeout, &unbounded).await?)
            }
            Topology::Sentinel(s) => RedisConn::Sentinel(Arc::new(
                sentinel::master(s, &store.settings, &store.addr, timeout, &unbounded).await?,
            )),
            Topology::Cluster(seeds) => RedisConn::Cluster {
                conn: cluster::writer(seeds, &store.settings, &store.addr, timeout).await?,
                store: store.addr.clone(),
            },
        })
    }

    /// Whether the connection is worth keeping after an error: a cluster client follows
    /// failovers itself (a new one would have to learn the whole cluster again), while a node's
    /// connection may be to a master that is gone or demoted.
    pub(crate) fn heals_itself(&self) -> bool {
        matches!(self, RedisConn::Cluster { .. })
    }

    /// Writes, retakes or removes a record through the fenced script: `EVALSHA`, and `EVAL` when
    /// the node does not have the script yet (a restart, a new node, a failover).
    pub(crate) async fn write(&mut self, w: &Write<'_>, op: Op) -> Result<Applied, Error> {
        let script = |name: &str, body: &str| {
            let mut cmd = redis::cmd(name);
            cmd.arg(body)
                .arg(5)
                .arg(w.keys.record(w.agent, w.replica))
                .arg(w.keys.replicas(w.agent))
                .arg(w.keys.agents(w.agent))
                .arg(w.keys.epoch(w.agent))
                .arg(w.keys.due(w.agent))
                .arg(op.as_str())
                .arg(w.instance)
                .arg(w.epoch)
                .arg(w.state)
                .arg(w.reason)
                .arg(w.pid)
                .arg(w.host)
                .arg(w.interval_ms)
                .arg(w.ttl_ms)
                .arg(w.agent.as_str())
                .arg(w.replica.as_str())
                .arg(w.container);
            cmd
        };
        let evalsha = script("EVALSHA", WRITE_SCRIPT.get_hash());
        let followed = match self {
            RedisConn::Sentinel(f) => Some(Arc::clone(f)),
            _ => None,
        };
        let addr = self.addr().to_string();
        let run = async {
            match self.query(&evalsha).await {
                Err(e)
                    if e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::NoScript) =>
                {
                    self.query(&script("EVAL", WRITE)).await
                }
                other => other,
            }
        };
        let still = async {
            match &followed {
                Some(f) => f.still_master().await,
                None => Ok(()),
            }
        };
        let (result, still) = futures_util::future::join(run, still).await;
        // Written to a master the Sentinels no longer name: lost to readers, so an error (the
        // publisher reconnects and writes again, to the new master).
        still?;
        let epoch: i64 = result.map_err(|e| redis_error(&addr, &e))?;
        Ok(match u64::try_from(epoch) {
            Ok(epoch) if epoch > 0 => Applied::Yes { epoch },
            _ => Applied::FencedOff,
        })
    }

    async fn query(&mut self, cmd: &redis::Cmd) -> redis::RedisResult<i64> {
        match self {
            RedisConn::Node(node) => cmd.query_async(&mut node.conn).await,
            RedisConn::Sentinel(followed) => {
                cmd.query_async(&mut followed.master.conn.clone()).await
            }
            RedisConn::Cluster { conn, .. } => cmd.query_async(conn).await,
        }
    }

    fn addr(&self) -> &str {
        match self {
            RedisConn::Node(node) => &node.addr,
            RedisConn::Sentinel(followed) => &followed.master.addr,
            RedisConn::Cluster { store, .. } => store,
        }
    }
}

/// A reader's connection to the Redis store: one server (or the master the Sentinels name), or
/// a Cluster routed key by key. Every read draws on the reader's budget.
#[derive(Debug, Clone)]
pub(crate) enum RedisReader {
    Node(NodeConn),
    Sentinel(Arc<sentinel::Followed>),
    Cluster(Arc<ClusterReader>),
}

impl RedisReader {
    /// Connects within `timeout` (which bounds every later command too); what is read from the
    /// servers draws on `budget`.
    pub(crate) async fn connect(
        store: &RedisStore,
        timeout: Duration,
        budget: &Budget,
    ) -> Result<RedisReader, Error> {
        Ok(match &store.topology {
            Topology::Single(addr) => {
                RedisReader::Node(NodeConn::open(addr, &store.settings, timeout, budget).await?)
            }
            Topology::Sentinel(s) => RedisReader::Sentinel(Arc::new(
                sentinel::master(s, &store.settings, &store.addr, timeout, budget).await?,
            )),
            Topology::Cluster(seeds) => RedisReader::Cluster(Arc::new(
                ClusterReader::connect(seeds, &store.settings, &store.addr, timeout, budget)
                    .await?,
            )),
        })
    }

    /// Runs `cmds(key)` for every key, with the `TIME` of the server that holds the key: one
    /// pipeline on one server, one per node in a Cluster.
    async fn batch(
        &self,
        keys: &[String],
        cmds: &(dyn Fn(&str) -> Vec<redis::Cmd> + Sync),
    ) -> Result<Vec<cluster::Answer>, Error> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let (node, followed) = match self {
            RedisReader::Cluster(c) => return c.batch(keys, cmds).await,
            RedisReader::Node(node) => (node, None),
            RedisReader::Sentinel(f) => (&f.master, Some(f)),
        };
        let groups: Vec<Vec<redis::Cmd>> = keys.iter().map(|k| cmds(k)).collect();
        let mut pipe = redis::pipe();
        for cmd in groups.iter().flatten() {
            pipe.add_command(cmd.clone());
        }
        pipe.cmd("TIME");
        let mut conn = node.conn.clone();
        let read = pipe.query_async(&mut conn);
        // Under Sentinel, a read of a master the Sentinels no longer name is an error (a
        // long-running reader reconnects), not records that no writer refreshes any more.
        let values: redis::RedisResult<Vec<Value>> = match followed {
            Some(f) => {
                let (values, still) = futures_util::future::join(read, f.still_master()).await;
                still?;
                values
            }
            None => read.await,
        };
        let mut values = values.map_err(|e| redis_error(&node.addr, &e))?;
        let bad = |why: &str| Error::Redis {
            addr: node.addr.clone(),
            message: format!("unexpected reply: {why}"),
            source: None,
        };
        let time = values.pop().ok_or_else(|| bad("empty pipeline reply"))?;
        let (secs, micros): (u64, u64) =
            redis::from_redis_value_ref(&time).map_err(|e| bad(&e.to_string()))?;
        let now_ms = secs * 1000 + micros / 1000;
        if values.len() != groups.iter().map(Vec::len).sum::<usize>() {
            return Err(bad("short pipeline reply"));
        }
        let mut values = values.into_iter();
        Ok(groups
            .iter()
            .map(|g| (values.by_ref().take(g.len()).collect(), now_ms))
            .collect())
    }

    /// Reads one record with its remaining TTL and the clock of the server holding it.
    pub(crate) async fn read(&self, key: &str) -> Result<Snapshot, Error> {
        let mut snaps = self.read_many(&[key.to_string()]).await?;
        snaps.pop().ok_or_else(|| Error::Redis {
            addr: self.addr().to_string(),
            message: "unexpected reply: empty".into(),
            source: None,
        })
    }

    /// Reads several records (`HGETALL`, `PTTL`), pipelined per server.
    pub(crate) async fn read_many(&self, keys: &[String]) -> Result<Vec<Snapshot>, Error> {
        let answers = self
            .batch(keys, &|key| {
                let mut hgetall = redis::cmd("HGETALL");
                hgetall.arg(key);
                let mut pttl = redis::cmd("PTTL");
                pttl.arg(key);
                vec![hgetall, pttl]
            })
            .await?;
        let bad = |why: &str| Error::Redis {
            addr: self.addr().to_string(),
            message: format!("unexpected reply: {why}"),
            source: None,
        };
        keys.iter()
            .zip(answers)
            .map(|(key, (values, now_ms))| {
                let [fields, pttl] = values.as_slice() else {
                    return Err(bad("short pipeline reply"));
                };
                // Bytes, not text: a field that is not UTF-8 is escaped by the decoder, never a
                // reason to fail the whole read.
                let fields: Vec<(Vec<u8>, Vec<u8>)> =
                    redis::from_redis_value_ref(fields).map_err(|e| bad(&e.to_string()))?;
                let pttl: i64 =
                    redis::from_redis_value_ref(pttl).map_err(|e| bad(&e.to_string()))?;
                Ok(Snapshot::new(key, fields, pttl, now_ms))
            })
            .collect()
    }

    /// The live members of a sorted set (replica or agent names whose score, an expiry, is still
    /// ahead of Redis's clock), oldest expiry first. Readers filter as writers trim, so a departed
    /// agent leaves listings when its last record expires even if nobody writes again.
    pub(crate) async fn members(&self, key: &str) -> Result<Vec<String>, Error> {
        Ok(self
            .members_many(&[key.to_string()])
            .await?
            .pop()
            .unwrap_or_default())
    }

    /// The live members of several sorted sets (see [`RedisReader::members`]), pipelined per
    /// server.
    pub(crate) async fn members_many(&self, keys: &[String]) -> Result<Vec<Vec<String>>, Error> {
        let answers = self
            .batch(keys, &|key| {
                let mut zrange = redis::cmd("ZRANGE");
                zrange.arg(key).arg(0).arg(-1).arg("WITHSCORES");
                vec![zrange]
            })
            .await?;
        answers
            .iter()
            .map(|(values, now_ms)| {
                // Bytes: a member that is not UTF-8 is not a valid name, and is skipped by the
                // caller like any other invalid name instead of failing the listing.
                let scored: Vec<(Vec<u8>, f64)> = match values.first() {
                    Some(v) => redis::from_redis_value_ref(v).map_err(|e| Error::Redis {
                        addr: self.addr().to_string(),
                        message: format!("unexpected reply: {e}"),
                        source: Some(crate::error::Source::new(e)),
                    })?,
                    None => Vec::new(),
                };
                let now = *now_ms as f64;
                Ok(scored
                    .into_iter()
                    .filter(|(_, expiry)| *expiry > now)
                    .map(|(name, _)| String::from_utf8_lossy(&name).into_owned())
                    .collect())
            })
            .collect()
    }

    fn addr(&self) -> &str {
        match self {
            RedisReader::Node(node) => &node.addr,
            RedisReader::Sentinel(f) => &f.master.addr,
            RedisReader::Cluster(c) => c.store(),
        }
    }
}

/// A record as read, with the server's clock at the time of reading.
#[derive(Debug)]
pub(crate) struct Snapshot {
    pub(crate) record: Option<Result<Record, Error>>,
    /// Remaining time to live in milliseconds (negative: no key or no expiry).
    pub(crate) pttl_ms: i64,
    /// Redis's `TIME` in Unix milliseconds.
    pub(crate) now_ms: u64,
}

impl Snapshot {
    fn new(key: &str, fields: Vec<(Vec<u8>, Vec<u8>)>, pttl_ms: i64, now_ms: u64) -> Snapshot {
        let record = if fields.is_empty() {
            None
        } else {
            Some(decode_raw(&fields).map_err(|reason| malformed(key, reason)))
        };
        Snapshot {
            record,
            pttl_ms,
            now_ms,
        }
    }
}
