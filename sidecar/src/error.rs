//! The sidecar's error: what failed and where (one lowercase line), a kind the writer, the page
//! and the governor can act on, and the cause kept as its source. Nothing downstream matches on
//! error text: a "no such container" from Docker or Podman (whatever their wording) is
//! [`ErrorKind::NotFound`], because it is recognised by its HTTP status, not its words.
//!
//! A leaf module: it imports nothing of the crate.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// What kind of failure, for callers to act on (retry, report, give up on one container).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// No answer within the time given.
    Timeout,
    /// The peer could not be reached (connection refused, reset, DNS, socket missing).
    Unreachable,
    /// The peer refused our credentials or permissions.
    Auth,
    /// The thing asked about does not exist (a container removed meanwhile).
    NotFound,
    /// The request conflicts with the thing's state (a container already being removed).
    Conflict,
    /// The Docker engine answered with another error status.
    Engine {
        /// The HTTP status it answered.
        status: u16,
    },
    /// The peer answered something that does not follow its protocol (or a record that does not
    /// follow PROTOCOL.md).
    Protocol,
    /// A local file could not be read or written.
    Io,
    /// A setting that cannot work.
    Config,
}

impl ErrorKind {
    /// A fixed word for the kind (a metric label, a JSON field; never free text).
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Timeout => "timeout",
            ErrorKind::Unreachable => "unreachable",
            ErrorKind::Auth => "auth",
            ErrorKind::NotFound => "not-found",
            ErrorKind::Conflict => "conflict",
            ErrorKind::Engine { .. } => "engine",
            ErrorKind::Protocol => "protocol",
            ErrorKind::Io => "io",
            ErrorKind::Config => "config",
        }
    }
}

/// The source of an error, shared so that snapshots (which are cloned) can keep it.
type Source = Arc<dyn std::error::Error + Send + Sync + 'static>;

/// A failure of the sidecar's sources or actions: its kind, a message naming what failed and
/// where, and the cause.
#[derive(Clone)]
pub struct Error {
    kind: ErrorKind,
    message: String,
    source: Option<Source>,
}

impl Error {
    /// A failure of `kind`, said by `message` (lowercase, naming what failed and where).
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Error {
        Error {
            kind,
            message: message.into(),
            source: None,
        }
    }

    /// The same failure, caused by `source` (shown after the message, and kept as the source).
    pub fn with_source(mut self, source: impl std::error::Error + Send + Sync + 'static) -> Error {
        self.source = Some(Arc::new(source));
        self
    }

    /// `what` took longer than `after`.
    pub fn timeout(what: impl fmt::Display, after: Duration) -> Error {
        Error::new(
            ErrorKind::Timeout,
            format!(
                "{what} timed out after {}",
                humantime::format_duration(after)
            ),
        )
    }

    /// A Docker Engine API call (`what`, naming the engine) that failed: the kind comes from
    /// the status the engine answered (404 not found, 409 conflict, 401/403 auth), or from the
    /// transport (unreachable), never from the wording (Podman words errors differently).
    pub fn docker(what: impl fmt::Display, e: bollard::errors::Error) -> Error {
        use bollard::errors::Error as B;
        let kind = match &e {
            B::DockerResponseServerError { status_code, .. } => match *status_code {
                404 => ErrorKind::NotFound,
                409 => ErrorKind::Conflict,
                401 | 403 => ErrorKind::Auth,
                status => ErrorKind::Engine { status },
            },
            B::RequestTimeoutError => ErrorKind::Timeout,
            B::IOError { .. }
            | B::HyperResponseError { .. }
            | B::SocketNotFoundError(_)
            | B::UnsupportedURISchemeError { .. } => ErrorKind::Unreachable,
            B::JsonDataError { .. }
            | B::JsonSerdeError { .. }
            | B::StrParseError { .. }
            | B::HttpClientError { .. }
            | B::DockerStreamError { .. }
            | B::DockerContainerWaitError { .. } => ErrorKind::Protocol,
            _ => ErrorKind::Unreachable,
        };
        Error::new(kind, what.to_string()).with_source(e)
    }

    /// A failure of the agents' store (its message already names the store by address).
    pub fn store(e: ready_signal::Error) -> Error {
        use ready_signal::Error as R;
        let kind = match &e {
            R::Timeout { .. } => ErrorKind::Timeout,
            R::Redis { .. } | R::Nats { .. } => ErrorKind::Unreachable,
            R::File { .. } => ErrorKind::Io,
            R::Config(_) | R::InvalidName { .. } => ErrorKind::Config,
            _ => ErrorKind::Protocol,
        };
        // The store's message is complete (address and cause): it is the message, and the
        // error is kept as the source for whoever walks the chain.
        Error {
            kind,
            message: e.to_string(),
            source: Some(Arc::new(e)),
        }
    }

    /// Its kind.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// No answer in time.
    pub fn is_timeout(&self) -> bool {
        self.kind == ErrorKind::Timeout
    }

    /// The peer could not be reached.
    pub fn is_unreachable(&self) -> bool {
        self.kind == ErrorKind::Unreachable
    }

    /// Credentials or permissions refused.
    pub fn is_auth(&self) -> bool {
        self.kind == ErrorKind::Auth
    }

    /// The thing asked about does not exist (any more).
    pub fn is_not_found(&self) -> bool {
        self.kind == ErrorKind::NotFound
    }

    /// The request conflicts with the thing's state.
    pub fn is_conflict(&self) -> bool {
        self.kind == ErrorKind::Conflict
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)?;
        match &self.source {
            // A store error is its own message (see `Error::store`): not said twice.
            Some(s) if !self.message.ends_with(&s.to_string()) => write!(f, ": {s}"),
            _ => Ok(()),
        }
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Error")
            .field("kind", &self.kind)
            .field("message", &self.message)
            .field("source", &self.source.as_ref().map(|s| s.to_string()))
            .finish()
    }
}

impl PartialEq for Error {
    /// Same kind and same line (sources compare by what they say).
    fn eq(&self, other: &Error) -> bool {
        self.kind == other.kind && self.to_string() == other.to_string()
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|s| s as &(dyn std::error::Error + 'static))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn engine(status: u16, message: &str) -> bollard::errors::Error {
        bollard::errors::Error::DockerResponseServerError {
            status_code: status,
            message: message.into(),
        }
    }

    /// Docker's and Podman's "no such container" are one kind whatever their case or wording;
    /// conflicts, auth and other statuses keep their kind; the message names what failed and
    /// the engine's words follow.
    #[test]
    fn docker_errors_by_status() {
        let docker = Error::docker(
            "docker: inspecting 0123abcd",
            engine(404, "No such container: 0123abcd"),
        );
        let podman = Error::docker(
            "docker: inspecting 0123abcd",
            engine(404, "no such container"),
        );
        assert!(docker.is_not_found() && podman.is_not_found());
        assert_eq!(
            docker.to_string(),
            "docker: inspecting 0123abcd: Docker responded with status code 404: No such container: 0123abcd"
        );
        assert!(std::error::Error::source(&docker).is_some());
        assert!(Error::docker("x", engine(409, "removal in progress")).is_conflict());
        assert!(Error::docker("x", engine(403, "denied")).is_auth());
        assert_eq!(
            Error::docker("x", engine(500, "boom")).kind(),
            ErrorKind::Engine { status: 500 }
        );
        assert!(Error::docker("x", bollard::errors::Error::RequestTimeoutError).is_timeout());
    }

    /// A store failure keeps the store's kind (timeout, unreachable) and its one message, said
    /// once.
    #[test]
    fn store_errors_keep_their_kind() {
        let e = Error::store(ready_signal::Error::Timeout {
            what: "reading namespace demo".into(),
            after: Duration::from_secs(2),
        });
        assert!(e.is_timeout());
        assert_eq!(
            e.to_string(),
            "reading namespace demo timed out after 2000ms"
        );
        let e = Error::store(ready_signal::Error::Redis {
            addr: "redis:6379".into(),
            message: "connection refused".into(),
            source: None,
        });
        assert!(e.is_unreachable());
        assert_eq!(e.to_string(), "redis at redis:6379: connection refused");
        let t = Error::timeout("reading namespace demo", Duration::from_secs(2));
        assert_eq!(
            (t.kind(), t.to_string().as_str()),
            (
                ErrorKind::Timeout,
                "reading namespace demo timed out after 2s"
            )
        );
    }
}
