//! Watched services: how many live processes match each configured service (name, exe,
//! cmdline regular expressions, all that are given), and how often a matching process
//! started. Read from the process table at each refresh, so a process that starts and exits
//! between two refreshes is not seen. Alerts come from generated rules over these metrics.

use std::{
    collections::{HashSet, VecDeque},
    sync::Mutex,
    time::Instant,
};

use prometheus::proto::{MetricFamily, MetricType};

use super::config::Service;
use crate::{
    metrics::{counter, family, gauge},
    process::table::ProcessTable,
};

pub const FAMILIES: &[&str] = &[
    "monitor_service_processes",
    "monitor_service_starts_total",
    "monitor_service_recent_starts",
];

struct Watched {
    service: Service,
    /// `None` until the first look: processes running at start are not starts.
    pids: Option<HashSet<u32>>,
    starts: u64,
    recent: VecDeque<Instant>,
}

pub struct Services(Mutex<Vec<Watched>>);

impl Services {
    pub fn new(services: &[Service]) -> Self {
        Self(Mutex::new(
            services
                .iter()
                .map(|s| Watched {
                    service: s.clone(),
                    pids: None,
                    starts: 0,
                    recent: VecDeque::new(),
                })
                .collect(),
        ))
    }

    pub fn families(&self, table: &ProcessTable, out: &mut Vec<MetricFamily>) {
        let mut watched = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if watched.is_empty() {
            return;
        }
        let now = Instant::now();
        let (mut procs, mut starts, mut recent) = (Vec::new(), Vec::new(), Vec::new());
        for w in watched.iter_mut() {
            let s = &w.service;
            let matching: HashSet<u32> = table
                .processes()
                .map(|p| &p.identity)
                .filter(|i| {
                    s.comm.as_ref().is_none_or(|r| r.0.is_match(&i.comm))
                        && s.exe.as_ref().is_none_or(|r| r.0.is_match(&i.exe))
                        && s.cmdline.as_ref().is_none_or(|r| r.0.is_match(&i.cmdline))
                })
                .map(|i| i.pid)
                .collect();
            if let Some(before) = &w.pids {
                for _ in matching.difference(before) {
                    w.starts += 1;
                    w.recent.push_back(now);
                }
            }
            while w.recent.front().is_some_and(|t| now - *t > s.window.0) {
                w.recent.pop_front();
            }
            let name = [("service", s.name.as_str())];
            procs.push(gauge(&name, matching.len() as f64));
            starts.push(counter(&name, w.starts as f64));
            recent.push(gauge(&name, w.recent.len() as f64));
            w.pids = Some(matching);
        }
        out.push(family(
            "monitor_service_processes",
            "Live processes matching a watched service.",
            MetricType::GAUGE,
            procs,
        ));
        out.push(family(
            "monitor_service_starts_total",
            "Processes of a watched service that started while the daemon ran.",
            MetricType::COUNTER,
            starts,
        ));
        out.push(family(
            "monitor_service_recent_starts",
            "Processes of a watched service that started within its configured window.",
            MetricType::GAUGE,
            recent,
        ));
    }
}

/// The rules that alert on watched services, as rule-file text.
pub fn rules(services: &[Service]) -> String {
    let mut out = String::from("groups:\n  - name: services\n    rules:\n");
    for s in services {
        let name = serde_json::to_string(&s.name).unwrap_or_default();
        out.push_str(&format!(
            "      - alert: ServiceDown\n        expr: 'monitor_service_processes{{service={name}}} == 0'\n        for: {for_}ms\n        labels: {{severity: {sev}}}\n        annotations:\n          summary: 'service {{{{ $labels.service }}}} is not running'\n          description: 'No process matches the watched service {{{{ $labels.service }}}}.'\n      - alert: ServiceRestarting\n        expr: 'monitor_service_recent_starts{{service={name}}} > {max}'\n        labels: {{severity: {sev}}}\n        annotations:\n          summary: 'service {{{{ $labels.service }}}} started {{{{ $value }}}} times within {window}'\n          description: 'Processes of {{{{ $labels.service }}}} keep starting: it may be crashing and being restarted.'\n",
            for_ = s.for_.0.as_millis(),
            sev = s.severity,
            max = s.max_restarts,
            window = humantime::format_duration(s.window.0),
        ));
    }
    out
}
