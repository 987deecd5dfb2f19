//! The block collector's kernel side: which programs it attaches, the record offsets they need
//! from tracefs, and reading its maps.

use std::path::Path;

use anyhow::{bail, Context as _};
use aya::{
    maps::{HashMap, MapData},
    Ebpf, EbpfLoader,
};
use monitor_common::{
    block::{
        BlockOwner, DiskKey, DiskStats, Inflight, InflightKey, RQ_COMPLETE_RWBS_OFFSET,
        RQ_ISSUE_RWBS_OFFSET,
    },
    maps,
};

use super::{
    attach::{Choice, Hook, Probe},
    take_map,
};

/// Who submitted each request: `block_io_start` where it exists (6.5+: one event per request,
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

/// Where `rwbs` sits in `block_rq_issue` and `block_rq_complete` records on this kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RwbsOffsets {
    pub issue: u32,
    pub complete: u32,
}

impl RwbsOffsets {
    /// Reads them from the events' `format` files under `tracefs`.
    pub fn read(tracefs: &Path) -> anyhow::Result<Self> {
        let one = |event: &str| -> anyhow::Result<u32> {
            let path = tracefs.join("events/block").join(event).join("format");
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("reading {}", path.display()))?;
            field_offset(&text, "rwbs").with_context(|| format!("in {}", path.display()))
        };
        Ok(Self {
            issue: one("block_rq_issue")?,
            complete: one("block_rq_complete")?,
        })
    }

    /// Hands them to the programs; must run before the object is loaded.
    pub fn set<'a>(&'a self, loader: &mut EbpfLoader<'a>) {
        loader.override_global(RQ_ISSUE_RWBS_OFFSET, &self.issue, true);
        loader.override_global(RQ_COMPLETE_RWBS_OFFSET, &self.complete, true);
    }
}

/// The offset of field `name` (a scalar or an array) in a tracefs `format` description.
fn field_offset(format: &str, name: &str) -> anyhow::Result<u32> {
    for line in format.lines() {
        let mut decl = None;
        let mut offset = None;
        for part in line.split(';') {
            let part = part.trim();
            if let Some(d) = part.strip_prefix("field:") {
                decl = Some(d);
            } else if let Some(o) = part.strip_prefix("offset:") {
                offset = Some(o);
            }
        }
        let (Some(decl), Some(offset)) = (decl, offset) else {
            continue;
        };
        // "char rwbs[10]" or "dev_t dev": the name is the last word, before any "[".
        let field = decl
            .rsplit(' ')
            .next()
            .unwrap_or_default()
            .split('[')
            .next()
            .unwrap_or_default();
        if field == name {
            return offset
                .parse()
                .with_context(|| format!("field {name} has offset {offset:?}"));
        }
    }
    bail!("no field {name}")
}

pub struct BlockMaps {
    stats: HashMap<MapData, DiskKey, DiskStats>,
    owner: HashMap<MapData, u64, BlockOwner>,
    inflight: HashMap<MapData, InflightKey, Inflight>,
}

impl BlockMaps {
    pub fn take(ebpf: &mut Ebpf) -> anyhow::Result<Self> {
        Ok(Self {
            stats: take_map(ebpf, maps::DISK_STATS)?,
            owner: take_map(ebpf, maps::BLOCK_OWNER)?,
            inflight: take_map(ebpf, maps::BLOCK_INFLIGHT)?,
        })
    }

    /// Every disk and operation seen so far.
    pub fn read(&self) -> anyhow::Result<Vec<(DiskKey, DiskStats)>> {
        let mut out = Vec::new();
        for kv in self.stats.iter() {
            match kv {
                Ok(kv) => out.push(kv),
                Err(aya::maps::MapError::KeyNotFound) => continue,
                Err(e) => return Err(e).context("reading map DISK_STATS"),
            }
        }
        Ok(out)
    }

    pub fn owner_entries(&self) -> u64 {
        self.owner.keys().filter(Result::is_ok).count() as u64
    }

    pub fn inflight_entries(&self) -> u64 {
        self.inflight.keys().filter(Result::is_ok).count() as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rwbs_offset_from_format_files() {
        let new = include_str!("testdata/block_rq_issue-6.18.format");
        let old = include_str!("testdata/block_rq_issue-6.1.format");
        assert_eq!(field_offset(new, "rwbs").unwrap(), 34);
        assert_eq!(field_offset(old, "rwbs").unwrap(), 32);
        assert_eq!(field_offset(new, "dev").unwrap(), 8);
        assert_eq!(field_offset(new, "sector").unwrap(), 16);
        assert_eq!(field_offset(old, "nr_sector").unwrap(), 24);
        let e = field_offset(new, "nope").unwrap_err();
        assert_eq!(e.to_string(), "no field nope");
    }
}
