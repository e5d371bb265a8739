//! The agents' side: the records in Redis and their NATS events as they come.
//!
//! With NATS, the namespace is watched by its due index (PROTOCOL.md, "The due index"): one
//! full read at start and on resync, then only the replicas whose beat turned late since the
//! last query, those the index does not cover (older writers, late or stopping replicas) and
//! those an event named; the reader wakes at the next deadline in the index. Events carry the
//! transitions. Its cost follows what changes, not how many agents there are.
//!
//! Without NATS (no events announce transitions or newcomers), a pipelined bulk read of the
//! whole namespace per interval (`Observer::all`: three round trips, whatever the number of
//! agents). Never a request per agent, never an exec into a container.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use std::sync::Arc;
use std::time::Duration;

use ready_signal::{Name, Observer, StoreConfig};
use tokio::sync::{Notify, watch};
use tokio::time::Instant;

use super::{Backoff, pause};
use crate::error::Error;
use crate::writer::{Change, Changes, IndexedRead};

/// An index that was not queried for this long may have dropped deadlines (writers remove
/// entries 60 s past theirs): its part is read in full again. Queried at least every
/// [`MAX_SLEEP`], so this happens only after a stall.
const HORIZON: Duration = Duration::from_secs(45);

/// How long a replica whose record vanished is read again at every poll. A frozen agent that
/// thaws writes its record again, and neither the index (its new deadline is ahead) nor an
/// event (its own state never changed) says so; after this long, the periodic full read finds it.
const GONE_POLL: Duration = Duration::from_secs(600);

/// A full read at least this often, whatever the index and events say: what no poll covers
/// (a record that comes back after [`GONE_POLL`]) is found within it. At 10,000 agents one full
/// read is a few hundred milliseconds of work every five minutes.
const FULL_READ_EVERY: Duration = Duration::from_secs(300);

/// Whether the namespace is watched by its due index (with NATS): the default;
/// `HEALTHCHECK_SIDECAR_INDEX=0` reads every namespace in bulk each `--read-interval` instead,
/// as before the index (a way back should a store misbehave under it).
fn read_by_index() -> bool {
    std::env::var("HEALTHCHECK_SIDECAR_INDEX").map_or(true, |v| v != "0")
}

/// The longest the index reader sleeps, even when no deadline is ahead.
const MAX_SLEEP: Duration = Duration::from_secs(10);

/// The replicas a round found missing: known before, not returned, and of a part the round read
/// in full (only a full read of its part can say a replica is not there). Per part, as the book
/// marks them dead: after a Cluster outage the first full read may find some parts and fail on
/// others, and the replicas it marked dead on the parts it read must be polled until their
/// records come back, not left dead until the next periodic full read.
fn lost(
    known: &BTreeSet<(Name, Name)>,
    returned: &BTreeSet<(Name, Name)>,
    complete: &[usize],
    part_of: impl Fn(&Name) -> usize,
) -> Vec<(Name, Name)> {
    if complete.is_empty() {
        return Vec::new();
    }
    known
        .difference(returned)
        .filter(|(agent, _)| complete.contains(&part_of(agent)))
        .cloned()
        .collect()
}

/// What the event follower tells the store reader of the same store.
#[derive(Debug, Default)]
pub struct Hints {
    /// Events may have been lost (a reconnection): read everything again.
    resync: AtomicBool,
    /// Replicas an event named since the last read: read their records (a newcomer's
    /// interval, TTL and container are only in its record).
    named: Mutex<BTreeSet<(Name, Name)>>,
}

impl Hints {
    fn take_named(&self) -> BTreeSet<(Name, Name)> {
        std::mem::take(&mut *self.named.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

/// How the store is watched.
#[derive(Debug, Clone)]
pub struct StoreWatch {
    /// The store, namespace included.
    pub store: StoreConfig,
    /// Time between two bulk reads.
    pub interval: Duration,
    /// Longest a read (or a connection) may take before the store counts as unknown.
    pub timeout: Duration,
    /// Ceiling of the retry backoff.
    pub max_backoff: Duration,
}

impl StoreWatch {
    /// Reads every `interval`, earlier when `poke` is notified (the writer pokes it when a
    /// replica crosses a threshold, to confirm with a fresh read), until `shutdown` turns true.
    pub async fn run(
        self,
        changes: Changes,
        poke: Arc<Notify>,
        hints: Arc<Hints>,
        shutdown: watch::Receiver<bool>,
    ) {
        if self.store.has_nats() && self.store.has_redis() && read_by_index() {
            return self.run_indexed(changes, poke, hints, shutdown).await;
        }
        let namespace = self.store.namespace_name().to_string();
        let mut backoff = Backoff::new(self.interval, self.max_backoff);
        let mut observer: Option<Observer> = None;
        let mut connect_error: Option<Error> = None;
        loop {
            if observer.is_none() {
                observer = match tokio::time::timeout(self.timeout, Observer::connect(&self.store))
                    .await
                {
                    Ok(Ok(o)) => Some(o),
                    Ok(Err(e)) => {
                        tracing::debug!(%namespace, error = %e, "store connection failed");
                        connect_error = Some(Error::store(e));
                        None
                    }
                    Err(_) => None,
                };
            }
            let result = match &observer {
                None => Err(match connect_error.take() {
                    Some(e) => e,
                    None => Error::timeout(
                        format_args!("connecting to the store ({})", self.store.describe()),
                        self.timeout,
                    ),
                }),
                Some(o) => match tokio::time::timeout(self.timeout, o.all()).await {
                    Ok(Ok(list)) => Ok(list),
                    Ok(Err(e)) => Err(Error::store(e)),
                    Err(_) => Err(Error::timeout(
                        format_args!("reading namespace {namespace}"),
                        self.timeout,
                    )),
                },
            };
            let wait = match &result {
                Ok(_) => {
                    backoff.reset();
                    self.interval
                }
                Err(reason) => {
                    tracing::warn!(%namespace, %reason, "store read failed");
                    // A fresh connection next time: an observer built while Redis was down
                    // keeps its connection error.
                    observer = None;
                    backoff.next_wait()
                }
            };
            let change = Change::StoreRead {
                namespace: namespace.clone(),
                at: Instant::now(),
                result,
            };
            if changes.send(change).await.is_err() {
                return;
            }
            let mut stop = shutdown.clone();
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = poke.notified() => {}
                _ = super::stopped(&mut stop) => return,
            }
        }
    }

    /// Watches the namespace by its due index (see the module's documentation) until
    /// `shutdown`. A part that fails (a Cluster master down or hung) makes only its replicas
    /// unknown, and is read in full again once it answers.
    async fn run_indexed(
        self,
        changes: Changes,
        poke: Arc<Notify>,
        hints: Arc<Hints>,
        shutdown: watch::Receiver<bool>,
    ) {
        let namespace = self.store.namespace_name().to_string();
        let mut backoff = Backoff::new(self.interval, self.max_backoff);
        let mut part_backoff = Backoff::new(self.interval, self.max_backoff);
        let mut observer: Option<(Observer, ready_signal::DueCursor)> = None;
        // Replicas the index does not cover: read at every round.
        let mut polled: BTreeSet<(Name, Name)> = BTreeSet::new();
        // Replicas whose record vanished, polled since then (for [`GONE_POLL`]).
        let mut gone_since: BTreeMap<(Name, Name), Instant> = BTreeMap::new();
        // Replicas a read has returned: one a full read no longer finds (Redis restarted empty,
        // its record expired meanwhile) is polled as vanished, since it may come back unannounced.
        let mut known: BTreeSet<(Name, Name)> = BTreeSet::new();
        let mut last_full = Instant::now();
        // Parts that failed, and when to try them again.
        let mut failing: BTreeMap<usize, Error> = BTreeMap::new();
        let mut retry_parts_at = Instant::now();
        let mut last_query = Instant::now();
        // A read of a part waits for its own node; beyond this, the whole round is late.
        let round_timeout = self.timeout + ready_signal::CONNECT_TIMEOUT;
        loop {
            if observer.is_none() {
                let connected =
                    tokio::time::timeout(self.timeout, Observer::connect(&self.store)).await;
                match connected {
                    Ok(Ok(o)) => {
                        let cursor = o.due_cursor();
                        observer = Some((o, cursor));
                        polled.clear();
                        gone_since.clear();
                        last_full = Instant::now();
                        failing.clear();
                        retry_parts_at = Instant::now();
                    }
                    Ok(Err(e)) => {
                        tracing::debug!(%namespace, error = %e, "store connection failed");
                        if !self
                            .send_failure(&changes, &namespace, Error::store(e))
                            .await
                        {
                            return;
                        }
                    }
                    Err(_) => {
                        let e = Error::timeout(
                            format_args!("connecting to the store ({})", self.store.describe()),
                            self.timeout,
                        );
                        if !self.send_failure(&changes, &namespace, e).await {
                            return;
                        }
                    }
                }
            }
            let mut wait = MAX_SLEEP;
            if let Some((o, cursor)) = &mut observer {
                if hints.resync.swap(false, Ordering::Relaxed)
                    || last_query.elapsed() > HORIZON
                    || last_full.elapsed() > FULL_READ_EVERY
                {
                    cursor.reset();
                    retry_parts_at = Instant::now();
                    last_full = Instant::now();
                }
                let named = hints.take_named();
                let round = async {
                    let mut read = IndexedRead {
                        parts: o.parts(),
                        complete: Vec::new(),
                        replicas: Vec::new(),
                        failed: Vec::new(),
                        queried: Vec::new(),
                        queried_at: Instant::now(),
                    };
                    let unread = cursor.unread();
                    if !unread.is_empty() && Instant::now() >= retry_parts_at {
                        let full = o.read_parts(cursor, &unread).await?;
                        read.complete = full.complete;
                        read.replicas = full.replicas;
                        for f in full.failed {
                            failing.insert(f.part, Error::store(f.error));
                        }
                        for p in &read.complete {
                            failing.remove(p);
                        }
                    }
                    let also: Vec<(Name, Name)> = polled.iter().chain(&named).cloned().collect();
                    // The parts read_late queries: those with a cursor (read in full before).
                    let unqueried = cursor.unread();
                    let late = o.read_late(cursor, &also).await?;
                    read.queried = (0..read.parts)
                        .filter(|p| {
                            !unqueried.contains(p) && !late.failed.iter().any(|f| f.part == *p)
                        })
                        .collect();
                    for f in late.failed {
                        failing.insert(f.part, Error::store(f.error));
                    }
                    read.replicas.extend(late.replicas);
                    read.failed = failing.iter().map(|(p, e)| (*p, e.clone())).collect();
                    Ok::<_, ready_signal::Error>((read, late.next_in))
                };
                let result = match tokio::time::timeout(round_timeout, round).await {
                    // Nothing could be read: the connection itself may be broken (a node's
                    // connection does not come back by itself), so a new one, and a full read.
                    Ok(Ok((read, _))) if read.failed.len() >= read.parts => {
                        let (_, e) = read.failed.into_iter().next().unwrap_or_else(|| {
                            (
                                0,
                                Error::new(crate::error::ErrorKind::Unreachable, "no part read"),
                            )
                        });
                        Err(e)
                    }
                    Ok(Ok(r)) => Ok(r),
                    Ok(Err(e)) => Err(Error::store(e)),
                    Err(_) => Err(Error::timeout(
                        format_args!("reading namespace {namespace}"),
                        round_timeout,
                    )),
                };
                match result {
                    Ok((read, next_in)) => {
                        backoff.reset();
                        last_query = Instant::now();
                        let returned: BTreeSet<(Name, Name)> = read
                            .replicas
                            .iter()
                            .map(|w| (w.status.agent.clone(), w.status.replica.clone()))
                            .collect();
                        for id in lost(&known, &returned, &read.complete, |a| o.part_of(a)) {
                            gone_since.entry(id.clone()).or_insert_with(Instant::now);
                            polled.insert(id);
                        }
                        known.extend(returned);
                        for w in &read.replicas {
                            if let Some(due) = w.due_in {
                                wait = wait.min(due + Duration::from_millis(1));
                            }
                            let id = (w.status.agent.clone(), w.status.replica.clone());
                            let gone = crate::writer::record_vanished(&w.status);
                            if gone {
                                // Read again until it comes back, for a while.
                                let since =
                                    *gone_since.entry(id.clone()).or_insert_with(Instant::now);
                                if since.elapsed() < GONE_POLL {
                                    polled.insert(id);
                                } else {
                                    polled.remove(&id);
                                    gone_since.remove(&id);
                                    known.remove(&id);
                                }
                            } else if w.indexed {
                                gone_since.remove(&id);
                                polled.remove(&id);
                            } else {
                                gone_since.remove(&id);
                                polled.insert(id);
                            }
                        }
                        if read.failed.is_empty() {
                            part_backoff.reset();
                        } else if retry_parts_at <= Instant::now() {
                            retry_parts_at = Instant::now() + part_backoff.next_wait();
                        }
                        if !polled.is_empty() || !read.failed.is_empty() {
                            wait = wait.min(self.interval);
                        }
                        if let Some(next) = next_in {
                            wait = wait.min(next + Duration::from_millis(1));
                        }
                        let change = Change::StoreIndexed {
                            namespace: namespace.clone(),
                            at: Instant::now(),
                            read,
                        };
                        if changes.send(change).await.is_err() {
                            return;
                        }
                    }
                    Err(reason) => {
                        tracing::warn!(%namespace, %reason, "store read failed");
                        // A fresh connection, and a full read, next time.
                        observer = None;
                        if !self.send_failure(&changes, &namespace, reason).await {
                            return;
                        }
                    }
                }
            }
            if observer.is_none() {
                wait = backoff.next_wait();
            }
            let mut stop = shutdown.clone();
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = poke.notified() => {}
                _ = super::stopped(&mut stop) => return,
            }
        }
    }

    /// Tells the writer the namespace cannot be read; false when the writer is gone.
    async fn send_failure(&self, changes: &Changes, namespace: &str, e: Error) -> bool {
        let change = Change::StoreRead {
            namespace: namespace.to_string(),
            at: Instant::now(),
            result: Err(e),
        };
        changes.send(change).await.is_ok()
    }

    /// Forwards the namespace's NATS events until `shutdown`; resubscribes with backoff when the
    /// subscription fails or ends. After the client reconnected on its own (its NATS node gone,
    /// events meanwhile lost) it notifies `poke`, so the store watchers read at once. Without
    /// NATS it returns at once (reads alone then).
    pub async fn run_events(
        self,
        changes: Changes,
        poke: Arc<Notify>,
        hints: Arc<Hints>,
        shutdown: watch::Receiver<bool>,
    ) {
        if !self.store.has_nats() {
            return;
        }
        let namespace = self.store.namespace_name().to_string();
        let mut backoff = Backoff::new(Duration::from_millis(500), self.max_backoff);
        loop {
            match ready_signal::subscribe_namespace(&self.store).await {
                Ok(mut events) => {
                    backoff.reset();
                    // Whatever happened while unsubscribed is known only from a full read.
                    hints.resync.store(true, Ordering::Relaxed);
                    poke.notify_waiters();
                    tracing::info!(%namespace, "subscribed to agent events");
                    let mut stop = shutdown.clone();
                    loop {
                        tokio::select! {
                            e = events.next_delivery() => match e {
                                Some(ready_signal::Delivery::Event(event)) => {
                                    hints
                                        .named
                                        .lock()
                                        .unwrap_or_else(|e| e.into_inner())
                                        .insert((event.agent.clone(), event.replica.clone()));
                                    // The store reader reads the record soon (a newcomer's
                                    // deadline is only known from it).
                                    poke.notify_waiters();
                                    let change = Change::StoreEvent {
                                        namespace: namespace.clone(),
                                        at: Instant::now(),
                                        event,
                                    };
                                    if changes.send(change).await.is_err() {
                                        return;
                                    }
                                }
                                Some(_) => {
                                    tracing::info!(%namespace, "agent events resubscribed after a reconnection");
                                    hints.resync.store(true, Ordering::Relaxed);
                                    poke.notify_waiters();
                                }
                                None => break,
                            },
                            _ = super::stopped(&mut stop) => return,
                        }
                    }
                    tracing::warn!(%namespace, "agent event subscription ended");
                }
                Err(e) => {
                    tracing::warn!(%namespace, error = %e, "cannot subscribe to agent events")
                }
            }
            if !pause(backoff.next_wait(), &shutdown).await {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn id(agent: &str, replica: &str) -> (Name, Name) {
        (Name::new(agent).unwrap(), Name::new(replica).unwrap())
    }

    /// A full read that answered for part 1 and failed on part 2 (a Cluster master still coming
    /// back): the replica it no longer finds on part 1 is lost and polled; the one of part 2
    /// is not judged. The rule before asked for every part and polled neither, so after a
    /// Cluster outage the replicas the book had marked dead stayed dead while their agents
    /// wrote again (a 3-master Cluster bench: 868 of 3,000 for the rest of the run).
    #[test]
    fn a_replica_missing_from_a_part_read_in_full_is_lost() {
        let known: BTreeSet<_> = [id("a1", "r"), id("b2", "r"), id("c1", "r")].into();
        let returned: BTreeSet<_> = [id("c1", "r")].into();
        let part_of = |a: &Name| usize::from(a.as_str().ends_with('2')) + 1;
        assert_eq!(lost(&known, &returned, &[1], part_of), [id("a1", "r")]);
        assert_eq!(
            lost(&known, &returned, &[1, 2], part_of),
            [id("a1", "r"), id("b2", "r")]
        );
        assert!(lost(&known, &returned, &[], part_of).is_empty());
    }
}
