//! Scheduler aggregation: what the `sched_*` programs keep per thread group, per CPU and for
//! the host-wide run-queue latency histogram.

use crate::hist::BUCKETS;

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
    /// Block-device bytes read and written by requests the group submitted (see `block`).
    pub disk_read_bytes: u64,
    pub disk_write_bytes: u64,
    /// Block-device read and write requests the group submitted, counted at completion.
    pub disk_reads: u64,
    pub disk_writes: u64,
    /// Issue-to-completion time summed over those requests.
    pub disk_read_ns: u64,
    pub disk_write_ns: u64,
}

const _: () = assert!(core::mem::size_of::<TaskCounters>() == 80);

/// Value of `TASK_STATS`, keyed by tgid.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct TaskStats {
    pub counters: TaskCounters,
    /// The group's name when the entry was made, updated at exec: lets the daemon name a
    /// group whose process is already gone from /proc.
    pub comm: [u8; 16],
}

const _: () = assert!(core::mem::size_of::<TaskStats>() == 96);

/// Value of the `CPU_SLOT` per-CPU array: when the task now on this CPU started running.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct CpuSlot {
    pub switched_in_ns: u64,
}

const _: () = assert!(core::mem::size_of::<CpuSlot>() == 8);

/// Value of the `RUNQ_HIST` per-CPU array.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct RunqHist {
    pub buckets: [u64; BUCKETS],
    pub sum_ns: u64,
}

impl Default for RunqHist {
    fn default() -> Self {
        Self {
            buckets: [0; BUCKETS],
            sum_ns: 0,
        }
    }
}

const _: () = assert!(core::mem::size_of::<RunqHist>() == (BUCKETS + 1) * 8);

/// `prev_state` value of a task that is still runnable when switched out.
pub const TASK_RUNNING: u64 = 0;
