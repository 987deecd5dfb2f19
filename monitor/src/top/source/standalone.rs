//! No daemon: the daemon's own state (kernel programs, process table) built and read in this
//! process, so the figures are the ones the daemon would serve: the same process list, handed
//! over without the JSON in between.

use std::time::{Duration, Instant};

use crate::{
    assemble::{self, CoreOptions},
    core::Core,
    process::group::GroupBy,
    top::{exposition, host::HostReader, sample::Sample},
};

pub struct Standalone {
    core: Core,
    host: HostReader,
}

impl Standalone {
    /// Loads and attaches the scheduler programs (root, or CAP_BPF and CAP_PERFMON).
    pub fn start() -> anyhow::Result<Self> {
        let core = assemble::core(&CoreOptions {
            procfs: "/proc".into(),
            // The daemon's defaults: groups by name.
            group_by: GroupBy::Comm,
            group_rules: Vec::new(),
            max_groups: 100,
            enabled: vec!["sched"],
            collectors: Default::default(),
            bpf_stats: false,
            fail_attach: Vec::new(),
            // Each sample reads the kernel afresh.
            min_age: Duration::ZERO,
            audit: None,
        })?;
        Ok(Self {
            core,
            host: HostReader::default(),
        })
    }

    pub fn sample(&mut self) -> Sample {
        let mut s = Sample::from_list(self.core.process_list(), Instant::now());
        s.host.runq = self.core.runq_hist().map(exposition::from_runq);
        self.host.fill(&mut s.host, true);
        s
    }
}
