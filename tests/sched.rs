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
        assert_close(
            "run-queue wait vs schedstat",
            p["runqueue_wait_seconds_total"].as_f64().unwrap(),
            truth,
            0.10,
        );
        assert!(
            p["involuntary_switches_total"].as_u64().unwrap() > 10,
            "{p}"
        );
    }
    // The host histogram saw those waits.
    let m = d.metrics();
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
    let live: f64 = d
        .processes()
        .iter()
        .map(|p| p["cpu_seconds_total"].as_f64().unwrap())
        .sum();
    assert!(sum >= live * 0.999, "groups {sum} < live processes {live}");
}

#[test]
fn the_classic_sched_switch_fallback_measures_the_same() {
    // Make the tp_btf hook fail for real, as on a kernel older than 5.18.
    let d = Daemon::start(&["--debug.fail-attach", "sched_switch_btf"]);
    let m = d.metrics();
    assert!(
        m.0.contains("program=\"sched_switch_tp\",hook=\"tracepoint/sched/sched_switch\"} 1"),
        "the classic fallback did not attach:\n{}",
        d.log()
    );
    assert_eq!(
        m.value("monitor_collector_success{collector=\"sched\"}"),
        1.0
    );
    let (_bin, a, b) = two_sharing_one_cpu("mtclassic");
    for c in [&a, &b] {
        let p = d.process(c.id());
        let (on_cpu, waited) = proc_schedstat(c.id());
        assert_close(
            "classic: CPU vs schedstat",
            p["cpu_seconds_total"].as_f64().unwrap(),
            on_cpu,
            0.05,
        );
        assert_close(
            "classic: run-queue wait vs schedstat",
            p["runqueue_wait_seconds_total"].as_f64().unwrap(),
            waited,
            0.10,
        );
        assert!(
            p["involuntary_switches_total"].as_u64().unwrap() > 10,
            "{p}"
        );
    }
}
