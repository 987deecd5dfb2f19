//! The daemon needs privileges for BPF, and no more than the capabilities the shipped
//! systemd unit (`monitor/dist/monitor.service`) grants.

use std::process::Command;

use monitor_tests::*;

const UNIT_CAPS: &str = "bpf,+perfmon,+dac_read_search,+sys_ptrace";

#[test]
fn without_privileges_it_says_so_and_exits() {
    require_root();
    let addr = format!("127.0.0.1:{}", free_port());
    let (code, err) = fails(UNPRIVILEGED, &["run", "--web.listen-address", &addr]);
    assert_eq!(code, 1);
    let line = one_line(&err);
    assert!(line.contains("refused") && line.contains("root"), "{line}");
}

#[test]
fn the_units_capabilities_suffice() {
    require_root();
    // The unit relies on tracefs being mounted (systemd does it); mounting needs more.
    assert!(
        std::path::Path::new("/sys/kernel/tracing/events").is_dir() || {
            let ok = Command::new("mount")
                .args(["-t", "tracefs", "nodev", "/sys/kernel/tracing"])
                .status()
                .is_ok_and(|s| s.success());
            ok
        }
    );
    let port = free_port();
    let caps = format!("+{UNIT_CAPS}");
    let log = tempfile::NamedTempFile::new().unwrap();
    let child = Guard(
        Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(format!("--inh-caps={caps}"))
            .arg(format!("--ambient-caps={caps}"))
            .arg(monitor_bin())
            .args(["run", "--web.listen-address", &format!("127.0.0.1:{port}")])
            .stderr(log.reopen().unwrap())
            .spawn()
            .unwrap(),
    );
    let url = format!("http://127.0.0.1:{port}/metrics");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let body = loop {
        let (status, body) = request("GET", &url);
        if status == 200 {
            break body;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no metrics as nobody with {caps}:\n{}",
            std::fs::read_to_string(log.path()).unwrap_or_default()
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    let m = Metrics(body);
    for c in ["cpu", "sched", "bpf"] {
        assert_eq!(
            m.value(&format!("monitor_collector_success{{collector=\"{c}\"}}")),
            1.0,
            "{c} failed as nobody with {caps}"
        );
    }
    // Other users' processes are still identified (dac_read_search, sys_ptrace).
    let (_, body) = request("GET", &format!("http://127.0.0.1:{port}/api/v1/processes"));
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    let me = v["processes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["pid"].as_u64() == Some(u64::from(std::process::id())))
        .expect("this (root) test process is listed")
        .clone();
    assert!(me["exe"].as_str().is_some_and(|e| !e.is_empty()), "{me}");
    // Attached, it gave up what loading needed (CAP_PERFMON; CAP_BPF too where map reads
    // need none) and kept what reading /proc needs.
    let status = std::fs::read_to_string(format!("/proc/{}/status", child.id())).unwrap();
    let eff = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .map(|v| u64::from_str_radix(v.trim(), 16).unwrap())
        .unwrap();
    let (dac_read_search, sys_ptrace, perfmon) = (1u64 << 2, 1u64 << 19, 1u64 << 38);
    assert_eq!(
        eff & (dac_read_search | sys_ptrace),
        dac_read_search | sys_ptrace,
        "{eff:x}"
    );
    assert_eq!(eff & perfmon, 0, "CAP_PERFMON kept: {eff:x}");
    drop(child);
}
