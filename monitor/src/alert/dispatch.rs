//! Routing and grouping, as Alertmanager does them: each alert goes down the route tree to
//! the first matching route (and further ones with `continue`); alerts with the same values
//! of the route's `group_by` labels form a group, notified `group_wait` after it forms, then
//! at most every `group_interval` when something changed, and every `repeat_interval` while
//! anything fires. Alertmanager receivers get every alert in one group, sent at each change
//! and re-sent every `resend_interval` while firing, as Prometheus does.

use std::{
    collections::{BTreeMap, HashMap},
    time::{Duration, SystemTime},
};

use super::{
    config::{Config, Matchers, ReceiverKind, Route},
    expr::Labels,
    notify::payload::{AlertJson, Notification},
    state::{Alert, State},
};

/// A route with its inherited settings resolved.
#[derive(Debug, Clone)]
struct Flat {
    receiver: String,
    matchers: Vec<Matchers>,
    /// `None`: every label (`...`).
    group_by: Option<Vec<String>>,
    wait: Duration,
    interval: Duration,
    repeat: Duration,
    continue_: bool,
    children: Vec<usize>,
}

struct Group {
    route: usize,
    labels: Labels,
    /// By fingerprint: the alert as last seen, and whether that state was notified.
    alerts: BTreeMap<u64, (Alert, bool)>,
    next_flush: f64,
    last_notified: Option<f64>,
}

pub struct Dispatcher {
    routes: Vec<Flat>,
    /// Alertmanager receivers and their resend intervals.
    am: HashMap<String, Duration>,
    groups: BTreeMap<(usize, Labels), Group>,
    external_url: String,
}

impl Dispatcher {
    pub fn new(c: &Config, external_url: String) -> Self {
        let am = c
            .receivers
            .iter()
            .filter_map(|r| match &r.kind {
                ReceiverKind::Alertmanager {
                    resend_interval, ..
                } => Some((r.name.clone(), resend_interval.0)),
                _ => None,
            })
            .collect();
        let mut routes = Vec::new();
        let root = c.route.clone().unwrap_or(Route {
            receiver: c.receivers.first().map(|r| r.name.clone()),
            matchers: None,
            group_by: None,
            group_wait: None,
            group_interval: None,
            repeat_interval: None,
            continue_: false,
            routes: Vec::new(),
        });
        let defaults = Flat {
            receiver: String::new(),
            matchers: Vec::new(),
            group_by: Some(vec!["alertname".to_string()]),
            wait: Duration::from_secs(30),
            interval: Duration::from_secs(300),
            repeat: Duration::from_secs(4 * 3600),
            continue_: false,
            children: Vec::new(),
        };
        flatten(&root, &defaults, &mut routes);
        Self {
            routes,
            am,
            groups: BTreeMap::new(),
            external_url,
        }
    }

    /// The routes an alert goes to (indices), depth first.
    fn route(&self, labels: &Labels) -> Vec<usize> {
        let mut out = Vec::new();
        self.walk(0, labels, &mut out);
        out
    }

    fn walk(&self, i: usize, labels: &Labels, out: &mut Vec<usize>) -> bool {
        let r = &self.routes[i];
        if !r.matchers.iter().all(|m| m.matches(labels)) {
            return false;
        }
        let mut matched = false;
        for &c in &r.children {
            if self.walk(c, labels, out) {
                matched = true;
                if !self.routes[c].continue_ {
                    break;
                }
            }
        }
        if !matched {
            out.push(i);
        }
        true
    }

    /// Takes the current alerts (firing and recently resolved; pending ones are ignored)
    /// and returns the notifications due now, by receiver.
    pub fn update(&mut self, alerts: &[Alert], mono: f64, wall: SystemTime) -> Vec<Notification> {
        for a in alerts.iter().filter(|a| a.state != State::Pending) {
            for r in self.route(&a.labels) {
                let route = &self.routes[r];
                if route.receiver.is_empty() {
                    continue;
                }
                let am = self.am.contains_key(&route.receiver);
                let key_labels: Labels = match (&route.group_by, am) {
                    (_, true) => Labels::new(),
                    (None, false) => a.labels.clone(),
                    (Some(by), false) => a
                        .labels
                        .iter()
                        .filter(|(k, _)| by.contains(k))
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect(),
                };
                let wait = if am { 0.0 } else { route.wait.as_secs_f64() };
                let g = self
                    .groups
                    .entry((r, key_labels.clone()))
                    .or_insert_with(|| Group {
                        route: r,
                        labels: key_labels,
                        alerts: BTreeMap::new(),
                        next_flush: mono + wait,
                        last_notified: None,
                    });
                let changed = g
                    .alerts
                    .get(&a.fingerprint)
                    .is_none_or(|(old, _)| old.state != a.state);
                match g.alerts.get_mut(&a.fingerprint) {
                    Some(entry) if !changed => entry.0 = a.clone(),
                    // A resolved alert the group never told anyone about firing: nothing to say.
                    None if a.state == State::Resolved => {}
                    _ => {
                        g.alerts.insert(a.fingerprint, (a.clone(), false));
                    }
                }
            }
        }
        let mut out = Vec::new();
        let mut empty = Vec::new();
        for (key, g) in &mut self.groups {
            if g.alerts.is_empty() {
                empty.push(key.clone());
                continue;
            }
            if mono < g.next_flush {
                continue;
            }
            let route = &self.routes[g.route];
            let resend = self.am.get(&route.receiver).copied();
            let (interval, repeat) = match resend {
                Some(resend) => (0.0, resend.as_secs_f64()),
                None => (route.interval.as_secs_f64(), route.repeat.as_secs_f64()),
            };
            let unsent = g.alerts.values().any(|(_, sent)| !sent);
            let any_firing = g.alerts.values().any(|(a, _)| a.state == State::Firing);
            let repeat_due = any_firing && g.last_notified.is_none_or(|t| mono - t >= repeat);
            if !(unsent || repeat_due) {
                continue;
            }
            // Alertmanager resolves an alert whose endsAt passes: keep it a few resends ahead.
            let ends = resend.map(|r| wall + r * 4);
            let list: Vec<AlertJson> = g
                .alerts
                .values()
                .map(|(a, _)| AlertJson::from_alert(a, &self.external_url, ends))
                .collect();
            let group_key = format!(
                "{{}}/route{}:{{{}}}",
                g.route,
                g.labels
                    .iter()
                    .map(|(k, v)| format!("{k}={v:?}"))
                    .collect::<Vec<_>>()
                    .join(",")
            );
            out.push(Notification::new(
                &route.receiver,
                group_key,
                g.labels.clone(),
                &self.external_url,
                list,
            ));
            g.alerts.retain(|_, (a, _)| a.state != State::Resolved);
            for (_, sent) in g.alerts.values_mut() {
                *sent = true;
            }
            g.last_notified = Some(mono);
            g.next_flush = mono + interval;
        }
        for k in empty {
            self.groups.remove(&k);
        }
        out
    }
}

fn flatten(r: &Route, parent: &Flat, out: &mut Vec<Flat>) -> usize {
    let mut matchers = parent.matchers.clone();
    if let Some(m) = &r.matchers {
        matchers.push(m.clone());
    }
    let group_by = match &r.group_by {
        Some(by) if by.iter().any(|l| l == "...") => None,
        Some(by) => Some(by.clone()),
        None => parent.group_by.clone(),
    };
    let me = Flat {
        receiver: r
            .receiver
            .clone()
            .unwrap_or_else(|| parent.receiver.clone()),
        matchers,
        group_by,
        wait: r.group_wait.map_or(parent.wait, |d| d.0),
        interval: r.group_interval.map_or(parent.interval, |d| d.0),
        repeat: r.repeat_interval.map_or(parent.repeat, |d| d.0),
        continue_: r.continue_,
        children: Vec::new(),
    };
    let i = out.len();
    out.push(me.clone());
    let children: Vec<usize> = r.routes.iter().map(|c| flatten(c, &me, out)).collect();
    out[i].children = children;
    i
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::state::fingerprint;

    fn config(text: &str) -> Config {
        serde_norway::from_str(text).unwrap()
    }

    fn alert(name: &str, severity: &str, state: State) -> Alert {
        let labels = Labels::from([
            ("alertname".to_string(), name.to_string()),
            ("severity".to_string(), severity.to_string()),
        ]);
        let fp = fingerprint(&labels);
        let mut a = crate::alert::state::tests_support::alert(labels, fp);
        a.state = state;
        if state == State::Resolved {
            a.resolved_at = Some(SystemTime::now());
        }
        a
    }

    #[test]
    fn routes_groups_and_timing() {
        let c = config(
            r#"
receivers: [{name: all, webhook: {url: "http://x/"}}, {name: pager, webhook: {url: "http://y/"}}]
route:
  receiver: all
  group_wait: 10s
  group_interval: 60s
  repeat_interval: 1h
  routes:
    - {receiver: pager, matchers: ['severity="critical"'], continue: true}
    - {receiver: all, matchers: ['alertname="Down"']}
"#,
        );
        let mut d = Dispatcher::new(&c, "http://h:1".to_string());
        let now = SystemTime::now();
        let crit = alert("Down", "critical", State::Firing);
        let warn = alert("Busy", "warning", State::Firing);
        assert!(
            d.update(&[crit.clone(), warn.clone()], 0.0, now).is_empty(),
            "group_wait"
        );
        let n = d.update(&[crit.clone(), warn.clone()], 10.0, now);
        let mut to: Vec<&str> = n.iter().map(|n| n.receiver.as_str()).collect();
        to.sort_unstable();
        // continue: the critical alert goes to pager, then to the next matching sibling.
        assert_eq!(to, ["all", "all", "pager"]);
        assert!(d
            .update(&[crit.clone(), warn.clone()], 30.0, now)
            .is_empty());
        // Resolved: told at the next group_interval, once.
        let resolved = alert("Busy", "warning", State::Resolved);
        assert!(d
            .update(&[crit.clone(), resolved.clone()], 40.0, now)
            .is_empty());
        let n = d.update(&[crit.clone(), resolved.clone()], 70.0, now);
        assert_eq!(n.len(), 1);
        assert_eq!(n[0].status, "resolved");
        assert_eq!(n[0].alerts[0].status, "resolved");
        assert!(d
            .update(&[crit.clone(), resolved.clone()], 140.0, now)
            .is_empty());
        // Repeat while firing.
        assert_eq!(d.update(std::slice::from_ref(&crit), 3610.0, now).len(), 2);
    }

    #[test]
    fn alertmanager_gets_every_change_and_resends() {
        let c = config(
            r#"receivers: [{name: am, alertmanager: {url: "http://x/", resend_interval: 60s}}]"#,
        );
        let mut d = Dispatcher::new(&c, "http://h:1".to_string());
        let now = SystemTime::now();
        let a = alert("Busy", "warning", State::Firing);
        let n = d.update(std::slice::from_ref(&a), 0.0, now);
        assert_eq!(n.len(), 1);
        assert_ne!(
            n[0].alerts[0].ends_at,
            crate::alert::notify::payload::ZERO_TIME
        );
        assert!(d.update(std::slice::from_ref(&a), 30.0, now).is_empty());
        assert_eq!(d.update(std::slice::from_ref(&a), 61.0, now).len(), 1);
        let r = alert("Busy", "warning", State::Resolved);
        let n = d.update(&[r], 62.0, now);
        assert_eq!(n[0].alerts[0].status, "resolved");
    }
}
