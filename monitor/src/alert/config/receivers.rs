//! The settings of the receivers that reach a person directly (email and the chat and
//! paging services), with Alertmanager's field names where Alertmanager has a receiver for
//! the service, and their checks. Each error names the field; the caller adds the file and
//! the receiver.

use std::{collections::BTreeMap, path::PathBuf};

use serde::Deserialize;

use crate::alert::notify::email;

/// `email`: one message per notification, over SMTP.
#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct Email {
    /// Recipients, comma-separated (`a@example.com, Ops <ops@example.com>`).
    pub to: String,
    pub from: String,
    /// `HOST:PORT`. Port 465 is implicit TLS; any other port talks plain SMTP and upgrades
    /// with STARTTLS.
    pub smarthost: String,
    /// The name given in EHLO (default: the host name).
    pub hello: Option<String>,
    pub auth_username: Option<String>,
    pub auth_password: Option<String>,
    /// PLAIN's authorization identity: only empty or the username (which mean the same).
    pub auth_identity: Option<String>,
    /// STARTTLS must succeed before anything is sent (default). Off: no STARTTLS (plain
    /// SMTP, as Alertmanager does); port 465 is TLS either way.
    #[serde(default = "super::yes")]
    pub require_tls: bool,
    #[serde(default)]
    pub tls_config: TlsConfig,
    /// Extra headers; values are templates. `Subject` replaces the default subject.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// The HTML body's template (default: a table of the alerts).
    pub html: Option<String>,
    /// The plain-text body's template (default: the alerts as text).
    pub text: Option<String>,
}

#[derive(Debug, Deserialize, Clone, Default)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM certificates trusted instead of the built-in (Mozilla) roots.
    pub ca_file: Option<PathBuf>,
    /// The name the server's certificate must carry (default: the smarthost's host).
    pub server_name: Option<String>,
    #[serde(default)]
    pub insecure_skip_verify: bool,
    /// `TLS12` (default) or `TLS13`.
    pub min_version: Option<String>,
}

/// `opsgenie`: Alert API v2, one alert per notification group.
#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct Opsgenie {
    pub api_key: String,
    #[serde(default = "default_opsgenie_url")]
    pub api_url: String,
    /// Teams, users, escalations or schedules: `{type: team, name: ops}`.
    #[serde(default)]
    pub responders: Vec<BTreeMap<String, String>>,
    #[serde(default)]
    pub tags: Vec<String>,
}

fn default_opsgenie_url() -> String {
    "https://api.opsgenie.com/".to_string()
}

/// `msteams`: a Teams workflow ("Post to a channel when a webhook request is received")
/// with an Adaptive Card, as Alertmanager's `msteamsv2_configs` sends.
#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct Msteams {
    pub webhook_url: String,
}

/// `telegram`: the Bot API's `sendMessage` to one chat.
#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct Telegram {
    pub bot_token: String,
    /// A chat id (a number; groups and channels are negative) or `@channelusername`.
    pub chat_id: ChatId,
    #[serde(default = "default_telegram_url")]
    pub api_url: String,
    /// A topic of a forum group.
    pub message_thread_id: Option<i64>,
    #[serde(default)]
    pub disable_notifications: bool,
}

#[derive(Debug, Deserialize, Clone, serde::Serialize, PartialEq)]
#[serde(untagged, try_from = "serde_norway::Value")]
pub enum ChatId {
    Id(i64),
    Name(String),
}

impl TryFrom<serde_norway::Value> for ChatId {
    type Error = String;

    fn try_from(v: serde_norway::Value) -> Result<Self, String> {
        match v {
            serde_norway::Value::Number(n) if n.as_i64().is_some() => {
                Ok(ChatId::Id(n.as_i64().unwrap_or_default()))
            }
            serde_norway::Value::String(s) if s.starts_with('@') && s.len() > 1 => {
                Ok(ChatId::Name(s))
            }
            _ => Err("a chat id (a number) or @channelusername".to_string()),
        }
    }
}

fn default_telegram_url() -> String {
    "https://api.telegram.org".to_string()
}

/// `ntfy`: ntfy's JSON publish to a topic.
#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct Ntfy {
    /// The server (default `https://ntfy.sh`).
    #[serde(default = "default_ntfy_url")]
    pub url: String,
    pub topic: String,
    /// An access token (`tk_...`), sent as a bearer token.
    pub token: Option<String>,
    pub username: Option<String>,
    pub password: Option<String>,
}

fn default_ntfy_url() -> String {
    "https://ntfy.sh".to_string()
}

/// `discord`: a channel's webhook.
#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct Discord {
    pub webhook_url: String,
    pub username: Option<String>,
    pub avatar_url: Option<String>,
}

impl Email {
    /// The smarthost's host and port.
    pub fn host_port(&self) -> Result<(&str, u16), String> {
        let bad = || {
            format!(
                "smarthost {:?} is not HOST:PORT (e.g. smtp.example.com:587)",
                self.smarthost
            )
        };
        let (host, port) = self.smarthost.rsplit_once(':').ok_or_else(bad)?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let port: u16 = port.parse().map_err(|_| bad())?;
        if host.is_empty() || port == 0 {
            return Err(bad());
        }
        Ok((host, port))
    }

    pub fn check(&self) -> Result<(), String> {
        let to = email::mailboxes(&self.to).map_err(|e| format!("to: {e}"))?;
        if to.iter().next().is_none() {
            return Err("to: give at least one address".to_string());
        }
        email::mailboxes(&self.from)
            .and_then(|f| {
                if f.iter().count() == 1 {
                    Ok(())
                } else {
                    Err("give one address".to_string())
                }
            })
            .map_err(|e| format!("from: {e}"))?;
        self.host_port()?;
        if self.hello.as_ref().is_some_and(|h| h.trim().is_empty()) {
            return Err("hello: must not be empty".to_string());
        }
        match (&self.auth_username, &self.auth_password) {
            (None, Some(_)) => return Err("auth_password: give auth_username too".to_string()),
            (Some(_), None) => return Err("auth_username: give auth_password too".to_string()),
            _ => {}
        }
        if let Some(id) = self.auth_identity.as_deref().filter(|i| !i.is_empty()) {
            if Some(id) != self.auth_username.as_deref() {
                return Err(format!(
                    "auth_identity {id:?}: only empty or the same as auth_username is supported"
                ));
            }
        }
        self.tls_config
            .check()
            .map_err(|e| format!("tls_config.{e}"))?;
        for (name, value) in &self.headers {
            if matches!(name.to_ascii_lowercase().as_str(), "to" | "from") {
                return Err(format!(
                    "headers.{name}: set the {} field instead",
                    name.to_ascii_lowercase()
                ));
            }
            if name.is_empty() || !name.bytes().all(|b| b.is_ascii_graphic() && b != b':') {
                return Err(format!("headers: {name:?} is not a header name"));
            }
            email::check_template(value).map_err(|e| format!("headers.{name}: {e}"))?;
        }
        for (field, t) in [("html", &self.html), ("text", &self.text)] {
            if let Some(t) = t {
                email::check_template(t).map_err(|e| format!("{field}: {e}"))?;
            }
        }
        Ok(())
    }
}

impl TlsConfig {
    fn check(&self) -> Result<(), String> {
        if let Some(v) = &self.min_version {
            if !matches!(v.as_str(), "TLS12" | "TLS13") {
                return Err(format!(
                    "min_version {v:?}: TLS12 or TLS13 (older versions are not supported)"
                ));
            }
        }
        if let Some(f) = &self.ca_file {
            email::read_ca(f).map_err(|e| format!("ca_file: {e}"))?;
        }
        if self.server_name.as_ref().is_some_and(|s| s.is_empty()) {
            return Err("server_name: must not be empty".to_string());
        }
        Ok(())
    }
}

impl Opsgenie {
    pub fn check(&self) -> Result<(), String> {
        if self.api_key.trim().is_empty() {
            return Err("api_key: must not be empty".to_string());
        }
        for (i, r) in self.responders.iter().enumerate() {
            let kind = r.get("type").map(String::as_str);
            if !matches!(kind, Some("team" | "user" | "escalation" | "schedule")) {
                return Err(format!(
                    "responders[{i}].type: team, user, escalation or schedule"
                ));
            }
            if !["id", "name", "username"]
                .iter()
                .any(|k| r.contains_key(*k))
            {
                return Err(format!("responders[{i}]: give id, name or username"));
            }
        }
        Ok(())
    }
}

impl Telegram {
    pub fn check(&self) -> Result<(), String> {
        // The token is NUMBER:SECRET; it goes in the URL's path.
        let ok = self.bot_token.split_once(':').is_some_and(|(id, secret)| {
            !id.is_empty()
                && id.bytes().all(|b| b.is_ascii_digit())
                && !secret.is_empty()
                && secret
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        });
        if !ok {
            return Err("bot_token: not a bot token (NUMBER:SECRET, from @BotFather)".to_string());
        }
        Ok(())
    }
}

impl Ntfy {
    pub fn check(&self) -> Result<(), String> {
        if self.topic.is_empty()
            || self.topic.len() > 64
            || !self
                .topic
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        {
            return Err(format!(
                "topic {:?}: 1 to 64 letters, digits, - or _",
                self.topic
            ));
        }
        if self.token.is_some() && (self.username.is_some() || self.password.is_some()) {
            return Err("token: give a token or username and password, not both".to_string());
        }
        if self.username.is_some() != self.password.is_some() {
            return Err("username: give username and password together".to_string());
        }
        Ok(())
    }
}
