//! Samples as the rule engine sees them: one value per series, labels including
//! `__name__`, flattened from the exposition families the way Prometheus would scrape them.

use std::collections::BTreeMap;

use prometheus::proto::{MetricFamily, MetricType};

pub type Labels = BTreeMap<String, String>;

pub const NAME: &str = "__name__";

#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    pub labels: Labels,
    pub value: f64,
}

/// Every series of `families`, as a scrape would store them: histograms as `_bucket`
/// (cumulative, `+Inf` included), `_sum` and `_count`; summaries as quantiles, `_sum`
/// and `_count`.
pub fn flatten<'a>(families: impl IntoIterator<Item = &'a MetricFamily>) -> Vec<Sample> {
    let mut out = Vec::new();
    for f in families {
        let name = f.name();
        for m in f.get_metric() {
            let base: Labels = m
                .get_label()
                .iter()
                .map(|l| (l.name().to_string(), l.value().to_string()))
                .collect();
            let mut push = |suffix: &str, extra: Option<(&str, String)>, value: f64| {
                let mut labels = base.clone();
                labels.insert(NAME.to_string(), format!("{name}{suffix}"));
                if let Some((k, v)) = extra {
                    labels.insert(k.to_string(), v);
                }
                out.push(Sample { labels, value });
            };
            match f.get_field_type() {
                MetricType::COUNTER => push("", None, m.get_counter().get_value()),
                MetricType::GAUGE => push("", None, m.get_gauge().get_value()),
                // The daemon exports no untyped families.
                MetricType::UNTYPED => {}
                MetricType::HISTOGRAM => {
                    let h = m.get_histogram();
                    let mut inf = false;
                    for b in h.get_bucket() {
                        inf |= b.upper_bound().is_infinite();
                        push(
                            "_bucket",
                            Some(("le", format_le(b.upper_bound()))),
                            b.cumulative_count() as f64,
                        );
                    }
                    if !inf {
                        push(
                            "_bucket",
                            Some(("le", "+Inf".to_string())),
                            h.get_sample_count() as f64,
                        );
                    }
                    push("_sum", None, h.get_sample_sum());
                    push("_count", None, h.get_sample_count() as f64);
                }
                MetricType::SUMMARY => {
                    let s = m.get_summary();
                    for q in s.get_quantile() {
                        push("", Some(("quantile", q.quantile().to_string())), q.value());
                    }
                    push("_sum", None, s.sample_sum());
                    push("_count", None, s.sample_count() as f64);
                }
            }
        }
    }
    out
}

/// A bucket bound as the text format writes it (`0.001`, `+Inf`).
fn format_le(v: f64) -> String {
    if v.is_infinite() {
        "+Inf".to_string()
    } else {
        v.to_string()
    }
}

/// Labels without `__name__`.
pub fn without_name(labels: &Labels) -> Labels {
    let mut l = labels.clone();
    l.remove(NAME);
    l
}
