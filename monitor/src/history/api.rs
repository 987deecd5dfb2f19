//! Prometheus's HTTP query API over the history: `/api/v1/query`, `/api/v1/query_range`,
//! `/api/v1/series`, `/api/v1/labels` and `/api/v1/label/<name>/values`, by GET or by a
//! form POST, with Prometheus's answer and error shapes (so Grafana's Prometheus data source,
//! and the daemon's own page, can read it).

use std::{
    collections::BTreeSet,
    sync::{Arc, Mutex},
    time::{SystemTime, UNIX_EPOCH},
};

use axum::{
    body::Bytes,
    extract::{Path, RawQuery, State},
    http::{header, StatusCode},
    response::{IntoResponse, Response},
    routing::get,
    Router,
};
use promql_parser::label::Matchers;
use serde_json::{json, Value};

use super::{
    query::{selector, Error, Instant, Query},
    store::Store,
};
use crate::alert::{expr::Labels, notify::payload::format_value};

/// Prometheus's cap on the points of one series in a range query.
const MAX_POINTS: f64 = 11_000.0;

/// Parsed queries kept: a page or a dashboard sends the same few dozen again at every
/// refresh, and parsing compiles each regular-expression matcher anew.
const PARSED: usize = 256;

#[derive(Clone)]
struct Shared {
    store: Arc<Mutex<Store>>,
    parsed: Arc<Mutex<lru::LruCache<String, Arc<Query>>>>,
}

impl Shared {
    fn parse(&self, text: &str) -> Result<Arc<Query>, Error> {
        let lock = || self.parsed.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(q) = lock().get(text) {
            return Ok(q.clone());
        }
        let q = Arc::new(Query::parse(text)?);
        lock().put(text.to_string(), q.clone());
        Ok(q)
    }
}

pub fn router(store: Arc<Mutex<Store>>) -> Router {
    let parsed = lru::LruCache::new(std::num::NonZeroUsize::new(PARSED).expect("not zero"));
    Router::new()
        .route("/api/v1/query", get(query).post(query))
        .route("/api/v1/query_range", get(query_range).post(query_range))
        .route("/api/v1/series", get(series).post(series))
        .route("/api/v1/labels", get(labels).post(labels))
        .route("/api/v1/label/{name}/values", get(label_values))
        .with_state(Shared {
            store,
            parsed: Arc::new(Mutex::new(parsed)),
        })
}

/// The parameters of the URL and of a form body, in that order.
struct Params(Vec<(String, String)>);

impl Params {
    fn new(query: Option<String>, body: &Bytes) -> Self {
        let mut v: Vec<(String, String)> = query
            .as_deref()
            .map(|q| {
                url::form_urlencoded::parse(q.as_bytes())
                    .into_owned()
                    .collect()
            })
            .unwrap_or_default();
        v.extend(url::form_urlencoded::parse(body).into_owned());
        Self(v)
    }

    fn get(&self, k: &str) -> Option<&str> {
        self.0.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str())
    }

    fn all(&self, k: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(n, _)| n == k)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    fn time(&self, k: &str) -> Result<Option<f64>, Error> {
        self.get(k).map(|v| parse_time(k, v)).transpose()
    }
}

fn bad(msg: String) -> Error {
    Error::BadData(msg)
}

fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// A time as Prometheus takes it: Unix seconds (a float) or RFC 3339.
fn parse_time(k: &str, v: &str) -> Result<f64, Error> {
    if let Ok(t) = v.parse::<f64>() {
        if t.is_finite() {
            return Ok(t);
        }
    }
    humantime::parse_rfc3339_weak(v.trim_end_matches('Z'))
        .ok()
        .or_else(|| humantime::parse_rfc3339(v).ok())
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map(|d| d.as_secs_f64())
        .ok_or_else(|| {
            bad(format!(
                "invalid parameter {k:?}: cannot parse {v:?} to a valid timestamp \
                 (Unix seconds or RFC 3339)"
            ))
        })
}

/// A step: seconds (a float) or a duration such as `15s`.
fn parse_step(v: &str) -> Result<f64, Error> {
    let s = v
        .parse::<f64>()
        .ok()
        .or_else(|| humantime::parse_duration(v).ok().map(|d| d.as_secs_f64()))
        .filter(|s| s.is_finite())
        .ok_or_else(|| {
            bad(format!(
                "invalid parameter \"step\": cannot parse {v:?} to a valid duration"
            ))
        })?;
    if s <= 0.0 {
        return Err(bad(
            "zero or negative query resolution step widths are not accepted. Try a positive \
             integer"
                .into(),
        ));
    }
    Ok(s)
}

fn answer(r: Result<Value, Error>) -> Response {
    let (code, body) = match r {
        Ok(data) => (StatusCode::OK, json!({"status": "success", "data": data})),
        Err(Error::BadData(e)) => (
            StatusCode::BAD_REQUEST,
            json!({"status": "error", "errorType": "bad_data", "error": e}),
        ),
        Err(Error::Execution(e)) => (
            StatusCode::UNPROCESSABLE_ENTITY,
            json!({"status": "error", "errorType": "execution", "error": e}),
        ),
    };
    (
        code,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

/// Runs `f` on the blocking pool (a query over a long range takes a while).
async fn blocking(f: impl FnOnce() -> Result<Value, Error> + Send + 'static) -> Response {
    match tokio::task::spawn_blocking(f).await {
        Ok(r) => answer(r),
        Err(e) => {
            tracing::error!(error = %e, "query handler failed");
            answer(Err(Error::Execution("internal error".into())))
        }
    }
}

fn point(t: f64, v: f64) -> Value {
    json!([t, format_value(v)])
}

async fn query(State(shared): State<Shared>, RawQuery(q): RawQuery, body: Bytes) -> Response {
    let p = Params::new(q, &body);
    blocking(move || {
        let query = shared.parse(p.get("query").unwrap_or(""))?;
        let t = p.time("time")?.unwrap_or_else(now);
        Ok(match query.instant(&shared.store, t)? {
            Instant::Scalar(v) => json!({"resultType": "scalar", "result": point(t, v)}),
            Instant::Vector(v) => json!({
                "resultType": "vector",
                "result": v.into_iter().map(|s| json!({
                    "metric": s.labels,
                    "value": point(t, s.value),
                })).collect::<Vec<_>>(),
            }),
        })
    })
    .await
}

async fn query_range(State(shared): State<Shared>, RawQuery(q): RawQuery, body: Bytes) -> Response {
    let p = Params::new(q, &body);
    blocking(move || {
        let query = shared.parse(p.get("query").unwrap_or(""))?;
        let need = |k: &str| {
            p.time(k)?
                .ok_or_else(|| bad(format!("invalid parameter {k:?}: missing")))
        };
        let (start, end) = (need("start")?, need("end")?);
        let step = parse_step(
            p.get("step")
                .ok_or_else(|| bad("invalid parameter \"step\": missing".into()))?,
        )?;
        if end < start {
            return Err(bad(
                "invalid parameter \"end\": end timestamp must not be before start time".into(),
            ));
        }
        if (end - start) / step > MAX_POINTS {
            return Err(bad(
                "exceeded maximum resolution of 11,000 points per timeseries. Try decreasing \
                 the query resolution (?step=XX)"
                    .into(),
            ));
        }
        let m = query.range(&shared.store, start, end, step)?;
        Ok(json!({
            "resultType": "matrix",
            "result": m.into_iter().map(|(labels, pts)| json!({
                "metric": labels,
                "values": pts.into_iter().map(|(t, v)| point(t, v)).collect::<Vec<_>>(),
            })).collect::<Vec<_>>(),
        }))
    })
    .await
}

/// The `match[]` selectors, each a plain series selector.
fn matches(p: &Params) -> Result<Vec<(Option<String>, Matchers)>, Error> {
    p.all("match[]")
        .into_iter()
        .map(|m| match promql_parser::parser::parse(m) {
            Ok(promql_parser::parser::Expr::VectorSelector(vs)) => Ok(selector(&vs)),
            Ok(_) => Err(bad(format!(
                "invalid parameter \"match[]\": {m:?} is not a series selector"
            ))),
            Err(e) => Err(bad(format!("invalid parameter \"match[]\": {e}"))),
        })
        .collect()
}

/// The series `match[]` selects (all when it is absent and `required` is false) with a value
/// between `start` and `end` (by default, the whole history).
fn selected(shared: &Shared, p: &Params, required: bool) -> Result<Vec<Labels>, Error> {
    let m = matches(p)?;
    if required && m.is_empty() {
        return Err(bad("no match[] parameter provided".into()));
    }
    let start = p.time("start")?.unwrap_or(f64::NEG_INFINITY);
    let end = p.time("end")?.unwrap_or(f64::INFINITY);
    let s = shared.store.lock().unwrap_or_else(|p| p.into_inner());
    Ok(s.labels(&m, start, end))
}

async fn series(State(shared): State<Shared>, RawQuery(q): RawQuery, body: Bytes) -> Response {
    let p = Params::new(q, &body);
    blocking(move || {
        let mut all = selected(&shared, &p, true)?;
        all.sort();
        Ok(json!(all))
    })
    .await
}

async fn labels(State(shared): State<Shared>, RawQuery(q): RawQuery, body: Bytes) -> Response {
    let p = Params::new(q, &body);
    blocking(move || {
        let names: BTreeSet<String> = selected(&shared, &p, false)?
            .into_iter()
            .flat_map(|l| l.into_keys())
            .collect();
        Ok(json!(names))
    })
    .await
}

async fn label_values(
    State(shared): State<Shared>,
    Path(name): Path<String>,
    RawQuery(q): RawQuery,
) -> Response {
    let p = Params::new(q, &Bytes::new());
    blocking(move || {
        let values: BTreeSet<String> = selected(&shared, &p, false)?
            .into_iter()
            .filter_map(|mut l| l.remove(&name))
            .collect();
        Ok(json!(values))
    })
    .await
}

#[cfg(test)]
mod tests {
    use axum::{body::Body, http::Request};
    use http_body_util::BodyExt as _;
    use prometheus::proto::MetricType;
    use tower::ServiceExt as _;

    use super::*;
    use crate::metrics::{counter, family};

    fn store() -> Arc<Mutex<Store>> {
        let mut s = Store::new(1000.0, 1 << 30, vec![("job".into(), "monitor".into())]);
        for i in 0..30 {
            s.push(
                1000.0 + f64::from(i),
                &[family(
                    "c_total",
                    "c",
                    MetricType::COUNTER,
                    vec![
                        counter(&[("g", "a")], f64::from(i)),
                        counter(&[("g", "b")], 3.0 * f64::from(i)),
                    ],
                )],
            );
        }
        Arc::new(Mutex::new(s))
    }

    async fn call(req: Request<Body>) -> (StatusCode, Value) {
        let r = router(store()).oneshot(req).await.unwrap();
        let status = r.status();
        let body = r.into_body().collect().await.unwrap().to_bytes();
        (status, serde_json::from_slice(&body).unwrap())
    }

    async fn get(uri: &str) -> (StatusCode, Value) {
        call(Request::get(uri).body(Body::empty()).unwrap()).await
    }

    #[tokio::test]
    async fn answers_in_prometheus_shapes() {
        let (s, v) =
            get("/api/v1/query?query=sum%20by%20(g)%20(rate(c_total%5B10s%5D))&time=1025").await;
        assert_eq!(s, StatusCode::OK, "{v}");
        assert_eq!(v["data"]["resultType"], "vector");
        let r = v["data"]["result"].as_array().unwrap();
        assert_eq!(r.len(), 2);
        assert_eq!(r[0]["metric"], json!({"g": "a"}));
        assert_eq!(r[0]["value"], json!([1025.0, "1"]));
        assert_eq!(r[1]["value"][1], "3");
        let (_, v) = get("/api/v1/query?query=1%2B1&time=5").await;
        assert_eq!(
            v["data"],
            json!({"resultType": "scalar", "result": [5.0, "2"]})
        );
        // A form POST, as Grafana sends it.
        let (s, v) = call(
            Request::post("/api/v1/query_range")
                .header("content-type", "application/x-www-form-urlencoded")
                .body(Body::from(
                    "query=c_total%7Bg%3D%22b%22%7D&start=1010&end=1012&step=1s",
                ))
                .unwrap(),
        )
        .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        assert_eq!(v["data"]["resultType"], "matrix");
        assert_eq!(
            v["data"]["result"][0],
            json!({"metric": {"__name__": "c_total", "g": "b", "job": "monitor"},
                   "values": [[1010.0, "30"], [1011.0, "33"], [1012.0, "36"]]})
        );
        let (_, v) = get("/api/v1/series?match[]=c_total%7Bg%3D%22a%22%7D").await;
        assert_eq!(
            v["data"],
            json!([{"__name__": "c_total", "g": "a", "job": "monitor"}])
        );
        let (_, v) = get("/api/v1/labels").await;
        assert_eq!(v["data"], json!(["__name__", "g", "job"]));
        let (_, v) = get("/api/v1/label/g/values?match[]=c_total").await;
        assert_eq!(v["data"], json!(["a", "b"]));
    }

    #[tokio::test]
    async fn bad_input_gets_prometheus_errors() {
        for (uri, code, kind, why) in [
            (
                "/api/v1/query?query=topk(1,c_total)",
                400,
                "bad_data",
                "topk is not supported",
            ),
            (
                "/api/v1/query?query=c_total%5B",
                400,
                "bad_data",
                "invalid parameter \"query\"",
            ),
            ("/api/v1/query", 400, "bad_data", "empty"),
            (
                "/api/v1/query?query=c_total&time=soon",
                400,
                "bad_data",
                "timestamp",
            ),
            (
                "/api/v1/query_range?query=c_total&start=1&end=2",
                400,
                "bad_data",
                "step",
            ),
            (
                "/api/v1/query_range?query=c_total&start=2&end=1&step=1",
                400,
                "bad_data",
                "before",
            ),
            (
                "/api/v1/query_range?query=c_total&start=0&end=1e9&step=1",
                400,
                "bad_data",
                "11,000",
            ),
            (
                "/api/v1/query_range?query=c_total&start=0&end=9&step=0",
                400,
                "bad_data",
                "positive",
            ),
            ("/api/v1/series", 400, "bad_data", "match[]"),
            (
                "/api/v1/series?match[]=rate(c_total%5B1m%5D)",
                400,
                "bad_data",
                "series selector",
            ),
            (
                "/api/v1/query?query=c_total%20%2B%20on()%20c_total&time=1020",
                422,
                "execution",
                "matching",
            ),
        ] {
            let (s, v) = get(uri).await;
            assert_eq!(s.as_u16(), code, "{uri}: {v}");
            assert_eq!(v["status"], "error", "{uri}");
            assert_eq!(v["errorType"], kind, "{uri}");
            let e = v["error"].as_str().unwrap();
            assert!(e.contains(why), "{uri}: {e}");
        }
    }

    #[test]
    fn times_and_steps() {
        assert_eq!(parse_time("time", "1700000000.5").unwrap(), 1_700_000_000.5);
        assert_eq!(
            parse_time("time", "2023-11-14T22:13:20Z").unwrap(),
            1_700_000_000.0
        );
        assert!(parse_time("time", "soon").is_err());
        assert!(parse_time("time", "NaN").is_err());
        assert_eq!(parse_step("15s").unwrap(), 15.0);
        assert_eq!(parse_step("0.5").unwrap(), 0.5);
        assert!(parse_step("0").is_err());
        assert!(parse_step("-1").is_err());
        assert!(parse_step("fast").is_err());
    }
}
