//! The block collector's kernel side: which programs it attaches (the typed path, else the
//! classic one), the record offsets and struct members they need from tracefs and BTF, and
//! reading its maps.

use std::{collections::HashSet, path::Path};

use anyhow::Context as _;
use aya::{
    maps::{Array, HashMap, IterableMap as _, MapData, PerCpuHashMap},
    Ebpf,
};
use monitor_common::{
    block::{
        BlockLayout, BlockTaskCounters, DiskKey, DiskStats, RequestKey, RequestState, RqSlot,
        GLOBAL_BLOCK_LAYOUT, RQ_COMPLETE_RWBS_OFFSET,
    },
    maps,
};

use crate::{
    audit::layout::offset_of,
    bpf::{
        attach::{Choice, Hook, Probe},
        batch::{read_all_of, CachedCount},
        per_task::PerTaskMap,
        take_map,
        tracefs::Format,
    },
    process::table::KernelEntry,
};

/// The typed path (6.5+ with BTF), attached whole or not at all: its programs follow a
/// request by its pointer, which the classic ones do not know.
pub const TYPED: &[Probe] = &[
    Probe {
        measure: "disk_submitter",
        choices: &[Choice {
            program: "block_owner_io_start_btf",
            hook: Hook::Btf("block_io_start"),
        }],
    },
    Probe {
        measure: "disk_issue",
        choices: &[Choice {
            program: "block_rq_issue_btf",
            hook: Hook::Btf("block_rq_issue"),
        }],
    },
    Probe {
        measure: "disk_completion",
        choices: &[Choice {
            program: "block_rq_complete_btf",
            hook: Hook::Btf("block_rq_complete"),
        }],
    },
];

/// The typed programs, for `Setup::fail` when the layout is incomplete.
pub const TYPED_PROGRAMS: [&str; 3] = [
    "block_owner_io_start_btf",
    "block_rq_issue_btf",
    "block_rq_complete_btf",
];

/// Where a request's operation and disk sit on this kernel, from its BTF; an error names a
/// missing member, and the typed path then stays off.
pub fn layout(btf: &btf_rs::Btf) -> anyhow::Result<BlockLayout> {
    Ok(BlockLayout {
        rq_cmd_flags: offset_of(btf, "request", "cmd_flags")?,
        rq_q: offset_of(btf, "request", "q")?,
        q_disk: offset_of(btf, "request_queue", "disk")?,
        disk_major: offset_of(btf, "gendisk", "major")?,
        disk_first_minor: offset_of(btf, "gendisk", "first_minor")?,
    })
}

/// Hands the layout to the typed programs; must run before the object is loaded.
pub fn set_layout(l: &BlockLayout, setup: &mut crate::bpf::family::Setup) {
    setup.global(GLOBAL_BLOCK_LAYOUT, l);
}

/// The classic path. Who submitted each request: `block_io_start` where it exists (6.5+: one event per request,
/// in the submitter's context), else every bio as it is queued.
pub const SUBMITTER: Probe = Probe {
    measure: "disk_submitter",
    choices: &[
        Choice {
            program: "block_owner_io_start",
            hook: Hook::Tracepoint("block", "block_io_start"),
        },
        Choice {
            program: "block_owner_bio_queue",
            hook: Hook::Tracepoint("block", "block_bio_queue"),
        },
    ],
};

/// With `block_bio_queue` only: a split bio's remainder has no queue event of its own.
pub const SPLIT: Probe = Probe {
    measure: "disk_submitter_split",
    choices: &[Choice {
        program: "block_owner_split",
        hook: Hook::Tracepoint("block", "block_split"),
    }],
};

pub const REQUESTS: &[Probe] = &[
    Probe {
        measure: "disk_issue",
        choices: &[Choice {
            program: "block_rq_issue",
            hook: Hook::Tracepoint("block", "block_rq_issue"),
        }],
    },
    Probe {
        measure: "disk_completion",
        choices: &[Choice {
            program: "block_rq_complete",
            hook: Hook::Tracepoint("block", "block_rq_complete"),
        }],
    },
];

/// Every hook either path can attach (for `monitor bpf verify` and the object's tests).
pub fn all_probes() -> impl Iterator<Item = &'static Probe> {
    TYPED.iter().chain([&SUBMITTER, &SPLIT]).chain(REQUESTS)
}

/// Where `rwbs` sits in `block_rq_complete` records on this kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RwbsOffset(u32);

impl RwbsOffset {
    /// Reads it from the event's `format` file under `tracefs`.
    pub fn read(tracefs: &Path) -> anyhow::Result<Self> {
        let off = Format::read(tracefs, "block", "block_rq_complete")?
            .get("rwbs")
            .context("block_rq_complete's format has no rwbs field")?;
        Ok(Self(off))
    }

    /// Hands it to the program; must run before the object is loaded.
    pub fn set(&self, setup: &mut crate::bpf::family::Setup) {
        setup.global(RQ_COMPLETE_RWBS_OFFSET, &self.0);
    }
}

/// The kernel's `dev_t` (major << 20 | minor) of a sysfs `dev` file's "MAJ:MIN".
fn parse_dev(s: &str) -> Option<u32> {
    let (major, minor) = s.trim().split_once(':')?;
    Some(major.parse::<u32>().ok()? << 20 | minor.parse::<u32>().ok()?)
}

/// Every partition on the host with its disk, from `<sysfs>/class/block`.
pub fn partitions(sysfs: &Path) -> anyhow::Result<Vec<(u32, u32)>> {
    let dir = sysfs.join("class/block");
    let mut out = Vec::new();
    for entry in std::fs::read_dir(&dir).with_context(|| format!("listing {}", dir.display()))? {
        let path = entry?.path();
        if !path.join("partition").exists() {
            continue;
        }
        // The partition's directory sits inside its disk's.
        let Ok(real) = std::fs::canonicalize(&path) else {
            continue;
        };
        let read = |p: &Path| {
            std::fs::read_to_string(p.join("dev"))
                .ok()
                .and_then(|s| parse_dev(&s))
        };
        if let (Some(part), Some(disk)) = (read(&real), real.parent().and_then(read)) {
            out.push((part, disk));
        }
    }
    Ok(out)
}

/// What the family reads of its maps: the kernel's (`BlockMaps`), or recorded contents
/// (`bpf::recording`, for tests without privileges).
pub trait BlockSource: Send {
    /// Brings `PART_DISK` in line with the host's partitions (when bio events are in use).
    fn sync_partitions(&mut self, sysfs: &Path) -> anyhow::Result<()>;
    /// Every disk and operation seen so far.
    fn read(&self) -> anyhow::Result<Vec<(DiskKey, DiskStats)>>;
    /// Sets each group's disk counters on its entry (see `bpf::per_task`).
    fn merge(
        &mut self,
        entries: &mut Vec<KernelEntry>,
        live: &HashSet<u32>,
        knows: &dyn Fn(u32) -> bool,
    ) -> anyhow::Result<()>;
    /// Forgets the groups whose `TASK_STATS` entries were folded.
    fn remove_tasks(&mut self, tgids: &[u32]);
    fn task_entries(&self) -> u64;
    /// The name and capacity of the map of requests in flight.
    fn request_map(&self) -> (&'static str, u32) {
        (maps::BLOCK_REQUESTS, maps::BLOCK_REQUESTS_CAPACITY)
    }
    fn request_entries(&self) -> u64;
}

/// Which path's programs serve, as `BlockMaps::take` is told.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BlockPath {
    Typed,
    /// `block_io_start` on its classic tracepoint (6.5+ without the typed path).
    Classic,
    /// Submitters from bio events, which name partitions: `PART_DISK` must follow the
    /// partitions on the host.
    ClassicBio,
}

/// The requests in flight, in the map of the path that serves.
enum Requests {
    Slots(Array<MapData, RqSlot>),
    Keyed(HashMap<MapData, RequestKey, RequestState>),
}

pub struct BlockMaps {
    stats: PerCpuHashMap<MapData, DiskKey, DiskStats>,
    tasks: PerTaskMap<BlockTaskCounters>,
    requests_count: CachedCount,
    requests: Requests,
    part_disk: HashMap<MapData, u32, u32>,
    path: BlockPath,
}

impl BlockMaps {
    pub fn take(ebpf: &mut Ebpf, path: BlockPath) -> anyhow::Result<Self> {
        let requests = match path {
            BlockPath::Typed => Requests::Slots(take_map(ebpf, maps::BLOCK_RQ_SLOTS)?),
            _ => Requests::Keyed(take_map(ebpf, maps::BLOCK_REQUESTS)?),
        };
        Ok(Self {
            stats: take_map(ebpf, maps::DISK_STATS)?,
            tasks: PerTaskMap::take(ebpf, maps::BLOCK_TASKS)?,
            requests_count: Default::default(),
            requests,
            part_disk: take_map(ebpf, maps::PART_DISK)?,
            path,
        })
    }
}

/// The sum of each CPU's figures of one disk and operation.
fn sum_cpus(per_cpu: &[DiskStats]) -> DiskStats {
    let mut t = DiskStats::default();
    for s in per_cpu {
        t.requests += s.requests;
        t.bytes += s.bytes;
        t.errors += s.errors;
        t.latency_sum_ns += s.latency_sum_ns;
        t.queue_sum_ns += s.queue_sum_ns;
        for (a, b) in t.latency.iter_mut().zip(&s.latency) {
            *a += b;
        }
        for (a, b) in t.queue.iter_mut().zip(&s.queue) {
            *a += b;
        }
    }
    t
}

impl BlockSource for BlockMaps {
    fn sync_partitions(&mut self, sysfs: &Path) -> anyhow::Result<()> {
        if self.path != BlockPath::ClassicBio {
            return Ok(());
        }
        let now = partitions(sysfs)?;
        let stale: Vec<u32> = self
            .part_disk
            .iter()
            .filter_map(Result::ok)
            .filter(|(p, d)| !now.contains(&(*p, *d)))
            .map(|(p, _)| p)
            .collect();
        for p in stale {
            let _ = self.part_disk.remove(&p);
        }
        for (p, d) in now {
            self.part_disk.insert(p, d, 0).with_context(|| {
                format!("updating map PART_DISK for {}:{}", p >> 20, p & 0xfffff)
            })?;
        }
        Ok(())
    }

    fn read(&self) -> anyhow::Result<Vec<(DiskKey, DiskStats)>> {
        let mut out = Vec::new();
        for kv in self.stats.iter() {
            match kv {
                Ok((k, v)) => out.push((k, sum_cpus(&v))),
                Err(aya::maps::MapError::KeyNotFound) => continue,
                Err(e) => return Err(e).context("reading map DISK_STATS"),
            }
        }
        Ok(out)
    }

    fn merge(
        &mut self,
        entries: &mut Vec<KernelEntry>,
        live: &HashSet<u32>,
        knows: &dyn Fn(u32) -> bool,
    ) -> anyhow::Result<()> {
        self.tasks.merge(entries, live, knows, |c, v| c.disk = v)
    }

    fn remove_tasks(&mut self, tgids: &[u32]) {
        self.tasks.remove(tgids);
    }

    fn task_entries(&self) -> u64 {
        self.tasks.entries()
    }

    fn request_map(&self) -> (&'static str, u32) {
        match self.requests {
            Requests::Slots(_) => (maps::BLOCK_RQ_SLOTS, monitor_common::block::RQ_SLOTS),
            Requests::Keyed(_) => (maps::BLOCK_REQUESTS, maps::BLOCK_REQUESTS_CAPACITY),
        }
    }

    fn request_entries(&self) -> u64 {
        match &self.requests {
            Requests::Keyed(m) => self.requests_count.get(m),
            // Slots taken (a completion frees its own), scanned in place; read in batches
            // where the array cannot be mapped, and 0 where it cannot be read in batches
            // either (before 5.6), as reading it slot by slot would cost a refresh more than
            // everything else.
            Requests::Slots(a) => self.requests_count.get_with(|| {
                let taken = |s: &RqSlot| s.rq != 0;
                crate::bpf::mapped::count(a.map(), monitor_common::block::RQ_SLOTS, taken)
                    .unwrap_or_else(|| {
                        read_all_of::<u32, RqSlot>(a.map())
                            .ok()
                            .flatten()
                            .map_or(0, |all| all.iter().filter(|(_, s)| taken(s)).count() as u64)
                    })
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rwbs_offset_from_format_files() {
        let new = Format::parse(include_str!("testdata/block_rq_issue-6.18.format"));
        let old = Format::parse(include_str!("testdata/block_rq_issue-6.1.format"));
        assert_eq!(new.get("rwbs"), Some(34));
        assert_eq!(old.get("rwbs"), Some(32));
        assert_eq!(new.get("dev"), Some(8));
        assert_eq!(new.get("sector"), Some(16));
        assert_eq!(old.get("nr_sector"), Some(24));
        assert_eq!(new.get("nope"), None);
    }

    #[test]
    fn partitions_map_to_their_disks() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let disk = root.join("devices/pci0000:00/virtio1/block/vda");
        let part = disk.join("vda1");
        std::fs::create_dir_all(&part).unwrap();
        std::fs::write(disk.join("dev"), "254:0\n").unwrap();
        std::fs::write(part.join("dev"), "254:1\n").unwrap();
        std::fs::write(part.join("partition"), "1\n").unwrap();
        let loop0 = root.join("devices/virtual/block/loop0");
        std::fs::create_dir_all(&loop0).unwrap();
        std::fs::write(loop0.join("dev"), "7:0\n").unwrap();
        let class = root.join("class/block");
        std::fs::create_dir_all(&class).unwrap();
        for (name, target) in [("vda", &disk), ("vda1", &part), ("loop0", &loop0)] {
            std::os::unix::fs::symlink(target, class.join(name)).unwrap();
        }
        assert_eq!(partitions(root).unwrap(), vec![(254 << 20 | 1, 254 << 20)]);
        assert_eq!(parse_dev("259:12\n"), Some(259 << 20 | 12));
        assert_eq!(parse_dev("x"), None);
    }
}
