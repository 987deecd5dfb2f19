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
/// switched in. When the daemon reads the counters it adds the running thread's runtime not
/// yet charged (its `/proc/<tid>/schedstat` less its `ThreadState::charged_ns`; `now -
/// switched_in_ns` where the programs charge the clock) to its thread group's CPU time, so a
/// task that runs for seconds without a switch is measured while it runs, not only when it
/// is switched out.
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
    /// `task_struct.se.sum_exec_runtime`: the kernel's own on-CPU time of a thread. 0 when
    /// not found; the programs then charge the clock between switches instead.
    pub task_sum_exec_runtime: u32,
    /// `task_struct.sched_info.run_delay`: the kernel's own run-queue wait of a thread
    /// (`CONFIG_SCHED_INFO`, the second field of `/proc/<pid>/schedstat`). 0 when not found;
    /// the wait is then timed from the wakeup programs.
    pub task_run_delay: u32,
}

const _: () = assert!(core::mem::size_of::<SchedLayout>() == 16);

/// Value of `RUNQ_START`, per thread: how much of its on-CPU time and of its run-queue wait
/// has been charged to its group, and (where the kernel's wait is not known) when it became
/// runnable.
///
/// On-CPU time is charged as the growth of the kernel's `sum_exec_runtime` since the last
/// charge, not as the clock between switch-in and switch-out: the clock also runs while the
/// hypervisor runs another guest on this CPU (steal time) and while interrupts are served,
/// which the kernel's figure (and `/proc/<pid>/stat`, `/proc/<pid>/schedstat`) leaves out.
///
/// The wait is charged the same way, as the growth of the kernel's `sched_info.run_delay`:
/// the scheduler keeps it for every thread anyway, so no program needs to run at each
/// wakeup (the most frequent scheduler event after the switch) to time it. Between two
/// switch-outs of a thread it grows by exactly the wait before the slice between them.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ThreadState {
    /// When it became runnable (woken, or switched out while still runnable); 0 while it is
    /// not queued. Kept only where the kernel's wait is not known (`waited_ns` unknown).
    pub queued_ns: u64,
    /// Its `sum_exec_runtime` when its time was last charged; `RUNTIME_UNKNOWN` when the
    /// entry was made without it (a classic wakeup, which names the thread only).
    pub charged_ns: u64,
    /// Its `sched_info.run_delay` when its wait was last charged; `RUNTIME_UNKNOWN` when
    /// not known (the wait is then timed from `queued_ns`).
    pub waited_ns: u64,
}

const _: () = assert!(core::mem::size_of::<ThreadState>() == 24);

/// `ThreadState::charged_ns` or `waited_ns` not known: the thread's next slice is charged by
/// the clock.
pub const RUNTIME_UNKNOWN: u64 = u64::MAX;

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
