//! The alerting side's own metrics, appended to every scrape.

use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex},
};

use prometheus::proto::{MetricFamily, MetricType};

use super::{queue::Queue, state::State};
use crate::metrics::{counter, family, gauge};

pub const FAMILIES: &[&str] = &[
    "monitor_alerts",
    "monitor_alert_rules",
    "monitor_alert_rule_evaluation_failures_total",
    "monitor_alert_history_points",
    "monitor_alert_notifications_total",
    "monitor_alert_notification_failures_total",
    "monitor_alert_queue_length",
    "monitor_alert_queue_dropped_total",
];

#[derive(Default)]
pub struct Counts {
    /// (alertname, severity, state) -> alerts, as of the last evaluation.
    pub alerts: BTreeMap<(String, String, State), u64>,
    pub rules: u64,
    pub history_points: u64,
    pub evaluation_failures: BTreeMap<String, u64>,
    pub notifications: BTreeMap<String, u64>,
    pub failures: BTreeMap<String, u64>,
}

#[derive(Clone, Default)]
pub struct Metrics {
    pub counts: Arc<Mutex<Counts>>,
    pub queue: Option<Arc<Queue>>,
    /// Every receiver, so each has its counters from the start.
    pub receivers: Vec<String>,
}

impl Metrics {
    pub fn lock(&self) -> std::sync::MutexGuard<'_, Counts> {
        self.counts.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn delivered(&self, receiver: &str) {
        *self
            .lock()
            .notifications
            .entry(receiver.to_string())
            .or_default() += 1;
    }

    pub fn failed(&self, receiver: &str) {
        *self
            .lock()
            .failures
            .entry(receiver.to_string())
            .or_default() += 1;
    }

    pub fn families(&self, out: &mut Vec<MetricFamily>) {
        let c = self.lock();
        let mut alerts = Vec::new();
        for ((name, severity, state), n) in &c.alerts {
            alerts.push(gauge(
                &[
                    ("alertname", name),
                    ("severity", severity),
                    ("state", state.as_str()),
                ],
                *n as f64,
            ));
        }
        out.push(family(
            "monitor_alerts",
            "Alerts by rule, severity and state (pending, firing, resolved in the last 15 minutes).",
            MetricType::GAUGE,
            alerts,
        ));
        out.push(family(
            "monitor_alert_rules",
            "Alert rules loaded.",
            MetricType::GAUGE,
            vec![gauge(&[], c.rules as f64)],
        ));
        out.push(family(
            "monitor_alert_history_points",
            "Samples the rule engine keeps for windowed functions (rate, increase...).",
            MetricType::GAUGE,
            vec![gauge(&[], c.history_points as f64)],
        ));
        out.push(family(
            "monitor_alert_rule_evaluation_failures_total",
            "Evaluations of a rule that failed (the log says why).",
            MetricType::COUNTER,
            c.evaluation_failures
                .iter()
                .map(|(r, n)| counter(&[("alertname", r)], *n as f64))
                .collect(),
        ));
        let per = |m: &BTreeMap<String, u64>| {
            self.receivers
                .iter()
                .map(|r| counter(&[("receiver", r)], m.get(r).copied().unwrap_or(0) as f64))
                .collect()
        };
        out.push(family(
            "monitor_alert_notifications_total",
            "Notifications delivered, by receiver.",
            MetricType::COUNTER,
            per(&c.notifications),
        ));
        out.push(family(
            "monitor_alert_notification_failures_total",
            "Failed delivery attempts (each retry counts; a refused notification is not retried), by receiver.",
            MetricType::COUNTER,
            per(&c.failures),
        ));
        drop(c);
        if let Some(q) = &self.queue {
            let (by, dropped) = q.stats();
            out.push(family(
                "monitor_alert_queue_length",
                "Notifications waiting on disk to be delivered, by receiver.",
                MetricType::GAUGE,
                self.receivers
                    .iter()
                    .map(|r| gauge(&[("receiver", r)], by.get(r).copied().unwrap_or(0) as f64))
                    .collect(),
            ));
            out.push(family(
                "monitor_alert_queue_dropped_total",
                "Notifications dropped because the queue was full (the oldest goes).",
                MetricType::COUNTER,
                vec![counter(&[], dropped as f64)],
            ));
        }
    }
}
