//! What the crate's integration tests share: names, a store on a real redis-server, a raw
//! connection to it. Each test file uses some of it (`mod common;`).

#![allow(dead_code)] // each test crate uses part of this module
#![allow(clippy::unwrap_used)] // tests fail loudly by design

use harness::RedisServer;
use ready_signal::{Name, StoreConfig};

/// A name the test knows to be valid.
pub(crate) fn name(s: &str) -> Name {
    Name::new(s).unwrap()
}

/// The store on `redis`, namespace `ns`.
pub(crate) fn store(redis: &RedisServer, ns: &str) -> StoreConfig {
    StoreConfig::new()
        .redis(&redis.url())
        .unwrap()
        .namespace(name(ns))
}

/// A plain connection to `redis`, for what the test reads or writes behind the crate's back.
pub(crate) async fn raw(redis: &RedisServer) -> redis::aio::MultiplexedConnection {
    redis::Client::open(redis.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}
