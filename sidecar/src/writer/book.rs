//! The working copy of the state ([`Book`]): it takes in [`Change`]s and, at each
//! [`Book::judge`], links replicas to containers and re-judges freshness at `now`.
//!
//! The book is pure: every method takes `now` as an argument, so tests drive a record from ready
//! to stale to dead with paused time. How each kind of change is merged lives beside it
//! (`store.rs`, `docker.rs`); the rules it applies live in `link.rs` and `freshness.rs`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::SystemTime;

use ready_signal::Observed;
use tokio::time::Instant;

use super::change::Change;
use super::{fingerprint, freshness, instances, link};
use crate::error::Error;
use crate::state::{ContainerHeal, Source, State};

/// The working copy of the state and the rules that judge it.
#[derive(Debug)]
pub struct Book {
    pub(super) state: State,
    pub(super) store_on: bool,
    pub(super) docker_on: bool,
    pub(super) store_failures: BTreeMap<String, (Error, Instant)>,
    /// Parts of a namespace (Cluster shards) that cannot be read, while the others can: only
    /// their replicas are unknown. Keyed by namespace and part; with the namespace's part count.
    pub(super) part_failures: BTreeMap<(String, usize), (Error, Instant)>,
    pub(super) parts: BTreeMap<String, usize>,
    pub(super) docker_failure: Option<(Error, Instant)>,
    pub(super) heal: BTreeMap<String, ContainerHeal>,
    pub(super) fingerprint: u64,
}

impl Book {
    /// An empty book: `store_on` / `docker_on` say which sources are configured.
    pub fn new(now: Instant, namespaces: Vec<String>, store_on: bool, docker_on: bool) -> Book {
        // A configured source is unknown until its first answer: nothing is claimed about it.
        let pending = |on: bool| {
            if on {
                Source::Unknown {
                    reason: "not read yet".into(),
                    kind: None,
                    since: now,
                }
            } else {
                Source::Off
            }
        };
        let mut state = State::new(now, pending(store_on), pending(docker_on));
        state.namespaces = namespaces;
        Book {
            state,
            store_on,
            docker_on,
            store_failures: BTreeMap::new(),
            part_failures: BTreeMap::new(),
            parts: BTreeMap::new(),
            docker_failure: None,
            heal: BTreeMap::new(),
            fingerprint: 0,
        }
    }

    /// The current state (for tests and the run loop).
    pub fn state(&self) -> &State {
        &self.state
    }

    /// Takes in one change that happened at or before `now`.
    pub fn apply(&mut self, change: Change, now: Instant) {
        match change {
            Change::StoreRead {
                namespace,
                at,
                result,
            } => self.apply_store_read(namespace, at, result, now),
            Change::StoreIndexed {
                namespace,
                at,
                read,
            } => self.apply_store_indexed(namespace, at, read, now),
            Change::StoreEvent {
                namespace,
                at,
                event,
            } => {
                self.state.counters.store_events += 1;
                self.merge_event(&namespace, at, event);
            }
            Change::Docker(change) => self.apply_docker(change, now),
            Change::Heal(update) => {
                self.state.heal = update.summary;
                self.heal = update.containers;
                for c in &mut self.state.containers {
                    c.heal = self.heal.get(&c.id).cloned();
                }
            }
            Change::SelfContainer(id) => self.state.self_container = Some(id),
        }
    }

    /// Re-judges every replica's freshness at `now`, links replicas to containers and stamps
    /// the snapshot time. Returns true when something a person would notice changed.
    pub fn judge(&mut self, now: Instant) -> bool {
        let store_ok = self.state.store.is_ok();
        let failing: Vec<String> = self.store_failures.keys().cloned().collect();
        let link_of = link::links(&self.state.replicas, &self.state.containers, self.docker_on);
        let containers = &mut self.state.containers;
        for (r, (container, link)) in self.state.replicas.iter_mut().zip(link_of) {
            // The instances each container has run, for judging a new process on its own
            // record (see `Container::earlier_instances`).
            if let (Some(i), Some(instance)) = (container, &r.instance) {
                let c = &mut containers[i];
                if !c.earlier_instances.contains(instance) {
                    instances::remember(&mut c.instances, instance);
                }
            }
            let container_id = container.map(|i| containers[i].id.as_str());
            let ns_ok = store_ok || !failing.contains(&r.namespace);
            let part_failure = if ns_ok && !self.part_failures.is_empty() {
                super::parts::part_failure(&self.parts, &self.part_failures, &r.namespace, &r.agent)
            } else {
                None
            };
            let next = if !ns_ok || part_failure.is_some() {
                Observed::Unknown
            } else {
                freshness::judged(r, now, r.indexed)
            };
            let reason = if next == Observed::Unknown && !ns_ok {
                Some(
                    self.store_failures
                        .get(&r.namespace)
                        .map(|(e, _)| e.to_string()),
                )
            } else {
                part_failure.map(Some)
            };
            // An indexed replica's beats are not read: its age is not known, only that it is
            // on time (the index would have named it).
            let beat_age = if r.indexed {
                None
            } else {
                r.beat_at.map(|b| now.saturating_duration_since(b))
            };
            // Copied (from the snapshots that share it) only when something of it changes.
            let same = r.container_id.as_deref() == container_id
                && r.link == link
                && reason.as_ref().is_none_or(|why| *why == r.reason)
                && next == r.observed
                && beat_age == r.beat_age;
            if same {
                continue;
            }
            let r = Arc::make_mut(r);
            if r.container_id.as_deref() != container_id {
                r.container_id = container_id.map(str::to_owned);
            }
            r.link = link;
            if let Some(why) = reason {
                r.reason = why;
            }
            if next != r.observed {
                r.observed = next;
                r.since = now;
            }
            r.beat_age = beat_age;
        }
        self.state.built_at = now;
        self.state.built_wall = SystemTime::now();
        let fp = fingerprint::fingerprint(&self.state);
        let changed = fp != self.fingerprint;
        if changed {
            self.fingerprint = fp;
            self.state.generation += 1;
        }
        changed
    }

    /// The next instant at which some replica crosses its stale or dead threshold.
    pub fn next_deadline(&self, now: Instant) -> Option<Instant> {
        freshness::next_deadline(&self.state.replicas, now)
    }

    /// An immutable copy for readers.
    pub fn snapshot(&self) -> Arc<State> {
        Arc::new(self.state.clone())
    }
}
