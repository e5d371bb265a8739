//! `healthcheck-sidecar`: one long-running service per stack that watches every agent and
//! container, and serves what it sees as a status page, a JSON API, server-sent events and
//! Prometheus metrics (and, opt-in, heals: see [`heal`]).
//!
//! Layout (one writer, many readers):
//! - [`config`]: validated configuration; [`run`]: the wiring under one shutdown.
//! - [`state`]: the snapshot vocabulary (a leaf module); [`error`]: the sidecar's typed error
//!   (a leaf too).
//! - [`writer`]: the one task that owns the state, judges freshness with injected time and
//!   publishes `Arc<State>` snapshots through a `tokio::sync::watch`.
//! - [`watch`]: the sources, each owning one connection: the agents' store (NATS events and one
//!   pipelined bulk read per interval) and Docker (events, inspect on change).
//! - [`http`]: read-only views of a snapshot: `/`, `/api/status`, `/api/events`, `/metrics`,
//!   `/healthz`.
//! - [`heal`]: the governor, fed by snapshots, reporting back through [`writer::Change::Heal`].
//!
//! ```no_run
//! # async fn f() {
//! use std::sync::Arc;
//! use sidecar::{state::State, writer};
//! use tokio::time::Instant;
//!
//! let book = writer::Book::new(Instant::now(), vec!["demo".into()], true, false);
//! let (tx, rx) = tokio::sync::watch::channel(book.snapshot());
//! let (changes, incoming) = tokio::sync::mpsc::channel(writer::CHANGES_CAPACITY);
//! tokio::spawn(writer::run(book, incoming, tx, None, std::future::pending()));
//! # let _ = (rx, changes);
//! # }
//! ```

#![deny(missing_docs)]

pub mod config;
pub mod error;
pub mod heal;
pub mod http;
pub mod run;
pub mod state;
pub mod watch;
pub mod writer;
