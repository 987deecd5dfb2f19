//! Indices into the `HEALTH` per-CPU array: what the kernel side failed to record.
//! The daemon exports each one, so nothing is dropped silently.

/// An insert into `TASK_STATS` failed (the map is full): that switch's time is lost.
pub const TASK_STATS_INSERT_FAILED: u32 = 0;
/// An insert into `RUNQ_START` failed: that wait is not measured.
pub const RUNQ_START_INSERT_FAILED: u32 = 1;
/// A process event could not be reserved in `PROC_EVENTS` (the daemon fell behind).
pub const PROC_EVENTS_LOST: u32 = 2;

/// An insert into `DISK_STATS` failed (the map is full): that request is not counted.
pub const DISK_STATS_INSERT_FAILED: u32 = 3;
/// An insert into `BLOCK_REQUESTS` failed: that request's latency and submitter are lost.
pub const BLOCK_REQUESTS_INSERT_FAILED: u32 = 4;

/// An insert into `NET_STATS` failed (the map is full): that traffic is not counted.
pub const NET_STATS_INSERT_FAILED: u32 = 5;
/// An insert into `TCP_SOCKS` failed: that socket's segments and health go uncounted.
pub const TCP_SOCKS_INSERT_FAILED: u32 = 6;

pub const HEALTH_COUNTERS: u32 = 7;
