//! Map names shared by the kernel programs (which define them) and the daemon (which opens
//! them by name). Keep these in step with the `#[map]` statics in `monitor-ebpf`.

pub const TASK_STATS: &str = "TASK_STATS";
pub const RUNQ_START: &str = "RUNQ_START";
pub const CPU_SLOT: &str = "CPU_SLOT";
pub const RUNQ_HIST: &str = "RUNQ_HIST";
pub const HEALTH: &str = "HEALTH";
pub const MISSES: &str = "MISSES";
pub const PROC_EVENTS: &str = "PROC_EVENTS";
pub const DISK_STATS: &str = "DISK_STATS";
pub const BLOCK_REQUESTS: &str = "BLOCK_REQUESTS";
pub const BLOCK_RQ_SLOTS: &str = "BLOCK_RQ_SLOTS";
pub const PART_DISK: &str = "PART_DISK";
pub const BLOCK_TASKS: &str = "BLOCK_TASKS";

/// Capacity of `TASK_STATS` (one entry per thread group seen running).
pub const TASK_STATS_CAPACITY: u32 = 32_768;
/// Capacity of `RUNQ_START` (one entry per live thread that has run or been runnable since
/// the programs attached).
pub const RUNQ_START_CAPACITY: u32 = 65_536;
/// Size of the process-event ring buffer in bytes (a power of two, page aligned).
pub const PROC_EVENTS_BYTES: u32 = 1 << 20;
/// Capacity of `DISK_STATS` (one entry per disk and operation).
pub const DISK_STATS_CAPACITY: u32 = 4_096;
/// Capacity of `BLOCK_REQUESTS` (one entry per request between submission and completion).
pub const BLOCK_REQUESTS_CAPACITY: u32 = 32_768;
/// Capacity of `BLOCK_TASKS` (one entry per thread group whose I/O completed; entries go
/// with their process).
pub const BLOCK_TASKS_CAPACITY: u32 = 16_384;
/// Capacity of `PART_DISK` (one entry per partition on the host).
pub const PART_DISK_CAPACITY: u32 = 4_096;

pub const AUDIT_EVENTS: &str = "AUDIT_EVENTS";
pub const AUDIT_LOST: &str = "AUDIT_LOST";
pub const TCP_SOCKS: &str = "TCP_SOCKS";
pub const TCP_LISTENERS: &str = "TCP_LISTENERS";

/// Size of the audit ring buffer in bytes: about 5,000 exec records of backlog.
pub const AUDIT_EVENTS_BYTES: u32 = 4 << 20;
/// Open TCP sockets whose owner is remembered (LRU: a socket whose close was never seen
/// ages out instead of leaking).
pub const TCP_SOCKS_CAPACITY: u32 = 65_536;
/// Listening sockets whose owner is remembered, keyed by family and port.
pub const TCP_LISTENERS_CAPACITY: u32 = 4_096;

pub const NET_STATS: &str = "NET_STATS";
/// Thread groups with network counters (those that used a TCP or UDP socket). Entries go
/// with their `TASK_STATS` entry when the daemon folds an exited process.
pub const NET_STATS_CAPACITY: u32 = 16_384;

pub const SVC_STATS: &str = "SVC_STATS";
pub const SVC_SOCKS: &str = "SVC_SOCKS";
pub const SVC_LISTENERS: &str = "SVC_LISTENERS";
/// (thread group, port, direction) triples with service figures; the daemon removes those
/// of processes gone once it has read them.
pub const SVC_STATS_CAPACITY: u32 = 8_192;
/// Sockets whose turns are followed (LRU: a closed socket stays until a late reset is
/// charged, then ages out).
pub const SVC_SOCKS_CAPACITY: u32 = 65_536;
/// Listening sockets whose owner is remembered, keyed by family and port.
pub const SVC_LISTENERS_CAPACITY: u32 = 4_096;
