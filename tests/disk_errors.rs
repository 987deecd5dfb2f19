//! Block I/O errors from a real failing device: a loop device over a FUSE file whose middle
//! megabyte answers EIO. Each O_DIRECT read or write of one block on the device is one block
//! request; the ones that land in the failing range complete with an error (-EIO in
//! `block:block_rq_complete`). The truth is what the test did and saw (which calls failed)
//! and the kernel's `/proc/diskstats`, which counts failed requests like any other.

use std::{
    fs::OpenOptions,
    os::unix::fs::{FileExt as _, OpenOptionsExt as _},
    time::{Duration, Instant},
};

use monitor_tests::{
    faulty_disk::{FaultyFile, LoopDevice},
    *,
};

const BLOCK: u64 = 4096;
const SIZE: u64 = 8 << 20;
const FAILING_START: u64 = 4 << 20;
const FAILING: std::ops::Range<u64> = FAILING_START..FAILING_START + (1 << 20);
/// Blocks written and read back outside the failing range, and the failing reads and writes.
const GOOD: u64 = 6;
const BAD_READS: u64 = 5;
const BAD_WRITES: u64 = 3;

/// One block in memory aligned for O_DIRECT (a page covers every logical block size).
#[repr(C, align(4096))]
struct Aligned([u8; BLOCK as usize]);

/// Completed (reads, sectors read, writes, sectors written) of `name` in /proc/diskstats.
fn diskstats(name: &str) -> [f64; 4] {
    let text = std::fs::read_to_string("/proc/diskstats").unwrap();
    let w: Vec<&str> = text
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .find(|w| w.get(2) == Some(&name))
        .unwrap_or_else(|| panic!("{name} not in /proc/diskstats"));
    [w[3], w[5], w[7], w[9]].map(|v| v.parse().unwrap())
}

/// On this kernel requests are followed by their pointer from the typed `block_io_start`
/// (6.5+ with BTF).
#[test]
fn failed_requests_are_counted_as_errors_and_as_requests() {
    failing_io(&[], "block_owner_io_start_btf", "tp_btf/block_io_start");
}

/// The classic path on a 6.5+ kernel (the typed one forced off).
#[test]
fn failed_requests_through_the_classic_hooks() {
    failing_io(
        &["--debug.fail-attach", "block_owner_io_start_btf"],
        "block_owner_io_start",
        "tracepoint/block/block_io_start",
    );
}

/// The path kernels before 6.5 take (`block_bio_queue`, forced here): the completion is the
/// same, but the request it finds was entered from a bio event.
#[test]
fn failed_requests_through_bio_events() {
    failing_io(
        &["--debug.fail-attach", "block_owner_io_start"],
        "block_owner_bio_queue",
        "tracepoint/block/block_bio_queue",
    );
}

/// `program` on `tracepoint` is expected to serve the submission.
fn failing_io(extra: &[&str], program: &str, hook: &str) {
    // Declared before the loop device so that it is dropped after it: the device lets go of
    // the file, then the mount goes.
    let file = FaultyFile::new(SIZE as usize, FAILING);
    let lo = LoopDevice::new(&file.path());
    let dev = lo.name().to_string();
    let mut args = vec![
        "--collector.disable-defaults",
        "--collector.block",
        "--collector.bpf",
    ];
    args.extend_from_slice(extra);
    let d = Daemon::start(&args);
    let m0 = d.metrics();
    let hook = format!(
        "monitor_bpf_hook_info{{collector=\"block\",measure=\"disk_submitter\",program=\"{program}\",hook=\"{hook}\"}}"
    );
    assert_eq!(m0.get(&hook), Some(1.0), "{hook} missing:\n{}", m0.0);
    let ds0 = diskstats(&dev);

    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_DIRECT)
        .open(&lo.dev)
        .unwrap_or_else(|e| panic!("opening {}: {e}", lo.dev));
    let mut buf = Box::new(Aligned([0; BLOCK as usize]));
    // Good blocks first: each written with its own pattern and read back, so the device is
    // known to work outside the failing range.
    for i in 0..GOOD {
        buf.0.fill(0xa0 + i as u8);
        f.write_all_at(&buf.0, i * BLOCK)
            .unwrap_or_else(|e| panic!("writing good block {i}: {e}"));
    }
    for i in 0..GOOD {
        buf.0.fill(0);
        f.read_exact_at(&mut buf.0, i * BLOCK)
            .unwrap_or_else(|e| panic!("reading good block {i}: {e}"));
        assert!(
            buf.0.iter().all(|&b| b == 0xa0 + i as u8),
            "block {i} read back other bytes than were written"
        );
    }
    // Then blocks in the failing range, each a distinct one: every call must fail with EIO.
    let failing_block = |i: u64| FAILING_START + (2 * i + 1) * BLOCK;
    for i in 0..BAD_READS {
        let e = f
            .read_exact_at(&mut buf.0, failing_block(i))
            .expect_err("a read in the failing range succeeded");
        assert_eq!(e.raw_os_error(), Some(libc::EIO), "failing read {i}: {e}");
    }
    for i in 0..BAD_WRITES {
        let e = f
            .write_all_at(&buf.0, failing_block(BAD_READS + i))
            .expect_err("a write in the failing range succeeded");
        assert_eq!(e.raw_os_error(), Some(libc::EIO), "failing write {i}: {e}");
    }
    drop(f);

    let series = |name: &str, op: &str| format!("{name}{{device=\"{dev}\",op=\"{op}\"}}");
    let delta = |m: &Metrics, name: &str, op: &str| {
        m.get(&series(name, op)).unwrap_or(0.0) - m0.get(&series(name, op)).unwrap_or(0.0)
    };
    let requests = (GOOD + BAD_READS, GOOD + BAD_WRITES);
    // Completions are counted in the kernel as they happen; the daemon reads them on demand.
    let deadline = Instant::now() + Duration::from_secs(20);
    let m1 = loop {
        let m = d.metrics();
        if delta(&m, "monitor_disk_requests_total", "read") >= requests.0 as f64
            && delta(&m, "monitor_disk_requests_total", "write") >= requests.1 as f64
            && delta(&m, "monitor_disk_errors_total", "read") >= BAD_READS as f64
            && delta(&m, "monitor_disk_errors_total", "write") >= BAD_WRITES as f64
        {
            break m;
        }
        assert!(
            Instant::now() < deadline,
            "the requests and errors on {dev} never all showed:\n{}",
            m.0
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    let ds1 = diskstats(&dev);
    let ds = |i: usize| ds1[i] - ds0[i];

    // The kernel agrees on what the test did: one request per call, failed ones included.
    assert_eq!(
        ds(0),
        requests.0 as f64,
        "reads completed in /proc/diskstats"
    );
    assert_eq!(
        ds(2),
        requests.1 as f64,
        "writes completed in /proc/diskstats"
    );

    for (op, errors, requests, sectors) in [
        ("read", BAD_READS, requests.0, ds(1)),
        ("write", BAD_WRITES, requests.1, ds(3)),
    ] {
        assert_eq!(
            delta(&m1, "monitor_disk_errors_total", op),
            errors as f64,
            "{dev} {op} errors"
        );
        assert_eq!(
            delta(&m1, "monitor_disk_requests_total", op),
            requests as f64,
            "{dev} {op} requests"
        );
        // A failed request still moved its sectors as far as the kernel's accounting goes.
        assert_eq!(
            delta(&m1, "monitor_disk_bytes_total", op),
            sectors * 512.0,
            "{dev} {op} bytes against diskstats' sectors"
        );
        assert_eq!(sectors * 512.0, (requests * BLOCK) as f64, "{op} sectors");
        assert_eq!(
            delta(&m1, "monitor_disk_latency_seconds_count", op),
            requests as f64,
            "{dev} {op}: every request, failed or not, is timed"
        );
    }
}
