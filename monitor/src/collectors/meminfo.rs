//! `meminfo`: host memory from `/proc/meminfo`, every field the kernel reports (as
//! node_exporter does), named in snake case: `MemAvailable` becomes
//! `monitor_memory_available_bytes`, `Active(anon)` `monitor_memory_active_anon_bytes`;
//! fields without a unit are counts without `_bytes` (`HugePages_Total` is
//! `monitor_memory_huge_pages`).

use std::path::Path;

use anyhow::{bail, Context as _};
use prometheus::proto::{MetricFamily, MetricType};

use super::{Build, Host, ScrapeCollector, Spec};
use crate::metrics::{family, gauge};

pub const SPEC: Spec = Spec {
    name: "meminfo",
    help: "host memory (total, available, free, buffers, cached, swap and every other field) \
           from /proc/meminfo",
    default_enabled: true,
    needs_bpf: false,
    build: Build::Collector(|_| Box::new(Meminfo)),
};

pub struct Meminfo;

#[derive(Debug, PartialEq)]
pub struct Field {
    /// The metric name.
    pub name: String,
    /// The kernel's field name, for the help text.
    pub field: String,
    pub value: f64,
}

/// `CamelCase(with)_Parts` to `camel_case_with_parts`, keeping acronyms together
/// (`NFS_Unstable` is `nfs_unstable`, `KReclaimable` `k_reclaimable`).
fn snake(field: &str) -> String {
    let chars: Vec<char> = field.chars().collect();
    let mut out = String::with_capacity(field.len() + 4);
    for (i, &c) in chars.iter().enumerate() {
        if !c.is_ascii_alphanumeric() {
            if !out.ends_with('_') && !out.is_empty() {
                out.push('_');
            }
            continue;
        }
        if i > 0 && !out.ends_with('_') {
            let prev = chars[i - 1];
            let next_lower = chars.get(i + 1).is_some_and(|n| n.is_ascii_lowercase());
            // A new word, an acronym's end, or a number ("DirectMap2M" is direct_map_2m:
            // a size stays one token, never read as a unit).
            let boundary = (c.is_ascii_uppercase()
                && (prev.is_ascii_lowercase() || (prev.is_ascii_uppercase() && next_lower)))
                || (c.is_ascii_digit() && prev.is_ascii_alphabetic());
            if boundary {
                out.push('_');
            }
        }
        out.push(c.to_ascii_lowercase());
    }
    out.trim_end_matches('_').to_string()
}

/// Fields whose plain snake case would read as a unit abbreviation ("s", "sec").
const RENAMES: &[(&str, &str)] = &[
    ("SReclaimable", "SlabReclaimable"),
    ("SUnreclaim", "SlabUnreclaim"),
    ("SecPageTables", "SecondaryPageTables"),
];

fn metric_name(field: &str, bytes: bool) -> String {
    let field = RENAMES
        .iter()
        .find(|(from, _)| *from == field)
        .map_or(field, |(_, to)| to);
    // MemTotal, MemFree, MemAvailable: "memory" is already in the prefix.
    let base = field
        .strip_prefix("Mem")
        .filter(|r| !r.is_empty())
        .unwrap_or(field);
    let name = snake(base);
    if bytes {
        format!("monitor_memory_{name}_bytes")
    } else {
        // A gauge never ends in `_total` (that suffix means a counter).
        let name = name.strip_suffix("_total").unwrap_or(&name);
        format!("monitor_memory_{name}")
    }
}

pub fn parse(text: &str) -> anyhow::Result<Vec<Field>> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let Some((field, rest)) = line.split_once(':') else {
            continue;
        };
        let mut w = rest.split_whitespace();
        let value: f64 = w
            .next()
            .with_context(|| format!("line {}: {field} has no value", n + 1))?
            .parse()
            .with_context(|| format!("line {}: {field}: not a number", n + 1))?;
        let (value, bytes) = match w.next() {
            Some("kB") => (value * 1024.0, true),
            None => (value, false),
            Some(u) => bail!("line {}: {field}: unknown unit {u:?}", n + 1),
        };
        out.push(Field {
            name: metric_name(field, bytes),
            field: field.to_string(),
            value,
        });
    }
    if !out.iter().any(|f| f.field == "MemTotal") {
        bail!("no MemTotal");
    }
    Ok(out)
}

pub fn families(fields: &[Field]) -> Vec<MetricFamily> {
    fields
        .iter()
        .map(|f| {
            family(
                &f.name,
                &format!("{} from /proc/meminfo.", f.field),
                MetricType::GAUGE,
                vec![gauge(&[], f.value)],
            )
        })
        .collect()
}

fn read(procfs: &Path) -> anyhow::Result<Vec<Field>> {
    let path = procfs.join("meminfo");
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    parse(&text).with_context(|| format!("parsing {}", path.display()))
}

impl ScrapeCollector for Meminfo {
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
    fn names() {
        for (field, bytes, name) in [
            ("MemTotal", true, "monitor_memory_total_bytes"),
            ("MemAvailable", true, "monitor_memory_available_bytes"),
            ("SwapFree", true, "monitor_memory_swap_free_bytes"),
            ("Active(anon)", true, "monitor_memory_active_anon_bytes"),
            (
                "SReclaimable",
                true,
                "monitor_memory_slab_reclaimable_bytes",
            ),
            (
                "SecPageTables",
                true,
                "monitor_memory_secondary_page_tables_bytes",
            ),
            ("NFS_Unstable", true, "monitor_memory_nfs_unstable_bytes"),
            ("Committed_AS", true, "monitor_memory_committed_as_bytes"),
            (
                "AnonHugePages",
                true,
                "monitor_memory_anon_huge_pages_bytes",
            ),
            ("HugePages_Total", false, "monitor_memory_huge_pages"),
            ("HugePages_Free", false, "monitor_memory_huge_pages_free"),
            ("DirectMap4k", true, "monitor_memory_direct_map_4k_bytes"),
            ("DirectMap2M", true, "monitor_memory_direct_map_2m_bytes"),
        ] {
            assert_eq!(metric_name(field, bytes), name, "{field}");
        }
    }

    #[test]
    fn parses_values_and_units() {
        let f = parse(
            "MemTotal:       24684096 kB\nMemAvailable:   24256412 kB\nHugePages_Total:       3\n",
        )
        .unwrap();
        assert_eq!(f[0].value, 24684096.0 * 1024.0);
        assert_eq!(f[2].name, "monitor_memory_huge_pages");
        assert_eq!(f[2].value, 3.0);
        assert_eq!(families(&f).len(), 3);
        // Every name is unique, or the exposition would be invalid.
        let real = parse(include_str!("testdata/meminfo")).unwrap();
        let mut names: Vec<&str> = real.iter().map(|f| f.name.as_str()).collect();
        names.sort_unstable();
        let n = names.len();
        names.dedup();
        assert_eq!(names.len(), n);
    }

    #[test]
    fn rejects_garbage() {
        assert!(parse("MemTotal: lots kB\n").is_err());
        assert!(parse("MemTotal: 5 MB\n").is_err());
        assert!(parse("Cached: 5 kB\n").is_err());
    }
}
