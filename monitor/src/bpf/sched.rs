//! The scheduler collector's kernel side: which programs it attaches, and reading its maps.

use anyhow::Context as _;
use aya::{
    maps::{HashMap, MapData, PerCpuArray, RingBuf},
    Ebpf,
};
use monitor_common::{
    event::ProcEvent,
    maps,
    sched::{RunqHist, TaskStats},
};

use super::{
    attach::{Choice, Hook, Probe},
    take_map,
};
use crate::process::{identity::comm_str, table::KernelEntry};

pub const PROBES: &[Probe] = &[
    Probe {
        measure: "cpu_time_and_switches",
        choices: &[
            Choice {
                program: "sched_switch_btf",
                hook: Hook::Btf("sched_switch"),
            },
            Choice {
                program: "sched_switch_tp",
                hook: Hook::Tracepoint("sched", "sched_switch"),
            },
        ],
    },
    Probe {
        measure: "runqueue_wakeup",
        choices: &[Choice {
            program: "sched_wakeup",
            hook: Hook::Tracepoint("sched", "sched_wakeup"),
        }],
    },
    Probe {
        measure: "runqueue_wakeup_new",
        choices: &[Choice {
            program: "sched_wakeup_new",
            hook: Hook::Tracepoint("sched", "sched_wakeup_new"),
        }],
    },
    Probe {
        measure: "process_exec",
        choices: &[Choice {
            program: "sched_process_exec",
            hook: Hook::Tracepoint("sched", "sched_process_exec"),
        }],
    },
    Probe {
        measure: "process_exit",
        choices: &[Choice {
            program: "sched_process_exit",
            hook: Hook::Tracepoint("sched", "sched_process_exit"),
        }],
    },
];

pub struct SchedMaps {
    task_stats: HashMap<MapData, u32, TaskStats>,
    runq_start: HashMap<MapData, u32, u64>,
    runq_hist: PerCpuArray<MapData, RunqHist>,
    events: RingBuf<MapData>,
}

impl SchedMaps {
    pub fn take(ebpf: &mut Ebpf) -> anyhow::Result<Self> {
        Ok(Self {
            task_stats: take_map(ebpf, maps::TASK_STATS)?,
            runq_start: take_map(ebpf, maps::RUNQ_START)?,
            runq_hist: take_map(ebpf, maps::RUNQ_HIST)?,
            events: take_map(ebpf, maps::PROC_EVENTS)?,
        })
    }

    /// Hands every pending process event to `f`; returns how many there were.
    pub fn drain_events(&mut self, mut f: impl FnMut(&ProcEvent)) -> usize {
        let mut n = 0;
        while let Some(item) = self.events.next() {
            if item.len() >= std::mem::size_of::<ProcEvent>() {
                // SAFETY: the record holds a whole `ProcEvent` (checked above), a plain
                // `repr(C)` struct of integers; the ring buffer gives no alignment promise.
                let ev = unsafe { std::ptr::read_unaligned(item.as_ptr().cast::<ProcEvent>()) };
                f(&ev);
                n += 1;
            }
        }
        n
    }

    pub fn read_tasks(&self) -> anyhow::Result<Vec<KernelEntry>> {
        let mut out = Vec::new();
        for kv in self.task_stats.iter() {
            let (tgid, stats) = match kv {
                Ok(kv) => kv,
                // An entry removed between listing its key and reading it.
                Err(aya::maps::MapError::KeyNotFound) => continue,
                Err(e) => return Err(e).context("reading map TASK_STATS"),
            };
            out.push(KernelEntry {
                tgid,
                counters: stats.counters.into(),
                comm: comm_str(&stats.comm),
            });
        }
        Ok(out)
    }

    pub fn remove_tasks(&mut self, tgids: &[u32]) {
        for t in tgids {
            if let Err(e) = self.task_stats.remove(t) {
                tracing::debug!(tgid = t, error = %e, "removing a folded TASK_STATS entry");
            }
        }
    }

    /// The run-queue histogram summed over CPUs.
    pub fn histogram(&self) -> anyhow::Result<RunqHist> {
        let per_cpu = self.runq_hist.get(&0, 0).context("reading map RUNQ_HIST")?;
        let mut sum = RunqHist::default();
        for h in per_cpu.iter() {
            for (s, b) in sum.buckets.iter_mut().zip(h.buckets.iter()) {
                *s += b;
            }
            sum.sum_ns += h.sum_ns;
        }
        Ok(sum)
    }

    pub fn runq_start_entries(&self) -> usize {
        self.runq_start.keys().filter(Result::is_ok).count()
    }
}
