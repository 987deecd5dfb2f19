//! The email receiver: one message per notification (a group's firing and resolved alerts
//! alike) over SMTP, with lettre on rustls: implicit TLS on port 465, STARTTLS otherwise
//! (unless `require_tls: false`: plain SMTP, as Alertmanager), AUTH PLAIN or LOGIN. The subject, the plain-text
//! and the HTML bodies and extra headers are MiniJinja templates over the webhook payload
//! (`status`, `alerts`, `commonLabels`, ...), plus `title`.
//!
//! Outcomes follow SMTP's reply codes as the HTTP receivers follow status codes: a
//! permanent (5xx) answer to the message or its recipients is refused, not retried;
//! everything else is retried: a connection that fails or times out, a transient (4xx)
//! answer, a TLS failure, and a refused login (the credentials may be fixed on the
//! server's side, and a lost alert is worse than a retried one).

use std::{path::Path, time::Duration};

use lettre::{
    message::{
        header::{ContentType, HeaderName, HeaderValue},
        Mailboxes, MultiPart, SinglePart,
    },
    transport::smtp::{
        authentication::{Credentials, Mechanism},
        client::{Certificate, CertificateStore, Tls, TlsParameters, TlsVersion},
        extension::ClientId,
    },
    Message, SmtpTransport, Transport as _,
};
use minijinja::{AutoEscape, Environment};

use super::{payload::Notification, Outcome};
use crate::alert::config::receivers::{Email, TlsConfig};

/// The default subject: the notification's title.
pub const DEFAULT_SUBJECT: &str = "{{ title }}";

/// The default plain-text body: every alert with its value, annotations, labels, times and
/// link.
pub const DEFAULT_TEXT: &str = r#"{{ title }}
{% for a in alerts %}
[{{ a.status | upper }}] {{ a.labels.alertname }}{% if a.value %} (value {{ a.value }}){% endif %}
{% for k, v in a.annotations | items %}  {{ k }}: {{ v }}
{% endfor %}  Labels:{% for k, v in a.labels | items %} {{ k }}={{ v }}{% endfor %}
  Started: {{ a.startsAt }}{% if a.status == "resolved" %}  Ended: {{ a.endsAt }}{% endif %}
  Source: {{ a.generatorURL }}
{% endfor %}
Sent by monitor ({{ externalURL }}).
"#;

/// The default HTML body: the same, as a table per alert.
pub const DEFAULT_HTML: &str = r#"<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>{{ title }}</title></head>
<body style="font-family: sans-serif">
<h2 style="color: {% if status == "firing" %}#c0392b{% else %}#27ae60{% endif %}">{{ title }}</h2>
{% for a in alerts %}
<h3>[{{ a.status | upper }}] {{ a.labels.alertname }}{% if a.value %} (value {{ a.value }}){% endif %}</h3>
<table cellpadding="4" style="border-collapse: collapse">
{% for k, v in a.annotations | items %}<tr><th align="left">{{ k }}</th><td>{{ v }}</td></tr>
{% endfor %}<tr><th align="left">labels</th><td>{% for k, v in a.labels | items %}{{ k }}={{ v }}{% if not loop.last %}, {% endif %}{% endfor %}</td></tr>
<tr><th align="left">started</th><td>{{ a.startsAt }}</td></tr>
{% if a.status == "resolved" %}<tr><th align="left">ended</th><td>{{ a.endsAt }}</td></tr>
{% endif %}<tr><th align="left">source</th><td><a href="{{ a.generatorURL }}">{{ a.generatorURL }}</a></td></tr>
</table>
{% endfor %}
<p>Sent by monitor (<a href="{{ externalURL }}">{{ externalURL }}</a>).</p>
</body></html>
"#;

/// Addresses as written in `to` and `from`: comma-separated, with or without names.
pub fn mailboxes(s: &str) -> Result<Mailboxes, String> {
    s.parse::<Mailboxes>()
        .map_err(|e| format!("{s:?} is not a list of email addresses ({e})"))
}

fn environment() -> Environment<'static> {
    let mut env = Environment::new();
    // HTML escaping for the HTML body only; a label value cannot inject markup.
    env.set_auto_escape_callback(|name| {
        if name.ends_with(".html") {
            AutoEscape::Html
        } else {
            AutoEscape::None
        }
    });
    env.set_undefined_behavior(minijinja::UndefinedBehavior::Lenient);
    // HTML escaping of &, <, >, " and ' only: MiniJinja's own also escapes `/`, which
    // leaves every link in the message as `http:&#x2f;&#x2f;...`.
    env.set_formatter(|out, state, value| {
        if *state.auto_escape() == AutoEscape::Html
            && !value.is_safe()
            && !value.is_undefined()
            && !value.is_none()
        {
            out.write_str(&html_escape(&value.to_string()))
                .map_err(minijinja::Error::from)
        } else {
            minijinja::escape_formatter(out, state, value)
        }
    });
    env
}

pub fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Whether `text` is a template that parses.
pub fn check_template(text: &str) -> Result<(), String> {
    environment()
        .template_from_str(text)
        .map(|_| ())
        .map_err(|e| format!("not a template: {e}"))
}

/// Renders `text` (named `name`: `.html` names are HTML-escaped) over `n`.
fn render(name: &str, text: &str, n: &Notification) -> Result<String, String> {
    let mut env = environment();
    env.add_template(name, text)
        .map_err(|e| format!("template {name}: {e}"))?;
    let mut ctx = serde_json::to_value(n).map_err(|e| e.to_string())?;
    ctx["title"] = serde_json::Value::String(n.title());
    env.get_template(name)
        .and_then(|t| t.render(minijinja::Value::from(minijinja::value::Serde(&ctx))))
        .map_err(|e| format!("template {name}: {e}"))
}

/// The PEM certificates of `ca_file`.
pub fn read_ca(path: &Path) -> Result<Certificate, String> {
    let pem = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    if !String::from_utf8_lossy(&pem).contains("-----BEGIN CERTIFICATE-----") {
        return Err(format!("{} holds no PEM certificate", path.display()));
    }
    Certificate::from_pem(&pem).map_err(|e| format!("{}: {e}", path.display()))
}

fn tls_parameters(host: &str, c: &TlsConfig) -> Result<TlsParameters, String> {
    let name = c.server_name.clone().unwrap_or_else(|| host.to_string());
    let mut b = TlsParameters::builder(name)
        .dangerous_accept_invalid_certs(c.insecure_skip_verify)
        .set_min_tls_version(match c.min_version.as_deref() {
            Some("TLS13") => TlsVersion::Tlsv13,
            _ => TlsVersion::Tlsv12,
        });
    if let Some(f) = &c.ca_file {
        b = b
            .certificate_store(CertificateStore::None)
            .add_root_certificate(read_ca(f)?);
    }
    b.build_rustls().map_err(|e| format!("TLS: {e}"))
}

/// The message for `n`.
pub fn message(c: &Email, n: &Notification, host: &str) -> Result<Message, String> {
    let from = mailboxes(&c.from)?
        .into_single()
        .ok_or_else(|| "from: give one address".to_string())?;
    let mut b = Message::builder().from(from);
    for to in mailboxes(&c.to)? {
        b = b.to(to);
    }
    let mut subject = DEFAULT_SUBJECT;
    let mut extra = Vec::new();
    for (k, v) in &c.headers {
        if k.eq_ignore_ascii_case("subject") {
            subject = v;
        } else {
            extra.push((k, v));
        }
    }
    // A subject is one line.
    let subject = render("subject", subject, n)?
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    b = b.subject(subject);
    for (k, v) in extra {
        let name = HeaderName::new_from_ascii(k.clone())
            .map_err(|_| format!("headers: {k:?} is not a header name"))?;
        let value = render("header", v, n)?
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        b = b.raw_header(HeaderValue::new(name, value));
    }
    let id = {
        use std::hash::Hasher as _;
        let mut h = fnv::FnvHasher::default();
        h.write(n.group_key.as_bytes());
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        format!(
            "<{}.{}.{:016x}@{host}>",
            now.as_nanos(),
            std::process::id(),
            h.finish()
        )
    };
    b = b.message_id(Some(id)).date_now();
    let text = render("text", c.text.as_deref().unwrap_or(DEFAULT_TEXT), n)?;
    let html = render("body.html", c.html.as_deref().unwrap_or(DEFAULT_HTML), n)?;
    b.multipart(
        MultiPart::alternative()
            .singlepart(
                SinglePart::builder()
                    .header(ContentType::TEXT_PLAIN)
                    .body(text),
            )
            .singlepart(
                SinglePart::builder()
                    .header(ContentType::TEXT_HTML)
                    .body(html),
            ),
    )
    .map_err(|e| format!("building the message: {e}"))
}

fn transport(c: &Email, host: &str, timeout: Duration) -> Result<SmtpTransport, String> {
    let (server, port) = c.host_port()?;
    let tls = if port == 465 {
        Tls::Wrapper(tls_parameters(server, &c.tls_config)?)
    } else if c.require_tls {
        Tls::Required(tls_parameters(server, &c.tls_config)?)
    } else {
        // As Alertmanager: no STARTTLS at all (a relay's self-signed certificate must not
        // stop the mail).
        Tls::None
    };
    let hello = c.hello.clone().unwrap_or_else(|| host.to_string());
    let mut t = SmtpTransport::builder_dangerous(server)
        .port(port)
        .tls(tls)
        .hello_name(ClientId::Domain(hello))
        .timeout(Some(timeout));
    if let (Some(user), Some(password)) = (&c.auth_username, &c.auth_password) {
        t = t
            .credentials(Credentials::new(user.clone(), password.clone()))
            .authentication(vec![Mechanism::Plain, Mechanism::Login]);
    }
    Ok(t.build())
}

/// Reply codes of a refused login (RFC 4954): retried, not refused for good.
fn is_auth_failure(code: u16) -> bool {
    matches!(code, 454 | 530 | 534 | 535 | 538)
}

pub fn send(c: &Email, n: &Notification, host: &str, timeout: Duration) -> Outcome {
    let at = &c.smarthost;
    let msg = match message(c, n, host) {
        Ok(m) => m,
        // A template that fails on this notification fails on every retry.
        Err(e) => return Outcome::Refused(format!("{at}: {e}")),
    };
    let t = match transport(c, host, timeout) {
        Ok(t) => t,
        Err(e) => return Outcome::Failed(format!("{at}: {e}")),
    };
    match t.send(&msg) {
        Ok(_) => Outcome::Delivered,
        Err(e) => {
            let code = e.status().and_then(|c| c.to_string().parse::<u16>().ok());
            // lettre's message is one line, with the reply code, and names no secret.
            let why = format!("{at}: {e}");
            match code {
                Some(code) if e.is_permanent() && !is_auth_failure(code) => Outcome::Refused(why),
                _ => Outcome::Failed(why),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::notify::payload::AlertJson;

    fn note(status: &str) -> Notification {
        let alert = AlertJson {
            status: status.to_string(),
            labels: [
                ("alertname".to_string(), "Down".to_string()),
                ("service".to_string(), "<svc>".to_string()),
            ]
            .into(),
            annotations: [("summary".to_string(), "svc & co are down".to_string())].into(),
            starts_at: "2026-01-01T00:00:00.000Z".to_string(),
            ends_at: "0001-01-01T00:00:00Z".to_string(),
            generator_url: "http://h:9957/api/v1/alerts".to_string(),
            fingerprint: "0123456789abcdef".to_string(),
            value: Some("0".to_string()),
        };
        Notification::new(
            "mail",
            "{}/x".into(),
            Default::default(),
            "http://h:9957",
            vec![alert],
        )
    }

    fn config(extra: &str) -> Email {
        serde_norway::from_str(&format!(
            "{{to: 'a@example.com, B <b@example.com>', from: m@example.com, smarthost: 'mx:25'{extra}}}"
        ))
        .unwrap()
    }

    #[test]
    fn default_bodies_name_the_alerts_and_escape_html() {
        let m = message(&config(""), &note("firing"), "h").unwrap();
        let raw = String::from_utf8(m.formatted()).unwrap();
        assert!(
            raw.contains("Subject: [FIRING:1] Down: svc & co are down"),
            "{raw}"
        );
        assert!(
            raw.contains("To: a@example.com, B <b@example.com>"),
            "{raw}"
        );
        let text = render("text", DEFAULT_TEXT, &note("firing")).unwrap();
        assert!(text.contains("[FIRING] Down (value 0)"), "{text}");
        assert!(text.contains("summary: svc & co are down"), "{text}");
        assert!(text.contains("service=<svc>"), "{text}");
        assert!(
            text.contains("Source: http://h:9957/api/v1/alerts"),
            "{text}"
        );
        let html = render("body.html", DEFAULT_HTML, &note("resolved")).unwrap();
        assert!(html.contains("service=&lt;svc&gt;"), "{html}");
        assert!(html.contains("svc &amp; co are down"), "{html}");
        assert!(html.contains("<th align=\"left\">ended</th>"), "{html}");
        assert!(
            html.contains("<a href=\"http://h:9957/api/v1/alerts\">"),
            "{html}"
        );
    }

    #[test]
    fn headers_and_custom_templates() {
        let c = config(
            ", headers: {Subject: 'Alert {{ commonLabels.alertname }}', X-Team: ops}, text: '{{ alerts | length }} alerts'",
        );
        let raw =
            String::from_utf8(message(&c, &note("firing"), "h").unwrap().formatted()).unwrap();
        assert!(raw.contains("Subject: Alert Down"), "{raw}");
        assert!(raw.contains("X-Team: ops"), "{raw}");
        assert!(raw.contains("1 alerts"), "{raw}");
        assert!(check_template("{% for %}").is_err());
    }
}
