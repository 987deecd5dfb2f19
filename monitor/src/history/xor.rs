//! Gorilla's value compression (Pelkonen et al., VLDB 2015; what Prometheus's TSDB chunks
//! use): each value XORed with the one before it, the XOR written as a zero bit when
//! unchanged, else its meaningful bits inside the previous leading/trailing-zero window or
//! with a new one. A series that does not move costs one bit a sample.

#[derive(Default)]
struct Bits {
    bytes: Vec<u8>,
    /// Bits used in the last byte (0 = it is full or there is none).
    used: u8,
}

impl Bits {
    fn push(&mut self, value: u64, n: u32) {
        for i in (0..n).rev() {
            if self.used == 0 {
                self.bytes.push(0);
            }
            let bit = ((value >> i) & 1) as u8;
            if let Some(last) = self.bytes.last_mut() {
                *last |= bit << (7 - self.used);
            }
            self.used = (self.used + 1) % 8;
        }
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    fn take(&mut self, n: u32) -> Option<u64> {
        let mut v = 0;
        for _ in 0..n {
            let byte = *self.bytes.get(self.pos / 8)?;
            v = (v << 1) | u64::from((byte >> (7 - self.pos % 8)) & 1);
            self.pos += 1;
        }
        Some(v)
    }
}

/// `values` compressed.
pub fn encode(values: &[f64]) -> Box<[u8]> {
    let mut out = Bits::default();
    let Some(first) = values.first() else {
        return Box::new([]);
    };
    let mut prev = first.to_bits();
    out.push(prev, 64);
    let (mut lead, mut trail) = (u32::MAX, 0);
    for v in &values[1..] {
        let bits = v.to_bits();
        let x = bits ^ prev;
        prev = bits;
        if x == 0 {
            out.push(0, 1);
            continue;
        }
        let (l, t) = (x.leading_zeros().min(31), x.trailing_zeros());
        if lead != u32::MAX && l >= lead && t >= trail {
            out.push(0b10, 2);
            out.push(x >> trail, 64 - lead - trail);
        } else {
            let meaningful = 64 - l - t;
            out.push(0b11, 2);
            out.push(u64::from(l), 5);
            // 1..=64, written as 0..=63.
            out.push(u64::from(meaningful - 1), 6);
            out.push(x >> t, meaningful);
            (lead, trail) = (l, t);
        }
    }
    out.bytes.into_boxed_slice()
}

/// The first `n` values of `bytes` (as `encode` wrote them), appended to `out`.
pub fn decode(bytes: &[u8], n: usize, out: &mut Vec<f64>) {
    let mut r = Reader { bytes, pos: 0 };
    let Some(mut prev) = r.take(64) else {
        return;
    };
    out.push(f64::from_bits(prev));
    let (mut lead, mut trail) = (0, 0);
    for _ in 1..n {
        let x = match r.take(1) {
            Some(0) => 0,
            Some(_) => {
                if r.take(1) == Some(1) {
                    let (Some(l), Some(m)) = (r.take(5), r.take(6)) else {
                        return;
                    };
                    lead = l as u32;
                    trail = 64 - lead - (m as u32 + 1);
                }
                let Some(v) = r.take(64 - lead - trail) else {
                    return;
                };
                v << trail
            }
            None => return,
        };
        prev ^= x;
        out.push(f64::from_bits(prev));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(values: &[f64]) -> usize {
        let bytes = encode(values);
        let mut back = Vec::new();
        decode(&bytes, values.len(), &mut back);
        assert_eq!(back.len(), values.len());
        for (a, b) in values.iter().zip(&back) {
            assert_eq!(a.to_bits(), b.to_bits(), "{values:?} -> {back:?}");
        }
        bytes.len()
    }

    #[test]
    fn values_come_back_bit_for_bit() {
        round_trip(&[]);
        round_trip(&[1.5]);
        round_trip(&[
            0.0,
            -0.0,
            f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
            1e-300,
        ]);
        let counter: Vec<f64> = (0..200).map(|i| f64::from(i) * 0.013 + 7.0).collect();
        round_trip(&counter);
        let bytes: Vec<f64> = (0..200).map(|i| f64::from(i * i * 4096)).collect();
        round_trip(&bytes);
        let mixed = [
            1.0,
            2.0,
            1.0,
            1e10,
            3.25,
            3.25,
            3.25,
            0.1,
            f64::MAX,
            f64::MIN_POSITIVE,
        ];
        round_trip(&mixed);
    }

    #[test]
    fn a_flat_series_costs_a_bit_a_sample() {
        let flat = vec![42.0; 129];
        assert_eq!(round_trip(&flat), 8 + 16);
    }
}
