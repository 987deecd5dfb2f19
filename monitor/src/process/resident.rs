//! Each process's resident memory, for its group's sum: `/proc/<pid>/statm`'s resident pages
//! (the kernel's own RSS counters, what `VmRSS` shows), read again only when it can have
//! moved much. A process that ran since its last reading may have touched or freed memory;
//! one that did not can only lose pages to reclaim, so it is read again only after a while,
//! a few a refresh. On a host of idle processes a refresh then reads a few files, not one
//! per process (with thousands of idle processes, an idle one's reading can be minutes old).

use std::{
    io::Read as _,
    path::Path,
    time::{Duration, Instant},
};

/// A process that ran is read again after this long at the soonest.
const RAN_EVERY: Duration = Duration::from_secs(2);
/// One that did not, after this long plus up to `SPREAD` (by pid, so a table filled at
/// start-up does not read every process in the same refresh), and at most
/// `IDLE_PER_REFRESH` of them a refresh: on a host of 10,000 idle processes one file each
/// every 20 s was 400 files a second, most of the daemon's time.
const IDLE_EVERY: Duration = Duration::from_secs(20);
const SPREAD: u64 = 10;
pub const IDLE_PER_REFRESH: usize = 16;

/// A process's last reading.
#[derive(Clone, Copy, Debug, Default)]
pub struct Resident {
    pub bytes: u64,
    read: Option<(Instant, u64)>,
}

impl Resident {
    /// Whether the reading is due at `now`, for a process with pid `pid` that has run for
    /// `cpu_ns` in all: `Some(true)` for one that ran since (or was never read),
    /// `Some(false)` for an idle one, `None` when not due.
    pub fn due(&self, pid: u32, cpu_ns: u64, now: Instant) -> Option<bool> {
        let Some((at, cpu_at)) = self.read else {
            return Some(true);
        };
        let age = now.saturating_duration_since(at);
        if cpu_ns != cpu_at {
            (age >= RAN_EVERY).then_some(true)
        } else {
            (age >= IDLE_EVERY + Duration::from_secs(u64::from(pid) % SPREAD)).then_some(false)
        }
    }

    /// Records a reading of `bytes` taken at `now` with the process at `cpu_ns`; returns the
    /// change, for the group's sum.
    pub fn set(&mut self, bytes: u64, cpu_ns: u64, now: Instant) -> i64 {
        let change = bytes as i64 - self.bytes as i64;
        self.bytes = bytes;
        self.read = Some((now, cpu_ns));
        change
    }
}

/// The page size, which statm counts in.
pub fn page_size() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let n = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    u64::try_from(n).unwrap_or(4096)
}

/// `<procfs>/<pid>/statm`'s resident size in bytes; `None` when the process is gone or the
/// file is not as expected.
pub fn read(procfs: &Path, pid: u32, page: u64) -> Option<u64> {
    let mut f = std::fs::File::open(procfs.join(pid.to_string()).join("statm")).ok()?;
    // Seven numbers: well under this.
    let mut buf = [0u8; 128];
    let n = f.read(&mut buf).ok()?;
    parse(std::str::from_utf8(&buf[..n]).ok()?, page)
}

fn parse(statm: &str, page: u64) -> Option<u64> {
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * page)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_resident_field() {
        assert_eq!(parse("2345 678 90 1 0 300 0\n", 4096), Some(678 * 4096));
        assert_eq!(parse("0 0 0 0 0 0 0\n", 4096), Some(0));
        assert_eq!(parse("2345\n", 4096), None);
        assert_eq!(parse("a b c", 4096), None);
    }

    #[test]
    fn reads_a_fixture_and_a_missing_process() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("42")).unwrap();
        std::fs::write(dir.path().join("42/statm"), "100 25 5 1 0 20 0\n").unwrap();
        assert_eq!(read(dir.path(), 42, 4096), Some(25 * 4096));
        assert_eq!(read(dir.path(), 43, 4096), None);
    }

    #[test]
    fn a_process_that_ran_is_read_sooner_than_an_idle_one() {
        let t = Instant::now();
        let mut r = Resident::default();
        assert_eq!(r.due(7, 0, t), Some(true), "never read");
        assert_eq!(r.set(1000, 5, t), 1000);
        assert_eq!(r.due(7, 5, t + Duration::from_secs(1)), None);
        assert_eq!(r.due(7, 6, t + Duration::from_secs(1)), None);
        assert_eq!(r.due(7, 6, t + RAN_EVERY), Some(true));
        assert_eq!(r.due(7, 5, t + IDLE_EVERY), None);
        assert_eq!(
            r.due(7, 5, t + IDLE_EVERY + Duration::from_secs(7)),
            Some(false)
        );
        assert_eq!(r.set(400, 6, t), -600);
    }
}
