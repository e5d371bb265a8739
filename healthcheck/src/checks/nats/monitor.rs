//! The monitoring port of a NATS server (`monitor=http://host:8222`): a bounded HTTP/1.0 GET of
//! one endpoint's JSON (`/routez`, `/jsz`), spoken directly so its size and wait stay bounded.

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::failure::{Failure, FailureKind, Phase};
use crate::net;
use crate::progress::Progress;
use crate::text::truncate;

/// The most a monitoring endpoint's answer may be (`/routez` of a large cluster is tens of KiB).
const MONITOR_LIMIT: usize = 256 * 1024;

/// A bounded HTTP/1.0 GET of a monitoring endpoint's JSON.
pub(super) async fn get(
    host: &str,
    port: u16,
    path: &str,
    progress: &Progress,
) -> Result<serde_json::Value, Failure> {
    let mut tcp = net::connect(host, port, progress).await?;
    progress.set(Phase::Read);
    let io_fail =
        |e: std::io::Error| progress.fail(FailureKind::Io, ready_signal::files::io_reason(&e));
    tcp.write_all(format!("GET {path} HTTP/1.0\r\nHost: {host}\r\n\r\n").as_bytes())
        .await
        .map_err(io_fail)?;
    let mut raw = Vec::new();
    (&mut tcp)
        .take(MONITOR_LIMIT as u64 + 1)
        .read_to_end(&mut raw)
        .await
        .map_err(io_fail)?;
    if raw.len() > MONITOR_LIMIT {
        return Err(progress.fail(
            FailureKind::Protocol,
            format!("{path}: answer over the {} KiB bound", MONITOR_LIMIT / 1024),
        ));
    }
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head.split_whitespace().nth(1).unwrap_or("none");
    if status != "200" {
        return Err(progress.fail(
            FailureKind::Unhealthy,
            format!("{path}: status {}", truncate(status, 10)),
        ));
    }
    serde_json::from_str(body)
        .map_err(|_| progress.fail(FailureKind::Protocol, format!("{path}: not JSON")))
}
