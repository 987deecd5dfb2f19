//! The numeric cores of Prometheus's functions, as Prometheus computes them: rates over a
//! window's points and quantiles over classic histogram buckets.

use std::collections::BTreeMap;

use super::series::{without_name, Labels, Sample};

/// Prometheus's `extrapolatedRate`: the change over the points, corrected for counter
/// resets, extrapolated to the window's edges (not past where a counter would reach zero).
pub fn extrapolated(
    points: &[(f64, f64)],
    start: f64,
    end: f64,
    counter: bool,
    per_second: bool,
) -> Option<f64> {
    let (&(t_first, v_first), &(t_last, v_last)) = (points.first()?, points.last()?);
    if points.len() < 2 {
        return None;
    }
    let mut result = v_last - v_first;
    if counter {
        for w in points.windows(2) {
            if w[1].1 < w[0].1 {
                result += w[0].1;
            }
        }
    }
    let sampled = t_last - t_first;
    if sampled <= 0.0 {
        return None;
    }
    let mut to_start = t_first - start;
    let to_end = end - t_last;
    let average_step = sampled / (points.len() - 1) as f64;
    if counter && result > 0.0 && v_first >= 0.0 {
        to_start = to_start.min(sampled * (v_first / result));
    }
    let threshold = average_step * 1.1;
    let mut extrapolate_to = sampled;
    extrapolate_to += if to_start < threshold {
        to_start
    } else {
        average_step / 2.0
    };
    extrapolate_to += if to_end < threshold {
        to_end
    } else {
        average_step / 2.0
    };
    let mut factor = extrapolate_to / sampled;
    if per_second {
        factor /= end - start;
    }
    Some(result * factor)
}

/// Prometheus's `histogram_quantile` over classic buckets: series grouped by their labels
/// without `le`, linear interpolation inside the bucket holding the rank.
pub fn histogram_quantile(q: f64, input: Vec<Sample>) -> Vec<Sample> {
    let mut groups: BTreeMap<Labels, Vec<(f64, f64)>> = BTreeMap::new();
    for s in input {
        let Some(le) = s.labels.get("le").and_then(|v| parse_le(v)) else {
            continue;
        };
        let mut labels = without_name(&s.labels);
        labels.remove("le");
        groups.entry(labels).or_default().push((le, s.value));
    }
    groups
        .into_iter()
        .map(|(labels, mut buckets)| {
            buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
            Sample {
                labels,
                value: bucket_quantile(q, &mut buckets),
            }
        })
        .collect()
}

fn parse_le(v: &str) -> Option<f64> {
    match v {
        "+Inf" | "Inf" | "inf" => Some(f64::INFINITY),
        v => v.parse().ok(),
    }
}

fn bucket_quantile(q: f64, buckets: &mut [(f64, f64)]) -> f64 {
    if q.is_nan() {
        return f64::NAN;
    }
    if q < 0.0 {
        return f64::NEG_INFINITY;
    }
    if q > 1.0 {
        return f64::INFINITY;
    }
    if buckets.len() < 2 || !buckets.last().is_some_and(|b| b.0.is_infinite()) {
        return f64::NAN;
    }
    // Counts read at slightly different moments can dip; force them monotonic.
    let mut max = 0.0_f64;
    for b in buckets.iter_mut() {
        max = max.max(b.1);
        b.1 = max;
    }
    let observations = buckets[buckets.len() - 1].1;
    if observations == 0.0 {
        return f64::NAN;
    }
    let mut rank = q * observations;
    let i = buckets
        .iter()
        .position(|b| b.1 >= rank)
        .unwrap_or(buckets.len() - 1);
    if i == buckets.len() - 1 {
        return buckets[buckets.len() - 2].0;
    }
    if i == 0 && buckets[0].0 <= 0.0 {
        return buckets[0].0;
    }
    let (mut start, end, mut count) = (0.0, buckets[i].0, buckets[i].1);
    if i > 0 {
        start = buckets[i - 1].0;
        count -= buckets[i - 1].1;
        rank -= buckets[i - 1].1;
    }
    start + (end - start) * (rank / count)
}
