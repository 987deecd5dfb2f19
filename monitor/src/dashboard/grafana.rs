//! The Grafana dashboard, generated from the panel catalogue: classic dashboard JSON (what
//! grafana.com exchanges and every current Grafana imports). `monitor dashboard grafana`
//! prints it; `monitor/dist/grafana/monitor.json` is the same text, checked by a test.

use serde_json::{json, Value};

use super::catalogue::{self, Kind, Order, Panel, Row, Thresholds, Unit};

/// The dashboard's uid: links between its panels (the drill-down) name it.
pub const UID: &str = "monitor-host";
const TITLE: &str = "monitor";
/// The classic model's schema version. Grafana migrates a dashboard forward from its version
/// on import, and its backend migration fails on a version above the newest it knows; so 41,
/// below the newest of current Grafana (43), whose later steps have nothing to do here (42
/// hides from tooltips the fields hidden from a chart, 43 turns `formatTime` transformations
/// into `convertFieldType`; a unit test checks this dashboard has neither).
pub const SCHEMA_VERSION: u64 = 41;
/// Grafana's width of a dashboard, in grid columns.
const WIDTH: u64 = 24;

fn datasource() -> Value {
    json!({"type": "prometheus", "uid": "${datasource}"})
}

/// `label_values` variable over `selector`'s `label`: multi-select with "All" as `.+`.
fn query_variable(name: &str, label: &str, query: &str) -> Value {
    json!({
        "name": name,
        "label": label,
        "type": "query",
        "datasource": datasource(),
        "query": query,
        "refresh": 2,
        "multi": true,
        "includeAll": true,
        "allValue": ".+",
        "options": [],
        "regex": "",
        "sort": 1,
        "hide": 0,
    })
}

fn variables() -> Value {
    json!([
        {
            "name": "datasource",
            "label": "Data source",
            "type": "datasource",
            "query": "prometheus",
            "options": [],
            "regex": "",
            "refresh": 1,
            "multi": false,
            "includeAll": false,
            "hide": 0,
        },
        query_variable("job", "job", "label_values(monitor_build_info, job)"),
        query_variable(
            "instance",
            "instance",
            r#"label_values(monitor_build_info{job=~"$job"}, instance)"#,
        ),
        query_variable(
            "group",
            "group",
            r#"label_values(monitor_process_cpu_seconds_total{job=~"$job",instance=~"$instance"}, group)"#,
        ),
    ])
}

/// The drill-down for the group named by `value` (a data link template), keeping the time
/// range and the other variables.
fn group_link(value: &str) -> Value {
    json!([{
        "title": format!("Drill down into {value}"),
        "url": format!(
            "/d/{UID}/{TITLE}?${{__url_time_range}}&${{datasource:queryparam}}&${{job:queryparam}}&${{instance:queryparam}}&var-group={value}"
        ),
    }])
}

fn thresholds(t: Thresholds) -> Value {
    let steps = match t {
        Thresholds::None => json!([{"color": "green", "value": null}]),
        Thresholds::Above(x) => json!([
            {"color": "green", "value": null},
            {"color": "red", "value": x},
        ]),
        Thresholds::Below(x) => json!([
            {"color": "red", "value": null},
            {"color": "green", "value": x},
        ]),
    };
    json!({"mode": "absolute", "steps": steps})
}

fn targets(p: &Panel) -> Value {
    let instant = matches!(p.kind, Kind::Table { .. });
    let format = match p.kind {
        Kind::Heatmap => "heatmap",
        Kind::Table { .. } => "table",
        _ => "time_series",
    };
    p.queries
        .iter()
        .zip('A'..='Z')
        .map(|(q, ref_id)| {
            json!({
                "datasource": datasource(),
                "editorMode": "code",
                "expr": q.expr,
                "legendFormat": q.legend,
                "format": format,
                "instant": instant,
                "range": !instant,
                "refId": ref_id.to_string(),
            })
        })
        .collect()
}

/// (width, height) in grid units.
fn size(k: Kind) -> (u64, u64) {
    match k {
        Kind::Stat { .. } => (4, 4),
        _ => (12, 8),
    }
}

fn panel_json(p: &Panel, id: u64, x: u64, y: u64) -> Value {
    let (w, h) = size(p.kind);
    let mut v = json!({
        "id": id,
        "title": p.title,
        "description": p.description,
        "datasource": datasource(),
        "gridPos": {"h": h, "w": w, "x": x, "y": y},
        "targets": targets(p),
    });
    let unit = p.unit.grafana();
    // Ratios, stacks and flags start at 0; other axes are Grafana's choice.
    let zero_based = |stacked: bool| matches!(p.unit, Unit::Ratio | Unit::Bool) || stacked;
    match p.kind {
        Kind::TimeSeries { stacked } => {
            v["type"] = json!("timeseries");
            v["fieldConfig"] = json!({
                "defaults": {
                    "unit": unit,
                    "custom": {
                        "drawStyle": "line",
                        "lineWidth": 1,
                        "fillOpacity": if stacked { 30 } else { 10 },
                        "showPoints": "never",
                        "spanNulls": false,
                        "stacking": {"mode": if stacked { "normal" } else { "none" }, "group": "A"},
                    },
                    "links": if p.links_to_group { group_link("${__field.labels.group}") } else { json!([]) },
                },
                "overrides": [],
            });
            v["options"] = json!({
                "legend": {"displayMode": "list", "placement": "bottom", "showLegend": true, "calcs": []},
                "tooltip": {"mode": "multi", "sort": "desc"},
            });
        }
        Kind::Stat { thresholds: t } => {
            v["type"] = json!("stat");
            v["fieldConfig"] = json!({
                "defaults": {
                    "unit": unit,
                    "color": {"mode": "thresholds"},
                    "thresholds": thresholds(t),
                },
                "overrides": [],
            });
            v["options"] = json!({
                "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": false},
                "colorMode": "value",
                "graphMode": "area",
                "justifyMode": "auto",
                "orientation": "auto",
                "textMode": "auto",
            });
        }
        Kind::Heatmap => {
            v["type"] = json!("heatmap");
            v["fieldConfig"] = json!({
                "defaults": {"custom": {"scaleDistribution": {"type": "linear"}}},
                "overrides": [],
            });
            v["options"] = json!({
                "calculate": false,
                "cellGap": 1,
                "color": {"mode": "scheme", "scheme": "Oranges", "scale": "exponential", "exponent": 0.5, "steps": 64, "reverse": false},
                "yAxis": {"axisPlacement": "left", "unit": unit},
                "rowsFrame": {"layout": "auto"},
                "filterValues": {"le": 1e-9},
                "legend": {"show": true},
                "tooltip": {"mode": "single", "yHistogram": true, "showColorScale": false},
                "showValue": "never",
            });
        }
        Kind::Table { order, limit } => {
            v["type"] = json!("table");
            let overrides = if p.links_to_group {
                json!([{
                    "matcher": {"id": "byName", "options": "group"},
                    "properties": [{"id": "links", "value": group_link("${__value.raw}")}],
                }])
            } else {
                json!([])
            };
            v["fieldConfig"] = json!({
                "defaults": {"unit": unit, "custom": {"align": "auto"}},
                "overrides": overrides,
            });
            v["options"] = json!({"showHeader": true, "cellHeight": "sm"});
            let mut transformations = vec![json!({
                "id": "sortBy",
                "options": {"fields": {}, "sort": [{"field": "Value", "desc": order == Order::Desc}]},
            })];
            if let Some(n) = limit {
                transformations.push(json!({"id": "limit", "options": {"limitField": n}}));
            }
            transformations.push(json!({
                "id": "organize",
                "options": {"excludeByName": {"Time": true}, "renameByName": {"Value": p.title}},
            }));
            v["transformations"] = Value::Array(transformations);
        }
    }
    let defaults = &mut v["fieldConfig"]["defaults"];
    if zero_based(matches!(p.kind, Kind::TimeSeries { stacked: true })) {
        defaults["min"] = json!(0);
    }
    if p.unit == Unit::Count && matches!(p.kind, Kind::Stat { .. }) {
        defaults["decimals"] = json!(0);
    }
    v
}

fn row_json(r: &Row, id: u64, y: u64) -> Value {
    json!({
        "id": id,
        "type": "row",
        "title": r.title,
        "description": r.description,
        "collapsed": false,
        "gridPos": {"h": 1, "w": WIDTH, "x": 0, "y": y},
        "panels": [],
    })
}

/// Rows and panels laid out left to right, top to bottom.
fn panels(rows: &[Row]) -> Vec<Value> {
    let mut out = Vec::new();
    let (mut id, mut y) = (1, 0);
    for r in rows {
        out.push(row_json(r, id, y));
        id += 1;
        y += 1;
        let (mut x, mut line_height) = (0, 0);
        for p in &r.panels {
            let (w, h) = size(p.kind);
            if x + w > WIDTH {
                y += line_height;
                x = 0;
                line_height = 0;
            }
            out.push(panel_json(p, id, x, y));
            id += 1;
            x += w;
            line_height = line_height.max(h);
        }
        y += line_height;
    }
    out
}

/// The whole dashboard.
pub fn dashboard() -> Value {
    let rows = catalogue::rows();
    json!({
        "__requires": [
            {"type": "grafana", "id": "grafana", "name": "Grafana", "version": "10.4.0"},
            {"type": "datasource", "id": "prometheus", "name": "Prometheus", "version": "1.0.0"},
            {"type": "panel", "id": "timeseries", "name": "Time series", "version": ""},
            {"type": "panel", "id": "stat", "name": "Stat", "version": ""},
            {"type": "panel", "id": "heatmap", "name": "Heatmap", "version": ""},
            {"type": "panel", "id": "table", "name": "Table", "version": ""},
        ],
        "annotations": {"list": [{
            "builtIn": 1,
            "datasource": {"type": "grafana", "uid": "-- Grafana --"},
            "enable": true,
            "hide": true,
            "iconColor": "rgba(0, 211, 255, 1)",
            "name": "Annotations & Alerts",
            "type": "dashboard",
        }]},
        "description": format!(
            "The eBPF host monitor {}: host CPU, memory, disk, space and network in USE order, \
             the process groups behind them, services, probes, log matches, alerts and the \
             daemon's own health. Generated by `monitor dashboard grafana`.",
            crate::build_info::VERSION
        ),
        "editable": true,
        "fiscalYearStartMonth": 0,
        "graphTooltip": 1,
        "id": null,
        "links": [],
        "panels": panels(&rows),
        "refresh": "30s",
        "schemaVersion": SCHEMA_VERSION,
        "tags": ["monitor", "ebpf", "linux"],
        "templating": {"list": variables()},
        "time": {"from": "now-1h", "to": "now"},
        "timepicker": {},
        "timezone": "browser",
        "title": TITLE,
        "uid": UID,
        "version": 1,
        "weekStart": "",
    })
}

/// The dashboard as `monitor dashboard grafana` prints it (and as checked in).
pub fn text() -> String {
    let mut s = serde_json::to_string_pretty(&dashboard()).expect("JSON values serialize");
    s.push('\n');
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHECKED_IN: &str = include_str!("../../dist/grafana/monitor.json");

    /// The checked-in dashboard is this version's. After a deliberate change, bless it with
    /// the other golden files: `cargo xtask bless` (`MONITOR_BLESS=1 AYA_BUILD_SKIP=1 cargo
    /// test -p monitor golden`), or `monitor dashboard grafana > monitor/dist/grafana/monitor.json`.
    #[test]
    fn golden_dashboard_is_checked_in() {
        let now = text();
        if std::env::var_os("MONITOR_BLESS").is_some() {
            let path = concat!(env!("CARGO_MANIFEST_DIR"), "/dist/grafana/monitor.json");
            std::fs::write(path, &now).unwrap();
            return;
        }
        assert!(
            CHECKED_IN == now,
            "monitor/dist/grafana/monitor.json differs from `monitor dashboard grafana`; \
             if the change is meant, bless it (`cargo xtask bless`) and commit it"
        );
    }

    #[test]
    fn layout_has_no_overlaps_and_unique_ids() {
        let d = dashboard();
        let panels = d["panels"].as_array().unwrap();
        let mut ids = std::collections::HashSet::new();
        let mut cells = std::collections::HashSet::new();
        for p in panels {
            assert!(ids.insert(p["id"].as_u64().unwrap()), "duplicate id {p}");
            let g = &p["gridPos"];
            let (x, y, w, h) = (
                g["x"].as_u64().unwrap(),
                g["y"].as_u64().unwrap(),
                g["w"].as_u64().unwrap(),
                g["h"].as_u64().unwrap(),
            );
            assert!(x + w <= WIDTH, "{} is wider than the grid", p["title"]);
            for cx in x..x + w {
                for cy in y..y + h {
                    assert!(
                        cells.insert((cx, cy)),
                        "{} overlaps another panel",
                        p["title"]
                    );
                }
            }
        }
    }
}
