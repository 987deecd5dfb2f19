//! Arithmetic on the per-process `BlockTaskCounters` (a kernel type, so free functions).

use monitor_common::block::BlockTaskCounters;

/// Applies `f` to each pair of fields.
fn zip(
    a: &BlockTaskCounters,
    b: &BlockTaskCounters,
    f: impl Fn(u64, u64) -> u64,
) -> BlockTaskCounters {
    BlockTaskCounters {
        read_bytes: f(a.read_bytes, b.read_bytes),
        write_bytes: f(a.write_bytes, b.write_bytes),
        reads: f(a.reads, b.reads),
        writes: f(a.writes, b.writes),
        read_ns: f(a.read_ns, b.read_ns),
        write_ns: f(a.write_ns, b.write_ns),
    }
}

pub fn add(a: &BlockTaskCounters, b: &BlockTaskCounters) -> BlockTaskCounters {
    zip(a, b, |x, y| x + y)
}

/// `a - b`, clamped at zero field by field (as `Counters::since`).
pub fn since(a: &BlockTaskCounters, b: &BlockTaskCounters) -> BlockTaskCounters {
    zip(a, b, u64::saturating_sub)
}

pub fn max(a: &BlockTaskCounters, b: &BlockTaskCounters) -> BlockTaskCounters {
    zip(a, b, u64::max)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_by_field() {
        let a = BlockTaskCounters {
            read_bytes: 10,
            writes: 1,
            ..Default::default()
        };
        let b = BlockTaskCounters {
            read_bytes: 4,
            writes: 3,
            ..Default::default()
        };
        assert_eq!(add(&a, &b).read_bytes, 14);
        assert_eq!(since(&a, &b).read_bytes, 6);
        assert_eq!(since(&a, &b).writes, 0);
        assert_eq!(max(&a, &b).writes, 3);
    }
}
