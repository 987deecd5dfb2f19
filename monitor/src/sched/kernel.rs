//! The scheduler collector's kernel side: which programs it attaches, and reading its maps.

use std::path::Path;

use anyhow::Context as _;
use aya::{
    maps::{HashMap, MapData, PerCpuArray, RingBuf},
    Ebpf,
};
use monitor_common::{
    event::ProcEvent,
    maps,
    sched::{
        CpuSlot, RunqHist, SchedLayout, TaskStats, ThreadState, GLOBAL_LAYOUT, RUNTIME_UNKNOWN,
    },
};

use crate::{
    bpf::{
        attach::{Choice, Hook, Probe},
        family::Setup,
        take_map,
    },
    process::table::KernelEntry,
};

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
        measure: "runqueue_wakeup_new",
        choices: &[
            Choice {
                program: "sched_wakeup_new_btf",
                hook: Hook::Btf("sched_wakeup_new"),
            },
            Choice {
                program: "sched_wakeup_new",
                hook: Hook::Tracepoint("sched", "sched_wakeup_new"),
            },
        ],
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

/// The wakeups, which time the run-queue wait where the kernel's own is not known
/// (`Layout::charges_wait`): the hottest scheduler event after the switch, not attached
/// where it has nothing to do.
pub const WAKEUP_PROBE: &[Probe] = &[Probe {
    measure: "runqueue_wakeup",
    choices: &[
        Choice {
            program: "sched_wakeup_btf",
            hook: Hook::Btf("sched_wakeup"),
        },
        Choice {
            program: "sched_wakeup",
            hook: Hook::Tracepoint("sched", "sched_wakeup"),
        },
    ],
}];

/// The OOM counter: attached on its own, as a kernel without `oom:mark_victim` must not take
/// the rest of the family down.
pub const OOM_PROBE: &[Probe] = &[Probe {
    measure: "process_oom_kill",
    choices: &[Choice {
        program: "oom_mark_victim",
        hook: Hook::Tracepoint("oom", "mark_victim"),
    }],
}];

/// The programs that read `task_struct` members at BTF offsets (`SchedLayout`).
pub const TYPED_PROGRAMS: &[&str] = &[
    "sched_switch_btf",
    "sched_wakeup_btf",
    "sched_wakeup_new_btf",
];

/// The `task_struct` offsets the typed programs need, owned for as long as the loader
/// borrows them.
pub struct Layout(SchedLayout);

impl Layout {
    /// Reads them from the kernel's BTF; what cannot be found stays 0 (and `complete` says
    /// the typed programs cannot run).
    /// `btf` is the kernel's, opened from `vmlinux` (named in the warnings).
    pub fn read(vmlinux: &Path, btf: &anyhow::Result<btf_rs::Btf>) -> Self {
        use crate::audit::layout::offset_of;
        let l = match btf {
            Ok(btf) => {
                let get = |path: &str| match offset_of(btf, "task_struct", path) {
                    Ok(o) => o,
                    Err(e) => {
                        tracing::warn!(btf = %vmlinux.display(), member = path, error = format!("{e:#}"), "task_struct member not found; the scheduler uses the classic tracepoints");
                        0
                    }
                };
                // Without it (a kernel built without `CONFIG_SCHED_INFO`) the wakeup
                // programs time the wait instead: not an error to warn of.
                let run_delay = offset_of(btf, "task_struct", "sched_info.run_delay")
                    .map_err(|e| {
                        tracing::info!(btf = %vmlinux.display(), error = format!("{e:#}"), "no task_struct.sched_info.run_delay; run-queue wait is timed from the wakeups")
                    })
                    .unwrap_or(0);
                SchedLayout {
                    task_pid: get("pid"),
                    task_tgid: get("tgid"),
                    task_sum_exec_runtime: get("se.sum_exec_runtime"),
                    task_run_delay: run_delay,
                }
            }
            Err(e) => {
                tracing::debug!(
                    error = format!("{e:#}"),
                    "no BTF for the scheduler's typed hooks"
                );
                SchedLayout::default()
            }
        };
        Self(l)
    }

    pub fn complete(&self) -> bool {
        self.0.task_pid != 0 && self.0.task_tgid != 0
    }

    /// Whether the programs charge the kernel's own runtime (else the clock).
    pub fn charges_runtime(&self) -> bool {
        self.0.task_sum_exec_runtime != 0
    }

    /// Whether the switch programs charge the kernel's own run-queue wait, so the
    /// `sched_wakeup` programs need not run (see `WAKEUP_PROBE`).
    pub fn charges_wait(&self) -> bool {
        self.0.task_run_delay != 0
    }

    pub fn set(&self, setup: &mut Setup) {
        setup.global(GLOBAL_LAYOUT, &self.0);
    }
}

/// A thread on a CPU when the counters were read, with the part of its slice not yet
/// charged (charged at its switch-out).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Running {
    /// 0: not known (the classic hook names only the thread).
    pub tgid: u32,
    pub tid: u32,
    pub ns: u64,
}

/// What the family reads of its maps: the kernel's (`SchedMaps`), or recorded contents
/// (`bpf::recording`, for tests without privileges).
pub trait SchedSource: Send {
    /// Hands every pending process event to `f`.
    fn drain_events(&mut self, f: &mut dyn FnMut(&ProcEvent));
    /// Appends every `TASK_STATS` entry to `out`.
    fn read_tasks(&self, out: &mut Vec<KernelEntry>) -> anyhow::Result<()>;
    fn remove_tasks(&mut self, tgids: &[u32]);
    /// The run-queue histogram summed over CPUs.
    fn histogram(&self) -> anyhow::Result<RunqHist>;
    /// The thread on each CPU and its slice so far, as of `now_ns`; `procfs` is where the
    /// thread's own runtime is read.
    fn running(&self, now_ns: u64, procfs: &Path) -> anyhow::Result<Vec<Running>>;
    fn runq_start_entries(&self) -> usize;
}

pub struct SchedMaps {
    task_stats: HashMap<MapData, u32, TaskStats>,
    runq_start: HashMap<MapData, u32, ThreadState>,
    /// The programs charge `sum_exec_runtime` (`Layout::charges_runtime`).
    charges_runtime: bool,
    runq_hist: PerCpuArray<MapData, RunqHist>,
    cpu_slot: PerCpuArray<MapData, CpuSlot>,
    events: RingBuf<MapData>,
    runq_start_count: crate::bpf::batch::CachedCount,
}

impl SchedMaps {
    pub fn take(ebpf: &mut Ebpf, charges_runtime: bool) -> anyhow::Result<Self> {
        Ok(Self {
            charges_runtime,
            task_stats: take_map(ebpf, maps::TASK_STATS)?,
            runq_start: take_map(ebpf, maps::RUNQ_START)?,
            runq_hist: take_map(ebpf, maps::RUNQ_HIST)?,
            cpu_slot: take_map(ebpf, maps::CPU_SLOT)?,
            runq_start_count: Default::default(),
            events: take_map(ebpf, maps::PROC_EVENTS)?,
        })
    }

    /// The runtime thread `tid` has used since the programs last charged it: the kernel's
    /// figure now (`/proc/<tid>/schedstat`, brought up to date for a running thread) less
    /// the one its entry was charged at. `None` where the programs charge the clock for it,
    /// and where either figure cannot be read.
    fn uncharged_runtime(&self, tid: u32, procfs: &Path) -> Option<u64> {
        if !self.charges_runtime {
            return None;
        }
        let charged = self.runq_start.get(&tid, 0).ok()?.charged_ns;
        if charged == RUNTIME_UNKNOWN {
            return None;
        }
        let now = thread_runtime(procfs, tid)?;
        // Below the charge: the thread id was reused; its own next switch-out resyncs it.
        now.checked_sub(charged)
    }
}

/// The first field of `<procfs>/<tid>/schedstat`: the thread's `sum_exec_runtime` in ns
/// (procfs answers for thread ids too, though it does not list them).
pub fn thread_runtime(procfs: &Path, tid: u32) -> Option<u64> {
    let mut buf = [0u8; 96];
    let mut f = std::fs::File::open(procfs.join(tid.to_string()).join("schedstat")).ok()?;
    let n = std::io::Read::read(&mut f, &mut buf).ok()?;
    let text = std::str::from_utf8(&buf[..n]).ok()?;
    text.split_ascii_whitespace().next()?.parse().ok()
}

impl SchedSource for SchedMaps {
    fn drain_events(&mut self, f: &mut dyn FnMut(&ProcEvent)) {
        while let Some(item) = self.events.next() {
            if item.len() >= std::mem::size_of::<ProcEvent>() {
                // SAFETY: the record holds a whole `ProcEvent` (checked above), a plain
                // `repr(C)` struct of integers; the ring buffer gives no alignment promise.
                let ev = unsafe { std::ptr::read_unaligned(item.as_ptr().cast::<ProcEvent>()) };
                f(&ev);
            }
        }
    }

    fn read_tasks(&self, out: &mut Vec<KernelEntry>) -> anyhow::Result<()> {
        let all = crate::bpf::batch::entries(&self.task_stats, maps::TASK_STATS)?;
        out.extend(all.into_iter().map(|(tgid, stats)| KernelEntry {
            tgid,
            counters: stats.counters.into(),
            comm: stats.comm,
            cgroup_id: stats.cgroup_id,
        }));
        Ok(())
    }

    fn remove_tasks(&mut self, tgids: &[u32]) {
        crate::bpf::batch::delete(&mut self.task_stats, tgids);
    }

    fn histogram(&self) -> anyhow::Result<RunqHist> {
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

    /// `now_ns` is CLOCK_MONOTONIC, the programs' clock. Read after `read_tasks` so a slice
    /// is never in both: a switch between the two reads leaves a slice short for one
    /// reading, never counted twice (the charge it makes moves `charged_ns` up first).
    fn running(&self, now_ns: u64, procfs: &Path) -> anyhow::Result<Vec<Running>> {
        let per_cpu = self.cpu_slot.get(&0, 0).context("reading map CPU_SLOT")?;
        Ok(per_cpu
            .iter()
            .filter(|s| s.tid != 0 && s.switched_in_ns != 0 && s.switched_in_ns < now_ns)
            .map(|s| Running {
                tgid: s.tgid,
                tid: s.tid,
                ns: self
                    .uncharged_runtime(s.tid, procfs)
                    .unwrap_or(now_ns - s.switched_in_ns),
            })
            .collect())
    }

    fn runq_start_entries(&self) -> usize {
        self.runq_start_count.get(&self.runq_start) as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thread_runtime_is_schedstat_first_field() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("12")).unwrap();
        std::fs::write(dir.path().join("12/schedstat"), "1234567 89 10\n").unwrap();
        assert_eq!(thread_runtime(dir.path(), 12), Some(1_234_567));
        assert_eq!(thread_runtime(dir.path(), 13), None);
        std::fs::create_dir_all(dir.path().join("14")).unwrap();
        std::fs::write(dir.path().join("14/schedstat"), "x 1 2\n").unwrap();
        assert_eq!(thread_runtime(dir.path(), 14), None);
    }

    /// The running kernel's: a thread that spins has a runtime that grows while it runs.
    #[test]
    fn thread_runtime_of_this_thread_grows_while_it_runs() {
        // SAFETY: gettid has no preconditions.
        let tid = unsafe { libc::gettid() } as u32;
        let procfs = Path::new("/proc");
        let Some(before) = thread_runtime(procfs, tid) else {
            return; // a kernel without CONFIG_SCHED_INFO
        };
        // Spin until it has grown by a millisecond; only a runtime that never grows fails.
        let start = std::time::Instant::now();
        let mut after = before;
        while after < before + 1_000_000 && start.elapsed() < std::time::Duration::from_secs(10) {
            after = thread_runtime(procfs, tid).unwrap();
        }
        assert!(after >= before + 1_000_000, "{before} -> {after}");
    }
}
