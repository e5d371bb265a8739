//! Linking: which container a replica runs in. The heal governor acts on a container for a
//! replica's state only through this link, so it never guesses.
//!
//! The rule:
//! 1. A record that names its container (the writer found its own id) links to that container
//!    when it is watched, and to nothing otherwise (`not-watched`): the host name is then never
//!    consulted, so a shared host name cannot mislead it.
//! 2. A record without a container id (an older writer) links by the host name it records, and
//!    only when exactly one watched container has that host name. Every watched container
//!    counts, running or not: a stopped container that shares the name may be the one that wrote
//!    the record (a stale or dead record is exactly what a stopped writer leaves), so a stopped
//!    namesake makes the link ambiguous rather than handing its record to the running one.
//!    Watched containers span every watched Compose project, so the same `hostname:` in two
//!    projects, or in one scaled service, is ambiguous.
//! 3. The replica's own name is never matched against host names: it is a name the agent
//!    chose, and may equal another container's host name.
//!
//! A replica is keyed by its namespace, agent and replica name, and each is linked on its own:
//! several agents (or namespaces) may run in one container. An ambiguous or missing link is kept
//! with its cause ([`Unlinked`]), shown on the page and in `/api/status`, and the replica then
//! counts for no container.

use std::collections::HashMap;
use std::sync::Arc;

use crate::state::{Container, Link, Replica, Unlinked};

/// The container each replica (in order) links to, as its index in `containers`, and how (or
/// why not). Nothing is allocated for a replica that links.
pub(super) fn links(
    replicas: &[Arc<Replica>],
    containers: &[Container],
    docker_on: bool,
) -> Vec<(Option<usize>, Link)> {
    let mut by_host: HashMap<&str, Vec<usize>> = HashMap::new();
    let mut by_id: HashMap<&str, usize> = HashMap::with_capacity(containers.len());
    for (i, c) in containers.iter().enumerate() {
        by_host.entry(c.hostname.as_str()).or_default().push(i);
        by_id.insert(c.id.as_str(), i);
    }
    replicas
        .iter()
        .map(|r| {
            if !docker_on {
                return (None, Link::None(Unlinked::NoDocker));
            }
            if let Some(id) = r.record_container.as_deref() {
                return match by_id.get(id) {
                    Some(&c) => (Some(c), Link::Id),
                    None => (None, Link::None(Unlinked::NotWatched(short(id).to_owned()))),
                };
            }
            let Some(host) = r.host.as_deref() else {
                return (None, Link::None(Unlinked::NoIdentity));
            };
            match by_host.get(host).map(Vec::as_slice) {
                None | Some([]) => (None, Link::None(Unlinked::NoMatch(host.to_owned()))),
                Some(&[one]) => (Some(one), Link::Host),
                Some(many) => (
                    None,
                    Link::None(Unlinked::Ambiguous {
                        host: host.to_owned(),
                        containers: many
                            .iter()
                            .take(Unlinked::MAX_NAMED)
                            .map(|&c| containers[c].name.clone())
                            .collect(),
                        count: many.len(),
                    }),
                ),
            }
        })
        .collect()
}

fn short(id: &str) -> &str {
    id.get(..12).unwrap_or(id)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use tokio::time::Instant;

    use super::super::fixtures::*;
    use crate::state::{ContainerHeal, Link, Unlinked};
    use crate::writer::{Change, DockerChange, HealUpdate};

    /// A replica links to the one container whose host name its record carries; heal updates
    /// land on their container by id.
    #[tokio::test(start_paused = true)]
    async fn links_replicas_to_containers_and_heal_lines() {
        let mut b = book();
        b.apply(
            read(vec![status(
                "worker",
                "abc123",
                ready_signal::State::Ready,
                0,
            )]),
            Instant::now(),
        );
        b.apply(
            Change::Docker(DockerChange::All(vec![
                container("new", "abc123", true),
                container("other", "xyz789", true),
            ])),
            Instant::now(),
        );
        let mut heal = HealUpdate::default();
        heal.containers.insert(
            "new".into(),
            ContainerHeal {
                status: "backoff".into(),
                ..ContainerHeal::default()
            },
        );
        b.apply(Change::Heal(heal), Instant::now());
        b.judge(Instant::now());
        let s = b.state();
        assert_eq!(s.replicas[0].container_id.as_deref(), Some("new"));
        assert_eq!(s.replicas[0].link, Link::Host);
        assert_eq!(
            s.container_of(&s.replicas[0])
                .unwrap()
                .heal
                .as_ref()
                .unwrap()
                .status,
            "backoff"
        );
        assert!(s.docker.is_ok());
    }

    /// Two containers with one host name (two projects, or one scaled service, one of them
    /// stopped): a record that names no container id links to neither, and says why.
    #[tokio::test(start_paused = true)]
    async fn a_shared_host_name_is_ambiguous() {
        for other_running in [true, false] {
            let mut b = book();
            b.apply(
                read(vec![status("worker", "w", ready_signal::State::Ready, 0)]),
                Instant::now(),
            );
            let mut a = container("aaaa", "w", true);
            a.project = Some("one".into());
            a.name = "one-worker-1".into();
            let mut other = container("bbbb", "w", other_running);
            other.project = Some("two".into());
            other.name = "two-worker-1".into();
            b.apply(
                Change::Docker(DockerChange::All(vec![a, other])),
                Instant::now(),
            );
            b.judge(Instant::now());
            let r = &b.state().replicas[0];
            assert_eq!(r.container_id, None);
            assert_eq!(
                r.link,
                Link::None(Unlinked::Ambiguous {
                    host: "w".into(),
                    containers: vec!["one-worker-1".into(), "two-worker-1".into()],
                    count: 2
                })
            );
            assert!(
                r.link
                    .cause()
                    .unwrap()
                    .contains("shared by 2 watched containers")
            );
            assert_eq!(b.state().replicas_in("aaaa").count(), 0);
            assert_eq!(b.state().replicas_in("bbbb").count(), 0);
        }
    }

    /// A record that names its container links to it whatever the host names say; one that names
    /// a container the sidecar does not watch links to nothing (never to a namesake).
    #[tokio::test(start_paused = true)]
    async fn the_container_id_decides() {
        let mut b = book();
        let mut s1 = status("worker", "w1", ready_signal::State::Ready, 0);
        s1.host = Some("w".into());
        s1.container = Some("bbbb".into());
        let mut s2 = status("worker", "w2", ready_signal::State::Ready, 0);
        s2.host = Some("w".into());
        s2.container = Some("cccc".repeat(16));
        b.apply(read(vec![s1, s2]), Instant::now());
        b.apply(
            Change::Docker(DockerChange::All(vec![
                container("aaaa", "w", true),
                container("bbbb", "w", true),
            ])),
            Instant::now(),
        );
        b.judge(Instant::now());
        let r = &b.state().replicas;
        assert_eq!(
            (r[0].container_id.as_deref(), &r[0].link),
            (Some("bbbb"), &Link::Id)
        );
        assert_eq!(
            (r[1].container_id.as_deref(), &r[1].link),
            (
                None,
                &Link::None(Unlinked::NotWatched("cccccccccccc".into()))
            )
        );
    }

    /// A replica whose name equals another container's host name links by its record's host
    /// name, never by its own name.
    #[tokio::test(start_paused = true)]
    async fn a_replica_name_is_not_a_host_name() {
        let mut b = book();
        let mut s = status("worker", "agent-b", ready_signal::State::Ready, 0);
        s.host = Some("a-host".into());
        b.apply(read(vec![s]), Instant::now());
        b.apply(
            Change::Docker(DockerChange::All(vec![
                container("aaaa", "a-host", true),
                container("bbbb", "agent-b", true),
            ])),
            Instant::now(),
        );
        b.judge(Instant::now());
        assert_eq!(b.state().replicas[0].container_id.as_deref(), Some("aaaa"));
        // No host at all (an event seen before any read) and no match: unlinked, with a cause.
        let mut s = status("worker", "agent-b", ready_signal::State::Ready, 0);
        s.host = Some("elsewhere".into());
        b.apply(read(vec![s]), Instant::now());
        b.judge(Instant::now());
        assert_eq!(
            b.state().replicas[0].link,
            Link::None(Unlinked::NoMatch("elsewhere".into()))
        );
    }

    /// A new instance's event that names its container links at once; one that does not leaves
    /// the replica unlinked until the next read says where it runs (never the old container).
    #[tokio::test(start_paused = true)]
    async fn a_new_instance_links_by_its_event() {
        let mut b = book();
        let mut s = status("worker", "w1", ready_signal::State::Ready, 0);
        s.container = Some("aaaa".into());
        b.apply(read(vec![s]), Instant::now());
        b.apply(
            Change::Docker(DockerChange::All(vec![
                container("aaaa", "w", true),
                container("bbbb", "x", true),
            ])),
            Instant::now(),
        );
        b.judge(Instant::now());
        assert_eq!(b.state().replicas[0].link, Link::Id);
        let mut moved = event(
            "w1",
            "1764000099999-00000001",
            ready_signal::State::Ready,
            "",
        );
        if let Change::StoreEvent { event, .. } = &mut moved {
            event.container = Some("bbbb".into());
        }
        b.apply(moved, Instant::now());
        b.judge(Instant::now());
        let r = &b.state().replicas[0];
        assert_eq!(
            (r.container_id.as_deref(), &r.link),
            (Some("bbbb"), &Link::Id)
        );
        b.apply(
            event(
                "w1",
                "1764000199999-00000002",
                ready_signal::State::Ready,
                "",
            ),
            Instant::now(),
        );
        b.judge(Instant::now());
        let r = &b.state().replicas[0];
        assert_eq!(
            (r.container_id.as_deref(), &r.link),
            (None, &Link::None(Unlinked::NoIdentity))
        );
    }
}
