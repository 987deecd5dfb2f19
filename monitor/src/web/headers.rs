//! Responses get the web config's `http_server_config.headers` (every response, the 401s
//! and 429s included), and requests larger than `--web.max-request-bytes` get 413 before
//! their body is read.

use std::sync::Arc;

use axum::{
    body::Body,
    extract::{Request, State},
    http::{header, HeaderName, HeaderValue, StatusCode},
    middleware::Next,
    response::{IntoResponse as _, Response},
};

pub async fn add(
    State(headers): State<Arc<Vec<(HeaderName, HeaderValue)>>>,
    req: Request,
    next: Next,
) -> Response<Body> {
    let mut resp = next.run(req).await;
    for (k, v) in headers.iter() {
        resp.headers_mut().insert(k.clone(), v.clone());
    }
    resp
}

/// Refuses a declared length over the limit; a body without one (chunked) is cut at the
/// limit by axum's `DefaultBodyLimit` where the handlers read it.
pub async fn body_limit(State(max): State<u64>, req: Request, next: Next) -> Response<Body> {
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > max) {
        return (
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the request body is over the {max} byte limit (--web.max-request-bytes)\n"),
        )
            .into_response();
    }
    next.run(req).await
}
