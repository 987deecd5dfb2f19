//! Collectors: each one file, each registered in `ALL`, from which the `--collector.<name>`
//! flags, the enabled set and the README's table are derived.

use std::path::Path;

use prometheus::proto::MetricFamily;

use crate::{
    core::{BlockSnapshot, Kernel, SchedSnapshot},
    net::kernel::NetSnapshot,
};

pub mod bpf;
pub mod cpu;
pub mod filesystem;
pub mod meminfo;
pub mod netdev;
pub mod pressure;

/// What collectors read from: the state refreshed for this scrape.
pub struct View<'a> {
    pub procfs: &'a Path,
    pub kernel: &'a Kernel,
    pub sched: &'a Result<SchedSnapshot, String>,
    pub block: &'a Result<BlockSnapshot, String>,
    pub net: &'a Result<NetSnapshot, String>,
}

pub trait Collector: Send {
    fn name(&self) -> &'static str;
    /// Appends this collector's families. An error marks the collector failed for this
    /// scrape (`monitor_collector_success 0`) without failing the scrape.
    fn collect(&mut self, view: &View<'_>, out: &mut Vec<MetricFamily>) -> anyhow::Result<()>;
}

/// Settings of the collectors that have any, from the command line.
#[derive(Clone, Debug)]
pub struct Config {
    pub filesystem: filesystem::Options,
    /// sysfs mount point (`--path.sysfs`), where device numbers get their names.
    pub sysfs: std::path::PathBuf,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            filesystem: Default::default(),
            sysfs: "/sys".into(),
        }
    }
}

pub struct Spec {
    pub name: &'static str,
    pub help: &'static str,
    pub default_enabled: bool,
    /// Whether it needs the kernel programs loaded.
    pub needs_bpf: bool,
    pub build: fn(&Config) -> Box<dyn Collector>,
}

pub const ALL: &[Spec] = &[
    cpu::SPEC,
    meminfo::SPEC,
    pressure::SPEC,
    filesystem::SPEC,
    crate::sched::collector::SPEC,
    crate::block::collector::SPEC,
    crate::net::collector::SPEC,
    netdev::SPEC,
    bpf::SPEC,
];

pub fn spec(name: &str) -> Option<&'static Spec> {
    ALL.iter().find(|s| s.name == name)
}
