//! Receivers: each turns a queued notification into its own format and sends it once. The
//! outcome says whether to retry: 5xx, 429, timeouts and connection errors are retried;
//! other 4xx are refused for good (retrying cannot fix the request). Email follows the same
//! rule with SMTP's reply codes.

pub mod alertmanager;
pub mod chat;
pub mod command;
pub mod email;
pub mod opsgenie;
pub mod payload;

use std::time::Duration;

use serde_json::json;

use super::config::{Receiver, ReceiverKind};
use payload::Notification;

#[derive(Debug, PartialEq)]
pub enum Outcome {
    Delivered,
    /// Refused (4xx): counted as a failure, not retried.
    Refused(String),
    /// Failed for now: retried with backoff.
    Failed(String),
    /// Rate limited with a time to wait (`Retry-After`, or the wait in the answer's body as
    /// Telegram and Discord give it): retried with backoff, but not before that wait.
    Throttled(String, Duration),
}

/// Sends `n` through `r` once.
pub fn send(r: &Receiver, n: &Notification, host: &str) -> Outcome {
    let timeout = r.timeout.0;
    match &r.kind {
        ReceiverKind::Webhook { url } => {
            post(url, &serde_json::to_value(n).unwrap_or_default(), timeout)
        }
        ReceiverKind::Alertmanager { .. } => {
            alertmanager::send(&r.kind.alertmanagers(), n, timeout)
        }
        ReceiverKind::Slack { url, channel } => {
            let mut text = n.title();
            for a in &n.alerts {
                text.push_str(&format!("\n• {}", a.line()));
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
        ReceiverKind::Email(e) => email::send(e, n, host, timeout),
        ReceiverKind::Opsgenie(o) => opsgenie::send(o, n, host, timeout),
        ReceiverKind::Msteams(m) => chat::msteams(m, n, timeout),
        ReceiverKind::Telegram(t) => chat::telegram(t, n, timeout),
        ReceiverKind::Ntfy(c) => chat::ntfy(c, n, timeout),
        ReceiverKind::Discord(d) => chat::discord(d, n, timeout),
    }
}

/// A URL for logs: scheme, host and port only. Webhook URLs often carry their secret in the
/// path (Slack's do), and logs travel further than configs.
pub fn redact(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(u) => {
            let port = u.port().map(|p| format!(":{p}")).unwrap_or_default();
            let rest = if u.path().len() > 1 || u.query().is_some() {
                "/..."
            } else {
                ""
            };
            format!(
                "{}://{}{port}{rest}",
                u.scheme(),
                u.host_str().unwrap_or("")
            )
        }
        Err(_) => "(a bad URL)".to_string(),
    }
}

fn post(url: &str, body: &serde_json::Value, timeout: Duration) -> Outcome {
    post_with(url, &[], body, timeout)
}

/// `post` with request headers (credentials: never logged).
fn post_with(
    url: &str,
    headers: &[(&str, &str)],
    body: &serde_json::Value,
    timeout: Duration,
) -> Outcome {
    let shown = redact(url);
    let mut rq = ureq::post(url).timeout(timeout);
    for (k, v) in headers {
        rq = rq.set(k, v);
    }
    match rq.send_json(body) {
        Ok(r) => {
            let _ = r.into_string();
            Outcome::Delivered
        }
        Err(ureq::Error::Status(code, r)) => {
            let header = r
                .header("Retry-After")
                .and_then(|v| v.trim().parse::<f64>().ok())
                .and_then(wait_seconds);
            let body = r.into_string().unwrap_or_default();
            let text: String = body.chars().take(200).collect();
            let why = format!("{shown}: HTTP {code}: {}", text.trim());
            if code == 429 || code == 503 {
                if let Some(wait) = header.or_else(|| retry_after_in(&body)) {
                    return Outcome::Throttled(why, Duration::from_secs_f64(wait));
                }
            }
            if code == 429 || code >= 500 {
                Outcome::Failed(why)
            } else {
                Outcome::Refused(why)
            }
        }
        // ureq's message names the URL itself: say what failed without it.
        Err(ureq::Error::Transport(t)) => Outcome::Failed(format!(
            "{shown}: {}{}",
            t.kind(),
            t.message().map(|m| format!(": {m}")).unwrap_or_default()
        )),
    }
}

/// The wait a rate-limit answer's body asks for, in seconds: Telegram's
/// `parameters.retry_after`, Discord's `retry_after`. At most an hour.
fn retry_after_in(body: &str) -> Option<f64> {
    let v: serde_json::Value = serde_json::from_str(body).ok()?;
    v["parameters"]["retry_after"]
        .as_f64()
        .or_else(|| v["retry_after"].as_f64())
        .and_then(wait_seconds)
}

/// A wait a service asked for, if it is one: above zero, at most an hour.
fn wait_seconds(s: f64) -> Option<f64> {
    (s.is_finite() && s > 0.0).then(|| s.min(3600.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_limit_answers_say_how_long_to_wait() {
        assert_eq!(
            retry_after_in(r#"{"ok":false,"error_code":429,"parameters":{"retry_after":5}}"#),
            Some(5.0)
        );
        assert_eq!(
            retry_after_in(r#"{"message":"You are being rate limited.","retry_after":0.25}"#),
            Some(0.25)
        );
        assert_eq!(retry_after_in(r#"{"retry_after":-1}"#), None);
        assert_eq!(retry_after_in("busy"), None);
        assert_eq!(retry_after_in(r#"{"retry_after":1e300}"#), Some(3600.0));
        assert_eq!(wait_seconds(f64::NAN), None);
    }

    #[test]
    fn logs_do_not_show_secrets_in_urls() {
        assert_eq!(
            redact("https://hooks.slack.com/services/T0/B0/secret"),
            "https://hooks.slack.com/..."
        );
        assert_eq!(redact("http://127.0.0.1:9093"), "http://127.0.0.1:9093");
        // Nothing listens on port 1: a connection error, named without the path.
        match post(
            "http://127.0.0.1:1/token",
            &json!({}),
            Duration::from_secs(5),
        ) {
            Outcome::Failed(why) => {
                assert!(why.starts_with("http://127.0.0.1:1/...: "), "{why}");
                assert!(!why.contains("token"), "{why}");
            }
            other => panic!("{other:?}"),
        }
    }
}
