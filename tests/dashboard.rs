//! The Grafana dashboard (`monitor dashboard grafana`) against real data: a real Prometheus
//! scrapes a real daemon every second while this test makes CPU, disk and network work, a
//! failing probe, a watched service, log lines and notifications; every panel's query, with
//! the dashboard's variables substituted as Grafana would, is run through Prometheus's HTTP
//! API and must return series, unless the panel is on the allow-list below.

use std::{
    collections::BTreeSet,
    io::Write as _,
    process::Command,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use monitor_tests::{sink::Sink, *};

/// Panels allowed to return nothing here, each with why.
const MAY_BE_EMPTY: &[(&str, &str)] = &[
    // Only groups with a kill are drawn, and this test kills nothing (tests/audit.rs makes a
    // real OOM kill and checks its count).
    ("OOM kills by group", "no OOM kill here"),
    // Only groups that retransmitted are drawn; loopback loses nothing (tests/network.rs
    // checks retransmits under real loss).
    ("TCP retransmits by group", "no loss on loopback"),
    // A rule's failure series appears when it first fails; every rule here evaluates.
    ("Rule evaluation failures", "no rule fails"),
];

/// What `$__rate_interval` is for a 1 s scrape: Grafana takes four scrape intervals at least.
const RATE_INTERVAL: &str = "4s";

struct Target {
    row: String,
    panel: String,
    expr: String,
    instant: bool,
}

fn dashboard() -> serde_json::Value {
    let out = Command::new(monitor_bin())
        .args(["dashboard", "grafana"])
        .output()
        .expect("running monitor dashboard grafana");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("the dashboard is JSON")
}

fn targets(d: &serde_json::Value) -> Vec<Target> {
    let mut row = String::new();
    let mut out = Vec::new();
    for p in d["panels"].as_array().unwrap() {
        if p["type"] == "row" {
            row = p["title"].as_str().unwrap().to_string();
            continue;
        }
        for t in p["targets"].as_array().unwrap() {
            out.push(Target {
                row: row.clone(),
                panel: p["title"].as_str().unwrap().to_string(),
                expr: t["expr"].as_str().unwrap().to_string(),
                instant: t["instant"] == true,
            });
        }
    }
    out
}

/// The metric names a query selects (identifiers followed by `{`: every selector here has
/// matchers).
fn metric_names(expr: &str) -> Vec<String> {
    let mut names = Vec::new();
    let b = expr.as_bytes();
    for (i, _) in expr.match_indices('{') {
        let start = b[..i]
            .iter()
            .rposition(|c| !(c.is_ascii_alphanumeric() || *c == b'_' || *c == b':'))
            .map_or(0, |p| p + 1);
        if start < i {
            names.push(expr[start..i].to_string());
        }
    }
    names
}

/// The families of an exposition, histograms under their base name.
fn families(exposition: &str) -> (BTreeSet<String>, BTreeSet<String>) {
    let (mut all, mut histograms) = (BTreeSet::new(), BTreeSet::new());
    for l in exposition.lines() {
        let mut f = l.split_whitespace();
        if let (Some("#"), Some("TYPE"), Some(name), Some(kind)) =
            (f.next(), f.next(), f.next(), f.next())
        {
            all.insert(name.to_string());
            if kind == "histogram" {
                histograms.insert(name.to_string());
            }
        }
    }
    (all, histograms)
}

fn exported(all: &BTreeSet<String>, histograms: &BTreeSet<String>, name: &str) -> bool {
    all.contains(name)
        || ["_bucket", "_sum", "_count"].iter().any(|s| {
            name.strip_suffix(s)
                .is_some_and(|base| histograms.contains(base))
        })
}

fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// Runs `expr` as its panel does (instant for tables, a range over the last 10 s otherwise);
/// the number of series, or Prometheus's error.
fn run(prom: &Prometheus, expr: &str, instant: bool) -> Result<usize, String> {
    let end = now();
    let (end_s, start_s) = (format!("{end:.3}"), format!("{:.3}", end - 10.0));
    let v = if instant {
        prom.api("query", &[("query", expr), ("time", &end_s)])?
    } else {
        prom.api(
            "query_range",
            &[
                ("query", expr),
                ("start", &start_s),
                ("end", &end_s),
                ("step", "1"),
            ],
        )?
    };
    assert_eq!(v["status"], "success", "{expr}: {v}");
    Ok(v["data"]["result"].as_array().map_or(0, Vec::len))
}

#[test]
fn every_panel_query_returns_series() {
    let d = dashboard();
    let dir = tempfile::tempdir().unwrap();
    // Webhook receiver, heartbeat and the HTTP probe's target.
    let sink = Sink::start(&[]);
    let closed = free_port();
    let spinner = NamedBinary::new("/bin/dash", "mtdash");
    let log = dir.path().join("app.log");
    std::fs::write(&log, "").unwrap();
    let config = dir.path().join("alerting.yml");
    std::fs::write(
        &config,
        format!(
            "receivers:\n  - name: hook\n    webhook: {{url: \"{hook}\"}}\n\
             route: {{receiver: hook, group_wait: 1s, group_interval: 1s}}\n\
             heartbeat: {{url: \"{ping}\", interval: 1s}}\n\
             services:\n  - {{name: spinner, comm: \"^{spinner}$\"}}\n\
             probes:\n\
             \x20 - {{name: closed, tcp: {{address: \"127.0.0.1:{closed}\"}}, interval: 1s, timeout: 1s, for: 0s}}\n\
             \x20 - {{name: web, http: {{url: \"{health}\"}}, interval: 1s}}\n",
            hook = sink.url("/hook"),
            ping = sink.url("/ping"),
            spinner = spinner.name,
            health = sink.url("/health"),
        ),
    )
    .unwrap();
    let state = dir.path().join("state");
    let daemon = Daemon::start(&[
        "--bpf.stats",
        "--alert.config",
        config.to_str().unwrap(),
        "--alert.state-dir",
        state.to_str().unwrap(),
        "--alert.evaluation-interval",
        "1s",
        "--log-match.file",
        log.to_str().unwrap(),
        "--log-match.pattern",
        "errors=error",
    ]);

    // The workload: a CPU-bound child, direct disk reads and writes, TCP traffic to the
    // sink, log lines (the probes and notifications make their own).
    let _spin = spin(&spinner, None);
    let data = dir.path().join("data");
    let _disk = Guard(
        Command::new("sh")
            .arg("-c")
            .arg(format!(
                "while :; do dd if=/dev/zero of={f} bs=64k count=32 oflag=direct conv=fsync 2>/dev/null; \
                 dd if={f} of=/dev/null bs=64k iflag=direct 2>/dev/null; done",
                f = data.display()
            ))
            .spawn()
            .unwrap(),
    );
    let stop = Arc::new(AtomicBool::new(false));
    let background = {
        let (stop, url, log) = (stop.clone(), sink.url("/traffic"), log.clone());
        std::thread::spawn(move || {
            let mut f = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
            while !stop.load(Ordering::Relaxed) {
                let _ = request("GET", &url);
                writeln!(f, "an error line and a plain one").unwrap();
                std::thread::sleep(Duration::from_millis(100));
            }
        })
    };
    let me = std::fs::read_to_string("/proc/self/comm").unwrap();
    let me = me.trim();

    let prom = Prometheus::start(daemon.port);
    let deadline = Instant::now() + Duration::from_secs(60);
    while prom.query("up").and_then(|v| {
        v["data"]["result"][0]["value"][1]
            .as_str()
            .map(|s| s == "1")
    }) != Some(true)
    {
        assert!(
            Instant::now() < deadline,
            "Prometheus never scraped the daemon"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    // Enough points for every window and the 10 s ranges queried.
    std::thread::sleep(Duration::from_secs(20));

    let instance = format!("127.0.0.1:{}", daemon.port);
    // The variables resolve as Grafana asks for them (label_values(selector, label) is
    // /api/v1/label/<label>/values?match[]=selector): job and instance from
    // monitor_build_info, the groups this test made among the groups.
    for v in d["templating"]["list"].as_array().unwrap() {
        let Some(q) = v["query"]
            .as_str()
            .and_then(|q| q.strip_prefix("label_values("))
        else {
            continue;
        };
        let (selector, label) = q.strip_suffix(')').unwrap().rsplit_once(", ").unwrap();
        let selector = selector
            .replace("$job", "monitor")
            .replace("$instance", &instance);
        let values = prom
            .api(&format!("label/{label}/values"), &[("match[]", &selector)])
            .unwrap_or_else(|e| panic!("variable {label}: {e}"));
        let values: Vec<&str> = values["data"]
            .as_array()
            .unwrap_or_else(|| panic!("variable {label}: {values}"))
            .iter()
            .filter_map(|v| v.as_str())
            .collect();
        let want = match label {
            "job" => vec!["monitor"],
            "instance" => vec![instance.as_str()],
            _ => vec![spinner.name.as_str(), "dd"],
        };
        for w in want {
            assert!(
                values.contains(&w),
                "variable {label}: {w} not in {values:?}"
            );
        }
    }
    // Grafana's value for a multi-select of several groups: the test's own.
    let groups = format!("({}|dd|{me})", spinner.name);
    let mut empty = Vec::new();
    let mut errors = Vec::new();
    let all = targets(&d);
    for t in &all {
        let group = if t.row.starts_with("Groups") {
            groups.as_str()
        } else {
            ".+"
        };
        let expr = t
            .expr
            .replace("$__rate_interval", RATE_INTERVAL)
            .replace("$job", "monitor")
            .replace("$instance", &instance)
            .replace("$group", group);
        match run(&prom, &expr, t.instant) {
            Ok(0) => {
                eprintln!("{} / {}: no series", t.row, t.panel);
                empty.push(t);
            }
            Ok(n) => eprintln!("{} / {}: {n} series", t.row, t.panel),
            Err(e) => errors.push(format!("{} / {}: {expr}: {e}", t.row, t.panel)),
        }
    }
    stop.store(true, Ordering::Relaxed);
    background.join().unwrap();
    assert!(
        errors.is_empty(),
        "Prometheus refused:\n{}",
        errors.join("\n")
    );
    let unexpected: Vec<String> = empty
        .iter()
        .filter(|t| !MAY_BE_EMPTY.iter().any(|(p, _)| *p == t.panel))
        .map(|t| format!("{} / {}: {}", t.row, t.panel, t.expr))
        .collect();
    assert!(
        unexpected.is_empty(),
        "panels with no data:\n{}\n(the daemon's log:\n{})",
        unexpected.join("\n"),
        daemon.log()
    );
    for (p, _) in MAY_BE_EMPTY {
        assert!(
            all.iter().any(|t| t.panel == *p),
            "allow-listed panel {p:?} is not in the dashboard"
        );
    }

    // Every metric a panel names is in this daemon's exposition (a family with no series
    // has no lines at all, so not those of the allow-listed panels), and every histogram in
    // it has a heatmap.
    let (names, histograms) = families(&daemon.metrics().0);
    for t in all
        .iter()
        .filter(|t| !MAY_BE_EMPTY.iter().any(|(p, _)| *p == t.panel))
    {
        for n in metric_names(&t.expr) {
            assert!(
                exported(&names, &histograms, &n),
                "{}: {n} is not in the daemon's exposition",
                t.panel
            );
        }
    }
    let heatmapped: BTreeSet<String> = d["panels"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["type"] == "heatmap")
        .flat_map(|p| metric_names(p["targets"][0]["expr"].as_str().unwrap()))
        .filter_map(|n| n.strip_suffix("_bucket").map(str::to_string))
        .collect();
    assert_eq!(
        heatmapped, histograms,
        "heatmaps and exported histograms differ"
    );
}
