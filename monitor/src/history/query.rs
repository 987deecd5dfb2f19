//! Evaluating a query over the history: the points its selectors need are copied out of the
//! store once (`Store::fetch`), then `alert::expr::eval` runs at each instant asked for over
//! a view of them (`At`), the same engine the alert rules use.

use std::collections::{BTreeMap, HashMap};

use promql_parser::{
    label::Matchers,
    parser::{Expr, VectorSelector},
};

use super::store::{Fetched, Store};
use crate::alert::expr::{
    eval::{eval, Value},
    history::selects,
    Labels, Sample, Source,
};

/// A query's failure, in the terms of Prometheus's API.
#[derive(Debug, PartialEq)]
pub enum Error {
    /// The query or a parameter is wrong (400, `bad_data`).
    BadData(String),
    /// It parsed but could not be evaluated (422, `execution`).
    Execution(String),
}

/// The result of an instant query.
pub enum Instant {
    Scalar(f64),
    Vector(Vec<Sample>),
}

/// A checked query: its expression, the selectors it reads and its longest window.
pub struct Query {
    expr: Expr,
    selectors: Vec<(Option<String>, Matchers)>,
    longest: f64,
}

/// `name` and matchers of a selector (`{__name__="x"}` names `x` too).
pub fn selector(vs: &VectorSelector) -> (Option<String>, Matchers) {
    (vs.name.clone(), vs.matchers.clone())
}

fn selectors(e: &Expr, out: &mut Vec<(Option<String>, Matchers)>) {
    match e {
        Expr::VectorSelector(vs) => out.push(selector(vs)),
        Expr::MatrixSelector(m) => out.push(selector(&m.vs)),
        Expr::Paren(p) => selectors(&p.expr, out),
        Expr::Unary(u) => selectors(&u.expr, out),
        Expr::Aggregate(a) => selectors(&a.expr, out),
        Expr::Binary(b) => {
            selectors(&b.lhs, out);
            selectors(&b.rhs, out);
        }
        Expr::Call(c) => c.args.args.iter().for_each(|a| selectors(a, out)),
        _ => {}
    }
}

impl Query {
    pub fn parse(text: &str) -> Result<Self, Error> {
        if text.trim().is_empty() {
            return Err(Error::BadData(
                "invalid parameter \"query\": the query is empty".into(),
            ));
        }
        let (expr, needs) = crate::alert::expr::check::query(text).map_err(|e| {
            Error::BadData(format!(
                "invalid parameter \"query\": {e} (this daemon evaluates a PromQL subset; \
                 see the README's query API)"
            ))
        })?;
        let mut sel = Vec::new();
        selectors(&expr, &mut sel);
        Ok(Self {
            expr,
            selectors: sel,
            longest: needs.longest,
        })
    }

    fn fetch(&self, store: &std::sync::Mutex<Store>, from: f64, to: f64) -> Fetched {
        let s = store.lock().unwrap_or_else(|p| p.into_inner());
        s.fetch(&self.selectors, from - self.longest, to)
    }

    pub fn instant(&self, store: &std::sync::Mutex<Store>, t: f64) -> Result<Instant, Error> {
        let f = self.fetch(store, t, t);
        match eval(&self.expr, &At::new(&f, t)).map_err(Error::Execution)? {
            Value::Scalar(v) => Ok(Instant::Scalar(v)),
            Value::Vector(v) => {
                no_duplicates(&v)?;
                Ok(Instant::Vector(v))
            }
        }
    }

    /// One series per label set, its (time, value) at each step it had one.
    pub fn range(
        &self,
        store: &std::sync::Mutex<Store>,
        start: f64,
        end: f64,
        step: f64,
    ) -> Result<BTreeMap<Labels, Vec<(f64, f64)>>, Error> {
        let f = self.fetch(store, start, end);
        let mut out = Steps::default();
        let steps = ((end - start) / step).floor() as u64;
        for i in 0..=steps {
            let t = start + i as f64 * step;
            match eval(&self.expr, &At::new(&f, t)).map_err(Error::Execution)? {
                Value::Scalar(v) => out.push(0, Labels::new(), t, v)?,
                Value::Vector(v) => {
                    for (j, s) in v.into_iter().enumerate() {
                        out.push(j, s.labels, t, s.value)?;
                    }
                }
            }
        }
        Ok(out.series.into_iter().collect())
    }
}

/// A range query's series as the steps come. A step's result has mostly the label sets of
/// the step before, in the same order: each sample is first compared with the series the
/// sample at its place went to last time, and looked up by hash only when that is not it
/// (the label maps' comparisons were most of a long range's time).
#[derive(Default)]
struct Steps {
    series: Vec<(Labels, Vec<(f64, f64)>)>,
    index: HashMap<Labels, usize, fnv::FnvBuildHasher>,
    /// The series of each place in the last step's result.
    hint: Vec<usize>,
}

impl Steps {
    fn push(&mut self, at: usize, labels: Labels, t: f64, v: f64) -> Result<(), Error> {
        let hinted = self
            .hint
            .get(at)
            .copied()
            .filter(|&i| self.series[i].0 == labels);
        let i = match hinted {
            Some(i) => i,
            None => match self.index.get(&labels) {
                Some(&i) => i,
                None => {
                    self.index.insert(labels.clone(), self.series.len());
                    self.series.push((labels, Vec::new()));
                    self.series.len() - 1
                }
            },
        };
        let points = &mut self.series[i].1;
        if points.last().is_some_and(|p| p.0 == t) {
            return Err(duplicate(&self.series[i].0));
        }
        points.push((t, v));
        match self.hint.get_mut(at) {
            Some(h) => *h = i,
            None => self.hint.push(i),
        }
        Ok(())
    }
}

fn duplicate(labels: &Labels) -> Error {
    Error::Execution(format!(
        "vector cannot contain metrics with the same labelset {labels:?}"
    ))
}

fn no_duplicates(v: &[Sample]) -> Result<(), Error> {
    let mut seen = std::collections::HashSet::with_hasher(fnv::FnvBuildHasher::default());
    for s in v {
        if !seen.insert(&s.labels) {
            return Err(duplicate(&s.labels));
        }
    }
    Ok(())
}

/// The history as of instant `t`: a series' instant value is the one of the last frame at
/// or before `t` (a series missing from that frame is stale, as a scrape that no longer
/// finds it makes it in Prometheus); a window is the points in `(t - range, t]`.
struct At<'a> {
    f: &'a Fetched,
    t: f64,
    frame: Option<u64>,
}

impl<'a> At<'a> {
    fn new(f: &'a Fetched, t: f64) -> Self {
        let i = f.frames.partition_point(|(_, ft)| *ft <= t);
        Self {
            f,
            t,
            frame: i.checked_sub(1).map(|i| f.frames[i].0),
        }
    }

    fn time(&self, frame: u64) -> f64 {
        let first = self.f.frames.first().map_or(0, |f| f.0);
        self.f
            .frames
            .get(frame.wrapping_sub(first) as usize)
            .map_or(f64::NAN, |f| f.1)
    }
}

impl Source for At<'_> {
    fn now(&self) -> f64 {
        self.t
    }

    fn instant(&self, name: Option<&str>, matchers: &Matchers) -> Vec<Sample> {
        let Some(frame) = self.frame else {
            return Vec::new();
        };
        self.f
            .series
            .iter()
            .filter(|(l, _)| selects(l, name, matchers))
            .filter_map(|(l, p)| {
                let i = p.binary_search_by_key(&frame, |x| x.0).ok()?;
                Some(Sample {
                    labels: l.clone(),
                    value: p[i].1,
                })
            })
            .collect()
    }

    fn range<'s>(
        &'s self,
        name: Option<&str>,
        matchers: &Matchers,
        range: f64,
    ) -> Vec<(&'s Labels, Vec<(f64, f64)>)> {
        let start = self.t - range;
        self.f
            .series
            .iter()
            .filter(|(l, _)| selects(l, name, matchers))
            .map(|(l, p)| {
                let lo = p.partition_point(|x| self.time(x.0) <= start);
                let hi = p.partition_point(|x| self.time(x.0) <= self.t);
                let pts = p[lo..hi.max(lo)]
                    .iter()
                    .map(|&(f, v)| (self.time(f), v))
                    .collect();
                (l, pts)
            })
            .filter(|(_, p): &(_, Vec<_>)| !p.is_empty())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use prometheus::proto::MetricType;

    use super::*;
    use crate::{
        alert::expr::series::NAME,
        metrics::{counter, family, gauge},
    };

    /// 60 frames a second apart: c_total grows 2 a second on x="1" and 5 on x="2"; g is
    /// present only until t=1030.
    fn store() -> Mutex<Store> {
        let mut s = Store::new(1000.0, 1 << 30, vec![("job".into(), "monitor".into())]);
        for i in 0..60 {
            let t = 1000.0 + f64::from(i);
            let mut f = vec![family(
                "c_total",
                "c",
                MetricType::COUNTER,
                vec![
                    counter(&[("x", "1")], 2.0 * f64::from(i)),
                    counter(&[("x", "2")], 5.0 * f64::from(i)),
                ],
            )];
            if t <= 1030.0 {
                f.push(family("g", "g", MetricType::GAUGE, vec![gauge(&[], t)]));
            }
            s.push(t, &f);
        }
        Mutex::new(s)
    }

    fn vector(s: &Mutex<Store>, q: &str, t: f64) -> Vec<Sample> {
        match Query::parse(q).unwrap().instant(s, t).unwrap() {
            Instant::Vector(mut v) => {
                v.sort_by(|a, b| a.labels.cmp(&b.labels));
                v
            }
            Instant::Scalar(_) => panic!("{q} is a scalar"),
        }
    }

    #[test]
    fn instant_queries_at_any_time_in_the_history() {
        let s = store();
        let v = vector(&s, r#"rate(c_total{job="monitor"}[10s])"#, 1050.0);
        assert_eq!(v.len(), 2);
        assert!(
            (v[0].value - 2.0).abs() < 1e-9 && (v[1].value - 5.0).abs() < 1e-9,
            "{v:?}"
        );
        assert!(!v[0].labels.contains_key(NAME));
        let v = vector(&s, "sum(c_total)", 1010.5);
        assert_eq!(v[0].value, 70.0);
        // Stale after its last frame; present between frames until then.
        assert_eq!(vector(&s, "g", 1020.5)[0].value, 1020.0);
        assert!(vector(&s, "g", 1031.0).is_empty());
        assert!(vector(&s, "g", 999.0).is_empty());
        assert!(vector(&s, "nope", 1030.0).is_empty());
        match Query::parse("1 + 1").unwrap().instant(&s, 1.0).unwrap() {
            Instant::Scalar(v) => assert_eq!(v, 2.0),
            Instant::Vector(_) => panic!("not a scalar"),
        }
    }

    #[test]
    fn range_queries_step_through_the_history() {
        let s = store();
        let q = Query::parse(r#"sum by (x) (rate(c_total[5s]))"#).unwrap();
        let m = q.range(&s, 1010.0, 1020.0, 2.0).unwrap();
        assert_eq!(m.len(), 2);
        let one = &m[&Labels::from([("x".into(), "1".into())])];
        assert_eq!(one.len(), 6);
        assert_eq!(one[0].0, 1010.0);
        assert!(one.iter().all(|(_, v)| (v - 2.0).abs() < 1e-9), "{one:?}");
        let m = Query::parse("g")
            .unwrap()
            .range(&s, 1025.0, 1035.0, 1.0)
            .unwrap();
        assert_eq!(m.values().next().unwrap().len(), 6);
    }

    #[test]
    fn queries_outside_the_subset_are_bad_data() {
        for (q, why) in [
            ("topk(3, c_total)", "aggregation topk is not supported"),
            ("c_total[5m:1m]", "subqueries are not supported"),
            ("rate(c_total[5m]", "unclosed"),
            ("", "empty"),
        ] {
            match Query::parse(q) {
                Err(Error::BadData(e)) => assert!(e.contains(why), "{q}: {e}"),
                _ => panic!("{q} accepted"),
            }
        }
        let s = store();
        let e = Query::parse("c_total + on() c_total")
            .unwrap()
            .instant(&s, 1050.0)
            .err()
            .unwrap();
        assert!(matches!(e, Error::Execution(_)), "{e:?}");
    }
}
