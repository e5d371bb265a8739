//! The publisher's settings, their validation, and the start of its thread.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::config::StoreConfig;
use crate::record::State;
use crate::{Error, Name};

use super::clock::{Progress, WallClock};
use super::handle::{Finished, Handle};
use super::heartbeat::{Desired, Heartbeat};
use super::identity::{Identity, default_replica, hostname, new_instance_id};
use super::sink::Sink;
use super::{CLOSE_TIMEOUT, DEFAULT_INTERVAL, DEFAULT_STALL_AFTER, DEFAULT_TTL_INTERVALS};

/// Settings of a publisher; see [`super::ReadySignal::builder`].
#[derive(Debug, Clone)]
pub struct Builder {
    agent: String,
    store: Option<StoreConfig>,
    replica: Option<String>,
    instance: Option<String>,
    interval: Duration,
    ttl: Option<Duration>,
    stall_after: Duration,
}

impl Builder {
    pub(crate) fn new(agent: &str) -> Builder {
        Builder {
            agent: agent.to_string(),
            store: None,
            replica: None,
            instance: None,
            interval: DEFAULT_INTERVAL,
            ttl: None,
            stall_after: DEFAULT_STALL_AFTER,
        }
    }

    /// Where to publish. Default: [`StoreConfig::from_env`].
    pub fn store(mut self, store: StoreConfig) -> Builder {
        self.store = Some(store);
        self
    }

    /// This process's replica name. Default: `READY_SIGNAL_REPLICA`, else the host name (the
    /// container id under Docker).
    pub fn replica(mut self, replica: &str) -> Builder {
        self.replica = Some(replica.to_string());
        self
    }

    /// Uses a given instance id (`{13 digits}-{8 lowercase hex}`) instead of a fresh one. The id
    /// names the process; which instance is newer is decided by the store (PROTOCOL.md,
    /// "Writing"), never by the id.
    pub fn instance(mut self, instance: &str) -> Builder {
        self.instance = Some(instance.to_string());
        self
    }

    /// How often the record is refreshed. Default 2 s.
    pub fn interval(mut self, interval: Duration) -> Builder {
        self.interval = interval;
        self
    }

    /// How long the record lives without a refresh. Default 3 intervals; at least 2 intervals.
    pub fn ttl(mut self, ttl: Duration) -> Builder {
        self.ttl = Some(ttl);
        self
    }

    /// How long after the last progress ([`Handle::tick`]) refreshes stop. Default 10 s.
    pub fn stall_after(mut self, stall_after: Duration) -> Builder {
        self.stall_after = stall_after;
        self
    }

    /// Validates the settings, publishes `starting` and starts the heartbeat thread.
    pub fn start(self) -> Result<Handle, Error> {
        let identity = self.identity()?;
        let store = match self.store {
            Some(store) => store,
            None => StoreConfig::from_env()?,
        };
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| Error::Publisher(format!("could not build its runtime: {e}")))?;
        let progress = Arc::new(Progress::new());
        let (desired, rx) = watch::channel(Desired::starting());
        let finished = Arc::new(Finished::default());
        let (agent, replica, instance) = (
            identity.agent.clone(),
            identity.replica.clone(),
            identity.instance.clone(),
        );
        tracing::info!(%agent, %replica, %instance, stores = %store.describe(), "publishing ready signal");
        let sink = Sink::new(
            store.clone(),
            identity.clone(),
            WallClock::System,
            State::Starting,
            "",
        );
        let heartbeat = Heartbeat::new(sink, Arc::clone(&progress), self.stall_after);
        let done = Arc::clone(&finished);
        std::thread::Builder::new()
            .name(format!("ready-signal-{agent}"))
            .spawn(move || {
                let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| {
                    runtime.block_on(heartbeat.run(rx))
                }));
                if let Err(panic) = outcome {
                    after_panic(store, identity, panic.as_ref());
                }
                done.set();
            })
            .map_err(|e| Error::Publisher(format!("could not start its thread: {e}")))?;
        Ok(Handle::new(
            progress, desired, finished, instance, agent, replica,
        ))
    }

    fn identity(&self) -> Result<Identity, Error> {
        let agent = Name::new(&self.agent)?;
        let replica = match &self.replica {
            Some(r) => Name::new(r)?,
            None => default_replica()?,
        };
        let instance = match &self.instance {
            Some(i) => {
                crate::record::check_instance(i).map_err(Error::Config)?;
                i.clone()
            }
            None => new_instance_id(),
        };
        if self.interval < Duration::from_millis(10) {
            return Err(Error::Config(format!(
                "interval {:?} is shorter than 10ms",
                self.interval
            )));
        }
        let ttl = self.ttl.unwrap_or(self.interval * DEFAULT_TTL_INTERVALS);
        if ttl < self.interval * 2 {
            return Err(Error::Config(format!(
                "ttl {:?} is shorter than two intervals ({:?}): the record would expire between heartbeats",
                ttl,
                self.interval * 2
            )));
        }
        Ok(Identity {
            agent,
            replica,
            instance,
            pid: std::process::id(),
            host: hostname().unwrap_or_default(),
            interval: self.interval,
            ttl,
        })
    }
}

/// The publisher thread panicked: says so in the log and, if a store can still be reached,
/// marks the record `not-ready` with the reason, so observers learn why the heartbeat ended
/// before the record expires.
fn after_panic(store: StoreConfig, identity: Identity, panic: &(dyn std::any::Any + Send)) {
    let message = panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into());
    tracing::error!(agent = %identity.agent, panic = %message,
        "the ready-signal publisher panicked; its record is marked not-ready and no longer refreshed");
    let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    else {
        return;
    };
    let reason = format!("the ready-signal publisher panicked: {message}");
    let mut sink = Sink::new(store, identity, WallClock::System, State::NotReady, &reason);
    runtime.block_on(async {
        let _ = tokio::time::timeout(CLOSE_TIMEOUT, sink.write(true)).await;
    });
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::file_store;

    /// After a panic on the publisher thread, the record says `not-ready` with the panic's
    /// message, so observers learn why the heartbeat ended before the record expires.
    #[test]
    fn a_panic_marks_the_record_not_ready_with_its_message() {
        let dir = tempfile::tempdir().unwrap();
        let store = StoreConfig::new().dir(dir.path());
        let identity = Builder::new("worker").replica("r1").identity().unwrap();
        let path = file_store::record_path(
            dir.path(),
            store.namespace_name(),
            &identity.agent,
            &identity.replica,
        );
        after_panic(store, identity, &"index out of bounds");
        let record = file_store::read(&path).unwrap().unwrap();
        assert_eq!(record.state, State::NotReady);
        assert_eq!(
            record.reason,
            "the ready-signal publisher panicked: index out of bounds"
        );
    }
}
