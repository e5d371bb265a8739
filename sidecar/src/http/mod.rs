//! Read-only HTTP views of the snapshot: `/`, `/api/status`, `/api/history`, `/api/events`,
//! `/metrics`, `/healthz`. Every handler reads the latest `Arc<State>`; none can slow the writer.
//! The history is the one view not in the snapshot: its own task keeps it, and `/api/history`
//! and the page read it under a short lock.

pub mod api;
pub mod events;
pub mod metrics;
pub mod page;

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State as Extract;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use prometheus_client::registry::Registry;
use tokio::sync::watch;

use crate::state::State;

/// What the views read besides the snapshot (each absent when its outlet is off).
#[derive(Debug, Clone, Default)]
pub struct Extras {
    /// The history ([`crate::timeline`]).
    pub history: Option<crate::timeline::Shared>,
    /// Notification counts ([`crate::notify`]).
    pub notify: Option<Arc<crate::notify::Stats>>,
    /// The self-watch's verdict ([`crate::selfwatch`]).
    pub selfwatch: Option<Arc<crate::selfwatch::Status>>,
    /// Each container's healthcheck settings and the cost of one check ([`crate::advice`]).
    pub advice: Option<(crate::advice::Checks, std::time::Duration)>,
}

impl Extras {
    /// The advice for snapshot `s`, when a history and the checks' settings are kept.
    fn advice(&self, s: &State) -> Option<crate::advice::Advice> {
        let (checks, cost) = self.advice.as_ref()?;
        let history = self.history.as_ref()?.lock().ok()?;
        let checks = checks.lock().ok()?;
        Some(crate::advice::advise(s, &history, &checks, *cost))
    }
}

#[derive(Clone)]
struct App {
    snapshots: watch::Receiver<Arc<State>>,
    extras: Extras,
    registry: Arc<Registry>,
    status: Arc<Rendered>,
    openmetrics: Arc<Rendered>,
    classic: Arc<Rendered>,
}

/// The last body one view rendered, with the snapshot it came from. Requests against an unchanged
/// snapshot share one rendering: at 10,000 agents `/api/status` took 18 ms of CPU and `/metrics`
/// 33 ms per request, so a dashboard and Prometheus polling together queued behind each other.
/// Holding the snapshot's `Arc` makes the pointer comparison sound (it cannot be freed and
/// reused while cached).
#[derive(Default)]
struct Rendered(tokio::sync::Mutex<Option<(Arc<State>, Bytes)>>);

impl Rendered {
    async fn body<E>(
        &self,
        state: Arc<State>,
        render: impl FnOnce(&State) -> Result<String, E>,
    ) -> Result<Bytes, E> {
        let mut cached = self.0.lock().await;
        if let Some((of, body)) = cached.as_ref()
            && Arc::ptr_eq(of, &state)
        {
            return Ok(body.clone());
        }
        let body = Bytes::from(render(&state)?);
        *cached = Some((state, body.clone()));
        Ok(body)
    }
}

/// The router: GET only.
pub fn router(snapshots: watch::Receiver<Arc<State>>) -> Router {
    router_with(snapshots, Extras::default())
}

/// The router with the outlets' views.
pub fn router_with(snapshots: watch::Receiver<Arc<State>>, extras: Extras) -> Router {
    let registry = Arc::new(metrics::registry_with(
        snapshots.clone(),
        extras.notify.clone(),
        extras.selfwatch.clone(),
    ));
    Router::new()
        .route("/", get(page_handler))
        .route("/api/status", get(status_handler))
        .route("/api/history", get(history_handler))
        .route("/api/advice", get(advice_handler))
        .route("/api/events", get(events_handler))
        .route("/metrics", get(metrics_handler))
        .route("/healthz", get(healthz_handler))
        .with_state(App {
            snapshots,
            extras,
            registry,
            status: Arc::default(),
            openmetrics: Arc::default(),
            classic: Arc::default(),
        })
}

/// Serves `router` on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    snapshots: watch::Receiver<Arc<State>>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_with(listener, snapshots, Extras::default(), shutdown).await
}

/// Serves [`router_with`] on `listener` until `shutdown` resolves.
pub async fn serve_with(
    listener: tokio::net::TcpListener,
    snapshots: watch::Receiver<Arc<State>>,
    extras: Extras,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router_with(snapshots, extras))
        .with_graceful_shutdown(shutdown)
        .await
}

fn latest(app: &App) -> Arc<State> {
    app.snapshots.borrow().clone()
}

async fn page_handler(Extract(app): Extract<App>) -> Response {
    let state = latest(&app);
    let status = api::Status::of(&state);
    let advice = app.extras.advice(&state);
    let html = match app.extras.history.as_ref().and_then(|h| h.lock().ok()) {
        Some(history) => page::render_with(&status, Some(&history), advice.as_ref()),
        None => page::render(&status),
    };
    ([(header::CACHE_CONTROL, "no-store")], Html(html)).into_response()
}

/// A JSON body, never cached; or a 500 saying which document could not be encoded.
fn json_response<B: IntoResponse, E>(body: Result<B, E>, what: &str) -> Response {
    match body {
        Ok(json) => (
            [
                (header::CACHE_CONTROL, "no-store"),
                (header::CONTENT_TYPE, "application/json"),
            ],
            json,
        )
            .into_response(),
        Err(_) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("encoding the {what} failed"),
        )
            .into_response(),
    }
}

async fn status_handler(Extract(app): Extract<App>) -> Response {
    let body = app
        .status
        .body(latest(&app), |s| serde_json::to_string(&api::Status::of(s)))
        .await;
    json_response(body, "status")
}

async fn history_handler(Extract(app): Extract<App>) -> Response {
    let Some(history) = &app.extras.history else {
        return (StatusCode::NOT_FOUND, "no history is kept\n").into_response();
    };
    let state = latest(&app);
    let body = match history.lock() {
        Ok(h) => serde_json::to_string(&api::History::of(&h, &state)),
        Err(_) => {
            return (StatusCode::INTERNAL_SERVER_ERROR, "history unavailable\n").into_response();
        }
    };
    json_response(body, "history")
}

async fn advice_handler(Extract(app): Extract<App>) -> Response {
    let Some(advice) = app.extras.advice(&latest(&app)) else {
        return (
            StatusCode::NOT_FOUND,
            "no advice: it needs Docker and the history\n",
        )
            .into_response();
    };
    json_response(serde_json::to_string(&advice), "advice")
}

async fn events_handler(Extract(app): Extract<App>) -> Response {
    events::stream(app.snapshots.clone()).into_response()
}

/// OpenMetrics when the client asks for it (Prometheus does), else the classic text format.
async fn metrics_handler(Extract(app): Extract<App>, headers: HeaderMap) -> Response {
    let openmetrics = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("application/openmetrics-text"));
    // The collector reads the latest snapshot itself; the one taken here only keys the cache
    // (a scrape racing a new snapshot renders the newer one and caches it under the older key,
    // which the next request replaces).
    let state = latest(&app);
    let registry = &app.registry;
    let (cache, content_type) = if openmetrics {
        (&app.openmetrics, metrics::OPENMETRICS)
    } else {
        (&app.classic, metrics::PROMETHEUS_TEXT)
    };
    let body = cache
        .body(state, |_| {
            let text = metrics::encode(registry)?;
            Ok::<_, std::fmt::Error>(if openmetrics {
                text
            } else {
                metrics::to_classic_text(&text)
            })
        })
        .await;
    match body {
        Ok(text) => ([(header::CONTENT_TYPE, content_type)], text).into_response(),
        Err(_) => (StatusCode::INTERNAL_SERVER_ERROR, "encoding metrics failed").into_response(),
    }
}

/// Healthy while the writer lives (its sender open); an unknown source is reported, not a
/// failure of the sidecar.
async fn healthz_handler(Extract(app): Extract<App>) -> Response {
    match app.snapshots.has_changed() {
        Ok(_) => (
            StatusCode::OK,
            format!("ok generation {}\n", latest(&app).generation),
        )
            .into_response(),
        Err(_) => (StatusCode::SERVICE_UNAVAILABLE, "writer stopped\n").into_response(),
    }
}
