//! Figures as text: compact sizes for table cells, and the host summary lines shared by the
//! live header and the batch table.

use super::{
    columns::Column,
    model::{HostView, Row},
};

/// `-` stands for a figure that is not measured (yet): a source without it, or no previous
/// sample to make a rate from.
pub const NONE: &str = "-";

pub fn opt(v: Option<f64>, f: impl Fn(f64) -> String) -> String {
    v.map_or_else(|| NONE.to_string(), f)
}

/// Bytes in powers of 1024 with a one-letter unit, at most 6 characters: `512`, `1.5K`, `23M`.
pub fn bytes(v: f64) -> String {
    const UNITS: [&str; 6] = ["", "K", "M", "G", "T", "P"];
    let mut v = v.max(0.0);
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    match unit {
        0 => format!("{v:.0}"),
        _ if v < 10.0 => format!("{v:.1}{}", UNITS[unit]),
        _ => format!("{v:.0}{}", UNITS[unit]),
    }
}

/// A count in powers of 1000: `950`, `2.0k`, `12M`.
pub fn count(v: f64) -> String {
    let v = v.max(0.0);
    let (v, unit) = if v >= 1e9 {
        (v / 1e9, "G")
    } else if v >= 1e6 {
        (v / 1e6, "M")
    } else if v >= 1e3 {
        (v / 1e3, "k")
    } else {
        (v, "")
    };
    if unit.is_empty() || v >= 10.0 {
        format!("{v:.0}{unit}")
    } else {
        format!("{v:.1}{unit}")
    }
}

/// One decimal below 1000, none above (so 6 characters hold any percentage or ms figure).
pub fn number(v: f64) -> String {
    if v.abs() < 999.95 {
        format!("{v:.1}")
    } else {
        format!("{v:.0}")
    }
}

/// A duration in seconds with a unit that keeps it short: `850ns`, `12us`, `1.5ms`, `2.0s`.
pub fn duration(s: f64) -> String {
    if s < 1e-6 {
        format!("{:.0}ns", s * 1e9)
    } else if s < 1e-3 {
        format!("{:.0}us", s * 1e6)
    } else if s < 1.0 {
        format!("{:.1}ms", s * 1e3)
    } else {
        format!("{s:.1}s")
    }
}

/// A table cell: figures compact, bytes without the "/s" the header carries.
pub fn cell(r: &Row, c: Column) -> String {
    match c {
        Column::Pid if r.index.is_none() => r.count.to_string(),
        Column::Pid => r.pid.to_string(),
        Column::User => r.user.clone(),
        Column::Name => r.name.clone(),
        Column::Cpu | Column::Wait | Column::Latency => opt(r.value(c), number),
        Column::Rss | Column::Read | Column::Write | Column::Rx | Column::Tx => {
            opt(r.value(c), bytes)
        }
    }
}

fn per_second(v: Option<f64>) -> String {
    opt(v, |v| format!("{}/s", bytes(v)))
}

/// The host figures as two lines: CPU and run-queue latency; memory, disk and network.
pub fn summary(h: &HostView) -> [String; 2] {
    let cpus = h.cpus.map_or(String::new(), |n| format!(" of {n} CPUs"));
    let runq = match (h.runq_p50, h.runq_p99, h.runq_waits_per_second) {
        (Some(p50), Some(p99), Some(n)) => format!(
            "p50 {}  p99 {}  ({} waits/s)",
            duration(p50),
            duration(p99),
            count(n)
        ),
        (_, _, Some(0.0)) => "no waits".to_string(),
        _ => NONE.to_string(),
    };
    let memory = match (h.memory_used, h.memory_total) {
        (Some(used), Some(total)) if total > 0.0 => format!(
            "{} used of {} ({:.0}%)",
            bytes(used),
            bytes(total),
            100.0 * used / total
        ),
        _ => NONE.to_string(),
    };
    [
        format!(
            "CPU {} busy{cpus}   run-queue latency {runq}",
            opt(h.cpu_busy_percent, |v| format!("{}%", number(v)))
        ),
        format!(
            "MEM {memory}   DISK read {} write {}   NET rx {} tx {}",
            per_second(h.disk_read),
            per_second(h.disk_write),
            per_second(h.net_rx),
            per_second(h.net_tx)
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_stay_short() {
        assert_eq!(bytes(0.0), "0");
        assert_eq!(bytes(1023.0), "1023");
        assert_eq!(bytes(1536.0), "1.5K");
        assert_eq!(bytes(23.0 * 1024.0 * 1024.0), "23M");
        assert_eq!(bytes(-5.0), "0");
        assert_eq!(count(950.0), "950");
        assert_eq!(count(2048.0), "2.0k");
        assert_eq!(count(12_500_000.0), "12M");
        assert_eq!(number(12.345), "12.3");
        assert_eq!(number(1234.5), "1234");
        assert_eq!(duration(0.000_004), "4us");
        assert_eq!(duration(0.0015), "1.5ms");
        assert_eq!(duration(2.0), "2.0s");
        assert_eq!(duration(5e-7), "500ns");
    }

    #[test]
    fn summary_shows_dashes_for_what_is_missing() {
        let lines = summary(&HostView::default());
        assert_eq!(lines[0], "CPU - busy   run-queue latency -");
        assert!(
            lines[1].starts_with("MEM -   DISK read - write -"),
            "{}",
            lines[1]
        );
        let h = HostView {
            cpu_busy_percent: Some(12.5),
            cpus: Some(2),
            runq_p50: Some(0.000_004),
            runq_p99: Some(0.0011),
            runq_waits_per_second: Some(2048.0),
            memory_used: Some(1024.0 * 1024.0 * 1024.0),
            memory_total: Some(4.0 * 1024.0 * 1024.0 * 1024.0),
            ..Default::default()
        };
        let lines = summary(&h);
        assert_eq!(
            lines[0],
            "CPU 12.5% busy of 2 CPUs   run-queue latency p50 4us  p99 1.1ms  (2.0k waits/s)"
        );
        assert!(
            lines[1].starts_with("MEM 1.0G used of 4.0G (25%)"),
            "{}",
            lines[1]
        );
    }
}
