//! The BPF layer's own health: per-program run counts and run time (kept by the kernel while
//! `kernel.bpf_stats_enabled` is on), and per-map fill and failed updates.

use std::{path::Path, time::Duration};

use aya::Ebpf;

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
