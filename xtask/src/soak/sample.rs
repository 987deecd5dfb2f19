//! What the soak reads each second: the daemon's RSS and open descriptors from `/proc`, and
//! from its `/metrics` the map fill, the misses and the storm group's exit count; and the
//! figures made of them (RSS growth from a least-squares line after the warm-up).

use std::{collections::BTreeMap, io::Write as _, path::Path};

use anyhow::Context as _;

use super::storm::COMM;

/// One second of the soak.
#[derive(Clone, Debug, Default)]
pub struct Sample {
    /// Seconds since the load started.
    pub t: f64,
    pub rss_kib: u64,
    pub fds: usize,
    /// Children the storm had reaped when the scrape began.
    pub forked: u64,
    /// `monitor_process_exits_total` of the storm's group.
    pub exits: f64,
    /// `monitor_bpf_misses_total`, all programs and reasons.
    pub misses: f64,
    /// The same by `program/reason`.
    pub misses_by: BTreeMap<String, f64>,
    /// `monitor_process_exit_events_missed_total`.
    pub exit_events_missed: f64,
    /// `monitor_bpf_map_update_failures_total`, all maps.
    pub update_failures: f64,
    /// Per map: entries / capacity.
    pub fill: BTreeMap<String, f64>,
    /// Milliseconds the scrape took.
    pub scrape_ms: f64,
}

/// Sums the samples of `name` whose labels contain every one of `having` (`key="value"`).
pub fn sum(text: &str, name: &str, having: &[&str]) -> Option<f64> {
    let mut found = None;
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let Some(rest) = line.strip_prefix(name) else {
            continue;
        };
        if !(rest.starts_with('{') || rest.starts_with(' ')) {
            continue;
        }
        let (labels, value) = match rest.rfind(' ') {
            Some(i) => (&rest[..i], &rest[i + 1..]),
            None => continue,
        };
        if having.iter().all(|h| labels.contains(h)) {
            if let Ok(v) = value.parse::<f64>() {
                *found.get_or_insert(0.0) += v;
            }
        }
    }
    found
}

/// `map="..."` label values with their sample value, for one family.
fn per_map(text: &str, name: &str) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix(name).and_then(|r| r.strip_prefix('{')) else {
            continue;
        };
        let Some(map) = rest
            .split("map=\"")
            .nth(1)
            .and_then(|s| s.split('"').next())
        else {
            continue;
        };
        if let Some(v) = rest.rsplit(' ').next().and_then(|v| v.parse().ok()) {
            out.insert(map.to_string(), v);
        }
    }
    out
}

/// `monitor_bpf_misses_total` by `program/reason`.
fn misses_by(text: &str) -> BTreeMap<String, f64> {
    let label = |rest: &str, key: &str| -> String {
        rest.split(&format!("{key}=\""))
            .nth(1)
            .and_then(|s| s.split('"').next())
            .unwrap_or_default()
            .to_string()
    };
    let mut out = BTreeMap::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("monitor_bpf_misses_total{") else {
            continue;
        };
        if let Some(v) = rest.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()) {
            let key = format!("{}/{}", label(rest, "program"), label(rest, "reason"));
            *out.entry(key).or_insert(0.0) += v;
        }
    }
    out
}

/// Misses that mean a record was lost (a full map or ring, a failed read), as opposed to
/// one the kernel could not attribute (`no_owner`, `no_submitter`).
pub fn is_loss(key: &str) -> bool {
    ["map_full", "ring_full", "read_failed"]
        .iter()
        .any(|r| key.ends_with(&format!("/{r}")))
}

/// The metric part of a sample from one scrape.
pub fn from_metrics(s: &mut Sample, text: &str) {
    let group = format!("group=\"{COMM}\"");
    s.exits = sum(text, "monitor_process_exits_total", &[&group]).unwrap_or(0.0);
    s.misses = sum(text, "monitor_bpf_misses_total", &[]).unwrap_or(0.0);
    s.misses_by = misses_by(text);
    s.exit_events_missed =
        sum(text, "monitor_process_exit_events_missed_total", &[]).unwrap_or(0.0);
    s.update_failures = sum(text, "monitor_bpf_map_update_failures_total", &[]).unwrap_or(0.0);
    let entries = per_map(text, "monitor_bpf_map_entries");
    let capacity = per_map(text, "monitor_bpf_map_capacity");
    s.fill = entries
        .into_iter()
        .filter_map(|(m, e)| {
            let c = *capacity.get(&m)?;
            (c > 0.0).then(|| (m, e / c))
        })
        .collect();
}

/// Open descriptors of `pid`.
pub fn fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0)
}

/// Slope of the least-squares line through (x, y), per unit of x.
pub fn slope(points: &[(f64, f64)]) -> Option<f64> {
    let n = points.len() as f64;
    if points.len() < 2 {
        return None;
    }
    let mx = points.iter().map(|p| p.0).sum::<f64>() / n;
    let my = points.iter().map(|p| p.1).sum::<f64>() / n;
    let sxx: f64 = points.iter().map(|p| (p.0 - mx).powi(2)).sum();
    let sxy: f64 = points.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
    (sxx > 0.0).then(|| sxy / sxx)
}

/// RSS growth in MiB per hour over the samples from `warmup_secs` on.
pub fn rss_growth_mib_per_hour(samples: &[Sample], warmup_secs: f64) -> Option<f64> {
    let points: Vec<(f64, f64)> = samples
        .iter()
        .filter(|s| s.t >= warmup_secs)
        .map(|s| (s.t, s.rss_kib as f64 / 1024.0))
        .collect();
    slope(&points).map(|per_sec| per_sec * 3600.0)
}

/// Every sample as CSV, for a plot or a second look.
pub fn write_csv(path: &Path, samples: &[Sample]) -> anyhow::Result<()> {
    let mut f = std::io::BufWriter::new(
        std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?,
    );
    writeln!(
        f,
        "t_secs,rss_kib,fds,forked,exits_counted,misses,exit_events_missed,update_failures,max_fill,scrape_ms"
    )?;
    for s in samples {
        let max_fill = s.fill.values().copied().fold(0.0, f64::max);
        writeln!(
            f,
            "{:.1},{},{},{},{},{},{},{},{:.4},{:.1}",
            s.t,
            s.rss_kib,
            s.fds,
            s.forked,
            s.exits,
            s.misses,
            s.exit_events_missed,
            s.update_failures,
            max_fill,
            s.scrape_ms
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "# HELP x\n\
monitor_process_exits_total{group=\"soakstorm\"} 120\n\
monitor_process_exits_total{group=\"other\"} 3\n\
monitor_bpf_misses_total{program=\"sched_switch\",reason=\"map_full\"} 2\n\
monitor_bpf_misses_total{program=\"tcp_state\",reason=\"ring_full\"} 1\n\
monitor_bpf_map_entries{map=\"TASKS\"} 50\n\
monitor_bpf_map_capacity{map=\"TASKS\"} 200\n\
monitor_process_exit_events_missed_total 0\n";

    #[test]
    fn reads_the_figures() {
        let mut s = Sample::default();
        from_metrics(&mut s, TEXT);
        assert_eq!(s.exits, 120.0);
        assert_eq!(s.misses, 3.0);
        assert_eq!(s.misses_by.get("tcp_state/ring_full"), Some(&1.0));
        assert!(is_loss("tcp_state/ring_full") && !is_loss("tcp_state/no_owner"));
        assert_eq!(s.exit_events_missed, 0.0);
        assert_eq!(s.fill.get("TASKS"), Some(&0.25));
        assert_eq!(sum(TEXT, "monitor_process_exits", &[]), None);
    }

    #[test]
    fn growth_from_the_fitted_line() {
        let samples: Vec<Sample> = (0..100)
            .map(|i| Sample {
                t: f64::from(i),
                // 1 KiB a second after a start-up jump that the warm-up leaves out.
                rss_kib: if i < 10 { 100 } else { 20_000 + i as u64 },
                ..Default::default()
            })
            .collect();
        let g = rss_growth_mib_per_hour(&samples, 10.0).unwrap();
        assert!((g - 3600.0 / 1024.0).abs() < 1e-9, "{g}");
        assert_eq!(slope(&[(1.0, 1.0)]), None);
    }
}
