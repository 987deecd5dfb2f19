//! A thread became runnable, so its run-queue wait starts now: `sched_wakeup` and
//! `sched_wakeup_new`.
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
use monitor_common::health::{program::SCHED_WAKEUP, reason::MAP_FULL, RUNQ_START_INSERT_FAILED};

use crate::{
    health::{count_failure, finish, Outcome},
    maps::RUNQ_START,
    sched_switch::task_pid,
};

const PID_OFFSET: usize = 24;

#[btf_tracepoint(function = "sched_wakeup")]
pub fn sched_wakeup_btf(ctx: BtfTracePointContext) -> u32 {
    // Argument: (struct task_struct *p).
    finish(SCHED_WAKEUP, on_wakeup(task_pid(ctx.arg(0))))
}

#[btf_tracepoint(function = "sched_wakeup_new")]
pub fn sched_wakeup_new_btf(ctx: BtfTracePointContext) -> u32 {
    finish(SCHED_WAKEUP, on_wakeup(task_pid(ctx.arg(0))))
}

#[tracepoint(category = "sched", name = "sched_wakeup")]
pub fn sched_wakeup(ctx: TracePointContext) -> u32 {
    finish(SCHED_WAKEUP, on_wakeup(record_pid(&ctx)))
}

#[tracepoint(category = "sched", name = "sched_wakeup_new")]
pub fn sched_wakeup_new(ctx: TracePointContext) -> u32 {
    finish(SCHED_WAKEUP, on_wakeup(record_pid(&ctx)))
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

#[inline(always)]
fn on_wakeup(tid: u32) -> Outcome {
    // SAFETY: no preconditions; the binding is marked unsafe as all helpers are.
    let now = unsafe { bpf_ktime_get_ns() };
    if let Some(q) = RUNQ_START.get_ptr_mut(tid) {
        // SAFETY: a valid map value pointer for the duration of this program.
        unsafe { *q = now };
        return Ok(());
    }
    if RUNQ_START.insert(tid, now, 0).is_err() {
        count_failure(RUNQ_START_INSERT_FAILED);
        return Err(MAP_FULL);
    }
    Ok(())
}
