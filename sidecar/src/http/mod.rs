//! Read-only HTTP views of the snapshot: `/`, `/api/status`, `/api/events`, `/metrics`,
//! `/healthz`. Every handler reads the latest `Arc<State>`; none can slow the writer.

pub mod api;
pub mod events;
pub mod metrics;
pub mod page;

use std::sync::Arc;

use axum::Router;
use axum::extract::State as Extract;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Json, Response};
use axum::routing::get;
use prometheus_client::registry::Registry;
use tokio::sync::watch;

use crate::state::State;

#[derive(Clone)]
struct App {
    snapshots: watch::Receiver<Arc<State>>,
    registry: Arc<Registry>,
}

/// The router: GET only.
pub fn router(snapshots: watch::Receiver<Arc<State>>) -> Router {
    let registry = Arc::new(metrics::registry(snapshots.clone()));
    Router::new()
        .route("/", get(page_handler))
        .route("/api/status", get(status_handler))
        .route("/api/events", get(events_handler))
        .route("/metrics", get(metrics_handler))
        .route("/healthz", get(healthz_handler))
        .with_state(App {
            snapshots,
            registry,
        })
}

/// Serves `router` on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    snapshots: watch::Receiver<Arc<State>>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(snapshots))
        .with_graceful_shutdown(shutdown)
        .await
}

fn latest(app: &App) -> Arc<State> {
    app.snapshots.borrow().clone()
}

async fn page_handler(Extract(app): Extract<App>) -> Response {
    let html = page::render(&api::Status::of(&latest(&app)));
    ([(header::CACHE_CONTROL, "no-store")], Html(html)).into_response()
}

async fn status_handler(Extract(app): Extract<App>) -> Response {
    (
        [(header::CACHE_CONTROL, "no-store")],
        Json(api::Status::of(&latest(&app))),
    )
        .into_response()
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
    match metrics::encode(&app.registry) {
        Ok(text) if openmetrics => {
            ([(header::CONTENT_TYPE, metrics::OPENMETRICS)], text).into_response()
        }
        Ok(text) => (
            [(header::CONTENT_TYPE, metrics::PROMETHEUS_TEXT)],
            metrics::to_classic_text(&text),
        )
            .into_response(),
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
