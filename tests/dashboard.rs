//! The Grafana dashboard (`monitor dashboard grafana`) against real data: a real Prometheus
//! scrapes a real daemon every second while this test makes CPU, disk and network work, a
//! failing probe, a watched service, log lines and notifications; every panel's query, with
//! the dashboard's variables substituted as Grafana would, is run through Prometheus's HTTP
//! API and must return series, unless the panel is on the allow-list (`workload.rs`). The
//! same query through the daemon's own API (`/api/v1/query`, `/api/v1/query_range`) must
//! return the same series, with values within one scrape's drift.

use std::{
    collections::{BTreeMap, BTreeSet},
    process::Command,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use monitor_tests::{
    workload::{Workload, MAY_BE_EMPTY},
    *,
};

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

/// Runs `expr` as its panel does (instant at `end` for tables, a range over the 10 s to
/// `end` otherwise) through the query API `api` (Prometheus's or the daemon's): the answer's
/// `data`, or the error.
fn run(
    api: impl Fn(&str, &[(&str, &str)]) -> Result<serde_json::Value, String>,
    expr: &str,
    instant: bool,
    end: f64,
) -> Result<serde_json::Value, String> {
    let (end_s, start_s) = (format!("{end:.3}"), format!("{:.3}", end - 10.0));
    let v = if instant {
        api("query", &[("query", expr), ("time", &end_s)])?
    } else {
        api(
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
    Ok(v["data"].clone())
}

/// Each series of an answer by its labels, with its value at `at` (an instant's value, a
/// range's point at `at`; NaN if the range has none there).
fn values_at(data: &serde_json::Value, at: f64) -> BTreeMap<String, f64> {
    let num = |v: &serde_json::Value| match v.as_str() {
        Some("+Inf") => f64::INFINITY,
        Some("-Inf") => f64::NEG_INFINITY,
        Some(s) => s.parse().unwrap_or(f64::NAN),
        None => f64::NAN,
    };
    data["result"]
        .as_array()
        .map(|r| {
            r.iter()
                .map(|s| {
                    let v = if let Some(p) = s.get("value") {
                        num(&p[1])
                    } else {
                        s["values"]
                            .as_array()
                            .and_then(|ps| {
                                ps.iter()
                                    .find(|p| (p[0].as_f64().unwrap_or(0.0) - at).abs() < 1e-3)
                            })
                            .map_or(f64::NAN, |p| num(&p[1]))
                    };
                    (s["metric"].to_string(), v)
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Panels whose figures move faster than one scrape's drift, so only their series (not
/// their values) must agree between Prometheus and the daemon, each with why.
const VOLATILE: &[(&str, &str)] = &[
    // Read at the request: Prometheus's scrape and the history's sampling are different
    // requests, each with its own age and durations.
    (
        "Snapshot age and refresh duration",
        "a figure of each request",
    ),
    ("Collector duration", "a figure of each request"),
];

/// A query API: Prometheus's or the daemon's.
type Api<'a> = dyn Fn(&str, &[(&str, &str)]) -> Result<serde_json::Value, String> + 'a;

/// Prometheus's values of each series over the three steps up to `end` (`data`: a range
/// answer at a 1 s step): (lowest, highest, at how many of the three steps it is).
fn envelope(data: &serde_json::Value, end: f64) -> BTreeMap<String, (f64, f64, usize)> {
    let mut out = BTreeMap::new();
    for t in [end - 2.0, end - 1.0, end] {
        for (k, v) in values_at(data, t) {
            if v.is_nan() {
                continue;
            }
            let e = out.entry(k).or_insert((v, v, 0));
            *e = (e.0.min(v), e.1.max(v), e.2 + 1);
        }
    }
    out
}

/// Whether the daemon's value `ours` is within one scrape's drift of Prometheus's: the two
/// sample the same daemon at moments up to a scrape (1 s) apart, so the daemon's value at an
/// instant must lie among Prometheus's values of the steps around it (`lo..=hi`, the last
/// three seconds), give or take half of the larger (a counter that steps once a second, such
/// as the heartbeat's pings, moves a 4 s rate by a third between two sampling phases), or 2 %
/// of the panel's largest value (`scale`: a series near zero beside large ones, such as a
/// group's occasional CPU, moves by more than itself in a second).
/// A daemon series with no point at the instant agrees when Prometheus's has none either, or
/// has it at only some of the steps around (the series came or went in the last seconds: a
/// group of short-lived processes, such as the workload's `dd`, with none alive at one refresh).
fn close(ours: f64, (lo, hi, seen): (f64, f64, usize), scale: f64) -> bool {
    if ours.is_nan() {
        return lo.is_nan() || seen < 3;
    }
    if ours.is_infinite() {
        return ours == lo || ours == hi;
    }
    let slack = (0.5 * ours.abs().max(hi.abs())).max(0.02 * scale).max(1e-9);
    ours >= lo - slack && ours <= hi + slack
}

#[test]
fn every_panel_query_returns_series() {
    let d = dashboard();
    let w = Workload::start(&[]);
    let (daemon, spinner) = (&w.daemon, &w.spinner);
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
        // Through Prometheus, and through the daemon's own API (Grafana pointed at it).
        for (who, answer) in [
            (
                "Prometheus",
                prom.api(&format!("label/{label}/values"), &[("match[]", &selector)]),
            ),
            (
                "the daemon",
                daemon.api(&format!("label/{label}/values"), &[("match[]", &selector)]),
            ),
        ] {
            let answer = answer.unwrap_or_else(|e| panic!("variable {label} ({who}): {e}"));
            let values: Vec<&str> = answer["data"]
                .as_array()
                .unwrap_or_else(|| panic!("variable {label} ({who}): {answer}"))
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
                    "variable {label} ({who}): {w} not in {values:?}"
                );
            }
        }
    }
    // Grafana's value for a multi-select of several groups: the test's own.
    let groups = format!("({}|dd|{me})", spinner.name);
    let mut empty = Vec::new();
    let mut errors = Vec::new();
    let (mut ours_refused, mut differ, mut compared) = (Vec::new(), Vec::new(), 0);
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
        let end = (now() - 1.0).floor();
        let theirs = match run(|e, p| prom.api(e, p), &expr, t.instant, end) {
            Ok(v) => v,
            Err(e) => {
                errors.push(format!("{} / {}: {expr}: {e}", t.row, t.panel));
                continue;
            }
        };
        let n = theirs["result"].as_array().map_or(0, Vec::len);
        if n == 0 {
            eprintln!("{} / {}: no series", t.row, t.panel);
            empty.push(t);
        } else {
            eprintln!("{} / {}: {n} series", t.row, t.panel);
        }
        // The same query, through the daemon's own API, at the same instant.
        match run(|e, p| daemon.api(e, p), &expr, t.instant, end) {
            Err(e) => ours_refused.push(format!("{} / {}: {expr}: {e}", t.row, t.panel)),
            Ok(ours) => {
                let (a, b) = (values_at(&theirs, end), values_at(&ours, end));
                // Each side's values over the three steps up to `end`: from the range
                // itself, or (a table's instant query) from the same query as a range.
                let around = |api: &Api<'_>, data: &serde_json::Value| {
                    if t.instant {
                        let e = format!("{end:.3}");
                        let s = format!("{:.3}", end - 2.0);
                        api(
                            "query_range",
                            &[
                                ("query", expr.as_str()),
                                ("start", &s),
                                ("end", &e),
                                ("step", "1"),
                            ],
                        )
                        .map(|v| envelope(&v["data"], end))
                        .unwrap_or_default()
                    } else {
                        envelope(data, end)
                    }
                };
                let around_theirs = around(&|e, p| prom.api(e, p), &theirs);
                let around_ours = around(&|e, p| daemon.api(e, p), &ours);
                // A series on one side only at `end` is one scrape's drift when the other side
                // has it within the steps around (an occasional event at the window's edge,
                // such as a kernel worker's disk request behind a `> 0`), or when its own side
                // has it at only some of them (it came or went in the last seconds: a group of
                // short-lived processes, seen in a refresh one sampled and the other did not).
                let drift =
                    |k: &String,
                     own: &BTreeMap<String, (f64, f64, usize)>,
                     other: &BTreeMap<String, (f64, f64, usize)>| {
                        other.contains_key(k) || own.get(k).is_some_and(|e| e.2 < 3)
                    };
                let only_theirs: Vec<&String> = a
                    .keys()
                    .filter(|k| !b.contains_key(*k) && !drift(k, &around_theirs, &around_ours))
                    .collect();
                let only_ours: Vec<&String> = b
                    .keys()
                    .filter(|k| !a.contains_key(*k) && !drift(k, &around_ours, &around_theirs))
                    .collect();
                let volatile = VOLATILE.iter().any(|(p, _)| *p == t.panel);
                let around = around_theirs;
                let scale = a
                    .values()
                    .chain(b.values())
                    .filter(|v| v.is_finite())
                    .fold(0.0_f64, |m, v| m.max(v.abs()));
                let off: Vec<String> = b
                    .iter()
                    .filter_map(|(k, y)| Some((k, y, a.get(k)?)))
                    .filter(|(k, y, x)| {
                        // A range series with no point at `end` on either side (an event
                        // seen at an earlier step only) agrees.
                        if x.is_nan() && y.is_nan() {
                            return false;
                        }
                        // Prometheus has no point at `end` where the daemon has one: the
                        // same drift seen from the other side.
                        if x.is_nan() && !around.contains_key(*k) {
                            return !volatile && around_ours.get(*k).is_none_or(|e| e.2 == 3);
                        }
                        let env = around.get(*k).copied().unwrap_or((**x, **x, 1));
                        !volatile && !close(**y, env, scale)
                    })
                    .map(|(k, y, x)| {
                        format!(
                            "{k}: Prometheus {x} ({:?} around), daemon {y}",
                            around.get(k)
                        )
                    })
                    .collect();
                compared += a.len();
                if !(only_theirs.is_empty() && only_ours.is_empty() && off.is_empty()) {
                    differ.push(format!(
                        "{} / {}: {expr}\n  only in Prometheus: {only_theirs:?}\n  only in the daemon: {only_ours:?}\n  values apart: {off:?}",
                        t.row, t.panel
                    ));
                }
            }
        }
    }
    assert!(
        errors.is_empty(),
        "Prometheus refused:\n{}",
        errors.join("\n")
    );
    assert!(
        ours_refused.is_empty(),
        "the daemon's query API refused:\n{}",
        ours_refused.join("\n")
    );
    eprintln!(
        "{compared} series compared; {} panels differ:\n{}",
        differ.len(),
        differ.join("\n")
    );
    assert!(
        differ.is_empty(),
        "the daemon's API and Prometheus disagree:\n{}",
        differ.join("\n")
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

/// `GET /api/v1/<path>` of a Prometheus-shaped API on loopback `port` (the metadata and
/// status endpoints take no POST in Prometheus).
fn get_api(port: u16, path: &str) -> serde_json::Value {
    let url = format!("http://127.0.0.1:{port}/api/v1/{path}");
    let body = ureq::get(&url)
        .timeout(Duration::from_secs(10))
        .call()
        .unwrap_or_else(|e| panic!("GET {url}: {e}"))
        .into_string()
        .unwrap();
    let v: serde_json::Value =
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("GET {url}: not JSON ({e}): {body}"));
    assert_eq!(v["status"], "success", "GET {url}: {v}");
    v["data"].clone()
}

/// What a Grafana data source asks for besides queries, from the daemon and from a real
/// Prometheus scraping it: the build information has Prometheus's fields, and each family's
/// type and help in the daemon's `/api/v1/metadata` are those Prometheus read from its
/// exposition.
#[test]
fn buildinfo_and_metadata_answer_as_prometheus_does() {
    let daemon = Daemon::start(&[]);
    let prom = Prometheus::start(daemon.port);
    let deadline = Instant::now() + Duration::from_secs(60);
    // Prometheus's metadata fills from the first scrape of the daemon.
    let theirs = loop {
        let m = ureq::get(&format!("http://127.0.0.1:{}/api/v1/metadata", prom.port))
            .call()
            .ok()
            .and_then(|r| r.into_string().ok())
            .and_then(|b| serde_json::from_str::<serde_json::Value>(&b).ok())
            .filter(|v| v["data"].get("monitor_build_info").is_some());
        if let Some(m) = m {
            break m["data"].clone();
        }
        assert!(
            Instant::now() < deadline,
            "Prometheus never scraped the daemon"
        );
        std::thread::sleep(Duration::from_millis(500));
    };

    let (ours, real) = (
        get_api(daemon.port, "status/buildinfo"),
        get_api(prom.port, "status/buildinfo"),
    );
    for (k, v) in real.as_object().unwrap() {
        if v.is_string() {
            assert!(ours[k].is_string(), "buildinfo field {k} missing: {ours}");
        }
    }
    let version = daemon
        .metrics()
        .0
        .lines()
        .find_map(|l| {
            l.strip_prefix("monitor_build_info{")?
                .split("version=\"")
                .nth(1)?
                .split('"')
                .next()
                .map(str::to_string)
        })
        .expect("monitor_build_info has a version");
    assert_eq!(ours["version"], version.as_str());
    assert_eq!(ours["application"], "monitor");

    let ours = get_api(daemon.port, "metadata");
    let mut compared = 0;
    for (name, entries) in theirs.as_object().unwrap() {
        let want = &entries[0];
        let got = ours
            .get(name)
            .unwrap_or_else(|| panic!("{name} is in Prometheus's metadata, not the daemon's"));
        assert_eq!(got.as_array().map(Vec::len), Some(1), "{name}: {got}");
        assert_eq!(got[0]["type"], want["type"], "{name}'s type");
        assert_eq!(got[0]["help"], want["help"], "{name}'s help");
        compared += 1;
    }
    assert!(compared > 30, "only {compared} families compared");
    let one = get_api(daemon.port, "metadata?metric=monitor_refreshes_total");
    assert_eq!(one.as_object().unwrap().len(), 1, "{one}");
    assert_eq!(one["monitor_refreshes_total"][0]["type"], "counter");
    assert_eq!(
        get_api(daemon.port, "metadata?limit=3")
            .as_object()
            .unwrap()
            .len(),
        3
    );
    // Bad input: Prometheus's error shape, naming the parameter.
    let (code, body) = daemon.get("/api/v1/metadata?limit=lots");
    assert_eq!(code, 400, "{body}");
    assert!(
        body.contains("limit") && body.contains("bad_data"),
        "{body}"
    );
}
