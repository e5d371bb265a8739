//! Agents publish whether they are ready, and prove that their work loop is still moving.
//!
//! An agent says `starting`, `ready`, `not-ready` (with a reason) or `stopping`, and its work
//! loop calls [`Handle::tick`] on every iteration. A publisher on its own thread refreshes the
//! agent's record while ticks keep coming; when the loop stalls, refreshes stop, the record goes
//! stale and then expires, even though the process and its other threads are alive. Observers
//! (the `healthcheck` probe's `ready://` target, `healthcheck wait`, status views) read the
//! records and derive [`Observed`] states, adding `stale`, `dead` and `unknown`.
//!
//! Stores ([`StoreConfig`]):
//! - **Redis** (one server, the master that Sentinels name, or a Redis Cluster) holds one hash
//!   per replica with a server-side TTL; freshness is judged by Redis's own clock (`PTTL`,
//!   `TIME`). Every write is one Lua script fenced by an epoch that Redis hands
//!   out at each instance's first write, so an older process never overwrites a newer one's
//!   record whatever the hosts' clocks say, and the indexes of agents and replicas clean
//!   themselves.
//! - **NATS** carries an event at every transition, so waiters react in milliseconds.
//! - **Files** (`{dir}/{namespace}/{agent}/{replica}.json`, atomic rename) hold the records when
//!   Redis is not configured, and are the fallback an agent writes while Redis is unreachable.
//!
//! Layout: `publisher/` (the builder, identity, clocks and progress, the sink that writes the
//! stores, the heartbeat loop, the handle, one-shot writes), `observer` (reads and judgements),
//! `record` (the record, its states and validation), `redis_store` (keys in both layouts, the
//! connections to a server, Sentinels or a Cluster) with `write.lua`, `events`
//! (NATS), `file_store`, `config` (the store builder and its grammars: environment, Redis URL,
//! NATS URL), `container` (which container this process runs in), and the leaves they share:
//! `stores` (what a configured store is), `fence` (the write fence's vocabulary), [`files`]
//! (bounded non-blocking file reads, used by the probe too), `name`, `error` (the crate's errors,
//! [`DecodeError`] among them), `escape` (the escape and cut rule for untrusted text).
//!
//! The wire format is specified in `PROTOCOL.md` beside this crate, so agents in any language
//! take part; the `ready-signal` command does it for shell and Python agents.
//!
//! ```no_run
//! use std::time::Duration;
//! use ready_signal::ReadySignal;
//!
//! # async fn work() {}
//! # async fn agent() -> Result<(), ready_signal::Error> {
//! let signal = ReadySignal::builder("summarizer").start()?; // store from READY_SIGNAL_* env
//! signal.ready();
//! loop {
//!     work().await;
//!     signal.tick();
//!     # break;
//! }
//! # Ok(()) }
//! ```
//!
//! The crate publishes; it never restarts, kills or signals anything.

#![deny(missing_docs)]

mod config;
pub mod container;
mod error;
mod escape;
mod events;
mod fence;
mod file_store;
pub mod files;
mod name;
mod observer;
mod publisher;
mod record;
mod redis_store;
mod stores;

pub use config::{DEFAULT_NAMESPACE, StoreConfig};
pub use error::{DecodeError, DecodeErrorKind, Error, Source};
pub use events::{
    Delivery, Event, Events, agent_subject, decode_event, namespace_subject, subject,
};
pub use file_store::record_path;
pub use name::{MAX_NAME_LEN, Name};
pub use observer::{
    CONNECT_TIMEOUT, DueCursor, IndexRead, Observer, PartFailure, ReplicaStatus, STALE_INTERVALS,
    WatchedReplica, subscribe, subscribe_namespace,
};
pub use publisher::{
    Builder, CLOSE_TIMEOUT, DEFAULT_INTERVAL, DEFAULT_STALL_AFTER, DEFAULT_TTL_INTERVALS, Handle,
    ReadySignal, RecordWriter, default_replica, default_replica_from, instance_id, new_instance_id,
    publish_once, remove_once, running_instance, shutdown_on_signal,
};
pub use record::{
    EventPayload, MAX_REASON_LEN, Observed, PROTOCOL_VERSION, Record, State, decode_record,
};
pub use redis_store::keys::{KEY_PREFIX, Keys, Layout, SHARDS, keyslot, shard};
