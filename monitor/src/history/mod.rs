//! The query history: the daemon's own series, sampled at every refresh interval for a short
//! while (`--web.history.retention`, bounded by `--web.history.max-bytes`), served through
//! Prometheus's query API (`api`) and evaluated by the alert rules' engine (`query`), so the
//! page at `/` (and Grafana, pointed at the daemon) can draw the panel catalogue without a
//! Prometheus server.

pub mod api;
pub mod query;
pub mod status;
pub mod store;
mod xor;

use std::{
    sync::{Arc, Mutex},
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use clap::Args;
use prometheus::proto::MetricType;

use crate::{
    metrics::{family, gauge},
    scrape::{Reader, Scrape},
    snapshot::Freshness,
};

/// The families the history exports about itself (for the alert rules' catalogue).
pub const FAMILIES: &[&str] = &[
    "monitor_history_series",
    "monitor_history_bytes",
    "monitor_history_span_seconds",
    "monitor_history_sample_duration_seconds",
];

#[derive(Args, Debug)]
pub struct HistoryArgs {
    /// How long the query history keeps the daemon's own series, sampled at every refresh
    /// interval, for the page at / and the query API (/api/v1/query...); 0s turns both off.
    #[arg(long = "web.history.retention", default_value = "15m", value_parser = parse_retention)]
    pub retention: Duration,

    /// Bound on the query history's memory: above it the oldest samples go first (so it
    /// holds less than the retention).
    #[arg(long = "web.history.max-bytes", default_value = "8MiB", value_parser = parse_size)]
    pub max_bytes: u64,
}

fn parse_retention(s: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(s).map_err(|e| format!("{s:?}: {e} (e.g. 15m, 1h)"))?;
    if d > Duration::from_secs(24 * 3600) {
        return Err(format!("{s:?} is above the 24h maximum"));
    }
    Ok(d)
}

fn parse_size(s: &str) -> Result<u64, String> {
    let b: bytesize::ByteSize = s
        .parse()
        .map_err(|e| format!("{s:?} is not a size ({e}), e.g. 8MiB"))?;
    if b.as_u64() < 64 * 1024 {
        return Err(format!("{s:?} is below the 64KiB minimum"));
    }
    Ok(b.as_u64())
}

/// The history's store, shared by the sampler and the API.
pub struct History {
    store: Arc<Mutex<Store>>,
    interval: Duration,
    /// Time the last sampling took, in seconds (its own metric).
    took: Arc<Mutex<f64>>,
}

use store::Store;

impl History {
    /// `None` when the retention is zero. `target`: the `job` and `instance` labels every
    /// series gets, as a Prometheus scrape would add them.
    pub fn new(
        args: &HistoryArgs,
        interval: Duration,
        target: Vec<(String, String)>,
    ) -> Option<Self> {
        if args.retention.is_zero() {
            return None;
        }
        Some(Self {
            store: Arc::new(Mutex::new(Store::new(
                args.retention.as_secs_f64(),
                usize::try_from(args.max_bytes).unwrap_or(usize::MAX),
                target,
            ))),
            interval,
            took: Arc::new(Mutex::new(0.0)),
        })
    }

    /// Adds the history's own figures to every scrape (and so to the history itself).
    pub fn add_source(&self, scrape: &mut Scrape) {
        let (store, took) = (self.store.clone(), self.took.clone());
        scrape.add_source(Box::new(move |out| {
            let (series, bytes, span) = {
                let s = store.lock().unwrap_or_else(|p| p.into_inner());
                (
                    s.series_count(),
                    s.bytes(),
                    s.span().map_or(0.0, |(a, b)| b - a),
                )
            };
            let took = *took.lock().unwrap_or_else(|p| p.into_inner());
            for (name, help, v) in [
                (
                    "monitor_history_series",
                    "Series the query history holds.",
                    series as f64,
                ),
                (
                    "monitor_history_bytes",
                    "Estimated memory the query history holds (bounded by \
                     --web.history.max-bytes).",
                    bytes as f64,
                ),
                (
                    "monitor_history_span_seconds",
                    "Time between the oldest and newest samples of the query history.",
                    span,
                ),
                (
                    "monitor_history_sample_duration_seconds",
                    "Time the query history's last sampling took.",
                    took,
                ),
            ] {
                out.push(family(name, help, MetricType::GAUGE, vec![gauge(&[], v)]));
            }
        }));
    }

    /// The query API, and the status and metadata a Prometheus data source asks for.
    pub fn router(&self, reader: Arc<Reader>) -> axum::Router {
        api::router(self.store.clone()).merge(status::router(reader))
    }

    /// Samples every series at every refresh interval, on a thread of its own, from the
    /// newest snapshot (it never asks for a refresh of its own while the refresher keeps to
    /// its interval) and the families read at the time.
    pub fn start(&self, reader: Arc<Reader>) -> anyhow::Result<()> {
        let (store, took, interval) = (self.store.clone(), self.took.clone(), self.interval);
        let freshness = Freshness {
            max_age: interval * 2,
            wait: interval,
        };
        std::thread::Builder::new()
            .name("history".into())
            .spawn(move || {
                let mut next = Instant::now();
                loop {
                    next += interval;
                    let begun = Instant::now();
                    // A scrape's reading of the scrape-time collectors, when one came
                    // within the interval, is as fresh as the history's sampling needs
                    // (one value per interval): reading them again would double their cost
                    // under a Prometheus scraping every second.
                    let (snap, now) = reader.parts(freshness, interval);
                    let time = SystemTime::now()
                        .duration_since(UNIX_EPOCH)
                        .map_or(0.0, |d| d.as_secs_f64());
                    store
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .push(time, snap.families.iter().chain(now.iter()));
                    drop(snap);
                    *took.lock().unwrap_or_else(|p| p.into_inner()) = begun.elapsed().as_secs_f64();
                    let now = Instant::now();
                    if next > now {
                        std::thread::sleep(next - now);
                    } else {
                        next = now;
                    }
                }
            })
            .map_err(|e| anyhow::anyhow!("starting the query history: {e}"))?;
        Ok(())
    }
}

/// The `instance` label the history gives its series: the listen address, or (listening on
/// every address) this host's name with the port.
pub fn instance(addr: std::net::SocketAddr) -> String {
    if addr.ip().is_unspecified() {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_string())
            .unwrap_or_else(|_| "localhost".into());
        format!("{host}:{}", addr.port())
    } else {
        addr.to_string()
    }
}
