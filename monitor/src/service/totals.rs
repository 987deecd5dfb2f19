//! Per direction, port and group totals that survive exits and execs: each kernel entry's
//! growth since it was last read is added to the group its process has at that moment, so
//! a process that exits or changes group leaves what it did where it was. Ports beyond a
//! budget (the first ones seen keep their own series) and groups without their own series
//! are summed into `other`.

use std::{
    collections::{BTreeMap, HashMap, HashSet},
    sync::Arc,
};

use monitor_common::service::{kind, ServiceKey, ServiceStats};

use crate::process::budget::OTHER;

/// Whose a kernel entry is, as the process table tells.
pub enum Owner {
    Group(Arc<str>),
    /// A live process the table has not met yet: read again next time.
    NotYet,
    /// Gone and forgotten: what is left is summed into `other` and the entry removed.
    Gone,
}

/// Applies `f` to each pair of fields.
fn zip(a: &ServiceStats, b: &ServiceStats, f: impl Fn(u64, u64) -> u64) -> ServiceStats {
    let mut o = ServiceStats {
        accepted: f(a.accepted, b.accepted),
        requests: f(a.requests, b.requests),
        latency_ns: f(a.latency_ns, b.latency_ns),
        resets_sent: f(a.resets_sent, b.resets_sent),
        resets_received: f(a.resets_received, b.resets_received),
        unanswered: f(a.unanswered, b.unanswered),
        ..ServiceStats::default()
    };
    for ((o, x), y) in o.latency.iter_mut().zip(&a.latency).zip(&b.latency) {
        *o = f(*x, *y);
    }
    for ((o, x), y) in o.codes.iter_mut().zip(&a.codes).zip(&b.codes) {
        *o = f(*x, *y);
    }
    o
}

pub fn add(a: &ServiceStats, b: &ServiceStats) -> ServiceStats {
    zip(a, b, |x, y| x + y)
}

/// What `now` holds beyond `before`, field by field; a field that went back (the entry was
/// removed and made again) counts whole.
fn growth(now: &ServiceStats, before: &ServiceStats) -> ServiceStats {
    zip(now, before, |n, b| n.checked_sub(b).unwrap_or(n))
}

#[derive(Default)]
pub struct Totals {
    /// Each kernel entry as last read.
    last: HashMap<ServiceKey, ServiceStats>,
    sums: BTreeMap<(u8, u16, Arc<str>), ServiceStats>,
    /// (direction, port) in the order first seen: the first ones keep their own series.
    order: Vec<(u8, u16)>,
}

/// One exported row: a port (or `other`) and a group (or `other`).
#[derive(Debug, PartialEq)]
pub struct Row {
    pub port: String,
    pub group: String,
    pub stats: ServiceStats,
}

impl Totals {
    /// Takes a reading of every kernel entry; returns the keys to remove from the map
    /// (processes gone).
    pub fn observe(
        &mut self,
        entries: Vec<(ServiceKey, ServiceStats)>,
        owner: impl Fn(u32) -> Owner,
    ) -> Vec<ServiceKey> {
        let mut gone = Vec::new();
        let mut seen = HashSet::with_capacity(entries.len());
        for (k, v) in entries {
            let group = match owner(k.tgid) {
                Owner::Group(g) => g,
                Owner::NotYet => {
                    seen.insert(k);
                    continue;
                }
                Owner::Gone => {
                    gone.push(k);
                    Arc::from(OTHER)
                }
            };
            seen.insert(k);
            let before = self.last.insert(k, v).unwrap_or_default();
            let d = growth(&v, &before);
            if d == ServiceStats::default() {
                continue;
            }
            if !self.order.contains(&(k.kind, k.port)) {
                self.order.push((k.kind, k.port));
            }
            let sum = self.sums.entry((k.kind, k.port, group)).or_default();
            *sum = add(sum, &d);
        }
        for k in &gone {
            seen.remove(k);
        }
        self.last.retain(|k, _| seen.contains(k));
        gone
    }

    /// The rows of direction `k`: groups not in `kept` summed into `other`, ports after
    /// the first `max_ports` seen too. Also returns how many ports were summed so.
    pub fn rows(&self, k: u8, kept: &HashSet<&str>, max_ports: usize) -> (Vec<Row>, usize) {
        let ports: Vec<u16> = self
            .order
            .iter()
            .filter(|(d, _)| *d == k)
            .map(|(_, p)| *p)
            .collect();
        let own: HashSet<u16> = ports.iter().take(max_ports).copied().collect();
        let mut out: BTreeMap<(String, String), ServiceStats> = BTreeMap::new();
        for ((d, port, group), s) in &self.sums {
            if *d != k {
                continue;
            }
            let port = if own.contains(port) {
                port.to_string()
            } else {
                OTHER.to_string()
            };
            let group = if kept.contains(&**group) {
                group.to_string()
            } else {
                OTHER.to_string()
            };
            let sum = out.entry((port, group)).or_default();
            *sum = add(sum, s);
        }
        let rows = out
            .into_iter()
            .map(|((port, group), stats)| Row { port, group, stats })
            .collect();
        (rows, ports.len().saturating_sub(max_ports))
    }

    /// DNS rows per group (`other` for groups without their own series).
    pub fn dns(&self, kept: &HashSet<&str>) -> Vec<Row> {
        self.rows(kind::DNS, kept, usize::MAX).0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(tgid: u32, port: u16, k: u8) -> ServiceKey {
        ServiceKey {
            tgid,
            port,
            kind: k,
            _pad: 0,
        }
    }

    fn reqs(n: u64) -> ServiceStats {
        ServiceStats {
            requests: n,
            ..Default::default()
        }
    }

    #[test]
    fn growth_goes_to_the_group_of_the_moment_and_survives_exits() {
        let mut t = Totals::default();
        let web: Arc<str> = Arc::from("web");
        let owner = |g: Option<&Arc<str>>| {
            let g = g.cloned();
            move |_| g.clone().map_or(Owner::Gone, Owner::Group)
        };
        assert!(t
            .observe(
                vec![(key(7, 80, kind::INBOUND), reqs(3))],
                owner(Some(&web))
            )
            .is_empty());
        t.observe(
            vec![(key(7, 80, kind::INBOUND), reqs(5))],
            owner(Some(&web)),
        );
        // Gone: the two requests since are summed into other, the entry removed.
        let gone = t.observe(vec![(key(7, 80, kind::INBOUND), reqs(7))], owner(None));
        assert_eq!(gone, vec![key(7, 80, kind::INBOUND)]);
        let kept: HashSet<&str> = ["web"].into();
        let (rows, folded) = t.rows(kind::INBOUND, &kept, 10);
        assert_eq!(folded, 0);
        assert_eq!(rows.len(), 2);
        assert_eq!(
            (rows[0].group.as_str(), rows[0].stats.requests),
            ("other", 2)
        );
        assert_eq!((rows[1].group.as_str(), rows[1].stats.requests), ("web", 5));
        // A new entry under the same key (pid reused) counts whole.
        t.observe(
            vec![(key(7, 80, kind::INBOUND), reqs(1))],
            owner(Some(&web)),
        );
        assert_eq!(t.rows(kind::INBOUND, &kept, 10).0[1].stats.requests, 6);
    }

    #[test]
    fn ports_beyond_the_budget_and_unknown_groups_go_to_other() {
        let mut t = Totals::default();
        let g: Arc<str> = Arc::from("db");
        let entries = vec![
            (key(1, 5432, kind::INBOUND), reqs(1)),
            (key(1, 6379, kind::INBOUND), reqs(2)),
            (key(1, 11211, kind::INBOUND), reqs(4)),
            (key(1, 443, kind::OUTBOUND), reqs(8)),
            (key(2, 5432, kind::INBOUND), reqs(16)),
        ];
        t.observe(entries, |tgid| {
            if tgid == 1 {
                Owner::Group(g.clone())
            } else {
                Owner::NotYet
            }
        });
        let kept: HashSet<&str> = ["db"].into();
        let (rows, folded) = t.rows(kind::INBOUND, &kept, 1);
        assert_eq!(folded, 2);
        let got: Vec<(&str, &str, u64)> = rows
            .iter()
            .map(|r| (r.port.as_str(), r.group.as_str(), r.stats.requests))
            .collect();
        assert_eq!(got, vec![("5432", "db", 1), ("other", "db", 6)]);
        // Not yet known: nothing counted, and counted whole once known.
        t.observe(vec![(key(2, 5432, kind::INBOUND), reqs(16))], |_| {
            Owner::Group(Arc::from("late"))
        });
        let (rows, _) = t.rows(kind::INBOUND, &HashSet::new(), 8);
        let total: u64 = rows.iter().map(|r| r.stats.requests).sum();
        assert_eq!(total, 1 + 2 + 4 + 16);
        assert_eq!(t.rows(kind::OUTBOUND, &kept, 8).0[0].stats.requests, 8);
    }
}
