//! The crate's errors: [`Error`], what every fallible call returns, and [`DecodeError`], what
//! is wrong with a record or an event that does not follow PROTOCOL.md (an [`Error::Malformed`]
//! keeps one as its source). A leaf: it uses nothing of the crate.

use std::fmt;
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
    #[error("malformed record {location}: {source}")]
    Malformed {
        /// The Redis key or file it came from.
        location: String,
        /// What is wrong with it: its kind, the field and the cause.
        source: DecodeError,
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

/// What is wrong with a record or an event that does not follow PROTOCOL.md.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DecodeErrorKind {
    /// Not a JSON object (a record file or an event).
    NotJson,
    /// A required field is absent.
    Missing,
    /// A field has the wrong JSON type (a string where a number is required, or the reverse).
    WrongType,
    /// A field's value is not allowed (not a whole number, out of range, an unknown state, an
    /// invalid name or instance id, a TTL shorter than two intervals).
    Invalid,
    /// The format version `v` is not one this reader knows.
    Version,
}

/// A record or event that does not follow PROTOCOL.md: its kind, the field at fault, and the
/// cause (a JSON syntax error, an invalid name, a number out of range) as its source.
///
/// ```
/// use ready_signal::{DecodeErrorKind, decode_record};
///
/// let err = decode_record([("v", "1")]).unwrap_err();
/// assert_eq!(err.kind(), DecodeErrorKind::Missing);
/// assert_eq!(err.field(), Some("agent"));
/// assert_eq!(err.to_string(), "field `agent` is missing");
/// ```
#[derive(Debug)]
pub struct DecodeError {
    kind: DecodeErrorKind,
    field: Option<String>,
    message: String,
    source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

impl DecodeError {
    pub(crate) fn new(kind: DecodeErrorKind, field: Option<&str>, message: String) -> DecodeError {
        DecodeError {
            kind,
            field: field.map(str::to_string),
            message,
            source: None,
        }
    }

    pub(crate) fn with_source(
        mut self,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        self.source = Some(Box::new(source));
        self
    }

    pub(crate) fn invalid(field: &str, message: String) -> DecodeError {
        DecodeError::new(DecodeErrorKind::Invalid, Some(field), message)
    }

    /// What is wrong.
    pub fn kind(&self) -> DecodeErrorKind {
        self.kind
    }

    /// The field at fault, when one is.
    pub fn field(&self) -> Option<&str> {
        self.field.as_deref()
    }

    /// The record or event is of a format version this reader does not know.
    pub fn is_version(&self) -> bool {
        self.kind == DecodeErrorKind::Version
    }
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for DecodeError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

impl Error {
    /// A copy of the error's message for reuse (I/O errors are not `Clone`).
    pub(crate) fn copy(&self) -> Error {
        match self {
            Error::Redis {
                addr,
                message,
                source,
            } => Error::Redis {
                addr: addr.clone(),
                message: message.clone(),
                source: source.clone(),
            },
            Error::Timeout { what, after } => Error::Timeout {
                what: what.clone(),
                after: *after,
            },
            other => Error::Config(other.to_string()),
        }
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
