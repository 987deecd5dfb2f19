//! A real Prometheus scrapes the daemon, and promtool accepts its exposition.

use std::{
    io::Write as _,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use monitor_tests::*;

#[test]
fn promtool_accepts_the_exposition() {
    let d = Daemon::start(&["--bpf.stats"]);
    let (status, body) = d.get("/metrics");
    assert_eq!(status, 200);
    let mut promtool = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (Debian package prometheus) is installed by cargo xtask test");
    promtool
        .stdin
        .take()
        .unwrap()
        .write_all(body.as_bytes())
        .unwrap();
    let out = promtool.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // promtool's linter prints problems even when it exits 0 on warnings-only input.
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(said.trim().is_empty(), "promtool complained:\n{said}");
}

#[test]
fn prometheus_scrapes_a_per_process_series() {
    let d = Daemon::start(&[]);
    let bin = NamedBinary::new("/bin/dash", "mtprom");
    let _spinner = spin(&bin, None);
    let prom = Prometheus::start(d.port);
    let q = format!(
        "monitor_process_cpu_seconds_total{{group=\"{}\"}}",
        bin.name
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    let value = loop {
        if let Some(v) = prom.query(&q) {
            if let Some(r) = v["data"]["result"].as_array().and_then(|r| r.first()) {
                break r["value"][1].as_str().unwrap().parse::<f64>().unwrap();
            }
        }
        assert!(Instant::now() < deadline, "Prometheus never returned {q}");
        std::thread::sleep(Duration::from_millis(500));
    };
    assert!(value > 0.0, "{q} = {value}");
    // Prometheus considers the target healthy.
    let up = prom.query("up").unwrap();
    assert_eq!(up["data"]["result"][0]["value"][1], "1", "{up}");
}
