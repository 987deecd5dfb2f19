//! `sched_switch`: on-CPU time, run-queue wait and context switches per thread group.
//!
//! Everything is charged at switch-out, when the outgoing task is `current`, so its tgid comes
//! from `bpf_get_current_pid_tgid` and no `task_struct` field is ever read (no offsets that
//! vary between kernels). The wait that preceded a slice is charged with the slice: the slice
//! started at `CPU_SLOT.switched_in_ns`, the wait at the thread's `RUNQ_START` entry.
//!
//! Two entry points share the logic:
//! - `tp_btf/sched_switch` (5.18+, where `prev_state` became an argument): the cheapest hook,
//!   with the `preempt` flag, so switches are classified exactly as the kernel's
//!   `nvcsw`/`nivcsw` are;
//! - the classic `sched:sched_switch` tracepoint, the fallback on older kernels. Its
//!   `prev_state` (a `long` at offset 32) reads `TASK_REPORT_MAX` for a preempted task.

use aya_ebpf::{
    helpers::{bpf_get_current_pid_tgid, bpf_ktime_get_ns},
    macros::{btf_tracepoint, tracepoint},
    programs::{BtfTracePointContext, TracePointContext},
    EbpfContext,
};
use monitor_common::{health::RUNQ_START_INSERT_FAILED, hist::bucket, sched::TASK_RUNNING};

use crate::{
    atomic::add,
    health::count_failure,
    maps::{CPU_SLOT, RUNQ_HIST, RUNQ_START},
    task::task_stats,
};

/// `TASK_REPORT_MAX` (include/linux/sched.h, 4.14+): what the classic tracepoint reports as
/// `prev_state` for a preempted task.
const TASK_REPORT_MAX: u64 = 0x100;
const CLASSIC_PREV_STATE_OFFSET: usize = 32;

#[btf_tracepoint(function = "sched_switch")]
pub fn sched_switch_btf(ctx: BtfTracePointContext) -> u32 {
    // Arguments: (bool preempt, task_struct *prev, task_struct *next, unsigned int prev_state).
    let preempt: u64 = ctx.arg(0);
    let prev_state: u64 = ctx.arg(3);
    on_switch(preempt & 0xff != 0, prev_state & 0xffff_ffff);
    0
}

#[tracepoint(category = "sched", name = "sched_switch")]
pub fn sched_switch_tp(ctx: TracePointContext) -> u32 {
    // SAFETY: a direct, aligned load inside the record (see the module comment); the verifier
    // checks it against the record size.
    let state = unsafe {
        (ctx.as_ptr() as *const u8)
            .add(CLASSIC_PREV_STATE_OFFSET)
            .cast::<u64>()
            .read()
    };
    let preempt = state & TASK_REPORT_MAX != 0;
    on_switch(preempt, if preempt { TASK_RUNNING } else { state });
    0
}

#[inline(always)]
fn on_switch(preempt: bool, prev_state: u64) {
    // SAFETY: no preconditions; the binding is marked unsafe as all helpers are.
    let now = unsafe { bpf_ktime_get_ns() };
    let Some(slot) = CPU_SLOT.get_ptr_mut(0) else {
        return;
    };
    // SAFETY: this CPU's own slot; tracepoint programs do not nest on one CPU.
    let started = unsafe { core::mem::replace(&mut (*slot).switched_in_ns, now) };

    let pid_tgid = bpf_get_current_pid_tgid();
    let tid = pid_tgid as u32;
    let tgid = (pid_tgid >> 32) as u32;
    if tid == 0 {
        // The idle task: its time is idle time, already in /proc/stat.
        return;
    }
    // `started == 0`: the first switch seen on this CPU, the slice's start is unknown.
    let on_cpu = if started != 0 { now - started } else { 0 };

    let mut wait = 0;
    let queued = RUNQ_START.get_ptr(tid);
    if let Some(q) = queued {
        // SAFETY: a valid map value pointer for the duration of this program.
        let q = unsafe { *q };
        // An entry newer than the slice start is a wakeup that raced with the slice
        // (woken while still running): not a wait.
        if started != 0 && q <= started {
            wait = started - q;
        }
    }

    let runnable = preempt || prev_state == TASK_RUNNING;
    if runnable {
        if RUNQ_START.insert(tid, now, 0).is_err() {
            count_failure(RUNQ_START_INSERT_FAILED);
        }
    } else if queued.is_some() {
        let _ = RUNQ_START.remove(tid);
    }

    if wait != 0 {
        if let Some(h) = RUNQ_HIST.get_ptr_mut(0) {
            // SAFETY: this CPU's own histogram, see above.
            let h = unsafe { &mut *h };
            if let Some(b) = h.buckets.get_mut(bucket(wait)) {
                *b += 1;
            }
            h.sum_ns += wait;
        }
    }

    let Some(stats) = task_stats(tgid) else {
        return;
    };
    // SAFETY: `stats` points into a hash map value that stays valid during the program;
    // other CPUs update the same group concurrently, hence the atomic adds.
    unsafe {
        let c = &raw mut (*stats).counters;
        add(&raw mut (*c).on_cpu_ns, on_cpu);
        add(&raw mut (*c).runq_wait_ns, wait);
        if runnable {
            add(&raw mut (*c).involuntary_switches, 1);
        } else {
            add(&raw mut (*c).voluntary_switches, 1);
        }
    }
}
