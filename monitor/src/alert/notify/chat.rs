//! The chat services: Microsoft Teams (a workflow webhook with an Adaptive Card), Telegram
//! (the Bot API's `sendMessage`), ntfy (JSON publish) and Discord (a channel webhook). Each
//! says the notification's title and one line per alert, as Slack does; each answer is
//! judged as for every HTTP receiver (`post_with`): 2xx delivered, 429 and 5xx retried,
//! other 4xx refused.

use std::time::Duration;

use serde_json::json;

use super::{email::html_escape, payload::Notification, post, post_with, Outcome};
use crate::alert::config::receivers::{Discord, Msteams, Ntfy, Telegram};

/// At most `n` characters, with `…` when cut.
pub fn cut(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        return s.to_string();
    }
    let mut out: String = s.chars().take(n.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// The alerts' lines, one per alert, each through `f` (an escape), under `width`
/// characters in all as `f` leaves them.
fn lines(n: &Notification, width: usize, f: fn(&str) -> String) -> String {
    let mut out = String::new();
    let mut used = 0;
    for (i, a) in n.alerts.iter().enumerate() {
        let line = f(&format!("• {}\n", cut(&a.line(), 1000)));
        let len = line.chars().count();
        if used + len > width {
            out.push_str(&format!("… and {} more\n", n.alerts.len() - i));
            break;
        }
        used += len;
        out.push_str(&line);
    }
    out.trim_end().to_string()
}

fn same(s: &str) -> String {
    s.to_string()
}

/// Alerts shown one by one in a Teams card; the rest are counted (a workflow takes at
/// most 28 KB).
const TEAMS_ALERTS: usize = 30;

/// Teams: the payload a "When a Teams webhook request is received" workflow posts to a
/// channel: a message with one Adaptive Card attachment.
pub fn msteams(c: &Msteams, n: &Notification, timeout: Duration) -> Outcome {
    let firing = n.status == "firing";
    let mut body = vec![json!({
        "type": "TextBlock",
        "text": n.title(),
        "weight": "Bolder",
        "size": "Medium",
        "wrap": true,
        "style": "heading",
        "color": if firing { "Attention" } else { "Good" },
    })];
    for a in n.alerts.iter().take(TEAMS_ALERTS) {
        body.push(json!({
            "type": "TextBlock",
            "text": cut(&format!("**{}** {}: {}", a.name(), a.status, a.what()), 1000),
            "wrap": true,
            "separator": true,
        }));
        let facts: Vec<_> = a
            .labels
            .iter()
            .filter(|(k, _)| *k != "alertname")
            .map(|(k, v)| json!({"title": k, "value": cut(v, 200)}))
            .collect();
        body.push(json!({"type": "FactSet", "facts": facts}));
    }
    if n.alerts.len() > TEAMS_ALERTS {
        body.push(json!({
            "type": "TextBlock",
            "text": format!("… and {} more", n.alerts.len() - TEAMS_ALERTS),
            "wrap": true,
        }));
    }
    let mut card = json!({
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "type": "AdaptiveCard",
        "version": "1.4",
        "body": body,
        "msteams": {"width": "Full"},
    });
    if let Some(a) = n.alerts.first() {
        card["actions"] =
            json!([{"type": "Action.OpenUrl", "title": "Source", "url": a.generator_url}]);
    }
    let payload = json!({
        "type": "message",
        "attachments": [{
            "contentType": "application/vnd.microsoft.card.adaptive",
            "contentUrl": null,
            "content": card,
        }],
    });
    post(&c.webhook_url, &payload, timeout)
}

/// Telegram: `sendMessage` in HTML parse mode (what Alertmanager's receiver uses), at most
/// 4096 characters.
pub fn telegram(c: &Telegram, n: &Notification, timeout: Duration) -> Outcome {
    // Escaped before it is measured, so the message stays within 4096 characters.
    let text = format!(
        "<b>{}</b>\n{}",
        html_escape(&cut(&n.title(), 200)),
        lines(n, 2800, html_escape)
    );
    let mut body = json!({
        "chat_id": c.chat_id,
        "text": text,
        "parse_mode": "HTML",
        "disable_notification": c.disable_notifications,
        "link_preview_options": {"is_disabled": true},
    });
    if let Some(t) = c.message_thread_id {
        body["message_thread_id"] = json!(t);
    }
    let url = format!(
        "{}/bot{}/sendMessage",
        c.api_url.trim_end_matches('/'),
        c.bot_token
    );
    post(&url, &body, timeout)
}

/// ntfy's priority (1 min .. 5 max) and emoji tag from the group's severity; resolved
/// notifications are of default priority.
fn ntfy_priority(n: &Notification) -> (u8, &'static str) {
    if n.status == "resolved" {
        return (3, "white_check_mark");
    }
    match n.severity() {
        "critical" => (5, "rotating_light"),
        "info" => (3, "information_source"),
        _ => (4, "warning"),
    }
}

/// ntfy: a JSON publish to the server's root URL, with the topic in the body; priority and
/// tags from the severity, the alert names as further tags, the first alert's link to click.
pub fn ntfy(c: &Ntfy, n: &Notification, timeout: Duration) -> Outcome {
    let (priority, emoji) = ntfy_priority(n);
    let mut tags = vec![emoji.to_string(), n.severity().to_string()];
    for a in &n.alerts {
        if !a.name().is_empty() && !tags.iter().any(|t| t == a.name()) {
            tags.push(a.name().to_string());
        }
    }
    let mut body = json!({
        "topic": c.topic,
        "title": cut(&n.title(), 250),
        "message": lines(n, 3500, same),
        "priority": priority,
        "tags": tags,
    });
    if let Some(a) = n.alerts.first() {
        body["click"] = json!(a.generator_url);
    }
    let basic;
    let bearer;
    let mut headers = Vec::new();
    if let Some(t) = &c.token {
        bearer = format!("Bearer {t}");
        headers.push(("Authorization", bearer.as_str()));
    } else if let (Some(u), Some(p)) = (&c.username, &c.password) {
        use base64::Engine as _;
        basic = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"))
        );
        headers.push(("Authorization", basic.as_str()));
    }
    post_with(c.url.trim_end_matches('/'), &headers, &body, timeout)
}

/// Discord: one embed, red while firing and green once resolved, within Discord's limits
/// (title 256, description 4096 characters).
pub fn discord(c: &Discord, n: &Notification, timeout: Duration) -> Outcome {
    let color = if n.status == "firing" {
        0x00E7_4C3C
    } else {
        0x002E_CC71
    };
    let mut embed = json!({
        "title": cut(&n.title(), 256),
        "description": lines(n, 4000, same),
        "color": color,
    });
    if let Some(a) = n.alerts.first() {
        embed["url"] = json!(a.generator_url);
    }
    let mut body = json!({ "embeds": [embed], "allowed_mentions": {"parse": []} });
    if let Some(u) = &c.username {
        body["username"] = json!(u);
    }
    if let Some(a) = &c.avatar_url {
        body["avatar_url"] = json!(a);
    }
    post(&c.webhook_url, &body, timeout)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cut_and_lines_stay_within_limits() {
        assert_eq!(cut("abcdef", 4), "abc…");
        assert_eq!(cut("abc", 4), "abc");
        assert_eq!(html_escape("a<b>&\""), "a&lt;b&gt;&amp;&quot;");
        // 100 alerts whose lines are all ampersands: escaped, still within the limit.
        let alert = crate::alert::notify::payload::AlertJson {
            status: "firing".into(),
            labels: [("alertname".to_string(), "&".repeat(300))].into(),
            annotations: Default::default(),
            starts_at: String::new(),
            ends_at: String::new(),
            generator_url: String::new(),
            fingerprint: String::new(),
            value: None,
        };
        let n = Notification::new("r", "k".into(), Default::default(), "", vec![alert; 100]);
        let text = lines(&n, 2800, html_escape);
        assert!(text.chars().count() <= 2800 + 20, "{}", text.len());
        assert!(text.ends_with("more"), "{text}");
        assert!(!text.contains("&amp\n"), "no entity cut in half");
    }
}
