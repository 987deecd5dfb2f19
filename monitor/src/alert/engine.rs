//! The evaluation loop: every interval, read the daemon's families (as a scrape would),
//! add them to the history, evaluate every rule, update the alert states, publish them for
//! the API and the metrics, and queue the notifications the dispatcher says are due.

use std::{
    collections::{BTreeMap, HashMap, HashSet},
    sync::Arc,
    time::{Duration, Instant, SystemTime},
};

use super::{
    api::Status,
    config::Config,
    dispatch::Dispatcher,
    expr::{eval::eval, eval::Value, series::flatten, History, Labels},
    metrics::Metrics,
    queue::{Entry, Queue},
    rules::Rule,
    state::{Alert, Alerts, State},
};
use crate::scrape::Reader;

pub struct Engine {
    rules: Vec<Rule>,
    external: Labels,
    interval: Duration,
    history: History,
    alerts: Alerts,
    dispatcher: Dispatcher,
    queue: Option<Arc<Queue>>,
    metrics: Metrics,
    status: Status,
    /// The last error of each failing rule, so a lasting failure is logged once.
    errors: BTreeMap<usize, String>,
    /// Each alert's state at the last evaluation, to log what changed.
    last: HashMap<u64, State>,
}

impl Engine {
    #[expect(clippy::too_many_arguments, reason = "wiring, called once")]
    pub fn new(
        rules: Vec<Rule>,
        config: &Config,
        external: Labels,
        external_url: String,
        interval: Duration,
        queue: Option<Arc<Queue>>,
        metrics: Metrics,
        status: Status,
    ) -> Self {
        let ranged: HashSet<String> = rules
            .iter()
            .flat_map(|r| r.needs.ranged.iter().cloned())
            .collect();
        let longest = rules.iter().map(|r| r.needs.longest).fold(0.0, f64::max);
        // Two extra evaluations of points: a window's first point can sit just before it.
        let keep = longest + 2.0 * interval.as_secs_f64();
        metrics.lock().rules = rules.len() as u64;
        Self {
            alerts: Alerts::new(rules.len()),
            dispatcher: Dispatcher::new(config, external_url),
            rules,
            external,
            interval,
            history: History::new(ranged, keep),
            queue,
            metrics,
            status,
            errors: BTreeMap::new(),
            last: HashMap::new(),
        }
    }

    fn evaluate(&mut self, reader: &Reader, mono: f64, wall: SystemTime) {
        // A scrape's reading of the scrape-time collectors in the last second is as fresh as
        // an evaluation needs; the snapshot's families are read in place, not copied.
        {
            let (snap, now) = reader.parts_now(Duration::from_secs(1));
            self.history
                .push(mono, flatten(snap.families.iter().chain(now.iter())));
        }
        let mut failures = Vec::new();
        for (i, rule) in self.rules.iter().enumerate() {
            let result = match eval(&rule.expr, &self.history) {
                Ok(Value::Vector(v)) => Ok(v),
                Ok(Value::Scalar(_)) => Err("the expression gave a number, not series".to_string()),
                Err(e) => Err(e),
            };
            match result {
                Ok(v) => {
                    if self.errors.remove(&i).is_some() {
                        tracing::info!(rule = %rule.name, file = %rule.file, "rule evaluates again");
                    }
                    self.alerts.update(i, rule, &self.external, &v, mono, wall);
                }
                Err(e) => {
                    if self.errors.get(&i) != Some(&e) {
                        tracing::warn!(rule = %rule.name, file = %rule.file, group = %rule.group, expr = %rule.expr_text, error = %e, "rule evaluation failed");
                        self.errors.insert(i, e);
                    }
                    failures.push(rule.name.clone());
                }
            }
        }
        let list: Vec<Alert> = self.alerts.all().cloned().collect();
        self.log_changes(&list);
        {
            let mut c = self.metrics.lock();
            c.alerts.clear();
            // Every rule's series exist from the start, at 0, so a rate over them works.
            for r in &self.rules {
                for s in [State::Pending, State::Firing] {
                    c.alerts
                        .entry((r.name.clone(), r.severity().to_string(), s))
                        .or_insert(0);
                }
            }
            for a in &list {
                let sev = a.labels.get("severity").cloned().unwrap_or_default();
                *c.alerts.entry((a.rule.clone(), sev, a.state)).or_insert(0) += 1;
            }
            c.history_points = self.history.points() as u64;
            for f in failures {
                *c.evaluation_failures.entry(f).or_insert(0) += 1;
            }
        }
        self.status.publish(&list);
        let due = self.dispatcher.update(&list, mono, wall);
        for n in due {
            let Some(q) = &self.queue else { break };
            let receiver = n.receiver.clone();
            tracing::info!(receiver = %receiver, status = %n.status, alerts = n.alerts.len(), "notification queued");
            if let Err(e) = q.push(Entry {
                receiver,
                notification: n,
            }) {
                tracing::error!(error = format!("{e:#}"), "cannot queue a notification");
            }
        }
    }
}

impl Engine {
    /// One line when an alert starts firing or is resolved.
    fn log_changes(&mut self, list: &[Alert]) {
        let now: HashMap<u64, State> = list.iter().map(|a| (a.fingerprint, a.state)).collect();
        for a in list {
            if self.last.get(&a.fingerprint) == Some(&a.state) {
                continue;
            }
            let labels = a
                .labels
                .iter()
                .filter(|(k, _)| *k != "alertname")
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(",");
            match a.state {
                State::Firing => {
                    tracing::info!(alert = %a.rule, labels = %labels, value = a.value, "alert firing")
                }
                State::Resolved => {
                    tracing::info!(alert = %a.rule, labels = %labels, "alert resolved")
                }
                State::Pending => {
                    tracing::debug!(alert = %a.rule, labels = %labels, "alert pending")
                }
            }
        }
        self.last = now;
    }
}

pub fn spawn(mut e: Engine, reader: Arc<Reader>) -> anyhow::Result<()> {
    std::thread::Builder::new()
        .name("alert-engine".to_string())
        .spawn(move || {
            let start = Instant::now();
            loop {
                let t = Instant::now();
                e.evaluate(&reader, start.elapsed().as_secs_f64(), SystemTime::now());
                std::thread::sleep(e.interval.saturating_sub(t.elapsed()));
            }
        })
        .map(|_| ())
        .map_err(|err| anyhow::anyhow!("starting the alert engine: {err}"))
}
