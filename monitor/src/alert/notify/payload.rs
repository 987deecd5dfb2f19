//! A notification as queued: Alertmanager's webhook payload (version 4), from which every
//! receiver's own format is made when it is sent.

use std::{collections::BTreeMap, time::SystemTime};

use serde::{Deserialize, Serialize};

use crate::alert::{expr::Labels, state::Alert, state::State};

/// Alertmanager's "no end time" (Go's zero time).
pub const ZERO_TIME: &str = "0001-01-01T00:00:00Z";

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AlertJson {
    pub status: String,
    pub labels: Labels,
    pub annotations: BTreeMap<String, String>,
    pub starts_at: String,
    pub ends_at: String,
    #[serde(rename = "generatorURL")]
    pub generator_url: String,
    pub fingerprint: String,
    /// The rule's value as of the notification, as `/api/v1/alerts` shows it (not in
    /// Alertmanager's payload; for the receivers' texts).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Notification {
    pub version: String,
    pub group_key: String,
    pub truncated_alerts: u64,
    pub status: String,
    pub receiver: String,
    pub group_labels: Labels,
    pub common_labels: Labels,
    pub common_annotations: BTreeMap<String, String>,
    #[serde(rename = "externalURL")]
    pub external_url: String,
    pub alerts: Vec<AlertJson>,
}

pub fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_millis(t).to_string()
}

/// A sample value as Prometheus's API writes it.
pub fn format_value(v: f64) -> String {
    match v {
        v if v.is_nan() => "NaN".to_string(),
        v if v == f64::INFINITY => "+Inf".to_string(),
        v if v == f64::NEG_INFINITY => "-Inf".to_string(),
        v => v.to_string(),
    }
}

impl AlertJson {
    /// `ends_at` for a firing alert: Alertmanager's zero time, or (for Alertmanager's API,
    /// which resolves an alert it stops hearing of) a time a few resends ahead.
    pub fn from_alert(a: &Alert, external_url: &str, firing_ends_at: Option<SystemTime>) -> Self {
        let resolved = a.state == State::Resolved;
        Self {
            status: if resolved { "resolved" } else { "firing" }.to_string(),
            labels: a.labels.clone(),
            annotations: a.annotations.clone(),
            starts_at: rfc3339(a.fired_at.unwrap_or(a.active_at)),
            ends_at: match (a.resolved_at, firing_ends_at) {
                (Some(r), _) if resolved => rfc3339(r),
                (_, Some(t)) => rfc3339(t),
                _ => ZERO_TIME.to_string(),
            },
            generator_url: format!("{}/api/v1/alerts", external_url.trim_end_matches('/')),
            fingerprint: format!("{:016x}", a.fingerprint),
            value: Some(format_value(a.value)),
        }
    }

    pub fn name(&self) -> &str {
        self.labels.get("alertname").map_or("", String::as_str)
    }

    /// The summary annotation, or the description.
    pub fn what(&self) -> &str {
        self.annotations
            .get("summary")
            .or_else(|| self.annotations.get("description"))
            .map_or("", String::as_str)
    }

    /// Labels other than `alertname`, as `k=v, k=v`.
    pub fn other_labels(&self) -> String {
        self.labels
            .iter()
            .filter(|(k, _)| *k != "alertname")
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// One line for chat: `firing ServiceDown: service svc is not running (service=svc, ...)`.
    pub fn line(&self) -> String {
        format!(
            "{} {}: {} ({})",
            self.status,
            self.name(),
            self.what(),
            self.other_labels()
        )
    }
}

impl Notification {
    pub fn new(
        receiver: &str,
        group_key: String,
        group_labels: Labels,
        external_url: &str,
        alerts: Vec<AlertJson>,
    ) -> Self {
        let status = if alerts.iter().any(|a| a.status == "firing") {
            "firing"
        } else {
            "resolved"
        };
        let common = |get: fn(&AlertJson) -> &BTreeMap<String, String>| {
            let mut c = alerts.first().map(|a| get(a).clone()).unwrap_or_default();
            for a in &alerts[1.min(alerts.len())..] {
                c.retain(|k, v| get(a).get(k) == Some(v));
            }
            c
        };
        Self {
            version: "4".to_string(),
            group_key,
            truncated_alerts: 0,
            status: status.to_string(),
            receiver: receiver.to_string(),
            group_labels,
            common_labels: common(|a| &a.labels),
            common_annotations: common(|a| &a.annotations),
            external_url: external_url.to_string(),
            alerts,
        }
    }

    /// The group's severity: the gravest of its firing alerts (`critical`, `warning`,
    /// `info`), or of all its alerts when none fires.
    pub fn severity(&self) -> &'static str {
        let firing: Vec<&AlertJson> = self
            .alerts
            .iter()
            .filter(|a| a.status == "firing")
            .collect();
        let pool: Vec<&AlertJson> = if firing.is_empty() {
            self.alerts.iter().collect()
        } else {
            firing
        };
        let of = |a: &&AlertJson| match a.labels.get("severity").map(String::as_str) {
            Some("critical") => 0,
            Some("info") => 2,
            _ => 1,
        };
        match pool.iter().map(of).min() {
            Some(0) => "critical",
            Some(2) => "info",
            _ => "warning",
        }
    }

    /// One line for chat and logs: `[FIRING:2] HostCPUBusy: CPU is 95% busy`.
    pub fn title(&self) -> String {
        let firing = self.alerts.iter().filter(|a| a.status == "firing").count();
        let name = self
            .common_labels
            .get("alertname")
            .cloned()
            .unwrap_or_else(|| {
                let mut names: Vec<&str> = self
                    .alerts
                    .iter()
                    .filter_map(|a| a.labels.get("alertname").map(String::as_str))
                    .collect();
                names.dedup();
                names.join(", ")
            });
        let head = if self.status == "firing" {
            format!("[FIRING:{firing}] {name}")
        } else {
            format!("[RESOLVED] {name}")
        };
        match self.common_annotations.get("summary") {
            Some(s) => format!("{head}: {s}"),
            None => head,
        }
    }
}
