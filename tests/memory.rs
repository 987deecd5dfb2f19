//! Host memory and pressure figures against `/proc/meminfo` read at the same moment, and
//! against node_exporter's for the same fields; a group's resident memory against its
//! processes' `VmRSS`.

use std::{
    collections::HashMap,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use monitor_tests::*;

/// How far a moving figure (free, cached...) may drift between two reads taken a few
/// milliseconds apart.
const DRIFT_BYTES: f64 = 8.0 * 1024.0 * 1024.0;

fn meminfo() -> HashMap<String, f64> {
    std::fs::read_to_string("/proc/meminfo")
        .unwrap()
        .lines()
        .filter_map(|l| {
            let (k, rest) = l.split_once(':')?;
            let mut w = rest.split_whitespace();
            let v: f64 = w.next()?.parse().ok()?;
            let v = if w.next() == Some("kB") {
                v * 1024.0
            } else {
                v
            };
            Some((k.to_string(), v))
        })
        .collect()
}

/// The fields users read first, with our metric names.
const FIELDS: &[(&str, &str)] = &[
    ("MemTotal", "monitor_memory_total_bytes"),
    ("MemAvailable", "monitor_memory_available_bytes"),
    ("MemFree", "monitor_memory_free_bytes"),
    ("Buffers", "monitor_memory_buffers_bytes"),
    ("Cached", "monitor_memory_cached_bytes"),
    ("SwapTotal", "monitor_memory_swap_total_bytes"),
    ("SwapFree", "monitor_memory_swap_free_bytes"),
    ("Shmem", "monitor_memory_shmem_bytes"),
    ("Active(anon)", "monitor_memory_active_anon_bytes"),
    ("SReclaimable", "monitor_memory_slab_reclaimable_bytes"),
    ("Committed_AS", "monitor_memory_committed_as_bytes"),
    ("HugePages_Total", "monitor_memory_huge_pages"),
];

#[test]
fn memory_matches_proc_meminfo_read_at_the_same_moment() {
    let d = Daemon::start(&["--collector.disable-defaults", "--collector.meminfo"]);
    let before = meminfo();
    let m = d.metrics();
    let after = meminfo();
    // Every field of the file is exported.
    let exported =
        m.0.lines()
            .filter(|l| l.starts_with("monitor_memory_"))
            .count();
    assert_eq!(exported, before.len(), "one series per /proc/meminfo field");
    for (field, name) in FIELDS {
        let ours = m.value(name);
        let (a, b) = (before[*field], after[*field]);
        let (lo, hi) = (a.min(b) - DRIFT_BYTES, a.max(b) + DRIFT_BYTES);
        assert!(
            (lo..=hi).contains(&ours),
            "{name} = {ours}, /proc/meminfo {field} read around it: {a} and {b}"
        );
    }
    assert_eq!(m.value("monitor_memory_total_bytes"), before["MemTotal"]);
}

/// node_exporter on loopback with only the collectors compared here.
struct NodeExporter {
    _child: Guard,
    port: u16,
}

impl NodeExporter {
    fn start() -> Self {
        let port = free_port();
        let child = Guard(
            Command::new("prometheus-node-exporter")
                .arg(format!("--web.listen-address=127.0.0.1:{port}"))
                .args(["--collector.disable-defaults", "--collector.meminfo", "--collector.pressure"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("node_exporter (Debian package prometheus-node-exporter) is installed by cargo xtask test"),
        );
        let deadline = Instant::now() + Duration::from_secs(20);
        while request("GET", &format!("http://127.0.0.1:{port}/metrics")).0 != 200 {
            assert!(Instant::now() < deadline, "node_exporter never answered");
            std::thread::sleep(Duration::from_millis(100));
        }
        NodeExporter {
            _child: child,
            port,
        }
    }

    fn metrics(&self) -> Metrics {
        let (status, body) = request("GET", &format!("http://127.0.0.1:{}/metrics", self.port));
        assert_eq!(status, 200);
        Metrics(body)
    }
}

#[test]
fn memory_and_pressure_agree_with_node_exporter() {
    let ne = NodeExporter::start();
    let d = Daemon::start(&[
        "--collector.disable-defaults",
        "--collector.meminfo",
        "--collector.pressure",
    ]);
    let theirs = ne.metrics();
    let ours = d.metrics();
    for (field, name) in FIELDS {
        let node = format!(
            "node_memory_{}_bytes",
            field.replace(['(', ')'], "_").trim_end_matches('_')
        );
        let node = if *field == "HugePages_Total" {
            "node_memory_HugePages_Total".to_string()
        } else {
            node
        };
        let (a, b) = (ours.value(name), theirs.value(&node));
        assert!(
            (a - b).abs() <= DRIFT_BYTES,
            "{name} = {a}, node_exporter's {node} = {b}"
        );
    }
    for (resource, kind, node) in [
        ("cpu", "waiting", "node_pressure_cpu_waiting_seconds_total"),
        (
            "memory",
            "waiting",
            "node_pressure_memory_waiting_seconds_total",
        ),
        (
            "memory",
            "stalled",
            "node_pressure_memory_stalled_seconds_total",
        ),
        ("io", "waiting", "node_pressure_io_waiting_seconds_total"),
        ("io", "stalled", "node_pressure_io_stalled_seconds_total"),
    ] {
        let a = ours.value(&format!(
            "monitor_pressure_{kind}_seconds_total{{resource=\"{resource}\"}}"
        ));
        let b = theirs.value(node);
        // Both are running totals read a moment apart: they may differ by that moment.
        assert!(
            (a - b).abs() < 0.5,
            "{resource} {kind}: ours {a}, node_exporter {b}"
        );
    }
}

/// `VmRSS` of `pid` in bytes, from `/proc/<pid>/status`.
fn vm_rss(pid: u32) -> f64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    s.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
        .expect("a VmRSS line")
        * 1024.0
}

#[test]
fn group_resident_memory_is_the_sum_of_its_processes_vmrss() {
    let d = Daemon::start(&[]);
    let bin = NamedBinary::new("/bin/dash", "mtrss");
    // Three shells of one group, each holding a string of its own size in memory, then
    // waiting on a pipe this test keeps open (so they sit idle).
    let children: Vec<Guard> = [4, 12, 24]
        .iter()
        .map(|mib| {
            Guard(
                Command::new(&bin.path)
                    .args([
                        "-c",
                        &format!("x=$(head -c {} /dev/zero | tr '\\0' a); read y", mib << 20),
                    ])
                    .stdin(Stdio::piped())
                    .spawn()
                    .unwrap(),
            )
        })
        .collect();
    let pids: Vec<u32> = children.iter().map(|c| c.id()).collect();
    let series = format!(
        "monitor_process_resident_memory_bytes{{group=\"{}\"}}",
        bin.name
    );
    // Each shell's memory settles once its string is read; the daemon reads a process again
    // within seconds after it ran. Both sides are read around the same moment each round.
    let deadline = Instant::now() + Duration::from_secs(60);
    let (ours, truth) = loop {
        let before: f64 = pids.iter().map(|&p| vm_rss(p)).sum();
        let ours = d.metrics().get(&series);
        let after: f64 = pids.iter().map(|&p| vm_rss(p)).sum();
        if let Some(v) = ours {
            if before == after && before > 40.0 * 1048576.0 && v == before {
                break (v, before);
            }
        }
        assert!(
            Instant::now() < deadline,
            "{series} = {ours:?}, VmRSS summed: {before} then {after}"
        );
        std::thread::sleep(Duration::from_millis(500));
    };
    assert_close("group resident memory", ours, truth, 0.0);
    // The group's series goes with its last process.
    drop(children);
    let deadline = Instant::now() + Duration::from_secs(30);
    while d.metrics().get(&series).is_some() {
        assert!(Instant::now() < deadline, "{series} outlived its processes");
        std::thread::sleep(Duration::from_millis(500));
    }
}
