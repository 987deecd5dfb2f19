//! Evaluates a checked expression at a source's instant (the alert history's latest, or any
//! instant of the query history), with Prometheus's
//! semantics for the supported subset (extrapolated rates, bucket interpolation, one-to-one
//! and group_left/group_right vector matching, comparison as a filter unless `bool`).

use std::collections::{BTreeMap, HashMap};

use promql_parser::{
    label::Matchers,
    parser::token::TokenType,
    parser::{
        token::{
            T_ADD, T_AVG, T_COUNT, T_DIV, T_EQLC, T_GROUP, T_GTE, T_GTR, T_LAND, T_LOR, T_LSS,
            T_LTE, T_LUNLESS, T_MAX, T_MIN, T_MOD, T_MUL, T_NEQ, T_POW, T_SUB, T_SUM,
        },
        AggregateExpr, BinModifier, BinaryExpr, Call, Expr, LabelModifier, MatrixSelector,
        VectorMatchCardinality,
    },
};

use super::{
    functions::{extrapolated, histogram_quantile},
    series::{without_name, Labels, Sample, NAME},
    Source,
};

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Scalar(f64),
    Vector(Vec<Sample>),
}

pub fn eval(expr: &Expr, h: &dyn Source) -> Result<Value, String> {
    match expr {
        Expr::NumberLiteral(n) => Ok(Value::Scalar(n.val)),
        Expr::Paren(p) => eval(&p.expr, h),
        Expr::Unary(u) => Ok(match eval(&u.expr, h)? {
            Value::Scalar(v) => Value::Scalar(-v),
            Value::Vector(v) => Value::Vector(
                v.into_iter()
                    .map(|s| Sample {
                        labels: without_name(&s.labels),
                        value: -s.value,
                    })
                    .collect(),
            ),
        }),
        Expr::VectorSelector(vs) => Ok(Value::Vector(h.instant(vs.name.as_deref(), &vs.matchers))),
        Expr::Aggregate(a) => aggregate(a, h),
        Expr::Binary(b) => binary(b, h),
        Expr::Call(c) => call(c, h),
        other => Err(format!("cannot evaluate {other}")),
    }
}

fn vector(expr: &Expr, h: &dyn Source) -> Result<Vec<Sample>, String> {
    match eval(expr, h)? {
        Value::Vector(v) => Ok(v),
        Value::Scalar(_) => Err(format!("{expr} is a scalar where a vector is needed")),
    }
}

fn scalar(expr: &Expr, h: &dyn Source) -> Result<f64, String> {
    match eval(expr, h)? {
        Value::Scalar(v) => Ok(v),
        Value::Vector(_) => Err(format!("{expr} is a vector where a number is needed")),
    }
}

/// The labels an aggregation or a match keeps: `by`/`on` keeps the listed ones, `without`/
/// `ignoring` drops them (and the metric name), no modifier keeps none (aggregation) or
/// all but the name (matching).
fn grouping(labels: &Labels, modifier: Option<&LabelModifier>, none_keeps_all: bool) -> Labels {
    match modifier {
        Some(LabelModifier::Include(keep)) => labels
            .iter()
            .filter(|(k, _)| keep.labels.contains(k))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        Some(LabelModifier::Exclude(drop)) => labels
            .iter()
            .filter(|(k, _)| k.as_str() != NAME && !drop.labels.contains(k))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        None if none_keeps_all => without_name(labels),
        None => Labels::new(),
    }
}

fn aggregate(a: &AggregateExpr, h: &dyn Source) -> Result<Value, String> {
    let input = vector(&a.expr, h)?;
    let mut groups: BTreeMap<Labels, Vec<f64>> = BTreeMap::new();
    for s in input {
        groups
            .entry(grouping(&s.labels, a.modifier.as_ref(), false))
            .or_default()
            .push(s.value);
    }
    let op = a.op.id();
    let out = groups
        .into_iter()
        .map(|(labels, vs)| {
            let value = match op {
                T_SUM => vs.iter().sum(),
                T_AVG => vs.iter().sum::<f64>() / vs.len() as f64,
                T_MIN => vs.iter().copied().fold(f64::INFINITY, f64::min),
                T_MAX => vs.iter().copied().fold(f64::NEG_INFINITY, f64::max),
                T_COUNT => vs.len() as f64,
                T_GROUP => 1.0,
                _ => return Err(format!("aggregation {} is not supported", a.op)),
            };
            Ok(Sample { labels, value })
        })
        .collect::<Result<_, String>>()?;
    Ok(Value::Vector(out))
}

fn arith(op: u16, l: f64, r: f64) -> Option<f64> {
    Some(match op {
        T_ADD => l + r,
        T_SUB => l - r,
        T_MUL => l * r,
        T_DIV => l / r,
        T_MOD => l % r,
        T_POW => l.powf(r),
        _ => return None,
    })
}

fn compare(op: u16, l: f64, r: f64) -> Option<bool> {
    Some(match op {
        T_EQLC => l == r,
        T_NEQ => l != r,
        T_GTR => l > r,
        T_LSS => l < r,
        T_GTE => l >= r,
        T_LTE => l <= r,
        _ => return None,
    })
}

/// One pair's result: `None` drops the sample (a comparison that fails as a filter).
fn apply(op: TokenType, return_bool: bool, l: f64, r: f64, keep: f64) -> Option<f64> {
    if let Some(v) = arith(op.id(), l, r) {
        return Some(v);
    }
    let ok = compare(op.id(), l, r)?;
    match (return_bool, ok) {
        (true, ok) => Some(f64::from(u8::from(ok))),
        (false, true) => Some(keep),
        (false, false) => None,
    }
}

fn binary(b: &BinaryExpr, h: &dyn Source) -> Result<Value, String> {
    let op = b.op;
    let return_bool = b.return_bool();
    // Arithmetic and `bool` comparisons make a new quantity: the metric name goes.
    let drops_name = !op.is_comparison_operator() || return_bool;
    let lhs = eval(&b.lhs, h)?;
    let rhs = eval(&b.rhs, h)?;
    match (lhs, rhs) {
        (Value::Scalar(l), Value::Scalar(r)) => {
            Ok(Value::Scalar(apply(op, true, l, r, l).unwrap_or(f64::NAN)))
        }
        (Value::Vector(v), Value::Scalar(r)) => Ok(Value::Vector(
            v.into_iter()
                .filter_map(|s| {
                    let value = apply(op, return_bool, s.value, r, s.value)?;
                    Some(Sample {
                        labels: name_rule(s.labels, drops_name),
                        value,
                    })
                })
                .collect(),
        )),
        (Value::Scalar(l), Value::Vector(v)) => Ok(Value::Vector(
            v.into_iter()
                .filter_map(|s| {
                    let value = apply(op, return_bool, l, s.value, s.value)?;
                    Some(Sample {
                        labels: name_rule(s.labels, drops_name),
                        value,
                    })
                })
                .collect(),
        )),
        (Value::Vector(l), Value::Vector(r)) if op.is_set_operator() => {
            Ok(Value::Vector(set_op(op.id(), l, r, b.modifier.as_ref())))
        }
        (Value::Vector(l), Value::Vector(r)) => {
            vector_match(op, return_bool, drops_name, l, r, b.modifier.as_ref()).map(Value::Vector)
        }
    }
}

fn name_rule(labels: Labels, drop: bool) -> Labels {
    if drop {
        without_name(&labels)
    } else {
        labels
    }
}

fn set_op(op: u16, l: Vec<Sample>, r: Vec<Sample>, m: Option<&BinModifier>) -> Vec<Sample> {
    let matching = m.and_then(|m| m.matching.as_ref());
    let sig = |s: &Sample| grouping(&s.labels, matching, true);
    let right: std::collections::HashSet<Labels> = r.iter().map(sig).collect();
    match op {
        T_LAND => l.into_iter().filter(|s| right.contains(&sig(s))).collect(),
        T_LUNLESS => l.into_iter().filter(|s| !right.contains(&sig(s))).collect(),
        T_LOR => {
            let left: std::collections::HashSet<Labels> = l.iter().map(sig).collect();
            let mut out = l;
            out.extend(r.into_iter().filter(|s| !left.contains(&sig(s))));
            out
        }
        _ => Vec::new(),
    }
}

fn vector_match(
    op: TokenType,
    return_bool: bool,
    drops_name: bool,
    l: Vec<Sample>,
    r: Vec<Sample>,
    m: Option<&BinModifier>,
) -> Result<Vec<Sample>, String> {
    let matching = m.and_then(|m| m.matching.as_ref());
    let card = m.map_or(&VectorMatchCardinality::OneToOne, |m| &m.card);
    // group_right: the right side is the "many" side; swap and swap back per pair.
    let (many, one, swapped) = match card {
        VectorMatchCardinality::OneToMany(_) => (r, l, true),
        _ => (l, r, false),
    };
    let sig = |s: &Sample| grouping(&s.labels, matching, true);
    let mut one_side: HashMap<Labels, &Sample> = HashMap::new();
    for s in &one {
        if one_side.insert(sig(s), s).is_some() {
            return Err(format!(
                "many-to-many matching: more than one series on the {} side match {:?}; \
                 aggregate it, or use on(...)/ignoring(...)",
                if swapped { "left" } else { "right" },
                sig(s)
            ));
        }
    }
    let mut seen: HashMap<Labels, ()> = HashMap::new();
    let mut out = Vec::new();
    for s in &many {
        let key = sig(s);
        let Some(o) = one_side.get(&key) else {
            continue;
        };
        let (lv, rv) = if swapped {
            (o.value, s.value)
        } else {
            (s.value, o.value)
        };
        let Some(value) = apply(op, return_bool, lv, rv, lv) else {
            continue;
        };
        let labels = match card {
            VectorMatchCardinality::OneToOne => {
                if seen.insert(key.clone(), ()).is_some() {
                    return Err(format!(
                        "many-to-one matching: more than one series on the left side match \
                         {key:?}; use group_left"
                    ));
                }
                let base = match matching {
                    Some(LabelModifier::Include(_)) => key,
                    _ => name_rule(s.labels.clone(), drops_name),
                };
                match matching {
                    Some(LabelModifier::Exclude(drop)) => base
                        .into_iter()
                        .filter(|(k, _)| !drop.labels.contains(k))
                        .collect(),
                    _ => base,
                }
            }
            VectorMatchCardinality::ManyToOne(extra) | VectorMatchCardinality::OneToMany(extra) => {
                let mut labels = name_rule(s.labels.clone(), drops_name);
                for k in &extra.labels {
                    match o.labels.get(k) {
                        Some(v) => labels.insert(k.clone(), v.clone()),
                        None => labels.remove(k),
                    };
                }
                labels
            }
            VectorMatchCardinality::ManyToMany => unreachable!("set operators are handled apart"),
        };
        out.push(Sample { labels, value });
    }
    Ok(out)
}

fn matrix_arg(c: &Call, i: usize) -> Result<&MatrixSelector, String> {
    match c.args.args.get(i).map(|a| &**a) {
        Some(Expr::MatrixSelector(m)) => Ok(m),
        _ => Err(format!(
            "{} needs a range selector such as x[5m]",
            c.func.name
        )),
    }
}

fn over_range(
    c: &Call,
    h: &dyn Source,
    f: impl Fn(&[(f64, f64)], f64) -> Option<f64>,
) -> Result<Value, String> {
    let m = matrix_arg(c, 0)?;
    let range = m.range.as_secs_f64();
    Ok(Value::Vector(
        range_points(h, m.vs.name.as_deref(), &m.vs.matchers, range)
            .into_iter()
            .filter_map(|(labels, points)| {
                Some(Sample {
                    labels: without_name(labels),
                    value: f(&points, range)?,
                })
            })
            .collect(),
    ))
}

fn range_points<'a>(
    h: &'a dyn Source,
    name: Option<&str>,
    matchers: &Matchers,
    range: f64,
) -> Vec<(&'a Labels, Vec<(f64, f64)>)> {
    h.range(name, matchers, range)
}

fn call(c: &Call, h: &dyn Source) -> Result<Value, String> {
    let now = h.now();
    match c.func.name {
        "rate" => over_range(c, h, |p, r| extrapolated(p, now - r, now, true, true)),
        "increase" => over_range(c, h, |p, r| extrapolated(p, now - r, now, true, false)),
        "delta" => over_range(c, h, |p, r| extrapolated(p, now - r, now, false, false)),
        "irate" => over_range(c, h, |p, _| {
            let [.., (t0, v0), (t1, v1)] = p else {
                return None;
            };
            let d = if v1 < v0 { *v1 } else { v1 - v0 };
            Some(d / (t1 - t0))
        }),
        "avg_over_time" => over_range(c, h, |p, _| {
            (!p.is_empty()).then(|| p.iter().map(|x| x.1).sum::<f64>() / p.len() as f64)
        }),
        "sum_over_time" => over_range(c, h, |p, _| {
            (!p.is_empty()).then(|| p.iter().map(|x| x.1).sum())
        }),
        "min_over_time" => over_range(c, h, |p, _| p.iter().map(|x| x.1).reduce(f64::min)),
        "max_over_time" => over_range(c, h, |p, _| p.iter().map(|x| x.1).reduce(f64::max)),
        "count_over_time" => over_range(c, h, |p, _| (!p.is_empty()).then_some(p.len() as f64)),
        "last_over_time" => over_range(c, h, |p, _| p.last().map(|x| x.1)),
        "abs" | "ceil" | "floor" => {
            let f = match c.func.name {
                "abs" => f64::abs,
                "ceil" => f64::ceil,
                _ => f64::floor,
            };
            map_vector(c, h, f)
        }
        "clamp_min" | "clamp_max" => {
            let bound = scalar(arg(c, 1)?, h)?;
            let max = c.func.name == "clamp_max";
            map_vector(c, h, move |v| if max { v.min(bound) } else { v.max(bound) })
        }
        "histogram_quantile" => {
            let q = scalar(arg(c, 0)?, h)?;
            Ok(Value::Vector(histogram_quantile(q, vector(arg(c, 1)?, h)?)))
        }
        other => Err(format!("function {other} is not supported")),
    }
}

fn arg(c: &Call, i: usize) -> Result<&Expr, String> {
    c.args
        .args
        .get(i)
        .map(|a| &**a)
        .ok_or_else(|| format!("{} lacks argument {}", c.func.name, i + 1))
}

fn map_vector(c: &Call, h: &dyn Source, f: impl Fn(f64) -> f64) -> Result<Value, String> {
    Ok(Value::Vector(
        vector(arg(c, 0)?, h)?
            .into_iter()
            .map(|s| Sample {
                labels: without_name(&s.labels),
                value: f(s.value),
            })
            .collect(),
    ))
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;
    use crate::alert::expr::History;

    fn sample(name: &str, labels: &[(&str, &str)], value: f64) -> Sample {
        let mut l: Labels = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        l.insert(NAME.to_string(), name.to_string());
        Sample { labels: l, value }
    }

    fn run(h: &dyn Source, q: &str) -> Vec<Sample> {
        let e = promql_parser::parser::parse(q).unwrap();
        match eval(&e, h).unwrap() {
            Value::Vector(mut v) => {
                v.sort_by(|a, b| a.labels.cmp(&b.labels));
                v
            }
            Value::Scalar(s) => panic!("scalar {s}"),
        }
    }

    fn cpu_history() -> History {
        let mut h = History::new(
            HashSet::from(["monitor_cpu_seconds_total".to_string()]),
            600.0,
        );
        // Two CPUs over 60 s: cpu 0 idle 10% of the time, cpu 1 idle 50%.
        for i in 0..=6 {
            let t = f64::from(i) * 10.0;
            h.push(
                t,
                vec![
                    sample(
                        "monitor_cpu_seconds_total",
                        &[("cpu", "0"), ("mode", "idle")],
                        t * 0.1,
                    ),
                    sample(
                        "monitor_cpu_seconds_total",
                        &[("cpu", "0"), ("mode", "user")],
                        t * 0.9,
                    ),
                    sample(
                        "monitor_cpu_seconds_total",
                        &[("cpu", "1"), ("mode", "idle")],
                        t * 0.5,
                    ),
                    sample(
                        "monitor_cpu_seconds_total",
                        &[("cpu", "1"), ("mode", "user")],
                        t * 0.5,
                    ),
                    sample("monitor_memory_available_bytes", &[], 50.0),
                    sample("monitor_memory_total_bytes", &[], 1000.0),
                ],
            );
        }
        h
    }

    #[test]
    fn cpu_busy_share() {
        let h = cpu_history();
        let v = run(
            &h,
            r#"1 - sum(rate(monitor_cpu_seconds_total{mode=~"idle|iowait"}[1m])) / count(monitor_cpu_seconds_total{mode="idle"})"#,
        );
        assert_eq!(v.len(), 1);
        assert!((v[0].value - 0.7).abs() < 1e-9, "{v:?}");
        let v = run(
            &h,
            r#"sum by (cpu) (rate(monitor_cpu_seconds_total[1m])) > 0.5"#,
        );
        assert_eq!(v.len(), 2);
        let v = run(
            &h,
            r#"rate(monitor_cpu_seconds_total{mode="idle"}[1m]) > 0.2"#,
        );
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].labels.get("cpu").unwrap(), "1");
        // A comparison filters and keeps the name; arithmetic drops it.
        let v = run(
            &h,
            "monitor_memory_available_bytes / monitor_memory_total_bytes < 0.1",
        );
        assert_eq!(
            v,
            vec![sample("x", &[], 0.05)]
                .into_iter()
                .map(|mut s| {
                    s.labels.clear();
                    s
                })
                .collect::<Vec<_>>()
        );
        let v = run(&h, "monitor_memory_available_bytes < 100");
        assert_eq!(
            v[0].labels.get(NAME).unwrap(),
            "monitor_memory_available_bytes"
        );
        let v = run(&h, "monitor_memory_available_bytes > bool 100");
        assert_eq!(v[0].value, 0.0);
    }

    #[test]
    fn increase_over_a_reset() {
        let mut h = History::new(HashSet::from(["c_total".to_string()]), 600.0);
        for (t, v) in [
            (0.0, 0.0),
            (10.0, 5.0),
            (20.0, 10.0),
            (30.0, 2.0),
            (40.0, 7.0),
        ] {
            h.push(t, vec![sample("c_total", &[], v)]);
        }
        // The window (0, 40] holds 5, 10, 2, 7: 5 up to the reset, 2 and 5 after it, 12
        // over 30 s sampled, extrapolated to the 40 s window as Prometheus does.
        let v = run(&h, "increase(c_total[40s])");
        assert!((v[0].value - 16.0).abs() < 1e-9, "{v:?}");
        let v = run(&h, "increase(c_total[40s]) > 20");
        assert!(v.is_empty());
    }

    #[test]
    fn quantile_and_matching() {
        let mut h = History::new(HashSet::new(), 60.0);
        h.push(
            0.0,
            vec![
                sample("h_bucket", &[("le", "0.1")], 50.0),
                sample("h_bucket", &[("le", "1")], 90.0),
                sample("h_bucket", &[("le", "+Inf")], 100.0),
                sample("a", &[("g", "x"), ("k", "1")], 4.0),
                sample("a", &[("g", "y"), ("k", "1")], 6.0),
                sample("b", &[("g", "x")], 2.0),
            ],
        );
        let v = run(&h, "histogram_quantile(0.5, h_bucket)");
        assert!((v[0].value - 0.1).abs() < 1e-9);
        let v = run(&h, "histogram_quantile(0.7, h_bucket)");
        assert!((v[0].value - 0.55).abs() < 1e-9, "{v:?}");
        let v = run(&h, "histogram_quantile(0.99, h_bucket)");
        assert_eq!(v[0].value, 1.0);
        let v = run(&h, "a / on(g) b");
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].value, 2.0);
        assert_eq!(v[0].labels, Labels::from([("g".into(), "x".into())]));
        let v = run(&h, "a / ignoring(k) b");
        assert_eq!(v.len(), 1);
        let v = run(&h, "a and on(g) b");
        assert_eq!(v.len(), 1);
        let v = run(&h, "a unless on(g) b");
        assert_eq!(v[0].labels.get("g").unwrap(), "y");
        let v = run(&h, "max without (k) (a)");
        assert_eq!(v.len(), 2);
        let e = promql_parser::parser::parse("a / on() b").unwrap();
        assert!(eval(&e, &h).is_err(), "two left series match one right");
    }
}
