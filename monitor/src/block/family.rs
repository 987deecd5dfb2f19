//! The block family as the loader and the refresher see it: the typed path where the kernel
//! has it (its struct members from BTF), else the classic one (where `rwbs` sits in this
//! kernel's completion records, which submitter hook serves, with the split hook where bio
//! events do), and at each refresh the disks' figures and the per-process counters.

use std::path::PathBuf;

use aya::Ebpf;
use monitor_common::{
    block::{DiskKey, DiskStats},
    health::{BLOCK_REQUESTS_INSERT_FAILED, BLOCK_TASKS_INSERT_FAILED, DISK_STATS_INSERT_FAILED},
    maps,
};
use prometheus::proto::MetricFamily;

use super::kernel::{
    layout, set_layout, BlockMaps, BlockPath, BlockSource, RwbsOffset, REQUESTS, SPLIT, SUBMITTER,
    TYPED, TYPED_PROGRAMS,
};
use crate::{
    api::processes::ProcessRow,
    bpf::{
        attach::Attached,
        family::{taken, Attacher, KernelFamily, Prepare, Processes, Refresh, Setup},
        health::MapStat,
    },
    collectors::View,
    process::counters::Counters,
};

/// The submitter hook that needs the split hook beside it (and `PART_DISK` kept).
const BIO_QUEUE: &str = "block_owner_bio_queue";
/// The typed path's submitter: attached, the whole typed path is.
const TYPED_SUBMITTER: &str = TYPED_PROGRAMS[0];

/// Named in the error if a refresh came before `take`.
const MAPS: &str = "the block maps";

pub struct Block {
    /// Where partitions are matched to their disks and devices get their names.
    sysfs: PathBuf,
    maps: Option<Box<dyn BlockSource>>,
    disks: Vec<(DiskKey, DiskStats)>,
    map_stats: Vec<MapStat>,
}

impl Block {
    pub fn new(sysfs: PathBuf) -> Self {
        Self {
            sysfs,
            maps: None,
            disks: Vec::new(),
            map_stats: Vec::new(),
        }
    }

    /// The family reading `source` instead of the kernel's maps.
    #[cfg(test)]
    pub fn reading(sysfs: PathBuf, source: Box<dyn BlockSource>) -> Self {
        Self {
            maps: Some(source),
            ..Self::new(sysfs)
        }
    }
}

impl KernelFamily for Block {
    fn name(&self) -> &'static str {
        super::collector::SPEC.name
    }

    fn prepare(&mut self, ctx: &Prepare<'_>, setup: &mut Setup) -> anyhow::Result<()> {
        RwbsOffset::read(ctx.tracefs)?.set(setup);
        let typed = match ctx.btf {
            Ok(btf) => layout(btf),
            Err(e) => Err(anyhow::anyhow!("no kernel BTF: {e:#}")),
        };
        match typed {
            Ok(l) => set_layout(&l, setup),
            Err(e) => {
                tracing::debug!(
                    error = format!("{e:#}"),
                    btf = %ctx.vmlinux.display(),
                    "typed block hooks off; the classic ones serve"
                );
                setup
                    .fail
                    .extend(TYPED_PROGRAMS.iter().map(|p| p.to_string()));
            }
        }
        Ok(())
    }

    fn attach(&mut self, a: &mut Attacher<'_>) -> anyhow::Result<Vec<Attached>> {
        // All three typed hooks or none: `attach` detaches what it attached when one fails.
        match a.attach(TYPED) {
            Ok(all) => return Ok(all),
            Err(e) => tracing::debug!(
                error = format!("{e:#}"),
                "typed block hooks unavailable; the classic ones serve"
            ),
        }
        let mut all = a.attach(&[SUBMITTER])?;
        let mut rest = REQUESTS.to_vec();
        if all.iter().any(|s| s.program == BIO_QUEUE) {
            rest.insert(0, SPLIT);
        }
        match a.attach(&rest) {
            Ok(more) => all.extend(more),
            Err(e) => {
                a.detach(&all);
                return Err(e);
            }
        }
        Ok(all)
    }

    fn take(&mut self, ebpf: &mut Ebpf, attached: &[Attached]) -> anyhow::Result<()> {
        let has = |p: &str| attached.iter().any(|a| a.program == p);
        let path = if has(TYPED_SUBMITTER) {
            BlockPath::Typed
        } else if has(BIO_QUEUE) {
            BlockPath::ClassicBio
        } else {
            BlockPath::Classic
        };
        let mut maps = BlockMaps::take(ebpf, path)?;
        if let Err(e) = maps.sync_partitions(&self.sysfs) {
            tracing::warn!(
                error = format!("{e:#}"),
                "I/O to partitions is charged to no process"
            );
        }
        self.maps = Some(Box::new(maps));
        Ok(())
    }

    fn refresh(&mut self, r: &Refresh<'_>) -> anyhow::Result<()> {
        let maps = taken(&mut self.maps, MAPS)?;
        if let Err(e) = maps.sync_partitions(&self.sysfs) {
            tracing::debug!(error = format!("{e:#}"), "following partitions");
        }
        let disks = maps.read()?;
        let map_stats = vec![
            MapStat {
                name: maps::DISK_STATS,
                entries: Some(disks.len() as u64),
                capacity: maps::DISK_STATS_CAPACITY.into(),
                update_failures: r.health[DISK_STATS_INSERT_FAILED as usize],
            },
            MapStat {
                name: maps::BLOCK_TASKS,
                entries: Some(maps.task_entries()),
                capacity: maps::BLOCK_TASKS_CAPACITY.into(),
                update_failures: r.health[BLOCK_TASKS_INSERT_FAILED as usize],
            },
            {
                let (name, capacity) = maps.request_map();
                MapStat {
                    name,
                    entries: Some(maps.request_entries()),
                    capacity: capacity.into(),
                    // The typed path counts a slot taken over as a miss of its submitter.
                    update_failures: r.health[BLOCK_REQUESTS_INSERT_FAILED as usize],
                }
            },
        ];
        self.disks = disks;
        self.map_stats = map_stats;
        Ok(())
    }

    fn processes(&mut self, p: &mut Processes<'_>) -> anyhow::Result<()> {
        let table = p.table;
        let live = p.live.pids();
        taken(&mut self.maps, MAPS)?.merge(p.entries, live, &|t| table.knows(t))
    }

    fn forget(&mut self, tgids: &[u32]) {
        if let Some(m) = &mut self.maps {
            m.remove_tasks(tgids);
        }
    }

    fn maps(&self) -> Vec<MapStat> {
        self.map_stats.clone()
    }

    fn collect(&mut self, view: &View<'_>, out: &mut Vec<MetricFamily>) -> anyhow::Result<()> {
        super::collector::families(&self.sysfs, &self.disks, view, out);
        Ok(())
    }

    fn row(&self, c: &Counters, row: &mut ProcessRow) {
        row.disk = super::api::Fields::of(c);
    }
}
