//! The services view: per listening port and group, requests and errors per second and the
//! response latency's p50 and p99 over the last interval, from the daemon's `service`
//! families (`monitor_service_*`, inbound only) in its `/metrics`.

use std::collections::BTreeMap;

use super::{
    exposition::{label, number, sample},
    format,
    rates::{histogram_delta, quantile, rate},
    sample::{Histogram, ServicePoint},
};

const REQUESTS: &str = "monitor_service_requests_total{";
const ERRORS: &str = "monitor_service_errors_total{";
const BUCKET: &str = "monitor_service_response_latency_seconds_bucket{";

/// The inbound service figures of an exposition, by (port, group); empty when the daemon
/// has no `service` collector.
pub fn parse(text: &str) -> Vec<ServicePoint> {
    let mut by: BTreeMap<(String, String), ServicePoint> = BTreeMap::new();
    for line in text.lines() {
        let (labels, v, what) = if let Some((l, v)) = sample(line, REQUESTS) {
            (l, v, 0)
        } else if let Some((l, v)) = sample(line, ERRORS) {
            (l, v, 1)
        } else if let Some((l, v)) = sample(line, BUCKET) {
            (l, v, 2)
        } else {
            continue;
        };
        let (Some(port), Some(group)) = (label(labels, "port"), label(labels, "group")) else {
            continue;
        };
        let p = by
            .entry((port.to_string(), group.to_string()))
            .or_insert_with(|| ServicePoint {
                port: port.to_string(),
                group: group.to_string(),
                ..ServicePoint::default()
            });
        match what {
            0 => p.requests = v,
            1 => p.errors += v,
            _ => {
                if let Some(le) = label(labels, "le").and_then(number) {
                    p.latency.buckets.push((le, v));
                }
            }
        }
    }
    let mut out: Vec<ServicePoint> = by.into_values().collect();
    for p in &mut out {
        p.latency.buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    }
    out
}

/// One line of the view.
#[derive(Clone, Debug, PartialEq)]
pub struct ServiceRow {
    pub port: String,
    pub group: String,
    pub requests_per_second: Option<f64>,
    pub p50: Option<f64>,
    pub p99: Option<f64>,
    pub errors_per_second: Option<f64>,
}

/// The rows over the `seconds` between two samples' points, busiest first.
pub fn rows(prev: &[ServicePoint], cur: &[ServicePoint], seconds: f64) -> Vec<ServiceRow> {
    let mut out: Vec<ServiceRow> = cur
        .iter()
        .map(|c| {
            let p = prev.iter().find(|p| p.port == c.port && p.group == c.group);
            let latency: Option<Histogram> =
                p.map(|p| histogram_delta(Some(&p.latency), &c.latency));
            ServiceRow {
                port: c.port.clone(),
                group: c.group.clone(),
                requests_per_second: rate(p.map(|p| p.requests), Some(c.requests), seconds),
                p50: latency.as_ref().and_then(|h| quantile(0.5, h)),
                p99: latency.as_ref().and_then(|h| quantile(0.99, h)),
                errors_per_second: rate(p.map(|p| p.errors), Some(c.errors), seconds),
            }
        })
        .collect();
    out.sort_by(|a, b| {
        let r = |x: &ServiceRow| x.requests_per_second.unwrap_or(-1.0);
        r(b).total_cmp(&r(a))
            .then_with(|| (&a.port, &a.group).cmp(&(&b.port, &b.group)))
    });
    out
}

pub const HEADER: [&str; 6] = ["PORT", "GROUP", "REQ/s", "P50", "P99", "ERR/s"];
pub const WIDTHS: [u16; 6] = [6, 20, 9, 9, 9, 8];

/// The row's cells, in `HEADER` order.
pub fn cells(r: &ServiceRow) -> [String; 6] {
    let n = |v: Option<f64>| v.map_or_else(|| "-".to_string(), |v| format!("{v:.1}"));
    let t = |v: Option<f64>| v.map_or_else(|| "-".to_string(), format::duration);
    [
        r.port.clone(),
        r.group.clone(),
        n(r.requests_per_second),
        t(r.p50),
        t(r.p99),
        n(r.errors_per_second),
    ]
}

/// A per-second figure, for JSON.
pub fn json(r: &ServiceRow) -> serde_json::Value {
    serde_json::json!({
        "port": r.port,
        "group": r.group,
        "requests_per_second": r.requests_per_second,
        "latency_p50_seconds": r.p50,
        "latency_p99_seconds": r.p99,
        "errors_per_second": r.errors_per_second,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(requests: u64, fast: u64, slow: u64, errors: u64) -> String {
        format!(
            "monitor_service_requests_total{{port=\"80\",group=\"web\"}} {requests}\n\
             monitor_service_response_latency_seconds_bucket{{port=\"80\",group=\"web\",le=\"0.001\"}} {fast}\n\
             monitor_service_response_latency_seconds_bucket{{port=\"80\",group=\"web\",le=\"0.1\"}} {}\n\
             monitor_service_response_latency_seconds_bucket{{port=\"80\",group=\"web\",le=\"+Inf\"}} {}\n\
             monitor_service_errors_total{{port=\"80\",group=\"web\",kind=\"reset_sent\"}} {errors}\n\
             monitor_service_errors_total{{port=\"80\",group=\"web\",kind=\"unanswered\"}} 1\n\
             monitor_service_outbound_requests_total{{port=\"5432\",group=\"web\"}} 99\n",
            fast + slow,
            fast + slow
        )
    }

    #[test]
    fn rates_and_quantiles_over_the_interval() {
        let a = parse(&text(100, 100, 0, 0));
        assert_eq!(a.len(), 1, "outbound figures are not in the view");
        assert_eq!((a[0].requests, a[0].errors), (100.0, 1.0));
        // 20 more in 2 s: 10 fast, 10 slow; 4 resets.
        let b = parse(&text(120, 110, 10, 4));
        let r = rows(&a, &b, 2.0);
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].requests_per_second, Some(10.0));
        assert_eq!(r[0].errors_per_second, Some(2.0));
        let p50 = r[0].p50.unwrap();
        assert!((p50 - 0.001).abs() < 1e-9, "{p50}");
        assert!(r[0].p99.unwrap() > 0.09);
        // The first sample has no rates.
        assert_eq!(rows(&[], &b, 2.0)[0].requests_per_second, None);
        assert_eq!(cells(&rows(&[], &b, 2.0)[0])[2], "-");
    }
}
