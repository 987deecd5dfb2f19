//! Building Prometheus metric families by hand: the collectors export values that already
//! exist (kernel maps, procfs), so they fill exposition structures directly instead of
//! mirroring everything into client-library counters.

use prometheus::proto::{
    Bucket, Counter, Gauge, Histogram, LabelPair, Metric, MetricFamily, MetricType,
};

pub fn family(name: &str, help: &str, ty: MetricType, metrics: Vec<Metric>) -> MetricFamily {
    let mut f = MetricFamily::default();
    f.set_name(name.to_string());
    f.set_help(help.to_string());
    f.set_field_type(ty);
    f.set_metric(metrics);
    f
}

fn labelled(labels: &[(&str, &str)]) -> Metric {
    let mut m = Metric::default();
    m.set_label(
        labels
            .iter()
            .map(|(k, v)| {
                let mut l = LabelPair::default();
                l.set_name(k.to_string());
                l.set_value(v.to_string());
                l
            })
            .collect(),
    );
    m
}

pub fn counter(labels: &[(&str, &str)], v: f64) -> Metric {
    let mut m = labelled(labels);
    let mut c = Counter::default();
    c.set_value(v);
    m.set_counter(c);
    m
}

pub fn gauge(labels: &[(&str, &str)], v: f64) -> Metric {
    let mut m = labelled(labels);
    let mut g = Gauge::default();
    g.set_value(v);
    m.set_gauge(g);
    m
}

/// A histogram from per-bucket (not cumulative) counts with their upper bounds; a bucket
/// without a bound is the overflow one, counted only in `+Inf` (implied by the count).
pub fn histogram(labels: &[(&str, &str)], buckets: &[(Option<f64>, u64)], sum: f64) -> Metric {
    let mut m = labelled(labels);
    let mut h = Histogram::default();
    let mut cumulative = 0;
    let mut out = Vec::with_capacity(buckets.len());
    for (upper, n) in buckets {
        cumulative += n;
        if let Some(upper) = upper {
            let mut b = Bucket::default();
            b.set_upper_bound(*upper);
            b.set_cumulative_count(cumulative);
            out.push(b);
        }
    }
    h.set_bucket(out);
    h.set_sample_count(cumulative);
    h.set_sample_sum(sum);
    m.set_histogram(h);
    m
}

/// The kernel's log2 histogram buckets (`monitor_common::hist`) with their upper bounds, as
/// [`histogram`] takes them.
pub fn log2_buckets(counts: &[u64; monitor_common::hist::BUCKETS]) -> Vec<(Option<f64>, u64)> {
    counts
        .iter()
        .enumerate()
        .map(|(i, n)| (monitor_common::hist::upper_seconds(i), *n))
        .collect()
}

pub fn ns_to_seconds(ns: u64) -> f64 {
    ns as f64 / 1e9
}
