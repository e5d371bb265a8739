//! What sources tell the writer: the [`Change`] messages and the channel they travel on. A leaf
//! of the writer (it imports only the snapshot vocabulary), so sources depend on it alone.

use std::collections::BTreeMap;

use ready_signal::ReplicaStatus;
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::error::Error;
use crate::state::{Container, ContainerHeal, HealSummary};

/// How many changes may wait for the writer before sources wait (bounded, never a backlog).
pub const CHANGES_CAPACITY: usize = 1024;

/// What a source tells the writer.
#[derive(Debug)]
#[non_exhaustive]
pub enum Change {
    /// A bulk read of one namespace finished at `at` (the read's replies, or why it failed).
    StoreRead {
        /// The namespace read.
        namespace: String,
        /// When the reply arrived.
        at: Instant,
        /// Every replica, or the failure.
        result: Result<Vec<ReplicaStatus>, Error>,
    },
    /// A read of one namespace by its due index finished at `at`: a full read of some parts,
    /// the replicas whose beat turned late and those read again, and the parts that failed.
    StoreIndexed {
        /// The namespace read.
        namespace: String,
        /// When the reply arrived.
        at: Instant,
        /// What was read.
        read: IndexedRead,
    },
    /// A transition published on NATS.
    StoreEvent {
        /// The namespace it came from.
        namespace: String,
        /// When it arrived.
        at: Instant,
        /// The event.
        event: ready_signal::Event,
    },
    /// What Docker says now.
    Docker(DockerChange),
    /// The governor's latest word (latest wins: it replaces the previous one).
    Heal(HealUpdate),
    /// The sidecar found its own container.
    SelfContainer(String),
}

/// What one read by the due index found (see `ready_signal::Observer::read_late`).
#[derive(Debug)]
pub struct IndexedRead {
    /// How many parts the namespace has (1 on one server, 64 shards on a Cluster).
    pub parts: usize,
    /// The parts read in full: their replicas not read are gone.
    pub complete: Vec<usize>,
    /// The replicas read, with whether the index covers them.
    pub replicas: Vec<ready_signal::WatchedReplica>,
    /// The parts that cannot be read now, and why: their replicas are unknown.
    pub failed: Vec<(usize, Error)>,
    /// The parts whose index was queried and answered: a replica of theirs that is indexed and
    /// was not named late beat at most two intervals before [`IndexedRead::queried_at`].
    pub queried: Vec<usize>,
    /// When the round began, no later than the store's clock at the query (the floor it gives
    /// a beat is on the safe side).
    pub queried_at: Instant,
}

/// A change seen on the Docker side.
#[derive(Debug)]
#[non_exhaustive]
pub enum DockerChange {
    /// A full listing: every watched container (replaces what was known).
    All(Vec<Container>),
    /// One container inspected after an event.
    One(Box<Container>),
    /// A container was removed.
    Gone(String),
    /// The Docker API could not be reached or answered an error.
    Failed(Error),
}

/// The governor's view, sent whole each time it changes.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HealUpdate {
    /// The stack-wide summary.
    pub summary: HealSummary,
    /// Per container id.
    pub containers: BTreeMap<String, ContainerHeal>,
}

/// Where sources send changes.
pub type Changes = mpsc::Sender<Change>;
