//! Scheduler aggregation: what the `sched_*` programs keep per thread group, per CPU and for
//! the host-wide run-queue latency histogram.

use crate::hist::BUCKETS;

/// Counters kept per thread group (process). All are totals since the entry was created.
/// Scheduler figures only: the other families keep their own per-group maps (`BLOCK_TASKS`,
/// `NET_STATS`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(
    feature = "user",
    derive(serde::Serialize, serde::Deserialize),
    serde(default)
)]
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
    /// The group's cgroup in the default (v2) hierarchy, the inode number of its cgroupfs
    /// directory: taken when the entry was made, at exec and at exit, so the daemon can tell
    /// the service of a process that is gone before it read /proc.
    pub cgroup_id: u64,
}

const _: () = assert!(core::mem::size_of::<TaskStats>() == 56);

/// Value of the `CPU_SLOT` per-CPU array: the task now running on this CPU and when it was
/// switched in. The daemon adds `now - switched_in_ns` to that thread group's CPU time when
/// it reads the counters, so a task that runs for seconds without a switch is measured while
/// it runs, not only when it is switched out.
///
/// `tgid` comes first: the daemon reads the slot front to back while the program writes
/// `switched_in_ns` before `tgid`, so a torn read pairs an older task with a newer start
/// (a slice read short), never a newer task with an older start (a slice counted twice).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct CpuSlot {
    /// The running thread group; 0 when not known (the classic tracepoint names only the
    /// thread, see `tid`) or when the CPU is idle.
    pub tgid: u32,
    /// The running thread; 0 for the idle task.
    pub tid: u32,
    pub switched_in_ns: u64,
}

const _: () = assert!(core::mem::size_of::<CpuSlot>() == 16);

/// Where the scheduler programs find `task_struct` members on the running kernel (from its
/// BTF), set by the daemon before loading: the typed hooks hand over `task_struct` pointers.
/// 0 means unknown; the daemon then attaches the classic tracepoints instead.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SchedLayout {
    pub task_pid: u32,
    pub task_tgid: u32,
}

const _: () = assert!(core::mem::size_of::<SchedLayout>() == 8);

/// Name of the `SchedLayout` global in the kernel object.
pub const GLOBAL_LAYOUT: &str = "SCHED_LAYOUT";

/// Value of the `RUNQ_HIST` per-CPU array.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
#[cfg_attr(
    feature = "user",
    derive(serde::Serialize, serde::Deserialize),
    serde(default)
)]
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
