//! Merging what the store says into the book: a bulk read of a namespace (authoritative, fenced
//! by epoch in the store) and a transition published on NATS (fenced here by instance id).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use ready_signal::{Observed, ReplicaStatus};
use tokio::time::Instant;

use super::book::Book;
use super::change::IndexedRead;
use super::parts::part_of;
use crate::error::Error;
use crate::state::{Link, Replica, Source};

/// How long a replica whose record is gone stays listed as dead (the store lists live replicas
/// only; the sidecar remembers the ones it saw, so a vanished agent shows as dead, not absent).
pub const DEAD_RETENTION: Duration = Duration::from_secs(600);

impl Book {
    /// A bulk read of `namespace` finished at `at`: its replicas, or why it failed.
    pub(super) fn apply_store_read(
        &mut self,
        namespace: String,
        at: Instant,
        result: Result<Vec<ReplicaStatus>, Error>,
        now: Instant,
    ) {
        self.state.counters.store_reads += 1;
        let was_failing = !self.store_failures.is_empty();
        match result {
            Ok(list) => {
                self.store_failures.remove(&namespace);
                self.merge_read(&namespace, at, list);
            }
            Err(reason) => {
                self.state.counters.store_errors += 1;
                let since = match self.store_failures.get(&namespace) {
                    Some((_, since)) => *since,
                    None => now,
                };
                self.store_failures.insert(namespace, (reason, since));
            }
        }
        self.update_store_source(was_failing, at);
    }

    /// The store's source line from the namespaces failing now.
    fn update_store_source(&mut self, was_failing: bool, at: Instant) {
        self.state.store = if !self.store_on {
            Source::Off
        } else {
            match self.store_failures.iter().next() {
                None => Source::Ok,
                Some((ns, (e, since))) => Source::Unknown {
                    reason: if self.state.namespaces.len() > 1 {
                        format!("namespace {ns}: {e}")
                    } else {
                        e.to_string()
                    },
                    kind: Some(e.kind()),
                    since: *since,
                },
            }
        };
        if was_failing && self.state.store.is_ok() {
            self.state.store_back_at = Some(at);
        }
    }

    fn merge_read(&mut self, namespace: &str, at: Instant, list: Vec<ReplicaStatus>) {
        let mut old: HashMap<(String, String), Arc<Replica>> = HashMap::new();
        let mut kept = Vec::with_capacity(self.state.replicas.len());
        for r in self.state.replicas.drain(..) {
            if r.namespace == namespace {
                old.insert((r.agent.clone(), r.replica.clone()), r);
            } else {
                kept.push(r);
            }
        }
        for s in list {
            let key = (s.agent.to_string(), s.replica.to_string());
            // The read is authoritative: the store fences its writes by epoch.
            let prev = old.remove(&key);
            kept.push(Arc::new(from_status(namespace, at, s, prev.as_deref())));
        }
        // Replicas the store no longer lists: their record expired or was removed. One that said
        // `stopping` left cleanly and goes; any other is dead, and kept a while to show it.
        for (_, mut r) in old {
            if vanish(&mut r, at) {
                kept.push(r);
            }
        }
        kept.sort_by(|a, b| {
            (&a.namespace, &a.agent, &a.replica).cmp(&(&b.namespace, &b.agent, &b.replica))
        });
        self.state.replicas = kept;
        // A bulk read watches nothing by the index: every replica is judged by time (each is
        // read anew, not indexed, and a vanished one is no longer indexed).
        self.state.index_marks.remove(namespace);
    }

    /// A read of `namespace` by its due index finished at `at`: the parts read in full are
    /// merged like a bulk read of their replicas, the replicas read since are updated, and the
    /// parts that failed make their replicas (and only theirs) unknown.
    pub(super) fn apply_store_indexed(
        &mut self,
        namespace: String,
        at: Instant,
        read: IndexedRead,
        now: Instant,
    ) {
        self.state.counters.store_reads += 1;
        let was_failing = !self.store_failures.is_empty();
        self.store_failures.remove(&namespace);
        self.parts.insert(namespace.clone(), read.parts);
        let mut failing: Vec<usize> = Vec::new();
        for (part, e) in read.failed {
            self.state.counters.store_errors += 1;
            failing.push(part);
            let key = (namespace.clone(), part);
            let since = self
                .part_failures
                .get(&key)
                .map_or(now, |(_, since)| *since);
            self.part_failures.insert(key, (e, since));
        }
        self.part_failures
            .retain(|(ns, part), _| ns != &namespace || failing.contains(part));
        if read.parts > 0 && failing.len() >= read.parts {
            // Nothing of the namespace could be read: the store is unknown, as for a bulk read.
            let (e, since) = self
                .part_failures
                .get(&(namespace.clone(), failing[0]))
                .map(|(e, since)| (e.clone(), *since))
                .unwrap_or_else(|| {
                    (
                        Error::new(
                            crate::error::ErrorKind::Unreachable,
                            "no part of the store could be read",
                        ),
                        now,
                    )
                });
            self.store_failures.insert(namespace.clone(), (e, since));
        }
        let parts = read.parts;
        let part_of = |agent: &str| part_of(parts, agent);
        // The book's replicas are sorted by key: each read replica is found by binary search,
        // with no per-round map of every replica; only newcomers (pushed after the sorted
        // part, sorted at the end) are kept by key, in case a round reads one twice.
        let known = self.state.replicas.len();
        let mut newcomers: HashMap<(String, String), usize> = HashMap::new();
        let mut seen = vec![false; known];
        // Replicas read without a record: expired or removed since the book last saw them.
        let mut vanished = vec![false; known];
        for w in read.replicas {
            let (agent, replica) = (w.status.agent.as_str(), w.status.replica.as_str());
            let gone = record_vanished(&w.status);
            let found = position(&self.state.replicas[..known], &namespace, agent, replica);
            match found {
                // What the book knows of the vanished record's process stays (its instance, its
                // last beat), as when a bulk read no longer lists it: a frozen agent whose
                // record expired is dead and still its container's own, not a newcomer without
                // a past (which the governor would wait for as `starting`).
                Some(i) if gone => vanished[i] = true,
                Some(i) => {
                    seen[i] = true;
                    let mut next =
                        from_status(&namespace, at, w.status, Some(&self.state.replicas[i]));
                    next.indexed = w.indexed;
                    self.state.replicas[i] = Arc::new(next);
                }
                // Nothing to remember of a record never seen.
                None if gone => {}
                None => {
                    let key = (agent.to_owned(), replica.to_owned());
                    match newcomers.get(&key) {
                        Some(&i) => {
                            let mut next = from_status(
                                &namespace,
                                at,
                                w.status,
                                Some(&self.state.replicas[i]),
                            );
                            next.indexed = w.indexed;
                            self.state.replicas[i] = Arc::new(next);
                        }
                        None => {
                            newcomers.insert(key, self.state.replicas.len());
                            let mut next = from_status(&namespace, at, w.status, None);
                            next.indexed = w.indexed;
                            self.state.replicas.push(Arc::new(next));
                        }
                    }
                }
            }
        }
        let added = !newcomers.is_empty();
        // Replicas read without a record, and those of a part read in full that it no longer
        // lists: gone, as in a bulk read.
        if !read.complete.is_empty() || vanished.contains(&true) {
            let mut i = 0;
            self.state.replicas.retain_mut(|r| {
                let listed = seen.get(i).copied().unwrap_or(true);
                let read_gone = vanished.get(i).copied().unwrap_or(false);
                i += 1;
                let unlisted = !listed
                    && r.namespace == namespace
                    && read.complete.contains(&part_of(&r.agent));
                if !read_gone && !unlisted {
                    return true;
                }
                vanish(r, at)
            });
        }
        if added {
            self.state.replicas.sort_by(|a, b| {
                (&a.namespace, &a.agent, &a.replica).cmp(&(&b.namespace, &b.agent, &b.replica))
            });
        }
        self.mark_answered(&namespace, read.parts, &read.queried, read.queried_at);
        self.update_store_source(was_failing, at);
    }

    /// The parts whose index answered this round's query, marked with the round's start: an
    /// indexed replica of theirs that was not named late beat at most two intervals before it
    /// ([`crate::state::State::beat_bound`]). A mark per part, not a write per replica: the
    /// replicas (shared with the snapshots) stay untouched by a round that names none of them.
    fn mark_answered(&mut self, namespace: &str, parts: usize, queried: &[usize], at: Instant) {
        if queried.is_empty() {
            return;
        }
        let marks = self
            .state
            .index_marks
            .entry(namespace.to_string())
            .or_default();
        if marks.parts != parts {
            *marks = crate::state::IndexMarks {
                parts,
                answered: vec![None; parts],
            };
        }
        for &p in queried {
            if let Some(mark) = marks.answered.get_mut(p) {
                *mark = Some(at);
            }
        }
    }

    pub(super) fn merge_event(&mut self, namespace: &str, at: Instant, e: ready_signal::Event) {
        let (agent, replica) = (e.agent.to_string(), e.replica.to_string());
        let slot = self.state.replicas.binary_search_by(|r| {
            (r.namespace.as_str(), r.agent.as_str(), r.replica.as_str()).cmp(&(
                namespace,
                agent.as_str(),
                replica.as_str(),
            ))
        });
        let found = slot.ok().map(|i| &mut self.state.replicas[i]);
        let reason = Some(e.reason).filter(|r| !r.is_empty());
        match found {
            Some(r) => {
                // Fenced by instance id: an old process's late event never overrides a new one.
                if newer(r.instance.as_deref(), Some(&e.instance)) {
                    return;
                }
                let r = Arc::make_mut(r);
                if r.instance.as_deref() != Some(e.instance.as_str()) {
                    // A new instance: what the old record said of its process and container
                    // is not known of this one until the next read.
                    r.epoch = None;
                    r.instance_started = None;
                    r.record_container = None;
                    r.host = None;
                }
                // An event that names its container links the new instance at once.
                if e.container.is_some() {
                    r.record_container = e.container;
                }
                r.published = Some(e.state);
                r.instance = Some(e.instance);
                r.reason = reason;
                // A transition is written with a fresh beat: the publisher is alive right now.
                r.beat_at = Some(at);
            }
            None => {
                // In key order: the book's replicas stay sorted.
                let at_key = slot.err().unwrap_or(self.state.replicas.len());
                self.state.replicas.insert(
                    at_key,
                    Arc::new(Replica {
                        namespace: namespace.to_string(),
                        agent,
                        replica,
                        observed: e.state.into(),
                        since: at,
                        beat_age: Some(Duration::ZERO),
                        instance: Some(e.instance),
                        epoch: None,
                        reason,
                        container_id: None,
                        link: Link::Pending,
                        record_container: e.container,
                        instance_started: None,
                        published: Some(e.state),
                        beat_at: Some(at),
                        interval: None,
                        ttl: None,
                        host: None,
                        indexed: false,
                    }),
                );
            }
        }
    }
}

/// The replica a store read says `s` is, carrying over what only this process knows of it
/// (its container link) from `prev`.
fn from_status(namespace: &str, at: Instant, s: ReplicaStatus, prev: Option<&Replica>) -> Replica {
    let beat_at = s.age.map(|a| at.checked_sub(a).unwrap_or(at));
    let entered = s.since.and_then(|d| at.checked_sub(d)).unwrap_or(at);
    // The store's clock, read relative to the reply: no wall clocks compared.
    let instance_started = s.started.and_then(|d| at.checked_sub(d));
    let since = match prev {
        Some(p) if p.observed == s.state => p.since,
        Some(_) => at,
        None => entered,
    };
    Replica {
        namespace: namespace.to_string(),
        agent: s.agent.to_string(),
        replica: s.replica.to_string(),
        observed: s.state,
        since,
        beat_age: s.age,
        instance: s.instance,
        epoch: s.epoch,
        reason: s.reason,
        container_id: prev.and_then(|p| p.container_id.clone()),
        link: prev.map(|p| p.link.clone()).unwrap_or_default(),
        record_container: s.container,
        instance_started,
        published: s.published,
        beat_at,
        interval: s.interval,
        ttl: s.ttl,
        host: s.host,
        indexed: false,
    }
}

/// Where the replica keyed (`namespace`, `agent`, `replica`) is in `replicas`, which are sorted
/// by that key.
fn position(
    replicas: &[Arc<Replica>],
    namespace: &str,
    agent: &str,
    replica: &str,
) -> Option<usize> {
    replicas
        .binary_search_by(|r| {
            (r.namespace.as_str(), r.agent.as_str(), r.replica.as_str())
                .cmp(&(namespace, agent, replica))
        })
        .ok()
}

/// Whether a read found no record at all (expired or removed): the observer's dead replica
/// without an instance.
pub(crate) fn record_vanished(s: &ReplicaStatus) -> bool {
    s.state == Observed::Dead && s.instance.is_none()
}

/// A replica its store no longer lists (its record expired or was removed): one that said
/// `stopping` left cleanly and goes (false); any other is dead, and kept a while to show it.
fn vanish(r: &mut Arc<Replica>, at: Instant) -> bool {
    if r.published == Some(ready_signal::State::Stopping) {
        return false;
    }
    // Copied from the snapshots only the first time: a vanished replica is read again and
    // again while it is polled.
    if r.observed != Observed::Dead || r.published.is_some() || r.indexed {
        let r = Arc::make_mut(r);
        if r.observed != Observed::Dead {
            r.observed = Observed::Dead;
            r.since = at;
        }
        r.published = None;
        r.indexed = false;
    }
    at.saturating_duration_since(r.since) < DEAD_RETENTION
}

/// Whether instance `a` is strictly newer than `b`. Events carry no epoch, so a late event is
/// told apart by the instance id, which starts with its process's start time; the next read
/// (fenced by epoch in the store) corrects any misjudgement within a read interval.
fn newer(a: Option<&str>, b: Option<&str>) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => a > b,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::time::Duration;

    use ready_signal::Observed;
    use tokio::time::Instant;

    use super::super::fixtures::*;
    use super::*;
    use crate::error::ErrorKind;
    use crate::writer::Change;

    /// A published transition shows at once; a late event of an older instance is ignored.
    #[tokio::test(start_paused = true)]
    async fn events_apply_at_once_fenced_by_instance() {
        let mut b = book();
        b.apply(
            read(vec![status("worker", "w1", ready_signal::State::Ready, 0)]),
            Instant::now(),
        );
        b.judge(Instant::now());
        b.apply(
            event(
                "w1",
                "1764000000000-0a1b2c3d",
                ready_signal::State::NotReady,
                "redis down",
            ),
            Instant::now(),
        );
        b.judge(Instant::now());
        assert_eq!(observed(&b), [("w1", Observed::NotReady)]);
        assert_eq!(b.state().replicas[0].reason.as_deref(), Some("redis down"));
        // A new instance takes over, then the old one's late `stopping` arrives.
        b.apply(
            event(
                "w1",
                "1764000099999-00000001",
                ready_signal::State::Ready,
                "",
            ),
            Instant::now(),
        );
        b.apply(
            event(
                "w1",
                "1764000000000-0a1b2c3d",
                ready_signal::State::Stopping,
                "",
            ),
            Instant::now(),
        );
        b.judge(Instant::now());
        assert_eq!(observed(&b), [("w1", Observed::Ready)]);
        assert_eq!(
            b.state().replicas[0].instance.as_deref(),
            Some("1764000099999-00000001")
        );
    }

    /// A replica the store stops listing (its record expired) stays, as dead, for a while; one
    /// that said `stopping` first leaves at once.
    #[tokio::test(start_paused = true)]
    async fn vanished_replicas_show_dead_then_go() {
        let mut b = book();
        b.apply(
            read(vec![
                status("worker", "w1", ready_signal::State::Ready, 0),
                status("worker", "w2", ready_signal::State::Stopping, 0),
            ]),
            Instant::now(),
        );
        b.judge(Instant::now());
        b.apply(read(vec![]), Instant::now());
        b.judge(Instant::now());
        assert_eq!(observed(&b), [("w1", Observed::Dead)]);
        tokio::time::advance(DEAD_RETENTION).await;
        b.apply(read(vec![]), Instant::now());
        b.judge(Instant::now());
        assert_eq!(observed(&b), []);
    }

    /// An unreachable store makes every replica unknown with the reason, never dead, however
    /// long it lasts; the next good read restores the truth.
    #[tokio::test(start_paused = true)]
    async fn unreachable_store_is_unknown_not_dead() {
        let mut b = book();
        b.apply(
            read(vec![status("worker", "w1", ready_signal::State::Ready, 0)]),
            Instant::now(),
        );
        b.judge(Instant::now());
        let failed = Change::StoreRead {
            namespace: NS.into(),
            at: Instant::now(),
            result: Err(Error::store(ready_signal::Error::Redis {
                addr: "redis:6379".into(),
                message: "connection refused".into(),
                source: None,
            })),
        };
        b.apply(failed, Instant::now());
        tokio::time::advance(Duration::from_secs(60)).await;
        b.judge(Instant::now());
        assert_eq!(observed(&b), [("w1", Observed::Unknown)]);
        assert_eq!(b.state().store.as_str(), "unknown");
        assert!(
            b.state().replicas[0]
                .reason
                .as_deref()
                .unwrap()
                .contains("connection refused")
        );
        assert_eq!(b.state().store.kind(), Some(ErrorKind::Unreachable));
        assert_eq!(b.state().counters.store_errors, 1);
        b.apply(
            read(vec![status("worker", "w1", ready_signal::State::Ready, 0)]),
            Instant::now(),
        );
        b.judge(Instant::now());
        assert_eq!(observed(&b), [("w1", Observed::Ready)]);
        assert!(b.state().store.is_ok());
    }

    fn indexed(parts: usize, complete: Vec<usize>, replicas: Vec<(ReplicaStatus, bool)>) -> Change {
        Change::StoreIndexed {
            namespace: NS.into(),
            at: Instant::now(),
            read: IndexedRead {
                parts,
                complete,
                replicas: replicas
                    .into_iter()
                    .map(|(status, indexed)| ready_signal::WatchedReplica {
                        status,
                        indexed,
                        due_in: None,
                    })
                    .collect(),
                failed: Vec::new(),
                queried: (0..parts).collect(),
                queried_at: Instant::now(),
            },
        }
    }

    /// Replicas are found by binary search, so the book keeps them in key order whatever order
    /// events and reads bring them in; a round that reads a newcomer twice (a full read, then the
    /// replicas events named) lists it once, as last read.
    #[tokio::test(start_paused = true)]
    async fn replicas_stay_in_key_order_and_once() {
        let mut b = book();
        for r in ["w5", "w1", "w3"] {
            b.apply(
                event(r, "1764000000000-0a1b2c3d", ready_signal::State::Ready, ""),
                Instant::now(),
            );
        }
        let mut twice = status("worker", "w2", ready_signal::State::Ready, 0);
        twice.reason = Some("first".into());
        let mut again = twice.clone();
        again.published = Some(ready_signal::State::NotReady);
        again.state = Observed::NotReady;
        b.apply(
            indexed(
                1,
                vec![],
                vec![
                    (twice, true),
                    (again, true),
                    (status("worker", "w4", ready_signal::State::Ready, 0), true),
                ],
            ),
            Instant::now(),
        );
        b.apply(
            event(
                "w0",
                "1764000000000-0a1b2c3d",
                ready_signal::State::Ready,
                "",
            ),
            Instant::now(),
        );
        b.judge(Instant::now());
        let names: Vec<&str> = observed(&b).into_iter().map(|(r, _)| r).collect();
        assert_eq!(names, ["w0", "w1", "w2", "w3", "w4", "w5"]);
        assert_eq!(observed(&b)[2], ("w2", Observed::NotReady));
    }

    /// A frozen agent's record expires; the index names it late and the read finds no record.
    /// The book keeps what it knew of the process (instance, last beat), as a bulk read does for
    /// a replica it no longer lists: the replica is dead and still its container's own. Wiping
    /// those made the governor take the container for one whose new process had not written
    /// yet (`starting` for a grace, then `silent`), so three frozen agents of four flipped the
    /// shared-outage brake on and off (the heal suite under the index).
    #[tokio::test(start_paused = true)]
    async fn a_vanished_record_read_by_the_index_keeps_its_process() {
        use crate::heal::{Whose, whose};
        let mut b = book();
        let start = Instant::now();
        tokio::time::advance(Duration::from_secs(30)).await;
        b.apply(
            indexed(
                1,
                vec![0],
                vec![(status("worker", "w1", ready_signal::State::Ready, 0), true)],
            ),
            Instant::now(),
        );
        b.judge(Instant::now());
        let before = b.state().replicas[0].clone();
        let beat = b.state().beat_bound(&before);
        assert_eq!(whose(&before, beat, &[], Some(start)), Whose::Own);
        tokio::time::advance(Duration::from_secs(5)).await;
        let mut none = status("worker", "w1", ready_signal::State::Ready, 0);
        none.state = Observed::Dead;
        none.instance = None;
        none.age = None;
        none.published = None;
        none.started = None;
        none.host = None;
        b.apply(indexed(1, vec![], vec![(none, false)]), Instant::now());
        b.judge(Instant::now());
        let r = &b.state().replicas[0];
        assert_eq!(r.observed, Observed::Dead);
        assert_eq!(r.instance, before.instance);
        assert_eq!(r.beat_at, before.beat_at);
        assert_eq!(
            whose(r, b.state().beat_bound(r), &[], Some(start)),
            Whose::Own
        );
        // A replica never seen whose record is gone adds nothing.
        let mut stranger = status("worker", "w9", ready_signal::State::Ready, 0);
        stranger.state = Observed::Dead;
        stranger.instance = None;
        b.apply(indexed(1, vec![], vec![(stranger, false)]), Instant::now());
        assert_eq!(observed(&b), [("w1", Observed::Dead)]);
    }

    /// A process that took its record within the clock margin of its container's start is not
    /// told from its predecessor by that record; with bulk reads its next beat proves it. The
    /// due index does not read its beats, but every query that does not name it late proves a
    /// beat at most two intervals before the query. Without that proof every restarted agent
    /// stayed unproven, then `silent`, and the governor restarted it again or, with half the
    /// stack so judged, held every restart as a shared outage (the heal suite under the index).
    #[tokio::test(start_paused = true)]
    async fn an_indexed_replica_proves_its_beats_to_the_governor() {
        use crate::heal::{Whose, whose};
        let mut b = book();
        let start = Instant::now();
        let took_record_now = |replica: &str| {
            let mut s = status("worker", replica, ready_signal::State::Ready, 0);
            s.started = Some(Duration::ZERO);
            s
        };
        b.apply(
            indexed(
                1,
                vec![0],
                vec![
                    (took_record_now("w1"), true),
                    (took_record_now("w2"), false),
                ],
            ),
            Instant::now(),
        );
        let whose_now = |b: &Book, i: usize| {
            let r = &b.state().replicas[i];
            whose(r, b.state().beat_bound(r), &[], Some(start))
        };
        assert_eq!(whose_now(&b, 0), Whose::Unsure);
        // A query of a part that failed proves nothing.
        tokio::time::advance(Duration::from_secs(10)).await;
        let mut failed = indexed(1, vec![], vec![]);
        if let Change::StoreIndexed { read, .. } = &mut failed {
            read.queried.clear();
        }
        b.apply(failed, Instant::now());
        assert_eq!(whose_now(&b, 0), Whose::Unsure);
        // A query that answers and does not name w1: its beat is at most 2 s (two intervals)
        // old. w2 is not indexed (an older writer): only its own beats count.
        b.apply(indexed(1, vec![], vec![]), Instant::now());
        let bound = |b: &Book| b.state().beat_bound(&b.state().replicas[0]);
        assert_eq!(bound(&b), Some(Instant::now() - Duration::from_secs(2)));
        assert_eq!(whose_now(&b, 0), Whose::Own);
        assert_eq!(whose_now(&b, 1), Whose::Unsure);
        // A floor never lowers a beat that was read.
        b.apply(
            indexed(1, vec![], vec![(took_record_now("w1"), true)]),
            Instant::now(),
        );
        assert_eq!(bound(&b), Some(Instant::now()));
    }

    /// The bound never credits a beat that did not happen: the old process's record, still on
    /// time at a query (its deadline, two intervals after its last beat, is ahead), is bounded
    /// below that last beat, so a container restarted after it is not taken for running a
    /// process that writes (the governor waits for the new process's own record, then calls
    /// it silent). A floor counted from the query itself, not two intervals before it, would
    /// prove the new process here.
    #[tokio::test(start_paused = true)]
    async fn the_index_never_credits_a_predecessor_with_a_restart() {
        use crate::heal::{Whose, whose};
        let mut b = book();
        let last_beat = Instant::now();
        b.apply(
            indexed(
                1,
                vec![0],
                vec![(status("worker", "w1", ready_signal::State::Ready, 0), true)],
            ),
            Instant::now(),
        );
        let restarted = last_beat + Duration::from_millis(200);
        tokio::time::advance(Duration::from_millis(1500)).await;
        b.apply(indexed(1, vec![], vec![]), Instant::now());
        let r = &b.state().replicas[0];
        assert_eq!(b.state().beat_bound(r), Some(last_beat));
        assert_ne!(
            whose(r, b.state().beat_bound(r), &[], Some(restarted)),
            Whose::Own
        );
    }

    /// A replica the due index covers is not judged stale by time (its beats are not read); one
    /// it does not cover (an older writer) is, as after a bulk read; a late read that finds it
    /// stale shows it at once.
    #[tokio::test(start_paused = true)]
    async fn indexed_replicas_wait_for_the_index_others_age_by_time() {
        let mut b = book();
        b.apply(
            indexed(
                1,
                vec![0],
                vec![
                    (status("worker", "w1", ready_signal::State::Ready, 0), true),
                    (status("worker", "w2", ready_signal::State::Ready, 0), false),
                ],
            ),
            Instant::now(),
        );
        b.judge(Instant::now());
        // Only w2's crossing is a deadline of the writer (interval 1 s: stale past 2 s).
        assert_eq!(
            b.next_deadline(Instant::now()).unwrap() - Instant::now(),
            Duration::from_millis(2001)
        );
        tokio::time::advance(Duration::from_secs(5)).await;
        b.judge(Instant::now());
        assert_eq!(
            observed(&b),
            [("w1", Observed::Ready), ("w2", Observed::Dead)]
        );
        // The index names w1 late: read stale, and no longer indexed.
        let mut late = status("worker", "w1", ready_signal::State::Ready, 2500);
        late.state = Observed::Stale;
        b.apply(
            indexed(1, vec![], vec![(late.clone(), false)]),
            Instant::now(),
        );
        b.judge(Instant::now());
        assert_eq!(observed(&b)[0], ("w1", Observed::Stale));
        // A full read of the part that lists w1 but no longer w2: w2 is gone (dead, kept a
        // while), w1 as read.
        b.apply(indexed(1, vec![0], vec![(late, false)]), Instant::now());
        b.judge(Instant::now());
        assert_eq!(
            observed(&b),
            [("w1", Observed::Stale), ("w2", Observed::Dead)]
        );
    }

    /// On a Cluster (64 parts), a part that fails makes only its agents' replicas unknown, with
    /// the reason; the store as a whole stays readable, and the part's next full read restores
    /// its replicas.
    #[tokio::test(start_paused = true)]
    async fn a_failed_part_makes_only_its_replicas_unknown() {
        let mut b = book();
        // Two agents in different shards.
        let (a, z) = ("agent-00", "agent-01");
        let part = |agent: &str| {
            usize::from(ready_signal::shard(
                &ready_signal::Name::new(agent).unwrap(),
            ))
        };
        assert_ne!(part(a), part(z));
        b.apply(
            indexed(
                64,
                (0..64).collect(),
                vec![
                    (status(a, "r1", ready_signal::State::Ready, 0), true),
                    (status(z, "r1", ready_signal::State::Ready, 0), true),
                ],
            ),
            Instant::now(),
        );
        let mut failing = indexed(64, vec![], vec![]);
        if let Change::StoreIndexed { read, .. } = &mut failing {
            read.queried.retain(|&p| p != part(a));
            read.failed.push((
                part(a),
                Error::store(ready_signal::Error::Redis {
                    addr: "10.0.0.1:6379".into(),
                    message: "timed out".into(),
                    source: None,
                }),
            ));
        }
        b.apply(failing, Instant::now());
        b.judge(Instant::now());
        let states: Vec<(&str, Observed)> = b
            .state()
            .replicas
            .iter()
            .map(|r| (r.agent.as_str(), r.observed))
            .collect();
        assert_eq!(states, [(a, Observed::Unknown), (z, Observed::Ready)]);
        let why = b.state().replicas[0].reason.clone().unwrap();
        assert!(
            why.contains(&format!("shard {:02}", part(a))) && why.contains("timed out"),
            "{why}"
        );
        assert!(b.state().store.is_ok());
        b.apply(
            indexed(
                64,
                vec![part(a)],
                vec![(status(a, "r1", ready_signal::State::Ready, 0), true)],
            ),
            Instant::now(),
        );
        b.judge(Instant::now());
        assert_eq!(b.state().replicas[0].observed, Observed::Ready);
        assert_eq!(b.state().replicas[0].reason, None);
    }
}
