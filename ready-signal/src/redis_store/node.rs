//! One connection to one Redis server (a standalone server, a Sentinel, a master named by
//! Sentinels, a Cluster node), over a stream whose reads can be bounded, and the one way its
//! errors are told ([`redis_error`]). The lowest layer of `redis_store`: it imports nothing of its
//! siblings.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, RedisConnectionInfo, RedisError};

use crate::Error;

/// How many bytes the connections of one reader may still read from their servers.
///
/// redis-rs buffers a reply of whatever length the peer announces; the budget sits under it, on
/// the stream, so a server (or impostor) streaming an endless reply fails the read instead of
/// growing the reader's memory. Every connection of a reader (a Cluster's nodes, the Sentinels
/// asked) draws on the same budget.
#[derive(Debug, Clone)]
pub(crate) struct Budget {
    left: Option<Arc<AtomicUsize>>,
    /// Set back to this many bytes by [`Budget::refill`] (a long-running reader's next read).
    per_read: usize,
}

impl Budget {
    /// No bound (a writer: it reads one integer per call).
    pub(crate) fn unbounded() -> Budget {
        Budget {
            left: None,
            per_read: 0,
        }
    }

    /// At most `bytes` over the life of the connections.
    pub(crate) fn total(bytes: usize) -> Budget {
        Budget {
            left: Some(Arc::new(AtomicUsize::new(bytes))),
            per_read: 0,
        }
    }

    /// At most about `bytes` per read, [`Budget::refill`]ed before each one.
    pub(crate) fn per_read(bytes: usize) -> Budget {
        Budget {
            left: Some(Arc::new(AtomicUsize::new(bytes))),
            per_read: bytes,
        }
    }

    /// Starts a new read (only a per-read budget grows back).
    pub(crate) fn refill(&self) {
        if let Some(left) = &self.left
            && self.per_read > 0
        {
            left.store(self.per_read, Ordering::Relaxed);
        }
    }

    /// Takes up to `want` bytes; 0 when the budget is spent.
    fn take(&self, want: usize) -> usize {
        let Some(left) = &self.left else {
            return want;
        };
        let mut granted = 0;
        let _ = left.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |l| {
            granted = l.min(want);
            Some(l - granted)
        });
        granted
    }

    /// Gives back what a read was granted but did not use.
    fn give_back(&self, unused: usize) {
        if let Some(left) = &self.left
            && unused > 0
        {
            left.fetch_add(unused, Ordering::Relaxed);
        }
    }
}

/// A multiplexed connection to one server, named by its address in errors.
#[derive(Clone)]
pub(crate) struct NodeConn {
    pub(crate) conn: MultiplexedConnection,
    pub(crate) addr: String,
}

impl std::fmt::Debug for NodeConn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeConn")
            .field("addr", &self.addr)
            .finish()
    }
}

impl NodeConn {
    /// Connects to `addr` (`host:port`) and authenticates with `settings` within `timeout`;
    /// every later command is bounded by `timeout` too, and reads draw on `budget`.
    pub(crate) async fn open(
        addr: &str,
        settings: &RedisConnectionInfo,
        timeout: Duration,
        budget: &Budget,
    ) -> Result<NodeConn, Error> {
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(Some(timeout));
        let connect = async {
            let tcp = tokio::net::TcpStream::connect(addr)
                .await
                .map_err(|e| Error::Redis {
                    addr: addr.to_string(),
                    message: e.to_string(),
                    source: Some(crate::error::Source::new(e)),
                })?;
            let _ = tcp.set_nodelay(true);
            let stream = ReadBound {
                inner: tcp,
                budget: budget.clone(),
            };
            let (conn, driver) = MultiplexedConnection::new_with_config(settings, stream, config)
                .await
                .map_err(|e| redis_error(addr, &e))?;
            tokio::spawn(driver);
            Ok(conn)
        };
        let conn = tokio::time::timeout(timeout, connect)
            .await
            .map_err(|_| Error::Timeout {
                what: format!("connecting to redis at {addr}"),
                after: timeout,
            })??;
        Ok(NodeConn {
            conn,
            addr: addr.to_string(),
        })
    }

    /// The first word of `ROLE`: `master`, `slave` or `sentinel`.
    pub(crate) async fn role(&mut self) -> Result<String, Error> {
        let reply: redis::Value = redis::cmd("ROLE")
            .query_async(&mut self.conn)
            .await
            .map_err(|e| redis_error(&self.addr, &e))?;
        let first = match reply {
            redis::Value::Array(items) => items.into_iter().next(),
            _ => None,
        };
        first
            .and_then(|v| redis::from_redis_value::<String>(v).ok())
            .ok_or_else(|| Error::Redis {
                addr: self.addr.clone(),
                message: "unexpected reply to ROLE".into(),
                source: None,
            })
    }
}

/// A stream whose reads draw on a [`Budget`]; once it is spent, every read fails.
#[derive(Debug)]
struct ReadBound<S> {
    inner: S,
    budget: Budget,
}

impl<S: tokio::io::AsyncRead + Unpin> tokio::io::AsyncRead for ReadBound<S> {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let mut chunk = [0u8; 4096];
        let max = self.budget.take(buf.remaining().min(chunk.len()));
        if max == 0 && buf.remaining() > 0 {
            return std::task::Poll::Ready(Err(std::io::Error::other(
                "the server sent more than the read bound (an endless reply?)",
            )));
        }
        let mut sub = tokio::io::ReadBuf::new(&mut chunk[..max]);
        let polled = std::pin::Pin::new(&mut self.inner).poll_read(cx, &mut sub);
        let n = sub.filled().len();
        self.budget.give_back(max - n);
        if let std::task::Poll::Ready(Ok(())) = &polled {
            buf.put_slice(sub.filled());
        }
        polled
    }
}

impl<S: tokio::io::AsyncWrite + Unpin> tokio::io::AsyncWrite for ReadBound<S> {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// The server's words for an error reply (`WRONGPASS invalid username-password pair`), or the
/// system's for an I/O failure; never the URL.
pub(crate) fn redis_error(addr: &str, e: &RedisError) -> Error {
    let message = match (e.code(), e.detail()) {
        (Some(code), Some(detail)) => format!("{code} {detail}"),
        (Some(code), None) => code.to_string(),
        _ => e.to_string(),
    };
    Error::Redis {
        addr: addr.to_string(),
        message,
        source: Some(crate::error::Source::new(e.clone())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A total budget is shared and never grows back; a per-read one is refilled.
    #[test]
    fn budgets_take_and_refill() {
        let total = Budget::total(10);
        let other = total.clone();
        assert_eq!(total.take(6), 6);
        assert_eq!(other.take(6), 4);
        assert_eq!(total.take(1), 0);
        total.refill();
        assert_eq!(total.take(1), 0);
        other.give_back(3);
        assert_eq!(total.take(5), 3);
        let per = Budget::per_read(10);
        assert_eq!(per.take(20), 10);
        per.refill();
        assert_eq!(per.take(4), 4);
        assert_eq!(Budget::unbounded().take(1 << 30), 1 << 30);
    }
}
