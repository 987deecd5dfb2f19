//! The bytes interfaces moved that no process was charged with, as a counter that never goes
//! back and is not fooled by the two sides being counted at different moments.
//!
//! Interfaces count a packet when it passes; processes are charged when their call returns
//! (received data can sit in a socket buffer for a while first). So the running difference
//! (interface bytes minus process bytes since the daemon started) has transient peaks that
//! are not traffic without an owner. The counter follows the smallest difference seen over the
//! last `WINDOW` of refreshes: a peak shorter than that never enters it, a lasting difference
//! (headers, forwarded or kernel traffic) does, `WINDOW` late.

use std::{
    collections::VecDeque,
    time::{Duration, Instant},
};

use super::netdev::Interface;

/// How long a difference must last to be counted.
pub const WINDOW: Duration = Duration::from_secs(10);

#[derive(Default)]
pub struct Unattributed {
    /// (rx, tx) bytes per interface at the last observation.
    last: Vec<(String, (u64, u64))>,
    /// Interface (rx, tx) bytes since the first observation, over every interface.
    ifaces: (u64, u64),
    /// Process (rx, tx) bytes at the first observation.
    base: Option<(u64, u64)>,
    /// Recent (when, rx difference, tx difference).
    recent: VecDeque<(Instant, i128, i128)>,
    total: (u64, u64),
}

impl Unattributed {
    /// Takes the interfaces' counters and the processes' (rx, tx) payload totals, read at the
    /// same refresh. An interface that appeared or was re-created counts from 0.
    pub fn observe(&mut self, now: Instant, ifaces: &[Interface], procs: (u64, u64)) {
        let first = self.base.is_none();
        for i in ifaces {
            let prev = if first {
                i.bytes
            } else {
                self.last
                    .iter()
                    .find(|(n, _)| *n == i.name)
                    .map_or((0, 0), |(_, b)| *b)
            };
            self.ifaces.0 += i.bytes.0.checked_sub(prev.0).unwrap_or(i.bytes.0);
            self.ifaces.1 += i.bytes.1.checked_sub(prev.1).unwrap_or(i.bytes.1);
        }
        self.last = ifaces.iter().map(|i| (i.name.clone(), i.bytes)).collect();
        let base = *self.base.get_or_insert(procs);
        let diff = |i: u64, p: u64, b: u64| i128::from(i) - (i128::from(p) - i128::from(b));
        self.recent.push_back((
            now,
            diff(self.ifaces.0, procs.0, base.0),
            diff(self.ifaces.1, procs.1, base.1),
        ));
        while self
            .recent
            .front()
            .is_some_and(|(t, ..)| now.saturating_duration_since(*t) > WINDOW)
        {
            self.recent.pop_front();
        }
        // Only once the window is covered: a young daemon has seen no lasting difference yet.
        if self
            .recent
            .front()
            .is_some_and(|(t, ..)| now.saturating_duration_since(*t) < WINDOW / 2)
        {
            return;
        }
        let low = |f: fn(&(Instant, i128, i128)) -> i128| {
            self.recent.iter().map(f).min().unwrap_or(0).max(0) as u64
        };
        self.total.0 = self.total.0.max(low(|r| r.1));
        self.total.1 = self.total.1.max(low(|r| r.2));
    }

    /// (rx, tx) bytes no process was charged with, since the daemon started.
    pub fn total(&self) -> (u64, u64) {
        self.total
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lo(rx: u64, tx: u64) -> Vec<Interface> {
        vec![Interface {
            name: "lo".into(),
            bytes: (rx, tx),
            ..Default::default()
        }]
    }

    #[test]
    fn counts_lasting_differences_only() {
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        let mut u = Unattributed::default();
        u.observe(at(0), &lo(1000, 1000), (10, 10));
        // A transfer the interfaces saw before its process was charged: a peak, gone by the
        // next refresh.
        u.observe(at(1), &lo(1000, 5000), (10, 10));
        u.observe(at(2), &lo(1000, 5040), (10, 4010));
        for s in 3..=12 {
            u.observe(at(s), &lo(1000, 5040), (10, 4010));
        }
        // 40 bytes of headers lasted; the 4,000-byte peak did not count.
        assert_eq!(u.total(), (0, 40));
        // A re-created interface counts from zero; the counter never goes back.
        u.observe(at(13), &lo(0, 0), (10, 5000));
        for s in 14..=30 {
            u.observe(at(s), &lo(0, 0), (10, 5000));
        }
        assert_eq!(u.total(), (0, 40));
    }
}
