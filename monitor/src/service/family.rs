//! The service family as the loader and the refresher see it: the struct offsets its
//! programs need, its probes (the turns only where the kernel has their hooks), and at
//! each refresh the growth of every kernel entry added to its process's group.

use std::sync::Arc;

use aya::Ebpf;
use monitor_common::{
    health::{SVC_SOCKS_INSERT_FAILED, SVC_STATS_INSERT_FAILED},
    maps,
};
use prometheus::proto::MetricFamily;

use super::{
    kernel::{ServiceMaps, ServiceSource},
    layout::Layout,
    totals::{Owner, Totals},
};
use crate::{
    bpf::{
        attach::Attached,
        family::{taken, Attacher, KernelFamily, Prepare, Refresh, Setup},
        health::MapStat,
    },
    collectors::View,
    process::{budget::Export, table::ProcessTable},
};

const MAPS: &str = "the service maps";

#[derive(Default)]
pub struct Service {
    maps: Option<Box<dyn ServiceSource>>,
    totals: Totals,
    /// Ports per direction with their own series.
    max_ports: usize,
    /// Whether requests, latency and codes are measured (their hooks attached).
    turns: bool,
    stats: Vec<MapStat>,
}

impl Service {
    pub fn new(max_ports: usize) -> Self {
        Self {
            max_ports,
            ..Default::default()
        }
    }

    /// The family reading `source` instead of the kernel's map, turns measured.
    #[cfg(test)]
    pub fn reading(source: Box<dyn ServiceSource>) -> Self {
        Self {
            maps: Some(source),
            turns: true,
            ..Self::new(super::collector::MAX_PORTS)
        }
    }
}

impl KernelFamily for Service {
    fn name(&self) -> &'static str {
        super::collector::SPEC.name
    }

    fn prepare(&mut self, ctx: &Prepare<'_>, setup: &mut Setup) -> anyhow::Result<()> {
        Layout::read(ctx.vmlinux, ctx.btf)?.set(setup);
        setup.hook_families |= monitor_common::hooks::family::SERVICE;
        Ok(())
    }

    fn attach(&mut self, a: &mut Attacher<'_>) -> anyhow::Result<Vec<Attached>> {
        let attached = super::kernel::attach(|p| a.attach(p))?;
        self.turns = super::kernel::turns_measured(&attached);
        Ok(attached)
    }

    fn take(&mut self, ebpf: &mut Ebpf, _attached: &[Attached]) -> anyhow::Result<()> {
        self.maps = Some(Box::new(ServiceMaps::take(ebpf)?));
        Ok(())
    }

    fn after(
        &mut self,
        r: &Refresh<'_>,
        table: &ProcessTable,
        _export: &Export,
    ) -> anyhow::Result<()> {
        let maps = taken(&mut self.maps, MAPS)?;
        let entries = maps.entries()?;
        let n = entries.len() as u64;
        let owner = |tgid: u32| match table.group_ever(tgid) {
            Some(g) => Owner::Group(Arc::clone(g)),
            None if r.procfs.join(tgid.to_string()).exists() => Owner::NotYet,
            None => Owner::Gone,
        };
        for k in self.totals.observe(entries, owner) {
            maps.remove(&k);
        }
        self.stats = vec![
            MapStat {
                name: maps::SVC_STATS,
                entries: Some(n),
                capacity: maps::SVC_STATS_CAPACITY.into(),
                update_failures: r.health[SVC_STATS_INSERT_FAILED as usize],
            },
            MapStat {
                name: maps::SVC_SOCKS,
                entries: maps.sockets(),
                capacity: maps::SVC_SOCKS_CAPACITY.into(),
                update_failures: r.health[SVC_SOCKS_INSERT_FAILED as usize],
            },
        ];
        Ok(())
    }

    fn maps(&self) -> Vec<MapStat> {
        self.stats.clone()
    }

    fn collect(&mut self, view: &View<'_>, out: &mut Vec<MetricFamily>) -> anyhow::Result<()> {
        anyhow::ensure!(!self.stats.is_empty(), "not read yet");
        super::collector::families(&self.totals, self.turns, self.max_ports, view, out);
        Ok(())
    }
}
