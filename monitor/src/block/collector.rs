//! `block`: disk I/O measured in the kernel (eBPF, block tracepoints). Per disk and
//! operation: completed requests, bytes, errors, issue-to-completion latency and time queued
//! before issue. Per group: the reads and writes its processes submitted, with their latency.

use std::path::Path;

use monitor_common::block::{BlockTaskCounters, DiskKey, DiskStats, OP_NAMES};
use prometheus::proto::{MetricFamily, MetricType};

use crate::{
    collectors::{Build, Spec, View},
    metrics::{counter, family, histogram, log2_buckets, ns_to_seconds},
    process::counters::Counters,
};

pub const SPEC: Spec = Spec {
    name: "block",
    help: "disk I/O per device and operation (requests, bytes, errors, latency and queue-time \
           histograms) and per process group, from block tracepoints (eBPF)",
    default_enabled: true,
    needs_bpf: true,
    build: Build::Family(|c| Box::new(super::family::Block::new(c.sysfs.clone()))),
};

/// The name of disk `dev` (the kernel's `dev_t`, major << 20 | minor), from the
/// `/sys/dev/block/MAJ:MIN` link, or `MAJ:MIN` for a disk that is gone. Read on every scrape:
/// loop and NVMe numbers are handed out again when a device is re-created.
pub fn device_name(sysfs: &Path, dev: u32) -> String {
    let id = format!("{}:{}", dev >> 20, dev & ((1 << 20) - 1));
    std::fs::read_link(sysfs.join("dev/block").join(&id))
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or(id)
}

fn disk_families(rows: &[(String, &'static str, DiskStats)]) -> Vec<MetricFamily> {
    let per = |name: &str, help: &str, f: &dyn Fn(&DiskStats) -> f64| {
        family(
            name,
            help,
            MetricType::COUNTER,
            rows.iter()
                .map(|(d, op, s)| counter(&[("device", d), ("op", op)], f(s)))
                .collect(),
        )
    };
    vec![
        per(
            "monitor_disk_requests_total",
            "Block requests completed, by disk and operation.",
            &|s| s.requests as f64,
        ),
        per(
            "monitor_disk_bytes_total",
            "Bytes transferred by completed block requests.",
            &|s| s.bytes as f64,
        ),
        per(
            "monitor_disk_errors_total",
            "Block requests completed with an error status.",
            &|s| s.errors as f64,
        ),
        family(
            "monitor_disk_latency_seconds",
            "Time from a request's issue to the driver to its completion.",
            MetricType::HISTOGRAM,
            rows.iter()
                .map(|(d, op, s)| {
                    histogram(
                        &[("device", d), ("op", op)],
                        &log2_buckets(&s.latency),
                        ns_to_seconds(s.latency_sum_ns),
                    )
                })
                .collect(),
        ),
        family(
            "monitor_disk_queue_wait_seconds",
            "Time from a request's submission to its issue to the driver (queued, plugged or \
             held by the I/O scheduler).",
            MetricType::HISTOGRAM,
            rows.iter()
                .map(|(d, op, s)| {
                    histogram(
                        &[("device", d), ("op", op)],
                        &log2_buckets(&s.queue),
                        ns_to_seconds(s.queue_sum_ns),
                    )
                })
                .collect(),
        ),
    ]
}

fn group_families(rows: &[(&str, Counters)]) -> Vec<MetricFamily> {
    let per = |name: &str,
               help: &str,
               read: &dyn Fn(&Counters) -> f64,
               write: &dyn Fn(&Counters) -> f64| {
        let mut m = Vec::with_capacity(rows.len() * 2);
        for (g, c) in rows {
            m.push(counter(&[("group", g), ("op", "read")], read(c)));
            m.push(counter(&[("group", g), ("op", "write")], write(c)));
        }
        family(name, help, MetricType::COUNTER, m)
    };
    vec![
        per(
            "monitor_process_disk_bytes_total",
            "Bytes of block I/O the group's processes submitted, counted at completion.",
            &|c| c.disk.read_bytes as f64,
            &|c| c.disk.write_bytes as f64,
        ),
        per(
            "monitor_process_disk_requests_total",
            "Block requests the group's processes submitted, counted at completion.",
            &|c| c.disk.reads as f64,
            &|c| c.disk.writes as f64,
        ),
        per(
            "monitor_process_disk_latency_seconds_total",
            "Issue-to-completion time summed over the group's block requests (divide by the \
             requests for the average).",
            &|c| ns_to_seconds(c.disk.read_ns),
            &|c| ns_to_seconds(c.disk.write_ns),
        ),
    ]
}

/// The family's exposition: per disk (named from `sysfs`) and operation, and per group
/// from the process table's export.
pub fn families(
    sysfs: &Path,
    disks: &[(DiskKey, DiskStats)],
    view: &View<'_>,
    out: &mut Vec<MetricFamily>,
) {
    let mut rows: Vec<(String, &'static str, DiskStats)> = disks
        .iter()
        .filter_map(|(k, s)| {
            let op = OP_NAMES.get(k.op as usize)?;
            Some((device_name(sysfs, k.dev), *op, *s))
        })
        .collect();
    rows.sort_by(|a, b| (&a.0, a.1).cmp(&(&b.0, b.1)));
    out.extend(disk_families(&rows));
    // Series only for the groups whose I/O this family has seen; the others are all zeros,
    // and the sum over groups is the same without them.
    let rows: Vec<(&str, Counters)> = view
        .export
        .rows()
        .into_iter()
        .filter(|(_, c)| c.disk != BlockTaskCounters::default())
        .collect();
    out.extend(group_families(&rows));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_names_come_from_sysfs_links() {
        let dir = tempfile::tempdir().unwrap();
        let links = dir.path().join("dev/block");
        std::fs::create_dir_all(&links).unwrap();
        std::os::unix::fs::symlink("../../devices/virtual/block/loop3", links.join("7:3")).unwrap();
        std::os::unix::fs::symlink(
            "../../devices/pci0000:00/0000:00:04.0/nvme/nvme0/nvme0n1",
            links.join("259:0"),
        )
        .unwrap();
        assert_eq!(device_name(dir.path(), 7 << 20 | 3), "loop3");
        assert_eq!(device_name(dir.path(), 259 << 20), "nvme0n1");
        assert_eq!(device_name(dir.path(), 8 << 20 | 16), "8:16");
    }
}
