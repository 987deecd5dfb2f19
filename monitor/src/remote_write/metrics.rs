//! The remote write sender's own metrics, per endpoint, added to every scrape (and so sent
//! along with the rest).

use std::{
    sync::{atomic::Ordering, Arc},
    time::SystemTime,
};

use prometheus::proto::{MetricFamily, MetricType};

use super::{send::Counters, spool::Spool};
use crate::metrics::{counter, family, gauge};

pub const FAMILIES: &[&str] = &[
    "monitor_remote_write_samples_sent_total",
    "monitor_remote_write_samples_failed_total",
    "monitor_remote_write_samples_retried_total",
    "monitor_remote_write_samples_dropped_total",
    "monitor_remote_write_samples_pending",
    "monitor_remote_write_oldest_pending_sample_age_seconds",
    "monitor_remote_write_sent_bytes_total",
    "monitor_remote_write_failed_requests_total",
    "monitor_remote_write_spool_bytes",
    "monitor_remote_write_spool_capacity_bytes",
];

/// What one endpoint's metrics read.
pub struct Endpoint {
    pub name: String,
    pub spool: Arc<Spool>,
    pub counters: Arc<Counters>,
}

pub fn families(endpoints: &[Endpoint], out: &mut Vec<MetricFamily>) {
    let now_ms = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    let mut rows: Vec<[f64; 10]> = Vec::new();
    for e in endpoints {
        let s = e.spool.stats();
        let c = &e.counters;
        let get = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed) as f64;
        let age = s
            .oldest_ms
            .map_or(0.0, |t| (now_ms - t).max(0) as f64 / 1000.0);
        rows.push([
            get(&c.sent),
            get(&c.failed),
            get(&c.retried),
            (s.dropped_samples + c.unwritten.load(Ordering::Relaxed)) as f64,
            s.samples as f64,
            age,
            get(&c.sent_bytes),
            get(&c.requests_failed),
            s.bytes as f64,
            e.spool.max_bytes() as f64,
        ]);
    }
    let help: [(&str, MetricType); 10] = [
        ("Samples the endpoint took.", MetricType::COUNTER),
        (
            "Samples the endpoint refused with an answer that is not retried (4xx other than \
             429): deleted from the spool.",
            MetricType::COUNTER,
        ),
        (
            "Samples sent again after a failure that is retried (5xx, 429, no connection), \
             once per try.",
            MetricType::COUNTER,
        ),
        (
            "Samples never sent: the oldest dropped when the spool was full (or one could not \
             be written to it).",
            MetricType::COUNTER,
        ),
        (
            "Samples in the spool waiting to be sent.",
            MetricType::GAUGE,
        ),
        (
            "Age of the oldest sample waiting in the spool (0 when none waits).",
            MetricType::GAUGE,
        ),
        (
            "Request bytes (compressed) the endpoint took.",
            MetricType::COUNTER,
        ),
        ("Requests that failed, retried or not.", MetricType::COUNTER),
        ("Bytes the spool holds.", MetricType::GAUGE),
        (
            "Bytes the spool may hold (--remote-write.spool-size); past it the oldest samples \
             are dropped.",
            MetricType::GAUGE,
        ),
    ];
    for (i, (name, (help, ty))) in FAMILIES.iter().zip(help).enumerate() {
        let metrics = endpoints
            .iter()
            .zip(&rows)
            .map(|(e, row)| {
                let labels = [("endpoint", e.name.as_str())];
                if ty == MetricType::COUNTER {
                    counter(&labels, row[i])
                } else {
                    gauge(&labels, row[i])
                }
            })
            .collect();
        out.push(family(name, help, ty, metrics));
    }
}
