//! A kernel family (sched, block, network, audit): the unit the loader and the refresher
//! work with. Each family owns its probes and fallbacks, the globals its programs need
//! before the object loads, its maps, its per-process counters, its exposition and its
//! fields of the process API; the loader and the refresher call the same steps of every
//! enabled family and name none of them.

use std::{path::Path, time::Instant};

use aya::{Btf, Ebpf, EbpfLoader};
use prometheus::proto::MetricFamily;

use super::{
    attach::{attach_all, detach_all, AttachOptions, Attached, Probe},
    health::MapStat,
};
use crate::{
    api::processes::ProcessRow,
    collectors::View,
    process::{
        budget::Export, counters::Counters, live::LiveSet, table::KernelEntry, table::ProcessTable,
    },
};
use monitor_common::{event::ProcEvent, health::HEALTH_COUNTERS};

/// What a family reads before the object loads.
pub struct Prepare<'a> {
    /// Where tracefs is mounted (record layouts are read from its format files).
    pub tracefs: &'a Path,
    /// The kernel's BTF file, named in messages.
    pub vmlinux: &'a Path,
    /// The kernel's BTF, opened once for every family's struct offsets.
    pub btf: &'a anyhow::Result<btf_rs::Btf>,
}

/// What the families ask of the loader: globals to set, programs to keep off.
#[derive(Default)]
pub struct Setup {
    globals: Vec<(&'static str, Vec<u8>)>,
    /// Programs that must not attach on this kernel (their fallbacks serve instead).
    pub fail: Vec<String>,
    /// The families the shared socket hooks serve (`monitor_common::hooks::family` bits):
    /// each sets its own once prepared (see `bpf::hooks`).
    pub hook_families: u32,
}

impl Setup {
    /// Sets global `name` of the object to `value` (a `repr(C)` type of `monitor-common`).
    pub fn global<T: aya::Pod>(&mut self, name: &'static str, value: &T) {
        // SAFETY: `T: Pod` is plain data without padding that matters to the programs; its
        // bytes are read for the duration of the call only.
        let bytes =
            unsafe { std::slice::from_raw_parts((value as *const T).cast::<u8>(), size_of::<T>()) };
        self.globals.push((name, bytes.to_vec()));
    }

    pub fn apply<'a>(&'a self, loader: &mut EbpfLoader<'a>) {
        for (name, bytes) in &self.globals {
            loader.override_global(name, bytes.as_slice(), true);
        }
    }
}

/// Attaches a family's probes to the loaded object.
pub struct Attacher<'a> {
    pub ebpf: &'a mut Ebpf,
    pub btf: Option<&'a Btf>,
    pub opts: &'a AttachOptions,
}

impl Attacher<'_> {
    /// Attaches each measure's first hook that works; fails if one measure has none.
    pub fn attach(&mut self, probes: &[Probe]) -> anyhow::Result<Vec<Attached>> {
        attach_all(self.ebpf, self.btf, probes, self.opts)
    }

    pub fn detach(&mut self, attached: &[Attached]) {
        detach_all(self.ebpf, attached);
    }

    /// Whether program `name` is loaded already (attached by another family).
    pub fn loaded(&self, name: &str) -> bool {
        self.ebpf
            .program(name)
            .is_some_and(|prog| prog.fd().is_ok())
    }
}

/// The source a family reads its maps from, once `KernelFamily::take` set it; `what`
/// names them in the error.
pub fn taken<'a, T: ?Sized>(maps: &'a mut Option<Box<T>>, what: &str) -> anyhow::Result<&'a mut T> {
    maps.as_deref_mut()
        .ok_or_else(|| anyhow::anyhow!("{what} are not taken"))
}

/// What every step of a refresh can read.
pub struct Refresh<'a> {
    pub procfs: &'a Path,
    pub now: Instant,
    /// The programs' failure counts (`HEALTH`), for the families' map figures.
    pub health: &'a [u64; HEALTH_COUNTERS as usize],
}

/// The per-process step of a refresh: the families add their counters to `entries`, one
/// per thread group, before the process table takes them.
pub struct Processes<'a> {
    pub entries: &'a mut Vec<KernelEntry>,
    pub live: &'a mut LiveSet,
    pub table: &'a ProcessTable,
    /// When the counters were read (CLOCK_MONOTONIC, seconds): set by the family that reads
    /// the clocked figures, the time base of rates.
    pub read_at: &'a mut f64,
}

/// Figures a snapshot carries besides its families, for `monitor top`.
#[derive(Default)]
pub struct Published {
    pub runq: Option<monitor_common::sched::RunqHist>,
    pub unattributed: Option<(u64, u64)>,
}

/// One kernel family. The loader runs `prepare`, `attach` and `take` once; the refresher
/// runs `refresh`, `events`, `processes`, `forget` and `after` in that order at each
/// refresh, then `collect` (`ok` families only).
pub trait KernelFamily: Send {
    /// The collector name (`--collector.<name>`), also the `collector` label of its hooks.
    fn name(&self) -> &'static str;

    /// A family that cannot attach fails the daemon instead of turning itself off.
    fn required(&self) -> bool {
        false
    }

    /// Whether it exports anything itself (the audit family hands its maps to the audit
    /// log's reader instead).
    fn collects(&self) -> bool {
        true
    }

    /// Whether its figures are the per-process kernel counters (`ProcessList::measured`):
    /// without them the process table is not updated from the kernel.
    fn measures_processes(&self) -> bool {
        false
    }

    /// Reads what its programs need before the object loads. An error turns it off.
    fn prepare(&mut self, _ctx: &Prepare<'_>, _setup: &mut Setup) -> anyhow::Result<()> {
        Ok(())
    }

    /// Attaches its programs; returns which hook serves each measure.
    fn attach(&mut self, a: &mut Attacher<'_>) -> anyhow::Result<Vec<Attached>>;

    /// Takes its maps, once attached (`attached`: what `attach` returned).
    fn take(&mut self, ebpf: &mut Ebpf, attached: &[Attached]) -> anyhow::Result<()>;

    /// Reads its own figures (not per process).
    fn refresh(&mut self, _r: &Refresh<'_>) -> anyhow::Result<()> {
        Ok(())
    }

    /// Hands the process events the kernel sent since the last refresh to `f`.
    fn events(&mut self, _f: &mut dyn FnMut(&ProcEvent)) {}

    /// Whether its programs send an event at every process exit (`events`), so that the
    /// process table needs procfs listed only as a check.
    fn sends_exit_events(&self) -> bool {
        false
    }

    /// Adds its per-process counters to the entries.
    fn processes(&mut self, _p: &mut Processes<'_>) -> anyhow::Result<()> {
        Ok(())
    }

    /// Forgets the thread groups the table folded.
    fn forget(&mut self, _tgids: &[u32]) {}

    /// Reads what it needs of the updated table.
    fn after(
        &mut self,
        _r: &Refresh<'_>,
        _table: &ProcessTable,
        _export: &Export,
    ) -> anyhow::Result<()> {
        Ok(())
    }

    /// Its maps' fill and failed updates, as of the last refresh.
    fn maps(&self) -> Vec<MapStat> {
        Vec::new()
    }

    /// Appends its families.
    fn collect(&mut self, _view: &View<'_>, _out: &mut Vec<MetricFamily>) -> anyhow::Result<()> {
        Ok(())
    }

    /// Adds what `monitor top` reads besides the families.
    fn publish(&self, _p: &mut Published) {}

    /// Sets its fields of a process's API row from the process's counters.
    fn row(&self, _c: &Counters, _row: &mut ProcessRow) {}
}
