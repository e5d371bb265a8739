//! The checks, one module per protocol; [`crate::target`] dispatches to them.
//!
//! Every check is an async function that either proves its target healthy or returns a
//! [`crate::Failure`] saying why not, in the peer's own words where there are any. Deadlines are
//! applied by the caller ([`crate::probe`]), which reads [`crate::progress::Progress`] to say
//! what a timed-out check was waiting for. Checks import only leaf modules and `net`.

pub(crate) mod cluster;
pub(crate) mod http;
pub(crate) mod nats;
pub(crate) mod ready;
pub(crate) mod redis;
pub(crate) mod sentinel;
pub(crate) mod tcp;
