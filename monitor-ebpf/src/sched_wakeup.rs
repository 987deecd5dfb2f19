//! `sched:sched_wakeup` and `sched:sched_wakeup_new` (classic tracepoints, every kernel):
//! a thread became runnable, so its run-queue wait starts now.
//!
//! Format (include/trace/events/sched.h, `sched_wakeup_template`): after the 8-byte common
//! header, `char comm[16]` at 8 and `pid_t pid` at 24; unchanged since 2.6.

use aya_ebpf::{
    helpers::bpf_ktime_get_ns, macros::tracepoint, programs::TracePointContext, EbpfContext,
};
use monitor_common::health::RUNQ_START_INSERT_FAILED;

use crate::{health::count_failure, maps::RUNQ_START};

const PID_OFFSET: usize = 24;

#[tracepoint(category = "sched", name = "sched_wakeup")]
pub fn sched_wakeup(ctx: TracePointContext) -> u32 {
    on_wakeup(&ctx);
    0
}

#[tracepoint(category = "sched", name = "sched_wakeup_new")]
pub fn sched_wakeup_new(ctx: TracePointContext) -> u32 {
    on_wakeup(&ctx);
    0
}

#[inline(always)]
fn on_wakeup(ctx: &TracePointContext) {
    // SAFETY: a direct, aligned load inside the record of both tracepoints (see the format
    // above); the verifier checks it against the record size. Cheaper than a probe read.
    let tid = unsafe {
        (ctx.as_ptr() as *const u8)
            .add(PID_OFFSET)
            .cast::<u32>()
            .read()
    };
    // SAFETY: no preconditions; the binding is marked unsafe as all helpers are.
    let now = unsafe { bpf_ktime_get_ns() };
    if RUNQ_START.insert(tid, now, 0).is_err() {
        count_failure(RUNQ_START_INSERT_FAILED);
    }
}
