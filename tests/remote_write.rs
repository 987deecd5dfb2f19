//! Remote write with real parts: a real Prometheus (Debian's, its remote write receiver on)
//! takes the daemon's samples, is stopped and started again, and every sample of the outage
//! is read back through its API with the values the daemon served on /metrics at the time;
//! a receiver answering 400 is not retried; a full spool drops the oldest; a restarted
//! daemon sends what the last one spooled; bad config is one line naming the field.

use std::{
    path::Path,
    process::Command,
    sync::{Arc, Mutex},
    time::{Duration, Instant, SystemTime},
};

use monitor_tests::{rw_receiver::Receiver, *};

const DEADLINE: Duration = Duration::from_secs(90);

/// A read of /metrics: when it was asked for (ms), and the group's starts it served.
type Served = (i64, Option<f64>);

/// A request's headers (lower-case names), and `body-bytes`.
type Head = Vec<(String, String)>;

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
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
    let served: Arc<Mutex<Vec<Served>>> = Arc::default();
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

/// A receiver answering every request with `status`, recording each request's headers.
struct Refuser {
    port: u16,
    server: Arc<tiny_http::Server>,
    heads: Arc<Mutex<Vec<Head>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Refuser {
    fn start(status: u16) -> Self {
        let server = Arc::new(tiny_http::Server::http("127.0.0.1:0").unwrap());
        let port = server.server_addr().to_ip().unwrap().port();
        let heads: Arc<Mutex<Vec<Head>>> = Arc::default();
        let thread = {
            let (server, heads) = (server.clone(), heads.clone());
            std::thread::spawn(move || {
                for mut rq in server.incoming_requests() {
                    let mut body = Vec::new();
                    let _ = rq.as_reader().read_to_end(&mut body);
                    let mut h: Vec<(String, String)> = rq
                        .headers()
                        .iter()
                        .map(|h| {
                            (
                                h.field.to_string().to_ascii_lowercase(),
                                h.value.to_string(),
                            )
                        })
                        .collect();
                    h.push(("body-bytes".into(), body.len().to_string()));
                    heads.lock().unwrap().push(h);
                    let _ = rq.respond(
                        tiny_http::Response::from_string("out of order sample")
                            .with_status_code(status),
                    );
                }
            })
        };
        Refuser {
            port,
            server,
            heads,
            thread: Some(thread),
        }
    }
}

impl Drop for Refuser {
    fn drop(&mut self) {
        self.server.unblock();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[test]
fn a_receiver_answering_400_is_not_retried() {
    let r = Refuser::start(400);
    let spool = tempfile::tempdir().unwrap();
    let d = daemon(&write_url(r.port), spool.path(), &[]);
    let started = Instant::now();
    std::thread::sleep(Duration::from_secs(5));
    let m = d.metrics();
    let elapsed = started.elapsed().as_secs_f64();
    let heads = r.heads.lock().unwrap().clone();
    // Each request refused once: at most one a collection (one a second), fewer where a
    // collection waits for the next to fill a request (`batch_send_deadline`, 5 s); with
    // retries (100 ms backoff) there would be dozens.
    assert!(
        (1..=(elapsed as usize + 2)).contains(&heads.len()),
        "{} requests in {elapsed:.1} s",
        heads.len()
    );
    let get = |h: &[(String, String)], k: &str| {
        h.iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    for h in &heads {
        assert_eq!(get(h, "content-encoding"), "snappy");
        assert_eq!(get(h, "content-type"), "application/x-protobuf");
        assert_eq!(get(h, "x-prometheus-remote-write-version"), "0.1.0");
        assert!(get(h, "user-agent").starts_with("monitor/"), "{h:?}");
        assert!(get(h, "body-bytes").parse::<u64>().unwrap() > 100);
    }
    let ep = format!("{{endpoint=\"127.0.0.1:{}\"}}", r.port);
    assert_eq!(
        m.value(&format!("monitor_remote_write_samples_retried_total{ep}")),
        0.0
    );
    assert!(m.value(&format!("monitor_remote_write_samples_failed_total{ep}")) > 100.0);
    assert_eq!(
        m.value(&format!("monitor_remote_write_samples_sent_total{ep}")),
        0.0
    );
    // Refused requests do not wait in the spool.
    assert!(m.value(&format!("monitor_remote_write_spool_bytes{ep}")) < 100_000.0);
    let log = d.log();
    assert!(
        log.contains("remote write request refused; not retried") && log.contains("HTTP 400"),
        "{log}"
    );
}

#[test]
fn a_full_spool_drops_the_oldest_and_counts_it() {
    // Nothing listens there yet.
    let port = free_port();
    let spool = tempfile::tempdir().unwrap();
    let d = daemon(
        &write_url(port),
        spool.path(),
        &["--remote-write.spool-size", "64KiB"],
    );
    let first_collection = now_ms();
    let ep = format!("{{endpoint=\"127.0.0.1:{port}\"}}");
    let deadline = Instant::now() + DEADLINE;
    let dropped = loop {
        let m = d.metrics();
        let dropped = m.value(&format!("monitor_remote_write_samples_dropped_total{ep}"));
        if dropped > 0.0 {
            assert!(m.value(&format!("monitor_remote_write_spool_bytes{ep}")) <= 65536.0);
            break dropped;
        }
        assert!(Instant::now() < deadline, "the spool never filled");
        std::thread::sleep(Duration::from_millis(500));
    };
    // A few more collections dropped, then the receiver comes.
    std::thread::sleep(Duration::from_secs(3));
    let m = d.metrics();
    let more = m.value(&format!("monitor_remote_write_samples_dropped_total{ep}"));
    assert!(more > dropped, "dropping goes on: {dropped} then {more}");
    let receiver_from = now_ms();
    let prom = Receiver::start_on(port);
    let info = format!(
        "monitor_build_info{{version=\"{}\"}}",
        env!("CARGO_PKG_VERSION")
    );
    let deadline = Instant::now() + DEADLINE;
    let samples = loop {
        let s = prom.samples(&info, 120);
        if s.last().is_some_and(|l| l.0 > now_ms() - 3000) {
            break s;
        }
        assert!(Instant::now() < deadline, "the kept samples never arrived");
        std::thread::sleep(Duration::from_millis(500));
    };
    // The oldest were dropped: the first that arrived is well after the first collection;
    // from it on, none is missing.
    let ts: Vec<i64> = samples.iter().map(|s| s.0).collect();
    assert!(
        ts[0] > first_collection + 2000,
        "the first sample kept ({}) is from the first collection ({first_collection})",
        ts[0]
    );
    assert!(
        ts[0] < receiver_from - 1000,
        "the newest spooled were kept and sent"
    );
    assert!(largest_gap(&ts) < 1600, "a gap of {} ms", largest_gap(&ts));
    assert!(
        d.log()
            .contains("remote write spool full: dropping the oldest samples"),
        "{}",
        d.log()
    );
}

#[test]
fn a_restarted_daemon_sends_what_the_last_one_spooled() {
    let port = free_port();
    let spool = tempfile::tempdir().unwrap();
    let first = daemon(&write_url(port), spool.path(), &[]);
    let first_port = first.port;
    let first_from = now_ms();
    std::thread::sleep(Duration::from_secs(4));
    // Killed: nothing is flushed at exit, the spool is all there is.
    signal_daemon(&first, libc::SIGKILL);
    let first_until = now_ms();
    drop(first);
    let queued = std::fs::read_dir(spool.path().join(format!("127.0.0.1_{port}")))
        .unwrap()
        .count();
    assert!(queued >= 3, "{queued} requests spooled");

    let prom = Receiver::start_on(port);
    let second = daemon(&write_url(port), spool.path(), &[]);
    // Each run's samples carry its own instance (the daemon's address then).
    let info = |port: u16| format!("monitor_build_info{{instance=~\".*:{port}\"}}");
    let deadline = Instant::now() + DEADLINE;
    while prom
        .samples(&info(second.port), 120)
        .last()
        .is_none_or(|l| l.0 < now_ms() - 3000)
    {
        assert!(Instant::now() < deadline, "nothing arrived");
        std::thread::sleep(Duration::from_millis(500));
    }
    let samples = prom.samples(&info(first_port), 120);
    let of_first = samples
        .iter()
        .filter(|s| (first_from - 1000..first_until).contains(&s.0))
        .count();
    assert!(
        of_first >= 3,
        "{of_first} samples of the first run in {samples:?}"
    );
    let ts: Vec<i64> = samples.iter().map(|s| s.0).collect();
    assert!(ts.windows(2).all(|w| w[0] < w[1]), "in order");
    assert!(
        second
            .log()
            .contains("unsent remote write samples from an earlier run will be sent"),
        "{}",
        second.log()
    );
}

fn signal_daemon(d: &Daemon, sig: i32) {
    // SAFETY: signalling the daemon this test started, by its pid.
    unsafe { libc::kill(d.pid() as i32, sig) };
    let deadline = Instant::now() + Duration::from_secs(10);
    while Path::new(&format!("/proc/{}/stat", d.pid())).exists()
        && !std::fs::read_to_string(format!("/proc/{}/stat", d.pid()))
            .unwrap_or_default()
            .contains(") Z")
    {
        assert!(Instant::now() < deadline, "the daemon did not die");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn bad_remote_write_config_is_one_line_naming_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let file = |name: &str, text: &str| {
        let p = dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p.to_str().unwrap().to_string()
    };
    std::fs::write(dir.path().join("not-a-cert.pem"), "hello\n").unwrap();
    let cases = [
        (
            file("no-url.yml", "remote_write:\n  - name: mimir\n"),
            "remote_write[0]: missing field `url`",
        ),
        (
            file(
                "ca.yml",
                "remote_write:\n  - url: https://mimir.example.com/api/v1/push\n    tls_config: {ca_file: /nonexistent/ca.pem}\n",
            ),
            "remote_write[0].tls_config.ca_file: cannot read /nonexistent/ca.pem",
        ),
        (
            file(
                "cert.yml",
                "remote_write:\n  - url: https://mimir.example.com/api/v1/push\n    tls_config: {cert_file: not-a-cert.pem, key_file: not-a-cert.pem}\n",
            ),
            "remote_write[0].tls_config.cert_file:",
        ),
        (
            file(
                "regex.yml",
                "remote_write:\n  - url: http://127.0.0.1:9090/api/v1/write\n    write_relabel_configs:\n      - {source_labels: [__name__], regex: 'monitor_(', action: drop}\n",
            ),
            "remote_write[0].write_relabel_configs[0].regex \"monitor_(\" is not a regular expression",
        ),
    ];
    for (path, want) in &cases {
        for args in [
            &["run", "--remote-write.config", path][..],
            &["check-config", "--remote-write.config", path],
        ] {
            let (_, stderr) = fails(&[], args);
            let line = one_line(&stderr);
            assert!(line.starts_with("monitor: "), "{line}");
            assert!(line.contains(want), "{args:?}: {line}");
        }
    }
    let (code, stderr) = fails(&[], &["run", "--remote-write.url", "prometheus:9090"]);
    let line = one_line(&stderr);
    assert_ne!(code, 0);
    assert!(
        line.contains("--remote-write.url \"prometheus:9090\""),
        "{line}"
    );
    let (_, stderr) = fails(&[], &["run", "--remote-write.spool-size", "1KiB"]);
    assert!(
        one_line(&stderr).contains("--remote-write.spool-size"),
        "{stderr}"
    );
}
