//! Opsgenie, Alert API v2: one Opsgenie alert per notification group, its alias a hash of
//! the group key (so each notification of the group updates the same alert, and Opsgenie
//! counts the repeats), created while anything in the group fires and closed by alias once
//! everything is resolved. Priority from the group's gravest severity.

use std::time::Duration;

use serde_json::json;

use super::{chat::cut, payload::Notification, post_with, Outcome};
use crate::alert::config::receivers::Opsgenie;

/// The alias: stable across restarts (FNV-1a of the receiver and group key), at most 512
/// characters as Opsgenie asks.
pub fn alias(n: &Notification) -> String {
    use std::hash::Hasher as _;
    let mut h = fnv::FnvHasher::default();
    h.write(n.receiver.as_bytes());
    h.write(&[0xff]);
    h.write(n.group_key.as_bytes());
    format!("monitor-{:016x}", h.finish())
}

pub fn priority(n: &Notification) -> &'static str {
    match n.severity() {
        "critical" => "P1",
        "info" => "P5",
        _ => "P3",
    }
}

pub fn send(c: &Opsgenie, n: &Notification, host: &str, timeout: Duration) -> Outcome {
    let base = c.api_url.trim_end_matches('/');
    let key = format!("GenieKey {}", c.api_key);
    let headers = [("Authorization", key.as_str())];
    let alias = alias(n);
    if n.status == "resolved" {
        return post_with(
            &format!("{base}/v2/alerts/{alias}/close?identifierType=alias"),
            &headers,
            &json!({ "source": host, "user": "monitor", "note": cut(&n.title(), 25_000) }),
            timeout,
        );
    }
    let mut description = String::new();
    for a in &n.alerts {
        description.push_str(&format!("{}\n", a.line()));
        for (k, v) in &a.annotations {
            description.push_str(&format!("  {k}: {v}\n"));
        }
        description.push_str(&format!("  since {}, {}\n", a.starts_at, a.generator_url));
    }
    let mut tags = c.tags.clone();
    tags.push(n.severity().to_string());
    let body = json!({
        "message": cut(&n.title(), 130),
        "alias": alias,
        "description": cut(&description, 15_000),
        "responders": c.responders,
        "tags": tags,
        "details": n.common_labels,
        "source": host,
        "priority": priority(n),
    });
    post_with(&format!("{base}/v2/alerts"), &headers, &body, timeout)
}
