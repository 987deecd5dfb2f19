//! The HTTP access log: one JSON line per request with time, remote address, authenticated
//! user, method, path, status, response bytes, duration and user agent.

use std::{
    fs::OpenOptions,
    io::Write,
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::{Instant, SystemTime},
};

use anyhow::Context as _;
use axum::{
    body::{Body, HttpBody as _},
    extract::{ConnectInfo, Request, State},
    http::header,
    middleware::Next,
    response::Response,
};
use serde::Serialize;

/// The user a request authenticated as, set on the response by the authentication layer.
#[derive(Clone, Debug)]
pub struct AuthenticatedUser(pub String);

#[derive(Clone)]
pub struct AccessLog {
    out: Arc<Mutex<Box<dyn Write + Send>>>,
}

#[derive(Serialize)]
struct Line<'a> {
    time: String,
    remote_address: Option<String>,
    user: Option<&'a str>,
    method: &'a str,
    path: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    query: Option<&'a str>,
    status: u16,
    bytes: Option<u64>,
    duration_seconds: f64,
    user_agent: Option<&'a str>,
}

impl AccessLog {
    /// `stderr`, or a file appended to.
    pub fn open(target: &str) -> anyhow::Result<Self> {
        let out: Box<dyn Write + Send> = if target == "stderr" {
            Box::new(std::io::stderr())
        } else {
            Box::new(
                OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(target)
                    .with_context(|| format!("opening the access log {target}"))?,
            )
        };
        Ok(Self {
            out: Arc::new(Mutex::new(out)),
        })
    }

    fn write(&self, line: &Line<'_>) {
        let mut text = match serde_json::to_string(line) {
            Ok(t) => t,
            Err(e) => {
                tracing::error!(error = %e, "encoding an access log line");
                return;
            }
        };
        text.push('\n');
        let mut out = self.out.lock().unwrap_or_else(|p| p.into_inner());
        // One write per line, so lines from concurrent requests never interleave.
        if let Err(e) = out.write_all(text.as_bytes()) {
            tracing::error!(error = %e, "writing the access log");
        }
    }
}

/// The middleware: wraps every route, including unknown paths (404s).
pub async fn layer(State(log): State<AccessLog>, req: Request, next: Next) -> Response<Body> {
    let start = Instant::now();
    let time = humantime::format_rfc3339_micros(SystemTime::now()).to_string();
    let remote = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.to_string());
    let method = req.method().to_string();
    let path = req.uri().path().to_string();
    let query = req.uri().query().map(str::to_string);
    let agent = req
        .headers()
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let resp = next.run(req).await;
    let user = resp
        .extensions()
        .get::<AuthenticatedUser>()
        .map(|u| u.0.clone());
    log.write(&Line {
        time,
        remote_address: remote,
        user: user.as_deref(),
        method: &method,
        path: &path,
        query: query.as_deref(),
        status: resp.status().as_u16(),
        bytes: resp.body().size_hint().exact(),
        duration_seconds: start.elapsed().as_secs_f64(),
        user_agent: agent.as_deref(),
    });
    resp
}
