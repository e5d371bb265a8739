//! The one error type of the crate.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// The error a store failure came from (the Redis or NATS client's, or the system's), kept for
/// [`std::error::Error::source`]: the source an [`Error`] returns is this inner error itself, so
/// it downcasts to its own type (`std::io::Error`, `redis::RedisError`, ...). Cloning shares it,
/// so an error reported at every read of a store that could not be reached keeps it too.
#[derive(Clone)]
pub struct Source(Arc<dyn std::error::Error + Send + Sync + 'static>);

impl Source {
    pub(crate) fn new(e: impl std::error::Error + Send + Sync + 'static) -> Source {
        Source(Arc::new(e))
    }

    pub(crate) fn boxed(e: Box<dyn std::error::Error + Send + Sync + 'static>) -> Source {
        Source(Arc::from(e))
    }
}

// Not `std::error::Error` itself: the derive below then reaches the inner error through `Deref`,
// and `source()` hands out that error rather than this wrapper.
impl std::ops::Deref for Source {
    type Target = dyn std::error::Error + Send + Sync + 'static;

    fn deref(&self) -> &Self::Target {
        &*self.0
    }
}

impl std::fmt::Debug for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(&*self.0, f)
    }
}

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
        /// The client's or the system's error, when there is one (none for a reply that breaks
        /// the protocol, or a Sentinel that names another master).
        #[source]
        source: Option<Source>,
    },
    /// NATS refused, failed or could not be reached.
    #[error("nats at {addr}: {message}")]
    Nats {
        /// `host:port` of the server.
        addr: String,
        /// What went wrong.
        message: String,
        /// The client's error, when there is one.
        #[source]
        source: Option<Source>,
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
    #[error("malformed record {location}: {reason}")]
    Malformed {
        /// The Redis key or file it came from.
        location: String,
        /// What is wrong with it.
        reason: String,
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

#[cfg(test)]
mod tests {
    use std::error::Error as _;
    use std::time::Duration;

    use super::*;
    use crate::{Name, StoreConfig};

    /// A loopback port with nothing listening on it.
    fn closed_port() -> u16 {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    }

    /// Whether `e`'s chain of sources holds an I/O error of `kind`.
    fn caused_by_io(e: &(dyn std::error::Error + 'static), kind: std::io::ErrorKind) -> bool {
        let mut at = Some(e);
        while let Some(e) = at {
            if e.downcast_ref::<std::io::Error>()
                .is_some_and(|io| io.kind() == kind)
            {
                return true;
            }
            at = e.source();
        }
        false
    }

    /// A refused Redis connection keeps the system's error as its source, and its kind stays
    /// matchable; so does a NATS connection that cannot be made.
    #[tokio::test]
    async fn redis_and_nats_errors_keep_their_source() {
        let port = closed_port();
        let store = StoreConfig::new()
            .redis(&format!("redis://127.0.0.1:{port}"))
            .unwrap()
            .nats(&format!("nats://127.0.0.1:{port}"))
            .unwrap();
        let redis = store.redis.as_ref().unwrap();
        let e = crate::redis_store::RedisConn::connect(redis, Duration::from_secs(5))
            .await
            .unwrap_err();
        assert!(matches!(e, Error::Redis { .. }), "{e:?}");
        assert!(e.is_store_unavailable());
        let source = e
            .source()
            .expect("a refused redis connection keeps its source");
        assert!(
            caused_by_io(source, std::io::ErrorKind::ConnectionRefused),
            "{source:?}"
        );

        let e = crate::subscribe(&store, &[Name::new("agent").unwrap()])
            .await
            .unwrap_err();
        assert!(matches!(e, Error::Nats { .. }), "{e:?}");
        assert!(e.is_store_unavailable());
        let source = e
            .source()
            .expect("a failed nats connection keeps its source");
        assert!(
            source.downcast_ref::<async_nats::ConnectError>().is_some(),
            "{source:?}"
        );
    }
}
