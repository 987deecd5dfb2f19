//! The published figures. One refresher thread owns the daemon's state (`Core`: the kernel
//! maps, the process table, the collectors that read them), refreshes it and publishes an
//! immutable `Snapshot`. Readers (scrapes, the process API, the alert engine, `monitor top`)
//! take the newest snapshot and never wait for a refresh in progress; one that finds it too
//! old asks the refresher for the next and waits for that at most a bounded time.

use std::{
    panic::AssertUnwindSafe,
    sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock},
    time::{Duration, Instant},
};

use monitor_common::sched::RunqHist;
use prometheus::proto::MetricFamily;

use crate::{api::processes::ProcessList, core::Core};

/// What one refresh read, as the refresher published it.
pub struct Snapshot {
    /// Counts the refreshes: 1 for the first snapshot.
    pub seq: u64,
    /// When the refresh that made it began: every figure in it was read after this.
    pub started: Instant,
    /// How long that refresh took, its collectors included.
    pub took: Duration,
    /// The families of the collectors the refresher runs (kernel and process figures) and of
    /// the sources that read the process table, without empty families.
    pub families: Vec<MetricFamily>,
    /// `families` in the text exposition format, encoded by the first scrape that reads this
    /// snapshot, for all of them (`text`).
    pub text: OnceLock<Result<String, String>>,
    /// Whether each of those collectors succeeded, and its time.
    pub outcomes: Vec<Outcome>,
    /// The live processes (with `read_at_monotonic_seconds`, when the kernel counters were
    /// read); `rss_bytes` and `swap_bytes` are not read here (`None`): a reader
    /// of the list reads them (one file per process, too dear for every refresh). Made only
    /// while someone reads it (`Snapshots::with_processes`): on a host of thousands of
    /// processes it is the dearest part of a refresh that nobody might look at.
    pub processes: Option<ProcessList>,
    /// The host run-queue latency histogram, if it is measured.
    pub runq: Option<RunqHist>,
    /// Interface bytes no process accounts for (rx, tx), once known.
    pub unattributed: Option<(u64, u64)>,
}

impl Snapshot {
    /// `families` encoded, once per snapshot however many scrapes read it.
    pub fn text(&self) -> Result<&str, String> {
        self.text
            .get_or_init(|| {
                let mut text = String::new();
                prometheus::TextEncoder::new()
                    .encode_utf8(&self.families, &mut text)
                    .map(|()| text)
                    .map_err(|e| {
                        tracing::error!(error = %e, "encoding metrics");
                        format!("encoding metrics: {e}")
                    })
            })
            .as_deref()
            .map_err(Clone::clone)
    }

    /// Before the first refresh: nothing read, every figure missing.
    fn empty() -> Self {
        Self {
            seq: 0,
            started: Instant::now(),
            took: Duration::ZERO,
            families: Vec::new(),
            text: OnceLock::new(),
            outcomes: Vec::new(),
            processes: None,
            runq: None,
            unattributed: None,
        }
    }
}

/// A collector's result in one refresh or scrape.
#[derive(Clone, Debug)]
pub struct Outcome {
    pub collector: &'static str,
    pub ok: bool,
    pub seconds: f64,
}

/// How fresh a reader wants the figures.
#[derive(Clone, Copy, Debug)]
pub struct Freshness {
    /// A snapshot whose refresh began at most this long before the request is served as is.
    pub max_age: Duration,
    /// Otherwise the reader asks for the next one and waits for it at most this long, then
    /// takes the newest there is.
    pub wait: Duration,
}

/// What a request (a scrape, an API call, an alert evaluation) asks for: figures whose refresh
/// began at most 100 ms before it; if the newest are older, it asks for a refresh and waits
/// for it at most 500 ms.
pub const REQUEST: Freshness = Freshness {
    max_age: Duration::from_millis(100),
    wait: Duration::from_millis(500),
};

/// The newest snapshot and the refresher's doorbell. The lock is held only to swap or clone
/// the pointer and to ring; nobody holds it while reading the kernel or /proc.
pub struct Snapshots {
    state: Mutex<State>,
    /// Rung when a snapshot is published.
    published: Condvar,
    /// Rung when a reader wants a fresher snapshot.
    asked: Condvar,
}

struct State {
    current: Arc<Snapshot>,
    asked: bool,
    /// When the process list was last asked for (the first snapshot has one anyway).
    processes_wanted: Option<Instant>,
}

/// The process list is made for this long after it was last asked for.
const PROCESSES_WANTED_FOR: Duration = Duration::from_secs(60);

/// How long a reader of the process list waits at most for a refresh that makes one.
const PROCESSES_WAIT: Duration = Duration::from_secs(5);

impl Snapshots {
    fn new() -> Self {
        Self {
            state: Mutex::new(State {
                current: Arc::new(Snapshot::empty()),
                asked: false,
                processes_wanted: None,
            }),
            published: Condvar::new(),
            asked: Condvar::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Only a pointer and a flag are behind it: a panic cannot leave them half written.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A snapshot as fresh as `f` asks, or the newest one once `f.wait` has passed.
    pub fn fresh(&self, f: Freshness) -> Arc<Snapshot> {
        self.fresh_where(f, |_| true)
    }

    /// A snapshot as `fresh` gives it, with the process list in it: when nobody read the
    /// list lately the newest has none, and this waits up to `PROCESSES_WAIT` more for a
    /// refresh to make one. Its `processes` is `None` only if no refresh ended in time.
    pub fn with_processes(&self, f: Freshness) -> Arc<Snapshot> {
        self.lock().processes_wanted = Some(Instant::now());
        let s = self.fresh(f);
        if s.processes.is_some() {
            return s;
        }
        let f = Freshness {
            wait: PROCESSES_WAIT,
            ..f
        };
        self.fresh_where(f, |s| s.processes.is_some())
    }

    /// Whether the refresher should make the process list.
    fn processes_wanted(&self) -> bool {
        self.lock()
            .processes_wanted
            .is_some_and(|t| t.elapsed() < PROCESSES_WANTED_FOR)
    }

    /// The newest snapshot if it is newer than the one numbered `seq`; otherwise the next
    /// one published, waited for at most `wait` (then the newest there is). It never asks
    /// for a refresh: a reader on a timer of its own (remote write) takes what the refresher
    /// publishes at its interval and costs no refresh of its own.
    pub fn after(&self, seq: u64, wait: Duration) -> Arc<Snapshot> {
        let deadline = Instant::now() + wait;
        let mut st = self.lock();
        loop {
            let now = Instant::now();
            if st.current.seq > seq || now >= deadline {
                return st.current.clone();
            }
            st = self
                .published
                .wait_timeout(st, deadline - now)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }

    fn fresh_where(&self, f: Freshness, has: impl Fn(&Snapshot) -> bool) -> Arc<Snapshot> {
        let asked_at = Instant::now();
        let deadline = asked_at + f.wait;
        let fresh_enough = |s: &Snapshot| {
            has(s)
                && asked_at
                    .checked_sub(f.max_age)
                    .is_none_or(|oldest| s.started >= oldest)
        };
        let mut st = self.lock();
        loop {
            if fresh_enough(&st.current) {
                return st.current.clone();
            }
            if !st.asked {
                st.asked = true;
                self.asked.notify_one();
            }
            let now = Instant::now();
            if now >= deadline {
                return st.current.clone();
            }
            st = self
                .published
                .wait_timeout(st, deadline - now)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }

    fn publish(&self, s: Snapshot) {
        let new = Arc::new(s);
        let old = {
            let mut st = self.lock();
            let old = std::mem::replace(&mut st.current, new);
            self.published.notify_all();
            old
        };
        // Freed outside the lock (unless a reader still holds it).
        drop(old);
    }

    /// Waits until a reader asks for a snapshot or `until`, whichever is first.
    fn wait_for_turn(&self, until: Instant) {
        let mut st = self.lock();
        while !st.asked {
            let now = Instant::now();
            if now >= until {
                break;
            }
            st = self
                .asked
                .wait_timeout(st, until - now)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
        st.asked = false;
    }
}

/// Reads a first snapshot (so no reader ever sees an empty one), then refreshes on a thread
/// of its own every `interval`, and whenever a reader asks for a fresher snapshot.
/// `delay` is a testing aid: each refresh sleeps that long halfway through.
pub fn start(
    mut core: Core,
    interval: Duration,
    delay: Duration,
) -> anyhow::Result<Arc<Snapshots>> {
    core.set_debug_delay(delay);
    let snapshots = Arc::new(Snapshots::new());
    snapshots.publish(core.read(1, true));
    let shared = snapshots.clone();
    std::thread::Builder::new()
        .name("refresh".into())
        .spawn(move || refresh_loop(core, &shared, interval))
        .map_err(|e| anyhow::anyhow!("starting the refresher: {e}"))?;
    Ok(snapshots)
}

fn refresh_loop(mut core: Core, snapshots: &Snapshots, interval: Duration) {
    let mut seq = 1;
    let mut last = Instant::now();
    loop {
        snapshots.wait_for_turn(last + interval);
        last = Instant::now();
        seq += 1;
        // A panic in one refresh must not end them all: the state is at worst one refresh
        // stale, which beats serving the same snapshot from then on.
        let processes = snapshots.processes_wanted();
        match std::panic::catch_unwind(AssertUnwindSafe(|| core.read(seq, processes))) {
            Ok(s) => snapshots.publish(s),
            Err(_) => tracing::error!("a refresh panicked; the last snapshot is served"),
        }
        // By then start-up is over: the first walk of every process, the first scrapes and
        // samplings of the history have run.
        if seq == RELEASE_AT {
            crate::startup_pages::release();
        }
    }
}

/// The refresh after which the pages only start-up used are handed back.
const RELEASE_AT: u64 = 5;

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seq: u64, started: Instant) -> Snapshot {
        Snapshot {
            seq,
            started,
            ..Snapshot::empty()
        }
    }

    const FRESH: Freshness = Freshness {
        max_age: Duration::from_millis(100),
        wait: Duration::from_millis(500),
    };

    #[test]
    fn a_fresh_snapshot_is_served_as_is() {
        let s = Snapshots::new();
        s.publish(at(1, Instant::now()));
        let t = Instant::now();
        assert_eq!(s.fresh(FRESH).seq, 1);
        assert!(t.elapsed() < Duration::from_millis(50));
        assert!(!s.lock().asked, "nothing to ask for");
    }

    #[test]
    fn a_stale_reader_asks_and_gets_the_next_snapshot() {
        let s = Arc::new(Snapshots::new());
        s.publish(at(1, Instant::now() - Duration::from_secs(1)));
        let refresher = {
            let s = s.clone();
            std::thread::spawn(move || {
                s.wait_for_turn(Instant::now() + Duration::from_secs(10));
                s.publish(at(2, Instant::now()));
            })
        };
        assert_eq!(s.fresh(FRESH).seq, 2);
        refresher.join().unwrap();
    }

    #[test]
    fn a_stale_reader_waits_at_most_the_bound() {
        let s = Snapshots::new();
        s.publish(at(1, Instant::now() - Duration::from_secs(1)));
        let t = Instant::now();
        // Nobody refreshes: the old snapshot, after the wait.
        assert_eq!(s.fresh(FRESH).seq, 1);
        let waited = t.elapsed();
        assert!(waited >= FRESH.wait, "{waited:?}");
        assert!(
            waited < FRESH.wait + Duration::from_millis(400),
            "{waited:?}"
        );
        assert!(s.lock().asked);
    }

    #[test]
    fn a_snapshot_begun_before_the_request_is_not_fresh_at_max_age_zero() {
        let s = Arc::new(Snapshots::new());
        s.publish(at(1, Instant::now()));
        let refresher = {
            let s = s.clone();
            std::thread::spawn(move || {
                s.wait_for_turn(Instant::now() + Duration::from_secs(10));
                s.publish(at(2, Instant::now()));
            })
        };
        let zero = Freshness {
            max_age: Duration::ZERO,
            ..FRESH
        };
        assert_eq!(s.fresh(zero).seq, 2);
        refresher.join().unwrap();
    }

    #[test]
    fn after_takes_a_newer_snapshot_or_waits_for_one_without_asking() {
        let s = Arc::new(Snapshots::new());
        s.publish(at(3, Instant::now() - Duration::from_secs(5)));
        // Old, but newer than the one asked after: served as is.
        assert_eq!(s.after(2, Duration::from_secs(10)).seq, 3);
        let refresher = {
            let s = s.clone();
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(50));
                s.publish(at(4, Instant::now()));
            })
        };
        assert_eq!(s.after(3, Duration::from_secs(10)).seq, 4);
        refresher.join().unwrap();
        // Nothing newer comes: the newest, after the wait.
        assert_eq!(s.after(4, Duration::from_millis(20)).seq, 4);
        assert!(!s.lock().asked, "the refresher was never asked");
    }

    #[test]
    fn the_refresher_runs_at_its_interval_unasked() {
        let s = Snapshots::new();
        let t = Instant::now();
        s.wait_for_turn(t + Duration::from_millis(50));
        assert!(t.elapsed() >= Duration::from_millis(50));
    }
}
