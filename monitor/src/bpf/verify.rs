//! `monitor bpf verify`: the instructions the kernel's verifier processed for each program,
//! on any kernel.
//!
//! The kernel reports that count in `bpf_prog_info.verified_insns` from 5.16 only, and aya
//! loads a program with an empty log buffer first, keeping a log only when the load fails.
//! So this loads the object as the daemon does (`core::load_object`, with every kernel
//! family of the registry: the same globals, offsets and record layouts in `.rodata`), loads
//! each program through aya as the daemon's attach path does, and then submits the same
//! program once more itself: the instructions parsed from the object by `aya_obj`,
//! relocated against the maps aya made (`.rodata` and `.bss` included) and against each
//! other, with the object's BTF, the program type, the expected attach type and the
//! `btf_trace_<name>` attach id, and a log at `BPF_LOG_STATS`, whose "processed N insns"
//! line is the count. Where the kernel reports
//! `verified_insns` for aya's load, both are printed and must agree: an independent check of
//! the parser and of the second submission.

use std::{
    collections::{HashMap, HashSet},
    ffi::CString,
    io,
    os::fd::{AsFd as _, AsRawFd as _, FromRawFd as _, OwnedFd, RawFd},
    path::{Path, PathBuf},
};

use anyhow::{bail, Context as _};
use aya::{
    maps::{Map, MapData},
    programs::{BtfTracePoint, ProgramError, TracePoint},
    Btf, Ebpf,
};
use aya_obj::{
    btf::BtfKind,
    generated::{bpf_attach_type, bpf_attr, bpf_cmd, bpf_prog_type},
    Object, ProgramSection,
};
use serde::Serialize;

use super::{
    attach::{Choice, Hook, Probe},
    family::KernelFamily,
    is_permission_error, tracefs, OBJECT,
};
use crate::collectors;

/// `BPF_LOG_STATS`: only the verifier's statistics (5.2+).
pub const LOG_STATS: u32 = 4;
/// `BPF_LOG_LEVEL1`: the whole verification trace, where the statistics level is refused.
pub const LOG_LEVEL1: u32 = 1;

#[derive(clap::Args, Debug)]
pub struct VerifyArgs {
    /// Load as `monitor run --audit.file` does: the audit log's globals in the object, and
    /// its programs verified too.
    #[arg(long)]
    pub audit: bool,

    /// Load as `monitor run --audit.cgroup DIR` does (with --audit).
    #[arg(long = "audit.cgroup", value_name = "DIR", requires = "audit")]
    pub audit_cgroup: Option<PathBuf>,

    /// Output format.
    #[arg(long, value_enum, default_value = "table")]
    pub output: Format,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Table,
    Json,
}

/// What became of one program.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Status {
    /// It passed: `processed` from the verifier's statistics, `kernel` the kernel's own
    /// count for aya's load (`verified_insns`, 5.16+).
    Verified { processed: u32, kernel: Option<u32> },
    /// Its hook is not on this kernel; the daemon uses the measure's next choice.
    Absent { reason: String },
    /// This kernel's verifier refuses it as the daemon loads it; the daemon uses the
    /// measure's next choice.
    Refused { reason: String },
    /// The daemon does not load it in this configuration.
    Skipped { reason: String },
    /// The check itself failed: an error.
    Failed { reason: String },
}

#[derive(Clone, Debug, Serialize)]
pub struct ProgramReport {
    pub program: String,
    /// The collector that attaches it ("" for none).
    pub collector: &'static str,
    pub hook: String,
    #[serde(flatten)]
    pub status: Status,
}

impl ProgramReport {
    /// Why this program's line is an error, if it is.
    pub fn error(&self) -> Option<String> {
        match &self.status {
            Status::Failed { reason } => Some(reason.clone()),
            Status::Verified {
                processed,
                kernel: Some(k),
            } if k != processed => Some(format!(
                "the verifier's log says {processed} instructions, the kernel's verified_insns {k}"
            )),
            _ => None,
        }
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// `uname -r`.
    pub kernel: String,
    /// The log level the counts were read at (`LOG_STATS`, or `LOG_LEVEL1` where refused).
    pub log_level: u32,
    pub audit: bool,
    pub programs: Vec<ProgramReport>,
}

/// `monitor bpf verify`.
pub fn run(args: &VerifyArgs) -> anyhow::Result<()> {
    let report = verify(args)?;
    match args.output {
        Format::Table => print!("{}", table(&report)),
        Format::Json => println!("{}", serde_json::to_string_pretty(&report)?),
    }
    let errors: Vec<String> = report
        .programs
        .iter()
        .filter_map(|p| p.error().map(|e| format!("{}: {e}", p.program)))
        .collect();
    if !errors.is_empty() {
        bail!(
            "{} of {} programs failed the check: {}",
            errors.len(),
            report.programs.len(),
            errors.join("; ")
        );
    }
    Ok(())
}

/// Every hook of the daemon's attach tables, by the collector that attaches it (a program
/// two collectors share is listed under the first).
fn choices() -> Vec<(&'static str, Choice)> {
    let families: [(&str, Vec<&Probe>); 5] = [
        (
            "sched",
            // The wakeups too: attached only on kernels whose BTF lacks the run delay.
            crate::sched::kernel::PROBES
                .iter()
                .chain(crate::sched::kernel::WAKEUP_PROBE)
                .chain(crate::sched::kernel::OOM_PROBE)
                .collect(),
        ),
        ("block", crate::block::kernel::all_probes().collect()),
        (
            "network",
            crate::net::kernel::PROBES
                .iter()
                .chain([&crate::net::kernel::UDP_RECEIVE])
                .collect(),
        ),
        ("audit", crate::audit::kernel::PROBES.iter().collect()),
        (
            "service",
            crate::service::kernel::CONNECTIONS
                .iter()
                .chain(crate::service::kernel::TURNS)
                .collect(),
        ),
    ];
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for (family, probes) in families {
        for c in probes.iter().flat_map(|p| p.choices) {
            if seen.insert(c.program) {
                out.push((family, *c));
            }
        }
    }
    out
}

/// Loads the object as the daemon does and checks every program.
pub fn verify(args: &VerifyArgs) -> anyhow::Result<Report> {
    // Every kernel family of the registry, as the daemon builds them, and the audit log's
    // when asked.
    let config = collectors::Config::default();
    let mut families: Vec<Box<dyn KernelFamily>> = collectors::ALL
        .iter()
        .filter_map(|s| match s.build {
            collectors::Build::Family(b) => Some(b(&config)),
            collectors::Build::Collector(_) => None,
        })
        .collect();
    if args.audit {
        let (family, _maps) = crate::audit::kernel::Audit::new(crate::audit::kernel::KernelSetup {
            cgroup: args.audit_cgroup.clone(),
        });
        families.push(Box::new(family));
    }
    let mut loaded = crate::core::load_object(families, false)?;
    // Families whose `prepare` failed: the daemon turns them off.
    let off: HashMap<&str, String> = loaded
        .loaded
        .iter()
        .filter_map(|l| Some((l.family.name(), l.off.clone()?)))
        .collect();
    let tracefs_root = tracefs::ensure_mounted().ok().map(|(root, _)| root);
    let (obj, btf_fd) = relocated_object(&loaded.ebpf)?;
    let mut level = LOG_STATS;
    let mut programs = Vec::new();
    let mut listed = HashSet::new();
    for (collector, c) in choices() {
        listed.insert(c.program);
        let status = if collector == "audit" && !args.audit {
            Status::Skipped {
                reason: "loaded only with the audit log (--audit)".into(),
            }
        } else if let Some(why) = off.get(collector) {
            Status::Skipped {
                reason: format!("the {collector} programs cannot be set up: {why}"),
            }
        } else if loaded.fail.iter().any(|f| f == c.program) {
            Status::Skipped {
                reason: "the daemon keeps it off on this kernel (its fallback serves)".into(),
            }
        } else {
            let target = Target {
                obj: &obj,
                btf_fd: btf_fd.as_ref(),
                kernel_btf: loaded.btf.as_ref(),
                tracefs: tracefs_root.as_deref(),
            };
            check(&mut loaded.ebpf, &target, &c, &mut level)?
        };
        programs.push(ProgramReport {
            program: c.program.to_string(),
            collector,
            hook: c.hook.to_string(),
            status,
        });
    }
    let mut others: Vec<&String> = obj
        .programs
        .keys()
        .filter(|n| !listed.contains(n.as_str()))
        .collect();
    others.sort();
    for name in others {
        programs.push(ProgramReport {
            program: name.clone(),
            collector: "",
            hook: String::new(),
            status: Status::Skipped {
                reason: "no collector attaches it".into(),
            },
        });
    }
    Ok(Report {
        kernel: kernel_release(),
        log_level: level,
        audit: args.audit,
        programs,
    })
}

fn kernel_release() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// What a second submission needs besides the program.
struct Target<'a> {
    obj: &'a Object,
    btf_fd: Option<&'a OwnedFd>,
    kernel_btf: Option<&'a Btf>,
    tracefs: Option<&'a Path>,
}

/// One program: is its hook here, does aya load it, and what the verifier's statistics
/// say. Only missing privileges end the whole check.
fn check(ebpf: &mut Ebpf, t: &Target<'_>, c: &Choice, level: &mut u32) -> anyhow::Result<Status> {
    let failed = |reason: String| Ok(Status::Failed { reason });
    // The hook first: a program of a hook this kernel lacks is not an error.
    let attach_btf_id = match c.hook {
        Hook::Btf(name) => {
            let Some(btf) = t.kernel_btf else {
                return Ok(Status::Absent {
                    reason: "no kernel BTF (/sys/kernel/btf/vmlinux)".into(),
                });
            };
            let typedef = format!("btf_trace_{name}");
            match btf.id_by_type_name_kind(&typedef, BtfKind::Typedef) {
                Ok(id) => Some(id),
                Err(_) => {
                    return Ok(Status::Absent {
                        reason: format!("no {typedef} in the kernel's BTF"),
                    })
                }
            }
        }
        Hook::Tracepoint(cat, name) => {
            if let Some(root) = t.tracefs {
                if !root.join("events").join(cat).join(name).is_dir() {
                    return Ok(Status::Absent {
                        reason: format!("no tracepoint {cat}:{name} in {}", root.display()),
                    });
                }
            }
            None
        }
    };
    // As the daemon's attach path loads it. The verifier refuses with EACCES too: a refusal
    // is told from missing privileges by the log it leaves.
    let kernel = match aya_load(ebpf, t.kernel_btf, c) {
        Ok(k) => k,
        Err(e) => {
            let refusal = match e.downcast_ref::<ProgramError>() {
                Some(ProgramError::LoadError {
                    io_error,
                    verifier_log,
                }) => {
                    let log = verifier_log.to_string();
                    (!log.trim().is_empty())
                        .then(|| format!("{}: {io_error}", verifier_error(&log)))
                }
                _ => None,
            };
            return match refusal {
                Some(reason) => Ok(Status::Refused { reason }),
                None if is_permission_error(e.as_ref()) => Err(e.context(format!(
                    "loading {} was refused: run as root, or with CAP_BPF and CAP_PERFMON",
                    c.program
                ))),
                None => failed(format!("loading it with aya: {e:#}")),
            };
        }
    };
    let Some(prog) = t.obj.programs.get(c.program) else {
        return failed("not in the object".into());
    };
    let Some(func) = t.obj.functions.get(&prog.function_key()) else {
        return failed("its function is not in the object".into());
    };
    let (prog_type, attach_type) = match (&prog.section, c.hook) {
        (ProgramSection::BtfTracePoint, Hook::Btf(_)) => (
            bpf_prog_type::BPF_PROG_TYPE_TRACING,
            Some(bpf_attach_type::BPF_TRACE_RAW_TP),
        ),
        (ProgramSection::TracePoint, Hook::Tracepoint(..)) => {
            (bpf_prog_type::BPF_PROG_TYPE_TRACEPOINT, None)
        }
        (section, hook) => {
            return failed(format!(
                "its section ({section:?}) does not match its hook {hook}"
            ))
        }
    };
    let load = ProgLoad {
        name: aya::features()
            .bpf_name()
            .then(|| CString::new(c.program).ok())
            .flatten(),
        prog_type,
        attach_type,
        attach_btf_id,
        insns: &func.instructions,
        license: &prog.license,
        kern_version: prog.kernel_version.unwrap_or_else(|| {
            aya::util::KernelVersion::current().map_or(0, aya::util::KernelVersion::code)
        }),
        btf: t.btf_fd.map(|fd| BtfInfo {
            fd: fd.as_raw_fd(),
            func_info: func.func_info.func_info_bytes(),
            func_info_cnt: func.func_info.len() as u32,
            func_info_rec_size: func.func_info_rec_size as u32,
            line_info: func.line_info.line_info_bytes(),
            line_info_cnt: func.line_info.len() as u32,
            line_info_rec_size: func.line_info_rec_size as u32,
        }),
    };
    match load_with_log(&load, level) {
        Ok((_fd, log)) => match processed_insns(&log) {
            Some(processed) => Ok(Status::Verified { processed, kernel }),
            None => failed(format!(
                "no \"processed N insns\" line in the verifier's log (level {level}): {:?}",
                log.lines().last().unwrap_or("")
            )),
        },
        Err((e, log)) => failed(format!(
            "aya loaded it, but the second submission was refused ({e}): {}",
            verifier_error(&log)
        )),
    }
}

/// Loads program `c` through aya as `attach::attach_one` does, and unloads it; returns the
/// kernel's `verified_insns` for that load (5.16+).
fn aya_load(ebpf: &mut Ebpf, btf: Option<&Btf>, c: &Choice) -> anyhow::Result<Option<u32>> {
    let prog = ebpf
        .program_mut(c.program)
        .with_context(|| format!("program {} is not in the object", c.program))?;
    match c.hook {
        Hook::Btf(name) => {
            let btf = btf.context("kernel BTF is not available")?;
            let p: &mut BtfTracePoint = prog.try_into()?;
            p.load(name, btf)?;
            let n = p.info()?.verified_instruction_count();
            p.unload()?;
            Ok(n)
        }
        Hook::Tracepoint(..) => {
            let p: &mut TracePoint = prog.try_into()?;
            p.load()?;
            let n = p.info()?.verified_instruction_count();
            p.unload()?;
            Ok(n)
        }
    }
}

/// The object as `EbpfLoader::load` prepares it (aya 0.14, `bpf.rs`): its BTF fixed up for
/// this kernel and loaded, map references pointed at the maps `ebpf` holds, calls linked,
/// helpers sanitized. No CO-RE relocations: the daemon's loader is given no kernel BTF
/// (the programs carry none; their struct offsets are globals).
fn relocated_object(ebpf: &Ebpf) -> anyhow::Result<(Object, Option<OwnedFd>)> {
    let mut obj = Object::parse(OBJECT).context("parsing the kernel object")?;
    let features = aya::features();
    let btf_fd = match features.btf() {
        Some(f) => match obj
            .fixup_and_sanitize_btf(f)
            .context("fixing up the object's BTF")?
        {
            // As aya: without its BTF a tracepoint program still loads.
            Some(btf) => match load_btf(&btf.to_bytes()) {
                Ok(fd) => Some(fd),
                Err(e) => {
                    tracing::warn!(error = %e, "the object's BTF cannot be loaded; verifying without it");
                    None
                }
            },
            None => None,
        },
        None => None,
    };
    if obj.has_btf_relocations() {
        bail!("the object has CO-RE relocations, which the daemon's loader does not apply");
    }
    let maps = std::mem::take(&mut obj.maps);
    let mut with_fds = Vec::new();
    for (name, map) in &maps {
        // aya leaves out what it did not create (global data on kernels without it).
        if let Some(m) = ebpf.map(name) {
            with_fds.push((name.as_str(), map_data(m).fd().as_fd().as_raw_fd(), map));
        }
    }
    let text_sections = obj.functions.keys().map(|(s, _)| *s).collect();
    obj.relocate_maps(with_fds.into_iter(), &text_sections)
        .context("relocating the object's map references")?;
    obj.relocate_calls(&text_sections)
        .context("relocating the object's calls")?;
    obj.sanitize_functions(features);
    Ok((obj, btf_fd))
}

fn map_data(m: &Map) -> &MapData {
    match m {
        Map::Array(d)
        | Map::ArrayOfMaps(d)
        | Map::BloomFilter(d)
        | Map::CgroupArray(d)
        | Map::CgroupStorage(d)
        | Map::CgrpStorage(d)
        | Map::CpuMap(d)
        | Map::DevMap(d)
        | Map::DevMapHash(d)
        | Map::HashMap(d)
        | Map::HashOfMaps(d)
        | Map::InodeStorage(d)
        | Map::LpmTrie(d)
        | Map::LruHashMap(d)
        | Map::PerCpuArray(d)
        | Map::PerCpuCgroupStorage(d)
        | Map::PerCpuHashMap(d)
        | Map::PerCpuLruHashMap(d)
        | Map::PerfEventArray(d)
        | Map::ProgramArray(d)
        | Map::Queue(d)
        | Map::ReusePortSockArray(d)
        | Map::RingBuf(d)
        | Map::SockHash(d)
        | Map::SockMap(d)
        | Map::SkStorage(d)
        | Map::Stack(d)
        | Map::StackTraceMap(d)
        | Map::Unsupported(d)
        | Map::XskMap(d) => d,
    }
}

struct BtfInfo {
    fd: RawFd,
    func_info: Vec<u8>,
    func_info_cnt: u32,
    func_info_rec_size: u32,
    line_info: Vec<u8>,
    line_info_cnt: u32,
    line_info_rec_size: u32,
}

/// A `BPF_PROG_LOAD` as aya's `bpf_load_program` fills it.
struct ProgLoad<'a> {
    name: Option<CString>,
    prog_type: bpf_prog_type,
    attach_type: Option<bpf_attach_type>,
    attach_btf_id: Option<u32>,
    insns: &'a [aya_obj::generated::bpf_insn],
    license: &'a CString,
    kern_version: u32,
    btf: Option<BtfInfo>,
}

fn sys_bpf(cmd: bpf_cmd, attr: &mut bpf_attr) -> io::Result<OwnedFd> {
    // SAFETY: `attr` is a zero-initialised bpf_attr, filled for `cmd`, whose pointers refer
    // to buffers the caller keeps alive for the call; the kernel reads at most its size.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd as libc::c_int,
            std::ptr::from_mut(attr),
            std::mem::size_of::<bpf_attr>() as libc::c_uint,
        )
    };
    if ret < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: on success both commands used here return a new file descriptor we own.
    Ok(unsafe { OwnedFd::from_raw_fd(ret as RawFd) })
}

fn load_btf(data: &[u8]) -> io::Result<OwnedFd> {
    // SAFETY: all-zero bytes are a valid bpf_attr (integers only).
    let mut attr: bpf_attr = unsafe { std::mem::zeroed() };
    // SAFETY: writing plain integers into the BPF_BTF_LOAD member of the union.
    let u = unsafe { &mut attr.__bindgen_anon_7 };
    u.btf = data.as_ptr() as u64;
    u.btf_size = data.len() as u32;
    sys_bpf(bpf_cmd::BPF_BTF_LOAD, &mut attr)
}

fn prog_load(p: &ProgLoad<'_>, level: u32, log: &mut [u8]) -> io::Result<OwnedFd> {
    // SAFETY: all-zero bytes are a valid bpf_attr (integers only).
    let mut attr: bpf_attr = unsafe { std::mem::zeroed() };
    // SAFETY: writing plain integers into the BPF_PROG_LOAD member of the union.
    let u = unsafe { &mut attr.__bindgen_anon_3 };
    if let Some(name) = &p.name {
        let bytes = name.as_bytes();
        let len = bytes.len().min(u.prog_name.len() - 1);
        for (d, s) in u.prog_name.iter_mut().zip(&bytes[..len]) {
            *d = *s as libc::c_char;
        }
    }
    u.prog_type = p.prog_type as u32;
    if let Some(a) = p.attach_type {
        u.expected_attach_type = a as u32;
    }
    if let Some(id) = p.attach_btf_id {
        u.attach_btf_id = id;
    }
    u.insns = p.insns.as_ptr() as u64;
    u.insn_cnt = p.insns.len() as u32;
    u.license = p.license.as_ptr() as u64;
    u.kern_version = p.kern_version;
    if let Some(b) = &p.btf {
        u.prog_btf_fd = b.fd as u32;
        if b.func_info_rec_size > 0 {
            u.func_info = b.func_info.as_ptr() as u64;
            u.func_info_cnt = b.func_info_cnt;
            u.func_info_rec_size = b.func_info_rec_size;
        }
        if b.line_info_rec_size > 0 {
            u.line_info = b.line_info.as_ptr() as u64;
            u.line_info_cnt = b.line_info_cnt;
            u.line_info_rec_size = b.line_info_rec_size;
        }
    }
    u.log_level = level;
    u.log_buf = log.as_mut_ptr() as u64;
    u.log_size = log.len() as u32;
    sys_bpf(bpf_cmd::BPF_PROG_LOAD, &mut attr)
}

/// Loads `p` with a verifier log, growing the buffer while the kernel says it is too small,
/// and falling back from the statistics level to level 1 (for good) where it is refused.
fn load_with_log(
    p: &ProgLoad<'_>,
    level: &mut u32,
) -> Result<(OwnedFd, String), (io::Error, String)> {
    const START: usize = 64 << 10;
    const MAX: usize = 16 << 20;
    let mut size = START;
    loop {
        let mut buf = vec![0u8; size];
        let ret = prog_load(p, *level, &mut buf);
        let log = log_text(&buf);
        match ret {
            Ok(fd) => return Ok((fd, log)),
            Err(e) if e.raw_os_error() == Some(libc::ENOSPC) && size < MAX => size *= 4,
            // A kernel that knows no statistics level refuses it before verifying anything.
            Err(e)
                if e.raw_os_error() == Some(libc::EINVAL)
                    && *level == LOG_STATS
                    && log.is_empty() =>
            {
                *level = LOG_LEVEL1;
            }
            Err(e) => return Err((e, log)),
        }
    }
}

fn log_text(buf: &[u8]) -> String {
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

/// The count of the verifier's "processed N insns (limit ...)" line (the last, if several).
pub fn processed_insns(log: &str) -> Option<u32> {
    log.lines().rev().find_map(|l| {
        let mut w = l.trim().strip_prefix("processed ")?.split_whitespace();
        let n = w.next()?.parse().ok()?;
        (w.next()? == "insns").then_some(n)
    })
}

/// What a verifier log says about why it refused: its last lines (two at most) after the
/// last instruction it printed, the statistics left out.
pub fn verifier_error(log: &str) -> String {
    let stats = [
        "processed ",
        "verification time",
        "stack depth",
        "max_states_per_insn",
    ];
    // An instruction ("12: (79) r2 = ...") or the source line before it ("; let x = ...").
    let code = |l: &str| {
        l.starts_with(';')
            || l.split_once(": ")
                .is_some_and(|(n, _)| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
    };
    let mut why: Vec<&str> = log
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !stats.iter().any(|s| l.starts_with(s)))
        .rev()
        .take_while(|l| !code(l))
        .take(2)
        .collect();
    why.reverse();
    if why.is_empty() {
        return "the verifier gave no reason".into();
    }
    why.join("; ")
}

/// The report as a table, one line per program.
pub fn table(r: &Report) -> String {
    let mut out = format!(
        "kernel {}: instructions the verifier processed per program (its statistics, log \
         level {}){}\n",
        r.kernel,
        r.log_level,
        if r.audit { ", with the audit log" } else { "" }
    );
    let name_w = r
        .programs
        .iter()
        .map(|p| p.program.len())
        .max()
        .unwrap_or(0);
    let hook_w = r.programs.iter().map(|p| p.hook.len()).max().unwrap_or(0);
    out.push_str(&format!(
        "{:name_w$}  {:hook_w$}  {:>9}  {:>9}\n",
        "program", "hook", "processed", "kernel"
    ));
    for p in &r.programs {
        let rest = match &p.status {
            Status::Verified { processed, kernel } => {
                let k = kernel.map_or("-".to_string(), |k| k.to_string());
                let mark = if p.error().is_some() {
                    "  MISMATCH"
                } else {
                    ""
                };
                format!("{processed:>9}  {k:>9}{mark}")
            }
            Status::Absent { reason } => format!("not on this kernel: {reason}"),
            Status::Refused { reason } => {
                format!("refused by this kernel's verifier: {reason}")
            }
            Status::Skipped { reason } => format!("skipped: {reason}"),
            Status::Failed { reason } => format!("FAILED: {reason}"),
        };
        out.push_str(&format!(
            "{:name_w$}  {:hook_w$}  {rest}\n",
            p.program, p.hook
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_processed_line() {
        // 5.10's statistics level.
        let log = "func#0 @0\nstack depth 24\nprocessed 812 insns (limit 1000000) \
                   max_states_per_insn 2 total_states 40 peak_states 40 mark_read 9\n";
        assert_eq!(processed_insns(log), Some(812));
        // 6.x adds the verification time first.
        let log = "verification time 211 usec\nstack depth 0+0\nprocessed 3653 insns (limit \
                   1000000) max_states_per_insn 4 total_states 310 peak_states 310 mark_read 27\n";
        assert_eq!(processed_insns(log), Some(3653));
        assert_eq!(processed_insns("processed lots of insns\n"), None);
        assert_eq!(processed_insns("processed 12 things\n"), None);
        assert_eq!(processed_insns(""), None);
    }

    #[test]
    fn says_why_it_refused() {
        // 5.10, on the typed switch program (its 4th argument came in 5.18).
        let log = "arg#0 type is not a struct\nUnrecognized arg#0 type PTR\n\
                   ; T::from_register(unsafe { *ptr as u64 })\n\
                   0: (79) r8 = *(u64 *)(r1 +0)\n\
                   ; T::from_register(unsafe { *ptr as u64 })\n\
                   1: (79) r2 = *(u64 *)(r1 +24)\n\
                   func 'sched_switch' doesn't have 4-th argument\n\
                   invalid bpf_context access off=24 size=8\nverification time 823 usec\n\
                   stack depth 0+0\nprocessed 2 insns (limit 1000000) max_states_per_insn 0 \
                   total_states 0 peak_states 0 mark_read 0\n";
        assert_eq!(
            verifier_error(log),
            "func 'sched_switch' doesn't have 4-th argument; invalid bpf_context access off=24 \
             size=8"
        );
        assert_eq!(
            verifier_error("R1 invalid mem access 'scalar'\n"),
            "R1 invalid mem access 'scalar'"
        );
        assert_eq!(verifier_error(""), "the verifier gave no reason");
    }

    #[test]
    fn every_program_of_the_tables_once() {
        let c = choices();
        let names: HashSet<&str> = c.iter().map(|(_, c)| c.program).collect();
        assert_eq!(names.len(), c.len());
        // Shared by the network collector and the audit log: listed under the first.
        assert!(c
            .iter()
            .any(|(f, c)| *f == "network" && c.program == "tcp_state"));
        assert!(c
            .iter()
            .any(|(f, c)| *f == "audit" && c.program == "audit_exec"));
    }

    #[test]
    fn a_mismatch_is_an_error() {
        let p = |status| ProgramReport {
            program: "p".into(),
            collector: "sched",
            hook: "tp_btf/x".into(),
            status,
        };
        assert!(p(Status::Verified {
            processed: 5,
            kernel: Some(5)
        })
        .error()
        .is_none());
        assert!(p(Status::Verified {
            processed: 5,
            kernel: None
        })
        .error()
        .is_none());
        assert!(p(Status::Verified {
            processed: 5,
            kernel: Some(6)
        })
        .error()
        .is_some());
        assert!(p(Status::Refused { reason: "x".into() }).error().is_none());
        assert!(p(Status::Failed { reason: "x".into() }).error().is_some());
        let r = Report {
            kernel: "5.10.0-46-amd64".into(),
            log_level: 4,
            audit: false,
            programs: vec![p(Status::Verified {
                processed: 5,
                kernel: None,
            })],
        };
        let v: serde_json::Value = serde_json::to_value(&r).unwrap();
        assert_eq!(v["programs"][0]["status"], "verified");
        assert_eq!(v["programs"][0]["processed"], 5);
        assert!(v["programs"][0]["kernel"].is_null());
        assert!(table(&r).contains("tp_btf/x"));
    }
}
