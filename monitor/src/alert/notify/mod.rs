//! Receivers: each turns a queued notification into its own format and sends it once. The
//! outcome says whether to retry: 5xx, 429, timeouts and connection errors are retried;
//! other 4xx are refused for good (retrying cannot fix the request).

pub mod command;
pub mod payload;

use std::time::Duration;

use serde_json::json;

use super::config::{Receiver, ReceiverKind};
use payload::{Notification, ZERO_TIME};

#[derive(Debug, PartialEq)]
pub enum Outcome {
    Delivered,
    /// Refused (4xx): counted as a failure, not retried.
    Refused(String),
    /// Failed for now: retried with backoff.
    Failed(String),
}

/// Sends `n` through `r` once.
pub fn send(r: &Receiver, n: &Notification, host: &str) -> Outcome {
    let timeout = r.timeout.0;
    match &r.kind {
        ReceiverKind::Webhook { url } => {
            post(url, &serde_json::to_value(n).unwrap_or_default(), timeout)
        }
        ReceiverKind::Alertmanager { url, .. } => {
            let alerts: Vec<_> = n
                .alerts
                .iter()
                .map(|a| {
                    let mut v = json!({
                        "labels": a.labels,
                        "annotations": a.annotations,
                        "startsAt": a.starts_at,
                        "generatorURL": a.generator_url,
                    });
                    if a.ends_at != ZERO_TIME {
                        v["endsAt"] = json!(a.ends_at);
                    }
                    v
                })
                .collect();
            post(
                &format!("{}/api/v2/alerts", url.trim_end_matches('/')),
                &json!(alerts),
                timeout,
            )
        }
        ReceiverKind::Slack { url, channel } => {
            let mut text = n.title();
            for a in &n.alerts {
                let what = a
                    .annotations
                    .get("summary")
                    .or_else(|| a.annotations.get("description"))
                    .cloned()
                    .unwrap_or_default();
                let labels: Vec<String> = a
                    .labels
                    .iter()
                    .filter(|(k, _)| *k != "alertname")
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect();
                text.push_str(&format!(
                    "\n• {} {}: {what} ({})",
                    a.status,
                    a.labels.get("alertname").map_or("", String::as_str),
                    labels.join(", ")
                ));
            }
            let mut body = json!({ "text": text });
            if let Some(c) = channel {
                body["channel"] = json!(c);
            }
            post(url, &body, timeout)
        }
        ReceiverKind::Pagerduty { routing_key, url } => {
            // One event per alert, keyed by its fingerprint, so a resolve closes its trigger.
            for a in &n.alerts {
                let severity = match a.labels.get("severity").map(String::as_str) {
                    Some("critical") => "critical",
                    Some("info") => "info",
                    _ => "warning",
                };
                let summary = a
                    .annotations
                    .get("summary")
                    .cloned()
                    .unwrap_or_else(|| a.labels.get("alertname").cloned().unwrap_or_default());
                let body = json!({
                    "routing_key": routing_key,
                    "event_action": if a.status == "resolved" { "resolve" } else { "trigger" },
                    "dedup_key": a.fingerprint,
                    "payload": {
                        "summary": summary.chars().take(1024).collect::<String>(),
                        "source": host,
                        "severity": severity,
                        "custom_details": { "labels": a.labels, "annotations": a.annotations },
                    },
                    "client": "monitor",
                    "client_url": a.generator_url,
                });
                match post(url, &body, timeout) {
                    Outcome::Delivered => {}
                    other => return other,
                }
            }
            Outcome::Delivered
        }
        ReceiverKind::Command { path, args } => command::run(path, args, n, timeout),
    }
}

fn post(url: &str, body: &serde_json::Value, timeout: Duration) -> Outcome {
    match ureq::post(url).timeout(timeout).send_json(body) {
        Ok(r) => {
            let _ = r.into_string();
            Outcome::Delivered
        }
        Err(ureq::Error::Status(code, r)) => {
            let text: String = r
                .into_string()
                .unwrap_or_default()
                .chars()
                .take(200)
                .collect();
            let why = format!("{url}: HTTP {code}: {}", text.trim());
            if code == 429 || code >= 500 {
                Outcome::Failed(why)
            } else {
                Outcome::Refused(why)
            }
        }
        Err(ureq::Error::Transport(t)) => Outcome::Failed(format!("{url}: {t}")),
    }
}
