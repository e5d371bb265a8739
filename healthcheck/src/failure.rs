//! Why a target is not healthy, as a type: a kind callers match on, the phase the check was in
//! and the address it was talking to. Shared vocabulary: this module imports nothing of the crate.

use std::fmt;

/// What went wrong, coarsely: enough for `wait` to decide whether retrying can help and for
/// `--format json` consumers to act without parsing text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum FailureKind {
    /// The target or the configuration is wrong (bad URL, unreadable secret file, ...).
    Config,
    /// The name did not resolve.
    Dns,
    /// Every address refused the connection (or was unreachable).
    Refused,
    /// The deadline passed; [`Failure::phase`] says in which phase.
    Timeout,
    /// The TLS handshake failed (certificate, protocol).
    Tls,
    /// The peer refused our credentials (or demands some).
    Auth,
    /// The peer answered something that is not the protocol, or too much of it.
    Protocol,
    /// The peer answered, and its answer is "not ready" (LOADING, status 503, a stale agent).
    Unhealthy,
    /// Another I/O error (connection reset mid-way, ...).
    Io,
}

impl FailureKind {
    /// The lowercase name used in JSON output.
    pub fn as_str(self) -> &'static str {
        match self {
            FailureKind::Config => "config",
            FailureKind::Dns => "dns",
            FailureKind::Refused => "refused",
            FailureKind::Timeout => "timeout",
            FailureKind::Tls => "tls",
            FailureKind::Auth => "auth",
            FailureKind::Protocol => "protocol",
            FailureKind::Unhealthy => "unhealthy",
            FailureKind::Io => "io",
        }
    }
}

/// Where in a check a failure happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Phase {
    /// Resolving the host name.
    Resolve,
    /// Opening the TCP connection.
    Connect,
    /// The TLS handshake.
    Tls,
    /// Sending credentials and reading the answer.
    Auth,
    /// The protocol exchange that proves health (PING, the HTTP request, the NATS handshake).
    Protocol,
    /// Reading a reply's payload (INFO, a body, ready records).
    Read,
}

impl Phase {
    /// The lowercase name used in JSON output.
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Resolve => "resolve",
            Phase::Connect => "connect",
            Phase::Tls => "tls",
            Phase::Auth => "auth",
            Phase::Protocol => "protocol",
            Phase::Read => "read",
        }
    }

    /// The phase as a verb phrase that an address can follow: `connecting to 10.0.0.3:6379`.
    fn doing(self) -> &'static str {
        match self {
            Phase::Resolve => "resolving",
            Phase::Connect => "connecting to",
            Phase::Tls => "tls handshake with",
            Phase::Auth => "authenticating with",
            Phase::Protocol => "talking to",
            Phase::Read => "reading from",
        }
    }
}

/// Why one target is not healthy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    kind: FailureKind,
    phase: Option<Phase>,
    /// What exactly the check was doing, when more precise than the phase ("waiting for PONG from").
    doing: Option<&'static str>,
    address: Option<String>,
    message: String,
}

impl Failure {
    /// A failure of `kind` with a message; phase and address are added by [`Failure::at`].
    pub fn new(kind: FailureKind, message: impl Into<String>) -> Failure {
        Failure {
            kind,
            phase: None,
            doing: None,
            address: None,
            message: message.into(),
        }
    }

    /// A configuration error: it will not fix itself by waiting.
    pub fn config(message: impl Into<String>) -> Failure {
        Failure::new(FailureKind::Config, message)
    }

    /// The same failure, placed in `phase` while talking to `address` (kept if already set).
    pub fn at(mut self, phase: Phase, address: Option<String>) -> Failure {
        self.phase.get_or_insert(phase);
        if self.address.is_none() {
            self.address = address;
        }
        self
    }

    /// The same failure, saying precisely what the check was doing (a verb phrase an address
    /// can follow, like "waiting for PONG from").
    pub fn doing(mut self, doing: Option<&'static str>) -> Failure {
        if self.doing.is_none() {
            self.doing = doing;
        }
        self
    }

    /// The kind of failure.
    pub fn kind(&self) -> FailureKind {
        self.kind
    }

    /// The phase the check was in, when it got that far.
    pub fn phase(&self) -> Option<Phase> {
        self.phase
    }

    /// The address (or, while resolving, the name) the check was talking to.
    pub fn address(&self) -> Option<&str> {
        self.address.as_deref()
    }

    /// The message alone, without phase and address.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// Replaces the message (used to scrub secrets from text a peer sent).
    pub fn map_message(mut self, f: impl Fn(&str) -> String) -> Failure {
        self.message = f(&self.message);
        self.address = self.address.map(|a| f(&a));
        self
    }

    /// True when retrying cannot help: the configuration or the credentials are wrong.
    pub fn is_permanent(&self) -> bool {
        matches!(self.kind, FailureKind::Config | FailureKind::Auth)
    }

    /// True when the deadline ended the check.
    pub fn is_timeout(&self) -> bool {
        self.kind == FailureKind::Timeout
    }

    /// True for an authentication failure.
    pub fn is_auth(&self) -> bool {
        self.kind == FailureKind::Auth
    }

    /// True for a configuration error.
    pub fn is_config(&self) -> bool {
        self.kind == FailureKind::Config
    }
}

impl fmt::Display for Failure {
    /// `timed out after 900ms connecting to 10.0.0.3:6379`,
    /// `authenticating with 10.0.0.3:6379: WRONGPASS invalid username-password pair`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let doing = self.doing.or(self.phase.map(Phase::doing)).unwrap_or("");
        match (self.kind, self.phase, &self.address) {
            (_, Some(Phase::Resolve), Some(a)) if self.kind != FailureKind::Timeout => {
                write!(f, "resolving {a}: {}", self.message)
            }
            (FailureKind::Timeout, Some(_), Some(a)) => write!(f, "{} {doing} {a}", self.message),
            (FailureKind::Timeout, Some(p), None) => write!(f, "{} ({})", self.message, p.as_str()),
            (_, Some(_), Some(a)) => write!(f, "{doing} {a}: {}", self.message),
            (_, Some(p), None) if p != Phase::Protocol => {
                write!(f, "{}: {}", p.as_str(), self.message)
            }
            _ => f.write_str(&self.message),
        }
    }
}

impl std::error::Error for Failure {}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reason names the phase and the address beside the message.
    #[test]
    fn display_names_phase_and_address() {
        let f = Failure::new(FailureKind::Timeout, "timed out after 900ms")
            .at(Phase::Connect, Some("10.0.0.3:6379".into()));
        assert_eq!(
            f.to_string(),
            "timed out after 900ms connecting to 10.0.0.3:6379"
        );
        let f = Failure::new(FailureKind::Auth, "WRONGPASS no")
            .at(Phase::Auth, Some("10.0.0.3:6379".into()));
        assert_eq!(
            f.to_string(),
            "authenticating with 10.0.0.3:6379: WRONGPASS no"
        );
        assert!(f.is_permanent() && f.is_auth());
        let f = Failure::new(FailureKind::Timeout, "timed out after 1s")
            .at(Phase::Protocol, Some("h:1".into()))
            .doing(Some("waiting for PONG from"));
        assert_eq!(
            f.to_string(),
            "timed out after 1s waiting for PONG from h:1"
        );
    }
}
