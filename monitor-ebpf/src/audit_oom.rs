//! OOM kills from `oom:mark_victim` (classic tracepoint, every kernel). The record's layout
//! grew over time (only `pid` before 6.x; comm, memory, uid, page tables and oom_score_adj
//! later), so every field's offset comes from the format file, 0 when the kernel lacks it.
//!
//! The program runs in the context of the task that invoked the OOM killer, not the victim:
//! the victim's identity comes from the record's fields.

use aya_ebpf::{macros::tracepoint, programs::TracePointContext, EbpfContext};
use monitor_common::audit::{
    AuditKind, OomRecord, OOM_HAS_COMM, OOM_HAS_MEMORY, OOM_HAS_PGTABLES, OOM_HAS_SCORE_ADJ,
    OOM_HAS_UID,
};

use crate::{
    audit::{count_lost, current_header, fields, AUDIT_EVENTS},
    read::{global, read},
};

#[tracepoint(category = "oom", name = "mark_victim")]
pub fn audit_oom(ctx: TracePointContext) -> u32 {
    let f = fields();
    let mut rec = OomRecord {
        hdr: current_header(AuditKind::OomKill),
        victim_pid: read::<i32>(&ctx, global(&f.oom_pid)).unwrap_or(0) as u32,
        ..OomRecord::default()
    };
    if victim_comm(&ctx, &mut rec.victim_comm) {
        rec.has |= OOM_HAS_COMM;
    }
    if let Some(v) = read::<u64>(&ctx, global(&f.oom_total_vm)) {
        rec.total_vm_kb = v;
        rec.anon_rss_kb = read::<u64>(&ctx, global(&f.oom_anon_rss)).unwrap_or(0);
        rec.file_rss_kb = read::<u64>(&ctx, global(&f.oom_file_rss)).unwrap_or(0);
        rec.shmem_rss_kb = read::<u64>(&ctx, global(&f.oom_shmem_rss)).unwrap_or(0);
        rec.has |= OOM_HAS_MEMORY;
    }
    if let Some(v) = read::<u32>(&ctx, global(&f.oom_uid)) {
        rec.victim_uid = v;
        rec.has |= OOM_HAS_UID;
    }
    if let Some(v) = read::<u64>(&ctx, global(&f.oom_pgtables)) {
        rec.pgtables_kb = v;
        rec.has |= OOM_HAS_PGTABLES;
    }
    if let Some(v) = read::<i16>(&ctx, global(&f.oom_score_adj)) {
        rec.oom_score_adj = i32::from(v);
        rec.has |= OOM_HAS_SCORE_ADJ;
    }
    if AUDIT_EVENTS.output::<OomRecord>(&rec, 0).is_err() {
        count_lost(AuditKind::OomKill);
    }
    0
}

/// The victim's name from the record's `__data_loc char[] comm`, when the kernel has it.
#[inline(always)]
pub fn victim_comm(ctx: &TracePointContext, out: &mut [u8; 16]) -> bool {
    let Some(loc) = read::<u32>(ctx, global(&fields().oom_comm)) else {
        return false;
    };
    let src = (ctx.as_ptr() as u64 + u64::from(loc & 0xffff)) as *const u8;
    // SAFETY: a probe read bounded by `out`'s length.
    unsafe { aya_ebpf::helpers::bpf_probe_read_kernel_str_bytes(src, out).is_ok() }
}
