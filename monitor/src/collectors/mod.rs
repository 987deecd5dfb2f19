//! Collectors: each one file, each registered in `ALL`, from which the `--collector.<name>`
//! flags, the enabled set and the README's table are derived.

use std::path::Path;

use prometheus::proto::MetricFamily;

use crate::{
    bpf::{family::KernelFamily, health::MapStat},
    core::Kernel,
    process::{budget::Export, table::ProcessTable},
    snapshot::Snapshot,
};

pub mod bpf;
pub mod cpu;
pub mod filesystem;
pub mod meminfo;
pub mod netdev;
pub mod pressure;

/// What a collector run by the refresher reads: the state it has just refreshed.
pub struct View<'a> {
    pub procfs: &'a Path,
    pub kernel: &'a Kernel,
    pub table: &'a ProcessTable,
    /// The process table's per-group figures under the series budget.
    pub export: &'a Export,
    /// Every running family's maps.
    pub maps: &'a [MapStat],
}

/// A collector of the kernel programs' and the process table's figures. It runs in the
/// refresher, once per refresh, and its families are published in the snapshot that scrapes
/// and the alert engine read.
pub trait Collector: Send {
    fn name(&self) -> &'static str;
    /// Appends this collector's families. An error marks the collector failed in this
    /// refresh (`monitor_collector_success 0`) without failing the refresh.
    fn collect(&mut self, view: &View<'_>, out: &mut Vec<MetricFamily>) -> anyhow::Result<()>;
    /// `Some` for a collector that reads only host files and its own state: it runs at each
    /// scrape instead, outside the refresher (see `ScrapeCollector`).
    fn at_scrape(&mut self) -> Option<&mut dyn ScrapeCollector> {
        None
    }
}

/// What a collector run at scrape time reads: host files, and the last published snapshot
/// for the few figures it adds from the refresher's state.
pub struct Host<'a> {
    pub procfs: &'a Path,
    pub snapshot: &'a Snapshot,
}

/// A collector that reads host files (`/proc/stat`, `/proc/meminfo`, statvfs...) and its own
/// state: it runs at each scrape, so its figures are as fresh as the scrape (node_exporter
/// reads them the same way). Each is called by one scrape at a time.
pub trait ScrapeCollector: Send {
    fn name(&self) -> &'static str;
    /// Appends this collector's families. An error marks the collector failed for this
    /// scrape (`monitor_collector_success 0`) without failing the scrape.
    fn collect(&mut self, host: &Host<'_>, out: &mut Vec<MetricFamily>) -> anyhow::Result<()>;
}

/// A scrape-time collector registers in `ALL` like any other; the daemon runs it at scrape
/// time, never through `collect` with a refresher's view.
impl<T: ScrapeCollector> Collector for T {
    fn name(&self) -> &'static str {
        ScrapeCollector::name(self)
    }

    fn collect(&mut self, _view: &View<'_>, _out: &mut Vec<MetricFamily>) -> anyhow::Result<()> {
        anyhow::bail!("{} runs at scrape time", ScrapeCollector::name(self))
    }

    fn at_scrape(&mut self) -> Option<&mut dyn ScrapeCollector> {
        Some(self)
    }
}

/// Settings of the collectors that have any, from the command line.
#[derive(Clone, Debug)]
pub struct Config {
    pub filesystem: filesystem::Options,
    /// sysfs mount point (`--path.sysfs`), where device numbers get their names.
    pub sysfs: std::path::PathBuf,
    /// Ports per direction with their own service series (`--service.max-ports`).
    pub service_max_ports: usize,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            filesystem: Default::default(),
            sysfs: "/sys".into(),
            service_max_ports: crate::service::collector::MAX_PORTS,
        }
    }
}

pub struct Spec {
    pub name: &'static str,
    pub help: &'static str,
    pub default_enabled: bool,
    /// Whether it needs the kernel programs loaded.
    pub needs_bpf: bool,
    pub build: Build,
}

/// What a registered name builds.
pub enum Build {
    Collector(fn(&Config) -> Box<dyn Collector>),
    /// A kernel family: the loader attaches it, the refresher reads and exports it.
    Family(fn(&Config) -> Box<dyn KernelFamily>),
}

pub const ALL: &[Spec] = &[
    cpu::SPEC,
    meminfo::SPEC,
    pressure::SPEC,
    filesystem::SPEC,
    crate::sched::collector::SPEC,
    crate::block::collector::SPEC,
    crate::net::collector::SPEC,
    crate::service::collector::SPEC,
    netdev::SPEC,
    bpf::SPEC,
];

pub fn spec(name: &str) -> Option<&'static Spec> {
    ALL.iter().find(|s| s.name == name)
}

/// The enabled collectors and kernel families, in registry order.
#[derive(Default)]
pub struct Built {
    pub collectors: Vec<Box<dyn Collector>>,
    pub families: Vec<Box<dyn KernelFamily>>,
}

/// Builds the `enabled` collectors and kernel families.
pub fn build(enabled: &[&'static str], config: &Config) -> Built {
    let Built {
        mut collectors,
        mut families,
    } = Built::default();
    for s in ALL.iter().filter(|s| enabled.contains(&s.name)) {
        match s.build {
            Build::Collector(b) => collectors.push(b(config)),
            Build::Family(b) => families.push(b(config)),
        }
    }
    Built {
        collectors,
        families,
    }
}
