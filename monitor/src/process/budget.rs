//! The series budget: at most `max_groups` groups get their own series; the rest are summed
//! into `group="other"`, so totals still add up and cardinality stays bounded.
//!
//! Counters must never go backwards, which a naive top-N would break: a group moving from
//! "other" to its own series would take its history out of "other". So each group remembers
//! how much of it has already been reported inside "other" (`in_other`); once promoted, its
//! own series shows only what came after, and "other" keeps the rest. A group demoted moves
//! its whole total into "other", which only grows. Groups that are folded and have no live
//! process left are compacted into one remainder, so memory stays bounded too.

use std::{collections::HashMap, sync::Arc, time::Instant};

use super::counters::Counters;

pub const OTHER: &str = "other";

/// Time constant of the activity score: a group that stops working keeps its rank for about
/// this long, so a pause does not make its series vanish and come back.
const ACTIVITY_TAU_SECS: f64 = 60.0;

#[derive(Clone, Debug, Default)]
pub struct GroupState {
    /// Totals of processes that left the group (exited, or exec'd into another image).
    pub retired: Counters,
    /// Totals of the group's live processes, kept by the process table as they change.
    pub live: Counters,
    pub live_members: usize,
    /// Resident memory of the group's live processes, as last read (a gauge: outside the
    /// counters' floor and fold).
    pub resident_bytes: u64,
    /// The largest total exported so far: the floor for the next one.
    exported_total: Counters,
    /// How much of the total was reported inside "other".
    in_other: Counters,
    kept: bool,
    last_cpu_ns: u64,
    /// Exponentially decayed CPU nanoseconds: the ranking key.
    activity: f64,
}

#[derive(Clone, Debug, Default)]
pub struct Export {
    /// Groups with their own series, and their values.
    pub groups: Vec<(Arc<str>, Counters)>,
    /// The sum of everything else; `None` while nothing was ever folded.
    pub other: Option<Counters>,
    /// Groups currently summed into "other" (including compacted ones).
    pub folded: usize,
    pub compacted: usize,
}

impl Export {
    /// Every exported row: the kept groups, then `other` when anything was folded.
    pub fn rows(&self) -> Vec<(&str, Counters)> {
        let mut rows: Vec<(&str, Counters)> = self.groups.iter().map(|(g, c)| (&**g, *c)).collect();
        if let Some(o) = self.other {
            rows.push((OTHER, o));
        }
        rows
    }
}

#[derive(Debug)]
pub struct Budget {
    max_groups: usize,
    compacted: Counters,
    compacted_groups: usize,
    ever_folded: bool,
    last_apply: Option<Instant>,
}

impl Budget {
    pub fn new(max_groups: usize) -> Self {
        Self {
            max_groups,
            compacted: Counters::default(),
            compacted_groups: 0,
            ever_folded: false,
            last_apply: None,
        }
    }

    /// Chooses the groups to keep (busiest by recent CPU, current ones first on ties) and
    /// computes every exported value.
    pub fn apply(&mut self, groups: &mut HashMap<Arc<str>, GroupState>, now: Instant) -> Export {
        let dt = self
            .last_apply
            .map_or(0.0, |t| now.saturating_duration_since(t).as_secs_f64());
        self.last_apply = Some(now);
        let decay = (-dt / ACTIVITY_TAU_SECS).exp();
        let mut ranked: Vec<(Arc<str>, f64, bool, u64)> = Vec::with_capacity(groups.len());
        for (name, g) in groups.iter_mut() {
            let total = (g.retired + g.live).max(g.exported_total);
            g.exported_total = total;
            g.activity = g.activity * decay + total.cpu_ns.saturating_sub(g.last_cpu_ns) as f64;
            g.last_cpu_ns = total.cpu_ns;
            ranked.push((name.clone(), g.activity, g.kept, total.cpu_ns));
        }
        ranked.sort_by(|a, b| {
            b.1.total_cmp(&a.1)
                .then(b.2.cmp(&a.2))
                .then(b.3.cmp(&a.3))
                .then(a.0.cmp(&b.0))
        });

        let mut out = Export::default();
        let mut other = self.compacted;
        let mut compact = Vec::new();
        for (i, (name, ..)) in ranked.iter().enumerate() {
            let g = groups.get_mut(name).expect("ranked from the same map");
            g.kept = i < self.max_groups;
            if g.kept {
                out.groups
                    .push((name.clone(), g.exported_total.since(g.in_other)));
                other += g.in_other;
            } else {
                g.in_other = g.exported_total;
                other += g.exported_total;
                out.folded += 1;
                self.ever_folded = true;
                if g.live_members == 0 {
                    compact.push(name.clone());
                }
            }
        }
        for name in compact {
            if let Some(g) = groups.remove(&name) {
                self.compacted += g.in_other;
                self.compacted_groups += 1;
            }
        }
        out.folded += self.compacted_groups;
        out.compacted = self.compacted_groups;
        out.other = self.ever_folded.then_some(other);
        out.groups.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cpu(ns: u64) -> Counters {
        Counters {
            cpu_ns: ns,
            ..Default::default()
        }
    }

    fn set(groups: &mut HashMap<Arc<str>, GroupState>, name: &str, live: u64, members: usize) {
        let g = groups.entry(Arc::from(name)).or_default();
        g.live = cpu(live);
        g.live_members = members;
    }

    fn total(e: &Export) -> u64 {
        e.groups.iter().map(|g| g.1.cpu_ns).sum::<u64>() + e.other.map_or(0, |o| o.cpu_ns)
    }

    fn value(e: &Export, name: &str) -> Option<u64> {
        e.groups.iter().find(|g| &*g.0 == name).map(|g| g.1.cpu_ns)
    }

    #[test]
    fn keeps_the_busiest_and_sums_the_rest() {
        let mut b = Budget::new(2);
        let mut g = HashMap::new();
        set(&mut g, "a", 100, 1);
        set(&mut g, "b", 50, 1);
        set(&mut g, "c", 10, 1);
        let e = b.apply(&mut g, Instant::now());
        assert_eq!(value(&e, "a"), Some(100));
        assert_eq!(value(&e, "b"), Some(50));
        assert_eq!(value(&e, "c"), None);
        assert_eq!(e.other.unwrap().cpu_ns, 10);
        assert_eq!(e.folded, 1);
        assert_eq!(total(&e), 160);
    }

    #[test]
    fn promotion_and_demotion_never_take_a_counter_backwards() {
        let mut b = Budget::new(1);
        let mut g = HashMap::new();
        set(&mut g, "a", 100, 1);
        set(&mut g, "b", 40, 1);
        let e1 = b.apply(&mut g, Instant::now());
        assert_eq!(e1.other.unwrap().cpu_ns, 40);
        // b becomes the busiest: promoted; its history stays in "other".
        set(&mut g, "a", 101, 1);
        set(&mut g, "b", 240, 1);
        let e2 = b.apply(&mut g, Instant::now());
        assert_eq!(value(&e2, "b"), Some(200));
        assert!(e2.other.unwrap().cpu_ns >= e1.other.unwrap().cpu_ns);
        assert_eq!(total(&e2), 341);
        // a becomes busiest again: b demoted, "other" absorbs all of b; the 101 of a that
        // "other" reported while a was folded stays there.
        set(&mut g, "a", 500, 1);
        let e3 = b.apply(&mut g, Instant::now());
        assert_eq!(value(&e3, "a"), Some(500 - 101));
        assert!(e3.other.unwrap().cpu_ns >= e2.other.unwrap().cpu_ns);
        assert_eq!(total(&e3), 740);
    }

    #[test]
    fn folded_groups_without_processes_are_compacted_but_still_counted() {
        let mut b = Budget::new(1);
        let mut g = HashMap::new();
        set(&mut g, "a", 100, 1);
        set(&mut g, "gone", 0, 0);
        g.get_mut("gone").unwrap().retired = cpu(30);
        let e = b.apply(&mut g, Instant::now());
        assert!(!g.contains_key("gone"));
        assert_eq!(e.compacted, 1);
        assert_eq!(total(&e), 130);
        let e = b.apply(&mut g, Instant::now());
        assert_eq!(total(&e), 130);
        assert_eq!(e.other.unwrap().cpu_ns, 30);
    }

    #[test]
    fn a_paused_group_keeps_its_rank_for_a_while() {
        let mut b = Budget::new(1);
        let mut g = HashMap::new();
        let t0 = Instant::now();
        set(&mut g, "worker", 5_000_000_000, 1);
        set(&mut g, "ticker", 0, 1);
        b.apply(&mut g, t0);
        // worker pauses; ticker does a little each second.
        for s in 1..=10u64 {
            set(&mut g, "ticker", s * 10_000_000, 1);
            let e = b.apply(&mut g, t0 + std::time::Duration::from_secs(s));
            assert!(value(&e, "worker").is_some(), "worker dropped after {s}s");
        }
    }

    #[test]
    fn a_shrinking_reading_does_not_lower_the_export() {
        let mut b = Budget::new(5);
        let mut g = HashMap::new();
        set(&mut g, "a", 100, 1);
        b.apply(&mut g, Instant::now());
        set(&mut g, "a", 90, 1);
        let e = b.apply(&mut g, Instant::now());
        assert_eq!(value(&e, "a"), Some(100));
        assert!(e.other.is_none());
    }
}
