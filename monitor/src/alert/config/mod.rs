//! The alerting config file (`--alert.config`): rule files, default rules, receivers,
//! routes, delivery, heartbeat, watched services and probes. Checked whole at start and by
//! `monitor check-config`; every error names the file and the field.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    time::Duration,
};

mod fields;
pub mod receivers;
mod validate;

use anyhow::{bail, Context as _};
use serde::Deserialize;

use super::rules::{self, Rule, DEFAULT_RULES, DEFAULT_RULES_NAME};

pub use fields::{Dur, Matchers, Re};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub rule_files: Vec<PathBuf>,
    #[serde(default)]
    pub default_rules: DefaultRules,
    /// Added to every alert (default: `instance`, the host name).
    pub external_labels: Option<BTreeMap<String, String>>,
    /// Base of each alert's `generatorURL` (default `http://HOSTNAME:PORT`).
    pub external_url: Option<String>,
    #[serde(default)]
    pub receivers: Vec<Receiver>,
    pub route: Option<Route>,
    #[serde(default)]
    pub delivery: Delivery,
    pub heartbeat: Option<Heartbeat>,
    #[serde(default)]
    pub services: Vec<Service>,
    #[serde(default)]
    pub probes: Vec<Probe>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DefaultRules {
    #[serde(default = "yes")]
    pub enabled: bool,
    #[serde(default)]
    pub disabled: Vec<String>,
}

fn yes() -> bool {
    true
}

impl Default for DefaultRules {
    fn default() -> Self {
        Self {
            enabled: true,
            disabled: Vec::new(),
        }
    }
}

#[derive(Debug, Deserialize, Clone)]
#[serde(try_from = "ReceiverYaml")]
pub struct Receiver {
    pub name: String,
    pub kind: ReceiverKind,
    /// At most this many notifications per `per` (the rest wait in the queue).
    pub rate_limit: Option<RateLimit>,
    pub timeout: Dur,
}

/// A receiver as written: its name and exactly one of the kinds.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReceiverYaml {
    name: String,
    webhook: Option<serde_norway::Value>,
    alertmanager: Option<serde_norway::Value>,
    slack: Option<serde_norway::Value>,
    pagerduty: Option<serde_norway::Value>,
    command: Option<serde_norway::Value>,
    email: Option<serde_norway::Value>,
    opsgenie: Option<serde_norway::Value>,
    msteams: Option<serde_norway::Value>,
    telegram: Option<serde_norway::Value>,
    ntfy: Option<serde_norway::Value>,
    discord: Option<serde_norway::Value>,
    rate_limit: Option<RateLimit>,
    #[serde(default = "default_timeout")]
    timeout: Dur,
}

impl TryFrom<ReceiverYaml> for Receiver {
    type Error = String;

    fn try_from(r: ReceiverYaml) -> Result<Self, String> {
        let kinds = [
            ("webhook", r.webhook),
            ("alertmanager", r.alertmanager),
            ("slack", r.slack),
            ("pagerduty", r.pagerduty),
            ("command", r.command),
            ("email", r.email),
            ("opsgenie", r.opsgenie),
            ("msteams", r.msteams),
            ("telegram", r.telegram),
            ("ntfy", r.ntfy),
            ("discord", r.discord),
        ];
        let given: Vec<(&str, serde_norway::Value)> = kinds
            .into_iter()
            .filter_map(|(k, v)| Some((k, v?)))
            .collect();
        let [(kind, settings)] = <[_; 1]>::try_from(given).map_err(|g| {
            format!(
                "receiver {:?}: give exactly one of {} (got {})",
                r.name,
                KINDS.join(", "),
                g.len()
            )
        })?;
        // A YAML-tagged value (`!webhook {...}`) is how serde_norway reads an enum from a Value.
        let tagged = serde_norway::value::TaggedValue {
            tag: serde_norway::value::Tag::new(kind),
            value: settings,
        };
        // With the path inside the kind's settings, so an error names the field.
        let kind = serde_path_to_error::deserialize(serde_norway::Value::Tagged(Box::new(tagged)))
            .map_err(|e| {
                // The path starts with the kind (the enum's variant).
                let path = e.path().to_string();
                let at = if path == "." { kind.to_string() } else { path };
                format!("receiver {:?}: {at}: {}", r.name, e.into_inner())
            })?;
        Ok(Receiver {
            name: r.name,
            kind,
            rate_limit: r.rate_limit,
            timeout: r.timeout,
        })
    }
}

/// The receiver kinds, as written in the config.
pub const KINDS: &[&str] = &[
    "webhook",
    "alertmanager",
    "slack",
    "pagerduty",
    "command",
    "email",
    "opsgenie",
    "msteams",
    "telegram",
    "ntfy",
    "discord",
];

fn default_timeout() -> Dur {
    Dur(Duration::from_secs(10))
}

#[derive(Debug, Deserialize, Clone, Copy)]
#[serde(deny_unknown_fields)]
pub struct RateLimit {
    pub count: u32,
    pub per: Dur,
}

#[derive(Debug, Deserialize, Clone)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum ReceiverKind {
    Webhook {
        url: String,
    },
    /// One Alertmanager (`url`) or every Alertmanager of a highly available cluster
    /// (`urls`): each alert goes to all of them, as Prometheus sends it, and the cluster
    /// deduplicates the notifications.
    Alertmanager {
        url: Option<String>,
        #[serde(default)]
        urls: Vec<String>,
        /// How often firing alerts are sent again (Alertmanager resolves what it stops hearing of).
        #[serde(default = "default_resend")]
        resend_interval: Dur,
    },
    Slack {
        url: String,
        channel: Option<String>,
    },
    Pagerduty {
        routing_key: String,
        #[serde(default = "default_pagerduty_url")]
        url: String,
    },
    Command {
        path: PathBuf,
        #[serde(default)]
        args: Vec<String>,
    },
    Email(Box<receivers::Email>),
    Opsgenie(receivers::Opsgenie),
    Msteams(receivers::Msteams),
    Telegram(receivers::Telegram),
    Ntfy(receivers::Ntfy),
    Discord(receivers::Discord),
}

fn default_resend() -> Dur {
    Dur(Duration::from_secs(60))
}

fn default_pagerduty_url() -> String {
    "https://events.pagerduty.com/v2/enqueue".to_string()
}

impl ReceiverKind {
    pub fn kind(&self) -> &'static str {
        match self {
            ReceiverKind::Webhook { .. } => "webhook",
            ReceiverKind::Alertmanager { .. } => "alertmanager",
            ReceiverKind::Slack { .. } => "slack",
            ReceiverKind::Pagerduty { .. } => "pagerduty",
            ReceiverKind::Command { .. } => "command",
            ReceiverKind::Email(_) => "email",
            ReceiverKind::Opsgenie(_) => "opsgenie",
            ReceiverKind::Msteams(_) => "msteams",
            ReceiverKind::Telegram(_) => "telegram",
            ReceiverKind::Ntfy(_) => "ntfy",
            ReceiverKind::Discord(_) => "discord",
        }
    }

    /// The Alertmanagers of an `alertmanager` receiver: `url` or every one of `urls`.
    pub fn alertmanagers(&self) -> Vec<&str> {
        match self {
            ReceiverKind::Alertmanager { url, urls, .. } => {
                url.iter().chain(urls).map(String::as_str).collect()
            }
            _ => Vec::new(),
        }
    }

    /// The URLs to check (field name, URL).
    fn urls(&self) -> Vec<(String, &str)> {
        match self {
            ReceiverKind::Alertmanager { url: Some(u), .. } => vec![("url".to_string(), u)],
            ReceiverKind::Alertmanager { urls, .. } => urls
                .iter()
                .enumerate()
                .map(|(i, u)| (format!("urls[{i}]"), u.as_str()))
                .collect(),
            ReceiverKind::Webhook { url }
            | ReceiverKind::Slack { url, .. }
            | ReceiverKind::Pagerduty { url, .. } => vec![("url".to_string(), url)],
            ReceiverKind::Command { .. } | ReceiverKind::Email(_) => vec![],
            ReceiverKind::Opsgenie(o) => vec![("api_url".to_string(), &o.api_url)],
            ReceiverKind::Msteams(m) => vec![("webhook_url".to_string(), &m.webhook_url)],
            ReceiverKind::Telegram(t) => vec![("api_url".to_string(), &t.api_url)],
            ReceiverKind::Ntfy(n) => vec![("url".to_string(), &n.url)],
            ReceiverKind::Discord(d) => {
                let mut v = vec![("webhook_url".to_string(), d.webhook_url.as_str())];
                if let Some(a) = &d.avatar_url {
                    v.push(("avatar_url".to_string(), a));
                }
                v
            }
        }
    }

    /// The checks of each kind's own fields: the field at fault and what is wrong.
    fn check(&self) -> Result<(), String> {
        match self {
            ReceiverKind::Alertmanager { url, urls, .. } => match (url, urls.is_empty()) {
                (Some(_), false) => Err("urls: give url or urls, not both".to_string()),
                (None, true) => Err("url: missing (give url, or urls for a cluster)".to_string()),
                _ => Ok(()),
            },
            ReceiverKind::Email(e) => e.check(),
            ReceiverKind::Opsgenie(o) => o.check(),
            ReceiverKind::Telegram(t) => t.check(),
            ReceiverKind::Ntfy(n) => n.check(),
            _ => Ok(()),
        }
    }
}

#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct Route {
    pub receiver: Option<String>,
    pub matchers: Option<Matchers>,
    pub group_by: Option<Vec<String>>,
    pub group_wait: Option<Dur>,
    pub group_interval: Option<Dur>,
    pub repeat_interval: Option<Dur>,
    #[serde(default, rename = "continue")]
    pub continue_: bool,
    #[serde(default)]
    pub routes: Vec<Route>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Delivery {
    /// Notifications waiting on disk, all receivers together; past it the oldest is dropped
    /// (counted in `monitor_alert_queue_dropped_total`).
    #[serde(default = "default_max_queue")]
    pub max_queue: usize,
    #[serde(default = "default_initial_backoff")]
    pub initial_backoff: Dur,
    #[serde(default = "default_max_backoff")]
    pub max_backoff: Dur,
}

fn default_max_queue() -> usize {
    10_000
}
fn default_initial_backoff() -> Dur {
    Dur(Duration::from_millis(500))
}
fn default_max_backoff() -> Dur {
    Dur(Duration::from_secs(300))
}

impl Default for Delivery {
    fn default() -> Self {
        Self {
            max_queue: default_max_queue(),
            initial_backoff: default_initial_backoff(),
            max_backoff: default_max_backoff(),
        }
    }
}

#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct Heartbeat {
    pub url: String,
    #[serde(default = "default_heartbeat_interval")]
    pub interval: Dur,
    #[serde(default = "default_method")]
    pub method: String,
    #[serde(default = "default_timeout")]
    pub timeout: Dur,
}

fn default_heartbeat_interval() -> Dur {
    Dur(Duration::from_secs(60))
}
fn default_method() -> String {
    "POST".to_string()
}

#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct Service {
    pub name: String,
    pub comm: Option<Re>,
    pub exe: Option<Re>,
    pub cmdline: Option<Re>,
    /// Alert when it started more than this many times within `window`.
    #[serde(default = "default_max_restarts")]
    pub max_restarts: u32,
    #[serde(default = "default_restart_window")]
    pub window: Dur,
    #[serde(default = "default_service_for")]
    #[serde(rename = "for")]
    pub for_: Dur,
    #[serde(default = "default_critical")]
    pub severity: String,
}

fn default_max_restarts() -> u32 {
    3
}
fn default_restart_window() -> Dur {
    Dur(Duration::from_secs(600))
}
fn default_service_for() -> Dur {
    Dur(Duration::from_secs(60))
}
fn default_critical() -> String {
    "critical".to_string()
}

#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct Probe {
    pub name: String,
    pub http: Option<HttpProbe>,
    pub tcp: Option<TcpProbe>,
    #[serde(default = "default_probe_interval")]
    pub interval: Dur,
    #[serde(default = "default_probe_timeout")]
    pub timeout: Dur,
    #[serde(default = "default_service_for")]
    #[serde(rename = "for")]
    pub for_: Dur,
    #[serde(default = "default_critical")]
    pub severity: String,
}

fn default_probe_interval() -> Dur {
    Dur(Duration::from_secs(15))
}
fn default_probe_timeout() -> Dur {
    Dur(Duration::from_secs(5))
}

#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct HttpProbe {
    pub url: String,
    /// Status codes that count as up (default: any 2xx or 3xx).
    #[serde(default)]
    pub expect_status: Vec<u16>,
}

#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct TcpProbe {
    pub address: String,
}

/// The checked config with its rules loaded: what the daemon runs.
pub struct Loaded {
    pub config: Config,
    pub rules: Vec<Rule>,
}

/// No config file: the default rules, nothing to notify.
pub fn defaults() -> anyhow::Result<Loaded> {
    let config: Config = serde_norway::from_str("{}").context("empty config")?;
    let rules = rules::parse(DEFAULT_RULES_NAME, DEFAULT_RULES)?;
    Ok(Loaded { config, rules })
}

pub fn load(path: &Path) -> anyhow::Result<Loaded> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path)
        .map_err(|e| anyhow::anyhow!("{file}: cannot read the alerting config: {e}"))?;
    let config: Config = rules::from_yaml(&file, &text)?;
    validate::validate(&file, &config)?;
    let mut rules = Vec::new();
    if config.default_rules.enabled {
        rules = rules::parse(DEFAULT_RULES_NAME, DEFAULT_RULES)?;
        for name in &config.default_rules.disabled {
            if !rules.iter().any(|r| &r.name == name) {
                bail!("{file}: default_rules.disabled: {name:?} is not a default rule");
            }
        }
        rules.retain(|r| !config.default_rules.disabled.contains(&r.name));
    }
    let base = path.parent().unwrap_or(Path::new("."));
    for f in &config.rule_files {
        let p = base.join(f);
        let user = rules::load(&p)?;
        // A user rule replaces the default of the same name.
        rules.retain(|d| d.file != DEFAULT_RULES_NAME || !user.iter().any(|u| u.name == d.name));
        rules.extend(user);
    }
    Ok(Loaded { config, rules })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load_text(text: &str) -> anyhow::Result<Loaded> {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("alerting.yml");
        std::fs::write(&p, text).unwrap();
        std::fs::write(
            dir.path().join("r.yml"),
            "groups:\n- name: g\n  rules:\n  - alert: HostCPUBusy\n    expr: monitor_processes > 1\n",
        )
        .unwrap();
        load(&p)
    }

    #[test]
    fn a_full_config() {
        let l = load_text(
            r#"
rule_files: [r.yml]
default_rules: {disabled: [HostMemoryLow]}
receivers:
  - name: am
    alertmanager: {url: "http://127.0.0.1:9093"}
  - name: hook
    webhook: {url: "http://127.0.0.1:1/x"}
    rate_limit: {count: 5, per: 1m}
route:
  receiver: am
  routes:
    - receiver: hook
      matchers: ['severity="critical"', 'alertname=~"Host.*"']
      group_by: [alertname]
      group_wait: 1s
heartbeat: {url: "http://127.0.0.1:1/ping", interval: 1m}
services:
  - {name: sshd, comm: "^sshd$"}
probes:
  - {name: api, http: {url: "http://127.0.0.1:1/"}}
  - {name: db, tcp: {address: "127.0.0.1:5432"}}
"#,
        )
        .unwrap();
        assert!(!l.rules.iter().any(|r| r.name == "HostMemoryLow"));
        let cpu: Vec<_> = l.rules.iter().filter(|r| r.name == "HostCPUBusy").collect();
        assert_eq!(cpu.len(), 1);
        assert_eq!(cpu[0].expr_text, "monitor_processes > 1");
    }

    #[test]
    fn errors_name_the_field() {
        for (text, want) in [
            (
                "receivers: [{name: a, webhook: {url: 'nope'}}]",
                "receivers[0] (\"a\"): url",
            ),
            ("receivers: [{name: a, fax: {}}]", "unknown field `fax`"),
            ("receivers: [{name: a}]", "give exactly one of webhook"),
            (
                "receivers: [{name: a, slack: {url: 'http://x/', colour: red}}]",
                "slack.colour: unknown field `colour`",
            ),
            (
                "route: {receiver: b}",
                "route.receiver: \"b\" is not a configured receiver",
            ),
            (
                "receivers: [{name: a, webhook: {url: 'http://x/'}, timeout: soon}]",
                "not a duration",
            ),
            (
                "route: {routes: [{matchers: ['severity=~\"(\"']}]}",
                "is not a matcher",
            ),
            (
                "default_rules: {disabled: [Nope]}",
                "default_rules.disabled: \"Nope\"",
            ),
            ("probes: [{name: p}]", "probes[0] (\"p\"): give exactly one"),
            ("services: [{name: s}]", "give comm, exe or cmdline"),
            (
                "services: [{name: \"it's\", comm: x}]",
                "services[0] (\"it's\"): name must be unique",
            ),
            (
                "probes: [{name: p, http: {url: 'http://x/', expect_status: [1000]}}]",
                "expect_status: 1000",
            ),
            (
                "heartbeat: {url: 'http://x/', interval: 1ms}",
                "heartbeat.interval",
            ),
            ("colour: blue", "unknown field `colour`"),
            (
                "receivers: [{name: m, email: {from: a@b.c, smarthost: 'x:25'}}]",
                "receiver \"m\": email: missing field `to`",
            ),
            (
                "receivers: [{name: m, email: {to: o@b.c, from: a@b.c, smarthost: mx.example.com}}]",
                "receivers[0] (\"m\"): email.smarthost \"mx.example.com\" is not HOST:PORT",
            ),
            (
                "receivers: [{name: m, email: {to: o@b.c, from: a@b.c, smarthost: 'mx:587', tls_config: {min_version: TLS10}}}]",
                "email.tls_config.min_version \"TLS10\": TLS12 or TLS13",
            ),
            (
                "receivers: [{name: m, email: {to: o@b.c, from: a@b.c, smarthost: 'mx:587', tls_config: {ca_file: /nonexistent.pem}}}]",
                "email.tls_config.ca_file: cannot read /nonexistent.pem",
            ),
            (
                "receivers: [{name: m, email: {to: o@b.c, from: a@b.c, smarthost: 'mx:587', require_tls: maybe}}]",
                "email.require_tls: invalid type",
            ),
            (
                "receivers: [{name: m, email: {to: 'ops', from: a@b.c, smarthost: 'mx:587'}}]",
                "email.to: \"ops\" is not a list of email addresses",
            ),
            (
                "receivers: [{name: m, email: {to: o@b.c, from: a@b.c, smarthost: 'mx:587', text: '{% for %}'}}]",
                "email.text: not a template",
            ),
            (
                "receivers: [{name: m, email: {to: o@b.c, from: a@b.c, smarthost: 'mx:587', auth_password: x}}]",
                "email.auth_password: give auth_username too",
            ),
            (
                "receivers: [{name: m, email: {to: o@b.c, from: a@b.c, smarthost: 'mx:587', headers: {To: x@y.z}}}]",
                "email.headers.To: set the to field instead",
            ),
            (
                "receivers: [{name: m, telegram: {bot_token: nope, chat_id: 1}}]",
                "telegram.bot_token: not a bot token",
            ),
            (
                "receivers: [{name: m, telegram: {bot_token: '1:x', chat_id: ops}}]",
                "telegram.chat_id: a chat id (a number) or @channelusername",
            ),
            (
                "receivers: [{name: m, ntfy: {topic: 'a/b'}}]",
                "ntfy.topic \"a/b\": 1 to 64 letters",
            ),
            (
                "receivers: [{name: m, opsgenie: {api_key: k, responders: [{name: ops}]}}]",
                "opsgenie.responders[0].type",
            ),
            (
                "receivers: [{name: m, discord: {webhook_url: 'discord.com/api/webhooks/1/x'}}]",
                "discord.webhook_url \"discord.com/api/webhooks/1/x\"",
            ),
            (
                "receivers: [{name: a, alertmanager: {}}]",
                "receivers[0] (\"a\"): alertmanager.url: missing (give url, or urls for a cluster)",
            ),
            (
                "receivers: [{name: a, alertmanager: {url: 'http://a/', urls: ['http://b/']}}]",
                "alertmanager.urls: give url or urls, not both",
            ),
            (
                "receivers: [{name: a, alertmanager: {urls: ['http://a:9093', 'b:9093']}}]",
                "receivers[0] (\"a\"): urls[1] \"b:9093\"",
            ),
            (
                "receivers: [{name: m, msteams: {url: 'https://x/'}}]",
                "msteams.url: unknown field `url`, expected `webhook_url`",
            ),
        ] {
            let e = format!(
                "{:#}",
                load_text(text)
                    .err()
                    .unwrap_or_else(|| panic!("{text} accepted"))
            );
            assert!(e.contains(want), "{text}: {e}");
            assert!(e.contains("alerting.yml"), "{text}: {e}");
        }
    }
}
