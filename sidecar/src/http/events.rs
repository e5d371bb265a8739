//! `GET /api/events`: server-sent events of state changes.
//!
//! Each client gets a `hello` with the current generation, then one `change` event per replica,
//! container or source whose state changed between two snapshots it saw, and one `history` event
//! per new entry of the timeline ([`crate::timeline::Entry`]: a state run begun, a restart and
//! who made it, a decision, a quarantine, a release). A slow client skips
//! intermediate snapshots (the watch channel keeps only the latest) but never slows the writer,
//! and its next diff still covers everything that changed.

use std::borrow::Cow;
use std::cmp::Ordering;
use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;

use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::Stream;
use serde::Serialize;
use tokio::sync::watch;

use super::api::rfc3339;
use crate::state::{Replica, State};

/// One change, as sent.
#[derive(Debug, Serialize, PartialEq)]
pub struct ChangeEvent {
    /// `replica`, `container` or `source`.
    pub kind: &'static str,
    /// `namespace/agent/replica`, the container name, or the source name.
    pub key: String,
    /// The previous state (null when new).
    pub from: Option<String>,
    /// The new state (null when gone).
    pub to: Option<String>,
    /// The reason shown with the new state.
    pub reason: Option<String>,
    /// The snapshot's wall time, RFC 3339.
    pub at: String,
    /// The snapshot's generation.
    pub generation: u64,
}

type Keyed = HashMap<(&'static str, String), (String, Option<String>)>;

/// The sources and containers (a few), by kind and key, with their state and reason.
fn keyed(s: &State) -> Keyed {
    let mut m = HashMap::with_capacity(s.containers.len() + 2);
    m.insert(
        ("source", "store".into()),
        (s.store.as_str().into(), s.store.reason().map(Into::into)),
    );
    m.insert(
        ("source", "docker".into()),
        (s.docker.as_str().into(), s.docker.reason().map(Into::into)),
    );
    for c in &s.containers {
        let st = match &c.health {
            Some(h) if c.running => format!("{}/{h}", c.status),
            _ => c.status.clone(),
        };
        m.insert(
            ("container", c.name.clone()),
            (st, c.last_health_line.clone()),
        );
    }
    m
}

/// A replica's key in the book's order.
fn order(r: &Replica) -> (&str, &str, &str) {
    (&r.namespace, &r.agent, &r.replica)
}

/// `replicas` in the book's order (the writer keeps them so; sorted here only if not).
fn in_order(replicas: &[Arc<Replica>]) -> Cow<'_, [Arc<Replica>]> {
    if replicas.is_sorted_by(|a, b| order(a) <= order(b)) {
        Cow::Borrowed(replicas)
    } else {
        let mut v = replicas.to_vec();
        v.sort_by(|a, b| order(a).cmp(&order(b)));
        Cow::Owned(v)
    }
}

/// What changed from `old` to `new`, sorted by kind and key.
///
/// Replicas are compared by a walk of both lists in key order: the snapshots share every
/// replica the writer did not change, so most pairs are one pointer, and an event (with its
/// key) is built only for a replica that changed state, came or went. At 100,000 agents a map
/// of every replica per snapshot was most of a transition's way to the stream.
pub fn diff(old: &State, new: &State) -> Vec<ChangeEvent> {
    let at = rfc3339(new.built_wall);
    let event = |kind: &'static str,
                 key: String,
                 from: Option<String>,
                 to: Option<String>,
                 reason: Option<String>| ChangeEvent {
        kind,
        key,
        from,
        to,
        reason,
        at: at.clone(),
        generation: new.generation,
    };
    let mut out = Vec::new();
    let key = |r: &Replica| format!("{}/{}/{}", r.namespace, r.agent, r.replica);
    let state = |r: &Replica| Some(r.observed.as_str().to_owned());
    let (a, b) = (in_order(&old.replicas), in_order(&new.replicas));
    let (mut i, mut j) = (0, 0);
    loop {
        let ord = match (a.get(i), b.get(j)) {
            (Some(x), Some(y)) => order(x).cmp(&order(y)),
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
            (None, None) => break,
        };
        match ord {
            Ordering::Equal => {
                let (x, y) = (&a[i], &b[j]);
                if !Arc::ptr_eq(x, y) && x.observed != y.observed {
                    out.push(event(
                        "replica",
                        key(y),
                        state(x),
                        state(y),
                        y.reason.clone(),
                    ));
                }
                i += 1;
                j += 1;
            }
            Ordering::Less => {
                out.push(event("replica", key(&a[i]), state(&a[i]), None, None));
                i += 1;
            }
            Ordering::Greater => {
                let y = &b[j];
                out.push(event("replica", key(y), None, state(y), y.reason.clone()));
                j += 1;
            }
        }
    }
    let (a, b) = (keyed(old), keyed(new));
    for (k, (to, reason)) in &b {
        let from = a.get(k).map(|(s, _)| s.clone());
        if from.as_deref() != Some(to.as_str()) {
            out.push(event(
                k.0,
                k.1.clone(),
                from,
                Some(to.clone()),
                reason.clone(),
            ));
        }
    }
    for (k, (from, _)) in &a {
        if !b.contains_key(k) {
            out.push(event(k.0, k.1.clone(), Some(from.clone()), None, None));
        }
    }
    out.sort_by(|x, y| (x.kind, &x.key).cmp(&(y.kind, &y.key)));
    out
}

/// The event stream of one client.
pub fn stream(
    mut snapshots: watch::Receiver<Arc<State>>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let first = snapshots.borrow_and_update().clone();
    let hello = Event::default()
        .event("hello")
        .data(format!("{{\"generation\":{}}}", first.generation));
    let changes = futures_util::stream::unfold((snapshots, first), |(mut rx, last)| async move {
        loop {
            rx.changed().await.ok()?;
            let next = rx.borrow_and_update().clone();
            if next.generation == last.generation {
                continue;
            }
            let mut events: Vec<Result<Event, Infallible>> = diff(&last, &next)
                .into_iter()
                .map(|c| {
                    Ok(Event::default()
                        .event("change")
                        .data(serde_json::to_string(&c).unwrap_or_default()))
                })
                .collect();
            // The history's new entries (the same diff the timeline keeps): a state run begun,
            // a restart with who made it, a decision, a quarantine or release.
            events.extend(
                crate::timeline::changes(Some(&last), &next)
                    .into_iter()
                    .map(|h| {
                        Ok(Event::default()
                            .event("history")
                            .data(serde_json::to_string(&h).unwrap_or_default()))
                    }),
            );
            return Some((futures_util::stream::iter(events), (rx, next)));
        }
    });
    use futures_util::StreamExt as _;
    let all = futures_util::stream::once(async move { Ok(hello) }).chain(changes.flatten());
    Sse::new(all).keep_alive(KeepAlive::default())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use ready_signal::Observed;
    use tokio::time::Instant;

    use super::*;
    use crate::state::Source;

    fn replica(name: &str, observed: Observed) -> Arc<Replica> {
        Arc::new(Replica {
            reason: (observed == Observed::NotReady).then(|| "warming".into()),
            ..Replica::bare("worker", name, observed, Instant::now())
        })
    }

    fn events(old: &State, new: &State) -> Vec<(String, Option<String>, Option<String>)> {
        diff(old, new)
            .into_iter()
            .map(|e| (format!("{}:{}", e.kind, e.key), e.from, e.to))
            .collect()
    }

    /// Replicas shared by both snapshots say nothing; a changed one, a newcomer and a gone one
    /// each say their change, and a copy of an unchanged replica (not shared) says nothing
    /// either. Sources and containers as before; all in kind and key order.
    #[test]
    fn a_diff_names_only_what_changed() {
        let old = {
            let mut s = State::new(Instant::now(), Source::Ok, Source::Ok);
            s.replicas = vec![
                replica("a", Observed::Ready),
                replica("b", Observed::Ready),
                replica("c", Observed::Ready),
                replica("d", Observed::Ready),
            ];
            s
        };
        let mut new = old.clone();
        new.replicas = vec![
            Arc::clone(&old.replicas[0]),
            replica("b", Observed::NotReady),
            Arc::new((*old.replicas[2]).clone()),
            replica("e", Observed::Starting),
        ];
        new.store = Source::Unknown {
            reason: "redis down".into(),
            kind: None,
            since: Instant::now(),
        };
        let some = |s: &str| Some(s.to_owned());
        assert_eq!(
            events(&old, &new),
            [
                (
                    "replica:demo/worker/b".into(),
                    some("ready"),
                    some("not-ready")
                ),
                ("replica:demo/worker/d".into(), some("ready"), None),
                ("replica:demo/worker/e".into(), None, some("starting")),
                ("source:store".into(), some("ok"), some("unknown")),
            ]
        );
        assert_eq!(diff(&old, &new)[0].reason.as_deref(), Some("warming"));
        // The same, whatever order a snapshot's replicas come in.
        let mut shuffled = new.clone();
        shuffled.replicas.reverse();
        assert_eq!(events(&old, &shuffled), events(&old, &new));
        assert!(events(&new, &new).is_empty());
    }
}
