//! Process lifecycle records sent through the `PROC_EVENTS` ring buffer. They are rare (one
//! per exec or process exit), unlike scheduler events, which are only ever aggregated.

use crate::sched::TaskCounters;

#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProcEventKind {
    /// The thread group replaced its image; `counters` are its totals just before.
    Exec = 1,
    /// The thread group leader exited.
    Exit = 2,
    /// The OOM killer chose `tgid` (`comm` is the victim's name; counters are zero).
    OomKill = 3,
}

impl ProcEventKind {
    pub const fn from_u32(v: u32) -> Option<Self> {
        match v {
            1 => Some(Self::Exec),
            2 => Some(Self::Exit),
            3 => Some(Self::OomKill),
            _ => None,
        }
    }
}

#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct ProcEvent {
    /// A `ProcEventKind` as `u32` (an enum with an unknown value must not be materialised).
    pub kind: u32,
    pub tgid: u32,
    /// `bpf_ktime_get_ns` (CLOCK_MONOTONIC) at the event.
    pub ts_ns: u64,
    /// The task's name after the event (for exec: the new image's name).
    pub comm: [u8; 16],
    /// The name the thread group had in `TASK_STATS` before an exec; zeroes otherwise.
    pub prev_comm: [u8; 16],
    pub counters: TaskCounters,
    /// The task's cgroup (v2 id) at the event; 0 for an OOM kill (whose victim is not the
    /// running task).
    pub cgroup_id: u64,
}

const _: () = assert!(core::mem::size_of::<ProcEvent>() == 88);
