//! No daemon: the daemon's own state (kernel programs, process table) built and read in this
//! process, so the figures are the ones the daemon would serve, encoded and parsed the same.

use std::time::{Duration, Instant};

use crate::{
    assemble::{self, CoreOptions},
    core::Core,
    process::group::GroupBy,
    top::{
        exposition,
        host::HostReader,
        sample::{parse_processes, Sample},
    },
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

    pub fn sample(&mut self) -> anyhow::Result<Sample> {
        let body = self.core.processes_json()?;
        let mut s = parse_processes(body.as_bytes(), Instant::now())?;
        s.host.runq = self.core.runq_hist().map(exposition::from_runq);
        self.host.fill(&mut s.host, true);
        Ok(s)
    }
}
