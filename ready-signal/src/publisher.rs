//! The publishing side: a builder, a handle the agent keeps, and a publisher on its own thread.
//!
//! The publisher never runs on the agent's executor: it has its own OS thread and a small
//! current-thread runtime, so an agent whose executor is blocked (the field's deadlocked asyncio
//! loop) cannot keep its own record fresh by accident. What keeps the record fresh is progress:
//! the work loop calls [`Handle::tick`], and the publisher refreshes the TTL only while ticks
//! arrive within `stall_after` (or a [`Handle::busy`] budget covers a long work item).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use async_nats::Client;
use tokio::sync::{mpsc, oneshot};

use crate::config::StoreConfig;
use crate::events;
use crate::file_store;
use crate::record::{EventPayload, MAX_REASON_LEN, PROTOCOL_VERSION, Record, State, clip};
use crate::redis_store::{Applied, RedisConn, Write};
use crate::{Error, Name};

/// Default heartbeat interval.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(2);
/// Default time without a tick after which the work loop counts as stalled.
pub const DEFAULT_STALL_AFTER: Duration = Duration::from_secs(10);
/// The record's TTL is this many intervals unless set explicitly.
pub const DEFAULT_TTL_INTERVALS: u32 = 3;

/// Entry point for agents: `ReadySignal::builder("worker").start()`.
#[derive(Debug)]
pub struct ReadySignal;

impl ReadySignal {
    /// Starts configuring the publisher of `agent`'s ready signal.
    ///
    /// ```no_run
    /// use std::time::Duration;
    /// use ready_signal::{ReadySignal, StoreConfig};
    ///
    /// let signal = ReadySignal::builder("worker")
    ///     .store(StoreConfig::from_env()?)
    ///     .interval(Duration::from_secs(1))
    ///     .start()?;
    /// // ... load models, connect to queues ...
    /// signal.ready();
    /// loop {
    ///     signal.tick(); // once per iteration of the work loop
    ///     # break;
    /// }
    /// signal.shutdown();
    /// # Ok::<(), ready_signal::Error>(())
    /// ```
    pub fn builder(agent: &str) -> Builder {
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
}

/// Settings of a publisher; see [`ReadySignal::builder`].
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

    /// Uses a given instance id (`{13 digit start ms}-{8 hex}`) instead of a fresh one.
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

    /// How long the work loop may go without [`Handle::tick`] before refreshes stop. Default 10 s.
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
        let shared = Arc::new(Shared {
            base: Instant::now(),
            last_progress_ms: AtomicU64::new(0),
            busy_until_ms: AtomicU64::new(0),
        });
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| Error::Publisher(format!("could not build its runtime: {e}")))?;
        let (tx, rx) = mpsc::unbounded_channel();
        let instance = identity.instance.clone();
        let (agent, replica) = (identity.agent.clone(), identity.replica.clone());
        tracing::info!(%agent, %replica, %instance, stores = %store.describe(), "publishing ready signal");
        let publisher = Publisher::new(store, identity, Arc::clone(&shared), self.stall_after);
        let thread = std::thread::Builder::new()
            .name(format!("ready-signal-{agent}"))
            .spawn(move || runtime.block_on(publisher.run(rx)))
            .map_err(|e| Error::Publisher(format!("could not start its thread: {e}")))?;
        Ok(Handle {
            shared,
            tx,
            thread: Some(thread),
            instance,
            agent,
            replica,
        })
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

/// The replica name from `READY_SIGNAL_REPLICA`, else the host name.
pub fn default_replica() -> Result<Name, Error> {
    default_replica_from(|name| std::env::var(name).ok())
}

/// As [`default_replica`], with `READY_SIGNAL_REPLICA` looked up by `env`: the one rule that
/// publishers and observers (`replica=self`) share.
pub fn default_replica_from(env: impl Fn(&str) -> Option<String>) -> Result<Name, Error> {
    match env("READY_SIGNAL_REPLICA").filter(|r| !r.is_empty()) {
        Some(r) => Name::new(&r).map_err(|e| Error::Config(format!("READY_SIGNAL_REPLICA: {e}"))),
        None => {
            let host = hostname()
                .ok_or_else(|| Error::Config("no replica name: set READY_SIGNAL_REPLICA".into()))?;
            Name::new(&host).map_err(|e| {
                Error::Config(format!(
                    "the host name cannot be a replica name ({e}); set READY_SIGNAL_REPLICA"
                ))
            })
        }
    }
}

pub(crate) fn hostname() -> Option<String> {
    ["/proc/sys/kernel/hostname", "/etc/hostname"]
        .iter()
        .find_map(|p| std::fs::read_to_string(p).ok())
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

/// A fresh instance id: this moment in Unix milliseconds (13 digits) and 8 random hex digits.
/// Ids sort by start time, which is what fencing compares.
pub fn new_instance_id() -> String {
    let mut random = [0u8; 4];
    // Without randomness the start time alone still orders instances.
    let _ = getrandom::fill(&mut random);
    instance_id(unix_ms(), u32::from_be_bytes(random))
}

/// The instance id for a process started at `start_ms` with discriminator `tag`.
pub fn instance_id(start_ms: u64, tag: u32) -> String {
    format!("{start_ms:013}-{tag:08x}")
}

pub(crate) fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Who is publishing.
#[derive(Debug, Clone)]
pub(crate) struct Identity {
    pub(crate) agent: Name,
    pub(crate) replica: Name,
    pub(crate) instance: String,
    pub(crate) pid: u32,
    pub(crate) host: String,
    pub(crate) interval: Duration,
    pub(crate) ttl: Duration,
}

impl Identity {
    /// The identity of a single write without a heartbeat (the CLI): the interval is a third of
    /// the TTL, the TTL's default ratio.
    fn one_shot(
        agent: &Name,
        replica: &Name,
        instance: &str,
        ttl: Duration,
    ) -> Result<Identity, Error> {
        crate::record::check_instance(instance).map_err(Error::Config)?;
        Ok(Identity {
            agent: agent.clone(),
            replica: replica.clone(),
            instance: instance.to_string(),
            pid: std::process::id(),
            host: hostname().unwrap_or_default(),
            interval: (ttl / DEFAULT_TTL_INTERVALS).max(Duration::from_millis(10)),
            ttl,
        })
    }
}

/// Progress marks written by the agent's threads and read by the publisher: two atomics, so
/// `tick()` costs a clock read and a store.
#[derive(Debug)]
struct Shared {
    base: Instant,
    last_progress_ms: AtomicU64,
    busy_until_ms: AtomicU64,
}

impl Shared {
    fn now_ms(&self) -> u64 {
        self.base.elapsed().as_millis() as u64
    }

    fn progressing(&self, stall_after: Duration) -> bool {
        let now = self.now_ms();
        let last = self.last_progress_ms.load(Ordering::Relaxed);
        now.saturating_sub(last) <= stall_after.as_millis() as u64
            || now <= self.busy_until_ms.load(Ordering::Relaxed)
    }
}

#[derive(Debug)]
enum Command {
    Set(State, String),
    Stop(Option<oneshot::Sender<()>>),
}

/// The agent's side of its ready signal. Cheap to use from any thread.
///
/// Dropping the handle publishes `stopping` and removes the record, best effort, waiting at most
/// a few store timeouts; [`Handle::shutdown`] and [`Handle::close`] do the same explicitly.
#[derive(Debug)]
pub struct Handle {
    shared: Arc<Shared>,
    tx: mpsc::UnboundedSender<Command>,
    thread: Option<JoinHandle<()>>,
    instance: String,
    agent: Name,
    replica: Name,
}

impl Handle {
    /// Publishes `ready`.
    pub fn ready(&self) {
        self.set(State::Ready, String::new());
    }

    /// Publishes `not-ready` with a one-line reason (cut to 200 bytes).
    pub fn not_ready(&self, reason: impl Into<String>) {
        let reason: String = reason.into();
        let line = reason.lines().next().unwrap_or_default();
        self.set(State::NotReady, clip(line, MAX_REASON_LEN));
    }

    /// Publishes `starting` again (for example while reconnecting to a dependency).
    pub fn starting(&self) {
        self.set(State::Starting, String::new());
    }

    /// Publishes `stopping`; the record stays until [`Handle::shutdown`] or drop.
    pub fn stopping(&self) {
        self.set(State::Stopping, String::new());
    }

    /// Marks progress of the work loop. Call it once per iteration; it is an atomic store.
    pub fn tick(&self) {
        self.shared
            .last_progress_ms
            .store(self.shared.now_ms(), Ordering::Relaxed);
    }

    /// Declares that the current work item may take up to `budget` without ticks.
    pub fn busy(&self, budget: Duration) {
        let until = self
            .shared
            .now_ms()
            .saturating_add(budget.as_millis() as u64);
        self.shared.busy_until_ms.store(until, Ordering::Relaxed);
        self.tick();
    }

    /// This process's instance id.
    pub fn instance(&self) -> &str {
        &self.instance
    }

    /// The agent name.
    pub fn agent(&self) -> &Name {
        &self.agent
    }

    /// The replica name.
    pub fn replica(&self) -> &Name {
        &self.replica
    }

    /// Publishes `stopping`, removes the record and waits for the publisher thread to finish
    /// (bounded by the store timeouts). Blocks the calling thread.
    pub fn shutdown(mut self) {
        let _ = self.tx.send(Command::Stop(None));
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }

    /// As [`Handle::shutdown`], without blocking an async executor.
    pub async fn close(mut self) {
        let (done, finished) = oneshot::channel();
        if self.tx.send(Command::Stop(Some(done))).is_ok() {
            let _ = finished.await;
        }
        // The thread ends right after acknowledging; nothing is left to wait for.
        drop(self.thread.take());
    }

    fn set(&self, state: State, reason: String) {
        self.tick();
        let _ = self.tx.send(Command::Set(state, reason));
    }
}

impl Drop for Handle {
    fn drop(&mut self) {
        if let Some(thread) = self.thread.take() {
            let _ = self.tx.send(Command::Stop(None));
            let _ = thread.join();
        }
    }
}

/// Waits for SIGTERM or SIGINT, then publishes `stopping` and removes the record. Returns the
/// name of the signal. The crate never restarts or kills anything: what to do next is the
/// caller's choice.
///
/// ```no_run
/// # async fn agent() -> Result<(), ready_signal::Error> {
/// let signal = ready_signal::ReadySignal::builder("worker").start()?;
/// signal.ready();
/// let name = ready_signal::shutdown_on_signal(signal).await?;
/// eprintln!("stopped by {name}");
/// # Ok(()) }
/// ```
pub async fn shutdown_on_signal(handle: Handle) -> Result<&'static str, Error> {
    use tokio::signal::unix::{SignalKind, signal};
    let err = |e: std::io::Error| Error::Publisher(format!("cannot listen for signals: {e}"));
    let mut term = signal(SignalKind::terminate()).map_err(err)?;
    let mut int = signal(SignalKind::interrupt()).map_err(err)?;
    let name = tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
    };
    tracing::info!(signal = name, agent = %handle.agent, "stopping");
    handle.close().await;
    Ok(name)
}

/// Writes one replica's record to every configured store: Redis (fenced), NATS (events), files.
pub(crate) struct Sink {
    store: StoreConfig,
    id: Identity,
    redis: Option<RedisConn>,
    redis_failing: bool,
    fenced: bool,
    nats: Option<Client>,
    /// Set by the NATS client on every (re)connection: the next write republishes the state.
    nats_connected: Arc<AtomicBool>,
    nats_failing: bool,
    state: State,
    reason: String,
    since_ms: u64,
    seq: u64,
}

impl Sink {
    pub(crate) fn new(store: StoreConfig, id: Identity, state: State, reason: String) -> Sink {
        Sink {
            store,
            id,
            redis: None,
            redis_failing: false,
            fenced: false,
            nats: None,
            nats_connected: Arc::new(AtomicBool::new(false)),
            nats_failing: false,
            state,
            reason,
            since_ms: unix_ms(),
            seq: 0,
        }
    }

    /// Each store operation gets this long: the interval, within [100 ms, 2 s].
    fn op_timeout(&self) -> Duration {
        self.id
            .interval
            .clamp(Duration::from_millis(100), Duration::from_secs(2))
    }

    /// Changes the state (an event is published when it or the reason changed).
    pub(crate) async fn set(&mut self, state: State, reason: String) -> Vec<Error> {
        let changed = state != self.state || reason != self.reason;
        if state != self.state {
            self.since_ms = unix_ms();
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
        if self.store.redis.is_some() && !self.fenced {
            if let Err(e) = self.write_redis(false).await {
                file_fallback = true;
                if !self.redis_failing {
                    tracing::warn!(error = %e, "cannot write to redis; writing the local file meanwhile");
                }
                self.redis_failing = true;
                errors.push(e);
            } else if self.redis_failing {
                self.redis_failing = false;
                tracing::info!(agent = %self.id.agent, "redis is back; record republished");
            }
        }
        if (self.store.files_always() || file_fallback)
            && let Err(e) = file_store::write(&self.file_path(), &self.file_record())
        {
            tracing::warn!(error = %e, "cannot write the record file");
            errors.push(e);
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

    /// Removes the record from Redis and the file backend (fenced like every write).
    pub(crate) async fn remove(&mut self) -> Vec<Error> {
        let mut errors = Vec::new();
        if self.store.redis.is_some()
            && !self.fenced
            && let Err(e) = self.write_redis(true).await
        {
            errors.push(e);
        }
        let path = self.file_path();
        if let Err(e) = file_store::remove(&path, &self.id.instance) {
            errors.push(e);
        }
        errors
    }

    async fn write_redis(&mut self, delete: bool) -> Result<(), Error> {
        // A connection kept from an earlier heartbeat may have died with a restarted server: the
        // first failure on it is retried once on a fresh connection, so the record is back within
        // this heartbeat rather than the next. A timeout is not retried: it already took its time.
        let reused = self.redis.is_some();
        match self.write_redis_once(delete).await {
            Err(e) if reused && !e.is_timeout() => {
                tracing::debug!(error = %e, "redis connection lost; reconnecting");
                self.write_redis_once(delete).await
            }
            other => other,
        }
    }

    async fn write_redis_once(&mut self, delete: bool) -> Result<(), Error> {
        let Some(store) = &self.store.redis else {
            return Ok(());
        };
        let timeout = self.op_timeout();
        if self.redis.is_none() {
            self.redis = Some(RedisConn::connect(store, timeout).await?);
        }
        let id = &self.id;
        let write = Write {
            namespace: &self.store.namespace,
            agent: &id.agent,
            replica: &id.replica,
            instance: &id.instance,
            state: self.state.as_str(),
            reason: &self.reason,
            pid: id.pid,
            host: &id.host,
            interval_ms: id.interval.as_millis() as u64,
            ttl_ms: id.ttl.as_millis() as u64,
        };
        let Some(conn) = self.redis.as_mut() else {
            return Ok(());
        };
        let result = tokio::time::timeout(timeout, conn.write(&write, delete)).await;
        match result {
            Ok(Ok(Applied::Yes)) => Ok(()),
            Ok(Ok(Applied::FencedOff)) => {
                tracing::warn!(agent = %id.agent, replica = %id.replica, instance = %id.instance,
                    "a newer instance owns this replica's record; this instance stops writing it");
                self.fenced = true;
                Ok(())
            }
            Ok(Err(e)) => {
                self.redis = None;
                Err(e)
            }
            Err(_) => {
                self.redis = None;
                Err(Error::Timeout {
                    what: format!("writing to redis at {}", store.addr),
                    after: timeout,
                })
            }
        }
    }

    async fn publish_event(&mut self, event: bool) -> Result<(), Error> {
        let Some(store) = &self.store.nats else {
            return Ok(());
        };
        let timeout = self.op_timeout();
        if self.nats.is_none() {
            let flag = Arc::clone(&self.nats_connected);
            self.nats = Some(events::connect(store, timeout, Some(flag)).await?);
        }
        // After a (re)connect the current state is published, so waiters that subscribed while
        // NATS was away learn it without waiting for the next transition.
        let event = event || self.nats_connected.swap(false, Ordering::Relaxed);
        if !event || self.fenced {
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
            ts_ms: unix_ms(),
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
            state: self.state,
            reason: self.reason.clone(),
            pid: id.pid,
            host: id.host.clone(),
            interval_ms: id.interval.as_millis() as u64,
            ttl_ms: id.ttl.as_millis() as u64,
            since_ms: self.since_ms,
            beat_ms: unix_ms(),
            seq: self.seq,
        }
    }
}

/// The heartbeat loop on the publisher thread.
struct Publisher {
    sink: Sink,
    shared: Arc<Shared>,
    stall_after: Duration,
    stalled: bool,
}

impl Publisher {
    fn new(
        store: StoreConfig,
        id: Identity,
        shared: Arc<Shared>,
        stall_after: Duration,
    ) -> Publisher {
        Publisher {
            sink: Sink::new(store, id, State::Starting, String::new()),
            shared,
            stall_after,
            stalled: false,
        }
    }

    async fn run(mut self, mut rx: mpsc::UnboundedReceiver<Command>) {
        self.sink.write(true).await;
        let interval = self.sink.id.interval;
        let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                command = rx.recv() => match command {
                    Some(Command::Set(state, reason)) => {
                        self.stalled = false;
                        self.sink.set(state, reason).await;
                    }
                    Some(Command::Stop(done)) => {
                        self.stop().await;
                        if let Some(done) = done {
                            let _ = done.send(());
                        }
                        return;
                    }
                    None => {
                        self.stop().await;
                        return;
                    }
                },
                _ = ticker.tick() => self.heartbeat().await,
            }
        }
    }

    async fn heartbeat(&mut self) {
        let progressing =
            self.shared.progressing(self.stall_after) || self.sink.state == State::Stopping;
        if !progressing {
            if !self.stalled {
                tracing::warn!(agent = %self.sink.id.agent, stall_after = ?self.stall_after,
                    "no progress from the work loop; the record is no longer refreshed");
                self.stalled = true;
            }
            return;
        }
        if self.stalled {
            tracing::info!(agent = %self.sink.id.agent, "the work loop is moving again");
            self.stalled = false;
        }
        self.sink.write(false).await;
    }

    async fn stop(&mut self) {
        self.sink.set(State::Stopping, String::new()).await;
        self.sink.remove().await;
        if let Some(client) = &self.sink.nats {
            let _ = tokio::time::timeout(self.sink.op_timeout(), client.flush()).await;
        }
    }
}

/// Publishes one state once, for callers without a heartbeat (the `ready-signal` CLI).
///
/// Fails with the first store error, or [`Error::FencedOff`] when a newer instance owns the
/// record (nothing was written: the newer instance speaks for the replica).
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
    let mut sink = Sink::new(store.clone(), id, state, clip(reason, MAX_REASON_LEN));
    let mut errors = sink.write(true).await;
    if !errors.is_empty() {
        return Err(errors.remove(0));
    }
    sink.fenced_off()
}

impl Sink {
    /// An error when the fence refused this instance's writes.
    fn fenced_off(&self) -> Result<(), Error> {
        if self.fenced {
            return Err(Error::FencedOff {
                agent: self.id.agent.to_string(),
                replica: self.id.replica.to_string(),
                instance: self.id.instance.clone(),
            });
        }
        Ok(())
    }
}

/// Publishes `stopping` and removes the record once, for the `ready-signal` CLI.
pub async fn remove_once(
    store: &StoreConfig,
    agent: &Name,
    replica: &Name,
    instance: &str,
) -> Result<(), Error> {
    let id = Identity::one_shot(agent, replica, instance, Duration::from_secs(3))?;
    let mut sink = Sink::new(store.clone(), id, State::Stopping, String::new());
    let mut errors = sink.write(true).await;
    errors.extend(sink.remove().await);
    if !errors.is_empty() {
        return Err(errors.remove(0));
    }
    sink.fenced_off()
}
