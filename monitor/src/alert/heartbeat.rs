//! The dead man's switch: a request to a configured URL every interval while the daemon
//! runs. The receiving service alerts when the pings stop, which is how a host that is down
//! (or a daemon that died) gets noticed.

use std::sync::{
    atomic::{AtomicU64, Ordering},
    Arc,
};

use prometheus::proto::{MetricFamily, MetricType};

use super::config::Heartbeat;
use crate::metrics::{counter, family};

pub const FAMILIES: &[&str] = &[
    "monitor_heartbeat_pings_total",
    "monitor_heartbeat_failures_total",
];

#[derive(Default)]
pub struct Stats {
    pings: AtomicU64,
    failures: AtomicU64,
}

impl Stats {
    pub fn families(&self, out: &mut Vec<MetricFamily>) {
        out.push(family(
            "monitor_heartbeat_pings_total",
            "Heartbeat requests the heartbeat URL accepted.",
            MetricType::COUNTER,
            vec![counter(&[], self.pings.load(Ordering::Relaxed) as f64)],
        ));
        out.push(family(
            "monitor_heartbeat_failures_total",
            "Heartbeat requests that failed (error status, timeout, no connection).",
            MetricType::COUNTER,
            vec![counter(&[], self.failures.load(Ordering::Relaxed) as f64)],
        ));
    }
}

pub fn spawn(h: Heartbeat, stats: Arc<Stats>) -> anyhow::Result<()> {
    std::thread::Builder::new()
        .name("alert-heartbeat".to_string())
        .spawn(move || loop {
            let shown = super::notify::redact(&h.url);
            let start = std::time::Instant::now();
            match ureq::request(&h.method, &h.url)
                .timeout(h.timeout.0)
                .send_string("")
            {
                Ok(r) => {
                    let _ = r.into_string();
                    stats.pings.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(url = %shown, "heartbeat sent");
                }
                Err(e) => {
                    stats.failures.fetch_add(1, Ordering::Relaxed);
                    let why = match e {
                        ureq::Error::Status(code, _) => format!("HTTP {code}"),
                        ureq::Error::Transport(t) => t.kind().to_string(),
                    };
                    tracing::warn!(url = %shown, error = %why, "heartbeat failed");
                }
            }
            std::thread::sleep(h.interval.0.saturating_sub(start.elapsed()));
        })
        .map(|_| ())
        .map_err(|e| anyhow::anyhow!("starting the heartbeat: {e}"))
}
