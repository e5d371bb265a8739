//! The NATS side of PROTOCOL.md: one subject per replica, a JSON event at every transition.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_nats::{Client, ConnectOptions, Subscriber};
use futures_util::StreamExt as _;
use futures_util::stream::SelectAll;
use tokio::sync::Notify;

use crate::escape::{one_line, shown};
use crate::record::{EventPayload, MAX_REASON_LEN, PROTOCOL_VERSION, State};
use crate::stores::{NatsAuth, NatsStore};
use crate::{DecodeError, DecodeErrorKind, Error, Name};

/// `ready-signal.{ns}.{agent}.{replica}`: where a replica's transitions are published.
pub fn subject(ns: &Name, agent: &Name, replica: &Name) -> String {
    format!("ready-signal.{ns}.{agent}.{replica}")
}

/// `ready-signal.{ns}.{agent}.*`: every replica of one agent.
pub fn agent_subject(ns: &Name, agent: &Name) -> String {
    format!("ready-signal.{ns}.{agent}.*")
}

/// The subject of every event of namespace `ns`: `ready-signal.{ns}.*.*`.
pub fn namespace_subject(ns: &Name) -> String {
    format!("ready-signal.{ns}.*.*")
}

/// How often an idle connection pings its server. async-nats gives a server up after three
/// unanswered pings: a node lost without closing its connections (a host gone, a partition) is
/// left for another seed within about 15 s, not the 3 minutes of its 60 s default.
const PING_INTERVAL: Duration = Duration::from_secs(5);

/// Connects to NATS within `timeout`. Once connected, async-nats reconnects on its own, to any
/// seed, and subscribes again; `on_connect`, when given, is called at every connection after the
/// first (a publisher republishes its state, a waiter reads the store again).
pub(crate) async fn connect(
    store: &NatsStore,
    timeout: Duration,
    on_connect: Option<Arc<dyn Fn() + Send + Sync>>,
) -> Result<Client, Error> {
    let mut options = options(store, timeout);
    if let Some(on_connect) = on_connect {
        // Events come in order from one task: a `Connected` after a `Disconnected` is a
        // reconnection (the first `Connected` may arrive after `connect` has returned).
        let lost = Arc::new(AtomicBool::new(false));
        options = options.event_callback(move |event| {
            let on_connect = Arc::clone(&on_connect);
            let lost = Arc::clone(&lost);
            async move {
                match event {
                    async_nats::Event::Disconnected => lost.store(true, Ordering::Relaxed),
                    async_nats::Event::Connected if lost.swap(false, Ordering::Relaxed) => {
                        tracing::info!("reconnected to nats");
                        on_connect();
                    }
                    _ => {}
                }
            }
        });
    }
    open(store, timeout, options).await
}

/// The connection options for `store`: its credentials and the connection timeout.
fn options(store: &NatsStore, timeout: Duration) -> ConnectOptions {
    let options = ConnectOptions::new()
        .name("ready-signal")
        .connection_timeout(per_seed(timeout, store.servers.len()))
        .ping_interval(PING_INTERVAL)
        .ignore_discovered_servers();
    match &store.auth {
        NatsAuth::None => options,
        NatsAuth::Token(t) => options.token(t.clone()),
        NatsAuth::UserPassword(user, password) => {
            options.user_and_password(user.clone(), password.clone())
        }
    }
}

/// How long one seed may take to connect: async-nats tries seeds one after another, so a seed
/// that never answers (a host gone) must leave the others their turn within the caller's timeout.
fn per_seed(timeout: Duration, seeds: usize) -> Duration {
    let share = timeout / seeds.max(1) as u32;
    share.max(timeout.min(Duration::from_millis(250)))
}

async fn open(
    store: &NatsStore,
    timeout: Duration,
    options: ConnectOptions,
) -> Result<Client, Error> {
    let err = |e: async_nats::ConnectError| Error::Nats {
        addr: store.addr.clone(),
        message: e.to_string(),
        source: Some(crate::error::Source::new(e)),
    };
    // Every seed is one server address: async-nats does not split a comma-separated URL.
    tokio::time::timeout(timeout, options.connect(store.servers.as_slice()))
        .await
        .map_err(|_| Error::Timeout {
            what: format!("connecting to nats at {}", store.addr),
            after: timeout,
        })?
        .map_err(err)
}

impl crate::StoreConfig {
    /// A NATS client on the configured server with the configured credentials, for a program
    /// that publishes subjects of its own beside the agents' (the sidecar's heal events).
    /// `Ok(None)` when no NATS is configured.
    ///
    /// It returns at once even when the server cannot be reached yet (a stack starting up: the
    /// name may not resolve for a second): the client keeps trying in the background, and what is
    /// published meanwhile waits in its buffer. An error is a configuration that cannot work.
    pub async fn nats_client(&self, timeout: Duration) -> Result<Option<Client>, Error> {
        match &self.nats {
            None => Ok(None),
            Some(store) => {
                let options = options(store, timeout).retry_on_initial_connect();
                open(store, timeout, options).await.map(Some)
            }
        }
    }
}

/// Publishes one event and flushes it, so waiters see it without delay.
pub(crate) async fn publish(
    client: &Client,
    addr: &str,
    subject: String,
    event: &EventPayload,
) -> Result<(), Error> {
    fn err<E: std::error::Error + Send + Sync + 'static>(addr: &str) -> impl FnOnce(E) -> Error {
        move |e| Error::Nats {
            addr: addr.to_string(),
            message: e.to_string(),
            source: Some(crate::error::Source::new(e)),
        }
    }
    let payload = serde_json::to_vec(event).map_err(err(addr))?;
    client
        .publish(subject, payload.into())
        .await
        .map_err(err(addr))?;
    client.flush().await.map_err(err(addr))
}

/// A transition seen on NATS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// The agent.
    pub agent: Name,
    /// The replica.
    pub replica: Name,
    /// The publishing instance.
    pub instance: String,
    /// The new state.
    pub state: State,
    /// Why, for `not-ready`.
    pub reason: String,
    /// The container the publisher runs in (64 lowercase hex digits), when the event says.
    pub container: Option<String>,
}

/// What a subscription delivers (see [`Events::next_delivery`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Delivery {
    /// A transition.
    Event(Event),
    /// The connection was lost and is back, perhaps through another server of a cluster, with
    /// the subscriptions renewed. Events published meanwhile are not replayed: a reader that must
    /// not miss a transition reads the records again.
    Resubscribed,
}

/// A stream of [`Event`]s for the agents given to [`crate::Observer::subscribe`].
///
/// The subscriptions outlive their server: when it goes away, the client reconnects to any seed
/// of the configured list and subscribes again.
#[derive(Debug)]
pub struct Events {
    pub(crate) _client: Client,
    pub(crate) subscriptions: SelectAll<Subscriber>,
    /// Given a permit at every reconnection.
    pub(crate) resubscribed: Arc<Notify>,
}

impl Events {
    /// The next event; `None` once the connection is closed for good. Malformed payloads are
    /// skipped (and logged at debug level).
    pub async fn next(&mut self) -> Option<Event> {
        loop {
            if let Delivery::Event(event) = self.next_delivery().await? {
                return Some(event);
            }
        }
    }

    /// The next event, or word that the subscriptions were renewed after a lost connection;
    /// `None` once the connection is closed for good. Malformed payloads are skipped.
    pub async fn next_delivery(&mut self) -> Option<Delivery> {
        loop {
            let message = tokio::select! {
                biased;
                message = self.subscriptions.next() => message?,
                () = self.resubscribed.notified() => return Some(Delivery::Resubscribed),
            };
            match decode_event(&message.payload) {
                Ok(event) => return Some(Delivery::Event(event)),
                Err(reason) => {
                    tracing::debug!(subject = %message.subject, %reason, "skipping a malformed event")
                }
            }
        }
    }
}

/// Decodes an event payload (PROTOCOL.md, "Events").
pub fn decode_event(payload: &[u8]) -> Result<Event, DecodeError> {
    let e: EventPayload = serde_json::from_slice(payload).map_err(|e| {
        // serde quotes the offending value whole (an unknown state of any length).
        DecodeError::new(
            DecodeErrorKind::NotJson,
            None,
            format!("not an event: {}", shown(&e.to_string(), 200)),
        )
        .with_source(e)
    })?;
    if e.v != PROTOCOL_VERSION {
        return Err(DecodeError::new(
            DecodeErrorKind::Version,
            Some("v"),
            format!("event format version {} is not {PROTOCOL_VERSION}", e.v),
        ));
    }
    if !(e.container.is_empty() || crate::container::is_id(&e.container)) {
        return Err(DecodeError::invalid(
            "container",
            format!(
                "field `container` is not 64 lowercase hex digits: `{}`",
                shown(&e.container, 80)
            ),
        ));
    }
    let name = |field: &str, value: &str| {
        Name::new(value).map_err(|err| {
            DecodeError::invalid(field, format!("field `{field}`: {err}")).with_source(err)
        })
    };
    Ok(Event {
        container: Some(e.container).filter(|c| !c.is_empty()),
        agent: name("agent", &e.agent)?,
        replica: name("replica", &e.replica)?,
        instance: e.instance,
        state: e.state,
        reason: one_line(&e.reason, MAX_REASON_LEN),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Revision 4: an event may carry the publisher's container; one without it (an older
    /// publisher) decodes with none, and a container that is not a full id is malformed.
    #[test]
    fn events_carry_the_container_when_there_is_one() {
        let id = "ab".repeat(32);
        let event = |extra: &str| {
            format!(
                r#"{{"v":1,"agent":"a","replica":"r","instance":"1732540000000-0a1b2c3d","state":"ready","reason":"","ts_ms":1{extra}}}"#
            )
        };
        let with = decode_event(event(&format!(r#","container":"{id}""#)).as_bytes()).unwrap();
        assert_eq!(with.container.as_deref(), Some(id.as_str()));
        assert_eq!(decode_event(event("").as_bytes()).unwrap().container, None);
        let err = decode_event(event(r#","container":"3f4e8a1b2c3d""#).as_bytes()).unwrap_err();
        assert_eq!(err.field(), Some("container"), "{err}");
        let payload = EventPayload {
            v: 1,
            agent: "a".into(),
            replica: "r".into(),
            instance: "1732540000000-0a1b2c3d".into(),
            state: State::Ready,
            reason: String::new(),
            ts_ms: 1,
            container: String::new(),
        };
        let json = serde_json::to_string(&payload).unwrap();
        assert!(!json.contains("container"), "left out when none: {json}");
    }
}
