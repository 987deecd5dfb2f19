//! Readers never wait for a refresh in progress: with every refresh made slow for real
//! (`--debug.refresh-delay`, a sleep halfway through the refresher's reads), `/healthz`,
//! `/metrics` and `/api/v1/processes` answer in well under the delay, with the figures of the
//! last complete snapshot. Nor does a slow scrape (a mount whose statvfs hangs) hold up
//! `/healthz` or the process list.

use std::{
    thread,
    time::{Duration, Instant},
};

use monitor_tests::*;

const DELAY: Duration = Duration::from_secs(3);

/// The longest a request that finds the figures stale waits for the next snapshot (the
/// README's 500 ms), with room for a noisy machine.
const STALE_READ: Duration = Duration::from_millis(1500);

/// `/healthz` on a busy machine: nothing it does waits for anything.
const HEALTH: Duration = Duration::from_millis(300);

fn timed<T>(f: impl FnOnce() -> T) -> (T, Duration) {
    let t = Instant::now();
    let v = f();
    (v, t.elapsed())
}

fn healthz_is_prompt(d: &Daemon, when: &str) {
    let ((status, body), took) = timed(|| d.get("/healthz"));
    assert_eq!((status, body.as_str()), (200, "ok\n"), "{when}");
    assert!(took < HEALTH, "/healthz took {took:?} {when}");
}

/// The figures of one complete refresh: the kernel and process collectors succeeded in it,
/// and it took the whole delay.
fn assert_complete(m: &Metrics, seq: f64) {
    assert_eq!(m.value("monitor_refreshes_total"), seq, "{}", m.0);
    assert!(m.value("monitor_refresh_duration_seconds") >= DELAY.as_secs_f64());
    for c in ["sched", "block", "bpf"] {
        assert_eq!(
            m.value(&format!("monitor_collector_success{{collector=\"{c}\"}}")),
            1.0,
            "{c}"
        );
    }
    assert!(m.value("monitor_processes") > 0.0);
    // Host collectors are read at the scrape itself.
    assert_eq!(m.value("monitor_collector_success{collector=\"cpu\"}"), 1.0);
}

#[test]
fn readers_do_not_wait_for_a_slow_refresh() {
    let (d, took) = timed(|| {
        Daemon::start(&[
            "--refresh.interval",
            "1h",
            "--debug.refresh-delay",
            &format!("{}s", DELAY.as_secs()),
        ])
    });
    // The first snapshot is read before the daemon serves: no request sees an empty one.
    assert!(took >= DELAY, "answered after {took:?}");

    // Stale (older than 100 ms): this scrape asks for a refresh, waits for it a bounded
    // time, then gets the complete first snapshot.
    let (first, took) = timed(|| d.metrics());
    assert!(took < STALE_READ, "a stale scrape took {took:?}");
    assert_complete(&first, 1.0);
    let list = |d: &Daemon| -> serde_json::Value {
        let (status, body) = d.get("/api/v1/processes");
        assert_eq!(status, 200, "{body}");
        serde_json::from_str(&body).unwrap()
    };
    let (first_list, took) = timed(|| list(&d));
    assert!(took < STALE_READ, "a stale process list took {took:?}");
    let read_at = first_list["read_at_monotonic_seconds"].as_f64().unwrap();
    let me = first_list["processes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["pid"].as_u64() == Some(u64::from(d.pid())))
        .cloned()
        .expect("the daemon lists itself");
    assert!(me["rss_bytes"].as_u64().unwrap() > 0, "{me}");

    // The second refresh is in progress now, asked for by that scrape. Requests during it
    // answer from the first snapshot, side by side: four scrapes at once take one bounded
    // wait, not four, and /healthz answers at once meanwhile.
    let started = Instant::now();
    let scrapes: Vec<_> = (0..4)
        .map(|_| {
            let url = d.url("/metrics");
            thread::spawn(move || timed(|| request("GET", &url)))
        })
        .collect();
    thread::sleep(Duration::from_millis(50));
    healthz_is_prompt(&d, "while four scrapes wait for a refresh in progress");
    for s in scrapes {
        let ((status, body), took) = s.join().unwrap();
        assert_eq!(status, 200, "{body}");
        assert!(
            took < STALE_READ,
            "a scrape during the refresh took {took:?}"
        );
        assert_complete(&Metrics(body), 1.0);
    }
    assert!(
        started.elapsed() < STALE_READ,
        "four scrapes took {:?} in all",
        started.elapsed()
    );
    let during = list(&d);
    assert_eq!(
        during["read_at_monotonic_seconds"].as_f64(),
        Some(read_at),
        "the same complete snapshot"
    );
    healthz_is_prompt(&d, "during a refresh");

    // Once the refresh in progress ends, its figures are served.
    let deadline = Instant::now() + 2 * DELAY;
    loop {
        healthz_is_prompt(&d, "while waiting for the second snapshot");
        let m = d.metrics();
        if m.value("monitor_refreshes_total") >= 2.0 {
            assert_complete(&m, m.value("monitor_refreshes_total"));
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no second snapshot:\n{}",
            d.log()
        );
    }
    let later = list(&d);
    assert!(later["read_at_monotonic_seconds"].as_f64().unwrap() >= read_at + DELAY.as_secs_f64());
}

#[test]
fn a_slow_scrape_holds_up_neither_healthz_nor_the_process_list() {
    let hung = HungMount::new();
    let mp = hung.dir.path().to_str().unwrap().to_string();
    let timeout = Duration::from_secs(3);
    let d = Daemon::start(&[
        "--collector.filesystem.stat-timeout",
        &format!("{}s", timeout.as_secs()),
    ]);
    // Held up by the hung mount's statvfs until the timeout (or by the alert engine's
    // evaluation, which met it first, as long).
    let url = d.url("/metrics");
    let scrape = thread::spawn(move || timed(|| request("GET", &url)));
    thread::sleep(Duration::from_millis(200));
    healthz_is_prompt(&d, "while a scrape waits for a hung statvfs");
    let (list, took) = timed(|| d.processes());
    assert!(took < STALE_READ, "the process list took {took:?}");
    assert!(!list.is_empty());
    healthz_is_prompt(&d, "still");
    let ((status, body), took) = scrape.join().unwrap();
    assert_eq!(status, 200, "{body}");
    assert!(
        took >= Duration::from_secs(1),
        "the scrape was not slow: {took:?}"
    );
    let err = format!("monitor_filesystem_device_error{{device=\"monitor-test-hang\",mountpoint=\"{mp}\",fstype=\"fuse\"}}");
    assert_eq!(Metrics(body).value(&err), 1.0);
}

/// The process list is made only while someone reads it: after refreshes nobody read it in
/// (only the first snapshot has one), a request gets a list the next refresh made for it,
/// within one refresh and the bounded wait.
#[test]
fn the_process_list_is_made_when_asked_for() {
    let d = Daemon::start(&["--refresh.interval", "1s"]);
    // When the daemon started, on the clock of `read_at_monotonic_seconds` (seconds since
    // boot; /proc/<pid>/stat's start time is in clock ticks since boot).
    let stat = std::fs::read_to_string(format!("/proc/{}/stat", d.pid())).unwrap();
    let fields: Vec<&str> = stat.rsplit_once(") ").unwrap().1.split(' ').collect();
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    let started = fields[19].parse::<f64>().unwrap() / hz;
    thread::sleep(Duration::from_secs(4));
    let ((status, body), took) = timed(|| d.get("/api/v1/processes"));
    assert_eq!(status, 200, "{body}");
    assert!(took < Duration::from_secs(3), "the list took {took:?}");
    let list: serde_json::Value = serde_json::from_str(&body).unwrap();
    let read_at = list["read_at_monotonic_seconds"].as_f64().unwrap();
    assert!(
        read_at >= started + 3.0,
        "a list read at {read_at} s, the daemon started at {started} s: not made for this request"
    );
    assert!(list["processes"]
        .as_array()
        .unwrap()
        .iter()
        .any(|p| p["pid"].as_u64() == Some(u64::from(d.pid()))));
}
