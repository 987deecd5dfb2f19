//! `GET /api/v1/alerts`: every pending, firing and recently resolved alert, in the shape of
//! Prometheus's own alerts API (plus `resolvedAt`, `firedAt` and `fingerprint`).

use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex},
};

use axum::{http::header, response::IntoResponse, routing::get, Router};
use serde::Serialize;

use super::{
    expr::Labels,
    notify::payload::rfc3339,
    state::{Alert, State},
};

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct AlertView<'a> {
    labels: &'a Labels,
    annotations: &'a BTreeMap<String, String>,
    state: State,
    active_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    fired_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    resolved_at: Option<String>,
    /// A string, as in Prometheus's API: JSON has no NaN or infinities.
    value: String,
    fingerprint: String,
}

/// The alerts as of the last evaluation, encoded once per evaluation.
#[derive(Clone, Default)]
pub struct Status(Arc<Mutex<String>>);

impl Status {
    pub fn publish(&self, alerts: &[Alert]) {
        let views: Vec<AlertView<'_>> = alerts
            .iter()
            .map(|a| AlertView {
                labels: &a.labels,
                annotations: &a.annotations,
                state: a.state,
                active_at: rfc3339(a.active_at),
                fired_at: a.fired_at.map(rfc3339),
                resolved_at: a.resolved_at.map(rfc3339),
                value: crate::alert::notify::payload::format_value(a.value),
                fingerprint: format!("{:016x}", a.fingerprint),
            })
            .collect();
        let body = serde_json::json!({"status": "success", "data": {"alerts": views}}).to_string();
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = body;
    }

    fn body(&self) -> String {
        let b = self.0.lock().unwrap_or_else(|p| p.into_inner()).clone();
        if b.is_empty() {
            r#"{"status":"success","data":{"alerts":[]}}"#.to_string()
        } else {
            b
        }
    }

    pub fn router(self) -> Router {
        Router::new().route(
            "/api/v1/alerts",
            get(move || async move {
                ([(header::CONTENT_TYPE, "application/json")], self.body()).into_response()
            }),
        )
    }
}
