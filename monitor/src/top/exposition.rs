//! Reads the two host figures `top` takes from the daemon's `/metrics`: CPU time per mode
//! (`monitor_cpu_seconds_total`) and the run-queue latency histogram
//! (`monitor_runqueue_latency_seconds`). Everything else in the exposition is skipped.

use std::collections::BTreeSet;

use monitor_common::{
    hist::{upper_seconds, BUCKETS},
    sched::RunqHist,
};

use super::sample::{CpuTimes, Histogram};
use crate::metrics::ns_to_seconds;

const CPU: &str = "monitor_cpu_seconds_total{";
const BUCKET: &str = "monitor_runqueue_latency_seconds_bucket{";
const SUM: &str = "monitor_runqueue_latency_seconds_sum";

/// The value of `name="..."` in a label set (`a="x",b="y"`).
pub fn label<'a>(labels: &'a str, name: &str) -> Option<&'a str> {
    labels.split(',').find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        (k.trim() == name).then(|| v.trim().trim_matches('"'))
    })
}

pub fn number(v: &str) -> Option<f64> {
    match v {
        "+Inf" => Some(f64::INFINITY),
        v => v.parse().ok(),
    }
}

/// (labels, value) of a sample line starting with `prefix` (which ends with `{`).
pub fn sample<'a>(line: &'a str, prefix: &str) -> Option<(&'a str, f64)> {
    let rest = line.strip_prefix(prefix)?;
    let (labels, value) = rest.split_once('}')?;
    Some((labels, number(value.split_whitespace().next()?)?))
}

/// Host CPU and the run-queue histogram from a Prometheus text exposition; either is `None`
/// when the daemon does not export it (its collector off or failing).
pub fn parse(text: &str) -> (Option<CpuTimes>, Option<Histogram>) {
    let mut busy = 0.0;
    let mut total = 0.0;
    let mut cpus = BTreeSet::new();
    let mut buckets = Vec::new();
    let mut sum = None;
    for line in text.lines() {
        if let Some((labels, v)) = sample(line, CPU) {
            total += v;
            if !matches!(label(labels, "mode"), Some("idle" | "iowait")) {
                busy += v;
            }
            if let Some(c) = label(labels, "cpu") {
                cpus.insert(c);
            }
        } else if let Some((labels, v)) = sample(line, BUCKET) {
            if let Some(le) = label(labels, "le").and_then(number) {
                buckets.push((le, v));
            }
        } else if let Some(rest) = line.strip_prefix(SUM) {
            sum = rest.split_whitespace().next().and_then(number);
        }
    }
    let cpu = (!cpus.is_empty()).then_some(CpuTimes {
        busy,
        total,
        cpus: cpus.len(),
    });
    buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    let runq = match (buckets.last(), sum) {
        (Some(last), Some(sum)) if last.0.is_infinite() => Some(Histogram { buckets, sum }),
        _ => None,
    };
    (cpu, runq)
}

/// The in-kernel histogram (per-bucket counts) in the cumulative form the exposition has.
pub fn from_runq(h: &RunqHist) -> Histogram {
    let mut cumulative = 0u64;
    let mut buckets = Vec::with_capacity(BUCKETS);
    for (i, n) in h.buckets.iter().enumerate() {
        cumulative += n;
        // The overflow bucket (the last) has no bound of its own: it is the +Inf one.
        let upper = upper_seconds(i).unwrap_or(f64::INFINITY);
        buckets.push((upper, cumulative as f64));
    }
    Histogram {
        buckets,
        sum: ns_to_seconds(h.sum_ns),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = r#"# HELP monitor_cpu_seconds_total Seconds the CPUs spent in each mode.
# TYPE monitor_cpu_seconds_total counter
monitor_cpu_seconds_total{cpu="0",mode="user"} 10
monitor_cpu_seconds_total{cpu="0",mode="idle"} 80
monitor_cpu_seconds_total{cpu="0",mode="iowait"} 5
monitor_cpu_seconds_total{cpu="1",mode="system"} 5
monitor_cpu_seconds_total{cpu="1",mode="idle"} 100
monitor_runqueue_latency_seconds_bucket{le="0.000001"} 2
monitor_runqueue_latency_seconds_bucket{le="0.000002"} 6
monitor_runqueue_latency_seconds_bucket{le="+Inf"} 10
monitor_runqueue_latency_seconds_sum 0.5
monitor_runqueue_latency_seconds_count 10
monitor_process_cpu_seconds_total{group="x"} 3
"#;

    #[test]
    fn reads_cpu_and_histogram() {
        let (cpu, runq) = parse(TEXT);
        let cpu = cpu.unwrap();
        assert_eq!(cpu.cpus, 2);
        assert_eq!(cpu.total, 200.0);
        assert_eq!(cpu.busy, 15.0);
        let h = runq.unwrap();
        assert_eq!(h.buckets.len(), 3);
        assert_eq!(h.buckets[1], (0.000002, 6.0));
        assert!(h.buckets[2].0.is_infinite());
        assert_eq!(h.count(), 10.0);
        assert_eq!(h.sum, 0.5);
    }

    #[test]
    fn missing_families_are_none() {
        assert_eq!(parse("monitor_build_info{version=\"1\"} 1\n"), (None, None));
        assert_eq!(parse("garbage{\nmore garbage\n"), (None, None));
    }

    #[test]
    fn kernel_histogram_matches_its_exposition() {
        let mut h = RunqHist::default();
        h.buckets[0] = 2;
        h.buckets[1] = 4;
        h.buckets[BUCKETS - 1] = 1;
        h.sum_ns = 1_500_000_000;
        let c = from_runq(&h);
        assert_eq!(c.buckets[0].1, 2.0);
        assert_eq!(c.buckets[1].1, 6.0);
        assert_eq!(c.count(), 7.0);
        assert!(c.buckets.last().unwrap().0.is_infinite());
        assert_eq!(c.buckets.iter().filter(|b| b.0.is_infinite()).count(), 1);
        assert_eq!(c.sum, 1.5);
    }
}
