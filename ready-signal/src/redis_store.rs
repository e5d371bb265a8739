//! The Redis side of PROTOCOL.md: keys, the fenced write script, and reads by Redis's own clock.

use std::collections::HashMap;
use std::sync::LazyLock;
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, Client, RedisError, Script};

use crate::config::RedisStore;
use crate::record::{Record, decode_record, malformed};
use crate::{Error, Name};

/// Key prefix of every key this crate writes.
pub const KEY_PREFIX: &str = "ready-signal";

/// How long a replica stays listed (as dead) after its record expired.
pub(crate) const DEAD_LISTED_MS: u64 = 60_000;

/// `ready-signal:{ns}:{agent}:r:{replica}`: the record hash.
pub fn record_key(ns: &Name, agent: &Name, replica: &Name) -> String {
    format!("{KEY_PREFIX}:{ns}:{agent}:r:{replica}")
}

/// `ready-signal:{ns}:{agent}:replicas`: sorted set of replica names, scored by record expiry.
pub fn replicas_key(ns: &Name, agent: &Name) -> String {
    format!("{KEY_PREFIX}:{ns}:{agent}:replicas")
}

/// `ready-signal:{ns}:agents`: sorted set of agent names, scored by latest record expiry.
pub fn agents_key(ns: &Name) -> String {
    format!("{KEY_PREFIX}:{ns}:agents")
}

/// The one write: fenced by instance id, timed by Redis's clock, atomic.
///
/// A write from an older instance than the stored one is refused (returns 0), so a late
/// heartbeat or `stopping` of a predecessor never overwrites its successor's record.
const WRITE: &str = include_str!("write.lua");

/// The write script with its SHA1 computed once; invoked by `EVALSHA`, loaded on `NOSCRIPT`.
static WRITE_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(WRITE));

/// What a writer says about itself; the script adds the times and the sequence number.
#[derive(Debug, Clone)]
pub(crate) struct Write<'a> {
    pub(crate) namespace: &'a Name,
    pub(crate) agent: &'a Name,
    pub(crate) replica: &'a Name,
    pub(crate) instance: &'a str,
    pub(crate) state: &'a str,
    pub(crate) reason: &'a str,
    pub(crate) pid: u32,
    pub(crate) host: &'a str,
    pub(crate) interval_ms: u64,
    pub(crate) ttl_ms: u64,
}

/// Whether a write was applied or refused by the fence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Applied {
    Yes,
    FencedOff,
}

/// One connection to the Redis store.
#[derive(Clone)]
pub(crate) struct RedisConn {
    conn: MultiplexedConnection,
    addr: String,
}

impl std::fmt::Debug for RedisConn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisConn")
            .field("addr", &self.addr)
            .finish()
    }
}

impl RedisConn {
    /// Connects (and authenticates) within `timeout`; every later command is bounded by it too.
    pub(crate) async fn connect(store: &RedisStore, timeout: Duration) -> Result<RedisConn, Error> {
        let addr = store.addr.clone();
        let client = Client::open(store.info.clone()).map_err(|e| redis_error(&addr, &e))?;
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(Some(timeout));
        let conn = tokio::time::timeout(
            timeout,
            client.get_multiplexed_async_connection_with_config(&config),
        )
        .await
        .map_err(|_| Error::Timeout {
            what: format!("connecting to redis at {addr}"),
            after: timeout,
        })?
        .map_err(|e| redis_error(&addr, &e))?;
        Ok(RedisConn { conn, addr })
    }

    /// Like [`RedisConn::connect`], for a one-shot reader: at most `read_bound` bytes are read
    /// from the server over the connection's life, so a server (or impostor) streaming an endless
    /// reply cannot grow the reader's memory past about that much. redis-rs buffers a reply of
    /// whatever length the peer announces; the bound sits under it, on the stream.
    pub(crate) async fn connect_bounded(
        store: &RedisStore,
        timeout: Duration,
        read_bound: usize,
    ) -> Result<RedisConn, Error> {
        let addr = store.addr.clone();
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(Some(timeout));
        let connect = async {
            let tcp = tokio::net::TcpStream::connect(addr.as_str())
                .await
                .map_err(|e| Error::Redis {
                    addr: addr.clone(),
                    message: e.to_string(),
                })?;
            let _ = tcp.set_nodelay(true);
            let stream = ReadBound {
                inner: tcp,
                left: read_bound,
            };
            let (conn, driver) =
                MultiplexedConnection::new_with_config(store.info.redis_settings(), stream, config)
                    .await
                    .map_err(|e| redis_error(&addr, &e))?;
            tokio::spawn(driver);
            Ok(conn)
        };
        let conn = tokio::time::timeout(timeout, connect)
            .await
            .map_err(|_| Error::Timeout {
                what: format!("connecting to redis at {addr}"),
                after: timeout,
            })??;
        Ok(RedisConn { conn, addr })
    }

    /// Writes (or with `delete`, removes) a record through the fenced script.
    pub(crate) async fn write(&mut self, w: &Write<'_>, delete: bool) -> Result<Applied, Error> {
        let mut invocation = WRITE_SCRIPT.prepare_invoke();
        invocation
            .key(record_key(w.namespace, w.agent, w.replica))
            .key(replicas_key(w.namespace, w.agent))
            .key(agents_key(w.namespace))
            .arg(if delete { "del" } else { "put" })
            .arg(w.instance)
            .arg(w.state)
            .arg(w.reason)
            .arg(w.pid)
            .arg(w.host)
            .arg(w.interval_ms)
            .arg(w.ttl_ms)
            .arg(w.agent.as_str())
            .arg(w.replica.as_str())
            .arg(DEAD_LISTED_MS);
        let applied: i64 = invocation
            .invoke_async(&mut self.conn)
            .await
            .map_err(|e| redis_error(&self.addr, &e))?;
        Ok(if applied == 1 {
            Applied::Yes
        } else {
            Applied::FencedOff
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
            .query_async(&mut self.conn)
            .await
            .map_err(|e| redis_error(&self.addr, &e))?;
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
            .query_async(&mut self.conn)
            .await
            .map_err(|e| redis_error(&self.addr, &e))?;
        let bad = |why: &str| Error::Redis {
            addr: self.addr.clone(),
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

    /// The members of a sorted set (replica or agent names), oldest expiry first.
    pub(crate) async fn members(&mut self, key: &str) -> Result<Vec<String>, Error> {
        redis::cmd("ZRANGE")
            .arg(key)
            .arg(0)
            .arg(-1)
            .query_async(&mut self.conn)
            .await
            .map_err(|e| redis_error(&self.addr, &e))
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
    /// The members of several sorted sets in one pipeline.
    pub(crate) async fn members_many(
        &mut self,
        keys: &[String],
    ) -> Result<Vec<Vec<String>>, Error> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for key in keys {
            pipe.cmd("ZRANGE").arg(key).arg(0).arg(-1);
        }
        pipe.query_async(&mut self.conn)
            .await
            .map_err(|e| redis_error(&self.addr, &e))
    }
}

/// A stream that reads at most `left` more bytes, then fails every read.
#[derive(Debug)]
struct ReadBound<S> {
    inner: S,
    left: usize,
}

impl<S: tokio::io::AsyncRead + Unpin> tokio::io::AsyncRead for ReadBound<S> {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        if self.left == 0 {
            return std::task::Poll::Ready(Err(std::io::Error::other(
                "the server sent more than the read bound (an endless reply?)",
            )));
        }
        let mut chunk = [0u8; 4096];
        let max = self.left.min(buf.remaining()).min(chunk.len());
        let mut sub = tokio::io::ReadBuf::new(&mut chunk[..max]);
        match std::pin::Pin::new(&mut self.inner).poll_read(cx, &mut sub) {
            std::task::Poll::Ready(Ok(())) => {
                let n = sub.filled().len();
                buf.put_slice(sub.filled());
                self.left -= n;
                std::task::Poll::Ready(Ok(()))
            }
            other => other,
        }
    }
}

impl<S: tokio::io::AsyncWrite + Unpin> tokio::io::AsyncWrite for ReadBound<S> {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
