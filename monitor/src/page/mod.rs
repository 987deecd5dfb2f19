//! The live page at `/`: the panel catalogue (`dashboard::catalogue`) drawn in the browser
//! from the daemon's own query API (`history::api`), refreshing every few seconds, with the
//! alerts first. Everything it loads is served from here (no outside request): its own small
//! HTML, JS and CSS, written in this folder, and uPlot, which the build fetches from the npm
//! registry (`build.rs`) and this module embeds.

use std::time::Duration;

use axum::{
    http::header,
    response::{Html, IntoResponse},
    routing::get,
    Router,
};
use serde_json::json;

const INDEX: &str = include_str!("index.html");
const JS: &str = include_str!("page.js");
const CSS: &str = include_str!("page.css");
const UPLOT_JS: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/uPlot.iife.min.js"));
const UPLOT_CSS: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/uPlot.min.css"));

/// What the page needs to know of this daemon besides the panels.
pub struct Settings {
    pub telemetry_path: String,
    pub interval: Duration,
    /// `None`: the query history is off, and the page says so.
    pub retention: Option<Duration>,
}

fn asset(kind: &'static str, body: impl IntoResponse) -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, kind),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
}

pub fn router(s: &Settings) -> Router {
    let catalogue = json!({
        "rows": crate::dashboard::catalogue::rows(),
        "interval_seconds": s.interval.as_secs_f64(),
        "retention_seconds": s.retention.map(|r| r.as_secs_f64()),
        "telemetry_path": s.telemetry_path,
        "version": env!("CARGO_PKG_VERSION"),
    })
    .to_string();
    Router::new()
        .route("/", get(|| async { Html(INDEX) }))
        .route(
            "/page/page.js",
            get(|| async { asset("text/javascript; charset=utf-8", JS) }),
        )
        .route(
            "/page/page.css",
            get(|| async { asset("text/css; charset=utf-8", CSS) }),
        )
        .route(
            "/page/uPlot.iife.min.js",
            get(|| async { asset("text/javascript; charset=utf-8", UPLOT_JS) }),
        )
        .route(
            "/page/uPlot.min.css",
            get(|| async { asset("text/css; charset=utf-8", UPLOT_CSS) }),
        )
        .route(
            "/page/catalogue.json",
            get(move || async move { asset("application/json", catalogue) }),
        )
}
