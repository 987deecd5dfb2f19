//! The HTTP server's own figures: open connections, connections refused at the cap, and
//! connections closed by a timeout, for the scrape.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use prometheus::proto::{MetricFamily, MetricType};

use crate::{
    collectors::{Host, ScrapeCollector},
    metrics::{counter, family, gauge},
};

/// The families this module exports (for the alert rules' catalogue).
pub const FAMILIES: &[&str] = &[
    "monitor_http_connections_open",
    "monitor_http_connections_max",
    "monitor_http_connections_refused_total",
    "monitor_http_connections_timed_out_total",
    "monitor_http_tls_handshake_failures_total",
    "monitor_http_requests_rate_limited_total",
    "monitor_tls_certificate_reloads_total",
];

/// Why a connection was closed by the server before the client closed it.
#[derive(Clone, Copy)]
pub enum Timeout {
    TlsHandshake,
    Header,
    Idle,
}

const TIMEOUTS: [(Timeout, &str); 3] = [
    (Timeout::TlsHandshake, "tls_handshake"),
    (Timeout::Header, "header"),
    (Timeout::Idle, "idle"),
];

#[derive(Default)]
pub struct WebMetrics {
    pub max: u64,
    open: AtomicU64,
    refused: AtomicU64,
    timed_out: [AtomicU64; 3],
    handshake_failures: AtomicU64,
    rate_limited: AtomicU64,
    reloads: [AtomicU64; 2],
}

impl WebMetrics {
    pub fn new(max: u64) -> Self {
        Self {
            max,
            ..Self::default()
        }
    }

    pub fn opened(&self) {
        self.open.fetch_add(1, Relaxed);
    }

    pub fn closed(&self) {
        self.open.fetch_sub(1, Relaxed);
    }

    /// Counts a refusal; the count so far.
    pub fn refused(&self) -> u64 {
        self.refused.fetch_add(1, Relaxed) + 1
    }

    pub fn timed_out(&self, t: Timeout) {
        self.timed_out[t as usize].fetch_add(1, Relaxed);
    }

    pub fn handshake_failed(&self) {
        self.handshake_failures.fetch_add(1, Relaxed);
    }

    pub fn rate_limited(&self) {
        self.rate_limited.fetch_add(1, Relaxed);
    }

    pub fn reloaded(&self, ok: bool) {
        self.reloads[usize::from(!ok)].fetch_add(1, Relaxed);
    }

    fn families(&self) -> Vec<MetricFamily> {
        let n = |a: &AtomicU64| a.load(Relaxed) as f64;
        vec![
            family(
                FAMILIES[0],
                "HTTP connections open now (TLS handshakes in progress included).",
                MetricType::GAUGE,
                vec![gauge(&[], n(&self.open))],
            ),
            family(
                FAMILIES[1],
                "The cap on open HTTP connections (--web.max-connections).",
                MetricType::GAUGE,
                vec![gauge(&[], self.max as f64)],
            ),
            family(
                FAMILIES[2],
                "HTTP connections closed as soon as accepted because --web.max-connections \
                 were open.",
                MetricType::COUNTER,
                vec![counter(&[], n(&self.refused))],
            ),
            family(
                FAMILIES[3],
                "HTTP connections the server closed on a timeout, by phase (tls_handshake, \
                 header: a request head not received in --web.header-timeout; idle: no \
                 request in --web.idle-timeout).",
                MetricType::COUNTER,
                TIMEOUTS
                    .iter()
                    .map(|(t, name)| counter(&[("phase", name)], n(&self.timed_out[*t as usize])))
                    .collect(),
            ),
            family(
                FAMILIES[4],
                "TLS handshakes that failed (no or an untrusted client certificate, no \
                 common version or cipher suite, not TLS).",
                MetricType::COUNTER,
                vec![counter(&[], n(&self.handshake_failures))],
            ),
            family(
                FAMILIES[5],
                "Requests answered 429 by the web config's rate_limit.",
                MetricType::COUNTER,
                vec![counter(&[], n(&self.rate_limited))],
            ),
            family(
                FAMILIES[6],
                "Reloads of the TLS certificate, key and client CA files after they changed, \
                 by result (failure: the old ones are still served).",
                MetricType::COUNTER,
                vec![
                    counter(&[("result", "success")], n(&self.reloads[0])),
                    counter(&[("result", "failure")], n(&self.reloads[1])),
                ],
            ),
        ]
    }
}

/// Exports the server's figures with the other collectors' families.
pub struct WebCollector(pub std::sync::Arc<WebMetrics>);

impl ScrapeCollector for WebCollector {
    fn name(&self) -> &'static str {
        "web"
    }

    fn collect(&mut self, _host: &Host<'_>, out: &mut Vec<MetricFamily>) -> anyhow::Result<()> {
        out.extend(self.0.families());
        Ok(())
    }
}
