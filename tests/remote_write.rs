//! Remote write with real parts: a real Prometheus (Debian's, its remote write receiver on)
//! takes the daemon's samples, is stopped and started again, and every sample of the outage
//! is read back through its API with the values the daemon served on /metrics at the time;
//! a receiver answering 400 is not retried; a full spool drops the oldest; a restarted
//! daemon sends what the last one spooled; bad config is one line naming the field.

use std::{
    path::Path,
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex},
    time::{Duration, Instant, SystemTime},
};

use monitor_tests::*;
use serde_json::Value;

const DEADLINE: Duration = Duration::from_secs(90);

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// A Prometheus that only receives (no scrape configs), on a port of our choosing, with a
/// data directory that outlives a stop, so it can be stopped and started again.
struct Receiver {
    child: Option<Child>,
    port: u16,
    dir: tempfile::TempDir,
}

impl Receiver {
    fn start_on(port: u16) -> Self {
        let mut r = Receiver {
            child: None,
            port,
            dir: tempfile::tempdir().unwrap(),
        };
        std::fs::write(r.dir.path().join("prometheus.yml"), "global: {}\n").unwrap();
        r.start();
        r
    }

    fn start(&mut self) {
        let d = self.dir.path();
        let child = Command::new("prometheus")
            .arg(format!(
                "--config.file={}",
                d.join("prometheus.yml").display()
            ))
            .arg(format!("--storage.tsdb.path={}", d.join("data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{}", self.port))
            .arg("--web.enable-remote-write-receiver")
            .stdout(Stdio::null())
            .stderr(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(d.join("log"))
                    .unwrap(),
            )
            .spawn()
            .expect("prometheus (Debian package prometheus) is installed by cargo xtask test");
        self.child = Some(child);
        let deadline = Instant::now() + DEADLINE;
        while request("GET", &self.url("/-/ready")).0 != 200 {
            assert!(Instant::now() < deadline, "Prometheus never got ready");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// SIGTERM, as a service stop does, and wait until it has exited.
    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            signal(&c, libc::SIGTERM);
            let _ = c.wait();
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// The raw samples (timestamp in ms, value) of the one series matching `selector` in
    /// the last `range_s` seconds.
    fn samples(&self, selector: &str, range_s: u64) -> Vec<(i64, f64)> {
        let q = format!("{selector}[{range_s}s]");
        let r = ureq::post(&self.url("/api/v1/query"))
            .timeout(Duration::from_secs(10))
            .send_form(&[("query", &q)]);
        let Ok(r) = r else { return Vec::new() };
        let v: Value = serde_json::from_str(&r.into_string().unwrap()).unwrap();
        let result = v["data"]["result"].as_array().cloned().unwrap_or_default();
        assert!(result.len() <= 1, "{selector} matches several series: {v}");
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

fn daemon(url: &str, spool: &Path, extra: &[&str]) -> Daemon {
    let mut args = vec![
        "--remote-write.url",
        url,
        "--remote-write.interval",
        "1s",
        "--remote-write.spool-dir",
        spool.to_str().unwrap(),
        "--alert.state-dir",
        spool.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    Daemon::start(&args)
}

fn write_url(port: u16) -> String {
    format!("http://127.0.0.1:{port}/api/v1/write")
}

/// Runs `bin` to completion `n` times (each a start of its group).
fn run(bin: &NamedBinary, n: usize) {
    for _ in 0..n {
        assert!(Command::new(&bin.path).status().unwrap().success());
    }
}

/// The largest gap between consecutive timestamps.
fn largest_gap(ts: &[i64]) -> i64 {
    ts.windows(2).map(|w| w[1] - w[0]).max().unwrap_or(0)
}

#[test]
fn every_sample_of_a_receiver_outage_arrives_after_it() {
    let spool = tempfile::tempdir().unwrap();
    let mut prom = Receiver::start_on(free_port());
    let d = daemon(&write_url(prom.port), spool.path(), &[]);
    let bin = NamedBinary::new("/bin/true", "mtrw");
    let starts = format!("monitor_process_starts_total{{group=\"{}\"}}", bin.name);
    let info = format!(
        "monitor_build_info{{version=\"{}\"}}",
        env!("CARGO_PKG_VERSION")
    );
    run(&bin, 2);

    // What the daemon serves on /metrics, every 200 ms, for the whole test.
    let served: Arc<Mutex<Vec<(i64, Option<f64>)>>> = Arc::default();
    let stop_polling = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let poller = {
        let (served, stop, url) = (served.clone(), stop_polling.clone(), d.url("/metrics"));
        let starts = starts.clone();
        std::thread::spawn(move || {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let before = now_ms();
                let (status, body) = request("GET", &url);
                if status == 200 {
                    let info = body
                        .lines()
                        .find(|l| l.starts_with("monitor_build_info{"))
                        .and_then(|l| l.rsplit_once(' '))
                        .map(|(_, v)| v.to_string());
                    assert_eq!(info.as_deref(), Some("1"), "monitor_build_info");
                    served
                        .lock()
                        .unwrap()
                        .push((before, Metrics(body).get(&starts)));
                }
                std::thread::sleep(Duration::from_millis(200));
            }
        })
    };

    // Samples arrive while Prometheus is up.
    let deadline = Instant::now() + DEADLINE;
    while prom.samples(&starts, 60).iter().all(|s| s.1 != 2.0) {
        assert!(Instant::now() < deadline, "no samples reached Prometheus");
        std::thread::sleep(Duration::from_millis(200));
    }

    prom.stop();
    let down_at = now_ms();
    std::thread::sleep(Duration::from_secs(10));
    run(&bin, 3);
    std::thread::sleep(Duration::from_secs(10));
    run(&bin, 3);
    std::thread::sleep(Duration::from_secs(10));
    let ep = format!("{{endpoint=\"127.0.0.1:{}\"}}", prom.port);
    let m = d.metrics();
    let pending = m.value(&format!("monitor_remote_write_samples_pending{ep}"));
    assert!(pending > 0.0, "samples wait in the spool during the outage");
    let age = m.value(&format!(
        "monitor_remote_write_oldest_pending_sample_age_seconds{ep}"
    ));
    assert!(
        (25.0..40.0).contains(&age),
        "oldest pending sample {age}s old"
    );
    prom.start();
    let up_at = now_ms();

    // Everything sent: a sample stamped after the restart is there, and they go in order.
    let deadline = Instant::now() + DEADLINE;
    loop {
        let s = prom.samples(&info, 120);
        if s.last().is_some_and(|l| l.0 > up_at + 2000) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the spooled samples never arrived"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    stop_polling.store(true, std::sync::atomic::Ordering::Relaxed);
    poller.join().unwrap();

    // Every collection of the outage, one a second: no gap.
    let info_samples = prom.samples(&info, 120);
    let in_outage: Vec<i64> = info_samples
        .iter()
        .map(|s| s.0)
        .filter(|t| (down_at..up_at).contains(t))
        .collect();
    let outage_s = (up_at - down_at) / 1000;
    assert!(
        in_outage.len() as i64 >= outage_s - 1,
        "{} samples in an outage of {outage_s} s",
        in_outage.len()
    );
    let around: Vec<i64> = info_samples
        .iter()
        .map(|s| s.0)
        .filter(|t| (down_at - 3000..up_at + 2000).contains(t))
        .collect();
    assert!(
        largest_gap(&around) < 1600,
        "a gap of {} ms across the outage",
        largest_gap(&around)
    );
    assert!(info_samples.iter().all(|s| s.1 == 1.0));

    // The values are those /metrics served: between the reads just before and after each
    // sample's timestamp, equal where those agree.
    let served = served.lock().unwrap().clone();
    let starts_samples = prom.samples(&starts, 120);
    let same_times: Vec<i64> = starts_samples.iter().map(|s| s.0).collect();
    let info_times: Vec<i64> = info_samples.iter().map(|s| s.0).collect();
    assert!(
        same_times.iter().all(|t| info_times.contains(t)),
        "one timestamp per collection"
    );
    let mut checked = 0;
    for (t, v) in &starts_samples {
        let before = served.iter().rev().find(|s| s.0 + 1000 < *t);
        let after = served.iter().find(|s| s.0 > t + 1000);
        let (Some((_, Some(lo))), Some((_, Some(hi)))) = (before, after) else {
            continue;
        };
        assert!(
            lo <= v && v <= hi,
            "sample at {t}: {v}, /metrics served {lo} then {hi}"
        );
        if lo == hi {
            assert_eq!(v, lo);
            checked += 1;
        }
    }
    assert!(checked >= 25, "only {checked} samples compared exactly");
    let during: std::collections::BTreeSet<u64> = starts_samples
        .iter()
        .filter(|s| (down_at..up_at).contains(&s.0))
        .map(|s| s.1 as u64)
        .collect();
    assert_eq!(
        during.into_iter().collect::<Vec<_>>(),
        [2, 5, 8],
        "the starts of the outage, as they happened"
    );
    let m = d.metrics();
    assert!(m.value(&format!("monitor_remote_write_samples_retried_total{ep}")) > 0.0);
    assert_eq!(
        m.value(&format!("monitor_remote_write_samples_failed_total{ep}")),
        0.0
    );
    assert_eq!(
        m.value(&format!("monitor_remote_write_samples_dropped_total{ep}")),
        0.0
    );
    assert!(m.value(&format!("monitor_remote_write_samples_sent_total{ep}")) > 1000.0);
}
