//! The typed block path (6.5+ with BTF): `tp_btf` on `block_io_start`, `block_rq_issue` and
//! `block_rq_complete`, which hand over the `struct request *`.
//!
//! A request is followed by its pointer through `BLOCK_RQ_SLOTS` (two slots per set, see
//! `monitor_common::block::RqSlot`): an array, whose lookups the verifier inlines, so a
//! request costs no hash insert or delete from its submission to its completion. What is
//! counted at completion is the classic path's (`block::account`): the same figures,
//! whichever path serves.

use aya_ebpf::{
    helpers::{bpf_get_current_pid_tgid, bpf_ktime_get_ns},
    macros::btf_tracepoint,
    programs::BtfTracePointContext,
};
use monitor_common::{
    block::{op_of_cmd_flags, rq_set, BlockLayout, RequestState, RqSlot, OP_OTHER},
    health::{
        program::{BLOCK_RQ_COMPLETE, BLOCK_RQ_ISSUE, BLOCK_SUBMIT},
        reason::MAP_FULL,
    },
};

use crate::{
    block::{account, Completion},
    health::{finish, Outcome},
    maps::BLOCK_RQ_SLOTS,
    read::member_at,
};

// Set by the daemon at load time from the kernel's BTF; it attaches the typed path only when
// it found every member (`gendisk.major` is at offset 0, so 0 is no sign of "unknown").
#[unsafe(no_mangle)]
static BLOCK_LAYOUT: BlockLayout = BlockLayout {
    rq_cmd_flags: 0,
    rq_q: 0,
    q_disk: 0,
    disk_major: 0,
    disk_first_minor: 0,
};

#[btf_tracepoint(function = "block_io_start")]
pub fn block_owner_io_start_btf(ctx: BtfTracePointContext) -> u32 {
    // Argument: (struct request *rq), in the submitter's context, once per request.
    let rq: u64 = ctx.arg(0);
    // SAFETY: no preconditions.
    let now = unsafe { bpf_ktime_get_ns() };
    let tgid = (bpf_get_current_pid_tgid() >> 32) as u32;
    finish(BLOCK_SUBMIT, hold(rq, now, 0, tgid))
}

#[btf_tracepoint(function = "block_rq_issue")]
pub fn block_rq_issue_btf(ctx: BtfTracePointContext) -> u32 {
    // Argument: (struct request *rq), often in a kernel worker's context.
    let rq: u64 = ctx.arg(0);
    // SAFETY: no preconditions.
    let now = unsafe { bpf_ktime_get_ns() };
    if let Some(s) = find(rq) {
        // SAFETY: a slot of the array, valid during the program; a request is issued on one
        // CPU at a time.
        unsafe { (*s).issued_ns = now };
        return 0;
    }
    // Nobody submitted it while the programs ran: the flush machinery's own requests, or
    // one queued before the programs attached.
    finish(BLOCK_RQ_ISSUE, hold(rq, 0, now, 0))
}

#[btf_tracepoint(function = "block_rq_complete")]
pub fn block_rq_complete_btf(ctx: BtfTracePointContext) -> u32 {
    finish(BLOCK_RQ_COMPLETE, on_complete(&ctx))
}

/// Arguments: `(struct request *rq, blk_status_t error, unsigned int nr_bytes)`.
#[inline(always)]
fn on_complete(ctx: &BtfTracePointContext) -> Outcome {
    let rq: u64 = ctx.arg(0);
    let error: u64 = ctx.arg(1);
    let nr_bytes: u64 = ctx.arg(2);
    let base = rq as *const u8;
    let l = &BLOCK_LAYOUT;
    let flags = member_at::<u32>(base, &l.rq_cmd_flags);

    // Taken out of its slot whatever it is, so the slot is free for the next request.
    let mut r = RequestState::default();
    let mut found = false;
    if let Some(s) = find(rq) {
        // SAFETY: a slot of the array, valid during the program.
        unsafe {
            r = RequestState {
                submitted_ns: (*s).submitted_ns,
                issued_ns: (*s).issued_ns,
                tgid: (*s).tgid,
                _pad: 0,
            };
            (*s).rq = 0;
        }
        found = true;
    }
    let op = op_of_cmd_flags(flags);
    if op == OP_OTHER {
        return Ok(());
    }
    // The disk, as the classic record names it: `rq->q->disk`, 0 without one.
    let q = member_at::<u64>(base, &l.rq_q);
    let mut dev = 0;
    if q != 0 {
        let disk = member_at::<u64>(q as *const u8, &l.q_disk);
        if disk != 0 {
            let d = disk as *const u8;
            let major = member_at::<u32>(d, &l.disk_major);
            let minor = member_at::<u32>(d, &l.disk_first_minor);
            dev = major << 20 | (minor & 0xf_ffff);
        }
    }
    // SAFETY: no preconditions.
    let now = unsafe { bpf_ktime_get_ns() };
    account(
        Completion {
            dev,
            op,
            // The bytes this completion finished (a partial completion counts its part).
            bytes: nr_bytes & 0xffff_ffff,
            error: error & 0xff != 0,
            now,
        },
        &r,
        found,
    )
}

/// The set of `rq`. Its pointer is negated twice first, which leaves the value as it was
/// and makes it a plain number to the verifier (a program loaded with the right to read
/// pointers may turn one into a number; it may not shift one).
#[inline(always)]
fn set_of(rq: u64) -> u32 {
    let mut v = rq;
    // SAFETY: two register negations, nothing else.
    unsafe {
        core::arch::asm!(
            "{v} = -{v}",
            "{v} = -{v}",
            v = inout(reg) v,
            options(pure, nomem, nostack),
        )
    };
    rq_set(v)
}

/// The slot holding `rq`, if any.
#[inline(always)]
fn find(rq: u64) -> Option<*mut RqSlot> {
    let i = set_of(rq);
    let a = BLOCK_RQ_SLOTS.get_ptr_mut(i)?;
    // SAFETY: slots of the array, valid during the program.
    if unsafe { (*a).rq } == rq {
        return Some(a);
    }
    let b = BLOCK_RQ_SLOTS.get_ptr_mut(i + 1)?;
    // SAFETY: as above.
    if unsafe { (*b).rq } == rq {
        return Some(b);
    }
    None
}

/// Writes `rq`'s state into a slot of its set: its own (left from an earlier life of the
/// same request), else a free one, else the one seen last the longest ago, which is then
/// lost (counted as a full map).
#[inline(always)]
fn hold(rq: u64, submitted_ns: u64, issued_ns: u64, tgid: u32) -> Outcome {
    let i = set_of(rq);
    let (Some(a), Some(b)) = (
        BLOCK_RQ_SLOTS.get_ptr_mut(i),
        BLOCK_RQ_SLOTS.get_ptr_mut(i + 1),
    ) else {
        return Err(MAP_FULL);
    };
    // SAFETY: slots of the array, valid during the program. Another CPU may write the same
    // slot for another request of the set at the same moment: the later completion then
    // finds the pointer it expects or not, never a slot it must not touch.
    unsafe {
        let (ar, br) = ((*a).rq, (*b).rq);
        let (s, taken) = if ar == rq || (ar == 0 && br != rq) {
            (a, false)
        } else if br == rq || br == 0 {
            (b, false)
        } else {
            let at = (*a).submitted_ns.max((*a).issued_ns);
            let bt = (*b).submitted_ns.max((*b).issued_ns);
            (if at <= bt { a } else { b }, true)
        };
        *s = RqSlot {
            rq,
            submitted_ns,
            issued_ns,
            tgid,
            _pad: 0,
        };
        if taken {
            return Err(MAP_FULL);
        }
    }
    Ok(())
}
