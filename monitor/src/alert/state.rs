//! Alert states with Prometheus's semantics: a rule's result that is new is pending, firing
//! once it has lasted `for`; an alert whose condition is gone stays firing for
//! `keep_firing_for`, then is resolved (kept 15 minutes for the API and the notifiers);
//! a pending one that goes away is forgotten.

use std::{
    collections::BTreeMap,
    time::{Duration, SystemTime},
};

use serde::Serialize;

use super::{
    expr::{series::without_name, Labels, Sample},
    rules::Rule,
    template::Template,
};

/// How long a resolved alert stays listed.
pub const RESOLVED_RETENTION: Duration = Duration::from_secs(15 * 60);

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    Pending,
    Firing,
    Resolved,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Pending => "pending",
            State::Firing => "firing",
            State::Resolved => "resolved",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Alert {
    pub rule: String,
    pub labels: Labels,
    pub annotations: BTreeMap<String, String>,
    pub state: State,
    pub value: f64,
    pub fingerprint: u64,
    pub active_at: SystemTime,
    pub fired_at: Option<SystemTime>,
    pub resolved_at: Option<SystemTime>,
    /// On the engine's monotonic clock (seconds).
    active_since: f64,
    last_true: f64,
}

/// Alertmanager's and Prometheus's label-set fingerprint: FNV-1a 64 over the sorted names
/// and values, each followed by 0xff.
pub fn fingerprint(labels: &Labels) -> u64 {
    use std::hash::Hasher as _;
    let mut h = fnv::FnvHasher::default();
    for (k, v) in labels {
        h.write(k.as_bytes());
        h.write(&[0xff]);
        h.write(v.as_bytes());
        h.write(&[0xff]);
    }
    h.finish()
}

#[derive(Default)]
pub struct Alerts {
    /// By rule index, then fingerprint.
    by_rule: Vec<BTreeMap<u64, Alert>>,
}

impl Alerts {
    pub fn new(rules: usize) -> Self {
        Self {
            by_rule: (0..rules).map(|_| BTreeMap::new()).collect(),
        }
    }

    /// Applies one evaluation of rule `i`: `results` are the series its expression returned.
    pub fn update(
        &mut self,
        i: usize,
        rule: &Rule,
        external: &Labels,
        results: &[Sample],
        mono: f64,
        wall: SystemTime,
    ) {
        let alerts = &mut self.by_rule[i];
        let mut seen = std::collections::HashSet::new();
        for s in results {
            let series = without_name(&s.labels);
            let mut labels = series.clone();
            for (k, v) in external {
                labels.entry(k.clone()).or_insert_with(|| v.clone());
            }
            for (k, v) in &rule.labels {
                // Label values may be templates, as in Prometheus (checked at load).
                let v = match v.contains("{{") {
                    true => Template::parse(v)
                        .map_or_else(|_| v.clone(), |t| t.render(&series, s.value)),
                    false => v.clone(),
                };
                labels.insert(k.clone(), v);
            }
            let fp = fingerprint(&labels);
            seen.insert(fp);
            let annotations = rule
                .annotations
                .iter()
                .map(|(k, t)| (k.clone(), t.render(&labels, s.value)))
                .collect();
            match alerts.get_mut(&fp) {
                Some(a) if a.state != State::Resolved => {
                    a.value = s.value;
                    a.annotations = annotations;
                    a.last_true = mono;
                }
                _ => {
                    alerts.insert(
                        fp,
                        Alert {
                            rule: rule.name.clone(),
                            labels,
                            annotations,
                            state: State::Pending,
                            value: s.value,
                            fingerprint: fp,
                            active_at: wall,
                            fired_at: None,
                            resolved_at: None,
                            active_since: mono,
                            last_true: mono,
                        },
                    );
                }
            }
        }
        alerts.retain(|fp, a| {
            let active = seen.contains(fp);
            match a.state {
                State::Pending if !active => return false,
                State::Firing
                    if !active && mono - a.last_true >= rule.keep_firing_for.as_secs_f64() =>
                {
                    a.state = State::Resolved;
                    a.resolved_at = Some(wall);
                }
                State::Resolved => {
                    return a
                        .resolved_at
                        .and_then(|r| wall.duration_since(r).ok())
                        .is_none_or(|d| d < RESOLVED_RETENTION);
                }
                _ => {}
            }
            if a.state == State::Pending && mono - a.active_since >= rule.for_.as_secs_f64() {
                a.state = State::Firing;
                a.fired_at = Some(wall);
            }
            true
        });
    }

    pub fn all(&self) -> impl Iterator<Item = &Alert> {
        self.by_rule.iter().flat_map(|m| m.values())
    }
}

#[cfg(test)]
pub mod tests_support {
    use super::*;

    /// A firing alert with the given labels, for other modules' tests.
    pub fn alert(labels: Labels, fingerprint: u64) -> Alert {
        Alert {
            rule: labels.get("alertname").cloned().unwrap_or_default(),
            labels,
            annotations: BTreeMap::new(),
            state: State::Firing,
            value: 1.0,
            fingerprint,
            active_at: SystemTime::now(),
            fired_at: Some(SystemTime::now()),
            resolved_at: None,
            active_since: 0.0,
            last_true: 0.0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(for_: u64, keep: u64) -> Rule {
        let mut r = crate::alert::rules::parse(
            "t",
            "groups: [{name: g, rules: [{alert: A, expr: monitor_processes > 1, annotations: {s: '{{ $value }}'}}]}]",
        )
        .unwrap()
        .remove(0);
        r.for_ = Duration::from_secs(for_);
        r.keep_firing_for = Duration::from_secs(keep);
        r
    }

    fn step(a: &mut Alerts, r: &Rule, t: f64, active: bool) -> Option<State> {
        let s = Sample {
            labels: Labels::from([("x".to_string(), "1".to_string())]),
            value: 5.0,
        };
        let res = if active { vec![s] } else { vec![] };
        a.update(0, r, &Labels::new(), &res, t, SystemTime::now());
        a.all().next().map(|x| x.state)
    }

    #[test]
    fn pending_firing_resolved() {
        let r = rule(10, 0);
        let mut a = Alerts::new(1);
        assert_eq!(step(&mut a, &r, 0.0, true), Some(State::Pending));
        assert_eq!(step(&mut a, &r, 5.0, true), Some(State::Pending));
        assert_eq!(step(&mut a, &r, 10.0, true), Some(State::Firing));
        assert_eq!(a.all().next().unwrap().annotations["s"], "5");
        assert_eq!(step(&mut a, &r, 11.0, false), Some(State::Resolved));
        // Active again: a new pending alert replaces the resolved one.
        assert_eq!(step(&mut a, &r, 12.0, true), Some(State::Pending));
        assert_eq!(step(&mut a, &r, 13.0, false), None);
    }

    #[test]
    fn labels_are_templates_and_the_rule_wins() {
        let r = crate::alert::rules::parse(
            "t",
            "groups: [{name: g, rules: [{alert: A, expr: monitor_processes > 1, labels: {where: 'x{{ $labels.x }}', severity: info}}]}]",
        )
        .unwrap()
        .remove(0);
        let mut a = Alerts::new(1);
        let s = Sample {
            labels: Labels::from([
                ("x".to_string(), "1".to_string()),
                ("severity".to_string(), "series".to_string()),
            ]),
            value: 2.0,
        };
        let external = Labels::from([("instance".to_string(), "h".to_string())]);
        a.update(0, &r, &external, &[s], 0.0, SystemTime::now());
        let labels = &a.all().next().unwrap().labels;
        assert_eq!(labels["where"], "x1");
        assert_eq!(labels["severity"], "info");
        assert_eq!(labels["instance"], "h");
        assert_eq!(labels["alertname"], "A");
    }

    #[test]
    fn keep_firing_for_holds_through_a_dip() {
        let r = rule(0, 10);
        let mut a = Alerts::new(1);
        assert_eq!(step(&mut a, &r, 0.0, true), Some(State::Firing));
        assert_eq!(step(&mut a, &r, 5.0, false), Some(State::Firing));
        assert_eq!(step(&mut a, &r, 6.0, true), Some(State::Firing));
        assert_eq!(step(&mut a, &r, 15.0, false), Some(State::Firing));
        assert_eq!(step(&mut a, &r, 16.0, false), Some(State::Resolved));
    }

    #[test]
    fn fingerprint_is_alertmanagers() {
        // What Alertmanager 0.25 answered for an alert with only alertname="X".
        let labels = Labels::from([("alertname".to_string(), "X".to_string())]);
        assert_eq!(fingerprint(&labels), 0xd2aeefc389ca7746);
    }
}
