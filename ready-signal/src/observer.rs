//! The reading side: what each replica's record means right now.
//!
//! With Redis configured, freshness is judged by Redis's own clock: the heartbeat's age is
//! `ttl_ms - PTTL`, the time in state is `TIME - since_ms`, so no two hosts' wall clocks are ever
//! compared. Without Redis, the record files are read, and their writer shares this host's clock.

use std::time::Duration;

use futures_util::stream::SelectAll;

use crate::config::StoreConfig;
use crate::events::{self, Events};
use crate::file_store;
use crate::record::Record;
use crate::redis_store::node::Budget;
use crate::redis_store::{RedisReader, Snapshot};
use crate::{Error, Name, Observed};

mod index;

pub use index::{DueCursor, IndexRead, PartFailure, WatchedReplica};

/// How long an observer waits to connect to a store.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// The most an [`Observer::connect_within`] observer reads from Redis over its life: about 700
/// records, far less than a reply that would hurt a memory-limited container. redis-rs parses
/// an array of tiny items to about 20 times its size on the wire (an endless `*N` of `:1` grew a
/// probe by 16 MB under a 1 MiB bound), hence 256 KiB.
pub(crate) const READ_BOUND: usize = 256 << 10;

/// The most one read of an [`Observer::connect`] observer takes from Redis.
const LONG_READ_BOUND: usize = 64 << 20;

/// A record counts as stale once its heartbeat is this many intervals old.
pub const STALE_INTERVALS: u32 = 2;

/// What is known about one replica of an agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicaStatus {
    /// The agent.
    pub agent: Name,
    /// The replica.
    pub replica: Name,
    /// The derived state.
    pub state: Observed,
    /// The publishing instance, when there is a record.
    pub instance: Option<String>,
    /// The published reason, why the state is unknown, or why a record that still exists is
    /// dead (its last beat is older than its TTL).
    pub reason: Option<String>,
    /// Time since the last heartbeat.
    pub age: Option<Duration>,
    /// Time in the published state.
    pub since: Option<Duration>,
    /// Process id of the publisher.
    pub pid: Option<u32>,
    /// Host name of the publisher.
    pub host: Option<String>,
    /// The state the record holds (what `state` derives from), when there is a record.
    pub published: Option<crate::State>,
    /// Heartbeat interval the publisher promised, when there is a record.
    pub interval: Option<Duration>,
    /// Time to live of the record, when there is a record.
    pub ttl: Option<Duration>,
    /// The publishing instance's epoch (a higher epoch is a newer instance), when there is a
    /// record.
    pub epoch: Option<u64>,
    /// The id of the container the publishing instance runs in (64 lowercase hex digits), when
    /// its record names one: the exact link between a replica and a container. `None` for a
    /// writer outside a container and for records of writers that predate the field.
    pub container: Option<String>,
    /// How long before this read the publishing instance started, by the store's clock (the
    /// store's time at the instance's first write). `None` when the record does not say.
    pub started: Option<Duration>,
}

impl ReplicaStatus {
    fn without_record(
        agent: &Name,
        replica: &Name,
        state: Observed,
        reason: Option<String>,
    ) -> ReplicaStatus {
        ReplicaStatus {
            agent: agent.clone(),
            replica: replica.clone(),
            state,
            instance: None,
            reason,
            age: None,
            since: None,
            pid: None,
            host: None,
            published: None,
            interval: None,
            ttl: None,
            epoch: None,
            container: None,
            started: None,
        }
    }

    /// Judges a record read at `now_ms` whose last heartbeat is `age_ms` old.
    pub(crate) fn judge(
        agent: &Name,
        replica: &Name,
        record: &Record,
        now_ms: u64,
        age_ms: u64,
    ) -> ReplicaStatus {
        let state = if age_ms > record.ttl_ms {
            Observed::Dead
        } else if record.state == crate::State::Stopping {
            Observed::Stopping
        } else if age_ms
            > record
                .interval_ms
                .saturating_mul(u64::from(STALE_INTERVALS))
        {
            Observed::Stale
        } else {
            record.state.into()
        };
        let reason = if state == Observed::Dead {
            // A record that is still there but past its TTL (no expiry removed it): say so,
            // rather than "no record".
            Some(format!(
                "record not refreshed for {:.1}s, past its ttl of {:.1}s",
                age_ms as f64 / 1000.0,
                record.ttl_ms as f64 / 1000.0
            ))
        } else {
            Some(record.reason.clone()).filter(|r| !r.is_empty())
        };
        ReplicaStatus {
            agent: agent.clone(),
            replica: replica.clone(),
            state,
            instance: Some(record.instance.clone()),
            reason,
            age: Some(Duration::from_millis(age_ms)),
            since: Some(Duration::from_millis(
                now_ms.saturating_sub(record.since_ms),
            )),
            pid: Some(record.pid),
            host: Some(record.host.clone()),
            published: Some(record.state),
            interval: Some(Duration::from_millis(record.interval_ms)),
            ttl: Some(Duration::from_millis(record.ttl_ms)),
            epoch: Some(record.epoch),
            container: Some(record.container.clone()).filter(|c| !c.is_empty()),
            started: (record.started_ms > 0)
                .then(|| Duration::from_millis(now_ms.saturating_sub(record.started_ms))),
        }
    }

    fn from_snapshot(agent: &Name, replica: &Name, snap: Snapshot) -> ReplicaStatus {
        match snap.record {
            None => ReplicaStatus::without_record(agent, replica, Observed::Dead, None),
            Some(Err(e)) => ReplicaStatus::without_record(
                agent,
                replica,
                Observed::Unknown,
                Some(e.to_string()),
            ),
            Some(Ok(record)) => {
                // Age by Redis's clock: how much of the TTL the last refresh granted is used up.
                // An expiry the script did not set (none, or longer than the record's own TTL)
                // says nothing of the last beat: then the beat's own time, by the same clock.
                let age = match u64::try_from(snap.pttl_ms) {
                    Ok(pttl) if pttl <= record.ttl_ms => Ok(record.ttl_ms - pttl),
                    _ => beat_age(&record, snap.now_ms),
                };
                ReplicaStatus::checked(agent, replica, &record, snap.now_ms, age)
            }
        }
    }
}

impl ReplicaStatus {
    /// Judges a record after checking that it is the one its key names, and that its age
    /// could be told; either failure reads as unknown, with the reason.
    fn checked(
        agent: &Name,
        replica: &Name,
        record: &Record,
        now_ms: u64,
        age: Result<u64, String>,
    ) -> ReplicaStatus {
        let unknown = |why: String| {
            ReplicaStatus::without_record(agent, replica, Observed::Unknown, Some(why))
        };
        if record.agent != agent.as_str() || record.replica != replica.as_str() {
            return unknown(format!(
                "malformed record: it names {}/{}, not the {agent}/{replica} of its key",
                record.agent, record.replica
            ));
        }
        match age {
            Ok(age_ms) => ReplicaStatus::judge(agent, replica, record, now_ms, age_ms),
            Err(why) => unknown(why),
        }
    }
}

/// The age of a record's last beat by its `beat_ms`, for a record no expiry bounds (a file, or
/// a Redis key without the script's expiry). A beat up to one TTL ahead of the clock counts as
/// just now; further ahead, the record's age cannot be told (it would read fresh for as long as
/// the clock takes to catch up), so it is an error.
fn beat_age(record: &Record, now_ms: u64) -> Result<u64, String> {
    if record.beat_ms > now_ms.saturating_add(record.ttl_ms) {
        return Err(format!(
            "malformed record: its beat_ms is {}ms ahead of the clock, more than its ttl of \
             {}ms, and no expiry bounds it",
            record.beat_ms - now_ms,
            record.ttl_ms
        ));
    }
    Ok(now_ms.saturating_sub(record.beat_ms))
}

/// Reads agents' records and subscribes to their events.
///
/// ```no_run
/// # async fn f() -> Result<(), ready_signal::Error> {
/// use ready_signal::{Name, Observed, Observer, StoreConfig};
///
/// let observer = Observer::connect(&StoreConfig::from_env()?).await?;
/// let replicas = observer.replicas(&Name::new("worker")?).await?;
/// let ready = replicas.iter().filter(|r| r.state == Observed::Ready).count();
/// println!("{ready} of {} replicas ready", replicas.len());
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct Observer {
    store: StoreConfig,
    redis: Option<Result<RedisReader, Error>>,
    /// What may still be read from Redis.
    budget: Budget,
    /// The bound that budget enforces, in bytes, for the error that says it was reached.
    bound: usize,
}

impl Observer {
    /// Connects to the store records are read from. An unreachable Redis is not an error here:
    /// every read then reports it (with what the local record file says, if there is one).
    ///
    /// For a long-running reader (a status view): each read may take up to 64 MiB from Redis
    /// (a namespace of over 100,000 records), so a server streaming an endless reply fails that
    /// read instead of filling memory.
    pub async fn connect(store: &StoreConfig) -> Result<Observer, Error> {
        Observer::open(
            store,
            CONNECT_TIMEOUT,
            Budget::per_read(LONG_READ_BOUND),
            LONG_READ_BOUND,
        )
        .await
    }

    /// Like [`Observer::connect`], for a one-shot reader such as a probe: `timeout` instead of
    /// [`CONNECT_TIMEOUT`] bounds the connection and every later read (a caller with its own
    /// deadline passes a longer one), and at most 256 KiB is read from Redis (the Sentinels and
    /// Cluster nodes asked included), so a server streaming an endless reply fails the read
    /// instead of filling memory.
    pub async fn connect_within(store: &StoreConfig, timeout: Duration) -> Result<Observer, Error> {
        Observer::open(store, timeout, Budget::total(READ_BOUND), READ_BOUND).await
    }

    async fn open(
        store: &StoreConfig,
        timeout: Duration,
        budget: Budget,
        bound: usize,
    ) -> Result<Observer, Error> {
        let redis = match &store.redis {
            Some(r) => Some(RedisReader::connect(r, timeout, &budget).await),
            None => None,
        };
        Ok(Observer {
            store: store.clone(),
            redis,
            budget,
            bound,
        })
    }

    /// The status of one replica.
    pub async fn replica(&self, agent: &Name, replica: &Name) -> Result<ReplicaStatus, Error> {
        self.budget.refill();
        match &self.redis {
            Some(Ok(conn)) => {
                let key = self.store.keys().record(agent, replica);
                let snap = conn.read(&key).await;
                let snap = snap
                    .map_err(|e| self.over_bound(e, &format!("record {key}")))
                    .map_err(|e| self.with_file_hint(e, agent, Some(replica)))?;
                Ok(ReplicaStatus::from_snapshot(agent, replica, snap))
            }
            Some(Err(e)) => Err(self.with_file_hint(e.copy(), agent, Some(replica))),
            None => Ok(self.file_status(agent, replica)),
        }
    }

    /// The status of every live replica of `agent`: those whose record has not expired (by
    /// Redis's clock; for files, by this host's). A replica whose record expired or was removed
    /// is no longer listed, so an agent whose replicas are all gone lists none.
    pub async fn replicas(&self, agent: &Name) -> Result<Vec<ReplicaStatus>, Error> {
        self.budget.refill();
        let ns = &self.store.namespace;
        match &self.redis {
            Some(Ok(conn)) => {
                let keys = self.store.keys();
                let read = async {
                    let names = conn.members(&keys.replicas(agent)).await?;
                    let names: Vec<Name> = names.iter().filter_map(|n| Name::new(n).ok()).collect();
                    let keys: Vec<String> = names.iter().map(|r| keys.record(agent, r)).collect();
                    let snaps = conn.read_many(&keys).await?;
                    Ok(names
                        .iter()
                        .zip(snaps)
                        .map(|(r, s)| ReplicaStatus::from_snapshot(agent, r, s))
                        .collect())
                };
                read.await
                    .map_err(|e| self.over_bound(e, &format!("the records of agent {agent}")))
                    .map_err(|e| self.with_file_hint(e, agent, None))
            }
            Some(Err(e)) => Err(self.with_file_hint(e.copy(), agent, None)),
            None => {
                let dir = self.store.file_dir();
                let names = file_store::replicas(&dir, ns, agent)?;
                Ok(names
                    .iter()
                    .map(|r| self.file_status(agent, r))
                    .filter(|s| s.state != Observed::Dead)
                    .collect())
            }
        }
    }

    /// Every live replica of every agent in the namespace, read in three pipelined round trips
    /// (a status view of thousands of agents). Agents and replicas whose records all expired are
    /// not listed.
    pub async fn all(&self) -> Result<Vec<ReplicaStatus>, Error> {
        self.budget.refill();
        let ns = &self.store.namespace;
        match &self.redis {
            Some(Ok(conn)) => {
                let keys = self.store.keys();
                // Layout 2 lists a namespace in 64 shard indexes: one pipeline per node.
                let agents: Vec<Name> = conn
                    .members_many(&keys.agent_indexes())
                    .await?
                    .iter()
                    .flatten()
                    .filter_map(|a| Name::new(a).ok())
                    .collect();
                let replica_keys: Vec<String> = agents.iter().map(|a| keys.replicas(a)).collect();
                let members = conn.members_many(&replica_keys).await?;
                let mut pairs = Vec::new();
                for (agent, names) in agents.iter().zip(members) {
                    pairs.extend(
                        names
                            .iter()
                            .filter_map(|n| Name::new(n).ok())
                            .map(|r| (agent.clone(), r)),
                    );
                }
                let keys: Vec<String> = pairs.iter().map(|(a, r)| keys.record(a, r)).collect();
                let snaps = conn.read_many(&keys).await?;
                Ok(pairs
                    .iter()
                    .zip(snaps)
                    .map(|((a, r), s)| ReplicaStatus::from_snapshot(a, r, s))
                    .collect())
            }
            Some(Err(e)) => Err(e.copy()),
            None => {
                let dir = self.store.file_dir();
                let mut out = Vec::new();
                for agent in file_store::agents(&dir, ns)? {
                    for r in file_store::replicas(&dir, ns, &agent)? {
                        let status = self.file_status(&agent, &r);
                        if status.state != Observed::Dead {
                            out.push(status);
                        }
                    }
                }
                Ok(out)
            }
        }
    }

    /// A failed read that spent the read budget: the reply was too large. Said so, instead of
    /// what the cut connection said (`broken pipe`), which hides the cause.
    fn over_bound(&self, e: Error, what: &str) -> Error {
        match e {
            // The cut connection's own error stays the source.
            Error::Redis { addr, source, .. } if self.budget.spent() => Error::Redis {
                addr,
                source,
                message: format!(
                    "{what}: the reply is larger than the read bound of {} bytes \
                         (PROTOCOL.md, \"Size bounds\")",
                    self.bound
                ),
            },
            other => other,
        }
    }

    /// Subscribes to the transitions of `agents` on NATS (see [`subscribe`]).
    pub async fn subscribe(&self, agents: &[Name]) -> Result<Events, Error> {
        subscribe(&self.store, agents).await
    }

    fn file_status(&self, agent: &Name, replica: &Name) -> ReplicaStatus {
        let path = file_store::record_path(
            &self.store.file_dir(),
            &self.store.namespace,
            agent,
            replica,
        );
        match file_store::read(&path) {
            Ok(None) => ReplicaStatus::without_record(agent, replica, Observed::Dead, None),
            Ok(Some(record)) => {
                let now = crate::record::unix_ms();
                let age = beat_age(&record, now);
                ReplicaStatus::checked(agent, replica, &record, now, age)
            }
            Err(e) => ReplicaStatus::without_record(
                agent,
                replica,
                Observed::Unknown,
                Some(e.to_string()),
            ),
        }
    }

    /// Adds what the local record file says, when Redis cannot be read: the agent falls back to
    /// it, and it tells the container's own probe whether the agent itself is still alive.
    fn with_file_hint(&self, e: Error, agent: &Name, replica: Option<&Name>) -> Error {
        let Error::Redis {
            addr,
            message,
            source,
        } = e
        else {
            return e;
        };
        let replica = match replica {
            Some(r) => r.clone(),
            None => {
                match file_store::replicas(&self.store.file_dir(), &self.store.namespace, agent) {
                    Ok(names) if names.len() == 1 => names[0].clone(),
                    _ => {
                        return Error::Redis {
                            addr,
                            message,
                            source,
                        };
                    }
                }
            }
        };
        let status = self.file_status(agent, &replica);
        if status.state == Observed::Dead && status.instance.is_none() {
            return Error::Redis {
                addr,
                message,
                source,
            };
        }
        let age = status
            .age
            .map(|a| format!(", beat {:.1}s ago", a.as_secs_f64()))
            .unwrap_or_default();
        Error::Redis {
            addr,
            message: format!("{message}; local record file says {}{age}", status.state),
            source,
        }
    }
}

/// Subscribes to the transitions of every agent of the store's namespace on its NATS (a status
/// view that learns of new agents from their first event).
pub async fn subscribe_namespace(store: &StoreConfig) -> Result<Events, Error> {
    subscribe_subjects(store, vec![events::namespace_subject(&store.namespace)]).await
}

/// Subscribes to the transitions of `agents` on the store's NATS, without touching Redis.
///
/// The subscriptions are registered with the server before this returns, so a caller that reads
/// the records afterwards misses no transition in between.
pub async fn subscribe(store: &StoreConfig, agents: &[Name]) -> Result<Events, Error> {
    let subjects = agents
        .iter()
        .map(|a| events::agent_subject(&store.namespace, a))
        .collect();
    subscribe_subjects(store, subjects).await
}

async fn subscribe_subjects(store: &StoreConfig, subjects: Vec<String>) -> Result<Events, Error> {
    let Some(nats) = &store.nats else {
        return Err(Error::Config(
            "no NATS configured (READY_SIGNAL_NATS_URL)".into(),
        ));
    };
    // Wakes the reader at every reconnection (async-nats has subscribed again by then).
    let resubscribed = std::sync::Arc::new(tokio::sync::Notify::new());
    let notify = std::sync::Arc::clone(&resubscribed);
    let on_connect: std::sync::Arc<dyn Fn() + Send + Sync> =
        std::sync::Arc::new(move || notify.notify_one());
    let client = events::connect(nats, CONNECT_TIMEOUT, Some(on_connect)).await?;
    let addr = nats.addr.as_str();
    let nats_error = |e: async_nats::Error| Error::Nats {
        addr: addr.to_string(),
        message: e.to_string(),
        source: Some(crate::error::Source::boxed(e)),
    };
    let mut subscriptions = SelectAll::new();
    for subject in subjects {
        subscriptions.push(
            client
                .subscribe(subject)
                .await
                .map_err(|e| nats_error(e.into()))?,
        );
    }
    // The flush waits for the server's PONG; a server that stops answering must not hold the
    // caller forever.
    tokio::time::timeout(CONNECT_TIMEOUT, client.flush())
        .await
        .map_err(|_| Error::Timeout {
            what: format!("subscribing at nats at {}", nats.addr),
            after: CONNECT_TIMEOUT,
        })?
        .map_err(|e| nats_error(e.into()))?;
    Ok(Events {
        _client: client,
        subscriptions,
        resubscribed,
    })
}
