//! What a rule's expression may use, checked before the rule is accepted: only what `eval`
//! implements, only metric families the daemon can export, a vector as the result.

use std::collections::HashSet;

use promql_parser::parser::{
    token::{T_AVG, T_COUNT, T_GROUP, T_MAX, T_MIN, T_SUM},
    Expr, VectorSelector,
};

use crate::alert::catalog;

const FUNCTIONS: &[&str] = &[
    "rate",
    "increase",
    "delta",
    "irate",
    "avg_over_time",
    "sum_over_time",
    "min_over_time",
    "max_over_time",
    "count_over_time",
    "last_over_time",
    "abs",
    "ceil",
    "floor",
    "clamp_min",
    "clamp_max",
    "histogram_quantile",
];

/// What the engine needs to know of an accepted expression.
#[derive(Debug, Default)]
pub struct Needs {
    /// Metric names read over a window (their points are kept).
    pub ranged: HashSet<String>,
    /// The longest window, in seconds.
    pub longest: f64,
    /// A rule's check: metrics must be ones the daemon exports. A query's is not (an unknown
    /// metric selects nothing, as in Prometheus).
    strict: bool,
}

/// Parses and checks a query for the query API (`history::api`): the same subset as a
/// rule's, but its result may be a number, and a metric the daemon does not export selects
/// nothing rather than being an error.
pub fn query(text: &str) -> Result<(Expr, Needs), String> {
    let expr = promql_parser::parser::parse(text)?;
    let mut needs = Needs::default();
    walk(&expr, &mut needs)?;
    Ok((expr, needs))
}

/// Parses and checks `text`; the error says what is wrong, without the file or rule (the
/// caller adds those).
pub fn check(text: &str) -> Result<(Expr, Needs), String> {
    let expr = promql_parser::parser::parse(text)?;
    let mut needs = Needs {
        strict: true,
        ..Needs::default()
    };
    walk(&expr, &mut needs)?;
    if is_scalar(&expr) {
        return Err("it is a number, not a condition over metrics".to_string());
    }
    Ok((expr, needs))
}

fn is_scalar(e: &Expr) -> bool {
    match e {
        Expr::NumberLiteral(_) => true,
        Expr::Paren(p) => is_scalar(&p.expr),
        Expr::Unary(u) => is_scalar(&u.expr),
        Expr::Binary(b) => is_scalar(&b.lhs) && is_scalar(&b.rhs),
        _ => false,
    }
}

fn selector(vs: &VectorSelector, strict: bool) -> Result<(), String> {
    if vs.offset.is_some() || vs.at.is_some() {
        return Err("offset and @ are not supported".to_string());
    }
    let name = vs
        .name
        .clone()
        .or_else(|| {
            vs.matchers
                .matchers
                .iter()
                .find(|m| {
                    m.name == "__name__" && matches!(m.op, promql_parser::label::MatchOp::Equal)
                })
                .map(|m| m.value.clone())
        })
        .ok_or_else(|| format!("selector {vs} names no metric"))?;
    if strict && !catalog::exportable(&name) {
        return Err(format!(
            "unknown metric {name}: the daemon exports no such family (see the README's metrics)"
        ));
    }
    Ok(())
}

fn walk(e: &Expr, needs: &mut Needs) -> Result<(), String> {
    match e {
        Expr::NumberLiteral(n) if n.val.is_nan() => {
            Err("NaN is not a threshold: nothing compares with it".to_string())
        }
        Expr::NumberLiteral(_) => Ok(()),
        Expr::StringLiteral(s) => Err(format!("string {:?} is not a number", s.val)),
        Expr::Paren(p) => walk(&p.expr, needs),
        Expr::Unary(u) => walk(&u.expr, needs),
        Expr::VectorSelector(vs) => selector(vs, needs.strict),
        Expr::MatrixSelector(m) => {
            selector(&m.vs, needs.strict)?;
            let range = m.range.as_secs_f64();
            if range <= 0.0 {
                return Err(format!("{e}: the window must be above zero"));
            }
            needs.longest = needs.longest.max(range);
            if let Some(name) = &m.vs.name {
                needs.ranged.insert(name.clone());
            }
            Ok(())
        }
        Expr::Aggregate(a) => {
            if !matches!(a.op.id(), T_SUM | T_AVG | T_MIN | T_MAX | T_COUNT | T_GROUP) {
                return Err(format!(
                    "aggregation {} is not supported (sum, avg, min, max, count, group are)",
                    a.op
                ));
            }
            walk(&a.expr, needs)
        }
        Expr::Binary(b) => {
            if b.op.id() == promql_parser::parser::token::T_ATAN2 {
                return Err("atan2 is not supported".to_string());
            }
            if b.op.is_comparison_operator() && is_scalar(&b.lhs) && is_scalar(&b.rhs) {
                return Err(format!("{e} compares two numbers, not a metric"));
            }
            walk(&b.lhs, needs)?;
            walk(&b.rhs, needs)
        }
        Expr::Call(c) => {
            if !FUNCTIONS.contains(&c.func.name) {
                return Err(format!(
                    "function {} is not supported (supported: {})",
                    c.func.name,
                    FUNCTIONS.join(", ")
                ));
            }
            if c.func.name == "histogram_quantile" {
                if let Some(Expr::NumberLiteral(q)) = c.args.args.first().map(|a| &**a) {
                    if !(0.0..=1.0).contains(&q.val) {
                        return Err(format!(
                            "histogram_quantile({}, ...): the quantile must be within 0 and 1",
                            q.val
                        ));
                    }
                }
            }
            c.args.args.iter().try_for_each(|a| walk(a, needs))
        }
        Expr::Subquery(_) => Err("subqueries are not supported".to_string()),
        Expr::Extension(_) => Err("extensions are not supported".to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_supported_subset() {
        let (_, n) = check(
            r#"histogram_quantile(0.99, sum by (le) (rate(monitor_runqueue_latency_seconds_bucket[5m]))) > 0.05"#,
        )
        .unwrap();
        assert!(n.ranged.contains("monitor_runqueue_latency_seconds_bucket"));
        assert_eq!(n.longest, 300.0);
        check("monitor_memory_available_bytes / monitor_memory_total_bytes < 0.1").unwrap();
    }

    #[test]
    fn rejects_with_a_reason() {
        for (q, why) in [
            ("monitor_nope > 1", "unknown metric monitor_nope"),
            ("monitor_processes > NaN", "NaN is not a threshold"),
            ("1 > 2", "BOOL"),
            ("quantile(0.9, monitor_processes)", "aggregation quantile"),
            (
                "predict_linear(monitor_processes[5m], 60) > 0",
                "function predict_linear",
            ),
            (r#"monitor_processes{x=~"("} > 1"#, "illegal regex"),
            ("monitor_processes > 1O0", ""),
            ("42", "a number"),
        ] {
            let e = check(q).unwrap_err();
            assert!(e.contains(why), "{q}: {e}");
        }
    }

    #[test]
    fn a_query_may_be_a_number_or_name_an_unknown_metric() {
        query("1 + 1").unwrap();
        query("monitor_nope").unwrap();
        let e = query("topk(3, monitor_processes)").unwrap_err();
        assert!(e.contains("aggregation topk is not supported"), "{e}");
        let e = query("monitor_processes offset 5m").unwrap_err();
        assert!(e.contains("offset"), "{e}");
    }
}
