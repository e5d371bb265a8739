//! The one task that owns the state: sources send [`Change`]s, it publishes snapshots.
//!
//! Layout, one job per file:
//! - `change.rs`: the messages sources send ([`Change`], [`DockerChange`], [`HealUpdate`]).
//! - `book.rs`: the working copy ([`Book`]): applies changes, judges, snapshots. Pure: `now` is
//!   an argument everywhere, so tests drive it with paused time.
//! - `store.rs` / `docker.rs`: how a store read or event, and a Docker listing or inspect, are
//!   merged into the book.
//! - `link.rs`: which container a replica runs in (the rule is stated there).
//! - `freshness.rs`: ready, stale or dead from the last beat and the promised thresholds, and
//!   the next instant one of them is crossed.
//! - `parts.rs`: which part of a namespace (a Cluster shard) holds a replica, and why it cannot
//!   be read.
//! - `instances.rs`: the instances each container has run (shared by judging and Docker merging).
//! - `fingerprint.rs`: what a person would notice, so the generation moves on visible changes.
//! - this file: the task loop ([`run`]), which wakes at the next threshold crossing: a stale
//!   agent shows within milliseconds of crossing, not at the next read.

mod book;
mod change;
mod docker;
mod fingerprint;
mod freshness;
mod instances;
mod link;
mod parts;
mod store;

#[cfg(test)]
mod fixtures;

use std::sync::Arc;

use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

pub use book::Book;
pub use change::{CHANGES_CAPACITY, Change, Changes, DockerChange, HealUpdate, IndexedRead};
pub(crate) use parts::part_of;
pub use store::DEAD_RETENTION;
pub(crate) use store::record_vanished;

use crate::state::State;

/// At a crossing it also notifies `poke` (the store watchers), so a fresh read confirms the
/// new state within a round trip.
pub async fn run(
    mut book: Book,
    mut changes: mpsc::Receiver<Change>,
    snapshots: watch::Sender<Arc<State>>,
    poke: Option<Arc<tokio::sync::Notify>>,
    shutdown: impl std::future::Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    loop {
        let deadline = book.next_deadline(Instant::now());
        tokio::select! {
            _ = &mut shutdown => return,
            change = changes.recv() => match change {
                Some(c) => book.apply(c, Instant::now()),
                None => return,
            },
            _ = sleep_until(deadline), if deadline.is_some() => {
                if let Some(p) = &poke {
                    p.notify_waiters();
                }
            }
        }
        while let Ok(c) = changes.try_recv() {
            book.apply(c, Instant::now());
        }
        book.judge(Instant::now());
        snapshots.send_replace(book.snapshot());
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::time::Duration;

    use ready_signal::Observed;

    use super::fixtures::*;
    use super::*;

    /// The running writer publishes `stale` at the instant of crossing, without waiting for the
    /// next read.
    #[tokio::test(start_paused = true)]
    async fn writer_wakes_at_the_crossing() {
        let b = book();
        let (tx, mut rx) = watch::channel(b.snapshot());
        let (changes, incoming) = mpsc::channel(8);
        tokio::spawn(run(b, incoming, tx, None, std::future::pending()));
        changes
            .send(read(vec![status(
                "worker",
                "w1",
                ready_signal::State::Ready,
                0,
            )]))
            .await
            .unwrap();
        let t0 = Instant::now();
        let stale = rx
            .wait_for(|s| {
                s.replicas
                    .first()
                    .is_some_and(|r| r.observed == Observed::Stale)
            })
            .await
            .unwrap()
            .clone();
        let after = stale.built_at - t0;
        assert!(
            after >= Duration::from_millis(2000) && after <= Duration::from_millis(2002),
            "stale after {after:?}"
        );
    }
}
