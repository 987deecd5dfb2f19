//! The HTTP endpoints: metrics, the process list and health (the page at `/` is `page`'s).

use std::sync::Arc;

use axum::{
    extract::State,
    http::{header, StatusCode},
    response::{IntoResponse, Response},
    routing::get,
    Router,
};

use crate::scrape::Reader;

/// Handlers read published snapshots (`scrape::Reader`); none takes a lock a refresh holds.
pub type Shared = Arc<Reader>;

const TEXT_FORMAT: &str = "text/plain; version=0.0.4; charset=utf-8";

pub fn router(reader: Shared, telemetry_path: &str) -> Router {
    Router::new()
        .route(telemetry_path, get(metrics))
        .route("/api/v1/processes", get(processes))
        .route("/healthz", get(|| async { "ok\n" }))
        .with_state(reader)
}

/// Runs `f` on the blocking pool: it reads files and may wait (a bounded time) for a
/// snapshot, and must not hold up the thread that accepts connections and answers /healthz.
async fn blocking(f: impl FnOnce() -> Response + Send + 'static) -> Response {
    match tokio::task::spawn_blocking(f).await {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(error = %e, "request handler failed");
            (StatusCode::INTERNAL_SERVER_ERROR, "internal error\n").into_response()
        }
    }
}

async fn metrics(State(reader): State<Shared>) -> Response {
    blocking(move || match reader.exposition() {
        Ok(body) => ([(header::CONTENT_TYPE, TEXT_FORMAT)], body).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")).into_response(),
    })
    .await
}

async fn processes(State(reader): State<Shared>) -> Response {
    blocking(
        move || match reader.process_list().map(|l| serde_json::to_vec(&l)) {
            None => (
                StatusCode::SERVICE_UNAVAILABLE,
                "the process list is not ready: no refresh ended in time\n",
            )
                .into_response(),
            Some(Ok(body)) => ([(header::CONTENT_TYPE, "application/json")], body).into_response(),
            Some(Err(e)) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("encoding the process list: {e}\n"),
            )
                .into_response(),
        },
    )
    .await
}
