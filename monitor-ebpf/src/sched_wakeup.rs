//! A thread became runnable, so its run-queue wait starts now: `sched_wakeup` and
//! `sched_wakeup_new`.
//!
//! `sched_wakeup` is attached only where the kernel's BTF does not name
//! `sched_info.run_delay` (the switch charges the kernel's own wait otherwise, see
//! `sched_switch`). `sched_wakeup_new` always is: a new thread's entry, made here, lets its
//! first slice and first wait be charged from zero.
//!
//! Typed hooks first (`tp_btf`, which hand over the `task_struct` and skip building the trace
//! record: about a third of the classic program's cost), with the classic tracepoints as the
//! fallback where the kernel has no BTF.
//!
//! Classic format (include/trace/events/sched.h, `sched_wakeup_template`): after the 8-byte
//! common header, `char comm[16]` at 8 and `pid_t pid` at 24; unchanged since 2.6.

use aya_ebpf::{
    helpers::bpf_ktime_get_ns,
    macros::{btf_tracepoint, tracepoint},
    programs::{BtfTracePointContext, TracePointContext},
    EbpfContext,
};
use monitor_common::{
    health::{program::SCHED_WAKEUP, reason::MAP_FULL, RUNQ_START_INSERT_FAILED},
    sched::{ThreadState, RUNTIME_UNKNOWN},
};

use crate::{
    health::{count_failure, finish, Outcome},
    maps::RUNQ_START,
    sched_switch::{task_pid, task_runtime},
};

const PID_OFFSET: usize = 24;

#[btf_tracepoint(function = "sched_wakeup")]
pub fn sched_wakeup_btf(ctx: BtfTracePointContext) -> u32 {
    // Argument: (struct task_struct *p).
    let p: *const u8 = ctx.arg(0);
    finish(
        SCHED_WAKEUP,
        on_wakeup(task_pid(p), || task_runtime(p), RUNTIME_UNKNOWN),
    )
}

// A new task has run for 0 ns and waited 0 ns (`sched_fork` zeroes its runtime and its
// `sched_info` before it is woken).

#[btf_tracepoint(function = "sched_wakeup_new")]
pub fn sched_wakeup_new_btf(ctx: BtfTracePointContext) -> u32 {
    finish(SCHED_WAKEUP, on_wakeup(task_pid(ctx.arg(0)), || 0, 0))
}

#[tracepoint(category = "sched", name = "sched_wakeup")]
pub fn sched_wakeup(ctx: TracePointContext) -> u32 {
    finish(
        SCHED_WAKEUP,
        on_wakeup(record_pid(&ctx), || RUNTIME_UNKNOWN, RUNTIME_UNKNOWN),
    )
}

#[tracepoint(category = "sched", name = "sched_wakeup_new")]
pub fn sched_wakeup_new(ctx: TracePointContext) -> u32 {
    finish(SCHED_WAKEUP, on_wakeup(record_pid(&ctx), || 0, 0))
}

#[inline(always)]
fn record_pid(ctx: &TracePointContext) -> u32 {
    // SAFETY: a direct, aligned load inside the record of both tracepoints (see the format
    // above); the verifier checks it against the record size. Cheaper than a probe read.
    unsafe {
        (ctx.as_ptr() as *const u8)
            .add(PID_OFFSET)
            .cast::<u32>()
            .read()
    }
}

/// `runtime`: the thread's `sum_exec_runtime` now, asked only when its entry is made (a
/// sleeping thread's runtime does not move until it runs); `waited`: its `run_delay` where
/// known (a new thread's).
#[inline(always)]
fn on_wakeup(tid: u32, runtime: impl FnOnce() -> u64, waited: u64) -> Outcome {
    // SAFETY: no preconditions; the binding is marked unsafe as all helpers are.
    let now = unsafe { bpf_ktime_get_ns() };
    if let Some(q) = RUNQ_START.get_ptr_mut(tid) {
        // SAFETY: a valid map value pointer for the duration of this program.
        unsafe { (*q).queued_ns = now };
        return Ok(());
    }
    let state = ThreadState {
        queued_ns: now,
        charged_ns: runtime(),
        waited_ns: waited,
    };
    if RUNQ_START.insert(tid, state, 0).is_err() {
        count_failure(RUNQ_START_INSERT_FAILED);
        return Err(MAP_FULL);
    }
    Ok(())
}
