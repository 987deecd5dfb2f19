//! Audit records for process exec and exit, from `sched:sched_process_exec` and
//! `sched:sched_process_exit` (classic tracepoints, every kernel; these programs sit next to
//! the `sched` collector's own on the same tracepoints).
//!
//! Both run in the context of the process concerned. Fields that live in `task_struct` and
//! `mm_struct` (parent, exit code, start time, CPU time, the argv block) are read at offsets
//! the daemon found in the kernel's BTF; the filename's place in the exec record comes from
//! the tracepoint's format file.

use aya_ebpf::{
    helpers::{bpf_get_current_pid_tgid, bpf_get_current_task, generated::bpf_probe_read_user},
    macros::tracepoint,
    programs::TracePointContext,
    EbpfContext,
};
use monitor_common::audit::{
    AuditKind, ExecRecord, ExitRecord, ARGS_LEN, EXIT_HAS_CODE, EXIT_HAS_CPU, EXIT_HAS_PPID,
    EXIT_HAS_START,
};

use crate::{
    audit::{count_lost, current_header, current_in_scope, fields, offsets, AUDIT_EVENTS},
    read::{global, read_field},
};

#[tracepoint(category = "sched", name = "sched_process_exec")]
pub fn audit_exec(ctx: TracePointContext) -> u32 {
    if !current_in_scope() {
        return 0;
    }
    let Some(mut entry) = AUDIT_EVENTS.reserve::<ExecRecord>(0) else {
        count_lost(AuditKind::Exec);
        return 0;
    };
    let r = entry.as_mut_ptr();
    // SAFETY: the reserved record is ours until submitted; every field is written below.
    unsafe {
        (*r).hdr = current_header(AuditKind::Exec);
        // SAFETY: no preconditions.
        let task = bpf_get_current_task();
        (*r).ppid = parent_tgid(task).unwrap_or(0);
        (*r).filename_len = read_filename(&ctx, &mut (*r).filename);
        let (read, total) = read_args(task, &mut (*r).args);
        (*r).args_len = read;
        (*r).args_total = total;
    }
    entry.submit(0);
    0
}

#[tracepoint(category = "sched", name = "sched_process_exit")]
pub fn audit_exit(_ctx: TracePointContext) -> u32 {
    let pid_tgid = bpf_get_current_pid_tgid();
    // Threads exit through here too; the process ends with its leader.
    if pid_tgid as u32 != (pid_tgid >> 32) as u32 || !current_in_scope() {
        return 0;
    }
    let Some(mut entry) = AUDIT_EVENTS.reserve::<ExitRecord>(0) else {
        count_lost(AuditKind::Exit);
        return 0;
    };
    let o = offsets();
    // SAFETY: no preconditions.
    let task = unsafe { bpf_get_current_task() };
    let mut rec = ExitRecord {
        hdr: current_header(AuditKind::Exit),
        ..ExitRecord::default()
    };
    if let Some(p) = parent_tgid(task) {
        rec.ppid = p;
        rec.has |= EXIT_HAS_PPID;
    }
    if let Some(c) = read_field::<i32>(task, global(&o.task_exit_code)) {
        rec.exit_code = c as u32;
        rec.has |= EXIT_HAS_CODE;
    }
    if let Some(s) = read_field::<u64>(task, global(&o.task_start_time)) {
        rec.start_ns = s;
        rec.has |= EXIT_HAS_START;
    }
    if let Some(own) = read_field::<u64>(task, global(&o.task_sum_exec_runtime)) {
        // Threads that died before the leader left their time in signal_struct.
        let dead = read_field::<u64>(task, global(&o.task_signal))
            .and_then(|sig| read_field::<u64>(sig, global(&o.signal_sum_sched_runtime)))
            .unwrap_or(0);
        rec.cpu_ns = own + dead;
        rec.has |= EXIT_HAS_CPU;
    }
    entry.write(rec);
    entry.submit(0);
    0
}

/// `task->real_parent->tgid`.
#[inline(always)]
fn parent_tgid(task: u64) -> Option<u32> {
    let o = offsets();
    let parent = read_field::<u64>(task, global(&o.task_real_parent))?;
    read_field::<i32>(parent, global(&o.task_tgid)).map(|t| t as u32)
}

/// Copies the exec'd filename (a `__data_loc` string in the record); returns the bytes
/// written including the NUL, 0 when unknown.
#[inline(always)]
fn read_filename(
    ctx: &TracePointContext,
    out: &mut [u8; monitor_common::audit::FILENAME_LEN],
) -> u32 {
    let off = global(&fields().exec_filename);
    if off == 0 {
        return 0;
    }
    // SAFETY: a probe read inside the tracepoint record.
    let Ok(loc) = (unsafe { ctx.read_at::<u32>(off as usize) }) else {
        return 0;
    };
    let src = (ctx.as_ptr() as u64 + u64::from(loc & 0xffff)) as *const u8;
    // SAFETY: a probe read; the helper bounds the copy by `out`'s length.
    match unsafe { aya_ebpf::helpers::bpf_probe_read_kernel_str_bytes(src, out) } {
        Ok(s) => s.len() as u32 + 1,
        Err(_) => 0,
    }
}

/// Copies the start of the new image's argv block (`mm->arg_start..arg_end`, in user
/// memory); returns (bytes copied, bytes in the whole block).
#[inline(always)]
fn read_args(task: u64, out: &mut [u8; ARGS_LEN]) -> (u32, u32) {
    let o = offsets();
    let Some(mm) = read_field::<u64>(task, global(&o.task_mm)) else {
        return (0, 0);
    };
    let (Some(start), Some(end)) = (
        read_field::<u64>(mm, global(&o.mm_arg_start)),
        read_field::<u64>(mm, global(&o.mm_arg_end)),
    ) else {
        return (0, 0);
    };
    if end <= start {
        return (0, 0);
    }
    let total = end - start;
    let n = if total > ARGS_LEN as u64 {
        ARGS_LEN as u32
    } else {
        total as u32
    };
    // SAFETY: a probe read of `n <= ARGS_LEN` bytes into `out`.
    let rc = unsafe { bpf_probe_read_user(out.as_mut_ptr().cast(), n, start as *const _) };
    if rc != 0 {
        return (0, total as u32);
    }
    (n, total as u32)
}
