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

/// A Prometheus server on loopback, stopped when dropped.
struct Prometheus {
    child: std::process::Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Prometheus {
    fn start(target_port: u16) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n\
                 scrape_configs:\n  - job_name: monitor\n    static_configs:\n      \
                 - targets: ['127.0.0.1:{target_port}']\n"
            ),
        )
        .unwrap();
        let port = free_port();
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.path().join("log")).unwrap())
            .spawn()
            .expect("prometheus (Debian package prometheus) is installed by cargo xtask test");
        Prometheus {
            child,
            port,
            _dir: dir,
        }
    }

    fn query(&self, q: &str) -> Option<serde_json::Value> {
        let url = format!(
            "http://127.0.0.1:{}/api/v1/query?query={}",
            self.port,
            q.replace('{', "%7B")
                .replace('}', "%7D")
                .replace('"', "%22")
                .replace('=', "%3D")
        );
        let (status, body) = request("GET", &url);
        (status == 200).then(|| serde_json::from_str(&body).ok())?
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
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
