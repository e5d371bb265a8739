//! The fingerprint of what a person would notice in a snapshot (states, reasons, links, sources,
//! container health, the governor's word): the generation moves when it changes, not on a mere
//! refresh of beat ages, and the event stream sends on a new generation only.

use std::hash::{DefaultHasher, Hash, Hasher};

use crate::state::State;

/// A hash of everything visible in `s` except ages and times.
pub(super) fn fingerprint(s: &State) -> u64 {
    let mut h = DefaultHasher::new();
    s.store.as_str().hash(&mut h);
    s.store.reason().hash(&mut h);
    s.docker.as_str().hash(&mut h);
    s.docker.reason().hash(&mut h);
    for r in &s.replicas {
        (&r.namespace, &r.agent, &r.replica, r.observed.as_str()).hash(&mut h);
        (&r.instance, &r.reason, &r.container_id, r.link.as_str()).hash(&mut h);
    }
    for c in &s.containers {
        (&c.id, &c.status, &c.health, c.restart_count, &c.exit_code).hash(&mut h);
        (&c.last_health_line, &c.started_at).hash(&mut h);
        if let Some(heal) = &c.heal {
            (&heal.status, heal.restarts_in_window, &heal.last_decision).hash(&mut h);
            heal.restart_starts.hash(&mut h);
        }
    }
    (
        s.heal.mode.as_str(),
        &s.heal.shared_outage,
        &s.heal.couplings_refused,
        &s.self_container,
    )
        .hash(&mut h);
    h.finish()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::time::Duration;

    use tokio::time::Instant;

    use super::super::fixtures::*;
    use crate::error::Error;
    use crate::writer::{Change, DockerChange};

    /// The generation moves on a visible change only, not on a refresh of beat ages.
    #[tokio::test(start_paused = true)]
    async fn generation_counts_visible_changes() {
        let mut b = book();
        b.apply(
            read(vec![status("worker", "w1", ready_signal::State::Ready, 0)]),
            Instant::now(),
        );
        assert!(b.judge(Instant::now()));
        let g = b.state().generation;
        tokio::time::advance(Duration::from_millis(300)).await;
        b.apply(
            read(vec![status(
                "worker",
                "w1",
                ready_signal::State::Ready,
                100,
            )]),
            Instant::now(),
        );
        assert!(!b.judge(Instant::now()));
        assert_eq!(b.state().generation, g);
        b.apply(
            Change::Docker(DockerChange::Failed(Error::timeout(
                "docker at /var/run/docker.sock: listing containers",
                Duration::from_secs(5),
            ))),
            Instant::now(),
        );
        assert!(b.judge(Instant::now()));
        assert_eq!(b.state().generation, g + 1);
    }
}
