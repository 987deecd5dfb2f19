//! The HTTP server: the exporter-toolkit web config (TLS with client certificates,
//! response headers, HTTP/2, rate limit, basic auth) and the limits that bound what
//! clients can hold (connections, timeouts, request sizes).

mod activity;
pub mod args;
mod auth;
mod client_auth;
pub mod config;
mod headers;
pub mod metrics;
mod rate_limit;
pub mod server;
mod tls;

use std::sync::Arc;

use axum::{extract::DefaultBodyLimit, middleware::from_fn_with_state, Router};

use self::{args::WebArgs, config::WebConfig, metrics::WebMetrics};

/// The server's settings and the layers the web config asks for, checked before the
/// daemon starts anything slow.
pub struct Web {
    pub settings: server::Settings,
    pub metrics: Arc<WebMetrics>,
    config: Option<WebConfig>,
    max_request_bytes: u64,
}

impl Web {
    pub fn load(args: &WebArgs) -> anyhow::Result<Self> {
        server::raise_fd_limit(args.max_connections);
        let metrics = Arc::new(WebMetrics::new(u64::from(args.max_connections)));
        let mut config = args.config.as_deref().map(WebConfig::load).transpose()?;
        let mut tls = None;
        if let Some(c) = config.as_mut() {
            if let Some(mut t) = c.tls.take() {
                if c.http2 {
                    t.offer_http2();
                }
                // The handshakes' copy; the check in `WebConfig::load` built a first one.
                let r = tls::Reloading::new(t, metrics.clone()).map_err(|e| {
                    anyhow::anyhow!(
                        "--web.config.file {}: tls_server_config.{e}",
                        c.path.display()
                    )
                })?;
                tls = Some(Arc::new(r));
            }
        }
        Ok(Self {
            settings: server::Settings {
                max_connections: args.max_connections,
                header_timeout: args.header_timeout,
                idle_timeout: args.idle_timeout,
                max_header_bytes: args.max_header_bytes,
                tls,
            },
            metrics,
            config,
            max_request_bytes: args.max_request_bytes,
        })
    }

    pub fn collector(&self) -> Box<metrics::WebCollector> {
        Box::new(metrics::WebCollector(self.metrics.clone()))
    }

    /// `app` behind basic auth, with the configured headers, the rate limit and the body
    /// limit (the outer layers run first).
    pub fn wrap(&self, mut app: Router) -> Router {
        if let Some(c) = &self.config {
            if let Some(auth) = auth::BasicAuth::new(c.users.clone()) {
                app = app.layer(from_fn_with_state(auth, auth::layer));
            }
            if !c.headers.is_empty() {
                app = app.layer(from_fn_with_state(
                    Arc::new(c.headers.clone()),
                    headers::add,
                ));
            }
            if let Some((per, burst)) = c.rate_limit {
                let l = rate_limit::RateLimit::new(per, burst, self.metrics.clone());
                app = app.layer(from_fn_with_state(l, rate_limit::layer));
            }
        }
        let max = usize::try_from(self.max_request_bytes).unwrap_or(usize::MAX);
        app.layer(DefaultBodyLimit::max(max))
            .layer(from_fn_with_state(
                self.max_request_bytes,
                headers::body_limit,
            ))
    }

    pub fn scheme(&self) -> &'static str {
        if self.settings.tls.is_some() {
            "https"
        } else {
            "http"
        }
    }
}
