//! Alerting: rules evaluated over the daemon's own samples, alert states, routing and
//! grouping, a durable queue, receivers, and the "system down" parts (heartbeat, watched
//! services, endpoint probes). `run.rs` starts it with `start`; `monitor check-config` and
//! `monitor alert test` use `load`.

pub mod api;
pub mod catalog;
pub mod cli;
pub mod config;
pub mod deliver;
pub mod dispatch;
pub mod engine;
pub mod expr;
pub mod heartbeat;
pub mod metrics;
pub mod notify;
pub mod probes;
pub mod queue;
pub mod rules;
pub mod services;
pub mod state;
pub mod template;

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

pub use config::Loaded;

/// The alerting config (or the defaults without one), with the rules generated for watched
/// services and probes added.
pub fn load(path: Option<&Path>) -> anyhow::Result<Loaded> {
    let mut loaded = match path {
        Some(p) => config::load(p)?,
        None => config::defaults()?,
    };
    let file = path.map_or_else(|| "defaults".to_string(), |p| p.display().to_string());
    if !loaded.config.services.is_empty() {
        let text = services::rules(&loaded.config.services);
        loaded
            .rules
            .extend(rules::parse(&format!("{file} (services)"), &text)?);
    }
    if !loaded.config.probes.is_empty() {
        let text = probes::rules(&loaded.config.probes);
        loaded
            .rules
            .extend(rules::parse(&format!("{file} (probes)"), &text)?);
    }
    Ok(loaded)
}

pub struct Options {
    pub state_dir: PathBuf,
    pub interval: Duration,
    /// The daemon's scheme (https with TLS) and port, for the default external URL.
    pub scheme: &'static str,
    pub port: u16,
}

pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_string())
}

/// Labels added to every alert: the configured ones, or `instance` (the host name).
pub fn external_labels(c: &config::Config) -> expr::Labels {
    match &c.external_labels {
        Some(l) => l.clone().into_iter().collect(),
        None => BTreeMap::from([("instance".to_string(), hostname())]),
    }
}

/// Alerting set up, its evaluation not started yet (it reads what the daemon serves).
pub struct Alerting {
    engine: engine::Engine,
    status: api::Status,
}

impl Alerting {
    /// Starts the evaluation thread, which reads the daemon's families from `reader`.
    pub fn run(self, reader: Arc<crate::scrape::Reader>) -> anyhow::Result<api::Status> {
        engine::spawn(self.engine, reader)?;
        Ok(self.status)
    }
}

/// Starts the senders, the heartbeat and the probes, and adds the alerting metrics to the
/// daemon's families: the watched services to every snapshot (they read the process table),
/// the counters to every scrape.
pub fn start(
    loaded: Loaded,
    opts: Options,
    core: &mut crate::core::Core,
    scrape: &mut crate::scrape::Scrape,
) -> anyhow::Result<Alerting> {
    let Loaded { config, rules } = loaded;
    let host = hostname();
    let external_url = config
        .external_url
        .clone()
        .unwrap_or_else(|| format!("{}://{host}:{}", opts.scheme, opts.port));
    let mut metrics = metrics::Metrics {
        receivers: config.receivers.iter().map(|r| r.name.clone()).collect(),
        ..Default::default()
    };
    let queue = if config.receivers.is_empty() {
        None
    } else {
        let q = Arc::new(queue::Queue::open(
            &opts.state_dir,
            config.delivery.max_queue,
        )?);
        for (receiver, n) in q.stats().0 {
            if !metrics.receivers.contains(&receiver) {
                tracing::warn!(receiver = %receiver, notifications = n, "queued notifications for a receiver no longer configured stay queued until it is configured again");
            }
        }
        metrics.queue = Some(q.clone());
        Some(q)
    };
    let heartbeat = Arc::new(heartbeat::Stats::default());
    let probes = probes::Probes::default();
    let services = services::Services::new(&config.services);
    core.add_source(Box::new(move |table, out| services.families(table, out)));
    {
        let (metrics, heartbeat, probes) = (metrics.clone(), heartbeat.clone(), probes.clone());
        let has_heartbeat = config.heartbeat.is_some();
        scrape.add_source(Box::new(move |out| {
            metrics.families(out);
            if has_heartbeat {
                heartbeat.families(out);
            }
            probes.families(out);
        }));
    }
    if let Some(q) = &queue {
        for r in config.receivers.iter() {
            deliver::spawn(
                r.clone(),
                q.clone(),
                metrics.clone(),
                &config.delivery,
                host.clone(),
            )?;
        }
    }
    if let Some(h) = config.heartbeat.clone() {
        heartbeat::spawn(h, heartbeat)?;
    }
    for p in &config.probes {
        probes::spawn(p.clone(), probes.clone())?;
    }
    let status = api::Status::default();
    let engine = engine::Engine::new(
        rules,
        &config,
        external_labels(&config),
        external_url,
        opts.interval,
        queue,
        metrics,
        status.clone(),
    );
    Ok(Alerting { engine, status })
}
