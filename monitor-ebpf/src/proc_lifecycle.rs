//! `sched:sched_process_exec` and `sched:sched_process_exit` (classic tracepoints, every
//! kernel): one ring-buffer record per exec and per process exit, so the daemon can start a
//! new group for the new image and fold an exited process's totals into its group.
//!
//! Both run in the context of the task concerned, so identity comes from helpers, not from
//! the records' fields.

use aya_ebpf::{
    helpers::{
        bpf_get_current_cgroup_id, bpf_get_current_comm, bpf_get_current_pid_tgid, bpf_ktime_get_ns,
    },
    macros::tracepoint,
    programs::TracePointContext,
};
use monitor_common::{
    event::{ProcEvent, ProcEventKind},
    health::{
        program::{OOM_MARK_VICTIM, SCHED_PROCESS_EXEC, SCHED_PROCESS_EXIT},
        reason::{READ_FAILED, RING_FULL},
        PROC_EVENTS_LOST,
    },
    sched::TaskCounters,
};

use crate::{
    audit, audit_oom,
    health::{count_failure, finish, miss, Outcome},
    maps::{PROC_EVENTS, TASK_STATS},
    read::{global, read},
};

#[tracepoint(category = "sched", name = "sched_process_exec")]
pub fn sched_process_exec(_ctx: TracePointContext) -> u32 {
    let tgid = (bpf_get_current_pid_tgid() >> 32) as u32;
    let comm = bpf_get_current_comm().unwrap_or_default();
    // SAFETY: no preconditions; the binding is marked unsafe as all helpers are.
    let cgroup = unsafe { bpf_get_current_cgroup_id() };
    let (counters, prev_comm) = match TASK_STATS.get_ptr_mut(tgid) {
        Some(p) => {
            // SAFETY: a valid map value pointer for the duration of this program. The name
            // is updated so a group whose process vanishes is named after its last image,
            // and the cgroup as a service starts its processes: moved into the unit's
            // cgroup, then exec.
            unsafe {
                (*p).cgroup_id = cgroup;
                ((*p).counters, core::mem::replace(&mut (*p).comm, comm))
            }
        }
        None => (TaskCounters::default(), [0; 16]),
    };
    finish(
        SCHED_PROCESS_EXEC,
        emit(ProcEventKind::Exec, tgid, comm, prev_comm, counters, cgroup),
    )
}

#[tracepoint(category = "sched", name = "sched_process_exit")]
pub fn sched_process_exit(_ctx: TracePointContext) -> u32 {
    let pid_tgid = bpf_get_current_pid_tgid();
    let tgid = (pid_tgid >> 32) as u32;
    // The thread's run-queue entry stays until its last switch-out, which charges its last
    // slice and wait from it and then removes it (removed here, that slice would be timed
    // by the clock and that wait lost: most of a short-lived process's life).
    // Threads exit through here too; the process is gone with its leader.
    if pid_tgid as u32 != tgid {
        return 0;
    }
    // SAFETY: no preconditions, as above. The task keeps its cgroup until it is reaped.
    let cgroup = unsafe { bpf_get_current_cgroup_id() };
    let counters = match TASK_STATS.get_ptr_mut(tgid) {
        // SAFETY: as above. The cgroup it dies in is the one its final totals are read with.
        Some(p) => unsafe {
            (*p).cgroup_id = cgroup;
            (*p).counters
        },
        None => TaskCounters::default(),
    };
    let comm = bpf_get_current_comm().unwrap_or_default();
    finish(
        SCHED_PROCESS_EXIT,
        emit(ProcEventKind::Exit, tgid, comm, [0; 16], counters, cgroup),
    )
}

/// `oom:mark_victim`: the OOM killer chose a process; the daemon counts it in the victim's
/// group. The victim is named by the record's fields (see `audit_oom`), not by `current`.
#[tracepoint(category = "oom", name = "mark_victim")]
pub fn oom_mark_victim(ctx: TracePointContext) -> u32 {
    let Some(pid) = read::<i32>(&ctx, global(&audit::fields().oom_pid)) else {
        miss(OOM_MARK_VICTIM, READ_FAILED);
        return 0;
    };
    let mut comm = [0u8; 16];
    audit_oom::victim_comm(&ctx, &mut comm);
    // Rare and worth a line in the daemon's log (forwarded by aya-log).
    aya_log_ebpf::warn!(&ctx, "OOM killer chose pid {}", pid);
    finish(
        OOM_MARK_VICTIM,
        emit(
            ProcEventKind::OomKill,
            pid as u32,
            comm,
            [0; 16],
            TaskCounters::default(),
            0,
        ),
    )
}

#[inline(always)]
fn emit(
    kind: ProcEventKind,
    tgid: u32,
    comm: [u8; 16],
    prev_comm: [u8; 16],
    c: TaskCounters,
    cgroup_id: u64,
) -> Outcome {
    let Some(mut entry) = PROC_EVENTS.reserve::<ProcEvent>(0) else {
        count_failure(PROC_EVENTS_LOST);
        return Err(RING_FULL);
    };
    entry.write(ProcEvent {
        kind: kind as u32,
        tgid,
        // SAFETY: no preconditions, as above.
        ts_ns: unsafe { bpf_ktime_get_ns() },
        comm,
        prev_comm,
        counters: c,
        cgroup_id,
    });
    entry.submit(0);
    Ok(())
}
