//! `tcp://host:port`: the weakest check, that a connection is accepted.
//!
//! Kept for services that speak nothing else we know; prefer a protocol check where one exists
//! (a bare port probe is what made the field's stacks lie).

use url::Url;

use crate::failure::Failure;
use crate::net;
use crate::options::{Options, host_port};
use crate::progress::Progress;

/// A validated `tcp://` target.
#[derive(Debug, Clone)]
pub(crate) struct TcpTarget {
    host: String,
    port: u16,
}

impl TcpTarget {
    pub(crate) fn from_url(url: &Url, _opts: &mut Options) -> Result<TcpTarget, Failure> {
        if url.port().is_none() {
            return Err(Failure::config("tcp targets need a port: tcp://host:port"));
        }
        if !matches!(url.path(), "" | "/") {
            return Err(Failure::config("tcp targets take no path"));
        }
        let (host, port) = host_port(url, 0)?;
        Ok(TcpTarget { host, port })
    }
}

pub(crate) async fn check(t: &TcpTarget, progress: &Progress) -> Result<Option<String>, Failure> {
    net::connect(&t.host, t.port, progress).await?;
    Ok(None)
}
