//! Filesystem space against `df`, a mount whose statvfs never returns, and the time-to-full
//! estimate of a filesystem being filled.

use std::{
    process::Command,
    time::{Duration, Instant},
};

use monitor_tests::*;

fn labels_of(line: &str, name: &str) -> Option<String> {
    let start = line.find(&format!("{name}=\""))? + name.len() + 2;
    let len = line[start..].find('"')?;
    Some(line[start..start + len].to_string())
}

/// (size, avail, inodes, inodes free) of `mountpoint` as df reports them.
fn df(mountpoint: &str) -> (f64, f64, f64, f64) {
    let out = Command::new("df")
        .args(["-B1", "--output=size,avail,itotal,iavail", mountpoint])
        .output()
        .unwrap();
    assert!(out.status.success(), "df {mountpoint}");
    let text = String::from_utf8_lossy(&out.stdout);
    let v: Vec<f64> = text
        .lines()
        .nth(1)
        .unwrap()
        .split_whitespace()
        .map(|x| x.parse().unwrap())
        .collect();
    (v[0], v[1], v[2], v[3])
}

#[test]
fn figures_match_df_for_every_mount() {
    let d = Daemon::start(&["--collector.disable-defaults", "--collector.filesystem"]);
    let m = d.metrics();
    let mounts: Vec<String> =
        m.0.lines()
            .filter(|l| l.starts_with("monitor_filesystem_size_bytes{"))
            .filter_map(|l| labels_of(l, "mountpoint"))
            .collect();
    assert!(mounts.iter().any(|p| p == "/"), "{mounts:?}");
    let series = |name: &str, mp: &str| {
        m.0.lines()
            .find(|l| l.starts_with(name) && labels_of(l, "mountpoint").as_deref() == Some(mp))
            .and_then(|l| l.rsplit_once(' '))
            .map(|(_, v)| v.parse::<f64>().unwrap())
            .unwrap_or_else(|| panic!("no {name} for {mp}"))
    };
    for mp in &mounts {
        let (size, avail, files, files_free) = df(mp);
        assert_eq!(
            series("monitor_filesystem_size_bytes{", mp),
            size,
            "size of {mp}"
        );
        let ours = series("monitor_filesystem_avail_bytes{", mp);
        assert!(
            (ours - avail).abs() <= 16.0 * 1024.0 * 1024.0,
            "avail of {mp}: {ours} vs df {avail}"
        );
        assert_eq!(
            series("monitor_filesystem_files{", mp),
            files,
            "inodes of {mp}"
        );
        let ours = series("monitor_filesystem_files_free{", mp);
        assert!(
            (ours - files_free).abs() <= 1000.0,
            "free inodes of {mp}: {ours} vs df {files_free}"
        );
        assert_eq!(series("monitor_filesystem_device_error{", mp), 0.0);
    }
    // Pseudo filesystems are skipped by default.
    assert!(
        !mounts.iter().any(|p| p == "/proc" || p.starts_with("/sys")),
        "{mounts:?}"
    );
}

#[test]
fn include_and_exclude_patterns_choose_the_mounts() {
    let d = Daemon::start(&[
        "--collector.disable-defaults",
        "--collector.filesystem",
        "--collector.filesystem.mount-points-exclude",
        "^/$",
        "--collector.filesystem.fs-types-include",
        "^(ext4|tmpfs)$",
    ]);
    let m = d.metrics();
    let mounts: Vec<(String, String)> =
        m.0.lines()
            .filter(|l| l.starts_with("monitor_filesystem_size_bytes{"))
            .filter_map(|l| Some((labels_of(l, "mountpoint")?, labels_of(l, "fstype")?)))
            .collect();
    assert!(!mounts.is_empty());
    assert!(!mounts.iter().any(|(p, _)| p == "/"), "{mounts:?}");
    assert!(
        mounts.iter().all(|(_, t)| t == "ext4" || t == "tmpfs"),
        "{mounts:?}"
    );
}

#[test]
fn a_mount_whose_statvfs_never_returns_does_not_block_metrics() {
    let hung = HungMount::new();
    let mp = hung.dir.path().to_str().unwrap().to_string();
    let d = Daemon::start(&[]);
    for scrape in 0..3 {
        let start = Instant::now();
        let (status, body) = d.get("/metrics");
        // A blocked scrape would never return (the client gives up after 10 s).
        assert_eq!(
            status,
            200,
            "scrape {scrape} failed after {:?}",
            start.elapsed()
        );
        let err = body
            .lines()
            .find(|l| {
                l.starts_with("monitor_filesystem_device_error{")
                    && labels_of(l, "mountpoint").as_deref() == Some(mp.as_str())
            })
            .unwrap_or_else(|| panic!("no device_error for the hung mount {mp}"));
        assert!(err.ends_with(" 1"), "{err}");
        // The other collectors still report.
        assert!(body.contains("monitor_collector_success{collector=\"sched\"} 1"));
        assert!(body.contains("monitor_filesystem_size_bytes{device=\"/dev/vda\",mountpoint=\"/\""));
    }
    let log = d.log();
    let warned = log
        .lines()
        .filter(|l| l.contains("statvfs does not return"))
        .count();
    assert_eq!(warned, 1, "one log line for the stuck mount:\n{log}");
    assert!(log.contains(&mp), "{log}");
}

#[test]
fn a_filling_filesystem_gets_a_time_to_full() {
    let dir = tempfile::tempdir().unwrap();
    let mp = dir.path().to_str().unwrap().to_string();
    let ok = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=64m", "monitor-test-fill", &mp])
        .status()
        .unwrap()
        .success();
    assert!(ok, "mounting a tmpfs");
    struct Unmount(String);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg(&self.0).status();
        }
    }
    let _u = Unmount(mp.clone());
    let d = Daemon::start(&["--collector.disable-defaults", "--collector.filesystem"]);
    let predicted = |body: &str| {
        body.lines()
            .find(|l| {
                l.starts_with("monitor_filesystem_predicted_full_seconds{")
                    && labels_of(l, "mountpoint").as_deref() == Some(mp.as_str())
            })
            .map(|l| l.rsplit_once(' ').unwrap().1.to_string())
    };
    assert_eq!(predicted(&d.metrics().0), None, "one sample is not a rate");
    // 4 MiB a step, a step every ~0.6 s: 48 MiB left after the first two.
    for i in 0..4 {
        std::fs::write(dir.path().join(format!("f{i}")), vec![7u8; 4 << 20]).unwrap();
        std::thread::sleep(Duration::from_millis(600));
        d.metrics();
    }
    let body = d.metrics().0;
    let s: f64 = predicted(&body).expect("a time to full").parse().unwrap();
    assert!(s.is_finite() && s > 0.0, "predicted {s}");
    // About 48 MiB at about 6.7 MiB/s: seconds, not hours.
    assert!(s < 60.0, "predicted {s} s");
}
