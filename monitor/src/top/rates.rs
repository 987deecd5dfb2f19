//! Rates from two readings of counters: pure functions, guarded against counter resets and
//! against intervals that are zero, negative or not numbers.

use super::sample::{CpuTimes, Histogram};

/// How much a counter grew from `prev` to `cur`. A counter that went down was reset (a
/// restarted daemon, a reused pid): it counted from zero, so all of `cur` is new.
pub fn counter_delta(prev: f64, cur: f64) -> f64 {
    if cur >= prev {
        cur - prev
    } else {
        cur
    }
}

/// `delta / seconds`, or `None` when that is no rate: no time passed, or a figure is not a
/// finite number.
pub fn per_second(delta: f64, seconds: f64) -> Option<f64> {
    (seconds > 0.0 && seconds.is_finite() && delta.is_finite()).then(|| delta / seconds)
}

/// The rate of a counter between two readings; `None` when either reading is missing.
pub fn rate(prev: Option<f64>, cur: Option<f64>, seconds: f64) -> Option<f64> {
    per_second(counter_delta(prev?, cur?), seconds)
}

/// Host CPU busy between two readings, in % of all CPUs.
pub fn busy_percent(prev: &CpuTimes, cur: &CpuTimes) -> Option<f64> {
    let total = cur.total - prev.total;
    let busy = cur.busy - prev.busy;
    // A reset (or a CPU going offline) makes the deltas meaningless for one interval.
    if total <= 0.0 || busy < 0.0 || !total.is_finite() {
        return None;
    }
    Some((100.0 * busy / total).min(100.0))
}

/// What was observed between two readings of a cumulative histogram: per-bound cumulative
/// counts and the sum. Bounds that differ, or counts that went down, mean the source
/// restarted: then the current reading is the interval.
pub fn histogram_delta(prev: Option<&Histogram>, cur: &Histogram) -> Histogram {
    let Some(prev) = prev else {
        return cur.clone();
    };
    let same_bounds = prev.buckets.len() == cur.buckets.len()
        && prev
            .buckets
            .iter()
            .zip(&cur.buckets)
            .all(|(a, b)| a.0 == b.0 && a.1 <= b.1);
    if !same_bounds || cur.sum < prev.sum {
        return cur.clone();
    }
    Histogram {
        buckets: prev
            .buckets
            .iter()
            .zip(&cur.buckets)
            .map(|(a, b)| (b.0, b.1 - a.1))
            .collect(),
        sum: cur.sum - prev.sum,
    }
}

/// The `q` quantile (0..=1) of a cumulative histogram, interpolated linearly inside its
/// bucket as Prometheus's `histogram_quantile` does; a quantile in the overflow bucket is its
/// lower bound. `None` for an empty histogram.
pub fn quantile(q: f64, h: &Histogram) -> Option<f64> {
    let count = h.count();
    if !(0.0..=1.0).contains(&q) || count <= 0.0 {
        return None;
    }
    let rank = q * count;
    let mut lower = 0.0;
    let mut below = 0.0;
    for &(upper, cumulative) in &h.buckets {
        if cumulative >= rank && cumulative > below {
            if upper.is_infinite() {
                return Some(lower);
            }
            return Some(lower + (upper - lower) * (rank - below) / (cumulative - below));
        }
        lower = upper;
        below = cumulative;
    }
    Some(lower)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_guard_resets_and_bad_intervals() {
        assert_eq!(rate(Some(1.0), Some(3.0), 2.0), Some(1.0));
        // Reset: the counter restarted from zero.
        assert_eq!(rate(Some(10.0), Some(3.0), 1.0), Some(3.0));
        assert_eq!(rate(Some(1.0), Some(3.0), 0.0), None);
        assert_eq!(rate(Some(1.0), Some(3.0), -1.0), None);
        assert_eq!(rate(Some(1.0), Some(3.0), f64::NAN), None);
        assert_eq!(rate(Some(1.0), Some(f64::INFINITY), 1.0), None);
        assert_eq!(rate(None, Some(3.0), 1.0), None);
        assert_eq!(rate(Some(1.0), None, 1.0), None);
    }

    fn cpu(busy: f64, total: f64) -> CpuTimes {
        CpuTimes {
            busy,
            total,
            cpus: 2,
        }
    }

    #[test]
    fn busy_percent_of_all_cpus() {
        assert_eq!(busy_percent(&cpu(1.0, 10.0), &cpu(2.0, 12.0)), Some(50.0));
        assert_eq!(busy_percent(&cpu(1.0, 10.0), &cpu(1.0, 10.0)), None);
        assert_eq!(busy_percent(&cpu(5.0, 10.0), &cpu(1.0, 12.0)), None);
    }

    fn hist(counts: &[f64], sum: f64) -> Histogram {
        let bounds = [0.001, 0.002, 0.004, f64::INFINITY];
        Histogram {
            buckets: bounds.iter().copied().zip(counts.iter().copied()).collect(),
            sum,
        }
    }

    #[test]
    fn quantiles_interpolate_within_a_bucket() {
        // 10 in (0, 1ms], 10 in (1ms, 2ms].
        let h = hist(&[10.0, 20.0, 20.0, 20.0], 0.03);
        assert!((quantile(0.5, &h).unwrap() - 0.001).abs() < 1e-12);
        assert!((quantile(0.25, &h).unwrap() - 0.0005).abs() < 1e-12);
        assert!((quantile(0.75, &h).unwrap() - 0.0015).abs() < 1e-12);
        assert!((quantile(1.0, &h).unwrap() - 0.002).abs() < 1e-12);
        // Everything in the overflow bucket: its lower bound.
        let h = hist(&[0.0, 0.0, 0.0, 5.0], 100.0);
        assert_eq!(quantile(0.99, &h), Some(0.004));
        assert_eq!(quantile(0.5, &hist(&[0.0; 4], 0.0)), None);
        assert_eq!(quantile(1.5, &h), None);
    }

    #[test]
    fn histogram_deltas_and_resets() {
        let a = hist(&[10.0, 20.0, 20.0, 20.0], 0.03);
        let b = hist(&[10.0, 20.0, 30.0, 31.0], 0.1);
        let d = histogram_delta(Some(&a), &b);
        assert_eq!(
            d.buckets.iter().map(|b| b.1).collect::<Vec<_>>(),
            [0.0, 0.0, 10.0, 11.0]
        );
        assert!((d.sum - 0.07).abs() < 1e-12);
        // Only the new waits count: all between 2 and 4 ms, or above.
        assert!(quantile(0.5, &d).unwrap() > 0.002);
        // Counts that went down: the source restarted.
        assert_eq!(histogram_delta(Some(&b), &a), a);
        assert_eq!(histogram_delta(None, &a), a);
    }
}
