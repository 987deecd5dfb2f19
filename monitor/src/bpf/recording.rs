//! Map contents written down, read by the families in place of the kernel's maps: the
//! golden test (`golden`) runs the whole refresher on them without privileges. The types are
//! the maps' own values (`monitor-common`); keys and names are written as people read them.

use std::{collections::HashSet, path::Path};

use monitor_common::{
    block::{BlockTaskCounters, DiskKey, DiskStats, OP_NAMES},
    event::{ProcEvent, ProcEventKind},
    net::NetCounters,
    sched::{RunqHist, TaskCounters},
    service::{kind, ServiceKey, ServiceStats},
};
use serde::Deserialize;

use crate::{
    block::kernel::BlockSource,
    net::kernel::{NetSource, Sockets},
    process::{counters::Counters, family, table::KernelEntry},
    sched::kernel::{Running, SchedSource},
    service::kernel::ServiceSource,
};

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Recording {
    /// `TASK_STATS`.
    pub tasks: Vec<Task>,
    /// `CPU_SLOT`, as the slices in progress when it was read.
    #[serde(default)]
    pub running: Vec<Running>,
    /// `RUNQ_HIST`, summed over CPUs.
    pub runq_hist: RunqHist,
    /// `PROC_EVENTS`, in order.
    #[serde(default)]
    pub events: Vec<Event>,
    /// `DISK_STATS`.
    #[serde(default)]
    pub disks: Vec<Disk>,
    /// `BLOCK_TASKS`, by tgid.
    #[serde(default)]
    pub block_tasks: Vec<(u32, BlockTaskCounters)>,
    /// `NET_STATS`, by tgid.
    #[serde(default)]
    pub net_tasks: Vec<(u32, NetCounters)>,
    /// `TCP_SOCKS`: (owner, state) each.
    #[serde(default)]
    pub connections: Vec<(u32, u32)>,
    /// `TCP_LISTENERS`: the owner of each.
    #[serde(default)]
    pub listeners: Vec<u32>,
    /// `SVC_STATS`.
    #[serde(default)]
    pub services: Vec<Service>,
    /// The cgroup2 tree the tasks' and events' `cgroup` paths are in, relative to the
    /// recording's directory: their ids are its directories' inode numbers, as the kernel's
    /// are.
    #[serde(default)]
    pub cgroup_root: Option<std::path::PathBuf>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Service {
    pub tgid: u32,
    pub port: u16,
    /// inbound, outbound or dns.
    pub kind: String,
    pub stats: ServiceStats,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Task {
    pub tgid: u32,
    pub comm: String,
    pub counters: TaskCounters,
    /// Its cgroup's path under `cgroup_root`; none: id 0.
    #[serde(default)]
    pub cgroup: String,
    #[serde(skip)]
    pub cgroup_id: u64,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Event {
    /// exec, exit or oom_kill.
    pub kind: String,
    pub tgid: u32,
    pub comm: String,
    #[serde(default)]
    pub prev_comm: String,
    #[serde(default)]
    pub counters: TaskCounters,
    /// As `Task::cgroup`.
    #[serde(default)]
    pub cgroup: String,
    #[serde(skip)]
    pub cgroup_id: u64,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Disk {
    /// "MAJ:MIN".
    pub dev: String,
    /// One of `OP_NAMES`.
    pub op: String,
    pub stats: DiskStats,
}

impl Recording {
    pub fn read(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("reading {}: {e}", path.display()))?;
        let mut r: Self =
            serde_json::from_str(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        let root = path
            .parent()
            .unwrap_or(Path::new("."))
            .join(r.cgroup_root.clone().unwrap_or_default());
        let id = |cgroup: &str| -> anyhow::Result<u64> {
            if cgroup.is_empty() {
                return Ok(0);
            }
            let dir = root.join(cgroup.trim_start_matches('/'));
            let meta = std::fs::metadata(&dir).map_err(|e| {
                anyhow::anyhow!("{}: cgroup {}: {e}", path.display(), dir.display())
            })?;
            Ok(std::os::unix::fs::MetadataExt::ino(&meta))
        };
        for t in &mut r.tasks {
            t.cgroup_id = id(&t.cgroup)?;
        }
        for e in &mut r.events {
            e.cgroup_id = id(&e.cgroup)?;
        }
        Ok(r)
    }
}

/// A family's per-thread-group map read into the entries, as `bpf::per_task::PerTaskMap`
/// does it: the stale entries go.
fn merge<V: Copy>(
    tasks: &mut Vec<(u32, V)>,
    entries: &mut Vec<KernelEntry>,
    live: &HashSet<u32>,
    knows: &dyn Fn(u32) -> bool,
    set: impl Fn(&mut Counters, V),
) {
    let stale = family::merge(entries, tasks.clone(), live, knows, set);
    remove(tasks, &stale);
}

fn remove<V>(tasks: &mut Vec<(u32, V)>, tgids: &[u32]) {
    tasks.retain(|(t, _)| !tgids.contains(t));
}

fn comm(s: &str) -> [u8; 16] {
    let mut c = [0; 16];
    for (d, b) in c.iter_mut().zip(s.bytes().take(15)) {
        *d = b;
    }
    c
}

impl SchedSource for Recording {
    fn drain_events(&mut self, f: &mut dyn FnMut(&ProcEvent)) {
        for e in std::mem::take(&mut self.events) {
            let kind = match e.kind.as_str() {
                "exec" => ProcEventKind::Exec,
                "exit" => ProcEventKind::Exit,
                "oom_kill" => ProcEventKind::OomKill,
                other => {
                    tracing::warn!(kind = other, "unknown recorded event");
                    continue;
                }
            };
            f(&ProcEvent {
                kind: kind as u32,
                tgid: e.tgid,
                ts_ns: 0,
                comm: comm(&e.comm),
                prev_comm: comm(&e.prev_comm),
                counters: e.counters,
                cgroup_id: e.cgroup_id,
            });
        }
    }

    fn read_tasks(&self, out: &mut Vec<KernelEntry>) -> anyhow::Result<()> {
        out.extend(self.tasks.iter().map(|t| KernelEntry {
            tgid: t.tgid,
            counters: Counters::from(t.counters),
            comm: comm(&t.comm),
            cgroup_id: t.cgroup_id,
        }));
        Ok(())
    }

    fn remove_tasks(&mut self, tgids: &[u32]) {
        self.tasks.retain(|t| !tgids.contains(&t.tgid));
    }

    fn histogram(&self) -> anyhow::Result<RunqHist> {
        Ok(self.runq_hist)
    }

    fn running(&self, _now_ns: u64, _procfs: &Path) -> anyhow::Result<Vec<Running>> {
        Ok(self.running.clone())
    }

    fn runq_start_entries(&self) -> usize {
        0
    }
}

impl BlockSource for Recording {
    fn sync_partitions(&mut self, _sysfs: &Path) -> anyhow::Result<()> {
        Ok(())
    }

    fn read(&self) -> anyhow::Result<Vec<(DiskKey, DiskStats)>> {
        self.disks
            .iter()
            .map(|d| {
                let (major, minor) = d
                    .dev
                    .split_once(':')
                    .and_then(|(a, b)| Some((a.parse::<u32>().ok()?, b.parse::<u32>().ok()?)))
                    .ok_or_else(|| anyhow::anyhow!("disk {:?}: not MAJ:MIN", d.dev))?;
                let op = OP_NAMES
                    .iter()
                    .position(|o| *o == d.op)
                    .ok_or_else(|| anyhow::anyhow!("disk {}: no operation {:?}", d.dev, d.op))?;
                Ok((
                    DiskKey {
                        dev: major << 20 | minor,
                        op: op as u32,
                    },
                    d.stats,
                ))
            })
            .collect()
    }

    fn merge(
        &mut self,
        entries: &mut Vec<KernelEntry>,
        live: &HashSet<u32>,
        knows: &dyn Fn(u32) -> bool,
    ) -> anyhow::Result<()> {
        merge(&mut self.block_tasks, entries, live, knows, |c, v| {
            c.disk = v
        });
        Ok(())
    }

    fn remove_tasks(&mut self, tgids: &[u32]) {
        remove(&mut self.block_tasks, tgids);
    }

    fn task_entries(&self) -> u64 {
        self.block_tasks.len() as u64
    }

    fn request_entries(&self) -> u64 {
        0
    }
}

impl NetSource for Recording {
    fn merge(
        &mut self,
        entries: &mut Vec<KernelEntry>,
        live: &HashSet<u32>,
        knows: &dyn Fn(u32) -> bool,
    ) -> anyhow::Result<()> {
        merge(&mut self.net_tasks, entries, live, knows, |c, v| c.net = v);
        Ok(())
    }

    fn remove(&mut self, tgids: &[u32]) {
        remove(&mut self.net_tasks, tgids);
    }

    fn stats_entries(&self) -> u64 {
        self.net_tasks.len() as u64
    }

    fn sockets(&self) -> Sockets {
        Sockets {
            connections: self.connections.clone(),
            listeners: self.listeners.clone(),
        }
    }
}

impl ServiceSource for Recording {
    fn entries(&mut self) -> anyhow::Result<Vec<(ServiceKey, ServiceStats)>> {
        self.services
            .iter()
            .map(|s| {
                let k = match s.kind.as_str() {
                    "inbound" => kind::INBOUND,
                    "outbound" => kind::OUTBOUND,
                    "dns" => kind::DNS,
                    other => anyhow::bail!("service kind {other:?}: inbound, outbound or dns"),
                };
                let key = ServiceKey {
                    tgid: s.tgid,
                    port: s.port,
                    kind: k,
                    _pad: 0,
                };
                Ok((key, s.stats))
            })
            .collect()
    }

    fn remove(&mut self, key: &ServiceKey) {
        self.services
            .retain(|s| s.tgid != key.tgid || s.port != key.port);
    }
}
