//! The daemon's state: the loaded kernel programs, the kernel families, the process table
//! and the collectors that read them. The refresher thread (`snapshot`) owns it, refreshes
//! it and reads it into the snapshots every reader is served from. Nothing here names a
//! family: each is a `KernelFamily`, taken from the collector registry.

use std::{
    os::fd::OwnedFd,
    path::{Path, PathBuf},
    sync::OnceLock,
    time::{Duration, Instant},
};

use aya::{Btf, Ebpf, EbpfLoader};
use monitor_common::{event::ProcEventKind, health::PROC_EVENTS_LOST};
use prometheus::proto::MetricFamily;

use crate::{
    api::processes::{ProcessList, ProcessRow},
    bpf::{
        attach::{AttachOptions, Attached},
        family::{Attacher, KernelFamily, Prepare, Processes, Published, Refresh, Setup},
        health::{HealthCounters, Misses},
        is_permission_error, tracefs, OBJECT,
    },
    collectors::{Collector, View},
    process::{
        budget::Export,
        counters::Counters,
        identity::comm_str,
        live::{LiveSet, Walk},
        table::{KernelEntry, ProcessTable},
    },
    snapshot::{Outcome, Snapshot},
};

/// The kernel's BTF.
const VMLINUX: &str = "/sys/kernel/btf/vmlinux";

/// The kernel side as loaded: the object and which hook serves each measure.
pub struct Kernel {
    pub ebpf: Option<Ebpf>,
    pub health: Option<HealthCounters>,
    /// What each program dropped, by reason.
    pub misses: Option<Misses>,
    /// Which hook serves each measure, by family.
    pub hooks: Vec<(&'static str, Attached)>,
    /// Keeps the kernel counting program run time while held (`--bpf.stats`).
    stats: Option<OwnedFd>,
}

/// A family after loading: attached, or off and why (its collector reports failure).
pub struct Loaded {
    pub family: Box<dyn KernelFamily>,
    pub off: Option<String>,
}

/// How the object is loaded; the same for every family.
pub struct LoadOptions {
    /// Whether to load the object at all (a family, or a collector of the programs' health,
    /// is enabled).
    pub load: bool,
    pub bpf_stats: bool,
    /// Read no kernel BTF, as on a kernel without it (`--debug.no-btf`).
    pub no_btf: bool,
    pub attach: AttachOptions,
}

impl Kernel {
    /// Whether this daemon holds BPF run-time stats on (the sysctl does not show it).
    pub fn holds_stats(&self) -> bool {
        self.stats.is_some()
    }

    /// Loads the object and attaches each family's programs. A family whose programs
    /// cannot be set up or attached is off (the reason kept for its success metric), unless
    /// it is `required`; missing privileges are fatal, as nothing could work without them.
    pub fn load(
        families: Vec<Box<dyn KernelFamily>>,
        opts: &LoadOptions,
    ) -> anyhow::Result<(Self, Vec<Loaded>)> {
        let mut kernel = Self {
            ebpf: None,
            health: None,
            misses: None,
            hooks: Vec::new(),
            stats: None,
        };
        if !opts.load && families.is_empty() {
            return Ok((kernel, Vec::new()));
        }
        let LoadedObject {
            mut ebpf,
            btf,
            mut loaded,
            fail,
        } = load_object(families, opts.no_btf)?;
        for l in &loaded {
            if let Some(why) = &l.off {
                tracing::error!(collector = l.family.name(), error = %why, "collector disabled: its programs cannot be set up");
            }
        }
        forward_kernel_log(&mut ebpf);
        if opts.bpf_stats {
            match aya::sys::enable_stats(aya::sys::Stats::RunTime) {
                Ok(fd) => kernel.stats = Some(fd),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot enable kernel BPF stats (--bpf.stats); run counts stay at 0")
                }
            }
        }
        let mut attach_opts = opts.attach.clone();
        attach_opts.fail.extend(fail);
        for l in loaded.iter_mut().filter(|l| l.off.is_none()) {
            l.off = attach(&mut ebpf, btf.as_ref(), &attach_opts, &mut kernel.hooks, l)?;
        }
        kernel.health = HealthCounters::take(&mut ebpf)
            .map_err(|e| {
                tracing::warn!(
                    error = format!("{e:#}"),
                    "kernel-side failure counts are unavailable"
                )
            })
            .ok();
        kernel.misses = Misses::take(&mut ebpf)
            .map_err(|e| {
                tracing::warn!(
                    error = format!("{e:#}"),
                    "kernel-side miss counts are unavailable"
                )
            })
            .ok();
        kernel.ebpf = Some(ebpf);
        Ok((kernel, loaded))
    }
}

/// The object as `Kernel::load` loads it, before any program is: its maps made with the
/// globals the families set in `prepare` (`monitor bpf verify` loads it this way too, so
/// its figures are the daemon's).
pub struct LoadedObject {
    pub ebpf: Ebpf,
    /// The kernel's BTF for the tp_btf hooks (`sparse_btf`).
    pub btf: Option<Btf>,
    /// Each family, off if its `prepare` failed.
    pub loaded: Vec<Loaded>,
    /// Programs that must not attach on this kernel (`Setup::fail`).
    pub fail: Vec<String>,
}

/// Prepares the families and loads the object; missing privileges are an error that says so.
/// `no_btf`: read none of the kernel's BTF, as on a kernel built without it (for tests).
pub fn load_object(
    families: Vec<Box<dyn KernelFamily>>,
    no_btf: bool,
) -> anyhow::Result<LoadedObject> {
    raise_memlock();
    // Made first: aya's constructor parses the whole of the kernel's BTF, which is
    // dropped at once (the object has no CO-RE relocations), before anything else is
    // read, so that parse is the start-up's only peak.
    let mut setup = Setup::default();
    let mut loader = EbpfLoader::new();
    loader.btf(None);
    // Before loading: the programs' record layouts are read from tracefs (classic
    // tracepoints attach through it too). Reported after the load, so a daemon without
    // privileges says only that.
    let mounted = tracefs::ensure_mounted();
    let tracefs_root = match &mounted {
        Ok((root, _)) => root.clone(),
        Err(_) => PathBuf::from(tracefs::MOUNTS[0]),
    };
    // For the tp_btf hooks only, and only their typedefs (`sparse_btf`): the whole of
    // the kernel's BTF parsed by aya is tens of MiB at its peak.
    let btf = match read_btf(no_btf, || crate::bpf::sparse_btf::read(Path::new(VMLINUX))) {
        Ok(b) => Some(b),
        Err(e) => {
            tracing::warn!(
                error = format!("{e:#}"),
                "no kernel BTF; tp_btf hooks fall back to classic tracepoints"
            );
            None
        }
    };
    // Object-wide: the tracepoint record layouts several families' programs read.
    setup.global(
        monitor_common::audit::GLOBAL_FIELDS,
        &crate::audit::layout::trace_fields(&tracefs_root),
    );
    let loaded = prepare(families, &tracefs_root, &mut setup, no_btf)?;
    setup.apply(&mut loader);
    let ebpf = match loader.load(OBJECT) {
        Ok(e) => e,
        Err(e) if is_permission_error(&e) => {
            return Err(anyhow::Error::new(e).context(
                "loading the kernel programs was refused: run as root, or with CAP_BPF \
                     and CAP_PERFMON (root on kernels before 5.8)",
            ))
        }
        Err(e) => return Err(anyhow::Error::new(e).context("loading the kernel programs")),
    };
    drop(loader);
    match mounted {
        Ok((root, true)) => tracing::info!(path = %root.display(), "mounted tracefs"),
        Ok((_, false)) => {}
        Err(e) => tracing::warn!(
            error = format!("{e:#}"),
            "tracefs is missing; classic tracepoints will not attach"
        ),
    }
    Ok(LoadedObject {
        ebpf,
        btf,
        loaded,
        fail: setup.fail,
    })
}

/// `read()`, or with `no_btf` the error a kernel without BTF gives.
fn read_btf<T>(no_btf: bool, read: impl FnOnce() -> anyhow::Result<T>) -> anyhow::Result<T> {
    if no_btf {
        anyhow::bail!("{VMLINUX} is not read (--debug.no-btf)");
    }
    read()
}

/// Runs each family's `prepare` against the kernel's BTF, opened once for all of them (read
/// as a file before 6.16, where it cannot be mapped).
fn prepare(
    families: Vec<Box<dyn KernelFamily>>,
    tracefs: &Path,
    setup: &mut Setup,
    no_btf: bool,
) -> anyhow::Result<Vec<Loaded>> {
    let vmlinux = Path::new(VMLINUX);
    let btf = read_btf(no_btf, || crate::audit::layout::open_btf(vmlinux));
    let ctx = Prepare {
        tracefs,
        vmlinux,
        btf: &btf,
    };
    let mut loaded = Vec::with_capacity(families.len());
    for mut family in families {
        let off = match family.prepare(&ctx, setup) {
            Ok(()) => None,
            Err(e) if family.required() => {
                return Err(e.context(format!("setting up the {} programs", family.name())))
            }
            // Reported once the object loads: a daemon without privileges says only that.
            Err(e) => Some(format!("{e:#}")),
        };
        loaded.push(Loaded { family, off });
    }
    crate::bpf::hooks::set(&btf, setup);
    Ok(loaded)
}

/// Attaches family `l`'s programs and takes its maps, recording which hook serves each
/// measure. Missing privileges are fatal (the error), as is any failure of a required
/// family; any other failure turns the family off (`Some`, its reason).
fn attach(
    ebpf: &mut Ebpf,
    btf: Option<&Btf>,
    opts: &AttachOptions,
    hooks: &mut Vec<(&'static str, Attached)>,
    l: &mut Loaded,
) -> anyhow::Result<Option<String>> {
    let name = l.family.name();
    let result = l
        .family
        .attach(&mut Attacher { ebpf, btf, opts })
        .and_then(|attached| l.family.take(ebpf, &attached).map(|()| attached));
    match result {
        Ok(attached) => {
            for a in &attached {
                tracing::info!(collector = name, measure = a.measure, program = a.program, hook = %a.hook, "attached");
            }
            hooks.extend(attached.into_iter().map(|a| (name, a)));
            Ok(None)
        }
        Err(e) if is_permission_error(e.as_ref()) => Err(e.context(
            "attaching the kernel programs was refused: run as root, or with CAP_BPF and \
             CAP_PERFMON",
        )),
        Err(e) if l.family.required() => Err(e.context(format!("attaching the {name} programs"))),
        Err(e) => {
            let why = format!("{e:#}");
            tracing::error!(collector = name, error = %why, "collector disabled: its programs cannot attach");
            Ok(Some(why))
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
        .spawn(move || {
            // Started before the daemon drops its capabilities, and needs none.
            crate::privilege::drop_all_here();
            loop {
                logger.flush();
                std::thread::sleep(Duration::from_secs(1));
            }
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

/// A family in the refresher: off for good (`off`), or attached and read at each refresh,
/// which `failed` says went wrong.
struct Family {
    family: Box<dyn KernelFamily>,
    off: Option<String>,
    failed: Option<String>,
}

impl Family {
    /// Records a failed step of this refresh (the first one is kept).
    fn fail(&mut self, e: &anyhow::Error) {
        let why = format!("{e:#}");
        tracing::warn!(collector = self.family.name(), error = %why, "refresh failed");
        self.failed.get_or_insert(why);
    }
}

pub struct Core {
    procfs: PathBuf,
    kernel: Kernel,
    families: Vec<Family>,
    table: ProcessTable,
    /// The families' per-process counters of a refresh (`KernelFamily::processes`).
    entries: Vec<KernelEntry>,
    export: Export,
    /// Whether the per-process kernel counters were read at the last refresh.
    measured: bool,
    /// The live pids, listed from procfs every few seconds and kept by events between.
    live: LiveSet,
    /// Process events the kernel could not send (`PROC_EVENTS_LOST`), at the last refresh.
    events_lost: u64,
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
    /// `families`: as loaded; those that export nothing themselves are not kept.
    pub fn new(
        procfs: PathBuf,
        kernel: Kernel,
        families: Vec<Loaded>,
        table: ProcessTable,
        collectors: Vec<Box<dyn Collector>>,
    ) -> Self {
        let families = families
            .into_iter()
            .filter(|l| l.family.collects())
            .map(|l| Family {
                family: l.family,
                off: l.off,
                failed: Some("not read yet".to_string()),
            })
            .collect();
        Self {
            procfs,
            kernel,
            families,
            table,
            entries: Vec::new(),
            export: Export::default(),
            measured: false,
            live: Default::default(),
            events_lost: 0,
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

    /// Reads the kernel maps and /proc into the state, each step for every attached family
    /// in turn: their own figures, the process events, the per-process counters into the
    /// process table, then what they read of the updated table.
    fn refresh(&mut self) {
        let now = Instant::now();
        self.read_at = monotonic_seconds();
        let health = match self.kernel.health.as_ref().map(|h| h.read()) {
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
        let r = Refresh {
            procfs: &self.procfs,
            now,
            health: &health,
        };
        for f in attached(&mut self.families) {
            f.failed = None;
            if let Err(e) = f.family.refresh(&r) {
                f.fail(&e);
            }
        }
        if !self.debug_delay.is_zero() {
            std::thread::sleep(self.debug_delay);
        }
        // A full listing of procfs when one is due; between listings the set follows the
        // kernel's exec and exit events and the processes the maps show (`process::live`).
        let lost = health[PROC_EVENTS_LOST as usize];
        let walk = if lost != self.events_lost {
            self.events_lost = lost;
            Walk::Now
        } else if attached(&mut self.families).any(|f| f.family.sends_exit_events()) {
            Walk::EventsWhole
        } else {
            Walk::NoEvents
        };
        let reader = self.table.identity_reader();
        if let Err(e) = self.live.current(reader, now, walk) {
            let e = anyhow::anyhow!("listing {}: {e}", reader.root().display());
            for f in attached(&mut self.families).filter(|f| f.family.measures_processes()) {
                f.fail(&e);
            }
            return;
        }
        let (table, live) = (&mut self.table, &mut self.live);
        for f in attached(&mut self.families) {
            f.family
                .events(&mut |ev| match ProcEventKind::from_u32(ev.kind) {
                    Some(ProcEventKind::Exec) => {
                        live.seen([ev.tgid]);
                        table.on_exec(
                            ev.tgid,
                            &comm_str(&ev.comm),
                            &comm_str(&ev.prev_comm),
                            Counters::from(ev.counters),
                            ev.cgroup_id,
                        );
                    }
                    Some(ProcEventKind::Exit) => {
                        live.exited(ev.tgid);
                        table.on_exit(ev.tgid, &comm_str(&ev.comm), ev.cgroup_id);
                    }
                    Some(ProcEventKind::OomKill) => table.on_oom_kill(ev.tgid, &comm_str(&ev.comm)),
                    None => tracing::debug!(kind = ev.kind, "unknown process event"),
                });
        }
        // Kept between refreshes: megabytes on a host of many processes, which allocated
        // afresh each time were mapped and faulted in again each time.
        let mut entries = std::mem::take(&mut self.entries);
        entries.clear();
        let mut measured = false;
        for f in attached(&mut self.families) {
            let mut p = Processes {
                entries: &mut entries,
                live: &mut self.live,
                table: &self.table,
                read_at: &mut self.read_at,
            };
            match f.family.processes(&mut p) {
                Ok(()) => measured |= f.family.measures_processes(),
                Err(e) if f.family.measures_processes() => {
                    // Without the clocked counters the table keeps its last figures rather
                    // than take a partial reading.
                    f.fail(&e);
                    return;
                }
                Err(e) => f.fail(&e),
            }
        }
        self.measured = measured;
        let read = entries.len();
        let delete = self.table.update(entries.drain(..), self.live.pids(), now);
        crate::process::shrink::vec(&mut entries, read);
        self.entries = entries;
        self.table.read_resident(now);
        self.export = self.table.export(now);
        for f in attached(&mut self.families) {
            f.family.forget(&delete);
        }
        for f in attached(&mut self.families) {
            if let Err(e) = f.family.after(&r, &self.table, &self.export) {
                f.fail(&e);
            }
        }
    }

    /// Refreshes, then reads the state into snapshot number `seq` (with the process list
    /// if `processes`): the families and the collectors of the refreshed state run here,
    /// once per refresh, not once per scrape. A failing one is reported, never fatal.
    pub fn read(&mut self, seq: u64, processes: bool) -> Snapshot {
        let started = Instant::now();
        self.refresh();
        let maps: Vec<_> = self
            .families
            .iter()
            .filter(|f| f.off.is_none())
            .flat_map(|f| f.family.maps())
            .collect();
        let view = View {
            procfs: &self.procfs,
            kernel: &self.kernel,
            table: &self.table,
            export: &self.export,
            maps: &maps,
        };
        let mut families = Vec::new();
        let mut outcomes = Vec::new();
        let mut published = Published::default();
        for f in &mut self.families {
            let start = Instant::now();
            let result = match f.off.as_ref().or(f.failed.as_ref()) {
                Some(why) => Err(anyhow::anyhow!("{why}")),
                None => f.family.collect(&view, &mut families),
            };
            if result.is_ok() {
                f.family.publish(&mut published);
            }
            outcomes.push(outcome(f.family.name(), start, result));
        }
        for c in &mut self.collectors {
            let start = Instant::now();
            let result = c.collect(&view, &mut families);
            outcomes.push(outcome(c.name(), start, result));
        }
        for source in &mut self.sources {
            source(&self.table, &mut families);
        }
        // The text encoder rejects a family without samples (a collector with nothing to
        // report yet), which would fail the whole scrape.
        families.retain(|f| !f.get_metric().is_empty());
        let processes = processes.then(|| self.process_list());
        Snapshot {
            seq,
            started,
            took: started.elapsed(),
            families,
            text: OnceLock::new(),
            outcomes,
            processes,
            runq: published.runq,
            unattributed: published.unattributed,
        }
    }

    /// The process list for `/api/v1/processes`, sorted by pid, without the memory figures
    /// (`ProcessList::read_memory`): each attached family sets its fields.
    fn process_list(&self) -> ProcessList {
        let families: Vec<&dyn KernelFamily> = self
            .families
            .iter()
            .filter(|f| f.off.is_none())
            .map(|f| &*f.family)
            .collect();
        let mut processes: Vec<ProcessRow> = self
            .table
            .processes()
            .map(|p| {
                let mut row = ProcessRow {
                    pid: p.identity.pid,
                    ppid: p.identity.ppid,
                    comm: p.identity.comm.clone(),
                    exe: p.identity.exe.clone(),
                    cmdline: p.identity.cmdline.clone(),
                    uid: p.identity.uid,
                    group: p.group.clone(),
                    unit: p.identity.place.unit.clone(),
                    cgroup: p.identity.place.path.clone(),
                    ..Default::default()
                };
                for f in &families {
                    f.row(&p.last, &mut row);
                }
                row
            })
            .collect();
        processes.sort_by_key(|p| p.pid);
        ProcessList {
            measured: self.measured,
            read_at_monotonic_seconds: Some(self.read_at),
            processes,
        }
    }
}

/// The families whose programs are attached.
fn attached(families: &mut [Family]) -> impl Iterator<Item = &mut Family> {
    families.iter_mut().filter(|f| f.off.is_none())
}

/// How a collector or family did in this refresh.
fn outcome(name: &'static str, start: Instant, result: anyhow::Result<()>) -> Outcome {
    if let Err(e) = &result {
        tracing::debug!(
            collector = name,
            error = format!("{e:#}"),
            "collector failed"
        );
    }
    Outcome {
        collector: name,
        ok: result.is_ok(),
        seconds: start.elapsed().as_secs_f64(),
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
