//! The web config's `rate_limit`: a token bucket over all requests (one token per
//! `interval`, at most `burst` saved up), answering 429 when it is empty, as the toolkit's
//! limiter does.

use std::{
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use axum::{
    body::Body,
    extract::{Request, State},
    http::StatusCode,
    middleware::Next,
    response::{IntoResponse as _, Response},
};

use super::metrics::WebMetrics;

#[derive(Clone)]
pub struct RateLimit {
    bucket: Arc<Mutex<(f64, Instant)>>,
    per_token: Duration,
    burst: f64,
    metrics: Arc<WebMetrics>,
}

impl RateLimit {
    pub fn new(per_token: Duration, burst: u32, metrics: Arc<WebMetrics>) -> Self {
        let burst = f64::from(burst);
        Self {
            bucket: Arc::new(Mutex::new((burst, Instant::now()))),
            per_token,
            burst,
            metrics,
        }
    }

    fn take(&self, now: Instant) -> bool {
        let mut b = self.bucket.lock().unwrap_or_else(|p| p.into_inner());
        let earned =
            now.saturating_duration_since(b.1).as_secs_f64() / self.per_token.as_secs_f64();
        b.0 = (b.0 + earned).min(self.burst);
        b.1 = now;
        if b.0 >= 1.0 {
            b.0 -= 1.0;
            true
        } else {
            false
        }
    }
}

pub async fn layer(State(limit): State<RateLimit>, req: Request, next: Next) -> Response<Body> {
    if limit.take(Instant::now()) {
        next.run(req).await
    } else {
        limit.metrics.rate_limited();
        (StatusCode::TOO_MANY_REQUESTS, "Too Many Requests\n").into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_one_per_interval() {
        let l = RateLimit::new(Duration::from_secs(1), 2, Arc::default());
        let t = Instant::now();
        assert!(l.take(t));
        assert!(l.take(t));
        assert!(!l.take(t));
        assert!(!l.take(t + Duration::from_millis(500)));
        assert!(l.take(t + Duration::from_millis(1000)));
        assert!(!l.take(t + Duration::from_millis(1000)));
        // Saved up to the burst, no more.
        let later = t + Duration::from_secs(60);
        assert!(l.take(later) && l.take(later) && !l.take(later));
        // A burst of 0 lets nothing through.
        let none = RateLimit::new(Duration::from_secs(1), 0, Arc::default());
        assert!(!none.take(t + Duration::from_secs(5)));
    }
}
