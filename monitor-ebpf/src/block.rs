//! Block I/O: per disk and operation, requests, bytes, errors, issue-to-completion latency and
//! time queued before issue; per thread group, the reads and writes it submitted.
//!
//! A request is followed through three points, all classic tracepoints (see
//! `monitor_common::block` for why), in one `BLOCK_REQUESTS` entry keyed by disk and sector:
//! - submission, in the submitter's context: `block_io_start` (6.5+, once per request, at its
//!   creation) or, before 6.5, `block_bio_queue` plus `block_split` (once per bio and per split
//!   remainder): the entry is created with the submitter and the time;
//! - `block_rq_issue`, often in a kernel worker's or another task's context: the issue time
//!   is written into the entry (created here for requests nobody submitted: flushes);
//! - `block_rq_complete`, usually in interrupt context: the entry is taken; the request is
//!   counted for its disk and charged to the submitter's `BLOCK_TASKS` entry (the block
//!   family's own, made there on first use, keyed by the tgid the request carries).
//!
//! Each request costs one map update at submission, one lookup at issue, and a lookup and a
//! delete at completion, plus the two counter entries: the fewest that carry a submitter
//! from process context to the interrupt that completes its I/O. Submission does no
//! per-process lookup at all.

#![expect(
    clippy::needless_borrows_for_generic_args,
    reason = "Map keys and values go by reference: passed by value (as clippy suggests), the \
              program built here was rejected by the verifier (a register read before it was \
              written in `block_rq_complete`), and a 500-byte `DiskStats` would be copied onto \
              the BPF stack."
)]

use aya_ebpf::{
    bindings::BPF_NOEXIST,
    helpers::{bpf_get_current_pid_tgid, bpf_ktime_get_ns},
    macros::tracepoint,
    programs::TracePointContext,
    EbpfContext,
};
use monitor_common::{
    block::{
        op_of_rwbs, BlockTaskCounters, DiskKey, DiskStats, RequestKey, RequestState, DEV_OFFSET,
        ERROR_OFFSET, NEW_SECTOR_OFFSET, NO_DATA_SECTOR, NR_SECTOR_OFFSET, OP_OTHER, OP_READ,
        OP_WRITE, SECTOR_OFFSET,
    },
    health::{
        program::{BLOCK_RQ_COMPLETE, BLOCK_RQ_ISSUE, BLOCK_SUBMIT},
        reason::{MAP_FULL, NO_SUBMITTER},
        BLOCK_REQUESTS_INSERT_FAILED, BLOCK_TASKS_INSERT_FAILED, DISK_STATS_INSERT_FAILED,
    },
    hist::{bucket, BUCKETS},
};

use crate::{
    atomic::add,
    entry::get_or_insert_zero,
    health::{count_failure, finish, miss, Outcome},
    maps::{BLOCK_REQUESTS, BLOCK_TASKS, DISK_STATS, DISK_ZERO, PART_DISK},
};

/// Where `rwbs` sits in the `block_rq_complete` record: 32 before `ioprio` was added to it,
/// 34 after. Set by the daemon from the tracefs format file; 0 (the common header) reads as
/// no operation, so nothing is counted if it is never set.
#[unsafe(no_mangle)]
static BLOCK_RQ_COMPLETE_RWBS: u32 = 0;

#[tracepoint(category = "block", name = "block_io_start")]
pub fn block_owner_io_start(ctx: TracePointContext) -> u32 {
    // SAFETY: offsets inside every block_rq-class record; `dev` is the disk here.
    let (dev, sector) = unsafe {
        (
            field::<u32>(&ctx, DEV_OFFSET),
            field::<u64>(&ctx, SECTOR_OFFSET),
        )
    };
    finish(BLOCK_SUBMIT, submitted(dev, sector))
}

#[tracepoint(category = "block", name = "block_bio_queue")]
pub fn block_owner_bio_queue(ctx: TracePointContext) -> u32 {
    // SAFETY: offsets inside every block_bio record.
    let (dev, sector) = unsafe {
        (
            field::<u32>(&ctx, DEV_OFFSET),
            field::<u64>(&ctx, SECTOR_OFFSET),
        )
    };
    finish(BLOCK_SUBMIT, submitted(disk_of(dev), sector))
}

/// A bio split before it becomes requests: the remainder starts at `new_sector` and gets no
/// `block_bio_queue` event of its own.
#[tracepoint(category = "block", name = "block_split")]
pub fn block_owner_split(ctx: TracePointContext) -> u32 {
    // SAFETY: offsets inside the block_split record.
    let (dev, sector) = unsafe {
        (
            field::<u32>(&ctx, DEV_OFFSET),
            field::<u64>(&ctx, NEW_SECTOR_OFFSET),
        )
    };
    finish(BLOCK_SUBMIT, submitted(disk_of(dev), sector))
}

#[tracepoint(category = "block", name = "block_rq_issue")]
pub fn block_rq_issue(ctx: TracePointContext) -> u32 {
    // SAFETY: offsets inside every block_rq record (see `monitor_common::block`).
    let (dev, sector, nr_sector) = unsafe {
        (
            field::<u32>(&ctx, DEV_OFFSET),
            field::<u64>(&ctx, SECTOR_OFFSET),
            field::<u32>(&ctx, NR_SECTOR_OFFSET),
        )
    };
    let key = RequestKey {
        dev,
        _pad: 0,
        sector: if nr_sector == 0 {
            NO_DATA_SECTOR
        } else {
            sector
        },
    };
    // SAFETY: no preconditions.
    let now = unsafe { bpf_ktime_get_ns() };
    if let Some(r) = BLOCK_REQUESTS.get_ptr_mut(&key) {
        // SAFETY: a valid map value pointer; a request is issued on one CPU at a time.
        unsafe { (*r).issued_ns = now };
        return 0;
    }
    let v = RequestState {
        submitted_ns: 0,
        issued_ns: now,
        tgid: 0,
        _pad: 0,
    };
    if BLOCK_REQUESTS.insert(&key, &v, 0).is_err() {
        count_failure(BLOCK_REQUESTS_INSERT_FAILED);
        miss(BLOCK_RQ_ISSUE, MAP_FULL);
    }
    0
}

#[tracepoint(category = "block", name = "block_rq_complete")]
pub fn block_rq_complete(ctx: TracePointContext) -> u32 {
    finish(BLOCK_RQ_COMPLETE, try_block_rq_complete(&ctx))
}

#[inline(always)]
fn try_block_rq_complete(ctx: &TracePointContext) -> Outcome {
    // SAFETY: offsets inside every block_rq_complete record (see `monitor_common::block`).
    let (dev, sector, nr_sector, error) = unsafe {
        (
            field::<u32>(ctx, DEV_OFFSET),
            field::<u64>(ctx, SECTOR_OFFSET),
            field::<u32>(ctx, NR_SECTOR_OFFSET),
            field::<i32>(ctx, ERROR_OFFSET),
        )
    };
    let op = complete_op(ctx);
    if op == OP_OTHER {
        return Ok(());
    }
    // SAFETY: no preconditions.
    let now = unsafe { bpf_ktime_get_ns() };
    // The flush machinery's requests complete at all ones, which is `NO_DATA_SECTOR`; a
    // data-less write with a preflush completes at its own sector, where it was submitted.
    let key = RequestKey {
        dev,
        _pad: 0,
        sector,
    };
    // A zeroed state and a flag rather than an `Option<RequestState>`: the compiler leaves
    // the `None` side of such an option partly unwritten, and the verifier rejects reading
    // it later ("R5 !read_ok").
    let mut r = RequestState::default();
    let found = match BLOCK_REQUESTS.get_ptr(&key) {
        Some(p) => {
            // SAFETY: a valid map value pointer for the duration of this program.
            r = unsafe { *p };
            let _ = BLOCK_REQUESTS.remove(&key);
            true
        }
        None => false,
    };
    account(
        Completion {
            dev,
            op,
            bytes: u64::from(nr_sector) * 512,
            error: error != 0,
            now,
        },
        &r,
        found,
    )
}

/// A completed request as both paths read it.
pub struct Completion {
    /// The whole disk's `dev_t`.
    pub dev: u32,
    /// `OP_READ`.. `OP_DISCARD` (never `OP_OTHER`).
    pub op: u32,
    pub bytes: u64,
    pub error: bool,
    pub now: u64,
}

/// Counts a completed request for its disk and charges it to its submitter; `found` says
/// whether `r` holds what was seen of it before (its submission, its issue).
#[inline(always)]
pub fn account(c: Completion, r: &RequestState, found: bool) -> Outcome {
    let Completion {
        dev,
        op,
        bytes,
        error,
        now,
    } = c;

    // Latency from the issue; a request finished without one (a data-less write with a
    // preflush, which the flush machinery ends) counts from its submission. Flags beside
    // plain values, not `Option<u64>`s: the compiler leaves the `None` side of an option
    // partly unwritten, and the verifier rejects reading it later ("R5 !read_ok").
    let (mut latency, mut has_latency) = (0, false);
    let (mut queued, mut has_queued) = (0, false);
    if found {
        let start = if r.issued_ns != 0 {
            r.issued_ns
        } else {
            r.submitted_ns
        };
        if start != 0 && start <= now {
            latency = now - start;
            has_latency = true;
        }
        if r.submitted_ns != 0 && r.issued_ns >= r.submitted_ns {
            queued = r.issued_ns - r.submitted_ns;
            has_queued = true;
        }
    }

    let stats = disk_stats(dev, op);
    if stats.is_none() {
        miss(BLOCK_RQ_COMPLETE, MAP_FULL);
    }
    if let Some(s) = stats {
        // SAFETY: this CPU's value, valid during the program; the completion programs do
        // not nest on a CPU (the kernel skips a tracing program entered again there).
        unsafe {
            (*s).requests += 1;
            (*s).bytes += bytes;
            if error {
                (*s).errors += 1;
            }
            if has_latency {
                observe(&raw mut (*s).latency, &raw mut (*s).latency_sum_ns, latency);
            }
            if has_queued {
                observe(&raw mut (*s).queue, &raw mut (*s).queue_sum_ns, queued);
            }
        }
    }

    // Neither submitted nor issued while the programs ran (in flight at attach, or its
    // entry evicted): counted for the disk, charged to nobody.
    if !found {
        return Err(NO_SUBMITTER);
    }
    // No submitter: the flush machinery's own requests.
    if r.tgid == 0 || (op != OP_READ && op != OP_WRITE) {
        return Ok(());
    }
    // The submitter's entry, made here if it is the first: it is keyed by the tgid the
    // request carries, so `current` (whoever the interrupt landed on) does not matter.
    let c = block_task(r.tgid).ok_or(MAP_FULL)?;
    let l = latency;
    // SAFETY: a map value valid during the program; other CPUs update it too.
    unsafe {
        if op == OP_READ {
            add(&raw mut (*c).read_bytes, bytes);
            add(&raw mut (*c).reads, 1);
            add(&raw mut (*c).read_ns, l);
        } else {
            add(&raw mut (*c).write_bytes, bytes);
            add(&raw mut (*c).writes, 1);
            add(&raw mut (*c).write_ns, l);
        }
    }
    Ok(())
}

/// The `BLOCK_TASKS` entry of `tgid`, created on first use.
#[inline(always)]
fn block_task(tgid: u32) -> Option<*mut BlockTaskCounters> {
    if let Some(p) = BLOCK_TASKS.get_ptr_mut(&tgid) {
        return Some(p);
    }
    // EEXIST: another CPU made it first; look it up again.
    let _ = BLOCK_TASKS.insert(&tgid, &BlockTaskCounters::default(), u64::from(BPF_NOEXIST));
    let p = BLOCK_TASKS.get_ptr_mut(&tgid);
    if p.is_none() {
        count_failure(BLOCK_TASKS_INSERT_FAILED);
    }
    p
}

/// The disk of a bio's device (a partition's disk, or itself).
#[inline(always)]
fn disk_of(dev: u32) -> u32 {
    match PART_DISK.get_ptr(&dev) {
        // SAFETY: a valid map value pointer for the duration of this program.
        Some(d) => unsafe { *d },
        None => dev,
    }
}

#[inline(always)]
fn submitted(dev: u32, sector: u64) -> Outcome {
    let key = RequestKey {
        dev,
        _pad: 0,
        sector,
    };
    let tgid = (bpf_get_current_pid_tgid() >> 32) as u32;
    let v = RequestState {
        // SAFETY: no preconditions.
        submitted_ns: unsafe { bpf_ktime_get_ns() },
        issued_ns: 0,
        tgid,
        _pad: 0,
    };
    if BLOCK_REQUESTS.insert(&key, &v, 0).is_err() {
        count_failure(BLOCK_REQUESTS_INSERT_FAILED);
        return Err(MAP_FULL);
    }
    Ok(())
}

/// A fixed-offset field of the tracepoint record.
///
/// # Safety
/// `off` must be the offset of a `T` inside the record (the verifier checks the bounds).
#[inline(always)]
unsafe fn field<T: Copy>(ctx: &TracePointContext, off: usize) -> T {
    // SAFETY: see above; the fields read are naturally aligned in the record.
    unsafe { (ctx.as_ptr() as *const u8).add(off).cast::<T>().read() }
}

/// A load-time constant: read through a volatile load so the compiler does not fold in the
/// default the object was built with.
#[inline(always)]
fn rodata(v: &'static u32) -> u32 {
    // SAFETY: a valid, aligned static.
    unsafe { core::ptr::read_volatile(v) }
}

/// The operation of a `block_rq_complete` record. `rwbs` sits at one of the two offsets
/// kernels have used: read with direct loads there (the verifier only takes constant
/// offsets for those, so one per candidate), with a probe read for any other.
#[inline(always)]
fn complete_op(ctx: &TracePointContext) -> u32 {
    let off = rodata(&BLOCK_RQ_COMPLETE_RWBS);
    if off != 32 && off != 34 {
        return op_at(ctx, off);
    }
    // Both candidates are loaded, volatile, and the value chosen after: the compiler would
    // otherwise fold the two loads into one at a computed offset, which the verifier
    // refuses for the context. Byte loads inside every block_rq_complete record (`rwbs` is
    // `char[8]` at 32 or 34); its first two bytes decide the operation.
    // SAFETY: see above; the verifier checks the offsets against the record size.
    let (old, new) = unsafe {
        let rec = ctx.as_ptr() as *const u8;
        (
            [
                core::ptr::read_volatile(rec.add(32)),
                core::ptr::read_volatile(rec.add(33)),
            ],
            [
                core::ptr::read_volatile(rec.add(34)),
                core::ptr::read_volatile(rec.add(35)),
            ],
        )
    };
    let b = if off == 32 { old } else { new };
    op_of_rwbs([b[0], b[1], 0, 0])
}

/// The operation of the record's `rwbs` at a load-time offset (a helper read: the verifier
/// only allows constant offsets for direct record loads).
#[inline(always)]
fn op_at(ctx: &TracePointContext, off: u32) -> u32 {
    // SAFETY: bpf_probe_read of 4 bytes inside the record; a fault returns an error.
    match unsafe { ctx.read_at::<[u8; 4]>(off as usize) } {
        Ok(rwbs) => op_of_rwbs(rwbs),
        Err(_) => OP_OTHER,
    }
}

/// This CPU's `DISK_STATS` value of `(dev, op)`, created on first use.
#[inline(always)]
fn disk_stats(dev: u32, op: u32) -> Option<*mut DiskStats> {
    get_or_insert_zero(
        &DISK_STATS,
        &DISK_ZERO,
        &DiskKey { dev, op },
        DISK_STATS_INSERT_FAILED,
    )
}

/// Adds one observation of `ns` to a log2 histogram and its sum.
///
/// # Safety
/// Both pointers point into this CPU's value of a live per-CPU map entry.
#[inline(always)]
unsafe fn observe(hist: *mut [u64; BUCKETS], sum: *mut u64, ns: u64) {
    let b = bucket(ns);
    if b < BUCKETS {
        // SAFETY: in bounds (checked above, for the verifier too).
        unsafe { *(hist as *mut u64).add(b) += 1 };
    }
    // SAFETY: see the function's contract.
    unsafe { *sum += ns };
}
