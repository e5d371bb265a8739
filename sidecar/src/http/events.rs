//! `GET /api/events`: server-sent events of state changes.
//!
//! Each client gets a `hello` with the current generation, then one `change` event per replica,
//! container or source whose state changed between two snapshots it saw, and one `history` event
//! per new entry of the timeline ([`crate::timeline::Entry`]: a state run begun, a restart and
//! who made it, a decision, a quarantine, a release). A slow client skips
//! intermediate snapshots (the watch channel keeps only the latest) but never slows the writer,
//! and its next diff still covers everything that changed.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;

use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::Stream;
use serde::Serialize;
use tokio::sync::watch;

use super::api::rfc3339;
use crate::state::State;

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

fn keyed(s: &State) -> Keyed {
    let mut m = HashMap::with_capacity(s.replicas.len() + s.containers.len() + 2);
    m.insert(
        ("source", "store".into()),
        (s.store.as_str().into(), s.store.reason().map(Into::into)),
    );
    m.insert(
        ("source", "docker".into()),
        (s.docker.as_str().into(), s.docker.reason().map(Into::into)),
    );
    for r in &s.replicas {
        m.insert(
            (
                "replica",
                format!("{}/{}/{}", r.namespace, r.agent, r.replica),
            ),
            (r.observed.as_str().into(), r.reason.clone()),
        );
    }
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

/// What changed from `old` to `new`, sorted by kind and key.
pub fn diff(old: &State, new: &State) -> Vec<ChangeEvent> {
    let (a, b) = (keyed(old), keyed(new));
    let at = rfc3339(new.built_wall);
    let mut out = Vec::new();
    for (k, (to, reason)) in &b {
        let from = a.get(k).map(|(s, _)| s.clone());
        if from.as_deref() != Some(to.as_str()) {
            out.push(ChangeEvent {
                kind: k.0,
                key: k.1.clone(),
                from,
                to: Some(to.clone()),
                reason: reason.clone(),
                at: at.clone(),
                generation: new.generation,
            });
        }
    }
    for (k, (from, _)) in &a {
        if !b.contains_key(k) {
            out.push(ChangeEvent {
                kind: k.0,
                key: k.1.clone(),
                from: Some(from.clone()),
                to: None,
                reason: None,
                at: at.clone(),
                generation: new.generation,
            });
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
