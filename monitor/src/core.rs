//! The daemon's state: the loaded kernel programs, the process table and the collectors that
//! read them. The refresher thread (`snapshot`) owns it, refreshes it and reads it into the
//! snapshots every reader is served from.

use std::{
    os::fd::OwnedFd,
    path::PathBuf,
    sync::OnceLock,
    time::{Duration, Instant},
};

use anyhow::Context as _;
use aya::{Btf, Ebpf, EbpfLoader};
use monitor_common::{
    block::{DiskKey, DiskStats},
    event::ProcEventKind,
    health::{
        BLOCK_REQUESTS_INSERT_FAILED, BLOCK_TASKS_INSERT_FAILED, DISK_STATS_INSERT_FAILED,
        HEALTH_COUNTERS, PROC_EVENTS_LOST, RUNQ_START_INSERT_FAILED, TASK_STATS_INSERT_FAILED,
    },
    maps,
    sched::RunqHist,
};
use prometheus::proto::MetricFamily;

use crate::{
    api::processes::{ProcessList, ProcessRow},
    audit::kernel::{self as audit_kernel, AuditMaps, Globals, KernelSetup, OOM_PROBE},
    block::kernel::{self as block, BlockMaps, RwbsOffset},
    bpf::{
        attach::{attach_all, detach_all, AttachOptions, Attached, Probe},
        health::{HealthCounters, MapStat, Misses},
        is_permission_error, tracefs, OBJECT,
    },
    collectors::{self, Collector, View},
    metrics::ns_to_seconds,
    net::{
        kernel::{NetMaps, NetSnapshot},
        layout::Layout as NetLayout,
    },
    process::{budget::Export, counters::Counters, identity::comm_str, table::ProcessTable},
    sched::kernel::{SchedMaps, PROBES},
    snapshot::{Outcome, Snapshot},
};

/// The kernel side as loaded: programs, each collector's maps (or why it is off), and which
/// hook serves each measure.
pub struct Kernel {
    pub ebpf: Option<Ebpf>,
    pub sched: Result<SchedMaps, String>,
    pub block: Result<BlockMaps, String>,
    pub net: Result<NetMaps, String>,
    pub health: Option<HealthCounters>,
    /// What each program dropped, by reason.
    pub misses: Option<Misses>,
    pub hooks: Vec<(&'static str, Attached)>,
    /// Keeps the kernel counting program run time while held (`--bpf.stats`).
    stats: Option<OwnedFd>,
    /// The audit programs' maps, until the audit log's reader takes them.
    audit: Option<AuditMaps>,
}

pub struct KernelOptions {
    pub load: bool,
    pub sched: bool,
    pub block: bool,
    pub net: bool,
    /// sysfs mount point, where partitions are matched to their disks.
    pub sysfs: PathBuf,
    pub bpf_stats: bool,
    pub attach: AttachOptions,
    /// Attach the audit programs (`--audit.file`).
    pub audit: Option<KernelSetup>,
}

impl Kernel {
    /// Whether this daemon holds BPF run-time stats on (the sysctl does not show it).
    pub fn holds_stats(&self) -> bool {
        self.stats.is_some()
    }

    /// Loads the object and attaches the enabled collectors' programs. A collector whose
    /// programs cannot attach is off (the reason kept for its success metric); missing
    /// privileges are fatal, as nothing could work without them.
    pub fn load(opts: &KernelOptions) -> anyhow::Result<Self> {
        fn off<T>(why: &str) -> Result<T, String> {
            Err(why.to_string())
        }
        if !opts.load {
            return Ok(Self {
                ebpf: None,
                sched: off("collector disabled"),
                block: off("collector disabled"),
                net: off("collector disabled"),
                health: None,
                misses: None,
                hooks: Vec::new(),
                stats: None,
                audit: None,
            });
        }
        raise_memlock();
        // Before loading: the programs' record layouts are read from tracefs (classic
        // tracepoints attach through it too). Reported after the load, so a daemon without
        // privileges says only that.
        let mounted = tracefs::ensure_mounted();
        let tracefs_root = match &mounted {
            Ok((root, _)) => root.clone(),
            Err(_) => PathBuf::from(tracefs::MOUNTS[0]),
        };
        let globals = Globals::read(&tracefs_root, opts.audit.as_ref())?;
        // Parsed once, for the loader's relocations and for the tp_btf hooks: the kernel's
        // BTF is megabytes, and each parse peaks at tens of MiB.
        let btf = match Btf::from_sys_fs() {
            Ok(b) => Some(b),
            Err(e) => {
                tracing::warn!(error = %e, "no kernel BTF; tp_btf hooks fall back to classic tracepoints");
                None
            }
        };
        let mut loader = EbpfLoader::new();
        loader.btf(btf.as_ref());
        globals.apply(&mut loader);
        // Opened once for both families' struct offsets (read as a file before 6.16, where
        // it cannot be mapped).
        let vmlinux = std::path::Path::new("/sys/kernel/btf/vmlinux");
        let offsets_btf = crate::audit::layout::open_btf(vmlinux);
        let net_layout = NetLayout::read(&tracefs_root, vmlinux, &offsets_btf);
        net_layout.apply(&mut loader);
        let sched_layout = crate::sched::kernel::Layout::read(vmlinux, &offsets_btf);
        sched_layout.apply(&mut loader);
        drop(offsets_btf);
        // Without the offsets the typed scheduler programs cannot name tasks: their classic
        // fallbacks serve instead.
        let mut attach_opts = opts.attach.clone();
        if !sched_layout.complete() {
            attach_opts.fail.extend(
                crate::sched::kernel::TYPED_PROGRAMS
                    .iter()
                    .map(|p| p.to_string()),
            );
        }
        let rwbs = opts
            .block
            .then(|| RwbsOffset::read(&tracefs_root).map_err(|e| format!("{e:#}")));
        let mut block_off = None;
        match &rwbs {
            Some(Ok(o)) => o.set(&mut loader),
            Some(Err(why)) => block_off = Some(why.clone()),
            None => {}
        }
        let mut ebpf =
            match loader.load(OBJECT) {
                Ok(e) => e,
                Err(e) if is_permission_error(&e) => return Err(anyhow::Error::new(e).context(
                    "loading the kernel programs was refused: run as root, or with CAP_BPF and \
                 CAP_PERFMON (root on kernels before 5.8)",
                )),
                Err(e) => return Err(anyhow::Error::new(e).context("loading the kernel programs")),
            };
        match mounted {
            Ok((root, true)) => tracing::info!(path = %root.display(), "mounted tracefs"),
            Ok((_, false)) => {}
            Err(e) => tracing::warn!(
                error = format!("{e:#}"),
                "tracefs is missing; classic tracepoints will not attach"
            ),
        }
        forward_kernel_log(&mut ebpf);
        let stats = if opts.bpf_stats {
            match aya::sys::enable_stats(aya::sys::Stats::RunTime) {
                Ok(fd) => Some(fd),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot enable kernel BPF stats (--bpf.stats); run counts stay at 0");
                    None
                }
            }
        } else {
            None
        };
        let mut hooks = Vec::new();
        let mut attacher = Attacher {
            ebpf: &mut ebpf,
            btf: btf.as_ref(),
            opts: &attach_opts,
            hooks: &mut hooks,
        };
        let sched = if opts.sched {
            attacher
                .collector("sched", |a| a.attach(PROBES))?
                .and_then(|()| SchedMaps::take(attacher.ebpf).map_err(|e| format!("{e:#}")))
        } else {
            off("collector disabled")
        };
        if sched.is_ok() {
            // Optional: a kernel without oom:mark_victim keeps the rest of the collector.
            match attacher.attach(OOM_PROBE) {
                Ok(a) => attacher.record("sched", a),
                Err(e) => tracing::warn!(
                    collector = "sched",
                    error = format!("{e:#}"),
                    "OOM kills are not counted on this kernel"
                ),
            }
        }
        let block = match (opts.block, block_off) {
            (false, _) => off("collector disabled"),
            (true, Some(why)) => {
                tracing::error!(collector = "block", error = %why, "collector disabled: its programs cannot be set up");
                Err(why)
            }
            (true, None) => attacher
                .collector("block", |a| {
                    let submitter = a.attach(&[block::SUBMITTER])?;
                    let mut rest = block::REQUESTS.to_vec();
                    if submitter.first().map(|s| s.program) == Some("block_owner_bio_queue") {
                        rest.insert(0, block::SPLIT);
                    }
                    let mut all = submitter;
                    match a.attach(&rest) {
                        Ok(more) => all.extend(more),
                        Err(e) => {
                            a.detach(&all);
                            return Err(e);
                        }
                    }
                    Ok(all)
                })?
                .and_then(|()| {
                    let bio = hooks_use(attacher.hooks, "block_owner_bio_queue");
                    let mut maps =
                        BlockMaps::take(attacher.ebpf, bio).map_err(|e| format!("{e:#}"))?;
                    if let Err(e) = maps.sync_partitions(&opts.sysfs) {
                        tracing::warn!(
                            error = format!("{e:#}"),
                            "I/O to partitions is charged to no process"
                        );
                    }
                    Ok(maps)
                }),
        };
        let net = if opts.net {
            attacher
                .collector("network", |a| crate::net::kernel::attach(|p| a.attach(p)))?
                .and_then(|()| {
                    crate::net::kernel::log_exactness(attacher.hooks);
                    NetMaps::take(attacher.ebpf).map_err(|e| format!("{e:#}"))
                })
        } else {
            off("collector disabled")
        };
        let audit = match &opts.audit {
            None => None,
            Some(_) => {
                let (maps, attached) =
                    audit_kernel::attach(attacher.ebpf, attacher.btf, attacher.opts)
                        .context("attaching the audit programs (--audit.file)")?;
                attacher.record("audit", attached);
                Some(maps)
            }
        };
        let health = match HealthCounters::take(&mut ebpf) {
            Ok(h) => Some(h),
            Err(e) => {
                tracing::warn!(
                    error = format!("{e:#}"),
                    "kernel-side failure counts are unavailable"
                );
                None
            }
        };
        let misses = match Misses::take(&mut ebpf) {
            Ok(m) => Some(m),
            Err(e) => {
                tracing::warn!(
                    error = format!("{e:#}"),
                    "kernel-side miss counts are unavailable"
                );
                None
            }
        };
        Ok(Self {
            ebpf: Some(ebpf),
            sched,
            block,
            net,
            health,
            misses,
            hooks,
            stats,
            audit,
        })
    }
}

/// Whether `program` serves one of the measures attached so far.
fn hooks_use(hooks: &[(&'static str, Attached)], program: &str) -> bool {
    hooks.iter().any(|(_, a)| a.program == program)
}

/// Attaches collectors' probes, recording which hook serves each measure.
struct Attacher<'a> {
    ebpf: &'a mut Ebpf,
    btf: Option<&'a Btf>,
    opts: &'a AttachOptions,
    hooks: &'a mut Vec<(&'static str, Attached)>,
}

impl Attacher<'_> {
    fn attach(&mut self, probes: &[Probe]) -> anyhow::Result<Vec<Attached>> {
        attach_all(self.ebpf, self.btf, probes, self.opts)
    }

    fn detach(&mut self, attached: &[Attached]) {
        detach_all(self.ebpf, attached);
    }

    /// Logs and keeps which hook serves each of collector `name`'s measures.
    fn record(&mut self, name: &'static str, attached: Vec<Attached>) {
        for a in &attached {
            tracing::info!(collector = name, measure = a.measure, program = a.program, hook = %a.hook, "attached");
        }
        self.hooks.extend(attached.into_iter().map(|a| (name, a)));
    }

    /// Runs `f` to attach collector `name`'s programs. Missing privileges are fatal (the
    /// outer error); any other failure turns the collector off (the inner one, its reason).
    fn collector(
        &mut self,
        name: &'static str,
        f: impl FnOnce(&mut Self) -> anyhow::Result<Vec<Attached>>,
    ) -> anyhow::Result<Result<(), String>> {
        match f(self) {
            Ok(attached) => {
                self.record(name, attached);
                Ok(Ok(()))
            }
            Err(e) if is_permission_error(e.as_ref()) => Err(e.context(
                "attaching the kernel programs was refused: run as root, or with CAP_BPF and \
                 CAP_PERFMON",
            )),
            Err(e) => {
                let why = format!("{e:#}");
                tracing::error!(collector = name, error = %why, "collector disabled: its programs cannot attach");
                Ok(Err(why))
            }
        }
    }
}

/// Forwards the kernel programs' aya-log records into the daemon's log, from a thread that
/// also keeps the log map open (dropping it would make later program loads fail). It reads
/// the ring buffer's memory every second rather than sleeping in poll(2) on it: a process
/// exiting while a thread polls a BPF ring buffer locked up a 6.1 kernel in the VM tests.
fn forward_kernel_log(ebpf: &mut Ebpf) {
    let mut logger = match aya_log::EbpfLogger::init(ebpf) {
        Ok(l) => l,
        Err(e) => {
            tracing::debug!(error = %e, "no kernel-side log");
            return;
        }
    };
    let spawned = std::thread::Builder::new()
        .name("kernel-log".into())
        .spawn(move || loop {
            logger.flush();
            std::thread::sleep(Duration::from_secs(1));
        });
    if let Err(e) = spawned {
        tracing::warn!(error = %e, "cannot start the kernel log reader");
    }
}

/// Before 5.11 BPF memory counted against RLIMIT_MEMLOCK; later kernels ignore it. Raising
/// it needs CAP_SYS_RESOURCE, which is not always granted: failing is fine on new kernels.
fn raise_memlock() {
    let r = libc::rlimit {
        rlim_cur: libc::RLIM_INFINITY,
        rlim_max: libc::RLIM_INFINITY,
    };
    // SAFETY: a valid rlimit struct for the duration of the call.
    if unsafe { libc::setrlimit(libc::RLIMIT_MEMLOCK, &r) } != 0 {
        tracing::debug!(error = %std::io::Error::last_os_error(), "cannot raise RLIMIT_MEMLOCK");
    }
}

/// The block figures as of the last refresh: per disk (`dev_t`) and operation.
pub struct BlockSnapshot {
    pub disks: Vec<(DiskKey, DiskStats)>,
    pub maps: Vec<MapStat>,
}

impl BlockSnapshot {
    fn read(maps: &BlockMaps, health: &[u64; HEALTH_COUNTERS as usize]) -> anyhow::Result<Self> {
        let disks = maps.read()?;
        Ok(Self {
            maps: vec![
                MapStat {
                    name: maps::DISK_STATS,
                    entries: Some(disks.len() as u64),
                    capacity: maps::DISK_STATS_CAPACITY.into(),
                    update_failures: health[DISK_STATS_INSERT_FAILED as usize],
                },
                MapStat {
                    name: maps::BLOCK_TASKS,
                    entries: Some(maps.task_entries()),
                    capacity: maps::BLOCK_TASKS_CAPACITY.into(),
                    update_failures: health[BLOCK_TASKS_INSERT_FAILED as usize],
                },
                MapStat {
                    name: maps::BLOCK_REQUESTS,
                    entries: Some(maps.request_entries()),
                    capacity: maps::BLOCK_REQUESTS_CAPACITY.into(),
                    update_failures: health[BLOCK_REQUESTS_INSERT_FAILED as usize],
                },
            ],
            disks,
        })
    }
}

/// The scheduler figures as of the last refresh.
pub struct SchedSnapshot {
    pub export: Export,
    pub hist: RunqHist,
    pub maps: Vec<MapStat>,
    pub processes: usize,
    pub exits_without_event: u64,
}

pub struct Core {
    procfs: PathBuf,
    sysfs: PathBuf,
    kernel: Kernel,
    table: ProcessTable,
    sched: Result<SchedSnapshot, String>,
    block: Result<BlockSnapshot, String>,
    net: Result<NetSnapshot, String>,
    unattributed: crate::net::unattributed::Unattributed,
    /// The live pids, listed from procfs every few seconds and kept by events between.
    live: crate::process::live::LiveSet,
    /// The collectors that read the refreshed state; those of host files run at scrape time
    /// (`scrape::Scrape`).
    collectors: Vec<Box<dyn Collector>>,
    /// When the kernel counters were last read, on CLOCK_MONOTONIC, in seconds, for readers
    /// in other processes.
    read_at: f64,
    /// Families from outside the collectors that read the process table (watched services),
    /// added to every snapshot.
    sources: Vec<Source>,
    /// Testing aid (`--debug.refresh-delay`): each refresh sleeps this long halfway through.
    debug_delay: Duration,
}

/// Adds families to a snapshot; sees the process table (watched services read it).
pub type Source = Box<dyn FnMut(&ProcessTable, &mut Vec<MetricFamily>) + Send>;

impl Core {
    pub fn new(
        procfs: PathBuf,
        sysfs: PathBuf,
        kernel: Kernel,
        table: ProcessTable,
        collectors: Vec<Box<dyn Collector>>,
    ) -> Self {
        let sched = match &kernel.sched {
            Ok(_) => Err("not read yet".to_string()),
            Err(e) => Err(e.clone()),
        };
        let block = match &kernel.block {
            Ok(_) => Err("not read yet".to_string()),
            Err(e) => Err(e.clone()),
        };
        let net = match &kernel.net {
            Ok(_) => Err("not read yet".to_string()),
            Err(e) => Err(e.clone()),
        };
        Self {
            procfs,
            sysfs,
            kernel,
            table,
            sched,
            block,
            net,
            unattributed: Default::default(),
            live: Default::default(),
            collectors,
            read_at: 0.0,
            sources: Vec::new(),
            debug_delay: Duration::ZERO,
        }
    }

    pub fn set_debug_delay(&mut self, d: Duration) {
        self.debug_delay = d;
    }

    pub fn add_source(&mut self, source: Source) {
        self.sources.push(source);
    }

    /// The audit programs' maps, for the audit log's reader (once).
    pub fn take_audit_maps(&mut self) -> Option<AuditMaps> {
        self.kernel.audit.take()
    }

    /// Reads the kernel maps and /proc into the state.
    fn refresh(&mut self) {
        let now = Instant::now();
        self.read_at = monotonic_seconds();
        let health = self.kernel.health.as_ref().map(|h| h.read());
        let health = match health {
            Some(Ok(h)) => h,
            Some(Err(e)) => {
                tracing::warn!(
                    error = format!("{e:#}"),
                    "reading kernel-side failure counts"
                );
                Default::default()
            }
            None => Default::default(),
        };
        if let Ok(maps) = &mut self.kernel.block {
            if let Err(e) = maps.sync_partitions(&self.sysfs) {
                tracing::debug!(error = format!("{e:#}"), "following partitions");
            }
            self.block = BlockSnapshot::read(maps, &health).map_err(|e| {
                let why = format!("{e:#}");
                tracing::warn!(collector = "block", error = %why, "refresh failed");
                why
            });
        }
        if !self.debug_delay.is_zero() {
            std::thread::sleep(self.debug_delay);
        }
        // A full listing of procfs when one is due; between listings the set follows the
        // kernel's exec and exit events and the processes the maps show (`process::live`).
        match self.live.current(self.table.identity_reader(), now, false) {
            Ok(_) => {}
            Err(e) => {
                let why = format!(
                    "listing {}: {e}",
                    self.table.identity_reader().root().display()
                );
                tracing::warn!(error = %why, "refresh failed");
                self.sched = Err(why);
                return;
            }
        }
        let Ok(maps) = self.kernel.sched.as_mut() else {
            let live = self.live.pids().clone();
            self.table.update([], &live, now);
            return;
        };
        let table = &mut self.table;
        let net = &mut self.kernel.net;
        let block_maps = &mut self.kernel.block;
        let live_set = &mut self.live;
        maps.drain_events(|ev| match ProcEventKind::from_u32(ev.kind) {
            Some(ProcEventKind::Exec) => {
                live_set.seen([ev.tgid]);
                table.on_exec(
                    ev.tgid,
                    &comm_str(&ev.comm),
                    &comm_str(&ev.prev_comm),
                    Counters::from(ev.counters),
                );
            }
            Some(ProcEventKind::Exit) => {
                live_set.exited(ev.tgid);
                table.on_exit(ev.tgid, &comm_str(&ev.comm));
            }
            Some(ProcEventKind::OomKill) => table.on_oom_kill(ev.tgid, &comm_str(&ev.comm)),
            None => tracing::debug!(kind = ev.kind, "unknown process event"),
        });
        let procfs = &self.procfs;
        let read_at = &mut self.read_at;
        self.sched = (|| -> anyhow::Result<SchedSnapshot> {
            let mut entries = maps.read_tasks()?;
            // Processes first seen since the last listing of procfs are alive until their
            // exit event.
            live_set.seen(entries.iter().map(|e| e.tgid).filter(|&t| table.may_run(t)));
            let live = live_set.pids();
            // The time base of rates is when the counters are read, not when the refresh
            // began: listing /proc first can take a good part of a second on a busy host.
            let now_ns = monotonic_ns();
            *read_at = now_ns as f64 / 1e9;
            let running = maps.running(now_ns)?;
            crate::sched::running::add_slices(
                &mut entries,
                &running,
                |tid| crate::sched::running::tgid_of(procfs, tid),
                |t| live.contains(&t) && table.may_run(t),
            );
            if let Ok(n) = net.as_mut() {
                n.merge(&mut entries, live, |t| table.knows(t))?;
            }
            if let Ok(b) = block_maps.as_mut() {
                b.merge(&mut entries, live, |t| table.knows(t))?;
            }
            let task_entries = entries.len();
            let delete = table.update(entries, live, now);
            maps.remove_tasks(&delete);
            if let Ok(n) = net.as_mut() {
                n.remove(&delete);
            }
            if let Ok(b) = block_maps.as_mut() {
                b.remove_tasks(&delete);
            }
            Ok(SchedSnapshot {
                export: table.export(now),
                hist: maps.histogram()?,
                maps: vec![
                    MapStat {
                        name: maps::TASK_STATS,
                        entries: Some((task_entries - delete.len().min(task_entries)) as u64),
                        capacity: maps::TASK_STATS_CAPACITY.into(),
                        update_failures: health[TASK_STATS_INSERT_FAILED as usize],
                    },
                    MapStat {
                        name: maps::RUNQ_START,
                        entries: Some(maps.runq_start_entries() as u64),
                        capacity: maps::RUNQ_START_CAPACITY.into(),
                        update_failures: health[RUNQ_START_INSERT_FAILED as usize],
                    },
                    MapStat {
                        name: maps::PROC_EVENTS,
                        entries: None,
                        capacity: maps::PROC_EVENTS_BYTES.into(),
                        update_failures: health[PROC_EVENTS_LOST as usize],
                    },
                ],
                processes: table.processes().count(),
                exits_without_event: table.exits_without_event,
            })
        })()
        .map_err(|e| {
            let why = format!("{e:#}");
            tracing::warn!(collector = "sched", error = %why, "refresh failed");
            why
        });
        if let (Ok(n), Ok(s)) = (&self.kernel.net, &self.sched) {
            let sockets = n.sockets();
            let unattributed = crate::net::netdev::read(&self.procfs)
                .map(|ifaces| {
                    let procs = s.export.rows().iter().fold((0, 0), |acc, (_, c)| {
                        let (tx, rx) = crate::net::counters::bytes(&c.net);
                        (acc.0 + rx, acc.1 + tx)
                    });
                    self.unattributed.observe(now, &ifaces, procs);
                    self.unattributed.total()
                })
                .map_err(|e| tracing::debug!(error = format!("{e:#}"), "interfaces"))
                .ok();
            self.net = Ok(NetSnapshot {
                unattributed,
                maps: n.map_stats(&sockets, &health),
                sockets,
                groups: self
                    .table
                    .processes()
                    .map(|p| (p.identity.pid, p.group.clone()))
                    .collect(),
            });
        }
    }

    /// Refreshes, then reads the state into snapshot number `seq`: the collectors of the
    /// refreshed state run here, once per refresh, not once per scrape. A failing collector
    /// is reported, never fatal.
    pub fn read(&mut self, seq: u64) -> Snapshot {
        let started = Instant::now();
        self.refresh();
        let view = View {
            procfs: &self.procfs,
            kernel: &self.kernel,
            sched: &self.sched,
            block: &self.block,
            net: &self.net,
        };
        let mut families = Vec::new();
        let mut outcomes = Vec::new();
        for c in &mut self.collectors {
            let start = Instant::now();
            let ok = match c.collect(&view, &mut families) {
                Ok(()) => true,
                Err(e) => {
                    tracing::debug!(
                        collector = c.name(),
                        error = format!("{e:#}"),
                        "collector failed"
                    );
                    false
                }
            };
            outcomes.push(Outcome {
                collector: c.name(),
                ok,
                seconds: start.elapsed().as_secs_f64(),
            });
        }
        for source in &mut self.sources {
            source(&self.table, &mut families);
        }
        // The text encoder rejects a family without samples (a collector with nothing to
        // report yet), which would fail the whole scrape.
        families.retain(|f| !f.get_metric().is_empty());
        let processes = self.process_list();
        Snapshot {
            seq,
            started,
            took: started.elapsed(),
            families,
            text: OnceLock::new(),
            outcomes,
            processes,
            runq: self.sched.as_ref().ok().map(|s| s.hist),
            unattributed: self.net.as_ref().ok().and_then(|n| n.unattributed),
        }
    }

    /// The process list for `/api/v1/processes`, sorted by pid, without the memory figures
    /// (`ProcessList::read_memory`).
    fn process_list(&self) -> ProcessList {
        let mut processes: Vec<ProcessRow> = self
            .table
            .processes()
            .map(|p| ProcessRow {
                pid: p.identity.pid,
                ppid: p.identity.ppid,
                comm: p.identity.comm.clone(),
                exe: p.identity.exe.clone(),
                cmdline: p.identity.cmdline.clone(),
                uid: p.identity.uid,
                group: p.group.clone(),
                cpu_seconds_total: ns_to_seconds(p.last.cpu_ns),
                runqueue_wait_seconds_total: ns_to_seconds(p.last.runq_wait_ns),
                voluntary_switches_total: p.last.voluntary_switches,
                involuntary_switches_total: p.last.involuntary_switches,
                rss_bytes: None,
                swap_bytes: None,
                disk_read_bytes_total: Some(p.last.disk.read_bytes),
                disk_write_bytes_total: Some(p.last.disk.write_bytes),
                disk_reads_total: Some(p.last.disk.reads),
                disk_writes_total: Some(p.last.disk.writes),
                disk_latency_seconds_total: Some(ns_to_seconds(
                    p.last.disk.read_ns + p.last.disk.write_ns,
                )),
                net_tx_bytes_total: Some(crate::net::counters::bytes(&p.last.net).0),
                net_rx_bytes_total: Some(crate::net::counters::bytes(&p.last.net).1),
                net_tx_packets_total: Some(crate::net::counters::packets(&p.last.net).0),
                net_rx_packets_total: Some(crate::net::counters::packets(&p.last.net).1),
            })
            .collect();
        processes.sort_by_key(|p| p.pid);
        ProcessList {
            measured: self.kernel.sched.is_ok(),
            read_at_monotonic_seconds: Some(self.read_at),
            processes,
        }
    }
}

/// CLOCK_MONOTONIC in seconds: the clock of `bpf_ktime_get_ns`, shared by every process on
/// the host and immune to wall-clock steps.
pub fn monotonic_seconds() -> f64 {
    monotonic_ns() as f64 / 1e9
}

/// CLOCK_MONOTONIC in nanoseconds.
pub fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid timespec for the duration of the call; CLOCK_MONOTONIC always exists.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

pub fn build_collectors(
    enabled: &[&'static str],
    config: &collectors::Config,
) -> Vec<Box<dyn Collector>> {
    enabled
        .iter()
        .filter_map(|n| collectors::spec(n))
        .map(|s| (s.build)(config))
        .collect()
}
