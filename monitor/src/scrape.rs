//! What readers are served: the newest snapshot (`snapshot`) plus the figures read at the
//! request itself: the host collectors (`collectors::ScrapeCollector`), the daemon's own
//! process figures and the alerting counters. Nothing here waits for a refresh in progress
//! beyond `Freshness::wait`.

use std::{
    path::PathBuf,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use prometheus::proto::{MetricFamily, MetricType};

use crate::{
    api::processes::ProcessList,
    collectors::{Collector, Host},
    metrics::{counter, family, gauge},
    snapshot::{Freshness, Outcome, Snapshot, Snapshots},
};

/// Adds families at each scrape (alerting's own counters).
pub type Source = Box<dyn Fn(&mut Vec<MetricFamily>) + Send + Sync>;

/// The collectors and sources read at scrape time.
pub struct Scrape {
    procfs: PathBuf,
    /// Each behind its own lock: scrapes run side by side and meet only in the same
    /// collector (the filesystem collector keeps per-mount history).
    collectors: Vec<Mutex<Box<dyn Collector>>>,
    process: prometheus::process_collector::ProcessCollector,
    sources: Vec<Source>,
}

impl Scrape {
    /// `collectors` are those of the enabled ones that run at scrape time.
    pub fn new(procfs: PathBuf, collectors: Vec<Box<dyn Collector>>) -> Self {
        Self {
            procfs,
            collectors: collectors.into_iter().map(Mutex::new).collect(),
            process: prometheus::process_collector::ProcessCollector::for_self(),
            sources: Vec::new(),
        }
    }

    /// Adds a collector configured outside the collector table (the audit log, the log-file
    /// matcher); it is reported like any collector.
    pub fn add_collector(&mut self, c: Box<dyn Collector>) {
        self.collectors.push(Mutex::new(c));
    }

    pub fn add_source(&mut self, s: Source) {
        self.sources.push(s);
    }

    /// The families read now, and the snapshot's alongside them: `monitor_collector_*` cover
    /// both. Without the snapshot's own families, which the caller takes from it (encoded,
    /// for a scrape).
    fn families(&self, snap: &Snapshot) -> Vec<MetricFamily> {
        let host = Host {
            procfs: &self.procfs,
            snapshot: snap,
        };
        let mut out = Vec::new();
        let mut outcomes = snap.outcomes.clone();
        for c in &self.collectors {
            let mut c = c.lock().unwrap_or_else(|p| p.into_inner());
            let start = Instant::now();
            let result = match c.at_scrape() {
                Some(s) => s.collect(&host, &mut out),
                None => Err(anyhow::anyhow!("not a scrape-time collector")),
            };
            let name = c.name();
            if let Err(e) = &result {
                tracing::debug!(
                    collector = name,
                    error = format!("{e:#}"),
                    "collector failed"
                );
            }
            outcomes.push(Outcome {
                collector: name,
                ok: result.is_ok(),
                seconds: start.elapsed().as_secs_f64(),
            });
        }
        out.push(family(
            "monitor_collector_success",
            "Whether the collector succeeded in this scrape (or in the refresh it was read in).",
            MetricType::GAUGE,
            outcomes
                .iter()
                .map(|o| gauge(&[("collector", o.collector)], f64::from(u8::from(o.ok))))
                .collect(),
        ));
        out.push(family(
            "monitor_collector_duration_seconds",
            "Time the collector took in this scrape (or in the refresh it was read in).",
            MetricType::GAUGE,
            outcomes
                .iter()
                .map(|o| gauge(&[("collector", o.collector)], o.seconds))
                .collect(),
        ));
        out.push(family(
            "monitor_snapshot_age_seconds",
            "Time since the refresh that read the kernel and process figures of this scrape \
             began.",
            MetricType::GAUGE,
            vec![gauge(&[], snap.started.elapsed().as_secs_f64())],
        ));
        out.push(family(
            "monitor_refreshes_total",
            "Refreshes since the daemon started, up to the one of this scrape's figures.",
            MetricType::COUNTER,
            vec![counter(&[], snap.seq as f64)],
        ));
        out.push(family(
            "monitor_refresh_duration_seconds",
            "Time that refresh took.",
            MetricType::GAUGE,
            vec![gauge(&[], snap.took.as_secs_f64())],
        ));
        out.push(crate::build_info::family());
        {
            use prometheus::core::Collector as _;
            out.extend(self.process.collect());
        }
        for source in &self.sources {
            source(&mut out);
        }
        // The text encoder rejects a family without samples (a collector with nothing to
        // report yet), which would fail the whole scrape.
        out.retain(|f| !f.get_metric().is_empty());
        out
    }
}

/// The readers' side: snapshots, the scrape-time figures, and how fresh a request wants
/// them.
pub struct Reader {
    snapshots: Arc<Snapshots>,
    scrape: Scrape,
    freshness: Freshness,
    /// The scrape-time families the last scrape read, and when: the query history samples
    /// them instead of reading every scrape-time collector a second time.
    last_scrape: Mutex<Option<(Instant, Arc<Vec<MetricFamily>>)>>,
}

impl Reader {
    pub fn new(snapshots: Arc<Snapshots>, scrape: Scrape, freshness: Freshness) -> Self {
        Self {
            snapshots,
            scrape,
            freshness,
            last_scrape: Mutex::new(None),
        }
    }

    /// Every family, as a scrape would see it (for the alert engine).
    pub fn families(&self) -> Vec<MetricFamily> {
        let snap = self.snapshots.fresh(self.freshness);
        let mut out = snap.families.clone();
        out.extend(self.scrape.families(&snap));
        out
    }

    /// The snapshot as fresh as `f` asks and the scrape-time families beside it, without
    /// copying the snapshot's (the query history samples both at every refresh interval):
    /// those of the last scrape when it read them less than `reuse` ago, else read now.
    pub fn parts(&self, f: Freshness, reuse: Duration) -> (Arc<Snapshot>, Arc<Vec<MetricFamily>>) {
        let snap = self.snapshots.fresh(f);
        let last = self
            .last_scrape
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        match last {
            Some((at, now)) if at.elapsed() < reuse => (snap, now),
            _ => {
                let now = Arc::new(self.scrape.families(&snap));
                (snap, now)
            }
        }
    }

    /// `parts` as fresh as this reader's own scrapes.
    pub fn parts_now(&self, reuse: Duration) -> (Arc<Snapshot>, Arc<Vec<MetricFamily>>) {
        self.parts(self.freshness, reuse)
    }

    /// `parts` of the snapshot after the one numbered `seq` (`Snapshots::after`), without
    /// asking for a refresh.
    pub fn parts_after(&self, seq: u64, wait: Duration) -> (Arc<Snapshot>, Vec<MetricFamily>) {
        let snap = self.snapshots.after(seq, wait);
        let now = self.scrape.families(&snap);
        (snap, now)
    }

    /// The text exposition for a scrape: the snapshot's families, encoded once per snapshot,
    /// and the families read now.
    pub fn exposition(&self) -> Result<String, String> {
        let snap = self.snapshots.fresh(self.freshness);
        let read_at = Instant::now();
        let now = self.scrape.families(&snap);
        let cached = snap.text()?;
        let mut body = String::with_capacity(cached.len() + 16 * 1024);
        body.push_str(cached);
        prometheus::TextEncoder::new()
            .encode_utf8(&now, &mut body)
            .map_err(|e| {
                tracing::error!(error = %e, "encoding metrics");
                format!("encoding metrics: {e}")
            })?;
        *self.last_scrape.lock().unwrap_or_else(|p| p.into_inner()) =
            Some((read_at, Arc::new(now)));
        Ok(body)
    }

    /// The process list for `/api/v1/processes`, with its memory figures read now; `None`
    /// if no refresh could make one in time (the refresher is stuck).
    pub fn process_list(&self) -> Option<ProcessList> {
        let snap = self.snapshots.with_processes(self.freshness);
        let mut list = snap.processes.clone()?;
        drop(snap);
        list.read_memory(&self.scrape.procfs);
        Some(list)
    }
}
