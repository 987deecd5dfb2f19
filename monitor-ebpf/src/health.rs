//! What the programs could not record, counted where it happens: `HEALTH` by map (failed
//! inserts, lost records), `MISSES` by program and reason. Nothing is dropped silently.

use monitor_common::health::{reason, MISS_SLOTS};

use crate::maps::{HEALTH, MISSES};

/// What a program's logic returns: `Err(reason)` (a `monitor_common::health::reason`) when
/// it dropped what it saw.
pub type Outcome = Result<(), u32>;

/// Counts one failure of kind `idx` (a `monitor_common::health` constant).
#[inline(always)]
pub fn count_failure(idx: u32) {
    bump(&HEALTH, idx);
}

/// Counts one miss of `program` (a `monitor_common::health::program` index) for `why`.
#[inline(always)]
pub fn miss(program: u32, why: u32) {
    let i = program * reason::COUNT + why;
    if i < MISS_SLOTS {
        bump(&MISSES, i);
    }
}

/// The end of every entry point: a miss counted by its reason, and the return value every
/// tracepoint program gives.
#[inline(always)]
pub fn finish(program: u32, r: Outcome) -> u32 {
    if let Err(why) = r {
        miss(program, why);
    }
    0
}

#[inline(always)]
fn bump(map: &aya_ebpf::maps::PerCpuArray<u64>, idx: u32) {
    if let Some(p) = map.get_ptr_mut(idx) {
        // SAFETY: a per-CPU slot, touched only by programs on this CPU, which do not nest
        // for tracepoints.
        unsafe { *p += 1 };
    }
}
