//! The NATS wire protocol as far as the probe speaks it: operations read one line at a time,
//! every line and payload bounded, over any stream (TCP or TLS).
//!
//! Spoken here rather than through async-nats: its parser buffers a protocol line until a CRLF
//! arrives, so a peer streaming an INFO line without end grows the probe's memory without
//! bound, and its own connect timeout (5 s) ended checks given a longer deadline. Lines are at
//! most [`LINE_LIMIT`] bytes, payloads at most [`PAYLOAD_LIMIT`].

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};

use crate::failure::{Failure, FailureKind};
use crate::progress::Progress;
use crate::text::truncate;

/// The longest protocol line read (INFO lists cluster URLs; a few KiB in practice).
const LINE_LIMIT: usize = 64 * 1024;
/// The largest message payload read (the JetStream account info is well under 1 KiB).
const PAYLOAD_LIMIT: usize = 64 * 1024;

/// A server operation, as far as the probe needs it.
#[derive(Debug)]
pub(super) enum Op {
    Ping,
    Pong,
    /// A message; `status` from its headers (`NATS/1.0 503`), when it has any.
    Msg {
        status: Option<u16>,
        payload: Vec<u8>,
    },
    /// `+OK`, a later INFO: nothing to act on.
    Other,
}

/// A NATS connection whose every read is bounded.
pub(super) struct Conn<S> {
    io: BufReader<S>,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Conn<S> {
    pub(super) fn new(stream: S) -> Conn<S> {
        Conn {
            io: BufReader::with_capacity(1024, stream),
        }
    }

    /// The stream, for the TLS upgrade; bytes already buffered would be lost, so there must be none.
    pub(super) fn into_inner(self) -> Result<S, Failure> {
        if !self.io.buffer().is_empty() {
            return Err(Failure::new(
                FailureKind::Protocol,
                "data after INFO before the TLS handshake: not NATS?",
            ));
        }
        Ok(self.io.into_inner())
    }

    pub(super) async fn send(&mut self, bytes: &[u8], progress: &Progress) -> Result<(), Failure> {
        let io_fail =
            |e: std::io::Error| progress.fail(FailureKind::Io, ready_signal::files::io_reason(&e));
        self.io.get_mut().write_all(bytes).await.map_err(io_fail)?;
        self.io.get_mut().flush().await.map_err(io_fail)
    }

    /// One line without its CRLF, at most [`LINE_LIMIT`] bytes.
    async fn read_line(&mut self, progress: &Progress) -> Result<String, Failure> {
        let mut line = Vec::new();
        (&mut self.io)
            .take(LINE_LIMIT as u64 + 2)
            .read_until(b'\n', &mut line)
            .await
            .map_err(|e| progress.fail(FailureKind::Io, ready_signal::files::io_reason(&e)))?;
        if line.is_empty() {
            return Err(progress.fail(FailureKind::Io, "connection closed by peer"));
        }
        if !line.ends_with(b"\n") {
            return Err(progress.fail(
                FailureKind::Protocol,
                if line.len() > LINE_LIMIT {
                    format!(
                        "protocol line longer than {} KiB: `{}`",
                        LINE_LIMIT / 1024,
                        truncate(&String::from_utf8_lossy(&line[..200]), 200)
                    )
                } else {
                    "line cut short: connection closed by peer".into()
                },
            ));
        }
        let text = String::from_utf8_lossy(&line);
        Ok(text.trim_end_matches(['\r', '\n']).to_string())
    }

    /// The server's first line, which must be INFO with a JSON object.
    pub(super) async fn read_info(
        &mut self,
        progress: &Progress,
    ) -> Result<serde_json::Value, Failure> {
        let line = self.read_line(progress).await?;
        let Some(json) = strip_op(&line, "INFO") else {
            return Err(progress.fail(
                FailureKind::Protocol,
                format!(
                    "the server's first line is `{}`, not INFO: not NATS?",
                    truncate(&line, 60)
                ),
            ));
        };
        serde_json::from_str(json)
            .map_err(|_| progress.fail(FailureKind::Protocol, "INFO is not JSON: not NATS?"))
    }

    pub(super) async fn read_op(&mut self, progress: &Progress) -> Result<Op, Failure> {
        let line = self.read_line(progress).await?;
        let upper = line.to_ascii_uppercase();
        if upper == "PING" {
            return Ok(Op::Ping);
        }
        if upper == "PONG" {
            return Ok(Op::Pong);
        }
        if upper == "+OK" || strip_op(&line, "INFO").is_some() {
            return Ok(Op::Other);
        }
        if let Some(err) = strip_op(&line, "-ERR") {
            let text = err.trim().trim_matches('\'').to_string();
            // The protocol's only signal of a refused login is the -ERR text (nats-server's
            // fixed strings), so it is read here as the protocol, not as our own messages.
            let lower = text.to_ascii_lowercase();
            let kind = if lower.starts_with("authorization violation")
                || lower.contains("authentication")
                || lower.starts_with("permissions violation")
            {
                FailureKind::Auth
            } else {
                FailureKind::Unhealthy
            };
            return Err(progress.fail(kind, format!("-ERR '{}'", truncate(&text, 300))));
        }
        let (headers, args) = if let Some(a) = strip_op(&line, "HMSG") {
            (true, a)
        } else if let Some(a) = strip_op(&line, "MSG") {
            (false, a)
        } else {
            return Err(progress.fail(
                FailureKind::Protocol,
                format!("unexpected `{}`: not NATS?", truncate(&line, 60)),
            ));
        };
        // MSG subject sid [reply] size / HMSG subject sid [reply] header-size total-size
        let fields: Vec<&str> = args.split_whitespace().collect();
        let bad = || progress.fail(FailureKind::Protocol, "malformed MSG line: not NATS?");
        let total: usize = fields.last().and_then(|n| n.parse().ok()).ok_or_else(bad)?;
        let header_len: usize = if headers {
            fields
                .len()
                .checked_sub(2)
                .and_then(|i| fields[i].parse().ok())
                .ok_or_else(bad)?
        } else {
            0
        };
        if total > PAYLOAD_LIMIT || header_len > total {
            return Err(progress.fail(
                FailureKind::Protocol,
                format!(
                    "message of {total} bytes is over the {} KiB bound",
                    PAYLOAD_LIMIT / 1024
                ),
            ));
        }
        let mut data = vec![0; total + 2];
        self.io
            .read_exact(&mut data)
            .await
            .map_err(|e| progress.fail(FailureKind::Io, ready_signal::files::io_reason(&e)))?;
        data.truncate(total);
        let status = headers
            .then(|| {
                let head = String::from_utf8_lossy(&data[..header_len]);
                head.lines()
                    .next()
                    .and_then(|l| l.strip_prefix("NATS/1.0"))
                    .and_then(|r| r.split_whitespace().next())
                    .and_then(|c| c.parse().ok())
            })
            .flatten();
        let payload = data.split_off(header_len);
        Ok(Op::Msg { status, payload })
    }
}

/// `line` without the operation name `op` (case-insensitive) and the space after it.
fn strip_op<'a>(line: &'a str, op: &str) -> Option<&'a str> {
    let head = line.get(..op.len())?;
    if !head.eq_ignore_ascii_case(op) {
        return None;
    }
    let rest = &line[op.len()..];
    if rest.is_empty() {
        Some(rest)
    } else if rest.starts_with([' ', '\t']) {
        Some(rest.trim_start())
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Operation names compare case-insensitively and need a separator.
    #[test]
    fn strip_op_needs_a_separator() {
        assert_eq!(strip_op("info {}", "INFO"), Some("{}"));
        assert_eq!(strip_op("INFOX", "INFO"), None);
        assert_eq!(strip_op("-ERR 'x'", "-ERR"), Some("'x'"));
    }
}
