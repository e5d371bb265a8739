//! Single writes without a heartbeat, for the `ready-signal` CLI, and the rule that lets such a
//! write join the instance of a publisher running above it in the process tree.

use std::path::Path;
use std::time::Duration;

use crate::config::StoreConfig;
use crate::fence::{Applied, Op};
use crate::observer::Observer;
use crate::record::State;
use crate::redis_store::{RedisConn, Write};
use crate::{Error, Keys, Name};

use super::clock::WallClock;
use super::identity::{Identity, ancestry, hostname};
use super::sink::Sink;

/// Publishes one state once, for callers without a heartbeat (the `ready-signal` CLI).
///
/// The write is fenced like a heartbeat. The epochs an instance is given are remembered on this
/// host beside the record file (`{replica}.epochs`, the last 16 instances), so a later call of
/// the same instance writes with its epoch and is refused once a newer instance took the
/// replica; an instance's first call takes a new epoch, which makes it the newest. Fails with
/// the first store error, or [`Error::FencedOff`] when the fence refused the write.
pub async fn publish_once(
    store: &StoreConfig,
    agent: &Name,
    replica: &Name,
    instance: &str,
    state: State,
    reason: &str,
    ttl: Duration,
) -> Result<(), Error> {
    let id = Identity::one_shot(agent, replica, instance, ttl)?;
    let sink = Sink::new(store.clone(), id, WallClock::System, state, reason);
    let memory = sink.record_file().with_extension("epochs");
    let (redis, file) = recall(&memory, instance);
    let mut sink = sink.with_epochs(redis, file);
    let mut errors = sink.write(true).await;
    if sink.fenced_off().is_ok() {
        remember(&memory, instance, sink.epochs());
    }
    if !errors.is_empty() {
        return Err(errors.remove(0));
    }
    sink.fenced_off()
}

/// The epochs one-shot writes of `instance` were given on this host, `(0, 0)` if none.
fn recall(memory: &Path, instance: &str) -> (u64, u64) {
    let text = std::fs::read_to_string(memory).unwrap_or_default();
    text.lines()
        .rev()
        .find_map(|line| {
            let mut words = line.split_whitespace();
            let who = words.next()?;
            let redis = words.next()?.parse().ok()?;
            let file = words.next()?.parse().ok()?;
            (who == instance).then_some((redis, file))
        })
        .unwrap_or((0, 0))
}

/// Remembers `instance`'s epochs (best effort: a lost memory only lets a late call of an old
/// instance take the replica once, as before epochs existed).
fn remember(memory: &Path, instance: &str, (redis, file): (u64, u64)) {
    let text = std::fs::read_to_string(memory).unwrap_or_default();
    let mut lines: Vec<&str> = text
        .lines()
        .filter(|l| l.split_whitespace().next() != Some(instance))
        .collect();
    let own = format!("{instance} {redis} {file}");
    lines.push(&own);
    let keep = &lines[lines.len().saturating_sub(16)..];
    let Some(dir) = memory.parent() else { return };
    let tmp = memory.with_extension(format!("epochs.{}.tmp", std::process::id()));
    let written = std::fs::create_dir_all(dir)
        .and_then(|()| std::fs::write(&tmp, keep.join("\n") + "\n"))
        .and_then(|()| std::fs::rename(&tmp, memory));
    if let Err(e) = written {
        tracing::debug!(path = %memory.display(), error = %e, "cannot remember the epoch");
        let _ = std::fs::remove_file(&tmp);
    }
}

/// Publishes `stopping` and removes the record once, for the `ready-signal` CLI. Another
/// instance's record is left alone.
pub async fn remove_once(
    store: &StoreConfig,
    agent: &Name,
    replica: &Name,
    instance: &str,
) -> Result<(), Error> {
    let id = Identity::one_shot(agent, replica, instance, Duration::from_secs(3))?;
    let mut sink =
        Sink::new(store.clone(), id, WallClock::System, State::Stopping, "").only_own_record();
    let mut errors = sink.write(true).await;
    if sink.fenced_off().is_ok() {
        errors.extend(sink.remove().await);
    }
    if !errors.is_empty() {
        return Err(errors.remove(0));
    }
    sink.fenced_off()
}

/// The instance of a live publisher of `agent`/`replica` running above this process in its
/// process tree: the record's `host` is this host and its `pid` is this process or one of its
/// ancestors. A command run by an agent (a script calling `ready-signal ready`) then writes as
/// the agent's instance instead of fencing it. `None` when there is no such record or the store
/// cannot be read.
pub async fn running_instance(store: &StoreConfig, agent: &Name, replica: &Name) -> Option<String> {
    let observer = Observer::connect(store).await.ok()?;
    let status = observer.replica(agent, replica).await.ok()?;
    let host = hostname()?;
    let pid = status.pid?;
    (status.host.as_deref() == Some(host.as_str()) && ancestry().contains(&pid))
        .then_some(status.instance)
        .flatten()
}

/// Writes records to a store's Redis (one server, the master Sentinels name, or a Cluster)
/// through the protocol's script and the same connection a publisher uses, for many agents over
/// one connection, without heartbeats, events or files: for load generators and tools.
///
/// ```no_run
/// # async fn f() -> Result<(), ready_signal::Error> {
/// use std::time::Duration;
/// use ready_signal::{Name, RecordWriter, State, StoreConfig};
///
/// let store = StoreConfig::new().redis("redis://127.0.0.1:7000,127.0.0.1:7001?cluster=true")?;
/// let mut writer = RecordWriter::connect(&store, Duration::from_secs(2)).await?;
/// let instance = ready_signal::new_instance_id();
/// let (agent, replica) = (Name::new("agent-1")?, Name::new("r0")?);
/// let interval = Duration::from_secs(1);
/// writer.put(&agent, &replica, &instance, State::Ready, interval, interval * 3).await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct RecordWriter {
    conn: RedisConn,
    keys: Keys,
    pid: u32,
    host: String,
}

impl RecordWriter {
    /// Connects to the store's Redis within `timeout` (which bounds every later write too).
    pub async fn connect(store: &StoreConfig, timeout: Duration) -> Result<RecordWriter, Error> {
        let Some(redis) = &store.redis else {
            return Err(Error::Config(
                "no Redis configured (READY_SIGNAL_REDIS_URL)".into(),
            ));
        };
        Ok(RecordWriter {
            conn: RedisConn::connect(redis, timeout).await?,
            keys: store.keys(),
            pid: std::process::id(),
            host: hostname().unwrap_or_default(),
        })
    }

    /// Writes `state` for `agent`/`replica` as `instance` (a heartbeat when nothing changed):
    /// the instance's first write takes an epoch, later ones continue it. Returns the epoch, or
    /// [`Error::FencedOff`] when a newer instance holds the record.
    pub async fn put(
        &mut self,
        agent: &Name,
        replica: &Name,
        instance: &str,
        state: State,
        interval: Duration,
        ttl: Duration,
    ) -> Result<u64, Error> {
        let write = Write {
            keys: &self.keys,
            agent,
            replica,
            instance,
            epoch: 0,
            state: state.as_str(),
            reason: "",
            pid: self.pid,
            host: &self.host,
            interval_ms: interval.as_millis() as u64,
            ttl_ms: ttl.as_millis() as u64,
            container: crate::container::current().unwrap_or_default(),
        };
        match self.conn.write(&write, Op::Put).await? {
            Applied::Yes { epoch } => Ok(epoch),
            Applied::FencedOff => Err(Error::FencedOff {
                agent: agent.to_string(),
                replica: replica.to_string(),
                instance: instance.to_string(),
            }),
        }
    }
}
