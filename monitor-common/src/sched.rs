//! Scheduler aggregation: what the `sched_*` programs keep per thread group, per CPU and for
//! the host-wide run-queue latency histogram.

/// Counters kept per thread group (process). All are totals since the entry was created.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TaskCounters {
    /// Time on a CPU, summed over the group's threads.
    pub on_cpu_ns: u64,
    /// Time runnable but waiting for a CPU, summed over the group's threads.
    pub runq_wait_ns: u64,
    /// Switches away because a thread blocked.
    pub voluntary_switches: u64,
    /// Switches away while still runnable (preempted, or yielded).
    pub involuntary_switches: u64,
}

const _: () = assert!(core::mem::size_of::<TaskCounters>() == 32);

/// Value of `TASK_STATS`, keyed by tgid.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct TaskStats {
    pub counters: TaskCounters,
    /// The group's name when the entry was made, updated at exec: lets the daemon name a
    /// group whose process is already gone from /proc.
    pub comm: [u8; 16],
}

const _: () = assert!(core::mem::size_of::<TaskStats>() == 48);

/// Value of the `CPU_SLOT` per-CPU array: when the task now on this CPU started running.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct CpuSlot {
    pub switched_in_ns: u64,
}

const _: () = assert!(core::mem::size_of::<CpuSlot>() == 8);

/// Buckets of the run-queue latency histogram. Bucket 0 holds waits under 1 µs; bucket k
/// (1..=27) holds waits in [2^(k-1), 2^k) µs, so its upper bound is 2^k µs; the last
/// bucket holds everything from 2^27 µs (about 134 s) up.
pub const RUNQ_BUCKETS: usize = 29;

/// Value of the `RUNQ_HIST` per-CPU array.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct RunqHist {
    pub buckets: [u64; RUNQ_BUCKETS],
    pub sum_ns: u64,
}

impl Default for RunqHist {
    fn default() -> Self {
        Self {
            buckets: [0; RUNQ_BUCKETS],
            sum_ns: 0,
        }
    }
}

const _: () = assert!(core::mem::size_of::<RunqHist>() == (RUNQ_BUCKETS + 1) * 8);

/// Floor of log2, written without `leading_zeros` so the BPF backend never needs a
/// count-leading-zeros expansion or a libcall.
#[inline(always)]
pub const fn log2_floor(mut v: u64) -> u32 {
    let mut r = ((v > 0xFFFF_FFFF) as u32) << 5;
    v >>= r;
    let mut s = ((v > 0xFFFF) as u32) << 4;
    v >>= s;
    r |= s;
    s = ((v > 0xFF) as u32) << 3;
    v >>= s;
    r |= s;
    s = ((v > 0xF) as u32) << 2;
    v >>= s;
    r |= s;
    s = ((v > 0x3) as u32) << 1;
    v >>= s;
    r |= s;
    r | (v >> 1) as u32
}

/// The histogram bucket for a wait of `ns` nanoseconds.
#[inline(always)]
pub const fn runq_bucket(ns: u64) -> usize {
    let us = ns / 1000;
    if us == 0 {
        return 0;
    }
    let b = log2_floor(us) as usize + 1;
    if b >= RUNQ_BUCKETS {
        RUNQ_BUCKETS - 1
    } else {
        b
    }
}

/// Upper bound of bucket `i` in seconds, or `None` for the last (unbounded) bucket.
pub fn runq_bucket_upper_seconds(i: usize) -> Option<f64> {
    if i + 1 >= RUNQ_BUCKETS {
        None
    } else {
        Some((1u64 << i) as f64 * 1e-6)
    }
}

/// `prev_state` value of a task that is still runnable when switched out.
pub const TASK_RUNNING: u64 = 0;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log2_matches_leading_zeros() {
        for v in [1u64, 2, 3, 4, 7, 8, 1000, 1 << 31, (1 << 32) + 5, u64::MAX] {
            assert_eq!(log2_floor(v), 63 - v.leading_zeros(), "v={v}");
        }
    }

    #[test]
    fn buckets_hold_their_bounds() {
        assert_eq!(runq_bucket(0), 0);
        assert_eq!(runq_bucket(999), 0);
        assert_eq!(runq_bucket(1_000), 1);
        assert_eq!(runq_bucket(1_999), 1);
        assert_eq!(runq_bucket(2_000), 2);
        assert_eq!(runq_bucket(50_000_000), 16); // 50 ms = 50000 µs < 2^16 µs
        assert_eq!(runq_bucket(u64::MAX), RUNQ_BUCKETS - 1);
        // Every value below a bucket's upper bound, and at or above the previous one's.
        for ns in [1u64, 1_500, 3_000, 1_000_000, 7_777_777_777] {
            let b = runq_bucket(ns);
            let upper = runq_bucket_upper_seconds(b).unwrap();
            assert!((ns as f64) * 1e-9 < upper, "ns={ns} b={b}");
            if b > 0 {
                assert!((ns as f64) * 1e-9 >= runq_bucket_upper_seconds(b - 1).unwrap());
            }
        }
        assert!(runq_bucket_upper_seconds(RUNQ_BUCKETS - 1).is_none());
        assert!((runq_bucket_upper_seconds(27).unwrap() - 134.217728).abs() < 1e-9);
    }
}
