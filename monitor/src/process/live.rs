//! Which processes are alive, without listing procfs on every refresh: the kernel sends an
//! event for every exit, so between two listings the set follows the events (exits leave
//! it, processes seen since join it), and a listing is the check that catches what the
//! events missed, counted by the process table as `exits_without_event`. The caller says
//! how often (`Walk`): seldom while the events arrive whole, at once when the kernel
//! reports some lost (a full ring buffer), often when no family sends them. Listing procfs
//! costs the kernel a lookup per process (10,000 processes: most of the daemon's time at a
//! listing every 10 s), so the cost follows the rate of change, not the number of
//! processes.

use std::{
    collections::HashSet,
    time::{Duration, Instant},
};

use super::identity::IdentityReader;

/// How often procfs is listed in full while no family sends exit events.
pub const WALK_EVERY: Duration = Duration::from_secs(10);
/// How often while every exit event arrived: only the check against what events cannot
/// show.
pub const WALK_EVERY_WITH_EVENTS: Duration = Duration::from_secs(60);

/// When the next listing is due.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Walk {
    /// `WALK_EVERY_WITH_EVENTS` after the last.
    EventsWhole,
    /// `WALK_EVERY` after the last.
    NoEvents,
    /// Now: events were lost.
    Now,
}

impl Walk {
    fn every(self) -> Duration {
        match self {
            Walk::EventsWhole => WALK_EVERY_WITH_EVENTS,
            Walk::NoEvents => WALK_EVERY,
            Walk::Now => Duration::ZERO,
        }
    }
}

#[derive(Default)]
pub struct LiveSet {
    pids: HashSet<u32>,
    walked: Option<Instant>,
}

impl LiveSet {
    /// The live pids as of `now`: a fresh listing when `walk` says one is due, else the set
    /// kept up to date by `exited` and `seen`.
    pub fn current(
        &mut self,
        reader: &IdentityReader,
        now: Instant,
        walk: Walk,
    ) -> std::io::Result<&HashSet<u32>> {
        let due = self
            .walked
            .is_none_or(|t| now.duration_since(t) >= walk.every());
        if due {
            self.pids = reader.live_pids()?.into_iter().collect();
            self.walked = Some(now);
        } else {
            super::shrink::set(&mut self.pids);
        }
        Ok(&self.pids)
    }

    /// The set as it stands (after `current`, `exited` and `seen`).
    pub fn pids(&self) -> &HashSet<u32> {
        &self.pids
    }

    /// A process exit the kernel reported.
    pub fn exited(&mut self, tgid: u32) {
        self.pids.remove(&tgid);
    }

    /// Processes the table follows now (admitted since the last listing).
    pub fn seen(&mut self, tgids: impl IntoIterator<Item = u32>) {
        self.pids.extend(tgids);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_procfs_only_when_due_and_follows_events_between() {
        let dir = tempfile::tempdir().unwrap();
        for pid in ["1", "7"] {
            std::fs::create_dir(dir.path().join(pid)).unwrap();
        }
        std::fs::create_dir(dir.path().join("self-not-a-pid")).unwrap();
        let reader = IdentityReader::new(dir.path());
        let mut l = LiveSet::default();
        let t0 = Instant::now();
        assert_eq!(
            l.current(&reader, t0, Walk::NoEvents).unwrap(),
            &[1, 7].into()
        );
        // A process appears in procfs; until the next listing only events move the set.
        std::fs::create_dir(dir.path().join("9")).unwrap();
        l.exited(7);
        l.seen([12]);
        assert_eq!(
            l.current(&reader, t0 + Duration::from_secs(1), Walk::NoEvents)
                .unwrap(),
            &[1, 12].into()
        );
        assert_eq!(
            l.current(&reader, t0 + WALK_EVERY, Walk::NoEvents).unwrap(),
            &[1, 7, 9].into()
        );
    }

    #[test]
    fn lists_seldom_while_events_arrive_whole_and_at_once_when_some_were_lost() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("1")).unwrap();
        let reader = IdentityReader::new(dir.path());
        let mut l = LiveSet::default();
        let t0 = Instant::now();
        assert_eq!(
            l.current(&reader, t0, Walk::EventsWhole).unwrap(),
            &[1].into()
        );
        std::fs::create_dir(dir.path().join("5")).unwrap();
        let t1 = t0 + WALK_EVERY;
        assert_eq!(
            l.current(&reader, t1, Walk::EventsWhole).unwrap(),
            &[1].into()
        );
        assert_eq!(l.current(&reader, t1, Walk::Now).unwrap(), &[1, 5].into());
        std::fs::create_dir(dir.path().join("6")).unwrap();
        let t2 = t1 + WALK_EVERY_WITH_EVENTS;
        assert_eq!(
            l.current(&reader, t2 - Duration::from_secs(1), Walk::EventsWhole)
                .unwrap(),
            &[1, 5].into()
        );
        assert_eq!(
            l.current(&reader, t2, Walk::EventsWhole).unwrap(),
            &[1, 5, 6].into()
        );
    }
}
