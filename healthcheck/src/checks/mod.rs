//! The checks, one module per protocol, dispatched from [`Kind`].
//!
//! Every check is an async function that either proves its target healthy or returns the reason
//! it is not, in the peer's own words where there are any. Deadlines are applied by the caller
//! ([`crate::probe`]), which reads [`Progress`] to say what a timed-out check was waiting for.

pub(crate) mod http;
pub(crate) mod nats;
pub(crate) mod ready;
pub(crate) mod redis;
pub(crate) mod tcp;

use std::cell::Cell;

use crate::target::Kind;

/// What a check is doing right now, so a timeout can say "timed out connecting".
///
/// Checks of one probe run on one task (joined, not spawned), so a `Cell` is enough.
#[derive(Debug)]
pub(crate) struct Progress(Cell<&'static str>);

impl Progress {
    pub(crate) fn new() -> Progress {
        Progress(Cell::new("starting"))
    }

    pub(crate) fn set(&self, phase: &'static str) {
        self.0.set(phase);
    }

    pub(crate) fn get(&self) -> &'static str {
        self.0.get()
    }
}

/// Runs the check for one target. `Ok` carries an optional detail worth printing (a role, a
/// status code), `Err` the reason the target is unhealthy.
pub(crate) async fn run(kind: &Kind, progress: &Progress) -> Result<Option<String>, String> {
    match kind {
        Kind::Redis(t) => redis::check(t, progress).await,
        Kind::Nats(t) => nats::check(t, progress).await,
        Kind::Http(t) => http::check(t, progress).await,
        Kind::Tcp(t) => tcp::check(t, progress).await,
        Kind::Ready(t) => ready::check(t, progress).await,
    }
}
