//! A bounded in-memory history of the daemon's samples: the latest evaluation's samples
//! for instant selectors, and a window of points for the metrics that range selectors
//! name, long enough for the longest window a rule uses.

use std::collections::{HashMap, HashSet, VecDeque};

use promql_parser::label::Matchers;

use super::{
    series::{Labels, Sample, NAME},
    Source,
};

pub struct History {
    /// Seconds on the engine's monotonic clock of the latest push.
    now: f64,
    latest: Vec<Sample>,
    /// Metric names some rule reads over a window.
    ranged: HashSet<String>,
    /// How far back points are kept, in seconds.
    keep: f64,
    points: HashMap<Labels, VecDeque<(f64, f64)>>,
}

impl History {
    pub fn new(ranged: HashSet<String>, keep_seconds: f64) -> Self {
        Self {
            now: 0.0,
            latest: Vec::new(),
            ranged,
            keep: keep_seconds,
            points: HashMap::new(),
        }
    }

    /// Adds one evaluation's samples taken at `now` and drops points out of the window.
    pub fn push(&mut self, now: f64, samples: Vec<Sample>) {
        self.now = now;
        for s in &samples {
            let ranged = s.labels.get(NAME).is_some_and(|n| self.ranged.contains(n));
            if ranged {
                self.points
                    .entry(s.labels.clone())
                    .or_default()
                    .push_back((now, s.value));
            }
        }
        let oldest = now - self.keep;
        self.points.retain(|_, p| {
            while p.front().is_some_and(|(t, _)| *t < oldest) {
                p.pop_front();
            }
            !p.is_empty()
        });
        self.latest = samples;
    }

    /// Number of points held, for the engine's own size metric.
    pub fn points(&self) -> usize {
        self.points.values().map(VecDeque::len).sum()
    }
}

impl Source for History {
    fn now(&self) -> f64 {
        self.now
    }

    /// The latest sample of every series the selector matches.
    fn instant(&self, name: Option<&str>, matchers: &Matchers) -> Vec<Sample> {
        self.latest
            .iter()
            .filter(|s| selects(&s.labels, name, matchers))
            .cloned()
            .collect()
    }

    /// The points in `(now - range, now]` of every series the selector matches.
    fn range<'a>(
        &'a self,
        name: Option<&str>,
        matchers: &Matchers,
        range: f64,
    ) -> Vec<(&'a Labels, Vec<(f64, f64)>)> {
        let start = self.now - range;
        self.points
            .iter()
            .filter(|(l, _)| selects(l, name, matchers))
            .map(|(l, p)| (l, p.iter().copied().filter(|(t, _)| *t > start).collect()))
            .collect()
    }
}

/// Whether a series with `labels` is one the selector (metric `name`, `matchers`) picks.
pub fn selects(labels: &Labels, name: Option<&str>, matchers: &Matchers) -> bool {
    let get = |k: &str| labels.get(k).map(String::as_str).unwrap_or("");
    if name.is_some_and(|n| get(NAME) != n) {
        return false;
    }
    let all = |ms: &[promql_parser::label::Matcher]| ms.iter().all(|m| m.is_match(get(&m.name)));
    all(&matchers.matchers)
        && (matchers.or_matchers.is_empty() || matchers.or_matchers.iter().any(|g| all(g)))
}
