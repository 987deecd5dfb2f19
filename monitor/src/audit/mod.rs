//! The audit log: exec, exit, OOM kill and TCP connect/accept/close events recorded in the
//! kernel and written as JSON lines to a size-rotated file, with filters, a rate limit and
//! every event's fate counted in `/metrics`.

pub mod filter;
pub mod kernel;
pub mod layout;
pub mod pipeline;
pub mod rate;
pub mod record;
pub mod rotate;
pub mod scope;
pub mod stats;

use std::{path::PathBuf, sync::Arc, time::Instant};

use clap::Args;
use monitor_common::audit::AuditKind;
use regex::Regex;

use self::{
    filter::Filter, kernel::AuditMaps, pipeline::Pipeline, rate::RateLimit, rotate::Rotating,
    stats::Stats,
};

#[derive(Args, Debug, Clone)]
pub struct AuditArgs {
    /// Write the audit log (exec, exit, OOM kills, TCP connect/accept/close, as JSON lines)
    /// to this file. The audit programs are attached only when this is set.
    #[arg(long = "audit.file", value_name = "PATH")]
    pub file: Option<PathBuf>,

    /// Rotate the audit log before it would grow past this size (e.g. 100MiB, 512KiB).
    #[arg(long = "audit.max-size", value_name = "SIZE", default_value = "100MiB", value_parser = parse_size)]
    pub max_size: u64,

    /// Rotated audit files to keep (FILE.1 is the newest).
    #[arg(long = "audit.max-files", value_name = "N", default_value_t = 5)]
    pub max_files: u32,

    /// Write only these event kinds (repeatable): exec, exit, oom_kill, tcp_connect,
    /// tcp_accept, tcp_close.
    #[arg(long = "audit.include-kind", value_name = "KIND", value_parser = parse_kind)]
    pub include_kinds: Vec<String>,

    /// Do not write these event kinds (repeatable).
    #[arg(long = "audit.exclude-kind", value_name = "KIND", value_parser = parse_kind)]
    pub exclude_kinds: Vec<String>,

    /// Write only events of processes with this uid (repeatable).
    #[arg(long = "audit.include-uid", value_name = "UID")]
    pub include_uids: Vec<u32>,

    /// Do not write events of processes with this uid (repeatable).
    #[arg(long = "audit.exclude-uid", value_name = "UID")]
    pub exclude_uids: Vec<u32>,

    /// Write only events of processes whose name matches this regular expression.
    #[arg(long = "audit.include-comm", value_name = "REGEX")]
    pub include_comm: Option<Regex>,

    /// Do not write events of processes whose name matches this regular expression.
    #[arg(long = "audit.exclude-comm", value_name = "REGEX")]
    pub exclude_comm: Option<Regex>,

    /// Write at most this many events per second (bursts up to the same number); the rest
    /// are counted as dropped. 0: no limit.
    #[arg(
        long = "audit.rate-limit",
        value_name = "PER_SECOND",
        default_value_t = 0
    )]
    pub rate_limit: u32,

    /// Record only processes in this cgroup v2 directory or below it (checked in the kernel,
    /// so others cost nothing), e.g. /sys/fs/cgroup/system.slice/nginx.service.
    #[arg(long = "audit.cgroup", value_name = "DIR")]
    pub cgroup: Option<PathBuf>,
}

fn parse_size(s: &str) -> Result<u64, String> {
    let b: bytesize::ByteSize = s
        .parse()
        .map_err(|e| format!("{s:?} is not a size ({e}), e.g. 100MiB"))?;
    if b.as_u64() < 4096 {
        return Err(format!("{s:?} is below the 4KiB minimum"));
    }
    Ok(b.as_u64())
}

fn parse_kind(s: &str) -> Result<String, String> {
    AuditKind::ALL
        .iter()
        .find(|k| k.name() == s)
        .map(|k| k.name().to_string())
        .ok_or_else(|| {
            let names: Vec<&str> = AuditKind::ALL.iter().map(|k| k.name()).collect();
            format!("{s:?} is not an event kind ({})", names.join(", "))
        })
}

impl AuditArgs {
    /// What the kernel side needs, when the audit log is on.
    pub fn kernel_setup(&self) -> Option<kernel::KernelSetup> {
        self.file.as_ref().map(|_| kernel::KernelSetup {
            cgroup: self.cgroup.clone(),
        })
    }

    fn filter(&self) -> Filter {
        Filter {
            include_kinds: self.include_kinds.clone(),
            exclude_kinds: self.exclude_kinds.clone(),
            include_uids: self.include_uids.clone(),
            exclude_uids: self.exclude_uids.clone(),
            include_comm: self.include_comm.clone(),
            exclude_comm: self.exclude_comm.clone(),
        }
    }

    /// Opens the log file, when one is configured (before the kernel setup, so a bad path
    /// fails at once).
    pub fn open(&self) -> anyhow::Result<Option<Rotating>> {
        self.file
            .as_ref()
            .map(|p| {
                Rotating::open(p, self.max_size, self.max_files)
                    .map_err(|e| e.context("--audit.file"))
            })
            .transpose()
    }

    /// Starts the reader on the attached programs' maps, writing to `out`. Returns the
    /// counters for `/metrics`.
    pub fn start(&self, maps: AuditMaps, out: Rotating) -> anyhow::Result<Arc<Stats>> {
        let stats = Arc::new(Stats::default());
        Pipeline {
            maps,
            out,
            filter: self.filter(),
            rate: (self.rate_limit > 0).then(|| RateLimit::new(self.rate_limit, Instant::now())),
            stats: stats.clone(),
            failing: false,
        }
        .spawn()?;
        if let Some(path) = &self.file {
            tracing::info!(file = %path.display(), "audit log started");
        }
        Ok(stats)
    }
}
