//! The daemon's own log formats, the HTTP access log, and the log-file matcher, against what
//! the test did: the requests it sent (and the bytes it got back), the lines it wrote.

use std::{
    io::Write,
    path::Path,
    time::{Duration, Instant},
};

use monitor_tests::{fails, one_line, Daemon};
use serde_json::Value;

fn lines_of(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

fn poll<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(t) = f() {
            return t;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_scrape_appears_in_the_access_log() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("access.log");
    let d = Daemon::start(&["--web.access-log", log.to_str().unwrap()]);
    let resp = ureq::get(&d.url("/metrics?x=1"))
        .set("User-Agent", "monitor-test/1.0")
        .call()
        .unwrap();
    let body = resp.into_string().unwrap();
    let (status, _) = d.get("/no/such/path");
    assert_eq!(status, 404);

    let line = poll("the scrape's line", || {
        lines_of(&log)
            .into_iter()
            .find(|l| l["path"] == "/metrics" && l["user_agent"] == "monitor-test/1.0")
    });
    assert_eq!(line["method"], "GET");
    assert_eq!(line["status"], 200);
    assert_eq!(line["query"], "x=1");
    assert_eq!(line["bytes"].as_u64(), Some(body.len() as u64));
    assert!(
        line["remote_address"]
            .as_str()
            .unwrap()
            .starts_with("127.0.0.1:"),
        "{line}"
    );
    assert!(line["duration_seconds"].as_f64().unwrap() >= 0.0);
    assert_eq!(line["user"], Value::Null);
    assert!(line["time"].as_str().unwrap().ends_with('Z'));
    let missing = poll("the 404's line", || {
        lines_of(&log)
            .into_iter()
            .find(|l| l["path"] == "/no/such/path")
    });
    assert_eq!(missing["status"], 404);
}

#[test]
fn the_access_log_can_go_to_stderr() {
    let d = Daemon::start(&["--web.access-log", "stderr", "--log.format", "json"]);
    d.get("/healthz");
    let line = poll("the access line on stderr", || {
        d.log()
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .find(|v| v["path"] == "/healthz")
    });
    assert_eq!(line["status"], 200);
    assert_eq!(line["bytes"], 3);
}

#[test]
fn log_formats() {
    let d = Daemon::start(&["--log.format", "json"]);
    drop(d.metrics());
    let log = d.log();
    assert!(!log.is_empty());
    for l in log.lines() {
        let v: Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}"));
        assert!(v["level"].is_string() && v["message"].is_string(), "{l}");
    }
    assert!(log.contains("\"message\":\"listening\""), "{log}");
    drop(d);

    let d = Daemon::start(&["--log.format", "logfmt"]);
    let log = d.log();
    for l in log.lines() {
        assert!(l.starts_with("ts=") && l.contains(" level="), "{l}");
    }
    assert!(log.contains("message=listening"), "{log}");
    drop(d);

    // Text by default, uncoloured when stderr is not a terminal.
    let d = Daemon::start(&[]);
    let log = d.log();
    assert!(
        log.lines()
            .any(|l| l.contains(" INFO ") && l.contains("listening")),
        "{log}"
    );
    assert!(!log.contains('\x1b'), "{log}");
}

fn append(p: &Path, lines: &[&str]) {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(p)
        .unwrap();
    for l in lines {
        writeln!(f, "{l}").unwrap();
    }
}

#[test]
fn the_matcher_counts_across_rotation_and_truncation() {
    let dir = tempfile::tempdir().unwrap();
    let app = dir.path().join("app.log");
    let late = dir.path().join("late.log");
    // Already there at start-up: not counted.
    append(&app, &["ERROR old", "old"]);
    let d = Daemon::start(&[
        "--log-match.file",
        app.to_str().unwrap(),
        "--log-match.file",
        late.to_str().unwrap(),
        "--log-match.pattern",
        "errors=ERROR",
        "--log-match.pattern",
        "timeouts=(?i)timed? ?out",
        "--log-match.interval",
        "50ms",
    ]);
    let (a, l) = (app.display().to_string(), late.display().to_string());
    let series = |name: &str, file: &str, pattern: Option<&str>| match pattern {
        Some(p) => format!("{name}{{file=\"{file}\",pattern=\"{p}\"}}"),
        None => format!("{name}{{file=\"{file}\"}}"),
    };
    let expect = |lines: f64, errors: f64, timeouts: f64| {
        poll(
            &format!("{lines} lines, {errors} errors, {timeouts} timeouts"),
            || {
                let m = d.metrics();
                let got = (
                    m.get(&series("monitor_log_lines_total", &a, None)),
                    m.get(&series("monitor_log_matches_total", &a, Some("errors"))),
                    m.get(&series("monitor_log_matches_total", &a, Some("timeouts"))),
                );
                (got == (Some(lines), Some(errors), Some(timeouts))).then_some(())
            },
        )
    };
    expect(0.0, 0.0, 0.0);
    append(
        &app,
        &["ERROR one", "fine", "request timed out", "ERROR Timeout"],
    );
    expect(4.0, 2.0, 2.0);

    // Rotation by rename: lines still written to the old file count, then the new file.
    let rotated = dir.path().join("app.log.1");
    std::fs::rename(&app, &rotated).unwrap();
    append(&rotated, &["ERROR late in the old file"]);
    append(&app, &["ERROR first of the new file", "ok"]);
    expect(7.0, 4.0, 2.0);

    // Truncation in place (copytruncate), then shorter content than was read.
    append(
        &app,
        &["a long line to make the file longer than what follows"],
    );
    expect(8.0, 4.0, 2.0);
    std::fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(&app)
        .unwrap();
    append(&app, &["ERROR x", "timeout"]);
    expect(10.0, 5.0, 3.0);
    let m = d.metrics();
    assert_eq!(
        m.value(&series("monitor_log_file_rotations_total", &a, None)),
        1.0
    );
    assert_eq!(
        m.value(&series("monitor_log_file_truncations_total", &a, None)),
        1.0
    );

    // A file that appears after start-up is read from its start.
    assert_eq!(m.value(&series("monitor_log_file_open", &l, None)), 0.0);
    append(&late, &["ERROR early", "ERROR again"]);
    poll("the late file's lines", || {
        let m = d.metrics();
        (m.get(&series("monitor_log_matches_total", &l, Some("errors"))) == Some(2.0)).then_some(())
    });
    assert_eq!(
        d.metrics()
            .value(&series("monitor_log_file_open", &l, None)),
        1.0
    );
}

#[test]
fn bad_log_and_audit_flags_get_one_line() {
    for (args, code, needle) in [
        (&["--log.format", "xml"][..], 2, "--log.format"),
        (&["--audit.max-size", "10"], 2, "4KiB minimum"),
        (&["--audit.include-kind", "fork"], 2, "not an event kind"),
        (&["--audit.include-comm", "("], 2, "--audit.include-comm"),
        (&["--log-match.pattern", "nameonly"], 2, "NAME=REGEX"),
        (&["--log-match.pattern", "e=("], 2, "e=("),
        (&["--log-match.pattern", "e=x"], 1, "--log-match.file"),
        (
            &["--web.access-log", "/nonexistent/dir/access.log"],
            1,
            "/nonexistent/dir/access.log",
        ),
        (
            &[
                "--audit.file",
                "/tmp/a.log",
                "--audit.cgroup",
                "/nonexistent",
            ],
            1,
            "--audit.cgroup /nonexistent",
        ),
        (
            &["--audit.file", "/nonexistent/dir/a.log"],
            1,
            "/nonexistent/dir/a.log",
        ),
    ] {
        let mut all = vec!["run", "--web.listen-address", "127.0.0.1:0"];
        all.extend_from_slice(args);
        let (got, stderr) = fails(&[], &all);
        assert_eq!(got, code, "{args:?}: {stderr}");
        let line = one_line(&stderr);
        assert!(line.contains(needle), "{args:?}: {line}");
    }
}

#[test]
fn basic_auth_from_the_web_config_file_and_the_user_in_the_access_log() {
    use base64::Engine as _;
    use monitor_tests::{free_port, monitor_bin, request, require_root};
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let web = dir.path().join("web.yml");
    let hash = bcrypt::hash("s3cret", 4).unwrap();
    std::fs::write(&web, format!("basic_auth_users:\n  alice: {hash}\n")).unwrap();
    let access = dir.path().join("access.log");
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let mut child = monitor_tests::Guard(
        std::process::Command::new(monitor_bin())
            .args(["run", "--web.listen-address", &format!("127.0.0.1:{port}")])
            .args(["--web.config.file", web.to_str().unwrap()])
            .args(["--web.access-log", access.to_str().unwrap()])
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    // Up when it answers at all: without credentials, 401.
    poll("the daemon to answer", || {
        (request("GET", &format!("{base}/healthz")).0 == 401).then_some(())
    });
    let at = |path: &str, user_pass: &str| {
        let auth = base64::engine::general_purpose::STANDARD.encode(user_pass);
        match ureq::get(&format!("{base}{path}"))
            .set("Authorization", &format!("Basic {auth}"))
            .call()
        {
            Ok(r) => r.status(),
            Err(ureq::Error::Status(code, _)) => code,
            Err(e) => panic!("{e}"),
        }
    };
    let with = |user_pass: &str| at("/metrics", user_pass);
    // The page and the query API are behind the same auth.
    for path in [
        "/",
        "/page/page.js",
        "/api/v1/query?query=up",
        "/api/v1/labels",
    ] {
        assert_eq!(request("GET", &format!("{base}{path}")).0, 401, "{path}");
        assert_eq!(at(path, "alice:s3cret"), 200, "{path}");
    }
    assert_eq!(with("alice:wrong"), 401);
    assert_eq!(with("mallory:s3cret"), 401);
    assert_eq!(with("alice:s3cret"), 200);
    let lines = poll("the access log lines", || {
        let l = lines_of(&access);
        (l.iter().filter(|l| l["path"] == "/metrics").count() == 3).then_some(l)
    });
    let metrics: Vec<&Value> = lines.iter().filter(|l| l["path"] == "/metrics").collect();
    assert_eq!(metrics[0]["status"], 401);
    assert_eq!(metrics[0]["user"], Value::Null);
    assert_eq!(metrics[2]["status"], 200);
    assert_eq!(metrics[2]["user"], "alice");
    let _ = child.0.kill();
    let _ = child.0.wait();
}
