//! Block I/O measured in the kernel against what a child did with O_DIRECT on a loop device
//! and against the kernel's own `/proc/diskstats`.

use std::{
    io::{BufRead as _, BufReader},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use monitor_tests::*;

const CHUNK: u64 = 128 * 1024;
const WRITE: u64 = 16 << 20;
const READ: u64 = 8 << 20;
const RESIDENT_MIB: u64 = 48;

/// A loop device over a fresh file, detached when dropped.
struct Loop {
    _file: tempfile::NamedTempFile,
    dev: String,
}

impl Loop {
    fn new(size: u64) -> Self {
        let file = tempfile::NamedTempFile::new().unwrap();
        file.as_file().set_len(size).unwrap();
        let out = Command::new("losetup")
            .args(["--find", "--show", "--partscan"])
            .arg(file.path())
            .output()
            .expect("running losetup");
        assert!(
            out.status.success(),
            "losetup: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let dev = String::from_utf8(out.stdout).unwrap().trim().to_string();
        Loop { _file: file, dev }
    }

    /// Gives the device one partition from 1 MiB to the end and returns its path.
    fn partition(&self) -> String {
        let mut c = Command::new("sfdisk")
            .args(["--quiet", &self.dev])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .expect("running sfdisk");
        use std::io::Write as _;
        c.stdin.take().unwrap().write_all(b"start=2048\n").unwrap();
        assert!(c.wait().unwrap().success(), "sfdisk failed");
        // Kernels without a partition-table parser (like this machine's) learn partitions
        // from userspace; where the kernel already added it, partx fails harmlessly.
        let _ = Command::new("partx")
            .args(["--add", &self.dev])
            .stderr(Stdio::null())
            .status();
        let part = format!("{}p1", self.dev);
        let deadline = Instant::now() + Duration::from_secs(10);
        while !std::path::Path::new(&part).exists() {
            assert!(Instant::now() < deadline, "{part} never appeared");
            std::thread::sleep(Duration::from_millis(50));
        }
        part
    }

    fn name(&self) -> &str {
        self.dev.trim_start_matches("/dev/")
    }
}

impl Drop for Loop {
    fn drop(&mut self) {
        let _ = Command::new("losetup").args(["-d", &self.dev]).status();
    }
}

/// Completed (reads, writes, flushes) of `name` in /proc/diskstats.
fn diskstats(name: &str) -> (f64, f64, f64) {
    let text = std::fs::read_to_string("/proc/diskstats").unwrap();
    let f: Vec<f64> = text
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .find(|w| w.get(2) == Some(&name))
        .unwrap_or_else(|| panic!("{name} not in /proc/diskstats"))[3..]
        .iter()
        .map(|v| v.parse().unwrap())
        .collect();
    // reads completed, writes completed, flushes completed (field 15 from 5.5 on).
    (f[0], f[4], f.get(15).copied().unwrap_or(0.0))
}

/// VmRSS and VmSwap of `pid` in bytes.
fn status_memory(pid: u32) -> (f64, f64) {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let field = |k: &str| -> f64 {
        text.lines()
            .find_map(|l| l.strip_prefix(k))
            .map(|v| {
                v.trim()
                    .trim_end_matches("kB")
                    .trim()
                    .parse::<f64>()
                    .unwrap()
                    * 1024.0
            })
            .unwrap_or(0.0)
    };
    (field("VmRSS:"), field("VmSwap:"))
}

fn series(name: &str, device: &str, op: &str) -> String {
    format!("{name}{{device=\"{device}\",op=\"{op}\"}}")
}

/// On this kernel requests are followed by their pointer from the typed `block_io_start`
/// (6.5+ with BTF).
#[test]
fn direct_io_is_charged_to_its_process_and_matches_diskstats() {
    let lo = Loop::new(64 << 20);
    direct_io(
        &lo,
        &lo.dev.clone(),
        &[],
        ("block_owner_io_start_btf", "tp_btf/block_io_start"),
    );
}

/// The classic path on a 6.5+ kernel (the typed one forced off): records keyed by disk and
/// sector from `block_io_start`'s classic tracepoint.
#[test]
fn direct_io_through_the_classic_hooks() {
    let lo = Loop::new(64 << 20);
    direct_io(
        &lo,
        &lo.dev.clone(),
        &["--debug.fail-attach", "block_owner_io_start_btf"],
        ("block_owner_io_start", "tracepoint/block/block_io_start"),
    );
}

/// The path kernels before 6.5 take (`block_bio_queue` and `block_split`, forced here), on a
/// partition: bio events name the partition, request events the disk.
#[test]
fn direct_io_on_a_partition_through_bio_events() {
    let lo = Loop::new(64 << 20);
    let part = lo.partition();
    direct_io(
        &lo,
        &part,
        &["--debug.fail-attach", "block_owner_io_start"],
        ("block_owner_bio_queue", "tracepoint/block/block_bio_queue"),
    );
}

/// `submitter`: the program and hook expected to serve the `disk_submitter` measure.
fn direct_io(lo: &Loop, target: &str, extra: &[&str], submitter: (&str, &str)) {
    let mut args = vec![
        "--collector.disable-defaults",
        "--collector.sched",
        "--collector.block",
        "--collector.bpf",
    ];
    args.extend_from_slice(extra);
    let d = Daemon::start(&args);
    let dev = lo.name();
    let m0 = d.metrics();
    let hook = format!(
        "monitor_bpf_hook_info{{collector=\"block\",measure=\"disk_submitter\",program=\"{}\",hook=\"{}\"}}",
        submitter.0, submitter.1
    );
    assert_eq!(m0.get(&hook), Some(1.0), "{hook} missing:\n{}", m0.0);
    // What the block programs drop is counted by reason from the start.
    for (program, reason) in [
        ("block_submit", "map_full"),
        ("block_rq_issue", "map_full"),
        ("block_rq_complete", "map_full"),
        ("block_rq_complete", "no_submitter"),
        ("block_rq_complete", "read_failed"),
    ] {
        let series =
            format!("monitor_bpf_misses_total{{program=\"{program}\",reason=\"{reason}\"}}");
        assert!(m0.get(&series).is_some(), "{series} missing:\n{}", m0.0);
    }
    let ds0 = diskstats(dev);

    let bin = NamedBinary::new(env!("CARGO_BIN_EXE_io-child"), "dio");
    let mut child = Guard(
        Command::new(&bin.path)
            .args([
                target,
                &WRITE.to_string(),
                &READ.to_string(),
                &CHUNK.to_string(),
                &RESIDENT_MIB.to_string(),
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let pid = child.id();
    let mut line = String::new();
    BufReader::new(child.0.stdout.as_mut().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(
        line.trim(),
        "ready",
        "the child failed before its I/O was done"
    );

    // Its own figures while it lives, in the process list.
    let deadline = Instant::now() + Duration::from_secs(20);
    let p = loop {
        let p = d.process(pid);
        if p["disk_write_bytes_total"].as_f64().unwrap() >= WRITE as f64 * 0.98
            && p["disk_read_bytes_total"].as_f64().unwrap() >= READ as f64 * 0.98
        {
            break p;
        }
        assert!(Instant::now() < deadline, "its I/O never showed: {p}");
        std::thread::sleep(Duration::from_millis(200));
    };
    let (rss, swap) = status_memory(pid);
    assert_close(
        "per-process bytes written",
        p["disk_write_bytes_total"].as_f64().unwrap(),
        WRITE as f64,
        0.02,
    );
    assert_close(
        "per-process bytes read",
        p["disk_read_bytes_total"].as_f64().unwrap(),
        READ as f64,
        0.02,
    );
    assert_close(
        "per-process writes",
        p["disk_writes_total"].as_f64().unwrap(),
        (WRITE / CHUNK) as f64,
        0.02,
    );
    assert_close(
        "per-process reads",
        p["disk_reads_total"].as_f64().unwrap(),
        (READ / CHUNK) as f64,
        0.02,
    );
    assert!(
        p["disk_latency_seconds_total"].as_f64().unwrap() > 0.0,
        "{p}"
    );
    // The child is idle now: its memory does not move between the two reads.
    assert_close("rss", p["rss_bytes"].as_f64().unwrap(), rss, 0.02);
    assert!(
        rss >= (RESIDENT_MIB << 20) as f64,
        "VmRSS {rss} below what it touched"
    );
    assert_eq!(p["swap_bytes"].as_f64().unwrap(), swap);

    drop(child.0.stdin.take());
    let _ = child.0.wait();

    // Per group after it exited: its totals were folded, not lost.
    let deadline = Instant::now() + Duration::from_secs(20);
    let group = |m: &Metrics, op: &str, name: &str| {
        m.get(&format!("{name}{{group=\"{}\",op=\"{op}\"}}", bin.name))
            .unwrap_or(0.0)
    };
    let m1 = loop {
        let m = d.metrics();
        if m.get(&format!(
            "monitor_process_exits_total{{group=\"{}\"}}",
            bin.name
        )) == Some(1.0)
        {
            break m;
        }
        assert!(Instant::now() < deadline, "the exit was never folded");
        std::thread::sleep(Duration::from_millis(200));
    };
    let ds1 = diskstats(dev);
    assert_close(
        "group bytes written",
        group(&m1, "write", "monitor_process_disk_bytes_total"),
        WRITE as f64,
        0.02,
    );
    assert_close(
        "group bytes read",
        group(&m1, "read", "monitor_process_disk_bytes_total"),
        READ as f64,
        0.02,
    );

    // The device against the kernel's own accounting, and the histograms against the count.
    let delta = |m: &Metrics, name: &str, op: &str| {
        m.get(&series(name, dev, op)).unwrap_or(0.0) - m0.get(&series(name, dev, op)).unwrap_or(0.0)
    };
    for (op, truth) in [
        ("read", ds1.0 - ds0.0),
        ("write", ds1.1 - ds0.1),
        ("flush", ds1.2 - ds0.2),
    ] {
        let requests = delta(&m1, "monitor_disk_requests_total", op);
        assert_close(
            &format!("{dev} {op} requests vs diskstats"),
            requests,
            truth,
            0.02,
        );
        assert_eq!(
            delta(&m1, "monitor_disk_latency_seconds_count", op),
            requests,
            "{op}: latency histogram count"
        );
    }
    assert_close(
        "device bytes written",
        delta(&m1, "monitor_disk_bytes_total", "write"),
        WRITE as f64,
        0.02,
    );
    assert_close(
        "device bytes read",
        delta(&m1, "monitor_disk_bytes_total", "read"),
        READ as f64,
        0.02,
    );
    assert!(
        ds1.2 > ds0.2,
        "fsync made no flush request: the test proves nothing for flushes"
    );
}
