//! Merging what Docker says into the book: a full listing, one inspected container, a removal,
//! or a failure (the source turns unknown with the reason).

use std::collections::HashMap;

use tokio::time::Instant;

use super::book::Book;
use super::change::DockerChange;
use super::instances::remember;
use crate::state::{Container, Source};

impl Book {
    pub(super) fn apply_docker(&mut self, change: DockerChange, now: Instant) {
        self.state.counters.docker_calls += 1;
        match change {
            DockerChange::Failed(reason) => {
                self.state.counters.docker_errors += 1;
                let since = self.docker_failure.as_ref().map_or(now, |(_, s)| *s);
                self.docker_failure = Some((reason, since));
            }
            DockerChange::All(list) => {
                self.docker_failure = None;
                let mut old: HashMap<String, Container> = self
                    .state
                    .containers
                    .drain(..)
                    .map(|c| (c.id.clone(), c))
                    .collect();
                let mut next = Vec::with_capacity(list.len());
                for c in list {
                    let prev = old.remove(&c.id);
                    next.push(self.carry(c, prev.as_ref(), now));
                }
                self.state.containers = next;
            }
            DockerChange::One(c) => {
                self.docker_failure = None;
                let pos = self.state.containers.iter().position(|x| x.id == c.id);
                let prev = pos.map(|i| self.state.containers[i].clone());
                let c = self.carry(*c, prev.as_ref(), now);
                match pos {
                    Some(i) => self.state.containers[i] = c,
                    None => self.state.containers.push(c),
                }
            }
            DockerChange::Gone(id) => self.state.containers.retain(|c| c.id != id),
        }
        self.state.containers.sort_by(|a, b| {
            (a.service.as_deref().unwrap_or(""), &a.name)
                .cmp(&(b.service.as_deref().unwrap_or(""), &b.name))
        });
        self.state.docker = match (&self.docker_failure, self.docker_on) {
            (_, false) => Source::Off,
            (None, true) => Source::Ok,
            (Some((e, since)), true) => Source::Unknown {
                reason: e.to_string(),
                kind: Some(e.kind()),
                since: *since,
            },
        };
    }

    /// Keeps what only the book knows about a container across re-inspections.
    fn carry(&self, mut c: Container, prev: Option<&Container>, now: Instant) -> Container {
        c.health_since = match prev {
            Some(p) if p.health == c.health => p.health_since.or(Some(now)),
            _ => c.health.as_ref().map(|_| now),
        };
        c.heal = self.heal.get(&c.id).cloned();
        // A new start (Docker's StartedAt moved): the instances seen in it so far belong to its
        // predecessors from now on, and never count against the process that runs now.
        match prev {
            Some(p) if p.started_at.is_some() && p.started_at != c.started_at => {
                let mut earlier = p.earlier_instances.clone();
                for i in &p.instances {
                    remember(&mut earlier, i);
                }
                c.earlier_instances = earlier;
                c.instances = Vec::new();
            }
            Some(p) => {
                c.instances = p.instances.clone();
                c.earlier_instances = p.earlier_instances.clone();
            }
            None => {}
        }
        c
    }
}
