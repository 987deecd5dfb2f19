//! Log2 latency histograms, as the kernel programs keep them: bucket 0 holds durations under
//! 1 µs; bucket k (1..=27) holds [2^(k-1), 2^k) µs, so its upper bound is 2^k µs; the last
//! bucket holds everything from 2^27 µs (about 134 s) up. The bounds map straight onto
//! Prometheus `le` values in seconds.

pub const BUCKETS: usize = 29;

/// Floor of log2, written without `leading_zeros` so the BPF backend never needs a
/// count-leading-zeros expansion or a libcall.
#[inline(always)]
pub const fn log2_floor(mut v: u64) -> u32 {
    let mut r = ((v > 0xFFFF_FFFF) as u32) << 5;
    v >>= r;
    let mut s = ((v > 0xFFFF) as u32) << 4;
    v >>= s;
    r |= s;
    s = ((v > 0xFF) as u32) << 3;
    v >>= s;
    r |= s;
    s = ((v > 0xF) as u32) << 2;
    v >>= s;
    r |= s;
    s = ((v > 0x3) as u32) << 1;
    v >>= s;
    r |= s;
    r | (v >> 1) as u32
}

/// The bucket for a duration of `ns` nanoseconds.
#[inline(always)]
pub const fn bucket(ns: u64) -> usize {
    let us = ns / 1000;
    if us == 0 {
        return 0;
    }
    let b = log2_floor(us) as usize + 1;
    if b >= BUCKETS {
        BUCKETS - 1
    } else {
        b
    }
}

/// Upper bound of bucket `i` in seconds, or `None` for the last (unbounded) bucket.
pub fn upper_seconds(i: usize) -> Option<f64> {
    if i + 1 >= BUCKETS {
        None
    } else {
        Some((1u64 << i) as f64 * 1e-6)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log2_matches_leading_zeros() {
        for v in [1u64, 2, 3, 4, 7, 8, 1000, 1 << 31, (1 << 32) + 5, u64::MAX] {
            assert_eq!(log2_floor(v), 63 - v.leading_zeros(), "v={v}");
        }
    }

    #[test]
    fn buckets_hold_their_bounds() {
        assert_eq!(bucket(0), 0);
        assert_eq!(bucket(999), 0);
        assert_eq!(bucket(1_000), 1);
        assert_eq!(bucket(1_999), 1);
        assert_eq!(bucket(2_000), 2);
        assert_eq!(bucket(50_000_000), 16); // 50 ms = 50000 µs < 2^16 µs
        assert_eq!(bucket(u64::MAX), BUCKETS - 1);
        // Every value below a bucket's upper bound, and at or above the previous one's.
        for ns in [1u64, 1_500, 3_000, 1_000_000, 7_777_777_777] {
            let b = bucket(ns);
            let upper = upper_seconds(b).unwrap();
            assert!((ns as f64) * 1e-9 < upper, "ns={ns} b={b}");
            if b > 0 {
                assert!((ns as f64) * 1e-9 >= upper_seconds(b - 1).unwrap());
            }
        }
        assert!(upper_seconds(BUCKETS - 1).is_none());
        assert!((upper_seconds(27).unwrap() - 134.217728).abs() < 1e-9);
    }
}
