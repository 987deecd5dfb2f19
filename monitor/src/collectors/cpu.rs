//! `cpu`: host CPU time per CPU and mode, from `/proc/stat`.

use std::path::Path;

use anyhow::Context as _;
use prometheus::proto::{MetricFamily, MetricType};

use super::{Build, Host, ScrapeCollector, Spec};
use crate::metrics::{counter, family};

pub const SPEC: Spec = Spec {
    name: "cpu",
    help: "host CPU time per CPU and mode, from /proc/stat",
    default_enabled: true,
    needs_bpf: false,
    build: Build::Collector(|_| Box::new(Cpu)),
};

/// Columns of a `cpuN` line, in order (guest time is already inside user and nice).
const MODES: [&str; 8] = [
    "user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal",
];

pub struct Cpu;

#[derive(Debug, PartialEq)]
pub struct CpuLine {
    pub cpu: String,
    pub ticks: Vec<u64>,
}

/// Parses the per-CPU lines of `/proc/stat` (not the `cpu` total). The CPU number comes from
/// the line, not its position: offline CPUs are missing from the file.
pub fn parse_stat(text: &str) -> anyhow::Result<Vec<CpuLine>> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let mut f = line.split_ascii_whitespace();
        let Some(head) = f.next() else { continue };
        let Some(cpu) = head.strip_prefix("cpu") else {
            continue;
        };
        if cpu.is_empty() {
            continue;
        }
        if cpu.parse::<u32>().is_err() {
            anyhow::bail!("line {}: unexpected {head:?}", n + 1);
        }
        let ticks = f
            .take(MODES.len())
            .map(|v| v.parse::<u64>())
            .collect::<Result<Vec<_>, _>>()
            .with_context(|| format!("line {}: bad number", n + 1))?;
        if ticks.len() < 4 {
            anyhow::bail!("line {}: only {} columns", n + 1, ticks.len());
        }
        out.push(CpuLine {
            cpu: cpu.to_string(),
            ticks,
        });
    }
    if out.is_empty() {
        anyhow::bail!("no cpuN lines");
    }
    Ok(out)
}

fn ticks_per_second() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as f64
    } else {
        100.0
    }
}

pub fn families(lines: &[CpuLine], hz: f64) -> MetricFamily {
    let mut metrics = Vec::with_capacity(lines.len() * MODES.len());
    for l in lines {
        for (mode, t) in MODES.iter().zip(&l.ticks) {
            metrics.push(counter(&[("cpu", &l.cpu), ("mode", mode)], *t as f64 / hz));
        }
    }
    family(
        "monitor_cpu_seconds_total",
        "Seconds the CPUs spent in each mode (from /proc/stat).",
        MetricType::COUNTER,
        metrics,
    )
}

fn read(procfs: &Path) -> anyhow::Result<Vec<CpuLine>> {
    let path = procfs.join("stat");
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    parse_stat(&text).with_context(|| format!("parsing {}", path.display()))
}

impl ScrapeCollector for Cpu {
    fn name(&self) -> &'static str {
        SPEC.name
    }

    fn collect(&mut self, host: &Host<'_>, out: &mut Vec<MetricFamily>) -> anyhow::Result<()> {
        out.push(families(&read(host.procfs)?, ticks_per_second()));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STAT: &str = "cpu  10 0 20 300 4 0 1 0 0 0\n\
cpu0 5 0 10 150 2 0 1 0 0 0\n\
cpu2 5 0 10 150 2 0 0 0 0 0\n\
intr 1 2 3\nctxt 100\n";

    #[test]
    fn keeps_cpu_numbers_of_online_cpus() {
        let lines = parse_stat(STAT).unwrap();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[1].cpu, "2");
        let f = families(&lines, 100.0);
        assert_eq!(f.get_metric().len(), 16);
        let idle = f
            .get_metric()
            .iter()
            .find(|m| m.get_label()[0].value() == "2" && m.get_label()[1].value() == "idle")
            .unwrap();
        assert_eq!(idle.get_counter().get_value(), 1.5);
    }

    #[test]
    fn rejects_garbage() {
        assert!(parse_stat("cpu0 a b c d\n").is_err());
        assert!(parse_stat("intr 1\n").is_err());
        assert!(parse_stat("cpuX 1 2 3 4\n").is_err());
    }
}
