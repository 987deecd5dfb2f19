//! `filesystem`: space and inodes of every mounted real filesystem (pseudo filesystems are
//! skipped by default; include and exclude patterns are configurable), whether it is
//! read-only, whether its statvfs failed or hangs, and how long until it is full at its
//! recent fill rate.

mod fill;
pub mod mounts;
mod statfs;
mod table;

use std::{collections::HashMap, time::Duration};

use prometheus::proto::{MetricFamily, MetricType};

pub use mounts::{Filter, DEFAULT_FS_TYPES_EXCLUDE, DEFAULT_MOUNT_POINTS_EXCLUDE};

use super::{Build, Host, ScrapeCollector, Spec};
use crate::{
    core::monotonic_seconds,
    metrics::{family, gauge},
};

pub const SPEC: Spec = Spec {
    name: "filesystem",
    help: "size, free and available space, inodes and read-only state of mounted filesystems \
           (statvfs, each call under a timeout), with a time-to-full estimate",
    default_enabled: true,
    needs_bpf: false,
    build: Build::Collector(|c| Box::new(Filesystem::new(c.filesystem.clone()))),
};

#[derive(Clone, Debug)]
pub struct Options {
    pub filter: Filter,
    /// How long a scrape waits for statvfs calls before marking the mounts stuck.
    pub stat_timeout: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            filter: Filter::default(),
            stat_timeout: Duration::from_secs(1),
        }
    }
}

pub struct Filesystem {
    opts: Options,
    table: table::Table,
    stuck: statfs::Stuck,
    history: HashMap<String, fill::History>,
    /// Mounts already reported as stuck in the log (one line each, not one per scrape).
    logged_stuck: std::collections::HashSet<String>,
}

impl Filesystem {
    pub fn new(opts: Options) -> Self {
        Self {
            opts,
            table: table::Table::default(),
            stuck: statfs::Stuck::default(),
            history: HashMap::new(),
            logged_stuck: Default::default(),
        }
    }
}

impl ScrapeCollector for Filesystem {
    fn name(&self) -> &'static str {
        SPEC.name
    }

    fn collect(&mut self, host: &Host<'_>, out: &mut Vec<MetricFamily>) -> anyhow::Result<()> {
        let mounts = self.table.read(host.procfs, &self.opts.filter)?;
        let paths: Vec<String> = mounts.iter().map(|m| m.mountpoint.clone()).collect();
        let results = self.stuck.stat_all(&paths, self.opts.stat_timeout);
        let now = monotonic_seconds();

        let names = [
            ("monitor_filesystem_size_bytes", "Size of the filesystem."),
            (
                "monitor_filesystem_free_bytes",
                "Free space, including what only root may use.",
            ),
            (
                "monitor_filesystem_avail_bytes",
                "Space available to unprivileged users.",
            ),
            ("monitor_filesystem_files", "Inodes in the filesystem."),
            ("monitor_filesystem_files_free", "Free inodes."),
            (
                "monitor_filesystem_readonly",
                "1 if the filesystem is read-only.",
            ),
        ];
        let mut values: Vec<Vec<prometheus::proto::Metric>> = vec![Vec::new(); names.len()];
        let mut errors = Vec::new();
        let mut to_full = Vec::new();
        for (m, r) in mounts.iter().zip(results) {
            let labels = [
                ("device", m.device.as_str()),
                ("mountpoint", m.mountpoint.as_str()),
                ("fstype", m.fstype.as_str()),
            ];
            let u = match r {
                statfs::Outcome::Ok(u) => {
                    self.logged_stuck.remove(&m.mountpoint);
                    u
                }
                statfs::Outcome::Failed(e) => {
                    tracing::debug!(mountpoint = %m.mountpoint, error = %e, "statvfs failed");
                    errors.push(gauge(&labels, 1.0));
                    continue;
                }
                statfs::Outcome::Stuck => {
                    if self.logged_stuck.insert(m.mountpoint.clone()) {
                        tracing::warn!(
                            mountpoint = %m.mountpoint,
                            fstype = %m.fstype,
                            timeout = ?self.opts.stat_timeout,
                            "statvfs does not return; skipping this mount until it does"
                        );
                    }
                    errors.push(gauge(&labels, 1.0));
                    continue;
                }
            };
            errors.push(gauge(&labels, 0.0));
            let row = [
                u.size_bytes,
                u.free_bytes,
                u.avail_bytes,
                u.files,
                u.files_free,
                f64::from(u8::from(u.read_only || m.read_only)),
            ];
            for (v, x) in values.iter_mut().zip(row) {
                v.push(gauge(&labels, x));
            }
            let h = self.history.entry(m.mountpoint.clone()).or_default();
            h.push(now, u.avail_bytes);
            if let Some(s) = h.seconds_to_full() {
                to_full.push(gauge(&labels, s));
            }
        }
        self.history.retain(|k, _| paths.contains(k));
        for ((name, help), v) in names.iter().zip(values) {
            out.push(family(name, help, MetricType::GAUGE, v));
        }
        out.push(family(
            "monitor_filesystem_device_error",
            "1 if statvfs failed or did not return within the timeout (the mount is skipped).",
            MetricType::GAUGE,
            errors,
        ));
        out.push(family(
            "monitor_filesystem_predicted_full_seconds",
            "Seconds until available space runs out at its fill rate over the last hour \
             (+Inf when not filling).",
            MetricType::GAUGE,
            to_full,
        ));
        Ok(())
    }
}
