//! Single writes without a heartbeat, for the `ready-signal` CLI, and the rule that lets such a
//! write join the instance of a publisher running above it in the process tree.

use std::time::Duration;

use crate::config::StoreConfig;
use crate::observer::Observer;
use crate::record::State;
use crate::{Error, Name};

use super::clock::WallClock;
use super::identity::{Identity, ancestry, hostname};
use super::sink::Sink;

/// Publishes one state once, for callers without a heartbeat (the `ready-signal` CLI).
///
/// The write is fenced like a heartbeat: if `instance` already holds the record it continues it
/// (same epoch); otherwise it is a first write and takes a new epoch, which makes it the newest
/// instance of the replica. Fails with the first store error, or [`Error::FencedOff`] when the
/// fence refused the write.
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
    let mut sink = Sink::new(store.clone(), id, WallClock::System, state, reason);
    let mut errors = sink.write(true).await;
    if !errors.is_empty() {
        return Err(errors.remove(0));
    }
    sink.fenced_off()
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
