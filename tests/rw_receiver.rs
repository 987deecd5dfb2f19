//! A real Prometheus (Debian's) that only receives remote write (no scrape configs), on a
//! port of our choosing, with a data directory that outlives a stop, so it can be stopped
//! and started again, with or without TLS (a `web.yml` in its directory).

use std::{
    path::Path,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use serde_json::Value;

use crate::{signal, Daemon};

const DEADLINE: Duration = Duration::from_secs(90);

/// Prometheus's line once it serves.
const READY: &str = "Server is ready to receive web requests.";

pub struct Receiver {
    child: Option<Child>,
    pub port: u16,
    pub dir: tempfile::TempDir,
}

impl Receiver {
    pub fn start_on(port: u16) -> Self {
        let mut r = Self::new(port);
        r.start();
        r
    }

    /// Not started yet: a test may put a `web.yml` in `dir` first.
    pub fn new(port: u16) -> Self {
        let r = Receiver {
            child: None,
            port,
            dir: tempfile::tempdir().unwrap(),
        };
        std::fs::write(r.dir.path().join("prometheus.yml"), "global: {}\n").unwrap();
        r
    }

    /// Starts it, serving TLS as `dir/web.yml` says if there is one; returns once it
    /// serves.
    pub fn start(&mut self) {
        let d = self.dir.path();
        let log = d.join("log");
        let ready_before = std::fs::read_to_string(&log)
            .unwrap_or_default()
            .matches(READY)
            .count();
        let mut c = Command::new("prometheus");
        c.arg(format!(
            "--config.file={}",
            d.join("prometheus.yml").display()
        ))
        .arg(format!("--storage.tsdb.path={}", d.join("data").display()))
        .arg(format!("--web.listen-address=127.0.0.1:{}", self.port))
        .arg("--web.enable-remote-write-receiver");
        let web = d.join("web.yml");
        if web.exists() {
            c.arg(format!("--web.config.file={}", web.display()));
        }
        let child = c
            .stdout(Stdio::null())
            .stderr(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&log)
                    .unwrap(),
            )
            .spawn()
            .expect("prometheus (Debian package prometheus) is installed by cargo xtask test");
        self.child = Some(child);
        let deadline = Instant::now() + DEADLINE;
        while std::fs::read_to_string(&log)
            .unwrap_or_default()
            .matches(READY)
            .count()
            <= ready_before
        {
            assert!(
                Instant::now() < deadline,
                "Prometheus never got ready: {}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// SIGTERM, as a service stop does, and wait until it has exited.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            signal(&c, libc::SIGTERM);
            let _ = c.wait();
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// The result of an instant query (plain HTTP only).
    pub fn query(&self, q: &str) -> Vec<Value> {
        let r = ureq::post(&self.url("/api/v1/query"))
            .timeout(Duration::from_secs(10))
            .send_form(&[("query", q)]);
        let Ok(r) = r else { return Vec::new() };
        let v: Value = serde_json::from_str(&r.into_string().unwrap()).unwrap();
        v["data"]["result"].as_array().cloned().unwrap_or_default()
    }

    /// The raw samples (timestamp in ms, value) of the one series matching `selector` in
    /// the last `range_s` seconds (plain HTTP only).
    pub fn samples(&self, selector: &str, range_s: u64) -> Vec<(i64, f64)> {
        let result = self.query(&format!("{selector}[{range_s}s]"));
        assert!(
            result.len() <= 1,
            "{selector} matches several series: {result:?}"
        );
        let Some(series) = result.first() else {
            return Vec::new();
        };
        series["values"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| {
                let t = (p[0].as_f64().unwrap() * 1000.0).round() as i64;
                (t, p[1].as_str().unwrap().parse().unwrap())
            })
            .collect()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// The daemon pushing to the endpoints of `config` every second, its spools and alert state
/// in `dir`.
pub fn pushing(config: &Path, dir: &Path) -> Daemon {
    Daemon::start(&[
        "--remote-write.config",
        config.to_str().unwrap(),
        "--remote-write.interval",
        "1s",
        "--remote-write.spool-dir",
        dir.to_str().unwrap(),
        "--alert.state-dir",
        dir.to_str().unwrap(),
    ])
}
