//! Prometheus remote write 1.0: every series the daemon exports, at a set interval, pushed
//! to one or more endpoints (Mimir, Thanos Receive, Cortex, VictoriaMetrics, a Prometheus
//! with its receiver on), as Prometheus's agent mode does. Each collection is stamped with
//! its snapshot's time, encoded per endpoint in requests of at most its
//! `max_samples_per_send` (`series`, `proto`) and written to that endpoint's spool on disk
//! (`spool`) before its sender (`send`) POSTs them, merged up to that size (`batch`), so an
//! outage of the endpoint or a restart of the daemon loses nothing the spool can hold.
//! `run.rs` calls `setup` before the reader exists (the metrics are a scrape source), then
//! `RemoteWrite::run` with it.

pub mod batch;
pub mod config;
pub mod metrics;
pub mod proto;
pub mod send;
pub mod series;
pub mod spool;
pub mod tls;

use std::{
    collections::HashSet,
    panic::AssertUnwindSafe,
    path::PathBuf,
    sync::Arc,
    time::{Duration, Instant, SystemTime},
};

use clap::Args;

use prometheus::proto::MetricFamily;

use crate::{
    scrape::{Reader, Scrape},
    snapshot::Snapshot,
};

#[derive(Args, Debug, Clone)]
pub struct RemoteWriteArgs {
    /// Push every series to this Prometheus remote write endpoint (e.g.
    /// http://prometheus:9090/api/v1/write), with the default settings. Repeatable; for
    /// credentials, TLS, labels or relabelling use --remote-write.config.
    #[arg(id = "remote_write_url", long = "remote-write.url", value_name = "URL")]
    pub urls: Vec<String>,

    /// A file with a remote_write section of endpoints, in Prometheus's format (url, name,
    /// basic_auth, authorization, tls_config, headers, external_labels,
    /// write_relabel_configs; see the README).
    #[arg(
        id = "remote_write_config",
        long = "remote-write.config",
        value_name = "FILE"
    )]
    pub config: Option<PathBuf>,

    /// How often the series are collected and pushed.
    #[arg(id = "remote_write_interval", long = "remote-write.interval", value_name = "DURATION", default_value = "15s", value_parser = parse_interval)]
    pub interval: Duration,

    /// Where samples wait until their endpoint takes them (a directory per endpoint), so
    /// they survive an outage and a restart.
    #[arg(
        id = "remote_write_spool_dir",
        long = "remote-write.spool-dir",
        value_name = "DIR",
        default_value = "/var/lib/monitor/remote-write"
    )]
    pub spool_dir: PathBuf,

    /// Most bytes each endpoint's spool holds; past it the oldest samples are dropped (and
    /// counted in monitor_remote_write_samples_dropped_total).
    #[arg(id = "remote_write_spool_size", long = "remote-write.spool-size", value_name = "SIZE", default_value = "256MiB", value_parser = parse_size)]
    pub spool_size: u64,
}

fn parse_interval(s: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(s).map_err(|e| format!("{s:?}: {e} (e.g. 15s, 1s)"))?;
    if d < Duration::from_millis(100) {
        return Err(format!("{s:?} is below the 100ms minimum"));
    }
    Ok(d)
}

fn parse_size(s: &str) -> Result<u64, String> {
    let b: bytesize::ByteSize = s
        .parse()
        .map_err(|e| format!("{s:?} is not a size ({e}), e.g. 256MiB"))?;
    if b.as_u64() < 4096 {
        return Err(format!("{s:?} is below the 4KiB minimum"));
    }
    Ok(b.as_u64())
}

/// The endpoints of the flags and the file, checked (`monitor check-config` too). The
/// default `instance` is the query history's, so pushed series and the page's series of a
/// host carry the same one.
pub fn load(
    args: &RemoteWriteArgs,
    listen: std::net::SocketAddr,
) -> anyhow::Result<Vec<config::Endpoint>> {
    let defaults = config::Defaults {
        instance: crate::history::instance(listen),
        job: "monitor".to_string(),
    };
    config::load(args.config.as_deref(), &args.urls, &defaults)
}

struct Target {
    endpoint: config::Endpoint,
    spool: Arc<spool::Spool>,
    counters: Arc<send::Counters>,
}

/// Remote write set up: spools open, senders sending what an earlier run left; collecting
/// starts with `run`.
pub struct RemoteWrite {
    targets: Vec<Target>,
    interval: Duration,
}

/// Opens each endpoint's spool, starts its sender and adds the metrics to every scrape;
/// `None` without endpoints.
pub fn setup(
    args: &RemoteWriteArgs,
    endpoints: Vec<config::Endpoint>,
    scrape: &mut Scrape,
) -> anyhow::Result<Option<RemoteWrite>> {
    if endpoints.is_empty() {
        return Ok(None);
    }
    let mut targets = Vec::new();
    for e in endpoints {
        let dir = args.spool_dir.join(e.name.replace(':', "_"));
        let spool = Arc::new(spool::Spool::open(&dir, args.spool_size)?);
        let counters = Arc::new(send::Counters::default());
        send::spawn(e.clone(), spool.clone(), counters.clone())?;
        targets.push(Target {
            endpoint: e,
            spool,
            counters,
        });
    }
    let shown: Vec<metrics::Endpoint> = targets
        .iter()
        .map(|t| metrics::Endpoint {
            name: t.endpoint.name.clone(),
            spool: t.spool.clone(),
            counters: t.counters.clone(),
        })
        .collect();
    scrape.add_source(Box::new(move |out| metrics::families(&shown, out)));
    Ok(Some(RemoteWrite {
        targets,
        interval: args.interval,
    }))
}

impl RemoteWrite {
    /// Starts collecting from `reader` every interval, the first time now, from the
    /// snapshots the refresher publishes every `refresh` (`--refresh.interval`).
    pub fn run(self, reader: Arc<Reader>, refresh: Duration) -> anyhow::Result<()> {
        for t in &self.targets {
            tracing::info!(endpoint = %t.endpoint.name, url = %crate::alert::notify::redact(&t.endpoint.url), interval = ?self.interval, "remote write on");
        }
        std::thread::Builder::new()
            .name("remote-write".into())
            .spawn(move || self.collect_loop(&reader, refresh))
            .map(|_| ())
            .map_err(|e| anyhow::anyhow!("starting remote write: {e}"))
    }

    fn collect_loop(self, reader: &Reader, refresh: Duration) {
        // Never older than what the spool holds from an earlier run: an endpoint refuses
        // samples older than a series' newest.
        let mut last_ms = self
            .targets
            .iter()
            .filter_map(|t| t.spool.stats().newest_ms)
            .max()
            .unwrap_or(0);
        // Each endpoint's series of the last collection, to mark the vanished ones stale.
        let mut series: Vec<HashSet<Vec<proto::Label>>> = vec![HashSet::new(); self.targets.len()];
        let mut last_seq = 0;
        let mut next = Instant::now();
        loop {
            let now = Instant::now();
            if next > now {
                std::thread::sleep(next - now);
            }
            next += self.interval;
            if next < Instant::now() {
                // A collection took longer than the interval: the next one an interval on.
                next = Instant::now() + self.interval;
            }
            // The refresher's next snapshot, not a refresh of its own: asking for one would
            // double the refreshes at an interval near the refresher's. Waited for at most two
            // refresh intervals (a slow refresh); a refresher stuck longer gives the same one.
            let (snap, now) = reader.parts_after(last_seq, refresh * 2);
            last_seq = snap.seq;
            let tick = std::panic::catch_unwind(AssertUnwindSafe(|| {
                self.collect(&snap, &now, last_ms, &mut series)
            }));
            match tick {
                Ok(ts) => last_ms = ts,
                Err(_) => tracing::error!("a remote write collection panicked; the next runs"),
            }
        }
    }

    /// One collection into every spool, of a snapshot and the families read beside it;
    /// returns its timestamp.
    fn collect(
        &self,
        snap: &Snapshot,
        now: &[MetricFamily],
        last_ms: i64,
        before: &mut [HashSet<Vec<proto::Label>>],
    ) -> i64 {
        let wall = SystemTime::now()
            .checked_sub(snap.started.elapsed())
            .unwrap_or_else(SystemTime::now);
        let ms = wall
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        // The same snapshot twice (a stuck refresher): a later stamp, since an endpoint
        // refuses two different values at one timestamp.
        let ms = ms.max(last_ms + 1);
        let lines = series::lines(snap.families.iter().chain(now));
        for (t, before) in self.targets.iter().zip(before) {
            let mut w = series::request(&lines, &t.endpoint, ms);
            *before = series::mark_stale(&mut w, before, ms);
            // Spooled in requests of at most max_samples_per_send (one sample a series), so
            // the sender never has to cut one.
            let mut rest = w.timeseries;
            while !rest.is_empty() {
                let tail = rest.split_off(rest.len().min(t.endpoint.max_samples_per_send));
                let part = proto::WriteRequest {
                    timeseries: std::mem::replace(&mut rest, tail),
                };
                let n = part.timeseries.len() as u64;
                let written = proto::encode(&part)
                    .map_err(anyhow::Error::from)
                    .and_then(|body| t.spool.push(&body, n, ms));
                if let Err(e) = written {
                    t.counters
                        .unwritten
                        .fetch_add(n, std::sync::atomic::Ordering::Relaxed);
                    tracing::error!(endpoint = %t.endpoint.name, samples = n, error = format!("{e:#}"), "cannot spool remote write samples; they are dropped");
                }
            }
        }
        ms
    }
}
