//! Every map the programs share. Names and capacities come from `monitor_common::maps`, which
//! the daemon reads too.

use aya_ebpf::{
    bindings::{BPF_F_MMAPABLE, BPF_F_NO_PREALLOC},
    macros::map,
    maps::{Array, HashMap, LruHashMap, PerCpuArray, PerCpuHashMap, RingBuf},
};
use monitor_common::{
    block::{BlockTaskCounters, DiskKey, DiskStats, RequestKey, RequestState, RqSlot, RQ_SLOTS},
    health::{HEALTH_COUNTERS, MISS_SLOTS},
    maps::{
        BLOCK_REQUESTS_CAPACITY, BLOCK_TASKS_CAPACITY, DISK_STATS_CAPACITY, PART_DISK_CAPACITY,
        PROC_EVENTS_BYTES, RUNQ_START_CAPACITY, TASK_STATS_CAPACITY,
    },
    sched::{CpuSlot, RunqHist, TaskStats, ThreadState},
};

/// Per thread group: CPU time, run-queue wait and switches. A plain hash (not LRU) because
/// an eviction would make a counter go backwards; the daemon removes exited groups, and a
/// full map is counted in `HEALTH`.
#[map(name = "TASK_STATS")]
pub static TASK_STATS: HashMap<u32, TaskStats> = HashMap::with_max_entries(TASK_STATS_CAPACITY, 0);

/// Per thread: when it became runnable (woken, or switched out while still runnable), and
/// the runtime it was last charged at (`ThreadState`). A plain hash, not LRU: LRU updates
/// take a shared list lock on the hottest path, and every entry has a known end (the
/// thread's death, see `sched_switch`).
#[map(name = "RUNQ_START")]
pub static RUNQ_START: HashMap<u32, ThreadState> =
    HashMap::with_max_entries(RUNQ_START_CAPACITY, 0);

/// Per CPU: the task now running and when it was switched in.
#[map(name = "CPU_SLOT")]
pub static CPU_SLOT: PerCpuArray<CpuSlot> = PerCpuArray::with_max_entries(1, 0);

/// Per CPU: the host-wide run-queue latency histogram.
#[map(name = "RUNQ_HIST")]
pub static RUNQ_HIST: PerCpuArray<RunqHist> = PerCpuArray::with_max_entries(1, 0);

/// Per CPU: counts of what could not be recorded (see `monitor_common::health`).
#[map(name = "HEALTH")]
pub static HEALTH: PerCpuArray<u64> = PerCpuArray::with_max_entries(HEALTH_COUNTERS, 0);

/// Per CPU: what each program dropped, by reason (see `monitor_common::health::program`).
#[map(name = "MISSES")]
pub static MISSES: PerCpuArray<u64> = PerCpuArray::with_max_entries(MISS_SLOTS, 0);

/// Process exec and exit records for the daemon.
#[map(name = "PROC_EVENTS")]
pub static PROC_EVENTS: RingBuf = RingBuf::with_byte_size(PROC_EVENTS_BYTES, 0);

/// Per disk and operation: requests, bytes, errors and the latency histograms. Per CPU, so
/// a completion adds without atomics or cache lines bouncing between the CPUs completing
/// I/O (the daemon sums them); not evicted, so counters never go backwards. Allocated on
/// use: entries are few, and preallocated they would take capacity x CPUs x 504 bytes.
#[map(name = "DISK_STATS")]
pub static DISK_STATS: PerCpuHashMap<DiskKey, DiskStats> =
    PerCpuHashMap::with_max_entries(DISK_STATS_CAPACITY, BPF_F_NO_PREALLOC);

/// A zeroed `DiskStats` to insert from: the value is too large for the BPF stack.
#[map(name = "DISK_ZERO")]
pub static DISK_ZERO: PerCpuArray<DiskStats> = PerCpuArray::with_max_entries(1, 0);

/// Per disk and start sector: a request from its submission to its completion (who submitted
/// it, when, when it was issued). LRU because some entries are never completed under their
/// key: a bio merged into another request, a request a driver ends without a completion.
#[map(name = "BLOCK_REQUESTS")]
pub static BLOCK_REQUESTS: LruHashMap<RequestKey, RequestState> =
    LruHashMap::with_max_entries(BLOCK_REQUESTS_CAPACITY, 0);

/// The typed block path's requests in flight, two slots per set (`monitor_common::block`).
/// Mappable, so the daemon counts the slots taken in place rather than copying out each.
#[map(name = "BLOCK_RQ_SLOTS")]
pub static BLOCK_RQ_SLOTS: Array<RqSlot> = Array::with_max_entries(RQ_SLOTS, BPF_F_MMAPABLE);

/// Per thread group: the reads and writes it submitted. The block family's own entries (not
/// the scheduler's), made at completion, so submission needs no per-process lookup. A plain
/// hash (an eviction would take a counter backwards); the daemon removes exited groups.
#[map(name = "BLOCK_TASKS")]
pub static BLOCK_TASKS: HashMap<u32, BlockTaskCounters> =
    HashMap::with_max_entries(BLOCK_TASKS_CAPACITY, 0);

/// Partition `dev_t` to its disk's, kept by the daemon from sysfs: bio events name the
/// partition, request events the disk.
#[map(name = "PART_DISK")]
pub static PART_DISK: HashMap<u32, u32> = HashMap::with_max_entries(PART_DISK_CAPACITY, 0);
