//! Which processes are alive, without listing procfs on every refresh: the kernel sends an
//! event for every exit, so between two listings the set follows the events (exits leave
//! it, processes seen since join it), and a listing every `WALK_EVERY` is the check that
//! catches what the events missed (a full ring buffer), counted by the process table as
//! `exits_without_event`. The cost follows the rate of change, not the number of processes.

use std::{
    collections::HashSet,
    time::{Duration, Instant},
};

use super::identity::IdentityReader;

/// How often procfs is listed in full.
pub const WALK_EVERY: Duration = Duration::from_secs(10);

#[derive(Default)]
pub struct LiveSet {
    pids: HashSet<u32>,
    walked: Option<Instant>,
}

impl LiveSet {
    /// The live pids as of `now`: a fresh listing when the last is `WALK_EVERY` old (or
    /// `force`), else the set kept up to date by `exited` and `seen`.
    pub fn current(
        &mut self,
        reader: &IdentityReader,
        now: Instant,
        force: bool,
    ) -> std::io::Result<&HashSet<u32>> {
        let due = force
            || self
                .walked
                .is_none_or(|t| now.duration_since(t) >= WALK_EVERY);
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
        assert_eq!(l.current(&reader, t0, false).unwrap(), &[1, 7].into());
        // A process appears in procfs; until the next listing only events move the set.
        std::fs::create_dir(dir.path().join("9")).unwrap();
        l.exited(7);
        l.seen([12]);
        assert_eq!(
            l.current(&reader, t0 + Duration::from_secs(1), false)
                .unwrap(),
            &[1, 12].into()
        );
        assert_eq!(
            l.current(&reader, t0 + WALK_EVERY, false).unwrap(),
            &[1, 7, 9].into()
        );
    }
}
