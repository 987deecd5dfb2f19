//! Time until a filesystem is full, from its recent fill rate: a least-squares slope of the
//! available bytes over the last hour (what Prometheus's `predict_linear` would give), for
//! alerts that must fire before the disk is full, not after.

use std::{collections::VecDeque, time::Duration};

const WINDOW: Duration = Duration::from_secs(3600);
const MAX_SAMPLES: usize = 360;

#[derive(Default, Debug)]
pub struct History {
    /// (seconds on a monotonic clock, available bytes).
    samples: VecDeque<(f64, f64)>,
}

impl History {
    pub fn push(&mut self, t: f64, avail: f64) {
        while self
            .samples
            .front()
            .is_some_and(|(t0, _)| t - t0 > WINDOW.as_secs_f64())
            || self.samples.len() >= MAX_SAMPLES
        {
            self.samples.pop_front();
        }
        self.samples.push_back((t, avail));
    }

    /// Seconds until available space reaches zero at the current rate: `None` without two
    /// samples at least a second apart, infinity when space is not shrinking.
    pub fn seconds_to_full(&self) -> Option<f64> {
        let n = self.samples.len() as f64;
        let (first, last) = (self.samples.front()?, self.samples.back()?);
        if last.0 - first.0 < 1.0 {
            return None;
        }
        let (mt, ma) = self
            .samples
            .iter()
            .fold((0.0, 0.0), |(st, sa), (t, a)| (st + t, sa + a));
        let (mt, ma) = (mt / n, ma / n);
        let (mut cov, mut var) = (0.0, 0.0);
        for (t, a) in &self.samples {
            cov += (t - mt) * (a - ma);
            var += (t - mt) * (t - mt);
        }
        let slope = cov / var; // bytes per second; var > 0 as the span is at least 1 s
        if slope >= 0.0 {
            return Some(f64::INFINITY);
        }
        Some((last.1 / -slope).max(0.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_filling_disk_has_a_time_to_full() {
        let mut h = History::default();
        assert_eq!(h.seconds_to_full(), None);
        // 1000 bytes left, shrinking 10 bytes a second.
        for i in 0..10 {
            h.push(f64::from(i), 1090.0 - 10.0 * f64::from(i));
        }
        let s = h.seconds_to_full().unwrap();
        assert!((s - 100.0).abs() < 1e-6, "{s}");
    }

    #[test]
    fn a_steady_or_emptying_disk_never_fills() {
        let mut h = History::default();
        h.push(0.0, 100.0);
        h.push(5.0, 100.0);
        assert_eq!(h.seconds_to_full(), Some(f64::INFINITY));
        h.push(10.0, 500.0);
        assert_eq!(h.seconds_to_full(), Some(f64::INFINITY));
    }

    #[test]
    fn old_samples_leave_the_window() {
        let mut h = History::default();
        h.push(0.0, 0.0);
        h.push(4000.0, 100.0);
        h.push(4001.0, 99.0);
        assert!((h.seconds_to_full().unwrap() - 99.0).abs() < 1e-6);
    }
}
