//! A token bucket: at most `rate` events per second on average, in bursts of up to `rate`.

use std::time::Instant;

#[derive(Debug)]
pub struct RateLimit {
    rate: f64,
    tokens: f64,
    last: Instant,
}

impl RateLimit {
    pub fn new(per_second: u32, now: Instant) -> Self {
        Self {
            rate: f64::from(per_second),
            tokens: f64::from(per_second),
            last: now,
        }
    }

    /// Takes a token if there is one.
    pub fn admit(&mut self, now: Instant) -> bool {
        let dt = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + dt * self.rate).min(self.rate);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn bursts_then_refills_at_the_rate() {
        let t0 = Instant::now();
        let mut r = RateLimit::new(10, t0);
        let admitted = (0..25).filter(|_| r.admit(t0)).count();
        assert_eq!(admitted, 10);
        // Half a second refills five tokens.
        let t1 = t0 + Duration::from_millis(500);
        let admitted = (0..25).filter(|_| r.admit(t1)).count();
        assert_eq!(admitted, 5);
        // A long pause refills no more than the burst.
        let t2 = t1 + Duration::from_secs(60);
        let admitted = (0..25).filter(|_| r.admit(t2)).count();
        assert_eq!(admitted, 10);
    }
}
