//! What the audit programs share: their ring buffer, the per-kind count of records the ring
//! buffer had no room for, and the load-time globals (offsets and scope).
//!
//! Nothing here runs per scheduler event: exec, exit, OOM kills and TCP state changes are
//! rare, so each becomes one whole record.

use aya_ebpf::{
    helpers::{
        bpf_get_current_ancestor_cgroup_id, bpf_get_current_cgroup_id, bpf_get_current_comm,
        bpf_get_current_pid_tgid, bpf_get_current_uid_gid, bpf_ktime_get_ns,
    },
    macros::map,
    maps::{PerCpuArray, RingBuf},
};
use monitor_common::{
    audit::{AuditHeader, AuditKind, AuditScope, KernelOffsets, TraceFields, AUDIT_KIND_SLOTS},
    maps::AUDIT_EVENTS_BYTES,
};

use crate::read::global;

/// Audit records for the daemon.
#[map(name = "AUDIT_EVENTS")]
pub static AUDIT_EVENTS: RingBuf = RingBuf::with_byte_size(AUDIT_EVENTS_BYTES, 0);

/// Per CPU, per `AuditKind`: records lost because `AUDIT_EVENTS` was full.
#[map(name = "AUDIT_LOST")]
pub static AUDIT_LOST: PerCpuArray<u64> = PerCpuArray::with_max_entries(AUDIT_KIND_SLOTS, 0);

// Set by the daemon at load time (`EbpfLoader::set_global`); zero means unknown.
#[unsafe(no_mangle)]
static AUDIT_OFFSETS: KernelOffsets = KernelOffsets {
    task_real_parent: 0,
    task_tgid: 0,
    task_exit_code: 0,
    task_start_time: 0,
    task_sum_exec_runtime: 0,
    task_signal: 0,
    signal_sum_sched_runtime: 0,
    task_mm: 0,
    mm_arg_start: 0,
    mm_arg_end: 0,
    tcp_bytes_received: 0,
    tcp_bytes_acked: 0,
};

#[unsafe(no_mangle)]
static AUDIT_FIELDS: TraceFields = TraceFields {
    exec_filename: 0,
    oom_pid: 0,
    oom_comm: 0,
    oom_total_vm: 0,
    oom_anon_rss: 0,
    oom_file_rss: 0,
    oom_shmem_rss: 0,
    oom_uid: 0,
    oom_pgtables: 0,
    oom_score_adj: 0,
    tcp_skaddr: 0,
    tcp_oldstate: 0,
    tcp_newstate: 0,
    tcp_sport: 0,
    tcp_dport: 0,
    tcp_family: 0,
    tcp_protocol: 0,
    tcp_saddr: 0,
    tcp_daddr: 0,
    tcp_saddr_v6: 0,
    tcp_daddr_v6: 0,
    tcp_standard: 0,
};

#[unsafe(no_mangle)]
static AUDIT_SCOPE: AuditScope = AuditScope {
    cgroup_id: 0,
    cgroup_level: 0,
    enabled: 0,
};

#[inline(always)]
pub fn offsets() -> &'static KernelOffsets {
    &AUDIT_OFFSETS
}

#[inline(always)]
pub fn fields() -> &'static TraceFields {
    &AUDIT_FIELDS
}

/// Whether the audit log is on (the TCP state program also runs without it).
#[inline(always)]
pub fn audit_enabled() -> bool {
    global(&AUDIT_SCOPE.enabled) != 0
}

/// Whether the current task is inside the configured cgroup scope.
#[inline(always)]
pub fn current_in_scope() -> bool {
    let id = global(&AUDIT_SCOPE.cgroup_id);
    if id == 0 {
        return true;
    }
    let level = global(&AUDIT_SCOPE.cgroup_level);
    // SAFETY: no preconditions.
    unsafe { bpf_get_current_ancestor_cgroup_id(level as i32) == id }
}

/// Counts a record of `kind` that found no room in the ring buffer.
#[inline(always)]
pub fn count_lost(kind: AuditKind) {
    if let Some(p) = AUDIT_LOST.get_ptr_mut(kind as u32) {
        // SAFETY: this CPU's slot; tracepoint programs do not nest on one CPU.
        unsafe { *p += 1 };
    }
}

/// The header for a record made in the context of the current task.
#[inline(always)]
pub fn current_header(kind: AuditKind) -> AuditHeader {
    let uid_gid = bpf_get_current_uid_gid();
    AuditHeader {
        kind: kind as u32,
        pid: (bpf_get_current_pid_tgid() >> 32) as u32,
        // SAFETY: no preconditions.
        ts_ns: unsafe { bpf_ktime_get_ns() },
        uid: uid_gid as u32,
        gid: (uid_gid >> 32) as u32,
        comm: bpf_get_current_comm().unwrap_or_default(),
        // SAFETY: no preconditions.
        cgroup_id: unsafe { bpf_get_current_cgroup_id() },
    }
}
