//! The shipped unit (`monitor/dist/monitor.service`) as systemd judges it: its security
//! exposure (printed, "OK" or better), its syntax, and its system call filter against every
//! call a real run of the daemon makes (traced with strace).

use std::{
    collections::BTreeSet,
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, Instant},
};

use monitor_tests::*;

fn unit() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../monitor/dist/monitor.service")
}

fn analyze(args: &[&str]) -> (bool, String) {
    let out = Command::new("systemd-analyze")
        .args(args)
        .output()
        .expect("running systemd-analyze (Debian package systemd)");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn security_exposure_is_ok_or_better() {
    let path = unit();
    let (_, report) = analyze(&["security", "--offline=yes", path.to_str().unwrap()]);
    println!("{report}");
    let overall = report
        .lines()
        .find(|l| l.contains("Overall exposure level"))
        .unwrap_or_else(|| panic!("no overall exposure in:\n{report}"));
    let mut words = overall.rsplit(':').next().unwrap().split_whitespace();
    let score: f64 = words.next().unwrap().parse().unwrap();
    let label = words.next().unwrap();
    assert!(
        ["PERFECT", "SAFE", "OK"].contains(&label),
        "exposure {score} {label}: {overall}"
    );
}

#[test]
fn verify_accepts_it() {
    // verify also checks that ExecStart's binary exists: point it at this build.
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(unit()).unwrap().replace(
        "/usr/local/bin/monitor",
        monitor_bin().canonicalize().unwrap().to_str().unwrap(),
    );
    let copy = dir.path().join("monitor.service");
    std::fs::write(&copy, text).unwrap();
    let (ok, out) = analyze(&["verify", copy.to_str().unwrap()]);
    println!("{out}");
    assert!(ok, "systemd-analyze verify:\n{out}");
}

/// The unit's `SystemCallFilter=` lines: (allowed, denied), groups expanded by systemd.
fn unit_filter() -> (BTreeSet<String>, BTreeSet<String>) {
    let text = std::fs::read_to_string(unit()).unwrap();
    let (mut allowed, mut denied) = (BTreeSet::new(), BTreeSet::new());
    for v in text
        .lines()
        .filter_map(|l| l.strip_prefix("SystemCallFilter="))
    {
        let (set, list) = match v.strip_prefix('~') {
            Some(rest) => (&mut denied, rest),
            None => (&mut allowed, v),
        };
        for item in list.split_whitespace() {
            set.extend(expand(item));
        }
    }
    (allowed, denied)
}

fn expand(item: &str) -> BTreeSet<String> {
    if !item.starts_with('@') {
        return [item.to_string()].into();
    }
    let (ok, out) = analyze(&["syscall-filter", item]);
    assert!(ok, "systemd-analyze syscall-filter {item}: {out}");
    let mut set = BTreeSet::new();
    for l in out.lines().skip(1).map(str::trim) {
        if l.is_empty() || l.starts_with('#') {
            continue;
        }
        set.extend(expand(l));
    }
    set
}

#[test]
fn its_system_call_filter_allows_every_call_a_run_makes() {
    require_root();
    let (allowed, denied) = unit_filter();
    assert!(allowed.contains("bpf") && allowed.contains("read"));
    let trace = tempfile::NamedTempFile::new().unwrap();
    let log = tempfile::NamedTempFile::new().unwrap();
    let port = free_port();
    let mut strace = Guard(
        Command::new("strace")
            .args(["-f", "-qq", "-c", "-U", "name", "-o"])
            .arg(trace.path())
            .arg(monitor_bin())
            .args(["run", "--web.listen-address", &format!("127.0.0.1:{port}")])
            .stderr(log.reopen().unwrap())
            .spawn()
            .expect("running strace (Debian package strace)"),
    );
    // Every kind of request, and a few refreshes, while traced.
    let deadline = Instant::now() + Duration::from_secs(60);
    while request("GET", &format!("http://127.0.0.1:{port}/healthz")).0 != 200 {
        assert!(
            Instant::now() < deadline,
            "no daemon under strace:\n{}",
            std::fs::read_to_string(log.path()).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    for _ in 0..3 {
        for path in [
            "/metrics",
            "/api/v1/processes",
            "/",
            "/api/v1/query?query=up",
        ] {
            request("GET", &format!("http://127.0.0.1:{port}{path}"));
        }
        std::thread::sleep(Duration::from_millis(1200));
    }
    // SIGTERM to the daemon (strace's child): it shuts down, strace writes its summary.
    let daemon = std::fs::read_to_string(format!("/proc/{}/task/{0}/children", strace.id()))
        .unwrap()
        .trim()
        .parse::<i32>()
        .unwrap();
    // SAFETY: signalling the daemon this test started.
    unsafe { libc::kill(daemon, libc::SIGTERM) };
    strace.0.wait().unwrap();
    let summary = std::fs::read_to_string(trace.path()).unwrap();
    let made: BTreeSet<String> = summary
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("syscall") && !l.starts_with('-'))
        .filter(|l| *l != "total")
        .map(str::to_string)
        .collect();
    assert!(made.contains("bpf"), "{summary}");
    println!("system calls made: {made:?}");
    let refused: Vec<&String> = made
        .iter()
        .filter(|s| !allowed.contains(*s) || denied.contains(*s))
        .collect();
    assert!(
        refused.is_empty(),
        "the unit's SystemCallFilter refuses {refused:?}"
    );
}
