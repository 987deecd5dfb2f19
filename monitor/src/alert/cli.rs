//! The alerting flags of `monitor run`, and the `check-config` and `alert test` commands.

use std::{path::PathBuf, time::Duration};

use clap::{Args, Subcommand};

use super::{
    config::Receiver,
    notify::{self, payload::AlertJson, payload::Notification, Outcome},
};

#[derive(Args, Debug, Clone)]
pub struct AlertArgs {
    /// The alerting config file: rule files, receivers, routes, heartbeat, watched
    /// services, probes (see the README). Without it the default rules run and their
    /// alerts are shown on /api/v1/alerts and /metrics, but nothing is notified.
    #[arg(long = "alert.config", value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Where undelivered notifications are kept (in queue/), so they survive a restart.
    #[arg(
        long = "alert.state-dir",
        value_name = "DIR",
        default_value = "/var/lib/monitor"
    )]
    pub state_dir: PathBuf,

    /// How often the alert rules are evaluated.
    #[arg(id = "alert_evaluation_interval", long = "alert.evaluation-interval", default_value = "15s", value_parser = parse_interval)]
    pub interval: Duration,
}

fn parse_interval(s: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(s).map_err(|e| format!("{s:?}: {e} (e.g. 15s, 500ms)"))?;
    if d < Duration::from_millis(100) {
        return Err(format!("{s:?} is below the 100ms minimum"));
    }
    Ok(d)
}

#[derive(Args, Debug)]
pub struct CheckConfigArgs {
    /// The alerting config file to check (with its rule files); without it, the default
    /// rules are checked.
    #[arg(long = "alert.config", value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// A remote write config file (monitor run's --remote-write.config) to check too, with
    /// the files it names.
    #[arg(
        id = "remote_write_config",
        long = "remote-write.config",
        value_name = "FILE"
    )]
    pub remote_write: Option<PathBuf>,

    /// A web config file (monitor run's --web.config.file) to check too, with the
    /// certificate and key files it names.
    #[arg(id = "web_config_file", long = "web.config.file", value_name = "FILE")]
    pub web_config: Option<PathBuf>,
}

#[derive(Subcommand, Debug)]
pub enum AlertCommand {
    /// Send a test notification through each configured receiver, now, and report each.
    Test {
        /// The alerting config file.
        #[arg(long = "alert.config", value_name = "FILE")]
        config: PathBuf,
        /// Only this receiver.
        #[arg(long)]
        receiver: Option<String>,
    },
}

/// `monitor check-config`: loads and checks everything, prints a summary.
pub fn check_config(a: &CheckConfigArgs) -> anyhow::Result<()> {
    let loaded = super::load(a.config.as_deref())?;
    let remote_write = match &a.remote_write {
        Some(p) => {
            let args = crate::remote_write::RemoteWriteArgs {
                urls: Vec::new(),
                config: Some(p.clone()),
                interval: Duration::from_secs(15),
                spool_dir: PathBuf::new(),
                spool_size: 0,
            };
            let endpoints = crate::remote_write::load(&args, ([0, 0, 0, 0], 9957).into())?;
            let names: Vec<&str> = endpoints.iter().map(|e| e.name.as_str()).collect();
            Some(format!(
                "{}: OK: {} remote write endpoints ({})",
                p.display(),
                endpoints.len(),
                names.join(", ")
            ))
        }
        None => None,
    };
    let web = a
        .web_config
        .as_deref()
        .map(crate::web::config::WebConfig::load)
        .transpose()?;
    let defaults = loaded
        .rules
        .iter()
        .filter(|r| r.file == super::rules::DEFAULT_RULES_NAME)
        .count();
    println!(
        "{}: OK: {} alert rules ({defaults} default), {} receivers, {} watched services, {} probes{}",
        a.config
            .as_ref()
            .map_or_else(|| "default rules".to_string(), |p| p.display().to_string()),
        loaded.rules.len(),
        loaded.config.receivers.len(),
        loaded.config.services.len(),
        loaded.config.probes.len(),
        if loaded.config.heartbeat.is_some() { ", a heartbeat" } else { "" },
    );
    if let Some(line) = remote_write {
        println!("{line}");
    }
    if let Some(w) = web {
        println!("{}", w.summary());
    }
    Ok(())
}

/// `monitor alert test`: one firing test alert through each receiver, without the queue.
pub fn command(c: &AlertCommand) -> anyhow::Result<()> {
    let AlertCommand::Test { config, receiver } = c;
    let loaded = super::load(Some(config))?;
    let receivers: Vec<&Receiver> = loaded
        .config
        .receivers
        .iter()
        .filter(|r| receiver.as_ref().is_none_or(|n| &r.name == n))
        .collect();
    if receivers.is_empty() {
        anyhow::bail!(
            "{}: no receiver{} to test",
            config.display(),
            receiver
                .as_ref()
                .map(|n| format!(" named {n:?}"))
                .unwrap_or_default()
        );
    }
    let host = super::hostname();
    let mut failed = 0;
    for r in receivers {
        let n = test_notification(&r.name, &host, &loaded.config);
        match notify::send(r, &n, &host) {
            Outcome::Delivered => println!("{} ({}): delivered", r.name, r.kind.kind()),
            Outcome::Refused(why) | Outcome::Failed(why) | Outcome::Throttled(why, _) => {
                failed += 1;
                println!("{} ({}): FAILED: {why}", r.name, r.kind.kind());
            }
        }
    }
    if failed > 0 {
        anyhow::bail!("{failed} receiver(s) failed the test");
    }
    Ok(())
}

fn test_notification(receiver: &str, host: &str, c: &super::config::Config) -> Notification {
    let now = std::time::SystemTime::now();
    let mut labels = super::external_labels(c);
    labels.insert("alertname".to_string(), "MonitorTestAlert".to_string());
    labels.insert("severity".to_string(), "info".to_string());
    let fp = super::state::fingerprint(&labels);
    let url = c
        .external_url
        .clone()
        .unwrap_or_else(|| format!("http://{host}"));
    let alert = AlertJson {
        status: "firing".to_string(),
        annotations: [(
            "summary".to_string(),
            format!("test notification from monitor on {host}"),
        )]
        .into(),
        labels: labels.clone(),
        starts_at: super::notify::payload::rfc3339(now),
        // Alertmanager lets it expire by itself.
        ends_at: super::notify::payload::rfc3339(now + Duration::from_secs(300)),
        generator_url: format!("{url}/api/v1/alerts"),
        fingerprint: format!("{fp:016x}"),
        value: None,
    };
    Notification::new(receiver, "{}/test".to_string(), labels, &url, vec![alert])
}
