//! The agents' side: one pipelined bulk read of a whole namespace per interval, and its NATS
//! events as they come.
//!
//! The bulk read (`Observer::all`: three pipelined round trips, whatever the number of agents)
//! keeps beat ages and thresholds current; events carry transitions within milliseconds. Never
//! a request per agent, never an exec into a container.

use std::sync::Arc;
use std::time::Duration;

use ready_signal::{Observer, StoreConfig};
use tokio::sync::{Notify, watch};
use tokio::time::Instant;

use super::{Backoff, pause};
use crate::error::Error;
use crate::writer::{Change, Changes};

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
    pub async fn run(self, changes: Changes, poke: Arc<Notify>, shutdown: watch::Receiver<bool>) {
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

    /// Forwards the namespace's NATS events until `shutdown`; resubscribes with backoff when the
    /// subscription fails or ends. After the client reconnected on its own (its NATS node gone,
    /// events meanwhile lost) it notifies `poke`, so the store watchers read at once. Without
    /// NATS it returns at once (reads alone then).
    pub async fn run_events(
        self,
        changes: Changes,
        poke: Arc<Notify>,
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
                    tracing::info!(%namespace, "subscribed to agent events");
                    let mut stop = shutdown.clone();
                    loop {
                        tokio::select! {
                            e = events.next_delivery() => match e {
                                Some(ready_signal::Delivery::Event(event)) => {
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
