//! `/api/v1/status/buildinfo` and `/api/v1/metadata` in Prometheus's shapes: Grafana's
//! Prometheus data source asks for the first when it is saved (to tell which flavour it talks
//! to) and for the second to show a metric's type and help in its query editor.

use std::{collections::BTreeMap, sync::Arc};

use axum::{
    extract::{RawQuery, State},
    http::{header, StatusCode},
    response::{IntoResponse, Response},
    routing::get,
    Router,
};
use prometheus::proto::{MetricFamily, MetricType};
use serde_json::{json, Value};

use crate::{build_info, scrape::Reader};

pub fn router(reader: Arc<Reader>) -> Router {
    Router::new()
        .route("/api/v1/status/buildinfo", get(buildinfo))
        .route("/api/v1/metadata", get(metadata))
        .with_state(reader)
}

fn respond(code: StatusCode, body: &Value) -> Response {
    (
        code,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

fn bad(e: &str) -> Response {
    respond(
        StatusCode::BAD_REQUEST,
        &json!({"status": "error", "errorType": "bad_data", "error": e}),
    )
}

async fn buildinfo() -> Response {
    // `application` names what answers (as Mimir's does), so nothing takes this daemon's
    // version for a Prometheus version; the Go fields stay empty: there is no Go here.
    respond(
        StatusCode::OK,
        &json!({"status": "success", "data": {
            "application": "monitor",
            "version": build_info::VERSION,
            "revision": build_info::REVISION,
            "branch": "",
            "buildUser": "",
            "buildDate": "",
            "goVersion": "",
        }}),
    )
}

/// What `/api/v1/metadata` takes: `metric` (one family), `limit` (families) and
/// `limit_per_metric`, as Prometheus does (a negative or absent limit is none).
struct Params {
    metric: Option<String>,
    limit: Option<usize>,
}

fn params(q: Option<&str>) -> Result<Params, String> {
    let mut p = Params {
        metric: None,
        limit: None,
    };
    for (k, v) in url::form_urlencoded::parse(q.unwrap_or("").as_bytes()) {
        match k.as_ref() {
            "metric" => p.metric = Some(v.into_owned()),
            "limit" => {
                let n: i64 = v
                    .parse()
                    .map_err(|_| format!("invalid parameter \"limit\": {v:?} is not a number"))?;
                p.limit = usize::try_from(n).ok();
            }
            // Each family has exactly one entry here, so any per-metric limit of 1 or more
            // leaves it as it is; 0 is not one Prometheus accepts either.
            "limit_per_metric" => {
                let n: i64 = v.parse().map_err(|_| {
                    format!("invalid parameter \"limit_per_metric\": {v:?} is not a number")
                })?;
                if n == 0 {
                    return Err("invalid parameter \"limit_per_metric\": 0 is not a limit".into());
                }
            }
            _ => {}
        }
    }
    Ok(p)
}

fn kind(t: MetricType) -> &'static str {
    match t {
        MetricType::COUNTER => "counter",
        MetricType::GAUGE => "gauge",
        MetricType::HISTOGRAM => "histogram",
        MetricType::SUMMARY => "summary",
        MetricType::UNTYPED => "unknown",
    }
}

/// Every family's type and help, by family name (a histogram under its own name, not its
/// `_bucket` series), as Prometheus lists the metadata of its targets.
fn metadata_of(families: &[MetricFamily], p: &Params) -> Value {
    let mut out: BTreeMap<&str, Value> = BTreeMap::new();
    for f in families {
        if p.metric.as_deref().is_some_and(|m| m != f.name()) {
            continue;
        }
        out.entry(f.name()).or_insert_with(
            || json!([{"type": kind(f.get_field_type()), "help": f.help(), "unit": ""}]),
        );
    }
    let limit = p.limit.unwrap_or(usize::MAX);
    Value::Object(
        out.into_iter()
            .take(limit)
            .map(|(k, v)| (k.to_string(), v))
            .collect(),
    )
}

async fn metadata(State(reader): State<Arc<Reader>>, RawQuery(q): RawQuery) -> Response {
    let p = match params(q.as_deref()) {
        Ok(p) => p,
        Err(e) => return bad(&e),
    };
    // Read as a scrape reads them (the families' set changes with the collectors enabled);
    // a data source asks for this rarely, so it is not kept.
    match tokio::task::spawn_blocking(move || metadata_of(&reader.families(), &p)).await {
        Ok(data) => respond(StatusCode::OK, &json!({"status": "success", "data": data})),
        Err(e) => {
            tracing::error!(error = %e, "metadata handler failed");
            respond(
                StatusCode::INTERNAL_SERVER_ERROR,
                &json!({"status": "error", "errorType": "internal", "error": "internal error"}),
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::{counter, family, gauge};

    fn families() -> Vec<MetricFamily> {
        vec![
            family(
                "b_total",
                "B things.",
                MetricType::COUNTER,
                vec![counter(&[], 1.0)],
            ),
            family("a", "An a.", MetricType::GAUGE, vec![gauge(&[], 1.0)]),
        ]
    }

    #[test]
    fn lists_each_family_once_by_name() {
        let p = params(None).unwrap();
        assert_eq!(
            metadata_of(&families(), &p),
            json!({
                "a": [{"type": "gauge", "help": "An a.", "unit": ""}],
                "b_total": [{"type": "counter", "help": "B things.", "unit": ""}],
            })
        );
        let p = params(Some("metric=b_total")).unwrap();
        assert_eq!(metadata_of(&families(), &p).as_object().unwrap().len(), 1);
        let p = params(Some("limit=1")).unwrap();
        assert_eq!(
            metadata_of(&families(), &p),
            json!({"a": [{"type": "gauge", "help": "An a.", "unit": ""}]})
        );
        let p = params(Some("limit=-1")).unwrap();
        assert_eq!(metadata_of(&families(), &p).as_object().unwrap().len(), 2);
    }

    #[test]
    fn bad_limits_are_named() {
        for (q, why) in [
            ("limit=many", "\"limit\""),
            ("limit_per_metric=x", "\"limit_per_metric\""),
            ("limit_per_metric=0", "\"limit_per_metric\""),
        ] {
            let e = params(Some(q)).err().unwrap();
            assert!(e.contains(why), "{q}: {e}");
        }
    }
}
