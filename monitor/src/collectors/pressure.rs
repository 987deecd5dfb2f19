//! `pressure`: pressure stall information from `/proc/pressure/{cpu,memory,io}` (4.20+, when
//! the kernel has PSI): the time some tasks waited (`some`) and all non-idle tasks stalled
//! (`full`) for each resource, as node_exporter names them.

use std::path::Path;

use anyhow::{bail, Context as _};
use prometheus::proto::{MetricFamily, MetricType};

use super::{Build, Host, ScrapeCollector, Spec};
use crate::metrics::{counter, family};

pub const SPEC: Spec = Spec {
    name: "pressure",
    help: "pressure stall time for cpu, memory and io from /proc/pressure (kernels with PSI)",
    default_enabled: true,
    needs_bpf: false,
    build: Build::Collector(|_| Box::new(Pressure)),
};

const RESOURCES: [&str; 3] = ["cpu", "memory", "io"];

pub struct Pressure;

/// (`some` total, `full` total) in seconds; `full` is absent for cpu before 5.13.
pub fn parse(text: &str) -> anyhow::Result<(f64, Option<f64>)> {
    let mut some = None;
    let mut full = None;
    for line in text.lines() {
        let mut w = line.split_whitespace();
        let kind = w.next();
        let total = w
            .find_map(|f| f.strip_prefix("total="))
            .with_context(|| format!("no total= in {line:?}"))?;
        let us: f64 = total
            .parse()
            .with_context(|| format!("bad total in {line:?}"))?;
        match kind {
            Some("some") => some = Some(us / 1e6),
            Some("full") => full = Some(us / 1e6),
            _ => bail!("unexpected line {line:?}"),
        }
    }
    Ok((some.context("no \"some\" line")?, full))
}

fn read(procfs: &Path) -> anyhow::Result<Vec<(&'static str, f64, Option<f64>)>> {
    let dir = procfs.join("pressure");
    if !dir.is_dir() {
        bail!(
            "{} is missing: the kernel has no PSI (CONFIG_PSI, or booted with psi=0)",
            dir.display()
        );
    }
    RESOURCES
        .iter()
        .map(|r| {
            let path = dir.join(r);
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("reading {}", path.display()))?;
            let (some, full) =
                parse(&text).with_context(|| format!("parsing {}", path.display()))?;
            Ok((*r, some, full))
        })
        .collect()
}

pub fn families(rows: &[(&str, f64, Option<f64>)]) -> Vec<MetricFamily> {
    vec![
        family(
            "monitor_pressure_waiting_seconds_total",
            "Time at least some tasks waited for the resource (PSI \"some\").",
            MetricType::COUNTER,
            rows.iter()
                .map(|(r, some, _)| counter(&[("resource", r)], *some))
                .collect(),
        ),
        family(
            "monitor_pressure_stalled_seconds_total",
            "Time all non-idle tasks stalled on the resource at once (PSI \"full\").",
            MetricType::COUNTER,
            rows.iter()
                .filter_map(|(r, _, full)| full.map(|f| counter(&[("resource", r)], f)))
                .collect(),
        ),
    ]
}

impl ScrapeCollector for Pressure {
    fn name(&self) -> &'static str {
        SPEC.name
    }

    fn collect(&mut self, host: &Host<'_>, out: &mut Vec<MetricFamily>) -> anyhow::Result<()> {
        out.extend(families(&read(host.procfs)?));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_some_and_full() {
        let (some, full) = parse(include_str!("testdata/pressure-io")).unwrap();
        assert!(some > 0.0 && full.unwrap() <= some);
        let (_, full) = parse("some avg10=0.00 avg60=0.00 avg300=0.00 total=1500000\n").unwrap();
        assert_eq!(full, None);
        assert_eq!(
            parse("some avg10=0.00 avg60=0.00 avg300=0.00 total=1500000\n")
                .unwrap()
                .0,
            1.5
        );
        assert!(parse("some avg10=0.00\n").is_err());
        assert!(parse("").is_err());
    }

    #[test]
    fn a_kernel_without_psi_is_an_error_that_says_so() {
        let dir = tempfile::tempdir().unwrap();
        let e = read(dir.path()).unwrap_err().to_string();
        assert!(e.contains("no PSI"), "{e}");
    }
}
