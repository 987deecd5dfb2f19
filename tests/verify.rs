//! `monitor bpf verify`: each program's instruction count, read from the verifier's
//! statistics, against the kernel's own `verified_insns` (5.16+): for verify's own aya load
//! of each program, and for the daemon's (its `monitor_bpf_program_verified_instructions`),
//! with the audit log off and on, and on the classic fallbacks. Prints the counts.

use std::{collections::BTreeMap, process::Command};

use monitor_tests::*;

/// The classic fallbacks, forced as in the VM check's second run.
const CLASSIC: &[&str] = &[
    "--debug.fail-attach",
    "sched_switch_btf",
    "--debug.fail-attach",
    "sched_wakeup_btf",
    "--debug.fail-attach",
    "sched_wakeup_new_btf",
    "--debug.fail-attach",
    "block_owner_io_start",
    "--debug.fail-attach",
    "net_sock_send",
    "--debug.fail-attach",
    "net_sock_recv",
    "--debug.fail-attach",
    "tcp_state_btf",
    "--debug.fail-attach",
    "tcp_retransmit_btf",
    "--debug.fail-attach",
    "tcp_send_reset_btf",
    "--debug.fail-attach",
    "tcp_receive_reset_btf",
];

fn verify(extra: &[&str]) -> serde_json::Value {
    let out = Command::new(monitor_bin())
        .args(["bpf", "verify", "--output", "json"])
        .args(extra)
        .output()
        .expect("running monitor bpf verify");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "monitor bpf verify {extra:?} failed ({}):\n{stderr}",
        out.status
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "monitor bpf verify {extra:?} printed no JSON ({e}):\n{}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

/// Program name to its report entry.
fn programs(report: &serde_json::Value) -> BTreeMap<String, serde_json::Value> {
    report["programs"]
        .as_array()
        .expect("a programs array")
        .iter()
        .map(|p| (p["program"].as_str().unwrap().to_string(), p.clone()))
        .collect()
}

/// The daemon's `monitor_bpf_program_verified_instructions`, by program.
fn daemon_counts(args: &[&str]) -> BTreeMap<String, u64> {
    let d = Daemon::start(args);
    let m = d.metrics();
    m.0.lines()
        .filter_map(|l| {
            let rest = l.strip_prefix("monitor_bpf_program_verified_instructions{program=\"")?;
            let (name, value) = rest.split_once("\"} ")?;
            Some((name.to_string(), value.parse().ok()?))
        })
        .collect()
}

#[test]
fn counts_agree_with_the_kernel_and_the_daemon() {
    require_root();
    let audit_log = tempfile::NamedTempFile::new().unwrap();
    let audit_path = audit_log.path().to_str().unwrap();
    let mut classic = vec!["--no-collector.filesystem"];
    classic.extend_from_slice(CLASSIC);
    for (verify_args, daemon_args) in [
        (&[][..], vec!["--no-collector.filesystem"]),
        (&["--audit"][..], vec!["--audit.file", audit_path]),
        (&[][..], classic),
    ] {
        let report = verify(verify_args);
        assert_eq!(report["log_level"], 4, "BPF_LOG_STATS refused");
        let progs = programs(&report);
        let mut line = Vec::new();
        for (name, p) in &progs {
            match p["status"].as_str().unwrap() {
                "verified" => {
                    let processed = p["processed"].as_u64().unwrap();
                    assert!(processed > 0, "{name}: {p}");
                    if let Some(k) = p["kernel"].as_u64() {
                        assert_eq!(processed, k, "{name}: log and verified_insns differ");
                    }
                    line.push(format!("{name}={processed}"));
                }
                "absent" | "refused" | "skipped" => {
                    assert!(p["reason"].as_str().is_some_and(|r| !r.is_empty()), "{p}");
                }
                other => panic!("{name}: status {other}: {p}"),
            }
        }
        eprintln!(
            "kernel {} verify {verify_args:?}: {}",
            report["kernel"],
            line.join(" ")
        );
        let daemon = daemon_counts(&daemon_args);
        if daemon.is_empty() {
            eprintln!(
                "this kernel reports no verified_insns (before 5.16): the daemon's counts are \
                 not compared"
            );
            continue;
        }
        for (name, n) in &daemon {
            let p = progs
                .get(name)
                .unwrap_or_else(|| panic!("the daemon loaded {name}, verify does not list it"));
            assert_eq!(
                p["processed"].as_u64(),
                Some(*n),
                "{name}: verify {verify_args:?} and the daemon {daemon_args:?} differ: {p}"
            );
        }
        eprintln!(
            "the daemon {daemon_args:?} loaded {} programs, each with verify's count",
            daemon.len()
        );
    }
}

#[test]
fn without_privileges_it_says_so() {
    require_root();
    let (code, err) = fails(UNPRIVILEGED, &["bpf", "verify"]);
    assert_eq!(code, 1);
    let line = one_line(&err);
    assert!(line.contains("refused") && line.contains("root"), "{line}");
}
