//! `sched_switch`: on-CPU time, run-queue wait and context switches per thread group.
//!
//! The outgoing task is charged at switch-out, when it is `current`, so its tgid comes from
//! `bpf_get_current_pid_tgid`. Its on-CPU time is the growth of its `sum_exec_runtime` since
//! the thread's `RUNQ_START` entry last charged it (`monitor_common::sched::ThreadState` says
//! why not the clock); the clock since `CPU_SLOT.switched_in_ns` serves where that is not
//! known. The wait that preceded a slice is charged with the slice: the growth of its
//! `sched_info.run_delay` since the entry last charged it, or where the kernel's BTF does
//! not name that member, the clock from the entry's `queued_ns` (set by the wakeup programs,
//! which are attached only then) to `CPU_SLOT.switched_in_ns`. The incoming task is
//! written into `CPU_SLOT`, so the daemon can add the slice in progress when it reads the
//! counters (see `monitor_common::sched::CpuSlot`).
//!
//! Two entry points share the logic:
//! - `tp_btf/sched_switch` (5.18+, where `prev_state` became an argument): the cheapest hook,
//!   with the `preempt` flag, so switches are classified exactly as the kernel's
//!   `nvcsw`/`nivcsw` are; `next->tgid` is read at its BTF offset;
//! - the classic `sched:sched_switch` tracepoint, the fallback on older kernels. Its
//!   `prev_state` (a `long` at offset 32) reads `TASK_REPORT_MAX` for a preempted task; it
//!   names the incoming task by thread id only (`next_pid` at 56), which the daemon resolves.
//!
//! `RUNQ_START` keeps one entry per thread once it has run or been runnable (its queue time
//! 0 while it is not queued): rewriting a value in place costs a lookup, where deleting and
//! re-inserting it at every sleep and wakeup costs two updates under the bucket lock. The
//! entry goes at the thread's last switch-out (`TASK_DEAD`), once its last slice and wait
//! are charged.

use aya_ebpf::{
    helpers::{bpf_get_current_pid_tgid, bpf_get_current_task, bpf_ktime_get_ns},
    macros::{btf_tracepoint, tracepoint},
    programs::{BtfTracePointContext, TracePointContext},
    EbpfContext,
};
use monitor_common::{
    health::{program::SCHED_SWITCH, reason::MAP_FULL, RUNQ_START_INSERT_FAILED},
    hist::bucket,
    sched::{SchedLayout, ThreadState, RUNTIME_UNKNOWN, TASK_RUNNING},
};

use crate::{
    atomic::add,
    health::{count_failure, finish, miss, Outcome},
    maps::{CPU_SLOT, RUNQ_HIST, RUNQ_START},
    read::{global, member, read_field},
    task::task_stats,
};

/// `TASK_REPORT_MAX` (include/linux/sched.h, 4.14+): what the classic tracepoint reports as
/// `prev_state` for a preempted task.
const TASK_REPORT_MAX: u64 = 0x100;
const CLASSIC_PREV_STATE_OFFSET: usize = 32;
const CLASSIC_NEXT_PID_OFFSET: usize = 56;
/// A task's last switch: `TASK_DEAD` in the raw state (tp_btf); `EXIT_ZOMBIE` or `EXIT_DEAD`
/// in the classic tracepoint's report, which folds in `exit_state` (and reports `TASK_IDLE`
/// as 0x80).
const BTF_DEAD: u64 = 0x80;
const CLASSIC_DEAD: u64 = 0x20 | 0x10;

// Set by the daemon at load time from the kernel's BTF; zero means unknown (the daemon then
// attaches the classic tracepoints, which do not need it).
#[unsafe(no_mangle)]
static SCHED_LAYOUT: SchedLayout = SchedLayout {
    task_pid: 0,
    task_tgid: 0,
    task_sum_exec_runtime: 0,
    task_run_delay: 0,
};

/// A `u32` member of a `task_struct` the typed hook handed over, at a load-time offset.
///
/// A direct load: the offset is a constant of the frozen read-only data, so the verifier
/// knows it and checks the access against the kernel's `task_struct` (no probe-read helper
/// call on the hottest path).
#[inline(always)]
fn task_u32(task: *const u8, off: &'static u32) -> u32 {
    // SAFETY: a volatile read of a static, so the compiler does not fold the default in.
    let off = unsafe { core::ptr::read_volatile(off) } as usize;
    // SAFETY: `task` is a `task_struct *` argument of a tp_btf hook and `off` the offset of a
    // 4-byte member of it; the verifier checks both.
    unsafe { task.add(off).cast::<u32>().read() }
}

/// `p->pid` of a `task_struct` handed to a typed hook (the wakeup programs use it).
#[inline(always)]
pub fn task_pid(task: *const u8) -> u32 {
    task_u32(task, &SCHED_LAYOUT.task_pid)
}

/// `p->se.sum_exec_runtime` of a `task_struct` handed to a typed hook; `RUNTIME_UNKNOWN`
/// when the daemon found no offset for it. A plain value rather than an `Option`: 5.10's
/// verifier refuses a spilled `Option` whose payload slot the `None` path never wrote.
#[inline(always)]
pub fn task_runtime(task: *const u8) -> u64 {
    member(task, &SCHED_LAYOUT.task_sum_exec_runtime).unwrap_or(RUNTIME_UNKNOWN)
}

/// `p->sched_info.run_delay` of a `task_struct` handed to a typed hook; `RUNTIME_UNKNOWN`
/// when the daemon found no offset for it.
#[inline(always)]
fn task_run_delay(task: *const u8) -> u64 {
    member(task, &SCHED_LAYOUT.task_run_delay).unwrap_or(RUNTIME_UNKNOWN)
}

#[btf_tracepoint(function = "sched_switch")]
pub fn sched_switch_btf(ctx: BtfTracePointContext) -> u32 {
    // Arguments: (bool preempt, task_struct *prev, task_struct *next, unsigned int prev_state).
    let preempt: u64 = ctx.arg(0);
    let prev: *const u8 = ctx.arg(1);
    let next: *const u8 = ctx.arg(2);
    let prev_state: u64 = ctx.arg(3);
    let next_tgid = task_u32(next, &SCHED_LAYOUT.task_tgid);
    let next_tid = task_pid(next);
    let prev_state = prev_state & 0xffff_ffff;
    // Brought up to date by the scheduler before the tracepoint fires (`put_prev_task`, or
    // the dequeue of a task going to sleep). The wait before this slice was added to
    // `run_delay` when the slice began (`sched_info_arrive`).
    let prev_runtime = task_runtime(prev);
    let prev_delay = task_run_delay(prev);
    finish(
        SCHED_SWITCH,
        on_switch(
            prev_runtime,
            prev_delay,
            preempt & 0xff != 0,
            prev_state,
            prev_state & BTF_DEAD != 0,
            next_tgid,
            next_tid,
        ),
    )
}

#[tracepoint(category = "sched", name = "sched_switch")]
pub fn sched_switch_tp(ctx: TracePointContext) -> u32 {
    // SAFETY: direct, aligned loads inside the record (see the module comment); the verifier
    // checks them against the record size.
    let (state, next_tid) = unsafe {
        let rec = ctx.as_ptr() as *const u8;
        (
            rec.add(CLASSIC_PREV_STATE_OFFSET).cast::<u64>().read(),
            rec.add(CLASSIC_NEXT_PID_OFFSET).cast::<u32>().read(),
        )
    };
    let preempt = state & TASK_REPORT_MAX != 0;
    let prev_state = if preempt { TASK_RUNNING } else { state };
    // The outgoing task is `current`; this hook has no typed pointer, so a probe read.
    // SAFETY: no preconditions; the binding is marked unsafe as all helpers are.
    let prev = unsafe { bpf_get_current_task() };
    let prev_runtime = read_field::<u64>(prev, global(&SCHED_LAYOUT.task_sum_exec_runtime))
        .unwrap_or(RUNTIME_UNKNOWN);
    let prev_delay =
        read_field::<u64>(prev, global(&SCHED_LAYOUT.task_run_delay)).unwrap_or(RUNTIME_UNKNOWN);
    finish(
        SCHED_SWITCH,
        on_switch(
            prev_runtime,
            prev_delay,
            preempt,
            prev_state,
            prev_state & CLASSIC_DEAD != 0,
            0,
            next_tid,
        ),
    )
}

#[inline(always)]
fn on_switch(
    prev_runtime: u64,
    prev_delay: u64,
    preempt: bool,
    prev_state: u64,
    dead: bool,
    next_tgid: u32,
    next_tid: u32,
) -> Outcome {
    // SAFETY: no preconditions; the binding is marked unsafe as all helpers are.
    let now = unsafe { bpf_ktime_get_ns() };
    let Some(slot) = CPU_SLOT.get_ptr_mut(0) else {
        return Ok(());
    };
    // SAFETY: this CPU's own slot; tracepoint programs do not nest on one CPU. The start is
    // written before the task (see `CpuSlot` for why the order matters to the reader).
    let started = unsafe {
        let started = core::mem::replace(&mut (*slot).switched_in_ns, now);
        (*slot).tid = next_tid;
        (*slot).tgid = next_tgid;
        started
    };

    let pid_tgid = bpf_get_current_pid_tgid();
    let tid = pid_tgid as u32;
    let tgid = (pid_tgid >> 32) as u32;
    if tid == 0 {
        // The idle task: its time is idle time, already in /proc/stat.
        return Ok(());
    }
    // By the clock where the kernel's runtime is not known: `started == 0` is the first
    // switch seen on this CPU, the slice's start is unknown.
    let mut on_cpu = if started != 0 { now - started } else { 0 };

    let runnable = preempt || prev_state == TASK_RUNNING;
    let mut wait = 0;
    match RUNQ_START.get_ptr_mut(tid) {
        Some(q) => {
            // SAFETY: a valid map value pointer for the duration of this program; only
            // programs about this thread write it, and it is not running anywhere else.
            let ThreadState {
                queued_ns: queued,
                charged_ns: charged,
                waited_ns: waited,
            } = unsafe { *q };
            if prev_runtime != RUNTIME_UNKNOWN {
                // Less than the last charge: the thread id was reused before the entry
                // went; the clock serves once and the entry is in step again.
                if charged != RUNTIME_UNKNOWN && prev_runtime >= charged {
                    on_cpu = prev_runtime - charged;
                }
                // SAFETY: as above.
                unsafe { (*q).charged_ns = prev_runtime };
            }
            if prev_delay != RUNTIME_UNKNOWN {
                // As the runtime: below the last charge, the thread id was reused.
                if waited != RUNTIME_UNKNOWN && prev_delay >= waited {
                    wait = prev_delay - waited;
                }
                // SAFETY: as above.
                unsafe { (*q).waited_ns = prev_delay };
            } else if started != 0 && queued != 0 && queued <= started {
                // An entry newer than the slice start is a wakeup that raced with the slice
                // (woken while still running): not a wait.
                wait = started - queued;
            }
            if dead {
                let _ = RUNQ_START.remove(tid);
            } else if prev_delay == RUNTIME_UNKNOWN {
                // SAFETY: as above.
                unsafe { (*q).queued_ns = if runnable { now } else { 0 } };
            }
        }
        // A thread seen first at a switch-out (running when the programs attached): its
        // entry starts the runtime it is charged from.
        None if !dead => {
            let state = ThreadState {
                queued_ns: if runnable && prev_delay == RUNTIME_UNKNOWN {
                    now
                } else {
                    0
                },
                charged_ns: prev_runtime,
                waited_ns: prev_delay,
            };
            // A sleeping thread's entry is made again at its wakeup, where the wakeup
            // programs time the wait.
            if RUNQ_START.insert(tid, state, 0).is_err()
                && (runnable || prev_delay != RUNTIME_UNKNOWN)
            {
                // Its next wait goes unmeasured; its CPU time is still charged below, by
                // the clock.
                count_failure(RUNQ_START_INSERT_FAILED);
                miss(SCHED_SWITCH, MAP_FULL);
            }
        }
        None => {}
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

    let stats = task_stats(tgid).ok_or(MAP_FULL)?;
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
    Ok(())
}
