//! The HTTP endpoints: metrics, the process list, health, and a landing page.

use std::sync::{Arc, Mutex};

use axum::{
    extract::State,
    http::{header, StatusCode},
    response::{Html, IntoResponse, Response},
    routing::get,
    Json, Router,
};

use crate::{api::processes::ProcessList, core::Core};

pub type Shared = Arc<Mutex<Core>>;

const TEXT_FORMAT: &str = "text/plain; version=0.0.4; charset=utf-8";

pub fn router(core: Shared, telemetry_path: &str) -> Router {
    let landing = format!(
        "<html><head><title>monitor</title></head><body><h1>monitor</h1><ul>\
         <li><a href=\"{telemetry_path}\">{telemetry_path}</a>: Prometheus metrics</li>\
         <li><a href=\"/api/v1/processes\">/api/v1/processes</a>: live processes (JSON)</li>\
         <li><a href=\"/api/v1/alerts\">/api/v1/alerts</a>: alerts (JSON)</li>\
         <li><a href=\"/healthz\">/healthz</a></li></ul></body></html>"
    );
    Router::new()
        .route(telemetry_path, get(metrics))
        .route("/api/v1/processes", get(processes))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/", get(move || async move { Html(landing) }))
        .with_state(core)
}

pub fn lock(core: &Shared) -> std::sync::MutexGuard<'_, Core> {
    // A panic while holding the lock leaves figures that are at worst one refresh stale;
    // serving them beats failing every request from then on.
    core.lock().unwrap_or_else(|p| p.into_inner())
}

async fn metrics(State(core): State<Shared>) -> Response {
    let families = lock(&core).gather();
    let mut body = String::new();
    match prometheus::TextEncoder::new().encode_utf8(&families, &mut body) {
        Ok(()) => ([(header::CONTENT_TYPE, TEXT_FORMAT)], body).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "encoding metrics");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("encoding metrics: {e}\n"),
            )
                .into_response()
        }
    }
}

async fn processes(State(core): State<Shared>) -> Json<ProcessList> {
    // Encoded once the lock is released.
    let list = lock(&core).process_list();
    Json(list)
}
