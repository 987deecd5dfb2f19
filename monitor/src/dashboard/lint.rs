//! The rules of Grafana's dashboard linter (github.com/grafana/dashboard-linter), ported as
//! tests over the generated dashboard JSON, plus the project's own: every metric a panel
//! queries is one the daemon exports, every query is one the daemon's engine evaluates, every
//! per-group series is filtered by `$group`, every histogram has a heatmap.
//!
//! As the linter does, variables are expanded before parsing: `$__rate_interval` to a
//! duration no panel writes by hand (so a range that is not `$__rate_interval` shows); the
//! other variables sit inside quoted matcher values, which PromQL parses as they are.

use std::collections::BTreeSet;

use promql_parser::{
    label::MatchOp,
    parser::{Expr, VectorSelector},
};
use serde_json::Value;

use super::grafana;
use crate::alert::{catalog, expr::check};

/// What `$__rate_interval` becomes before parsing (the linter uses a magic duration too).
const RATE_INTERVAL: &str = "7919s";
const RATE_INTERVAL_SECS: u64 = 7919;

/// Grafana's unit ids this dashboard may use (a subset of the linter's list, which is
/// Grafana's `valueFormats/categories.ts`).
const VALID_UNITS: &[&str] = &[
    "percentunit",
    "bytes",
    "binBps",
    "s",
    "ops",
    "iops",
    "pps",
    "short",
    "bool_yes_no",
    "none",
];

/// Families the daemon exports, with their metrics' `group` label, whose selectors must be
/// filtered by `$group`: every `monitor_process_*` family but these host-wide ones.
const HOST_WIDE_PROCESS_FAMILIES: &[&str] = &[
    "monitor_processes",
    "monitor_process_groups",
    "monitor_process_exit_events_missed_total",
];

/// The histograms the daemon exports (base names): each must have a heatmap. The privileged
/// test checks this list against the `# TYPE ... histogram` lines of a real exposition.
pub const HISTOGRAMS: &[&str] = &[
    "monitor_runqueue_latency_seconds",
    "monitor_disk_latency_seconds",
    "monitor_disk_queue_wait_seconds",
    "monitor_process_tcp_connect_latency_seconds",
    "monitor_probe_duration_seconds",
    "monitor_service_response_latency_seconds",
    "monitor_service_outbound_response_latency_seconds",
];

struct Target {
    panel: String,
    expr: String,
}

fn dashboard() -> Value {
    grafana::dashboard()
}

/// Every panel but rows (rows hold no panels of their own here: none is collapsed).
fn panels(d: &Value) -> Vec<&Value> {
    d["panels"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["type"] != "row")
        .collect()
}

fn targets(d: &Value) -> Vec<Target> {
    panels(d)
        .into_iter()
        .flat_map(|p| {
            p["targets"].as_array().unwrap().iter().map(|t| Target {
                panel: p["title"].as_str().unwrap().to_string(),
                expr: t["expr"].as_str().unwrap().to_string(),
            })
        })
        .collect()
}

fn expand(expr: &str) -> String {
    expr.replace("$__rate_interval", RATE_INTERVAL)
}

fn parse(t: &Target) -> Expr {
    promql_parser::parser::parse(&expand(&t.expr))
        .unwrap_or_else(|e| panic!("panel {:?}: {}: {e}", t.panel, t.expr))
}

/// Calls `f(node, parents)` on every node, parents outermost first.
fn walk<'a>(e: &'a Expr, parents: &mut Vec<&'a Expr>, f: &mut dyn FnMut(&'a Expr, &[&'a Expr])) {
    f(e, parents);
    parents.push(e);
    match e {
        Expr::Aggregate(a) => {
            walk(&a.expr, parents, f);
            if let Some(p) = &a.param {
                walk(p, parents, f);
            }
        }
        Expr::Unary(u) => walk(&u.expr, parents, f),
        Expr::Binary(b) => {
            walk(&b.lhs, parents, f);
            walk(&b.rhs, parents, f);
        }
        Expr::Paren(p) => walk(&p.expr, parents, f),
        Expr::Subquery(s) => walk(&s.expr, parents, f),
        Expr::Call(c) => {
            for a in &c.args.args {
                walk(a, parents, f);
            }
        }
        _ => {}
    }
    parents.pop();
}

/// Every selector of `e`, instant or inside a range.
fn selectors(e: &Expr) -> Vec<VectorSelector> {
    let mut out = Vec::new();
    walk(e, &mut Vec::new(), &mut |n, _| match n {
        Expr::VectorSelector(vs) => out.push(vs.clone()),
        Expr::MatrixSelector(m) => out.push(m.vs.clone()),
        _ => {}
    });
    out
}

fn name(vs: &VectorSelector) -> String {
    vs.name.clone().expect("every selector names its metric")
}

fn has_regex_matcher(vs: &VectorSelector, label: &str, value: &str) -> bool {
    vs.matchers
        .matchers
        .iter()
        .any(|m| m.name == label && matches!(m.op, MatchOp::Re(_)) && m.value == value)
}

fn variable<'a>(d: &'a Value, name: &str) -> &'a Value {
    d["templating"]["list"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == name)
        .unwrap_or_else(|| panic!("no template variable {name}"))
}

/// template-datasource-rule: a data source variable named `datasource`, labelled
/// "Data source", of Prometheus data sources.
#[test]
fn template_datasource() {
    let d = dashboard();
    let ds = variable(&d, "datasource");
    assert_eq!(ds["type"], "datasource");
    assert_eq!(ds["label"], "Data source");
    assert_eq!(ds["query"], "prometheus");
}

/// template-job-rule, template-instance-rule (and `group`, by the same rule): a Prometheus
/// query variable named and labelled so, on the templated data source, multi-select, "All"
/// as `.+`; template-on-time-change-reload: refreshed when the time range changes;
/// template-label-promql-rule: its `label_values` selector is valid PromQL.
#[test]
fn template_job_instance_group() {
    let d = dashboard();
    for name in ["job", "instance", "group"] {
        let v = variable(&d, name);
        assert_eq!(v["type"], "query", "{name}");
        assert_eq!(v["label"], name, "{name}");
        assert_eq!(v["datasource"]["uid"], "${datasource}", "{name}");
        assert_eq!(v["multi"], true, "{name} must be multi-select");
        assert_eq!(v["includeAll"], true, "{name}");
        assert_eq!(v["allValue"], ".+", "{name}");
        assert_eq!(v["refresh"], 2, "{name} must reload on time range change");
        let q = v["query"].as_str().unwrap();
        let inner = q
            .strip_prefix("label_values(")
            .and_then(|s| s.strip_suffix(&format!(", {name})")))
            .unwrap_or_else(|| panic!("{name}: {q} is not label_values(selector, {name})"));
        let e = promql_parser::parser::parse(inner).unwrap_or_else(|e| panic!("{name}: {e}"));
        for vs in selectors(&e) {
            assert!(
                catalog::exportable(&self::name(&vs)),
                "{name}: {q} names a metric the daemon does not export"
            );
        }
    }
    // The instance list comes from the daemon's build info, as the issue asks.
    assert!(variable(&d, "instance")["query"]
        .as_str()
        .unwrap()
        .contains("monitor_build_info"));
}

/// panel-datasource-rule: every panel and target uses the templated data source.
#[test]
fn panel_datasource() {
    let d = dashboard();
    for p in panels(&d) {
        assert_eq!(p["datasource"]["uid"], "${datasource}", "{}", p["title"]);
        for t in p["targets"].as_array().unwrap() {
            assert_eq!(t["datasource"]["uid"], "${datasource}", "{}", p["title"]);
        }
    }
}

/// panel-title-description-rule, panel-no-targets-rule, panel-units-rule (heatmaps: the
/// unit of their y axis, the buckets' bound).
#[test]
fn panel_titles_descriptions_targets_units() {
    let d = dashboard();
    let mut titles = BTreeSet::new();
    for p in panels(&d) {
        let title = p["title"].as_str().unwrap_or_default();
        assert!(!title.is_empty(), "a panel without a title: {p}");
        assert!(titles.insert(title), "two panels titled {title:?}");
        assert!(
            !p["description"].as_str().unwrap_or_default().is_empty(),
            "{title}: no description"
        );
        assert!(
            !p["targets"].as_array().unwrap().is_empty(),
            "{title}: no targets"
        );
        let unit = if p["type"] == "heatmap" {
            &p["options"]["yAxis"]["unit"]
        } else {
            &p["fieldConfig"]["defaults"]["unit"]
        };
        let unit = unit.as_str().unwrap_or_default();
        assert!(
            VALID_UNITS.contains(&unit),
            "{title}: no or invalid unit {unit:?}"
        );
    }
}

/// target-promql-rule: every expression parses (variables expanded).
#[test]
fn target_promql() {
    for t in targets(&dashboard()) {
        parse(&t);
    }
}

/// target-job-rule, target-instance-rule: every selector has `job=~"$job"` and
/// `instance=~"$instance"`; and (ours) every selector of a per-group family `group=~"$group"`.
#[test]
fn target_job_instance_group_matchers() {
    for t in targets(&dashboard()) {
        for vs in selectors(&parse(&t)) {
            let n = name(&vs);
            assert!(
                has_regex_matcher(&vs, "job", "$job"),
                "{}: {n} has no job=~\"$job\" matcher",
                t.panel
            );
            assert!(
                has_regex_matcher(&vs, "instance", "$instance"),
                "{}: {n} has no instance=~\"$instance\" matcher",
                t.panel
            );
            if n.starts_with("monitor_process_") && !HOST_WIDE_PROCESS_FAMILIES.contains(&&*n) {
                assert!(
                    has_regex_matcher(&vs, "group", "$group"),
                    "{}: {n} has a group label but no group=~\"$group\" matcher",
                    t.panel
                );
            }
        }
    }
}

/// target-rate-interval-rule: the window of every `rate` and `irate` is `$__rate_interval`
/// (ours: of every window, `increase` included).
#[test]
fn target_rate_interval() {
    for t in targets(&dashboard()) {
        walk(&parse(&t), &mut Vec::new(), &mut |n, _| {
            if let Expr::MatrixSelector(m) = n {
                assert_eq!(
                    m.range.as_secs(),
                    RATE_INTERVAL_SECS,
                    "{}: {} should use $__rate_interval",
                    t.panel,
                    t.expr
                );
            }
        });
    }
}

/// target-counter-agg-rule: a counter (`_total`; ours: also a histogram's `_bucket`,
/// `_count` and `_sum`) only as the range of a `rate`, `irate` or `increase`.
#[test]
fn target_counter_agg() {
    let counter = |n: &str| {
        n.ends_with("_total")
            || HISTOGRAMS.iter().any(|h| {
                ["_bucket", "_count", "_sum"]
                    .iter()
                    .any(|s| n == format!("{h}{s}"))
            })
    };
    for t in targets(&dashboard()) {
        walk(&parse(&t), &mut Vec::new(), &mut |n, parents| match n {
            Expr::VectorSelector(vs) => assert!(
                !counter(&name(vs)),
                "{}: counter {} not inside rate, irate or increase: {}",
                t.panel,
                name(vs),
                t.expr
            ),
            Expr::MatrixSelector(m) if counter(&name(&m.vs)) => {
                let ok = matches!(
                    parents.last(),
                    Some(Expr::Call(c)) if ["rate", "irate", "increase"].contains(&c.func.name)
                );
                assert!(
                    ok,
                    "{}: counter {} not inside rate, irate or increase: {}",
                    t.panel,
                    name(&m.vs),
                    t.expr
                );
            }
            _ => {}
        });
    }
}

/// Every metric a panel queries is one the daemon can export (the alert catalogue, which a
/// privileged test checks against the running daemon), and every query is in the subset the
/// daemon's own engine evaluates, so its query API and page can answer it.
#[test]
fn queries_name_exported_metrics_and_fit_the_engine() {
    for t in targets(&dashboard()) {
        let e = parse(&t);
        for vs in selectors(&e) {
            let n = name(&vs);
            assert!(
                catalog::exportable(&n),
                "{}: {n} is not a metric the daemon exports",
                t.panel
            );
        }
        match check::check(&expand(&t.expr)) {
            Ok(_) => {}
            Err(e) => panic!(
                "{}: the daemon's engine would not evaluate {}: {e}",
                t.panel, t.expr
            ),
        }
    }
}

/// Every histogram has a heatmap of its buckets, `sum by (le) (rate(x_bucket[...]))`, in
/// Prometheus's heatmap format; and every heatmap is of a histogram.
#[test]
fn every_histogram_has_a_heatmap() {
    let d = dashboard();
    let mut drawn = BTreeSet::new();
    for p in panels(&d) {
        if p["type"] != "heatmap" {
            continue;
        }
        for t in p["targets"].as_array().unwrap() {
            assert_eq!(t["format"], "heatmap", "{}", p["title"]);
            assert_eq!(t["legendFormat"], "{{le}}", "{}", p["title"]);
            let expr = t["expr"].as_str().unwrap();
            assert!(expr.starts_with("sum by (le) (rate("), "{expr}");
            let e = promql_parser::parser::parse(&expand(expr)).unwrap();
            for vs in selectors(&e) {
                let n = name(&vs);
                let base = n
                    .strip_suffix("_bucket")
                    .unwrap_or_else(|| panic!("{}: heatmap of {n}", p["title"]));
                drawn.insert(base.to_string());
            }
        }
    }
    let all: BTreeSet<String> = HISTOGRAMS.iter().map(|s| s.to_string()).collect();
    assert_eq!(drawn, all, "histograms and heatmaps differ");
}

/// Top-group tables and group series link to the drill-down, which exists.
#[test]
fn group_links_lead_to_the_drill_down() {
    let d = dashboard();
    let rows: Vec<&Value> = d["panels"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["type"] == "row")
        .collect();
    let drill_down: Vec<String> = super::catalogue::rows()
        .into_iter()
        .filter(|r| r.drill_down)
        .map(|r| r.title)
        .collect();
    assert_eq!(drill_down.len(), 1, "one drill-down row");
    assert!(rows.iter().any(|r| r["title"] == drill_down[0].as_str()));
    let mut links = 0;
    for p in panels(&d) {
        let text = p["fieldConfig"].to_string();
        if text.contains("var-group=") {
            links += 1;
            assert!(
                text.contains(&format!("/d/{}/", grafana::UID)),
                "{}",
                p["title"]
            );
        }
    }
    assert!(links >= 5, "only {links} panels link to the drill-down");
}

/// Forward migrations of newer Grafanas (schema 42: `custom.hideFrom`, 43: `formatTime`)
/// have nothing to change here, so importing into them gives this dashboard.
#[test]
fn newer_schema_migrations_change_nothing() {
    let text = grafana::text();
    assert!(!text.contains("hideFrom"));
    assert!(!text.contains("formatTime"));
    assert_eq!(dashboard()["schemaVersion"], grafana::SCHEMA_VERSION);
}
