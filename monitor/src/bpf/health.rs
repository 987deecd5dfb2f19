//! The BPF layer's own health: per-program run counts and run time (kept by the kernel while
//! `kernel.bpf_stats_enabled` is on), and per-map fill and failed updates.

use std::{path::Path, time::Duration};

use anyhow::Context as _;
use aya::{
    maps::{MapData, PerCpuArray},
    Ebpf,
};
use monitor_common::{
    health::{program, reason, HEALTH_COUNTERS, MISS_SLOTS},
    maps,
};

/// The kernel programs' `HEALTH` counts: what they could not record, by kind.
pub struct HealthCounters(PerCpuArray<MapData, u64>);

impl HealthCounters {
    pub fn take(ebpf: &mut Ebpf) -> anyhow::Result<Self> {
        Ok(Self(super::take_map(ebpf, maps::HEALTH)?))
    }

    /// Each count summed over CPUs, indexed by the `monitor_common::health` constants.
    pub fn read(&self) -> anyhow::Result<[u64; HEALTH_COUNTERS as usize]> {
        let mut out = [0; HEALTH_COUNTERS as usize];
        for (i, o) in out.iter_mut().enumerate() {
            let per_cpu = self
                .0
                .get(&(i as u32), 0)
                .with_context(|| format!("reading map HEALTH[{i}]"))?;
            *o = per_cpu.iter().sum();
        }
        Ok(out)
    }
}

/// The kernel programs' `MISSES` counts: what each program dropped, by reason.
pub struct Misses(PerCpuArray<MapData, u64>);

/// One `monitor_bpf_misses_total` series.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Miss {
    pub program: &'static str,
    pub reason: &'static str,
    pub count: u64,
}

impl Misses {
    pub fn take(ebpf: &mut Ebpf) -> anyhow::Result<Self> {
        Ok(Self(super::take_map(ebpf, maps::MISSES)?))
    }

    /// Every reason each attached program family can count (0 included), summed over CPUs.
    /// `attached(label, program)`: whether `program` of the object is attached for the
    /// collector that counts its misses under `label` (a shared hook's program counts
    /// under one label per family, see `bpf::hooks`).
    pub fn read(&self, attached: impl Fn(&str, &str) -> bool) -> anyhow::Result<Vec<Miss>> {
        let mut out = Vec::new();
        for p in 0..program::COUNT {
            let label = program::NAMES[p as usize];
            if !program::OBJECT_PROGRAMS[p as usize]
                .iter()
                .any(|name| attached(label, name))
            {
                continue;
            }
            for &r in program::REASONS[p as usize] {
                let i = p * reason::COUNT + r;
                debug_assert!(i < MISS_SLOTS);
                let per_cpu = self
                    .0
                    .get(&i, 0)
                    .with_context(|| format!("reading map MISSES[{i}]"))?;
                out.push(Miss {
                    program: label,
                    reason: reason::NAMES[r as usize],
                    count: per_cpu.iter().sum(),
                });
            }
        }
        Ok(out)
    }
}

#[derive(Clone, Debug)]
pub struct ProgramStat {
    pub name: String,
    pub run_count: u64,
    pub run_time: Duration,
    pub verified_instructions: Option<u32>,
}

#[derive(Clone, Debug)]
pub struct MapStat {
    pub name: &'static str,
    pub entries: Option<u64>,
    pub capacity: u64,
    pub update_failures: u64,
}

/// Stats of every program of ours that is loaded.
pub fn program_stats(ebpf: &Ebpf) -> Vec<ProgramStat> {
    ebpf.programs()
        .filter_map(|(name, prog)| {
            let info = prog.info().ok()?;
            Some(ProgramStat {
                name: name.to_string(),
                run_count: info.run_count(),
                run_time: info.run_time(),
                verified_instructions: info.verified_instruction_count(),
            })
        })
        .collect()
}

/// Whether the kernel is counting program run time now (`None` if it cannot be told).
pub fn stats_enabled(procfs: &Path) -> Option<bool> {
    let s = std::fs::read_to_string(procfs.join("sys/kernel/bpf_stats_enabled")).ok()?;
    Some(s.trim() != "0")
}
