//! Per-process memory: resident and swapped-out sizes from `/proc/<pid>/status`, read when the
//! process list is asked for (not on every refresh: it is one file per process).

use std::path::Path;

/// Resident and swapped-out bytes of a process.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Memory {
    pub rss_bytes: u64,
    pub swap_bytes: u64,
}

/// Reads `<procfs>/<pid>/status`; `None` when the process is gone. Kernel threads have no
/// `VmRSS`/`VmSwap` lines and read as zero.
pub fn read(procfs: &Path, pid: u32) -> Option<Memory> {
    let text = std::fs::read_to_string(procfs.join(pid.to_string()).join("status")).ok()?;
    Some(parse(&text))
}

pub(crate) fn parse(status: &str) -> Memory {
    let kib = |v: &str| -> u64 {
        v.trim()
            .trim_end_matches("kB")
            .trim()
            .parse::<u64>()
            .unwrap_or(0)
            // No real process is that big; a corrupt file must not overflow (found by the
            // proc_text fuzz target).
            .saturating_mul(1024)
    };
    let mut m = Memory::default();
    for line in status.lines() {
        if let Some(v) = line.strip_prefix("VmRSS:") {
            m.rss_bytes = kib(v);
        } else if let Some(v) = line.strip_prefix("VmSwap:") {
            m.swap_bytes = kib(v);
        }
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_rss_and_swap() {
        let s = "Name:\tbash\nVmPeak:\t  9000 kB\nVmRSS:\t    5120 kB\nRssAnon:\t 1 kB\nVmSwap:\t      12 kB\n";
        assert_eq!(
            parse(s),
            Memory {
                rss_bytes: 5120 * 1024,
                swap_bytes: 12 * 1024
            }
        );
        assert_eq!(parse("Name:\tkthreadd\nState:\tS\n"), Memory::default());
    }

    #[test]
    fn a_huge_size_saturates() {
        let m = parse("VmRSS:\t18446744073709551615 kB\n");
        assert_eq!(m.rss_bytes, u64::MAX);
    }
}
