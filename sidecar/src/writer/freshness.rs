//! Freshness: what a replica is at `now`, from its last beat and the interval and TTL its
//! publisher promised. Between two bulk reads the book re-judges every replica with these rules,
//! and the task loop wakes at the next crossing they name ([`next_deadline`], which the book
//! asks), so a stale agent shows within milliseconds of crossing, not at the next read. Pure
//! rules over a replica: this file uses nothing of the book.

use std::sync::Arc;
use std::time::Duration;

use ready_signal::{Observed, STALE_INTERVALS};
use tokio::time::Instant;

use crate::state::Replica;

/// The next instant at which one of `replicas` crosses its stale or dead threshold. Replicas
/// the due index covers (`indexed`) are left out: their last beat is not read, the index names
/// them when they are late.
pub(super) fn next_deadline(replicas: &[Arc<Replica>], now: Instant) -> Option<Instant> {
    let mut next: Option<Instant> = None;
    for r in replicas {
        if r.indexed {
            continue;
        }
        let (Some(beat), Some(interval), Some(ttl), Some(p)) =
            (r.beat_at, r.interval, r.ttl, r.published)
        else {
            continue;
        };
        let stale = beat + interval * STALE_INTERVALS + Duration::from_millis(1);
        let dead = beat + ttl + Duration::from_millis(1);
        for t in [
            (p != ready_signal::State::Stopping).then_some(stale),
            Some(dead),
        ]
        .into_iter()
        .flatten()
        {
            if t > now && next.is_none_or(|n| t < n) {
                next = Some(t);
            }
        }
    }
    next
}

/// What a replica is at `now`, from its last beat and the thresholds its publisher promised
/// (the same rule as `ready_signal::Observer`: dead past the TTL, stale past two intervals).
/// A replica the due index covers (`indexed`) beat on time as of the last query of the index,
/// which names it once it is late: it is what it published.
pub(super) fn judged(r: &Replica, now: Instant, indexed: bool) -> Observed {
    match (r.published, r.beat_at) {
        (Some(p), Some(_)) if indexed => p.into(),
        (Some(p), Some(beat)) => {
            let age = now.saturating_duration_since(beat);
            match (r.interval, r.ttl) {
                (Some(_), Some(ttl)) if age > ttl => Observed::Dead,
                _ if p == ready_signal::State::Stopping => Observed::Stopping,
                (Some(interval), _) if age > interval * STALE_INTERVALS => Observed::Stale,
                _ => p.into(),
            }
        }
        // No record (dead) or an unreadable one (unknown): as the last read said.
        _ => match r.observed {
            Observed::Unknown => Observed::Unknown,
            _ if r.instance.is_none() => Observed::Dead,
            other => other,
        },
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::time::Duration;

    use ready_signal::Observed;
    use tokio::time::Instant;

    use super::super::fixtures::*;

    /// A replica whose beats stop turns stale past two intervals and dead past its TTL, by time
    /// alone, and the book names the exact instants it crosses.
    #[tokio::test(start_paused = true)]
    async fn ready_turns_stale_then_dead_with_time() {
        let mut b = book();
        b.apply(
            read(vec![status(
                "worker",
                "w1",
                ready_signal::State::Ready,
                500,
            )]),
            Instant::now(),
        );
        let t0 = Instant::now();
        b.judge(t0);
        assert_eq!(observed(&b), [("w1", Observed::Ready)]);
        // Beat 500 ms ago, interval 1 s: stale after 2 s of age, dead after 3 s.
        let stale_at = b.next_deadline(t0).unwrap();
        assert_eq!(stale_at - t0, Duration::from_millis(1501));
        tokio::time::advance(Duration::from_millis(1500)).await;
        b.judge(Instant::now());
        assert_eq!(observed(&b), [("w1", Observed::Ready)]);
        tokio::time::advance(Duration::from_millis(1)).await;
        b.judge(Instant::now());
        assert_eq!(observed(&b), [("w1", Observed::Stale)]);
        assert_eq!(b.state().replicas[0].since, Instant::now());
        let dead_at = b.next_deadline(Instant::now()).unwrap();
        assert_eq!(dead_at - t0, Duration::from_millis(2501));
        tokio::time::advance(Duration::from_millis(1000)).await;
        b.judge(Instant::now());
        assert_eq!(observed(&b), [("w1", Observed::Dead)]);
        assert_eq!(b.next_deadline(Instant::now()), None);
    }
}
