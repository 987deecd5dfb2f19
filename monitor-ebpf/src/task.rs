//! The per-thread-group entry every program that charges a process shares.

use aya_ebpf::{
    bindings::BPF_NOEXIST,
    helpers::{bpf_get_current_cgroup_id, bpf_get_current_comm},
};
use monitor_common::{
    health::TASK_STATS_INSERT_FAILED,
    sched::{TaskCounters, TaskStats},
};

use crate::{health::count_failure, maps::TASK_STATS};

/// The group's entry, created on first sight with the current task's name and cgroup (the
/// cgroup only here, on the rare path: the switch path pays nothing more for it).
/// Must run in the context of a task of `tgid` (its name is taken from `current`).
#[inline(always)]
pub fn task_stats(tgid: u32) -> Option<*mut TaskStats> {
    if let Some(p) = TASK_STATS.get_ptr_mut(tgid) {
        return Some(p);
    }
    let init = TaskStats {
        counters: TaskCounters::default(),
        comm: bpf_get_current_comm().unwrap_or_default(),
        // SAFETY: no preconditions; the binding is marked unsafe as all helpers are.
        cgroup_id: unsafe { bpf_get_current_cgroup_id() },
    };
    // EEXIST means another CPU created it first, which is fine: look it up again.
    let _ = TASK_STATS.insert(tgid, init, u64::from(BPF_NOEXIST));
    let p = TASK_STATS.get_ptr_mut(tgid);
    if p.is_none() {
        count_failure(TASK_STATS_INSERT_FAILED);
    }
    p
}
