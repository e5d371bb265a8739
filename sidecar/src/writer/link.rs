//! Linking: which container a replica runs in.
//!
//! The rule (as built before issue 20): a replica links to the container whose host name equals
//! its replica name, else its record's host name; among containers sharing a host name a running
//! one wins over a stopped one.

use std::collections::HashMap;

use crate::state::{Container, Replica};

/// The container id each replica (in order) links to, if any.
pub(super) fn links(replicas: &[Replica], containers: &[Container]) -> Vec<Option<String>> {
    let index = link_index(containers);
    replicas
        .iter()
        .map(|r| {
            let by_replica = index.get(r.replica.as_str());
            let by_host = r.host.as_deref().and_then(|h| index.get(h));
            by_replica.or(by_host).map(|id| id.to_string())
        })
        .collect()
}

/// Hostnames (and short ids) of running containers first, so a replica links to the live one.
fn link_index(containers: &[Container]) -> HashMap<&str, &str> {
    let mut index = HashMap::new();
    for c in containers.iter().filter(|c| !c.running) {
        index.insert(c.hostname.as_str(), c.id.as_str());
    }
    for c in containers.iter().filter(|c| c.running) {
        index.insert(c.hostname.as_str(), c.id.as_str());
    }
    index
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use tokio::time::Instant;

    use super::super::fixtures::*;
    use crate::state::ContainerHeal;
    use crate::writer::{Change, DockerChange, HealUpdate};

    /// A replica links to the running container whose hostname it carries; heal updates land
    /// on their container by id.
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
                container("old", "abc123", false),
                container("new", "abc123", true),
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
}
