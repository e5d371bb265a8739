//! The stores one replica's record goes to (Redis, NATS, files), and the fence that keeps an
//! older instance from overwriting a newer one's record in each.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_nats::Client;
use tokio::sync::Notify;

use crate::config::StoreConfig;
use crate::escape::one_line;
use crate::events;
use crate::fence::{Applied, Op};
use crate::file_store;
use crate::record::{EventPayload, MAX_REASON_LEN, PROTOCOL_VERSION, Record, State};
use crate::redis_store::{RedisConn, Write};
use crate::{Error, Keys, Name};

use super::clock::WallClock;
use super::identity::Identity;

/// Failed writes in a row after which a cluster client is built again.
const CLUSTER_RECONNECT_AFTER: u32 = 5;

/// Where this instance stands in one store's fence.
#[derive(Debug, Clone, Copy, Default)]
struct Fence {
    /// The epoch the store gave this instance; 0 before its first write, and after being fenced
    /// (a fenced writer that resumes takes a new epoch).
    epoch: u64,
    /// A newer instance holds the record: this one only retakes, which succeeds once that record
    /// expires or is removed.
    fenced: bool,
    /// Log nothing (a one-shot removal that only acts on its own record).
    quiet: bool,
}

impl Fence {
    /// The operation of the next write.
    fn op(self) -> Op {
        if self.fenced { Op::Retake } else { Op::Put }
    }

    /// Records the store's answer; logs the transitions.
    fn update(&mut self, applied: Applied, id: &Identity, store: &str) {
        match applied {
            Applied::Yes { epoch } => {
                if self.fenced && !self.quiet {
                    tracing::info!(agent = %id.agent, replica = %id.replica, instance = %id.instance,
                        epoch, store, "the record this instance lost is gone; it publishes again");
                }
                self.epoch = epoch;
                self.fenced = false;
            }
            Applied::FencedOff => {
                if !self.fenced && !self.quiet {
                    tracing::warn!(agent = %id.agent, replica = %id.replica, instance = %id.instance,
                        store, "a newer instance owns this replica's record; this instance stops \
                        publishing until that record expires or is removed");
                }
                self.epoch = 0;
                self.fenced = true;
            }
        }
    }
}

/// Writes one replica's record to every configured store: Redis (fenced), NATS (events), files.
pub(crate) struct Sink {
    store: StoreConfig,
    /// The Redis keys in the store's layout.
    keys: Keys,
    pub(crate) id: Identity,
    /// The container this process runs in (64 lowercase hex digits), or empty.
    container: String,
    clock: WallClock,
    redis: Option<RedisConn>,
    redis_failing: bool,
    /// Writes failed in a row on the kept connection.
    redis_errors: u32,
    redis_fence: Fence,
    file_fence: Fence,
    nats: Option<Client>,
    /// Set by the NATS client on every reconnection (to any seed): the next write republishes
    /// the state, and [`Sink::nats_reconnects`] wakes the heartbeat loop for it at once.
    nats_connected: Arc<AtomicBool>,
    nats_reconnected: Arc<Notify>,
    /// The write after a reconnection's republish publishes once more: subscribers that lost
    /// the same server reconnect at about the same time and may not be subscribed yet.
    nats_republish_again: bool,
    nats_failing: bool,
    pub(crate) state: State,
    reason: String,
    since_ms: u64,
    seq: u64,
}

impl Sink {
    pub(crate) fn new(
        store: StoreConfig,
        id: Identity,
        clock: WallClock,
        state: State,
        reason: &str,
    ) -> Sink {
        let since_ms = clock.unix_ms();
        Sink {
            keys: store.keys(),
            store,
            id,
            container: crate::container::current().unwrap_or_default().to_string(),
            clock,
            redis: None,
            redis_failing: false,
            redis_errors: 0,
            redis_fence: Fence::default(),
            file_fence: Fence::default(),
            nats: None,
            nats_connected: Arc::new(AtomicBool::new(false)),
            nats_reconnected: Arc::new(Notify::new()),
            nats_republish_again: false,
            nats_failing: false,
            state,
            reason: one_line(reason, MAX_REASON_LEN),
            since_ms,
            seq: 0,
        }
    }

    /// Writes only where this instance already holds the record (or none does): for a one-shot
    /// removal, which must never take a record over.
    pub(crate) fn only_own_record(mut self) -> Sink {
        for fence in [&mut self.redis_fence, &mut self.file_fence] {
            *fence = Fence {
                epoch: 0,
                fenced: true,
                quiet: true,
            };
        }
        self
    }

    /// Continues with epochs a one-shot writer of this instance was given before (0: none).
    pub(crate) fn with_epochs(mut self, redis: u64, file: u64) -> Sink {
        self.redis_fence.epoch = redis;
        self.file_fence.epoch = file;
        self
    }

    /// The epochs the stores gave this instance (0 where none, or fenced).
    pub(crate) fn epochs(&self) -> (u64, u64) {
        (self.redis_fence.epoch, self.file_fence.epoch)
    }

    /// Where the file backend keeps this replica's record.
    pub(crate) fn record_file(&self) -> std::path::PathBuf {
        self.file_path()
    }

    /// Each store operation gets this long: the interval, within [100 ms, 2 s].
    pub(crate) fn op_timeout(&self) -> Duration {
        self.id
            .interval
            .clamp(Duration::from_millis(100), Duration::from_secs(2))
    }

    /// Whether a newer instance holds the record observers read (Redis when configured, else
    /// the file).
    pub(crate) fn fenced(&self) -> bool {
        if self.store.redis.is_some() {
            self.redis_fence.fenced
        } else {
            self.file_fence.fenced
        }
    }

    /// Changes the state (an event is published when it or the reason changed). The reason is
    /// stored on one line: control characters escaped, cut to [`MAX_REASON_LEN`] bytes.
    pub(crate) async fn set(&mut self, state: State, reason: &str) -> Vec<Error> {
        let reason = one_line(reason, MAX_REASON_LEN);
        let changed = state != self.state || reason != self.reason;
        if state != self.state {
            self.since_ms = self.clock.unix_ms();
        }
        self.state = state;
        self.reason = reason;
        if changed {
            tracing::info!(agent = %self.id.agent, state = %state, reason = %self.reason, "state changed");
        }
        self.write(changed).await
    }

    /// Writes the current record everywhere; publishes an event when `event` (or NATS came back).
    pub(crate) async fn write(&mut self, event: bool) -> Vec<Error> {
        let mut errors = Vec::new();
        self.seq += 1;
        let mut file_fallback = false;
        if self.store.redis.is_some() {
            let op = self.redis_fence.op();
            match self.write_redis(op).await {
                Err(e) => {
                    file_fallback = true;
                    if !self.redis_failing {
                        tracing::warn!(error = %e, "cannot write to redis; writing the local file meanwhile");
                    }
                    self.redis_failing = true;
                    errors.push(e);
                }
                Ok(applied) => {
                    if self.redis_failing {
                        tracing::info!(agent = %self.id.agent, "redis is back; record republished");
                    }
                    self.redis_failing = false;
                    self.redis_fence.update(applied, &self.id, "redis");
                }
            }
        }
        if self.store.files_always() || file_fallback {
            let record = self.file_record();
            match file_store::write(&self.file_path(), &record, self.file_fence.op()) {
                Ok(applied) => self.file_fence.update(applied, &self.id, "file"),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot write the record file");
                    errors.push(e);
                }
            }
        }
        if let Err(e) = self.publish_event(event).await {
            if !self.nats_failing {
                tracing::warn!(error = %e, "cannot publish to nats");
            }
            self.nats_failing = true;
            errors.push(e);
        } else {
            self.nats_failing = false;
        }
        errors
    }

    /// Removes the record from Redis and the file backend, if it is still this instance's.
    pub(crate) async fn remove(&mut self) -> Vec<Error> {
        let mut errors = Vec::new();
        if self.store.redis.is_some()
            && !self.redis_fence.fenced
            && let Err(e) = self.write_redis(Op::Del).await
        {
            errors.push(e);
        }
        let path = self.file_path();
        if let Err(e) = file_store::remove(&path, &self.id.instance) {
            errors.push(e);
        }
        errors
    }

    async fn write_redis(&mut self, op: Op) -> Result<Applied, Error> {
        // A connection kept from an earlier heartbeat may have died with a restarted server: the
        // first failure on it is retried once on a fresh connection, so the record is back within
        // this heartbeat rather than the next. A timeout is not retried: it already took its time.
        let reused = self.redis.is_some();
        match self.write_redis_once(op).await {
            Err(e) if reused && !e.is_timeout() => {
                tracing::debug!(error = %e, "redis connection lost; reconnecting");
                self.write_redis_once(op).await
            }
            other => other,
        }
    }

    async fn write_redis_once(&mut self, op: Op) -> Result<Applied, Error> {
        let Some(store) = &self.store.redis else {
            return Ok(Applied::Yes {
                epoch: self.redis_fence.epoch,
            });
        };
        let timeout = self.op_timeout();
        let addr = store.addr.clone();
        let timed_out = || Error::Timeout {
            what: format!("writing to redis at {addr}"),
            after: timeout,
        };
        if self.redis.is_none() {
            self.redis = Some(RedisConn::connect(store, timeout).await?);
        }
        let id = &self.id;
        let write = Write {
            keys: &self.keys,
            agent: &id.agent,
            replica: &id.replica,
            instance: &id.instance,
            epoch: self.redis_fence.epoch,
            state: self.state.as_str(),
            reason: &self.reason,
            pid: id.pid,
            host: &id.host,
            interval_ms: id.interval.as_millis() as u64,
            ttl_ms: id.ttl.as_millis() as u64,
            container: &self.container,
        };
        let Some(conn) = self.redis.as_mut() else {
            return Err(timed_out());
        };
        // A node's connection is dropped at any error, so the next write connects afresh (under
        // Sentinel: asks the Sentinels again, and so follows a failover or a READONLY demotion).
        // A cluster client follows failovers itself and is kept, unless it keeps failing (a
        // cluster moved to new addresses, say): then it is built again from the seeds.
        let keep = conn.heals_itself();
        let result = match tokio::time::timeout(timeout, conn.write(&write, op)).await {
            Ok(result) => result,
            Err(_) => Err(timed_out()),
        };
        if result.is_ok() {
            self.redis_errors = 0;
        } else {
            self.redis_errors += 1;
            if !keep || self.redis_errors >= CLUSTER_RECONNECT_AFTER {
                self.redis = None;
                self.redis_errors = 0;
            }
        }
        result
    }

    async fn publish_event(&mut self, event: bool) -> Result<(), Error> {
        let Some(store) = &self.store.nats else {
            return Ok(());
        };
        let timeout = self.op_timeout();
        let fresh = self.nats.is_none();
        if fresh {
            let flag = Arc::clone(&self.nats_connected);
            let wake = Arc::clone(&self.nats_reconnected);
            let on_connect: Arc<dyn Fn() + Send + Sync> = Arc::new(move || {
                flag.store(true, Ordering::Relaxed);
                wake.notify_one();
            });
            self.nats = Some(events::connect(store, timeout, Some(on_connect)).await?);
        }
        // After a reconnection the current state is published at once and again at the next
        // beat, so subscribers whose server died with an event in flight, and waiters that
        // subscribed while NATS was away, learn it without waiting for the next transition.
        let again = std::mem::take(&mut self.nats_republish_again);
        let back = self.nats_connected.swap(false, Ordering::Relaxed);
        self.nats_republish_again = back;
        let event = event || fresh || back || again;
        if !event || self.fenced() {
            return Ok(());
        }
        let Some(client) = &self.nats else {
            return Ok(());
        };
        let payload = EventPayload {
            v: PROTOCOL_VERSION,
            agent: self.id.agent.to_string(),
            replica: self.id.replica.to_string(),
            instance: self.id.instance.clone(),
            state: self.state,
            reason: self.reason.clone(),
            ts_ms: self.clock.unix_ms(),
            container: self.container.clone(),
        };
        let subject = events::subject(&self.store.namespace, &self.id.agent, &self.id.replica);
        tokio::time::timeout(
            timeout,
            events::publish(client, &store.addr, subject, &payload),
        )
        .await
        .map_err(|_| Error::Timeout {
            what: format!("publishing to nats at {}", store.addr),
            after: timeout,
        })?
    }

    /// Resolves after the NATS client reconnected (the next write then republishes the state).
    pub(crate) fn nats_reconnects(&self) -> Arc<Notify> {
        Arc::clone(&self.nats_reconnected)
    }

    /// Flushes what NATS still holds, within one operation timeout.
    pub(crate) async fn flush(&self) {
        if let Some(client) = &self.nats {
            let _ = tokio::time::timeout(self.op_timeout(), client.flush()).await;
        }
    }

    fn file_path(&self) -> std::path::PathBuf {
        file_store::record_path(
            &self.store.file_dir(),
            &self.store.namespace,
            &self.id.agent,
            &self.id.replica,
        )
    }

    fn file_record(&self) -> Record {
        let id = &self.id;
        Record {
            v: PROTOCOL_VERSION,
            agent: id.agent.to_string(),
            replica: id.replica.to_string(),
            instance: id.instance.clone(),
            epoch: self.file_fence.epoch,
            state: self.state,
            reason: self.reason.clone(),
            pid: id.pid,
            host: id.host.clone(),
            interval_ms: id.interval.as_millis() as u64,
            ttl_ms: id.ttl.as_millis() as u64,
            since_ms: self.since_ms,
            beat_ms: self.clock.unix_ms(),
            seq: self.seq,
            container: self.container.clone(),
            // The file store keeps the start of the instance's first write (see file_store::write).
            started_ms: 0,
        }
    }

    /// An error when the fence refused this instance's writes.
    pub(crate) fn fenced_off(&self) -> Result<(), Error> {
        if self.fenced() {
            return Err(Error::FencedOff {
                agent: self.id.agent.to_string(),
                replica: self.id.replica.to_string(),
                instance: self.id.instance.clone(),
            });
        }
        Ok(())
    }

    /// The agent this sink publishes for.
    pub(crate) fn agent(&self) -> &Name {
        &self.id.agent
    }
}
