//! The scheduler family as the loader and the refresher see it: the `task_struct` offsets
//! its typed programs need, its probes (the OOM counter optional), and at each refresh the
//! process events and the per-process counters, with the slices in progress added.

use aya::Ebpf;
use monitor_common::{
    event::ProcEvent,
    health::{PROC_EVENTS_LOST, RUNQ_START_INSERT_FAILED, TASK_STATS_INSERT_FAILED},
    maps,
    sched::RunqHist,
};
use prometheus::proto::MetricFamily;

use super::{
    kernel::{Layout, SchedMaps, SchedSource, OOM_PROBE, PROBES, TYPED_PROGRAMS, WAKEUP_PROBE},
    running,
};
use crate::{
    api::processes::ProcessRow,
    bpf::{
        attach::{Attached, Probe},
        family::{taken, Attacher, KernelFamily, Prepare, Processes, Published, Refresh, Setup},
        health::MapStat,
    },
    collectors::View,
    process::{budget::Export, counters::Counters, table::ProcessTable},
};

/// Named in the error if a refresh came before `take`.
const MAPS: &str = "the scheduler's maps";

#[derive(Default)]
pub struct Sched {
    maps: Option<Box<dyn SchedSource>>,
    hist: RunqHist,
    /// `TASK_STATS` entries read at the last refresh, before the folded ones went.
    task_entries: usize,
    folded: usize,
    map_stats: Vec<MapStat>,
    /// Set in `prepare` (`Layout::charges_runtime`).
    charges_runtime: bool,
    /// Set in `prepare` (`Layout::charges_wait`).
    charges_wait: bool,
}

impl Sched {
    /// The family reading `source` instead of the kernel's maps.
    #[cfg(test)]
    pub fn reading(source: Box<dyn SchedSource>) -> Self {
        Self {
            maps: Some(source),
            ..Default::default()
        }
    }
}

impl KernelFamily for Sched {
    fn name(&self) -> &'static str {
        super::collector::SPEC.name
    }

    fn measures_processes(&self) -> bool {
        true
    }

    fn prepare(&mut self, ctx: &Prepare<'_>, setup: &mut Setup) -> anyhow::Result<()> {
        let layout = Layout::read(ctx.vmlinux, ctx.btf);
        layout.set(setup);
        self.charges_runtime = layout.charges_runtime();
        self.charges_wait = layout.charges_wait();
        // Without the offsets the typed programs cannot name tasks: their classic fallbacks
        // serve instead.
        if !layout.complete() {
            setup
                .fail
                .extend(TYPED_PROGRAMS.iter().map(|p| p.to_string()));
        }
        Ok(())
    }

    fn attach(&mut self, a: &mut Attacher<'_>) -> anyhow::Result<Vec<Attached>> {
        // One call, so that a failure detaches them all.
        let wakeups: &[Probe] = if self.charges_wait { &[] } else { WAKEUP_PROBE };
        let probes: Vec<Probe> = PROBES.iter().chain(wakeups).cloned().collect();
        let mut all = a.attach(&probes)?;
        match a.attach(OOM_PROBE) {
            Ok(oom) => all.extend(oom),
            Err(e) if crate::bpf::is_permission_error(e.as_ref()) => return Err(e),
            Err(e) => tracing::warn!(
                collector = self.name(),
                error = format!("{e:#}"),
                "OOM kills are not counted on this kernel"
            ),
        }
        Ok(all)
    }

    fn take(&mut self, ebpf: &mut Ebpf, _attached: &[Attached]) -> anyhow::Result<()> {
        self.maps = Some(Box::new(SchedMaps::take(ebpf, self.charges_runtime)?));
        Ok(())
    }

    fn sends_exit_events(&self) -> bool {
        self.maps.is_some()
    }

    fn events(&mut self, f: &mut dyn FnMut(&ProcEvent)) {
        if let Some(m) = &mut self.maps {
            m.drain_events(f);
        }
    }

    fn processes(&mut self, p: &mut Processes<'_>) -> anyhow::Result<()> {
        let maps = taken(&mut self.maps, MAPS)?;
        // First of the families (the others join their counters to these entries).
        let first = p.entries.len();
        maps.read_tasks(p.entries)?;
        // Processes first seen since the last listing of procfs are alive until their exit
        // event.
        p.live.seen(
            p.entries[first..]
                .iter()
                .map(|e| e.tgid)
                .filter(|&t| p.table.may_run(t)),
        );
        // The time base of rates is when the counters are read, not when the refresh
        // began: listing /proc first can take a good part of a second on a busy host.
        let now_ns = crate::core::monotonic_ns();
        *p.read_at = now_ns as f64 / 1e9;
        let procfs = p.table.identity_reader().root();
        let running = maps.running(now_ns, procfs)?;
        let live = p.live.pids();
        running::add_slices(
            p.entries,
            &running,
            |tid| running::tgid_of(procfs, tid),
            |t| live.contains(&t) && p.table.may_run(t),
        );
        self.task_entries = p.entries.len() - first;
        Ok(())
    }

    fn forget(&mut self, tgids: &[u32]) {
        self.folded = tgids.len();
        if let Some(m) = &mut self.maps {
            m.remove_tasks(tgids);
        }
    }

    fn after(&mut self, r: &Refresh<'_>, _: &ProcessTable, _: &Export) -> anyhow::Result<()> {
        let maps = taken(&mut self.maps, MAPS)?;
        self.hist = maps.histogram()?;
        let runq_start = maps.runq_start_entries() as u64;
        self.map_stats = vec![
            MapStat {
                name: maps::TASK_STATS,
                entries: Some(self.task_entries.saturating_sub(self.folded) as u64),
                capacity: maps::TASK_STATS_CAPACITY.into(),
                update_failures: r.health[TASK_STATS_INSERT_FAILED as usize],
            },
            MapStat {
                name: maps::RUNQ_START,
                entries: Some(runq_start),
                capacity: maps::RUNQ_START_CAPACITY.into(),
                update_failures: r.health[RUNQ_START_INSERT_FAILED as usize],
            },
            MapStat {
                name: maps::PROC_EVENTS,
                entries: None,
                capacity: maps::PROC_EVENTS_BYTES.into(),
                update_failures: r.health[PROC_EVENTS_LOST as usize],
            },
        ];
        Ok(())
    }

    fn maps(&self) -> Vec<MapStat> {
        self.map_stats.clone()
    }

    fn collect(&mut self, view: &View<'_>, out: &mut Vec<MetricFamily>) -> anyhow::Result<()> {
        out.extend(super::collector::families(&self.hist, view));
        Ok(())
    }

    fn publish(&self, p: &mut Published) {
        p.runq = Some(self.hist);
    }

    fn row(&self, c: &Counters, row: &mut ProcessRow) {
        row.sched = super::api::Fields::of(c);
    }
}
