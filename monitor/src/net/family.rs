//! The network family as the loader and the refresher see it: the record and struct layout
//! its programs need, its probes (with the pre-6.3 UDP receive hook where it falls back),
//! and at each refresh the per-process counters, the sockets and the interface bytes no
//! process accounts for.

use anyhow::Context as _;
use aya::Ebpf;
use prometheus::proto::MetricFamily;

use super::{
    kernel::{NetMaps, NetSnapshot, NetSource},
    layout::Layout,
    unattributed::Unattributed,
};
use crate::{
    api::processes::ProcessRow,
    bpf::{
        attach::Attached,
        family::{taken, Attacher, KernelFamily, Prepare, Processes, Published, Refresh, Setup},
        health::MapStat,
    },
    collectors::View,
    process::{budget::Export, counters::Counters, table::ProcessTable},
};

/// Named in the error if a refresh came before `take`.
const MAPS: &str = "the network maps";

#[derive(Default)]
pub struct Network {
    maps: Option<Box<dyn NetSource>>,
    snapshot: Option<NetSnapshot>,
    unattributed: Unattributed,
}

impl Network {
    /// The family reading `source` instead of the kernel's maps.
    #[cfg(test)]
    pub fn reading(source: Box<dyn NetSource>) -> Self {
        Self {
            maps: Some(source),
            ..Default::default()
        }
    }
}

impl KernelFamily for Network {
    fn name(&self) -> &'static str {
        super::collector::SPEC.name
    }

    fn prepare(&mut self, ctx: &Prepare<'_>, setup: &mut Setup) -> anyhow::Result<()> {
        Layout::read(ctx.tracefs, ctx.vmlinux, ctx.btf).set(setup);
        setup.hook_families |= monitor_common::hooks::family::NETWORK;
        Ok(())
    }

    fn attach(&mut self, a: &mut Attacher<'_>) -> anyhow::Result<Vec<Attached>> {
        let attached = super::kernel::attach(|p| a.attach(p))?;
        super::kernel::log_exactness(&attached);
        Ok(attached)
    }

    fn take(&mut self, ebpf: &mut Ebpf, _attached: &[Attached]) -> anyhow::Result<()> {
        self.maps = Some(Box::new(NetMaps::take(ebpf)?));
        Ok(())
    }

    fn processes(&mut self, p: &mut Processes<'_>) -> anyhow::Result<()> {
        let table = p.table;
        let live = p.live.pids();
        taken(&mut self.maps, MAPS)?.merge(p.entries, live, &|t| table.knows(t))
    }

    fn forget(&mut self, tgids: &[u32]) {
        if let Some(m) = &mut self.maps {
            m.remove(tgids);
        }
    }

    fn after(
        &mut self,
        r: &Refresh<'_>,
        _table: &ProcessTable,
        export: &Export,
    ) -> anyhow::Result<()> {
        let maps = taken(&mut self.maps, MAPS)?;
        let sockets = maps.sockets();
        let unattributed = super::netdev::read(r.procfs)
            .map(|ifaces| {
                let procs = export.rows().iter().fold((0, 0), |acc, (_, c)| {
                    let (tx, rx) = super::counters::bytes(&c.net);
                    (acc.0 + rx, acc.1 + tx)
                });
                self.unattributed.observe(r.now, &ifaces, procs);
                self.unattributed.total()
            })
            .map_err(|e| tracing::debug!(error = format!("{e:#}"), "interfaces"))
            .ok();
        self.snapshot = Some(NetSnapshot {
            unattributed,
            maps: super::kernel::map_stats(maps, &sockets, r.health),
            sockets,
        });
        Ok(())
    }

    fn maps(&self) -> Vec<MapStat> {
        self.snapshot
            .as_ref()
            .map(|s| s.maps.clone())
            .unwrap_or_default()
    }

    fn collect(&mut self, view: &View<'_>, out: &mut Vec<MetricFamily>) -> anyhow::Result<()> {
        let n = self.snapshot.as_ref().context("not read yet")?;
        super::collector::families(n, view, out);
        Ok(())
    }

    fn publish(&self, p: &mut Published) {
        p.unattributed = self.snapshot.as_ref().and_then(|s| s.unattributed);
    }

    fn row(&self, c: &Counters, row: &mut ProcessRow) {
        row.net = super::api::Fields::of(c);
    }
}
