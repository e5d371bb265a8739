//! The one error type of the crate.

use std::path::PathBuf;
use std::time::Duration;

/// Everything that can go wrong publishing or observing ready signals.
///
/// Messages name the store by address (`redis at redis:6379`), never by URL, so no password
/// reaches a log line or a probe's output.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An agent, replica or namespace name outside `[A-Za-z0-9_-]{1,64}`.
    #[error("invalid name `{value}`: {reason}")]
    InvalidName {
        /// The rejected name (at most 80 characters of it).
        value: String,
        /// Why it was rejected.
        reason: String,
    },
    /// A store URL, environment variable or builder setting that cannot be used.
    #[error("{0}")]
    Config(String),
    /// Redis refused, failed or could not be reached.
    #[error("redis at {addr}: {message}")]
    Redis {
        /// `host:port` of the server.
        addr: String,
        /// What went wrong, in the server's or the system's words.
        message: String,
    },
    /// NATS refused, failed or could not be reached.
    #[error("nats at {addr}: {message}")]
    Nats {
        /// `host:port` of the server.
        addr: String,
        /// What went wrong.
        message: String,
    },
    /// Reading or writing the local-file backend failed.
    #[error("{}: {source}", path.display())]
    File {
        /// The file or directory.
        path: PathBuf,
        /// The system's error.
        source: std::io::Error,
    },
    /// A stored record that does not follow PROTOCOL.md.
    #[error("malformed record {location}: {source}")]
    Malformed {
        /// The Redis key or file it came from.
        location: String,
        /// What is wrong with it: its kind, the field and the cause.
        source: crate::DecodeError,
    },
    /// A store operation that did not finish in time.
    #[error("{what} timed out after {}ms", after.as_millis())]
    Timeout {
        /// The operation, naming the store.
        what: String,
        /// How long it was given.
        after: Duration,
    },
    /// A newer instance owns the replica's record; this instance's write was refused.
    #[error(
        "a newer instance owns the record of {agent}/{replica}; instance {instance} did not overwrite it (READY_SIGNAL_INSTANCE sets the instance id)"
    )]
    FencedOff {
        /// The agent.
        agent: String,
        /// The replica.
        replica: String,
        /// The refused instance id.
        instance: String,
    },
    /// The publisher thread could not be started or has already stopped.
    #[error("the ready-signal publisher {0}")]
    Publisher(String),
}

impl Error {
    /// A store operation ran out of time.
    pub fn is_timeout(&self) -> bool {
        matches!(self, Error::Timeout { .. })
    }

    /// A store could not be reached or refused the request (the agent's state is unknown,
    /// which is not the same as dead).
    pub fn is_store_unavailable(&self) -> bool {
        matches!(
            self,
            Error::Redis { .. } | Error::Nats { .. } | Error::Timeout { .. }
        )
    }

    /// A name outside `[A-Za-z0-9_-]{1,64}` was given.
    pub fn is_invalid_name(&self) -> bool {
        matches!(self, Error::InvalidName { .. })
    }

    /// A newer instance owns the record; nothing was written.
    pub fn is_fenced_off(&self) -> bool {
        matches!(self, Error::FencedOff { .. })
    }

    /// A stored record or event does not follow PROTOCOL.md.
    pub fn is_malformed(&self) -> bool {
        matches!(self, Error::Malformed { .. })
    }
}
