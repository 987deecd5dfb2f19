//! Counter arithmetic on raw kernel totals (nanoseconds and counts).

use std::ops::{Add, AddAssign};

use monitor_common::{block::BlockTaskCounters, net::NetCounters, sched::TaskCounters};

use crate::{block::counters as block, net::counters as net};

/// Totals of one process or group, as the kernel counts them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    pub cpu_ns: u64,
    pub runq_wait_ns: u64,
    pub voluntary_switches: u64,
    pub involuntary_switches: u64,
    /// Execs into the group (only meaningful for groups).
    pub starts: u64,
    /// Process exits out of the group (only meaningful for groups).
    pub exits: u64,
    /// Processes of the group the OOM killer chose (only meaningful for groups).
    pub oom_kills: u64,
    /// Block I/O the process submitted (`BLOCK_TASKS`, merged in by tgid).
    pub disk: BlockTaskCounters,
    /// Traffic and TCP health (`NET_STATS`, merged in by tgid).
    pub net: NetCounters,
}

impl Counters {
    /// `self - earlier`, clamped at zero field by field: a reading taken after a fold can be
    /// a little behind the figure folded, and a counter must never go negative.
    pub fn since(self, earlier: Self) -> Self {
        Self {
            cpu_ns: self.cpu_ns.saturating_sub(earlier.cpu_ns),
            runq_wait_ns: self.runq_wait_ns.saturating_sub(earlier.runq_wait_ns),
            voluntary_switches: self
                .voluntary_switches
                .saturating_sub(earlier.voluntary_switches),
            involuntary_switches: self
                .involuntary_switches
                .saturating_sub(earlier.involuntary_switches),
            starts: self.starts.saturating_sub(earlier.starts),
            exits: self.exits.saturating_sub(earlier.exits),
            oom_kills: self.oom_kills.saturating_sub(earlier.oom_kills),
            disk: block::since(&self.disk, &earlier.disk),
            net: net::since(&self.net, &earlier.net),
        }
    }

    /// The larger of the two, field by field: keeps an exported counter monotonic.
    pub fn max(self, other: Self) -> Self {
        Self {
            cpu_ns: self.cpu_ns.max(other.cpu_ns),
            runq_wait_ns: self.runq_wait_ns.max(other.runq_wait_ns),
            voluntary_switches: self.voluntary_switches.max(other.voluntary_switches),
            involuntary_switches: self.involuntary_switches.max(other.involuntary_switches),
            starts: self.starts.max(other.starts),
            exits: self.exits.max(other.exits),
            oom_kills: self.oom_kills.max(other.oom_kills),
            disk: block::max(&self.disk, &other.disk),
            net: net::max(&self.net, &other.net),
        }
    }
}

impl Add for Counters {
    type Output = Self;
    fn add(self, o: Self) -> Self {
        Self {
            cpu_ns: self.cpu_ns + o.cpu_ns,
            runq_wait_ns: self.runq_wait_ns + o.runq_wait_ns,
            voluntary_switches: self.voluntary_switches + o.voluntary_switches,
            involuntary_switches: self.involuntary_switches + o.involuntary_switches,
            starts: self.starts + o.starts,
            exits: self.exits + o.exits,
            oom_kills: self.oom_kills + o.oom_kills,
            disk: block::add(&self.disk, &o.disk),
            net: net::add(&self.net, &o.net),
        }
    }
}

impl AddAssign for Counters {
    fn add_assign(&mut self, o: Self) {
        *self = *self + o;
    }
}

impl From<TaskCounters> for Counters {
    fn from(c: TaskCounters) -> Self {
        Self {
            cpu_ns: c.on_cpu_ns,
            runq_wait_ns: c.runq_wait_ns,
            voluntary_switches: c.voluntary_switches,
            involuntary_switches: c.involuntary_switches,
            starts: 0,
            exits: 0,
            oom_kills: 0,
            disk: BlockTaskCounters::default(),
            net: NetCounters::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_never_goes_negative() {
        let a = Counters {
            cpu_ns: 5,
            starts: 1,
            ..Default::default()
        };
        let b = Counters {
            cpu_ns: 7,
            ..Default::default()
        };
        assert_eq!(a.since(b).cpu_ns, 0);
        assert_eq!(a.since(b).starts, 1);
        assert_eq!(b.since(a).cpu_ns, 2);
    }
}
