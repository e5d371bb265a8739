//! Redis Cluster: the writer on redis-rs's cluster client, the readers on our own routing.
//!
//! A writer is long-running and writes one slot per call: redis-rs's `ClusterConnection`
//! follows `MOVED`/`ASK` and failovers (it refreshes its slot map on its own). A reader must
//! keep its memory bounded whatever a peer sends, and redis-rs's cluster connections cannot be
//! given a wrapped stream, so readers route themselves over [`NodeConn`]s that draw on the
//! reader's [`Budget`]: `CLUSTER SLOTS` from the seeds (asked at once, the first answer wins),
//! key -> slot -> node, one pipeline per node with that node's `TIME` (the clock of the keys it
//! holds), and one `MOVED` or `ASK` followed per key.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::future::join_all;
use futures_util::stream::{FuturesUnordered, StreamExt};
use redis::cluster::ClusterClientBuilder;
use redis::cluster_async::ClusterConnection;
use redis::{RedisConnectionInfo, Value};

use super::keys::keyslot;
use super::node::{Budget, NodeConn, redis_error};
use crate::Error;

/// The least time redis-rs is given to connect to one node, or for one node to answer.
const MIN_NODE_TIMEOUT: Duration = Duration::from_millis(100);

/// How long one node may take to connect or answer, out of an operation's `timeout`: a
/// quarter of it (at least [`MIN_NODE_TIMEOUT`], at most `timeout`), so a node that hangs
/// (stopped, black-holed) costs a fraction of a write rather than all of it.
fn node_timeout(timeout: Duration) -> Duration {
    (timeout / 4).max(MIN_NODE_TIMEOUT).min(timeout)
}

/// Connects redis-rs's cluster client to the cluster of `seeds` within `timeout`.
///
/// redis-rs connects to every initial node and waits for all of them, and asks its nodes for
/// the slot map one after another: a seed that hangs would eat the whole budget at every
/// (re)connection, and keep every writer of that seed list out until it resumes, even after
/// the cluster failed over. So the seeds are first asked for the slot map all at once (the
/// reader's way: the first complete answer wins), and redis-rs is given only the seed that
/// answered and the masters of its map, with a per-node timeout well under `timeout`.
pub(crate) async fn writer(
    seeds: &[String],
    settings: &RedisConnectionInfo,
    store: &str,
    timeout: Duration,
) -> Result<ClusterConnection, Error> {
    let per_node = node_timeout(timeout);
    let began = tokio::time::Instant::now();
    // The seeds are parsed first, so a bad one is a configuration error, not a network one.
    for seed in seeds {
        node_info(seed, settings)?;
    }
    let probe = ClusterReader::new(seeds, settings, store, per_node, &Budget::unbounded());
    let (answered, map) = probe.slot_map_from().await?;
    drop(probe);
    let mut nodes = vec![answered];
    for (_, _, node) in &map.ranges {
        if !nodes.contains(node) {
            nodes.push(node.clone());
        }
    }
    let nodes = nodes
        .iter()
        .map(|s| node_info(s, settings))
        .collect::<Result<Vec<_>, Error>>()?;
    let client = ClusterClientBuilder::new(nodes)
        .connection_timeout(per_node)
        .response_timeout(per_node)
        .build()
        .map_err(|e| redis_error(store, &e))?;
    // One deadline for the whole: what the seeds' answer left of `timeout`.
    let left = timeout.saturating_sub(began.elapsed());
    tokio::time::timeout(left, client.get_async_connection())
        .await
        .map_err(|_| Error::Timeout {
            what: format!("connecting to redis at {store}"),
            after: timeout,
        })?
        .map_err(|e| redis_error(store, &e))
}

/// A seed's connection settings for redis-rs.
fn node_info(seed: &str, settings: &RedisConnectionInfo) -> Result<redis::ConnectionInfo, Error> {
    let (host, port) =
        split_addr(seed).ok_or_else(|| Error::Config(format!("{seed}: not host:port")))?;
    let info = redis::IntoConnectionInfo::into_connection_info(redis::ConnectionAddr::Tcp(
        host.to_string(),
        port,
    ))
    .map_err(|e| redis_error(seed, &e))?;
    Ok(info.set_redis_settings(settings.clone()))
}

/// `host:port` (IPv6 in brackets) split.
fn split_addr(addr: &str) -> Option<(&str, u16)> {
    let (host, port) = addr.rsplit_once(':')?;
    Some((
        host.trim_start_matches('[').trim_end_matches(']'),
        port.parse().ok()?,
    ))
}

/// `host:port`, with brackets around an IPv6 host.
fn join_addr(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// Which node serves which slots: `(first, last, node)` ranges from `CLUSTER SLOTS`.
#[derive(Debug, Default)]
struct SlotMap {
    ranges: Vec<(u16, u16, String)>,
}

impl SlotMap {
    fn node_of(&self, slot: u16) -> Option<&str> {
        self.ranges
            .iter()
            .find(|(lo, hi, _)| (*lo..=*hi).contains(&slot))
            .map(|(_, _, node)| node.as_str())
    }
}

/// A reader of a Redis Cluster: its slot map and a connection per node, made as needed.
pub(crate) struct ClusterReader {
    seeds: Vec<String>,
    settings: RedisConnectionInfo,
    store: String,
    timeout: Duration,
    budget: Budget,
    /// The slot map; `None` after a `MOVED` or a lost node, to be asked again.
    map: Mutex<Option<Arc<SlotMap>>>,
    conns: Mutex<HashMap<String, NodeConn>>,
}

impl std::fmt::Debug for ClusterReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterReader")
            .field("store", &self.store)
            .finish()
    }
}

/// What one key's commands returned, and the `TIME` of the node that answered, in Unix ms.
pub(crate) type Answer = (Vec<Value>, u64);

impl ClusterReader {
    /// Learns the slot map from the seeds.
    pub(crate) async fn connect(
        seeds: &[String],
        settings: &RedisConnectionInfo,
        store: &str,
        timeout: Duration,
        budget: &Budget,
    ) -> Result<ClusterReader, Error> {
        let reader = ClusterReader::new(seeds, settings, store, timeout, budget);
        reader.slot_map().await?;
        Ok(reader)
    }

    /// A reader that has asked nothing yet.
    fn new(
        seeds: &[String],
        settings: &RedisConnectionInfo,
        store: &str,
        timeout: Duration,
        budget: &Budget,
    ) -> ClusterReader {
        ClusterReader {
            seeds: seeds.to_vec(),
            settings: settings.clone(),
            store: store.to_string(),
            timeout,
            budget: budget.clone(),
            map: Mutex::new(None),
            conns: Mutex::new(HashMap::new()),
        }
    }

    /// How messages name the store.
    pub(crate) fn store(&self) -> &str {
        &self.store
    }

    /// Runs `cmds(key)` for every key on the node that holds it, one pipeline per node, with
    /// that node's `TIME`. A `MOVED` or `ASK` is followed once. Any node's failure fails all.
    pub(crate) async fn batch(
        &self,
        keys: &[String],
        cmds: &(dyn Fn(&str) -> Vec<redis::Cmd> + Sync),
    ) -> Result<Vec<Answer>, Error> {
        self.batch_each(keys, cmds).await.into_iter().collect()
    }

    /// Like [`ClusterReader::batch`], with one result per key: a node that fails (down, hung,
    /// no master for its slots) fails only the keys it holds, so what the other nodes hold is
    /// still read.
    pub(crate) async fn batch_each(
        &self,
        keys: &[String],
        cmds: &(dyn Fn(&str) -> Vec<redis::Cmd> + Sync),
    ) -> Vec<Result<Answer, Error>> {
        let map = match self.slot_map().await {
            Ok(map) => map,
            Err(e) => return keys.iter().map(|_| Err(e.copy())).collect(),
        };
        let mut out: Vec<Option<Result<Answer, Error>>> = (0..keys.len()).map(|_| None).collect();
        let mut by_node: HashMap<&str, Vec<usize>> = HashMap::new();
        for (i, key) in keys.iter().enumerate() {
            let slot = keyslot(key.as_bytes());
            match map.node_of(slot) {
                Some(node) => by_node.entry(node).or_default().push(i),
                None => {
                    out[i] = Some(Err(Error::Redis {
                        addr: self.store.clone(),
                        message: format!("no node serves slot {slot} (cluster not ready?)"),
                        source: None,
                    }));
                }
            }
        }
        let asked = join_all(by_node.iter().map(|(node, indexes)| async move {
            let groups: Vec<Vec<redis::Cmd>> = indexes.iter().map(|&i| cmds(&keys[i])).collect();
            // One node's deadline: a hung node fails its own keys, not the whole read.
            let answer =
                match tokio::time::timeout(self.timeout, self.pipeline(node, &groups, false)).await
                {
                    Ok(answer) => answer,
                    Err(_) => {
                        self.forget_node(node);
                        Err(Error::Timeout {
                            what: format!("reading from redis at {node}"),
                            after: self.timeout,
                        })
                    }
                };
            (indexes, answer)
        }))
        .await;
        let mut redirects = Vec::new();
        for (indexes, answer) in asked {
            match answer {
                Ok(replies) => {
                    for (&i, reply) in indexes.iter().zip(replies) {
                        match reply {
                            Reply::Done(answer) => out[i] = Some(Ok(answer)),
                            Reply::Redirect { node, ask } => redirects.push((i, node, ask)),
                        }
                    }
                }
                Err(e) => {
                    for &i in indexes {
                        out[i] = Some(Err(e.copy()));
                    }
                }
            }
        }
        for (i, node, ask) in redirects {
            if !ask {
                self.forget_map();
            }
            out[i] = Some(match self.pipeline(&node, &[cmds(&keys[i])], ask).await {
                Ok(mut replies) => match replies.pop() {
                    Some(Reply::Done(answer)) => Ok(answer),
                    _ => Err(Error::Redis {
                        addr: node,
                        message: format!("the slot of {} moved again (resharding?)", keys[i]),
                        source: None,
                    }),
                },
                Err(e) => Err(e),
            });
        }
        out.into_iter()
            .map(|a| a.unwrap_or_else(|| Ok(Answer::default())))
            .collect()
    }

    /// One pipeline on `node`: each group of commands (of one key), then `TIME`; `ASKING`
    /// before each command when `asking`.
    async fn pipeline(
        &self,
        node: &str,
        groups: &[Vec<redis::Cmd>],
        asking: bool,
    ) -> Result<Vec<Reply>, Error> {
        let mut conn = self.conn(node).await?;
        let mut pipe = redis::pipe();
        pipe.ignore_errors();
        for group in groups {
            for cmd in group {
                // ASKING lets only the next command in.
                if asking {
                    pipe.cmd("ASKING");
                }
                pipe.add_command(cmd.clone());
            }
        }
        pipe.cmd("TIME");
        let mut values: Vec<Value> = match pipe.query_async(&mut conn.conn).await {
            Ok(values) => values,
            Err(e) => {
                self.forget_node(node);
                return Err(redis_error(node, &e));
            }
        };
        let bad = |why: &str| Error::Redis {
            addr: node.to_string(),
            message: format!("unexpected reply: {why}"),
            source: None,
        };
        let time = values.pop().ok_or_else(|| bad("empty pipeline reply"))?;
        if let Value::ServerError(e) = &time {
            return Err(server_error(node, e));
        }
        let (secs, micros): (u64, u64) =
            redis::from_redis_value_ref(&time).map_err(|e| bad(&e.to_string()))?;
        let now_ms = secs * 1000 + micros / 1000;
        let mut values = values.into_iter();
        let mut out = Vec::with_capacity(groups.len());
        for group in groups {
            let replies: Vec<Value> = values
                .by_ref()
                .take(group.len() * if asking { 2 } else { 1 })
                .enumerate()
                .filter(|(i, _)| !asking || i % 2 == 1)
                .map(|(_, v)| v)
                .collect();
            if replies.len() != group.len() {
                return Err(bad("short pipeline reply"));
            }
            let redirect = replies.iter().find_map(|v| match v {
                Value::ServerError(e) if matches!(e.code(), "MOVED" | "ASK") => Some((
                    e.details()
                        .and_then(|d| d.split_whitespace().nth(1))
                        .map(str::to_string),
                    e.code() == "ASK",
                )),
                _ => None,
            });
            if let Some((target, ask)) = redirect {
                let node = target.ok_or_else(|| bad("redirect without an address"))?;
                out.push(Reply::Redirect { node, ask });
                continue;
            }
            if let Some(Value::ServerError(e)) =
                replies.iter().find(|v| matches!(v, Value::ServerError(_)))
            {
                return Err(server_error(node, e));
            }
            out.push(Reply::Done((replies, now_ms)));
        }
        Ok(out)
    }

    /// The connection to `node`, opened when there is none.
    async fn conn(&self, node: &str) -> Result<NodeConn, Error> {
        if let Some(c) = self.lock_conns().get(node) {
            return Ok(c.clone());
        }
        let conn = match NodeConn::open(node, &self.settings, self.timeout, &self.budget).await {
            Ok(conn) => conn,
            Err(e) => {
                self.forget_map();
                return Err(e);
            }
        };
        self.lock_conns().insert(node.to_string(), conn.clone());
        Ok(conn)
    }

    fn lock_conns(&self) -> std::sync::MutexGuard<'_, HashMap<String, NodeConn>> {
        self.conns.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn forget_node(&self, node: &str) {
        self.lock_conns().remove(node);
        self.forget_map();
    }

    fn forget_map(&self) {
        *self.map.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }

    /// The slot map, asked of the seeds when there is none: all at once, the first complete
    /// answer wins (a seed that is down or hangs costs nothing).
    async fn slot_map(&self) -> Result<Arc<SlotMap>, Error> {
        if let Some(map) = self.map.lock().unwrap_or_else(|e| e.into_inner()).as_ref() {
            return Ok(Arc::clone(map));
        }
        self.slot_map_from().await.map(|(_, map)| map)
    }

    /// The slot map asked afresh of the seeds, and the seed that gave it.
    async fn slot_map_from(&self) -> Result<(String, Arc<SlotMap>), Error> {
        let mut asking: FuturesUnordered<_> = self
            .seeds
            .iter()
            .map(|seed| async move { (seed, self.ask_slots(seed).await) })
            .collect();
        let mut problems = Vec::new();
        let deadline = tokio::time::Instant::now() + self.timeout;
        loop {
            match tokio::time::timeout_at(deadline, asking.next()).await {
                Ok(Some((seed, Ok(map)))) => {
                    let map = Arc::new(map);
                    *self.map.lock().unwrap_or_else(|e| e.into_inner()) = Some(Arc::clone(&map));
                    return Ok((seed.clone(), map));
                }
                Ok(Some((seed, Err(e)))) => problems.push(match e {
                    Error::Redis { message, .. } => format!("{seed}: {message}"),
                    other => other.to_string(),
                }),
                Ok(None) => break,
                Err(_) => {
                    problems.push(format!("no answer within {}ms", self.timeout.as_millis()));
                    break;
                }
            }
        }
        let mut message = format!("no seed node gave the slot map: {}", problems.join("; "));
        if message.len() > 900 {
            let mut cut = 900;
            while !message.is_char_boundary(cut) {
                cut -= 1;
            }
            message.truncate(cut);
            message.push_str("...");
        }
        Err(Error::Redis {
            addr: self.store.clone(),
            message,
            source: None,
        })
    }

    /// `CLUSTER SLOTS` of one node.
    async fn ask_slots(&self, seed: &str) -> Result<SlotMap, Error> {
        let mut conn = self.conn(seed).await?;
        let reply: Value = redis::cmd("CLUSTER")
            .arg("SLOTS")
            .query_async(&mut conn.conn)
            .await
            .map_err(|e| redis_error(seed, &e))?;
        let seed_host = split_addr(seed).map_or("", |(h, _)| h);
        let map = parse_slots(reply, seed_host).ok_or_else(|| Error::Redis {
            addr: seed.to_string(),
            message: "unexpected reply to CLUSTER SLOTS".into(),
            source: None,
        })?;
        let covered: usize = map
            .ranges
            .iter()
            .map(|(lo, hi, _)| usize::from(hi - lo) + 1)
            .sum();
        if covered < 16384 {
            return Err(Error::Redis {
                addr: seed.to_string(),
                message: format!("its slot map covers {covered} of 16384 slots"),
                source: None,
            });
        }
        Ok(map)
    }
}

/// What one key's commands came to on a node.
#[derive(Debug)]
enum Reply {
    Done(Answer),
    /// `MOVED` (the slot map is out of date) or `ASK` (a slot being migrated) to `node`.
    Redirect {
        node: String,
        ask: bool,
    },
}

fn server_error(node: &str, e: &redis::ServerError) -> Error {
    Error::Redis {
        addr: node.to_string(),
        message: match e.details() {
            Some(d) => format!("{} {d}", e.code()),
            None => e.code().to_string(),
        },
        source: None,
    }
}

/// `CLUSTER SLOTS`: `[[first, last, [host, port, id, ...], replicas...], ...]`. An empty host
/// means the node that answered; `?` (unknown endpoint) leaves the range out.
fn parse_slots(reply: Value, seed_host: &str) -> Option<SlotMap> {
    let Value::Array(ranges) = reply else {
        return None;
    };
    let mut map = SlotMap::default();
    for range in ranges {
        let Value::Array(fields) = range else {
            return None;
        };
        let mut fields = fields.into_iter();
        let lo: u16 = redis::from_redis_value(fields.next()?).ok()?;
        let hi: u16 = redis::from_redis_value(fields.next()?).ok()?;
        let Value::Array(master) = fields.next()? else {
            return None;
        };
        let mut master = master.into_iter();
        let host: String = redis::from_redis_value(master.next()?).ok()?;
        let port: u16 = redis::from_redis_value(master.next()?).ok()?;
        if host == "?" || lo > hi || hi >= 16384 {
            continue;
        }
        let host = if host.is_empty() { seed_host } else { &host };
        map.ranges.push((lo, hi, join_addr(host, port)));
    }
    Some(map)
}
