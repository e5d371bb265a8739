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

/// The user or password of a URL's userinfo, percent-decoded. Only `%XX` is decoded: a `+` is a
/// plus sign here (form decoding would turn it into a space and break the password).
pub(crate) fn percent_decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
}

/// `s` cut to at most `max` bytes at a character boundary, with `…` when cut.
pub(crate) fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

#[cfg(test)]
mod tests {
    #[test]
    fn userinfo_decoding_keeps_plus_signs() {
        assert_eq!(super::percent_decode("a+b%21%40"), "a+b!@");
    }
}
