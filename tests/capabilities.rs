//! `--capabilities.keep`: after attach the daemon holds only what it was told to keep, in
//! every thread, as the kernel reports it in `/proc/<pid>/task/*/status`, and its figures
//! still flow (from the kernel maps, and for another user's process from `/proc`).

use std::process::Command;

use monitor_tests::*;

const CAP_DAC_READ_SEARCH: u32 = 2;
const CAP_SYS_PTRACE: u32 = 19;
const CAP_BPF: u32 = 39;

/// The kernel's view of one capability set of every thread of `pid`: (thread name, mask).
fn thread_caps(pid: u32, field: &str) -> Vec<(String, u64)> {
    let mut out = Vec::new();
    for t in std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .flatten()
    {
        let status = std::fs::read_to_string(t.path().join("status")).unwrap();
        let comm = std::fs::read_to_string(t.path().join("comm")).unwrap();
        let mask = status
            .lines()
            .find_map(|l| l.strip_prefix(field))
            .map(|v| u64::from_str_radix(v.trim(), 16).unwrap())
            .unwrap_or_else(|| panic!("no {field} in {}", t.path().display()));
        out.push((comm.trim().to_string(), mask));
    }
    assert!(!out.is_empty());
    out
}

/// The main thread holds exactly `want`, every other thread at most that (one that needs
/// none, such as the kernel-log reader, may have dropped everything).
fn assert_all_threads(pid: u32, field: &str, want: u64) {
    let main = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let mine = status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .map(|v| u64::from_str_radix(v.trim(), 16).unwrap());
    assert_eq!(mine, Some(want), "main thread {}: {field}", main.trim());
    for (thread, mask) in thread_caps(pid, field) {
        assert_eq!(
            mask & !want,
            0,
            "thread {thread:?} of the daemon: {field} {mask:016x}, expected at most {want:016x}"
        );
    }
}

/// Whether this kernel checks a capability on every bpf(2) call: before 6.5 it did while
/// `kernel.unprivileged_bpf_disabled` is set (judged from the release, not the daemon).
fn bpf_checked_on_every_call() -> bool {
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap();
    let mut parts = release.trim().split(['.', '-']);
    let major: u32 = parts.next().unwrap().parse().unwrap();
    let minor: u32 = parts.next().unwrap().parse().unwrap();
    let disabled = std::fs::read_to_string("/proc/sys/kernel/unprivileged_bpf_disabled")
        .map(|s| s.trim() != "0")
        .unwrap_or(true);
    (major, minor) < (6, 5) && disabled
}

/// A CPU-bound process of user nobody: reading its `exe` takes CAP_SYS_PTRACE.
fn spin_as_nobody(bin: &NamedBinary) -> Guard {
    Guard(
        Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(&bin.path)
            .args(["-c", "while :; do :; done"])
            .spawn()
            .unwrap(),
    )
}

#[test]
fn by_default_it_keeps_what_reading_proc_needs() {
    let d = Daemon::start(&[]);
    let mut want = (1u64 << CAP_DAC_READ_SEARCH) | (1 << CAP_SYS_PTRACE);
    if bpf_checked_on_every_call() {
        want |= 1 << CAP_BPF;
    }
    assert_all_threads(d.pid(), "CapEff:", want);
    assert_all_threads(d.pid(), "CapPrm:", want);
    assert_all_threads(d.pid(), "CapInh:", 0);
    assert_all_threads(d.pid(), "CapAmb:", 0);
    // As root it holds CAP_SETPCAP until the drop, so the bounding set shrinks too: a program
    // it runs cannot regain the rest.
    assert_all_threads(d.pid(), "CapBnd:", want);
    let log = d.log();
    assert!(
        log.contains("capabilities dropped after attach")
            && log.contains("cap_dac_read_search,cap_sys_ptrace"),
        "{log}"
    );
    assert!(!log.contains("a thread kept capabilities"), "{log}");

    // Started after the drop: its CPU time comes from the kernel maps, its exe from /proc.
    let bin = NamedBinary::new("/bin/dash", "mtcapd");
    let child = spin_as_nobody(&bin);
    let pid = child.id();
    std::thread::sleep(std::time::Duration::from_secs(2));
    stop_all(&[&child]);
    std::thread::sleep(std::time::Duration::from_millis(300));
    let p = d.process(pid);
    assert_eq!(p["uid"], 65534, "{p}");
    assert_eq!(p["exe"], bin.path.to_str().unwrap(), "{p}");
    assert_close(
        "CPU vs utime+stime",
        p["cpu_seconds_total"].as_f64().unwrap(),
        proc_cpu_seconds(pid),
        0.05,
    );
    let m = d.metrics();
    for c in ["cpu", "sched", "bpf"] {
        assert_eq!(
            m.value(&format!("monitor_collector_success{{collector=\"{c}\"}}")),
            1.0,
            "{c} failed after the drop"
        );
    }
}

#[test]
fn keep_none_drops_everything_and_the_maps_still_read() {
    if bpf_checked_on_every_call() {
        // Without CAP_BPF such a kernel refuses every map read; nothing to check here.
        eprintln!("skipped: this kernel checks CAP_BPF on every bpf(2) call");
        return;
    }
    let d = Daemon::start(&["--capabilities.keep=none"]);
    for field in ["CapEff:", "CapPrm:", "CapInh:", "CapAmb:", "CapBnd:"] {
        assert_all_threads(d.pid(), field, 0);
    }
    assert!(d.log().contains("kept=none"), "{}", d.log());
    let bin = NamedBinary::new("/bin/dash", "mtcapn");
    let child = spin_as_nobody(&bin);
    let pid = child.id();
    std::thread::sleep(std::time::Duration::from_secs(2));
    stop_all(&[&child]);
    std::thread::sleep(std::time::Duration::from_millis(300));
    let p = d.process(pid);
    // The kernel maps need no capability once open...
    assert_close(
        "CPU vs utime+stime",
        p["cpu_seconds_total"].as_f64().unwrap(),
        proc_cpu_seconds(pid),
        0.05,
    );
    // ...but another user's exe link does (the ptrace access check).
    let exe = std::fs::read_link(format!("/proc/{pid}/exe")).unwrap();
    assert_eq!(exe, bin.path, "the test itself reads it as root");
    assert_ne!(p["exe"], bin.path.to_str().unwrap(), "{p}");
}

#[test]
fn keep_all_drops_nothing() {
    let d = Daemon::start(&["--capabilities.keep=all"]);
    let status = |pid: u32| std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let field = |s: &str, f: &str| s.lines().find(|l| l.starts_with(f)).unwrap().to_string();
    // The main thread (the kernel-log thread gives up its own, needing none).
    let (mine, its) = (status(std::process::id()), status(d.pid()));
    for f in ["CapPrm:", "CapBnd:"] {
        assert_eq!(field(&mine, f), field(&its, f));
    }
}

#[test]
fn an_unknown_capability_is_one_error_line() {
    require_root();
    let (code, err) = fails(
        &[],
        &["run", "--capabilities.keep=cap_sys_ptrace,cap_bogus"],
    );
    assert_eq!(code, 2);
    let line = one_line(&err);
    assert!(
        line.contains("--capabilities.keep") && line.contains("cap_bogus"),
        "{line}"
    );
}
