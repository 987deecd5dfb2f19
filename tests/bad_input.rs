//! Bad input gets one clear line and a non-zero exit, never a panic; a program that cannot
//! attach takes down only its collector.

use std::{net::TcpListener, process::Command};

use monitor_tests::*;

#[test]
fn unknown_flag() {
    let (code, err) = fails(&[], &["run", "--no-such-flag"]);
    assert_eq!(code, 2);
    assert!(one_line(&err).contains("--no-such-flag"), "{err}");
}

#[test]
fn invalid_listen_address() {
    for addr in ["nonsense", "127.0.0.1:99999", "300.1.1.1:80"] {
        let (code, err) = fails(&[], &["run", "--web.listen-address", addr]);
        assert_eq!(code, 2);
        assert!(one_line(&err).contains("--web.listen-address"), "{err}");
    }
}

#[test]
fn invalid_values() {
    for args in [
        ["--process.group", "nofield"],
        ["--process.group", "x=comm:("],
        ["--refresh.interval", "soon"],
        ["--web.telemetry-path", "metrics"],
        ["--process.max-groups", "0"],
        ["--web.max-connections", "0"],
        ["--web.header-timeout", "0s"],
        ["--web.idle-timeout", "never"],
        ["--web.max-header-bytes", "1KiB"],
        ["--web.max-request-bytes", "lots"],
    ] {
        let mut a = vec!["run"];
        a.extend_from_slice(&args);
        let (code, err) = fails(&[], &a);
        assert_eq!(code, 2);
        assert!(one_line(&err).contains(args[0]), "{err}");
    }
}

#[test]
fn port_in_use() {
    require_root();
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let (code, err) = fails(&[], &["run", "--web.listen-address", &addr]);
    assert_eq!(code, 1);
    let line = one_line(&err);
    assert!(
        line.contains("cannot listen on") && line.contains("in use"),
        "{line}"
    );
}

#[test]
fn a_program_that_cannot_attach_disables_only_its_collector() {
    let d = Daemon::start(&["--debug.fail-attach", "sched_wakeup_new"]);
    let m = d.metrics();
    assert_eq!(
        m.value("monitor_collector_success{collector=\"sched\"}"),
        0.0
    );
    assert_eq!(m.value("monitor_collector_success{collector=\"cpu\"}"), 1.0);
    assert_eq!(m.value("monitor_collector_success{collector=\"bpf\"}"), 1.0);
    assert!(m
        .get("monitor_cpu_seconds_total{cpu=\"0\",mode=\"idle\"}")
        .is_some());
    assert!(m
        .get("monitor_process_cpu_seconds_total{group=\"other\"}")
        .is_none());
    // Nothing of the failed collector stays attached.
    assert!(!m.0.contains("monitor_bpf_hook_info{collector=\"sched\""));
    let log = d.log();
    let errors: Vec<&str> = log.lines().filter(|l| l.contains("ERROR")).collect();
    assert_eq!(errors.len(), 1, "{log}");
    assert!(
        errors[0].contains("sched") && errors[0].contains("sched_wakeup"),
        "{log}"
    );
    // The process list still answers, unmeasured.
    let (status, body) = d.get("/api/v1/processes");
    assert_eq!(status, 200);
    assert!(body.contains("\"measured\":false"), "{body}");
}

#[test]
fn bad_http_requests() {
    let d = Daemon::start(&[]);
    assert_eq!(d.get("/no/such/path").0, 404);
    assert_eq!(request("POST", &d.url("/metrics")).0, 405);
    assert_eq!(request("DELETE", &d.url("/api/v1/processes")).0, 405);
    assert_eq!(d.get("/healthz"), (200, "ok\n".to_string()));
    // Still serving after the bad requests.
    assert_eq!(d.get("/metrics").0, 200);
}

#[test]
fn help_and_version() {
    let out = Command::new(monitor_bin())
        .args(["run", "--help"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "--web.listen-address",
        "--web.telemetry-path",
        "--collector.sched",
        "--no-collector.sched",
        "--collector.cpu",
        "--bpf.stats",
        "--process.group-by",
    ] {
        assert!(help.contains(flag), "--help lacks {flag}");
    }
    let out = Command::new(monitor_bin())
        .arg("--version")
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("monitor "));
}
