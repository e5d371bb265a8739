//! The publishing side: a builder, a handle the agent keeps, and a publisher on its own thread.
//!
//! The publisher never runs on the agent's executor: it has its own OS thread and a small
//! current-thread runtime, so an agent whose executor is blocked (the field's deadlocked asyncio
//! loop) cannot keep its own record fresh by accident. What keeps the record fresh is progress:
//! the work loop calls [`Handle::tick`], and the publisher refreshes the TTL only while the last
//! progress is within `stall_after` (or a [`Handle::busy`] budget covers a long work item).
//!
//! - `builder`: settings and their validation; starts the thread.
//! - `identity`: who publishes (agent, replica, instance id, host).
//! - `clock`: progress marks and the clocks, injected so stalls are tested with paused time.
//! - `sink`: the stores one replica's record goes to, and the fence.
//! - `heartbeat`: the loop on the publisher thread.
//! - `handle`: what the agent holds.
//! - `once`: single writes without a heartbeat (the `ready-signal` CLI).

use std::time::Duration;

mod builder;
mod clock;
mod handle;
mod heartbeat;
mod identity;
mod once;
mod sink;

pub use builder::Builder;
pub use handle::{Handle, shutdown_on_signal};
pub(crate) use identity::unix_ms;
pub use identity::{default_replica, default_replica_from, instance_id, new_instance_id};
pub use once::{RecordWriter, publish_once, remove_once, running_instance};

/// Default heartbeat interval.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(2);
/// Default time without progress after which the work loop counts as stalled.
pub const DEFAULT_STALL_AFTER: Duration = Duration::from_secs(10);
/// The record's TTL is this many intervals unless set explicitly.
pub const DEFAULT_TTL_INTERVALS: u32 = 3;
/// How long [`Handle::close`] and [`Handle::shutdown`] wait for `stopping` to be published and
/// the record removed: well inside Docker's 10 s stop grace period.
pub const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

/// Entry point for agents: `ReadySignal::builder("worker").start()`.
#[derive(Debug)]
pub struct ReadySignal;

impl ReadySignal {
    /// Starts configuring the publisher of `agent`'s ready signal.
    ///
    /// ```no_run
    /// use std::time::Duration;
    /// use ready_signal::{ReadySignal, StoreConfig};
    ///
    /// let signal = ReadySignal::builder("worker")
    ///     .store(StoreConfig::from_env()?)
    ///     .interval(Duration::from_secs(1))
    ///     .start()?;
    /// // ... load models, connect to queues ...
    /// signal.ready();
    /// loop {
    ///     signal.tick(); // once per iteration of the work loop
    ///     # break;
    /// }
    /// signal.shutdown();
    /// # Ok::<(), ready_signal::Error>(())
    /// ```
    pub fn builder(agent: &str) -> Builder {
        Builder::new(agent)
    }
}
