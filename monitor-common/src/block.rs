//! Block I/O aggregation: what the `block_*` programs keep per device and operation, and the
//! short-lived records that carry a request from submission to completion.
//!
//! Two paths, chosen whole at attach time:
//! - typed (6.5+ with BTF): `tp_btf` on `block_io_start`, `block_rq_issue` and
//!   `block_rq_complete`, which hand over the `struct request *`. The request is followed
//!   by its pointer in `BLOCK_RQ_SLOTS`, a two-way set-associative array (see `RqSlot`):
//!   array lookups are inlined by the verifier, where a hash insert and delete per request
//!   cost more than everything else the programs do. The request's disk and operation are
//!   read at completion at offsets the daemon takes from the kernel's BTF (`BlockLayout`).
//! - classic (every kernel): tracepoint records, which carry the device and sector on every
//!   kernel. A request is followed by `(disk, sector)` from its submission to its
//!   completion, in one `BLOCK_REQUESTS` entry. Bio events (the submitter hook before 6.5)
//!   name the partition, request events the whole disk: the daemon keeps `PART_DISK`
//!   (partition `dev_t` to disk `dev_t`) for the programs to translate.

use crate::hist::BUCKETS;

/// Operations, as indices. Anything else (driver-private requests) is not counted.
pub const OP_READ: u32 = 0;
pub const OP_WRITE: u32 = 1;
pub const OP_FLUSH: u32 = 2;
pub const OP_DISCARD: u32 = 3;
pub const OPS: u32 = 4;
/// Not one of the above.
pub const OP_OTHER: u32 = u32::MAX;

/// The `op` label of each index.
pub const OP_NAMES: [&str; OPS as usize] = ["read", "write", "flush", "discard"];

/// The operation of a tracepoint's `rwbs` string (the kernel's `blk_fill_rwbs`): an optional
/// leading `F` for a preflush, then `W`, `D` (or `DE`, secure erase), `F` (flush), `R`, `N`.
#[inline(always)]
pub const fn op_of_rwbs(rwbs: [u8; 4]) -> u32 {
    let c = if rwbs[0] == b'F' && matches!(rwbs[1], b'W' | b'D' | b'F' | b'R' | b'N') {
        rwbs[1]
    } else {
        rwbs[0]
    };
    match c {
        b'R' => OP_READ,
        b'W' => OP_WRITE,
        b'F' => OP_FLUSH,
        b'D' => OP_DISCARD,
        _ => OP_OTHER,
    }
}

/// Value of `BLOCK_TASKS`, keyed by tgid: the reads and writes a thread group submitted,
/// counted at their completion. Totals since the entry was created.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(
    feature = "user",
    derive(serde::Serialize, serde::Deserialize),
    serde(default)
)]
pub struct BlockTaskCounters {
    pub read_bytes: u64,
    pub write_bytes: u64,
    pub reads: u64,
    pub writes: u64,
    /// Issue-to-completion time summed over those requests.
    pub read_ns: u64,
    pub write_ns: u64,
}

const _: () = assert!(core::mem::size_of::<BlockTaskCounters>() == 48);

/// Key of `DISK_STATS`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct DiskKey {
    /// The kernel's `dev_t` of the disk: major << 20 | minor.
    pub dev: u32,
    pub op: u32,
}

const _: () = assert!(core::mem::size_of::<DiskKey>() == 8);

/// Value of `DISK_STATS`: totals since the entry was created.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
#[cfg_attr(
    feature = "user",
    derive(serde::Serialize, serde::Deserialize),
    serde(default)
)]
pub struct DiskStats {
    /// Completed requests.
    pub requests: u64,
    pub bytes: u64,
    /// Requests completed with an error status.
    pub errors: u64,
    /// Issue-to-completion time: a log2 histogram and its sum, for the requests whose issue
    /// was seen (all of them, but those in flight when the programs attached).
    pub latency: [u64; BUCKETS],
    pub latency_sum_ns: u64,
    /// Time from the request's creation (or its first bio's submission) to its issue to the
    /// driver, for the requests whose submission and issue were seen.
    pub queue: [u64; BUCKETS],
    pub queue_sum_ns: u64,
}

impl Default for DiskStats {
    fn default() -> Self {
        Self {
            requests: 0,
            bytes: 0,
            errors: 0,
            latency: [0; BUCKETS],
            latency_sum_ns: 0,
            queue: [0; BUCKETS],
            queue_sum_ns: 0,
        }
    }
}

const _: () = assert!(core::mem::size_of::<DiskStats>() == (5 + 2 * BUCKETS) * 8);

/// Key of `BLOCK_REQUESTS`: a disk and a start sector, which tell a request apart from any
/// other in flight. Requests without data (the flush machinery's own) are issued at sector
/// 0 and complete at all ones: they are kept under `NO_DATA_SECTOR`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct RequestKey {
    /// The whole disk's `dev_t`, as the request events report it.
    pub dev: u32,
    pub _pad: u32,
    pub sector: u64,
}

const _: () = assert!(core::mem::size_of::<RequestKey>() == 16);

pub const NO_DATA_SECTOR: u64 = u64::MAX;

// A data-less write with a preflush (an fsync) is submitted and completed at sector 0, so it
// shares a key with a request for sector 0 of the same disk in flight at the same moment:
// one of the two then loses its latency or is charged to the other's submitter. Sector 0 of
// a whole disk holds its partition table, which is seldom read or written.

/// Value of `BLOCK_REQUESTS`: a request between its submission and its completion.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct RequestState {
    /// When it was submitted (0: not seen, e.g. the flush machinery's requests).
    pub submitted_ns: u64,
    /// When it was issued to the driver (0: not yet, or never: a data-less write with a
    /// preflush is finished by the flush machinery without reaching the driver itself).
    pub issued_ns: u64,
    /// The submitter's tgid (0: not known).
    pub tgid: u32,
    pub _pad: u32,
}

const _: () = assert!(core::mem::size_of::<RequestState>() == 24);

/// Sets in `BLOCK_RQ_SLOTS` (a power of two); each set holds two requests.
pub const RQ_SETS: u32 = 16_384;
/// Slots in `BLOCK_RQ_SLOTS`.
pub const RQ_SLOTS: u32 = 2 * RQ_SETS;

/// The first of the two slots that can hold request `rq` (the other is the next one):
/// a multiplicative hash of the pointer, as requests are allocated at a fixed stride. The
/// programs pass the pointer as a plain number (the verifier refuses shifts of a pointer).
#[inline(always)]
pub const fn rq_set(rq: u64) -> u32 {
    (((rq >> 6).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 50) as u32 & (RQ_SETS - 1)) * 2
}

/// Value of `BLOCK_RQ_SLOTS`: a request of the typed path between its submission and its
/// completion. A slot whose `rq` is 0 is free; a completion frees its slot. A request
/// merged into another, or ended by a driver without a completion, leaves its slot behind
/// until a submission needs the set: both slots taken, the older is taken over (and
/// counted), so the table heals itself.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "user", derive(serde::Serialize, serde::Deserialize))]
pub struct RqSlot {
    /// The `struct request *` (0: free).
    pub rq: u64,
    /// When it was submitted (0: not seen: the flush machinery's own requests).
    pub submitted_ns: u64,
    /// When it was issued to the driver (0: not yet).
    pub issued_ns: u64,
    /// The submitter's tgid (0: not known).
    pub tgid: u32,
    pub _pad: u32,
}

const _: () = assert!(core::mem::size_of::<RqSlot>() == 32);

/// Where the typed programs find a request's operation and disk: member offsets from the
/// kernel's BTF, handed over as the `BLOCK_LAYOUT` global before load (0: unknown, and the
/// typed path is not attached).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BlockLayout {
    /// `request.cmd_flags` (`blk_opf_t`, a u32: the operation in its low byte).
    pub rq_cmd_flags: u32,
    /// `request.q`.
    pub rq_q: u32,
    /// `request_queue.disk`.
    pub q_disk: u32,
    /// `gendisk.major` and `gendisk.first_minor` (ints), which make the disk's `dev_t`.
    pub disk_major: u32,
    pub disk_first_minor: u32,
}

/// Name of the `BlockLayout` global in the kernel object.
pub const GLOBAL_BLOCK_LAYOUT: &str = "BLOCK_LAYOUT";

/// The operation index of a request's `cmd_flags` (`enum req_op` in its low byte, as
/// `blk_fill_rwbs` reads it: secure erase counts as a discard, as its `DE` does).
#[inline(always)]
pub const fn op_of_cmd_flags(flags: u32) -> u32 {
    match flags & 0xff {
        0 => OP_READ,
        1 => OP_WRITE,
        2 => OP_FLUSH,
        3 | 5 => OP_DISCARD,
        _ => OP_OTHER,
    }
}

/// The global through which the daemon hands `block_rq_complete`'s `rwbs` offset, read from
/// its tracefs `format` file, to the program before loading (it moved when `ioprio` was
/// added to the `block_rq` events).
pub const RQ_COMPLETE_RWBS_OFFSET: &str = "BLOCK_RQ_COMPLETE_RWBS";

/// Offsets that have not moved since 4.x in any `block` event the programs read.
pub const DEV_OFFSET: usize = 8;
pub const SECTOR_OFFSET: usize = 16;
pub const NR_SECTOR_OFFSET: usize = 24;
/// `block_rq_complete`'s `error`.
pub const ERROR_OFFSET: usize = 28;
/// `block_split`'s `new_sector`.
pub const NEW_SECTOR_OFFSET: usize = 24;

#[cfg(test)]
mod tests {
    use super::*;

    fn op(s: &str) -> u32 {
        let mut b = [0u8; 4];
        for (d, c) in b.iter_mut().zip(s.bytes()) {
            *d = c;
        }
        op_of_rwbs(b)
    }

    #[test]
    fn rwbs_strings_map_to_ops() {
        assert_eq!(op("R"), OP_READ);
        assert_eq!(op("RS"), OP_READ);
        assert_eq!(op("RA"), OP_READ);
        assert_eq!(op("WS"), OP_WRITE);
        assert_eq!(op("WFS"), OP_WRITE); // write with FUA
        assert_eq!(op("FWS"), OP_WRITE); // preflush + write
        assert_eq!(op("FF"), OP_FLUSH); // the flush machinery's own request
        assert_eq!(op("F"), OP_FLUSH);
        assert_eq!(op("D"), OP_DISCARD);
        assert_eq!(op("DE"), OP_DISCARD);
        assert_eq!(op("N"), OP_OTHER);
        assert_eq!(op(""), OP_OTHER);
    }

    #[test]
    fn cmd_flags_map_to_the_same_ops_as_rwbs() {
        // REQ_OP_* values (include/linux/blk_types.h), with flag bits above the op byte.
        assert_eq!(op_of_cmd_flags(0), OP_READ);
        assert_eq!(op_of_cmd_flags(1 | 1 << 11), OP_WRITE); // REQ_SYNC
        assert_eq!(op_of_cmd_flags(2), OP_FLUSH);
        assert_eq!(op_of_cmd_flags(3), OP_DISCARD);
        assert_eq!(op_of_cmd_flags(5), OP_DISCARD);
        assert_eq!(op_of_cmd_flags(9), OP_OTHER); // write zeroes: rwbs "N"
        assert_eq!(op_of_cmd_flags(34), OP_OTHER); // REQ_OP_DRV_IN
    }

    #[test]
    fn request_sets_spread_requests_allocated_at_a_stride() {
        extern crate std;
        // Requests of one tag set sit at a fixed stride; a few thousand in flight must not
        // pile into few sets.
        let mut used = std::collections::HashMap::new();
        for i in 0..4096u64 {
            let s = rq_set(0xffff_8881_0a00_0000 + i * 384);
            assert!(s < RQ_SLOTS && s.is_multiple_of(2));
            *used.entry(s).or_insert(0u32) += 1;
        }
        assert!(used.values().all(|&n| n <= 4), "{:?}", used.values().max());
        assert!(used.len() > 3500, "{} sets", used.len());
    }
}
