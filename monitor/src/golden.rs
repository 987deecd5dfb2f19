//! The golden test: the whole refresher and scrape path (every kernel family, the process
//! table, the host collectors, the exposition and the process API) run without privileges
//! on fixture `/proc` and `/sys` trees and written-down map contents
//! (`testdata/golden/maps.json`, read by `bpf::recording`), diffed against the checked-in
//! `metrics.txt` and `processes.json`.
//!
//! After a deliberate change, bless the new output with
//! `MONITOR_BLESS=1 AYA_BUILD_SKIP=1 cargo test -p monitor golden` (or `cargo xtask bless`)
//! and review the diff like code.

use std::{path::Path, sync::Arc, time::Duration};

use crate::{
    bpf::{family::KernelFamily, recording::Recording},
    collectors,
    core::{Core, Kernel, LoadOptions, Loaded},
    process::{
        cgroup::Cgroups,
        group::{GroupBy, Grouper},
        identity::IdentityReader,
        table::ProcessTable,
    },
    scrape::{Reader, Scrape},
    snapshot::{self, Freshness},
};

const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/src/testdata/golden");

/// Families whose values depend on the machine or the moment, not on the inputs: the test
/// process's own figures, the build, and timings.
const UNSTABLE: &[&str] = &[
    "process_",
    "monitor_build_info",
    "monitor_collector_duration_seconds",
    "monitor_snapshot_age_seconds",
    "monitor_refresh_duration_seconds",
];

fn reader() -> Reader {
    let dir = Path::new(DIR);
    let procfs = dir.join("proc");
    let sysfs = dir.join("sys");
    let maps = Recording::read(&dir.join("maps.json")).unwrap();
    let families: Vec<Box<dyn KernelFamily>> = vec![
        Box::new(crate::sched::family::Sched::reading(Box::new(maps.clone()))),
        Box::new(crate::block::family::Block::reading(
            sysfs.clone(),
            Box::new(maps.clone()),
        )),
        Box::new(crate::net::family::Network::reading(Box::new(maps.clone()))),
        Box::new(crate::service::family::Service::reading(Box::new(maps))),
    ];
    let (kernel, _) = Kernel::load(
        Vec::new(),
        &LoadOptions {
            load: false,
            bpf_stats: false,
            no_btf: false,
            attach: Default::default(),
        },
    )
    .unwrap();
    let families = families
        .into_iter()
        .map(|family| Loaded { family, off: None })
        .collect();
    let table = ProcessTable::new(
        IdentityReader::new(&procfs),
        Cgroups::new(&procfs, &sysfs),
        Grouper::new(GroupBy::Comm, Vec::new(), "root:x:0:0::/root:/bin/sh\n"),
        100,
    );
    // Every collector but the filesystem's, whose statvfs reads the real mounts.
    let enabled: Vec<&'static str> = collectors::ALL
        .iter()
        .map(|s| s.name)
        .filter(|n| *n != "filesystem")
        .collect();
    let built = collectors::build(
        &enabled,
        &collectors::Config {
            sysfs,
            ..Default::default()
        },
    );
    let (mut at_scrape, mut refreshed) = (Vec::new(), Vec::new());
    for mut c in built.collectors {
        if c.at_scrape().is_some() {
            at_scrape.push(c);
        } else {
            refreshed.push(c);
        }
    }
    let core = Core::new(procfs.clone(), kernel, families, table, refreshed);
    // One refresh, and no other while the test reads it.
    let snapshots = snapshot::start(core, Duration::from_secs(3600), Duration::ZERO).unwrap();
    Reader::new(
        Arc::clone(&snapshots),
        Scrape::new(procfs, at_scrape),
        Freshness {
            max_age: Duration::from_secs(3600),
            wait: Duration::ZERO,
        },
    )
}

/// The exposition without the `UNSTABLE` families.
fn stable(text: &str) -> String {
    let name = |line: &str| -> String {
        let rest = line
            .strip_prefix("# HELP ")
            .or_else(|| line.strip_prefix("# TYPE "))
            .unwrap_or(line);
        rest.split([' ', '{']).next().unwrap_or("").to_string()
    };
    text.lines()
        .filter(|l| !UNSTABLE.iter().any(|u| name(l).starts_with(u)))
        .map(|l| format!("{l}\n"))
        .collect()
}

/// Compares `got` with the checked-in `file`, or writes it there when blessing.
fn check(file: &str, got: &str) {
    let path = Path::new(DIR).join(file);
    if std::env::var_os("MONITOR_BLESS").is_some() {
        std::fs::write(&path, got).unwrap();
        return;
    }
    let want = std::fs::read_to_string(&path).unwrap_or_default();
    if want != got {
        let diff: Vec<String> = want
            .lines()
            .filter(|l| !got.lines().any(|g| g == *l))
            .map(|l| format!("- {l}"))
            .chain(
                got.lines()
                    .filter(|l| !want.lines().any(|w| w == *l))
                    .map(|l| format!("+ {l}")),
            )
            .collect();
        panic!(
            "{} differs from this build's output (bless with MONITOR_BLESS=1 if intended):\n{}",
            path.display(),
            diff.join("\n")
        );
    }
}

#[test]
fn exposition_and_process_api_match_the_checked_in_files() {
    let reader = reader();
    check("metrics.txt", &stable(&reader.exposition().unwrap()));
    let mut list = reader.process_list().unwrap();
    // The read time is the test's clock; the uid is the fixture directories' owner (procfs
    // gives a process's uid as its directory's), which a checkout cannot set.
    list.read_at_monotonic_seconds = None;
    for p in &mut list.processes {
        p.uid = 0;
    }
    check(
        "processes.json",
        &(serde_json::to_string_pretty(&list).unwrap() + "\n"),
    );
}
