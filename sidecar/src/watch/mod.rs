//! The sources: tasks that each own one connection and send [`crate::writer::Change`]s.
//!
//! Every external call has a timeout; a failure is sent to the writer (the source turns
//! `unknown` with the reason) and retried with exponential backoff, never given up.

pub mod docker;
pub mod engine;
pub mod store;

use std::time::Duration;

/// Exponential backoff between retries of a failing source: doubles from `first` up to `max`,
/// and starts over after a success.
#[derive(Debug, Clone)]
pub struct Backoff {
    first: Duration,
    max: Duration,
    next: Duration,
}

impl Backoff {
    /// Starts at `first`, never waits longer than `max`.
    pub fn new(first: Duration, max: Duration) -> Backoff {
        Backoff {
            first,
            max,
            next: first,
        }
    }

    /// The wait before the next retry (and doubles the one after).
    pub fn next_wait(&mut self) -> Duration {
        let wait = self.next;
        self.next = (self.next * 2).min(self.max);
        wait
    }

    /// A success: the next failure waits `first` again.
    pub fn reset(&mut self) {
        self.next = self.first;
    }
}

/// Waits `d`, or returns false at once when `shutdown` fires first.
pub(crate) async fn pause(d: Duration, shutdown: &tokio::sync::watch::Receiver<bool>) -> bool {
    let mut shutdown = shutdown.clone();
    tokio::select! {
        _ = tokio::time::sleep(d) => true,
        _ = stopped(&mut shutdown) => false,
    }
}

/// Resolves once the shutdown flag turns true (or its sender is gone).
pub async fn stopped(stop: &mut tokio::sync::watch::Receiver<bool>) {
    // The guard `wait_for` returns is not `Send`: drop it here, not across an await.
    let _ = stop.wait_for(|s| *s).await.map(|_| ());
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Backoff doubles to its ceiling and starts over after a success.
    #[test]
    fn backoff_doubles_caps_and_resets() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_millis(350));
        let waits: Vec<u128> = (0..4).map(|_| b.next_wait().as_millis()).collect();
        assert_eq!(waits, [100, 200, 350, 350]);
        b.reset();
        assert_eq!(b.next_wait(), Duration::from_millis(100));
    }
}
