//! The scheduler collector against the kernel's own accounting.

use std::{
    process::Command,
    time::{Duration, Instant},
};

use monitor_tests::*;

/// How long workloads run: long enough that tick-based figures (utime, stime) are precise to
/// well under a percent.
const RUN: Duration = Duration::from_secs(3);

/// Lets the daemon's periodic refresh (1 s) and a request-time refresh see final figures.
fn settle() {
    std::thread::sleep(Duration::from_millis(300));
}

#[test]
fn process_cpu_matches_proc_stat() {
    let d = Daemon::start(&[]);
    let bin = NamedBinary::new("/bin/dash", "mtcpu");
    let child = spin(&bin, None);
    let pid = child.id();
    std::thread::sleep(RUN);
    stop_all(&[&child]);
    settle();
    let p = d.process(pid);
    let ours = p["cpu_seconds_total"].as_f64().unwrap();
    assert_eq!(p["group"], bin.name.as_str());
    assert_eq!(p["comm"], bin.name.as_str());
    assert_close("CPU vs utime+stime", ours, proc_cpu_seconds(pid), 0.05);
    assert_close("CPU vs schedstat on-CPU", ours, proc_schedstat(pid).0, 0.02);
    // The group's series carries the same time.
    let m = d.metrics();
    let group = m.value(&format!(
        "monitor_process_cpu_seconds_total{{group=\"{}\"}}",
        bin.name
    ));
    assert_close("group CPU vs process CPU", group, ours, 0.01);
    // Nothing was dropped, and the programs say so by reason.
    for program in ["sched_switch", "sched_wakeup"] {
        assert_eq!(
            m.value(&format!(
                "monitor_bpf_misses_total{{program=\"{program}\",reason=\"map_full\"}}"
            )),
            0.0
        );
    }
}

/// CLOCK_MONOTONIC in seconds: the clock of the API's `read_at_monotonic_seconds`.
fn monotonic() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid timespec for the duration of the call.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as f64 + ts.tv_nsec as f64 / 1e9
}

/// A lone CPU-bound process on an otherwise quiet CPU can run for seconds without a context
/// switch; its CPU time must still be right at every read, not only once it is switched
/// out. Read every second for 8 s, as `monitor top` does: each 1 s rate from the API within
/// 5 points of `/proc/<pid>/stat`'s over the same second, never above 100 %; the group's
/// series the same over the whole run (its exposition carries no read time, so its 1 s
/// windows are only as exact as the 100 ms a request may reuse a refresh).
///
/// "The same second" is the API's own: its `read_at_monotonic_seconds` says when the
/// counters were read, and `/proc/<pid>/stat` is sampled every few milliseconds meanwhile, so
/// the truth is taken at those instants, not whenever the test got to read it (on a busy
/// machine the two drift apart by tens of milliseconds, several points of a 1 s rate).
#[test]
fn live_cpu_of_a_lone_spinner_is_right_every_second() {
    let d = Daemon::start(&[]);
    let bin = NamedBinary::new("/bin/dash", "mtlive");
    let child = spin(&bin, None);
    let pid = child.id();
    let series = format!(
        "monitor_process_cpu_seconds_total{{group=\"{}\"}}",
        bin.name
    );
    let truth = Sampler::start(pid);
    d.process(pid);
    let read = || {
        let (status, body) = d.get("/api/v1/processes");
        assert_eq!(status, 200, "{body}");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        let p = v["processes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["pid"].as_u64() == Some(u64::from(pid)))
            .cloned()
            .unwrap_or_else(|| panic!("pid {pid} not listed"));
        let ours = (
            p["cpu_seconds_total"].as_f64().unwrap(),
            v["read_at_monotonic_seconds"].as_f64().unwrap(),
        );
        let group = d.metrics().value(&series);
        (ours, group)
    };
    let mut reads = vec![read()];
    for _ in 0..8 {
        std::thread::sleep(Duration::from_secs(1));
        reads.push(read());
    }
    let truth = truth.stop();
    let mut worst: f64 = 0.0;
    for (i, w) in reads.windows(2).enumerate() {
        let ((c0, t0), g0) = w[0];
        let ((c1, t1), g1) = w[1];
        let ours = 100.0 * (c1 - c0) / (t1 - t0);
        let proc = 100.0 * (truth.at(t1) - truth.at(t0)) / (t1 - t0);
        eprintln!("second {i}: ours {ours:.1} %, /proc/{pid}/stat {proc:.1} %");
        assert!(
            (ours - proc).abs() <= 5.0,
            "second {i}: the API read {ours:.1} % CPU, /proc/{pid}/stat {proc:.1} %"
        );
        assert!(ours <= 101.0, "second {i}: a single thread at {ours:.1} %");
        assert!(g1 >= g0, "the group's CPU went back: {g0} -> {g1}");
        worst = worst.max((ours - proc).abs());
    }
    eprintln!("worst 1 s difference: {worst:.1} points");
    let ((_, first_at), first_group) = reads[0];
    let ((_, last_at), last_group) = reads[reads.len() - 1];
    let seconds = last_at - first_at;
    let group = 100.0 * (last_group - first_group) / seconds;
    let proc = 100.0 * (truth.at(last_at) - truth.at(first_at)) / seconds;
    assert!(
        (group - proc).abs() <= 5.0,
        "over {seconds:.1} s the group series read {group:.1} %, /proc {proc:.1} %"
    );
}

/// `/proc/<pid>/stat`'s CPU seconds, sampled with the monotonic clock every 2 ms on a thread
/// of its own, so the truth can be read at any instant in between.
struct Sampler {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: std::thread::JoinHandle<Vec<(f64, f64)>>,
}

struct Samples(Vec<(f64, f64)>);

impl Sampler {
    fn start(pid: u32) -> Self {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut samples = Vec::new();
            while !flag.load(std::sync::atomic::Ordering::Relaxed) {
                let before = monotonic();
                let v = proc_cpu_seconds(pid);
                let after = monotonic();
                // A sample the thread was preempted in the middle of has no clear instant.
                if after - before < 0.001 {
                    samples.push(((before + after) / 2.0, v));
                }
                std::thread::sleep(Duration::from_millis(2));
            }
            samples
        });
        Self { stop, thread }
    }

    fn stop(self) -> Samples {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        Samples(self.thread.join().unwrap())
    }
}

impl Samples {
    /// The CPU seconds at `t`, interpolated between the samples on either side.
    fn at(&self, t: f64) -> f64 {
        let s = &self.0;
        let i = s.partition_point(|&(at, _)| at < t);
        assert!(
            i > 0 && i < s.len(),
            "no /proc sample on both sides of {t} ({} samples)",
            s.len()
        );
        let ((t0, v0), (t1, v1)) = (s[i - 1], s[i]);
        assert!(t1 - t0 < 0.1, "no /proc sample within 100 ms of {t}");
        v0 + (v1 - v0) * (t - t0) / (t1 - t0)
    }
}

/// Two CPU-bound children pinned to one CPU, run for `RUN` (each waits about half the time)
/// then stopped, with the daemon's figures settled.
fn two_sharing_one_cpu(name: &str) -> (NamedBinary, Guard, Guard) {
    let bin = NamedBinary::new("/bin/dash", name);
    let a = spin(&bin, Some(1));
    let b = spin(&bin, Some(1));
    std::thread::sleep(RUN);
    stop_all(&[&a, &b]);
    settle();
    (bin, a, b)
}

#[test]
fn runqueue_wait_matches_schedstat() {
    let d = Daemon::start(&[]);
    let (_bin, a, b) = two_sharing_one_cpu("mtrq");
    for c in [&a, &b] {
        let p = d.process(c.id());
        let (_, truth) = proc_schedstat(c.id());
        assert!(
            truth > 0.5,
            "the children barely waited ({truth}s): were they pinned?"
        );
        // The kernel's own figure, charged at each switch: as exact as the CPU time.
        assert_close(
            "run-queue wait vs schedstat",
            p["runqueue_wait_seconds_total"].as_f64().unwrap(),
            truth,
            0.02,
        );
        assert!(
            p["involuntary_switches_total"].as_u64().unwrap() > 10,
            "{p}"
        );
    }
    // The host histogram saw those waits.
    let m = d.metrics();
    // With the kernel's run delay known, nothing runs at each wakeup.
    assert!(
        !m.0.contains("measure=\"runqueue_wakeup\""),
        "a wakeup program attached although the switch charges the kernel's wait"
    );
    assert!(m.value("monitor_runqueue_latency_seconds_count") > 10.0);
    assert!(m.value("monitor_runqueue_latency_seconds_sum") > 0.5);
}

#[test]
fn voluntary_switches_are_counted() {
    let d = Daemon::start(&[]);
    let bin = NamedBinary::new("/bin/dash", "mtsleep");
    // 20 sleeps: at least 20 voluntary switches.
    let child = Guard(
        Command::new(&bin.path)
            .args(["-c", "for i in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20; do sleep 0.01; done; kill -STOP $$"])
            .spawn()
            .unwrap(),
    );
    wait_stopped(child.id());
    settle();
    let p = d.process(child.id());
    assert!(p["voluntary_switches_total"].as_u64().unwrap() >= 20, "{p}");
}

/// Runs `n` processes of `bin` to completion, returning their summed CPU from wait4's
/// rusage (the kernel's own accounting of each child).
fn run_to_completion(bin: &NamedBinary, args: &[&str], n: usize) -> f64 {
    let mut total = 0.0;
    for _ in 0..n {
        #[expect(
            clippy::zombie_processes,
            reason = "reaped by wait4 below, for its rusage"
        )]
        let child = Command::new(&bin.path).args(args).spawn().unwrap();
        let mut status = 0;
        // SAFETY: an all-zero rusage is valid; wait4 fills it in.
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        // SAFETY: valid pointers to locals; reaping our own child.
        let r = unsafe { libc::wait4(child.id() as i32, &mut status, 0, &mut usage) };
        assert_eq!(r, child.id() as i32);
        let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
        total += tv(usage.ru_utime) + tv(usage.ru_stime);
    }
    total
}

#[test]
fn exec_and_exit_counts_match_spawned_processes() {
    let d = Daemon::start(&[]);
    let bin = NamedBinary::new("/bin/true", "mtexec");
    const N: usize = 50;
    run_to_completion(&bin, &[], N);
    settle();
    let m = d.metrics();
    assert_eq!(
        m.value(&format!(
            "monitor_process_starts_total{{group=\"{}\"}}",
            bin.name
        )),
        N as f64
    );
    assert_eq!(
        m.value(&format!(
            "monitor_process_exits_total{{group=\"{}\"}}",
            bin.name
        )),
        N as f64
    );
    assert_eq!(m.value("monitor_process_exit_events_missed_total"), 0.0);
}

#[test]
fn exited_threads_leave_no_run_queue_entry() {
    let d = Daemon::start(&[]);
    let entries = || {
        d.metrics()
            .value("monitor_bpf_map_entries{map=\"RUNQ_START\"}")
    };
    // The count is taken every 10 s (`COUNT_EVERY`): one before, one after the processes.
    std::thread::sleep(Duration::from_secs(11));
    let before = entries();
    let bin = NamedBinary::new("/bin/true", "mtleak");
    const N: usize = 1000;
    run_to_completion(&bin, &[], N);
    std::thread::sleep(Duration::from_secs(11));
    let after = entries();
    // Each thread's entry goes at its last switch-out: 1,000 exits leave none behind. The
    // margin is for threads of the rest of the machine that first ran meanwhile (an entry
    // is made at a thread's first switch-out after the programs attached).
    assert!(
        after < before + (N / 5) as f64,
        "RUNQ_START grew from {before} to {after} entries over {N} exits"
    );
}

#[test]
fn a_process_that_lives_between_two_reads_still_counts() {
    // A long refresh interval so no periodic read falls inside the process's life.
    let d = Daemon::start(&["--refresh.interval", "1h"]);
    let bin = NamedBinary::new("/bin/dash", "mtshort");
    let series = format!(
        "monitor_process_cpu_seconds_total{{group=\"{}\"}}",
        bin.name
    );
    assert_eq!(d.metrics().get(&series), None);
    let start = Instant::now();
    let truth = run_to_completion(
        &bin,
        &["-c", "i=0; while [ $i -lt 300000 ]; do i=$((i+1)); done"],
        1,
    );
    eprintln!("short-lived process ran {:?}", start.elapsed());
    let m = d.metrics();
    assert_close(
        "short-lived process CPU vs rusage",
        m.value(&series),
        truth,
        0.05,
    );
    assert_eq!(
        m.value(&format!(
            "monitor_process_exits_total{{group=\"{}\"}}",
            bin.name
        )),
        1.0
    );
    // Nothing of it is left live, and the counter holds on the next read.
    assert!(d
        .processes()
        .iter()
        .all(|p| p["comm"].as_str() != Some(bin.name.as_str())));
    settle();
    assert_eq!(d.metrics().value(&series), m.value(&series));
}

#[test]
fn series_budget_folds_the_rest_into_other_and_totals_add_up() {
    let d = Daemon::start(&["--process.max-groups", "3"]);
    let bin = NamedBinary::new("/bin/dash", "mtbudget");
    let child = spin(&bin, None);
    std::thread::sleep(Duration::from_secs(1));
    stop_all(&[&child]);
    settle();
    // The process list first: the scrape after it reads the same refresh or a later one (the
    // list is made for the request that asks for it), so its groups hold at least as much.
    let procs = d.processes();
    let m = d.metrics();
    let rows: Vec<(String, f64)> =
        m.0.lines()
            .filter(|l| l.starts_with("monitor_process_cpu_seconds_total{"))
            .map(|l| {
                let (s, v) = l.rsplit_once(' ').unwrap();
                (s.to_string(), v.parse().unwrap())
            })
            .collect();
    assert_eq!(rows.len(), 4, "3 kept groups and other: {rows:?}");
    assert!(rows.iter().any(|(s, _)| s.contains("group=\"other\"")));
    assert!(m.value("monitor_process_groups{state=\"folded\"}") >= 1.0);
    // The busiest group is kept.
    assert!(rows.iter().any(|(s, _)| s.contains(&bin.name)), "{rows:?}");
    // The sum over groups equals the sum over processes plus what exited.
    let sum: f64 = rows.iter().map(|r| r.1).sum();
    let live: f64 = procs
        .iter()
        .map(|p| p["cpu_seconds_total"].as_f64().unwrap())
        .sum();
    assert!(sum >= live * 0.999, "groups {sum} < live processes {live}");
}

#[test]
fn the_classic_sched_switch_fallback_measures_the_same() {
    // Make the tp_btf hooks fail for real: the switch as on a kernel older than 5.18. The
    // BTF offsets are still known there: the classic switch reads the kernel's runtime and
    // run delay by probe reads, and no wakeup program is needed.
    classic_switch_measures_the_same(
        &[
            "--debug.fail-attach",
            "sched_switch_btf",
            "--debug.fail-attach",
            "sched_wakeup_new_btf",
        ],
        &[
            ("sched_switch_tp", "tracepoint/sched/sched_switch"),
            ("sched_wakeup_new", "tracepoint/sched/sched_wakeup_new"),
        ],
        false,
        0.05,
        "mtclassic",
    );
}

#[test]
fn without_btf_the_wakeups_time_the_wait() {
    // A kernel built without BTF: no tp_btf hook and no offsets, so the classic switch
    // charges the clock between switches and the classic wakeups time the wait. The clock
    // also runs through steal and interrupt time, which schedstat leaves out: a wider margin.
    classic_switch_measures_the_same(
        // The bpf collector reports the hooks.
        &[
            "--debug.no-btf",
            "--collector.disable-defaults",
            "--collector.sched",
            "--collector.bpf",
        ],
        &[
            ("sched_switch_tp", "tracepoint/sched/sched_switch"),
            ("sched_wakeup", "tracepoint/sched/sched_wakeup"),
            ("sched_wakeup_new", "tracepoint/sched/sched_wakeup_new"),
        ],
        true,
        0.10,
        "mtnobtf",
    );
}

/// The daemon started with `args` attaches `programs` (each on its hook), a wakeup program
/// exactly when `wakeups`, and measures two children sharing one CPU within `margin` of
/// schedstat.
fn classic_switch_measures_the_same(
    args: &[&str],
    programs: &[(&str, &str)],
    wakeups: bool,
    margin: f64,
    name: &str,
) {
    let d = Daemon::start(args);
    let m = d.metrics();
    for (program, hook) in programs {
        assert!(
            m.0.contains(&format!("program=\"{program}\",hook=\"{hook}\"}} 1")),
            "the classic fallback {program} did not attach:\n{}",
            d.log()
        );
    }
    assert_eq!(
        m.0.contains("measure=\"runqueue_wakeup\""),
        wakeups,
        "a wakeup program attached: {}",
        !wakeups
    );
    assert_eq!(
        m.value("monitor_collector_success{collector=\"sched\"}"),
        1.0
    );
    let (_bin, a, b) = two_sharing_one_cpu(name);
    for c in [&a, &b] {
        let p = d.process(c.id());
        let (on_cpu, waited) = proc_schedstat(c.id());
        assert_close(
            "classic: CPU vs schedstat",
            p["cpu_seconds_total"].as_f64().unwrap(),
            on_cpu,
            margin,
        );
        assert_close(
            "classic: run-queue wait vs schedstat",
            p["runqueue_wait_seconds_total"].as_f64().unwrap(),
            waited,
            margin.max(0.10),
        );
        assert!(
            p["involuntary_switches_total"].as_u64().unwrap() > 10,
            "{p}"
        );
    }
}
