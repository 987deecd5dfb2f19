//! No daemon: the daemon's own state (kernel programs, process table) built and refreshed in
//! this process, so the figures are the ones the daemon would serve: the same snapshots and
//! process list, handed over without the JSON in between.

use std::{
    path::PathBuf,
    sync::Arc,
    time::{Duration, Instant},
};

use crate::{
    assemble::{self, CoreOptions},
    process::group::GroupBy,
    snapshot::{self, Freshness, Snapshots},
    top::{exposition, host::HostReader, sample::Sample},
};

/// Each sample is read after it is asked for (top's interval is the refresh), waiting for
/// the refresher as long as a daemon's request would.
const SAMPLE: Freshness = Freshness {
    max_age: Duration::ZERO,
    wait: snapshot::REQUEST.wait,
};

pub struct Standalone {
    snapshots: Arc<Snapshots>,
    procfs: PathBuf,
    host: HostReader,
}

impl Standalone {
    /// Loads and attaches the scheduler programs (root, or CAP_BPF and CAP_PERFMON).
    pub fn start() -> anyhow::Result<Self> {
        let procfs = PathBuf::from("/proc");
        let core = assemble::core(&CoreOptions {
            procfs: procfs.clone(),
            // The daemon's defaults: groups by name.
            group_by: GroupBy::Comm,
            group_rules: Vec::new(),
            max_groups: 100,
            enabled: vec!["sched"],
            collectors: Default::default(),
            bpf_stats: false,
            fail_attach: Vec::new(),
            no_btf: false,
            audit: None,
        })?
        .core;
        // The daemon's default interval, to fold exited processes between samples.
        let snapshots = snapshot::start(core, Duration::from_secs(1), Duration::ZERO)?;
        Ok(Self {
            snapshots,
            procfs,
            host: HostReader::default(),
        })
    }

    pub fn sample(&mut self) -> Sample {
        let snap = self.snapshots.with_processes(SAMPLE);
        let mut list = snap.processes.clone().unwrap_or_default();
        list.read_memory(&self.procfs);
        let mut s = Sample::from_list(list, Instant::now());
        s.host.runq = snap.runq.as_ref().map(exposition::from_runq);
        self.host.fill(&mut s.host, true);
        s
    }
}
