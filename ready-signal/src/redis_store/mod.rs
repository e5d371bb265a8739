//! The Redis side of PROTOCOL.md: keys, the fenced write script, and reads by Redis's own clock.

use std::collections::HashMap;
use std::sync::LazyLock;
use std::time::Duration;

use redis::{RedisError, Script};

use crate::config::{RedisStore, Topology};
use crate::record::{Record, decode_record, malformed};
use crate::{Error, Name};

pub(crate) mod node;
pub(crate) mod sentinel;

use node::{Budget, NodeConn};

/// Key prefix of every key this crate writes.
pub const KEY_PREFIX: &str = "ready-signal";

/// `ready-signal:{ns}:{agent}:r:{replica}`: the record hash.
pub fn record_key(ns: &Name, agent: &Name, replica: &Name) -> String {
    format!("{KEY_PREFIX}:{ns}:{agent}:r:{replica}")
}

/// `ready-signal:{ns}:{agent}:replicas`: sorted set of replica names, scored by record expiry.
pub fn replicas_key(ns: &Name, agent: &Name) -> String {
    format!("{KEY_PREFIX}:{ns}:{agent}:replicas")
}

/// `ready-signal:{ns}:agents`: sorted set of agent names, scored by the latest expiry of their
/// live records.
pub fn agents_key(ns: &Name) -> String {
    format!("{KEY_PREFIX}:{ns}:agents")
}

/// `ready-signal:{ns}:epoch`: the last epoch the write script handed out in the namespace.
pub fn epoch_key(ns: &Name) -> String {
    format!("{KEY_PREFIX}:{ns}:epoch")
}

/// The one write: fenced by epoch, timed by Redis's clock, atomic.
///
/// An instance's epoch is handed out by the script at its first write, from a counter in Redis,
/// so Redis alone orders instances. A write with a lower epoch than the stored one's is refused
/// (returns 0): a late heartbeat or `stopping` of a predecessor never overwrites its successor.
const WRITE: &str = include_str!("../write.lua");

/// The write script with its SHA1 computed once; invoked by `EVALSHA`, loaded on `NOSCRIPT`.
static WRITE_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(WRITE));

/// What a writer says about itself; the script adds the times and the sequence number.
#[derive(Debug, Clone)]
pub(crate) struct Write<'a> {
    pub(crate) namespace: &'a Name,
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
}

/// What the write script is asked to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    /// Write the record: a first write (epoch 0) takes a new epoch and wins; later ones are
    /// refused when a newer epoch holds the record.
    Put,
    /// A fenced writer's attempt: takes a new epoch only when no other instance holds the record.
    Retake,
    /// Remove the record, only if it is this instance's.
    Del,
}

impl Op {
    fn as_str(self) -> &'static str {
        match self {
            Op::Put => "put",
            Op::Retake => "retake",
            Op::Del => "del",
        }
    }
}

/// Whether a write was applied (with the writer's epoch) or refused by the fence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Applied {
    Yes { epoch: u64 },
    FencedOff,
}

/// One connection to the Redis store: the server, or the master the Sentinels name.
#[derive(Clone)]
pub(crate) struct RedisConn {
    node: NodeConn,
}

impl std::fmt::Debug for RedisConn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisConn")
            .field("addr", &self.node.addr)
            .finish()
    }
}

impl RedisConn {
    /// Connects (and authenticates) within `timeout`; every later command is bounded by it too.
    /// Under Sentinel, the master is asked of the Sentinels at every connection.
    pub(crate) async fn connect(store: &RedisStore, timeout: Duration) -> Result<RedisConn, Error> {
        RedisConn::connect_bounded(store, timeout, &Budget::unbounded()).await
    }

    /// Like [`RedisConn::connect`], for a reader: what is read from the servers draws on
    /// `budget`.
    pub(crate) async fn connect_bounded(
        store: &RedisStore,
        timeout: Duration,
        budget: &Budget,
    ) -> Result<RedisConn, Error> {
        let node = match &store.topology {
            Topology::Single(addr) => {
                NodeConn::open(addr, &store.settings, timeout, budget).await?
            }
            Topology::Sentinel(s) => {
                sentinel::master(s, &store.settings, &store.addr, timeout, budget).await?
            }
        };
        Ok(RedisConn { node })
    }

    /// Writes, retakes or removes a record through the fenced script.
    pub(crate) async fn write(&mut self, w: &Write<'_>, op: Op) -> Result<Applied, Error> {
        let mut invocation = WRITE_SCRIPT.prepare_invoke();
        invocation
            .key(record_key(w.namespace, w.agent, w.replica))
            .key(replicas_key(w.namespace, w.agent))
            .key(agents_key(w.namespace))
            .key(epoch_key(w.namespace))
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
            .arg(w.replica.as_str());
        let epoch: i64 = invocation
            .invoke_async(&mut self.node.conn)
            .await
            .map_err(|e| redis_error(&self.node.addr, &e))?;
        Ok(match u64::try_from(epoch) {
            Ok(epoch) if epoch > 0 => Applied::Yes { epoch },
            _ => Applied::FencedOff,
        })
    }

    /// Reads one record with its remaining TTL and Redis's clock, in one round trip.
    pub(crate) async fn read(&mut self, key: &str) -> Result<Snapshot, Error> {
        let (fields, pttl, time): (HashMap<String, String>, i64, (u64, u64)) = redis::pipe()
            .cmd("HGETALL")
            .arg(key)
            .cmd("PTTL")
            .arg(key)
            .cmd("TIME")
            .query_async(&mut self.node.conn)
            .await
            .map_err(|e| redis_error(&self.node.addr, &e))?;
        Ok(Snapshot::new(key, fields, pttl, time))
    }

    /// Reads several records in one pipeline.
    pub(crate) async fn read_many(&mut self, keys: &[String]) -> Result<Vec<Snapshot>, Error> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for key in keys {
            pipe.cmd("HGETALL").arg(key).cmd("PTTL").arg(key);
        }
        pipe.cmd("TIME");
        let values: Vec<redis::Value> = pipe
            .query_async(&mut self.node.conn)
            .await
            .map_err(|e| redis_error(&self.node.addr, &e))?;
        let bad = |why: &str| Error::Redis {
            addr: self.node.addr.clone(),
            message: format!("unexpected reply: {why}"),
        };
        let Some((time, pairs)) = values.split_last() else {
            return Err(bad("empty pipeline reply"));
        };
        let time: (u64, u64) =
            redis::from_redis_value_ref(time).map_err(|e| bad(&e.to_string()))?;
        let mut out = Vec::with_capacity(keys.len());
        for (key, pair) in keys.iter().zip(pairs.chunks(2)) {
            let [fields, pttl] = pair else {
                return Err(bad("short pipeline reply"));
            };
            let fields: HashMap<String, String> =
                redis::from_redis_value_ref(fields).map_err(|e| bad(&e.to_string()))?;
            let pttl: i64 = redis::from_redis_value_ref(pttl).map_err(|e| bad(&e.to_string()))?;
            out.push(Snapshot::new(key, fields, pttl, time));
        }
        Ok(out)
    }

    /// The live members of a sorted set (replica or agent names whose score, an expiry, is still
    /// ahead of Redis's clock), oldest expiry first. Readers filter as writers trim, so a departed
    /// agent leaves listings when its last record expires even if nobody writes again.
    pub(crate) async fn members(&mut self, key: &str) -> Result<Vec<String>, Error> {
        Ok(self
            .members_many(&[key.to_string()])
            .await?
            .pop()
            .unwrap_or_default())
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
    fn new(
        key: &str,
        fields: HashMap<String, String>,
        pttl_ms: i64,
        (secs, micros): (u64, u64),
    ) -> Snapshot {
        let record = if fields.is_empty() {
            None
        } else {
            Some(decode_record(fields).map_err(|reason| malformed(key, reason)))
        };
        Snapshot {
            record,
            pttl_ms,
            now_ms: secs * 1000 + micros / 1000,
        }
    }
}

/// The server's words for an error reply (`WRONGPASS invalid username-password pair`), or the
/// system's for an I/O failure; never the URL.
pub(crate) fn redis_error(addr: &str, e: &RedisError) -> Error {
    let message = match (e.code(), e.detail()) {
        (Some(code), Some(detail)) => format!("{code} {detail}"),
        (Some(code), None) => code.to_string(),
        _ => e.to_string(),
    };
    Error::Redis {
        addr: addr.to_string(),
        message,
    }
}

impl RedisConn {
    /// The live members of several sorted sets in one pipeline (see [`RedisConn::members`]).
    pub(crate) async fn members_many(
        &mut self,
        keys: &[String],
    ) -> Result<Vec<Vec<String>>, Error> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for key in keys {
            pipe.cmd("ZRANGE").arg(key).arg(0).arg(-1).arg("WITHSCORES");
        }
        pipe.cmd("TIME");
        let mut values: Vec<redis::Value> = pipe
            .query_async(&mut self.node.conn)
            .await
            .map_err(|e| redis_error(&self.node.addr, &e))?;
        let bad = |why: &str| Error::Redis {
            addr: self.node.addr.clone(),
            message: format!("unexpected reply: {why}"),
        };
        let time = values.pop().ok_or_else(|| bad("empty pipeline reply"))?;
        let (secs, micros): (u64, u64) =
            redis::from_redis_value_ref(&time).map_err(|e| bad(&e.to_string()))?;
        let now_ms = (secs * 1000 + micros / 1000) as f64;
        values
            .iter()
            .map(|v| {
                let scored: Vec<(String, f64)> =
                    redis::from_redis_value_ref(v).map_err(|e| bad(&e.to_string()))?;
                Ok(scored
                    .into_iter()
                    .filter(|(_, expiry)| *expiry > now_ms)
                    .map(|(name, _)| name)
                    .collect())
            })
            .collect()
    }
}
