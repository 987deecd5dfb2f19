//! Endpoint probes: an HTTP request or a TCP connection to each configured target every
//! interval, for services that export no metrics of their own. Up/down, the HTTP status,
//! the response time (histogram) and failures are metrics; generated rules alert on a
//! probe that is down.

use std::{
    collections::BTreeMap,
    net::{TcpStream, ToSocketAddrs as _},
    sync::{Arc, Mutex},
    time::Instant,
};

use prometheus::proto::{MetricFamily, MetricType};

use super::config::Probe;
use crate::metrics::{counter, family, gauge, histogram};

pub const FAMILIES: &[&str] = &[
    "monitor_probe_up",
    "monitor_probe_http_status_code",
    "monitor_probe_duration_seconds",
    "monitor_probe_failures_total",
];

/// Upper bounds of the response-time histogram, in seconds.
const BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

#[derive(Default, Clone)]
struct Result_ {
    /// None until the first check.
    up: Option<bool>,
    status: Option<u16>,
    failures: u64,
    /// Per-bucket counts, the last one past the largest bound.
    buckets: Vec<u64>,
    sum: f64,
}

#[derive(Clone, Default)]
pub struct Probes(Arc<Mutex<BTreeMap<String, Result_>>>);

impl Probes {
    fn record(&self, name: &str, up: bool, status: Option<u16>, seconds: f64) {
        let mut all = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let r = all.entry(name.to_string()).or_default();
        if r.buckets.is_empty() {
            r.buckets = vec![0; BUCKETS.len() + 1];
        }
        r.up = Some(up);
        r.status = status;
        if !up {
            r.failures += 1;
        }
        let i = BUCKETS
            .iter()
            .position(|b| seconds <= *b)
            .unwrap_or(BUCKETS.len());
        r.buckets[i] += 1;
        r.sum += seconds;
    }

    pub fn families(&self, out: &mut Vec<MetricFamily>) {
        let all = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if all.is_empty() {
            return;
        }
        let (mut up, mut status, mut dur, mut fail) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for (name, r) in all.iter() {
            let l = [("probe", name.as_str())];
            if let Some(u) = r.up {
                up.push(gauge(&l, f64::from(u8::from(u))));
            }
            if let Some(s) = r.status {
                status.push(gauge(&l, f64::from(s)));
            }
            let buckets: Vec<(Option<f64>, u64)> = BUCKETS
                .iter()
                .map(|b| Some(*b))
                .chain([None])
                .zip(r.buckets.iter().copied())
                .collect();
            dur.push(histogram(&l, &buckets, r.sum));
            fail.push(counter(&l, r.failures as f64));
        }
        out.push(family(
            "monitor_probe_up",
            "Whether the last check of the probe's target succeeded.",
            MetricType::GAUGE,
            up,
        ));
        out.push(family(
            "monitor_probe_http_status_code",
            "HTTP status of the last check (HTTP probes that got an answer).",
            MetricType::GAUGE,
            status,
        ));
        out.push(family(
            "monitor_probe_duration_seconds",
            "Time to the response (HTTP) or to the connection (TCP), failed checks included.",
            MetricType::HISTOGRAM,
            dur,
        ));
        out.push(family(
            "monitor_probe_failures_total",
            "Checks that failed: no connection, timeout, or an unexpected HTTP status.",
            MetricType::COUNTER,
            fail,
        ));
    }
}

fn check(p: &Probe) -> (bool, Option<u16>, Result<(), String>) {
    if let Some(h) = &p.http {
        let r = ureq::get(&h.url).timeout(p.timeout.0).call();
        let code = match r {
            Ok(r) => {
                let c = r.status();
                let _ = r.into_string();
                c
            }
            Err(ureq::Error::Status(c, _)) => c,
            Err(ureq::Error::Transport(t)) => return (false, None, Err(t.to_string())),
        };
        let ok = if h.expect_status.is_empty() {
            (200..400).contains(&code)
        } else {
            h.expect_status.contains(&code)
        };
        let why = if ok {
            Ok(())
        } else {
            Err(format!("HTTP {code}"))
        };
        return (ok, Some(code), why);
    }
    let Some(t) = &p.tcp else {
        return (false, None, Err("no target".to_string()));
    };
    let addr = match t.address.to_socket_addrs().map(|mut a| a.next()) {
        Ok(Some(a)) => a,
        Ok(None) => {
            return (
                false,
                None,
                Err(format!("{} resolves to nothing", t.address)),
            )
        }
        Err(e) => return (false, None, Err(format!("{}: {e}", t.address))),
    };
    match TcpStream::connect_timeout(&addr, p.timeout.0) {
        Ok(_) => (true, None, Ok(())),
        Err(e) => (false, None, Err(e.to_string())),
    }
}

pub fn spawn(p: Probe, probes: Probes) -> anyhow::Result<()> {
    let name = p.name.clone();
    std::thread::Builder::new()
        .name(format!("probe-{name}"))
        .spawn(move || loop {
            let start = Instant::now();
            let (up, status, why) = check(&p);
            let took = start.elapsed();
            if let Err(why) = why {
                tracing::debug!(probe = %p.name, error = %why, "probe failed");
            }
            probes.record(&p.name, up, status, took.as_secs_f64());
            std::thread::sleep(p.interval.0.saturating_sub(took));
        })
        .map(|_| ())
        .map_err(|e| anyhow::anyhow!("starting probe {name}: {e}"))
}

/// The rules that alert on probes, as rule-file text.
pub fn rules(probes: &[Probe]) -> String {
    let mut out = String::from("groups:\n  - name: probes\n    rules:\n");
    for p in probes {
        let name = serde_json::to_string(&p.name).unwrap_or_default();
        out.push_str(&format!(
            "      - alert: ProbeDown\n        expr: 'monitor_probe_up{{probe={name}}} == 0'\n        for: {for_}ms\n        labels: {{severity: {sev}}}\n        annotations:\n          summary: 'probe {{{{ $labels.probe }}}} is failing'\n          description: 'Checks of the target of probe {{{{ $labels.probe }}}} fail (no connection, timeout or an unexpected status).'\n",
            for_ = p.for_.0.as_millis(),
            sev = p.severity,
        ));
    }
    out
}
