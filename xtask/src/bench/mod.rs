//! `cargo xtask bench`: what the kernel programs and the daemon cost, next to peers, measured
//! in one run. It prints figures and ratios, then every target beside its figure; it never
//! asserts a timing. `--only` runs some phases alone.
//!
//! 1. Workload slowdown (`sched`): `perf bench sched messaging` (scheduler-heavy) at each
//!    size of `--groups` (40 and 400 processes) alone, under our daemon, under libbpf-tools
//!    `runqlat`, under a bpftrace runqlat, and under our daemon and runqlat at once; the
//!    configurations are interleaved round by round, each tool started fresh for its run.
//! 2. ns per event (`sched`): with `kernel.bpf_stats_enabled=1`, each tool's programs' run
//!    count and run time across each workload run, from `bpftool prog show --json`. A tool's
//!    programs are the ones its process holds fds of (`/proc/<pid>/fdinfo`), so two tools
//!    attached together are still told apart.
//! 3. The daemon's own cost (`daemon`): CPU and memory (steady, and the start-up peak) at its
//!    default refresh with 1,000 then 10,000 extra idle processes and a scrape every second.
//! 4. `monitor top`'s own cost (`top`): CPU and memory at a 1 s refresh in a real terminal
//!    (tmux), reading the daemon, with the first count of idle processes listed.
//! 5. Block I/O (`disk`): fio on a loop device alone, under the daemon, under libbpf-tools
//!    `biolatency` and under both: IOPS and ns per event of each block program.
//! 6. Network (`net`): iperf3 over loopback alone, under the daemon's network programs (both
//!    hook paths), under a bpftrace equivalent and under both: throughput and ns per event.
//! 7. Scrape load (`scrape`): 20 clients scraping `/metrics` as fast as they can, with the
//!    health check's latency measured meanwhile, against our daemon then node_exporter.
//! 8. The query history and the page (`page`): the daemon's CPU and memory with the history
//!    off, then on with a client asking what the page asks (`page.rs`).
//! 9. Remote write (`remote-write`): the daemon's CPU and memory without remote write, then
//!    pushing every 15 s and every 1 s to a counting receiver, and the bytes on the wire per
//!    sample (`remote_write.rs`).

mod bpf;
mod daemon;
mod disk;
mod http;
mod lossy;
mod net;
mod page;
pub mod procs;
mod receiver;
mod remote_write;
mod report;
mod scrape;
mod targets;
mod tools;
mod top;
mod workload;

use std::{
    net::{Ipv4Addr, SocketAddr, TcpListener},
    path::{Path, PathBuf},
    process::Stdio,
};

use anyhow::{bail, Context as _};

use crate::{cmd, setup};

/// linux-perf: `perf bench`; libbpf-tools: `runqlat`, `biolatency`; bpftrace; bpftool:
/// program stats; tmux: a terminal for `monitor top`; fio: the disk workload; iperf3: the
/// network workload; iptables: the lossy transfers' drop rule.
const PACKAGES: &[&str] = &[
    "linux-perf",
    "libbpf-tools",
    "bpftrace",
    "bpftool",
    "tmux",
    "fio",
    "iperf3",
    "iptables",
];

/// A phase of the benchmark, for `--only`.
#[derive(Clone, Copy, PartialEq, Eq, Debug, clap::ValueEnum)]
pub enum Phase {
    /// The scheduler workload and its programs' ns per event (figures 1 and 2).
    Sched,
    /// The daemon's own CPU and memory (figure 3).
    Daemon,
    /// `monitor top`'s own cost (figure 4).
    Top,
    /// fio on a loop device (figure 5).
    Disk,
    /// iperf3 over loopback (figure 6).
    Net,
    /// /metrics throughput and health-check latency under load, against node_exporter
    /// (figure 7).
    Scrape,
    /// The query history and the page's queries (figure 8).
    Page,
    /// Remote write every 15 s and every 1 s (figure 9).
    RemoteWrite,
}

#[derive(clap::Args)]
pub struct Options {
    /// Run only these phases (a comma-separated list); all of them by default.
    #[arg(long, value_enum, value_delimiter = ',')]
    pub only: Vec<Phase>,
    /// Workload runs per configuration (the configurations are interleaved).
    #[arg(long, default_value_t = 7, value_parser = clap::value_parser!(u32).range(1..=50))]
    pub runs: u32,
    /// `perf bench sched messaging` group counts (-g), one workload size each, measured one
    /// after the other; each group is 40 processes.
    #[arg(long, value_delimiter = ',', default_values_t = [1, 10],
          value_parser = clap::value_parser!(u32).range(1..=100))]
    pub groups: Vec<u32>,
    /// `perf bench sched messaging` loops (-l) at one group; at G groups each run does
    /// loops/G, so every size passes as many messages (the default takes about 4 s on 2 cores).
    #[arg(long, default_value_t = 15000, value_parser = clap::value_parser!(u32).range(1..))]
    pub loops: u32,
    /// Talk over socketpairs instead of pipes (fewer context switches per second).
    #[arg(long)]
    pub socketpair: bool,
    /// Idle processes running while the daemon's own cost is measured: one measurement per
    /// count (a comma-separated list); `monitor top`'s uses the first.
    #[arg(long, value_delimiter = ',', default_values_t = [1000, 10000],
          value_parser = clap::value_parser!(u32).range(0..=100_000))]
    pub idle_processes: Vec<u32>,
    /// Seconds over which the daemon's own cost is measured (at each count).
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub daemon_seconds: u64,
    /// Seconds over which each remote write run is measured (long enough for several
    /// collections at the default 15 s).
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u64).range(15..=3600))]
    pub remote_write_seconds: u64,
    /// Seconds over which `monitor top`'s own cost is measured.
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub top_seconds: u64,
    /// fio runs per configuration in the disk figure (the configurations are interleaved).
    /// The loss is judged by the quartiles of the rounds' own losses: fewer rounds than
    /// this leave them too far apart on these shared machines to tell 3 %.
    #[arg(long, default_value_t = 9, value_parser = clap::value_parser!(u32).range(1..=50))]
    pub disk_runs: u32,
    /// Seconds per fio run.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=600))]
    pub disk_seconds: u64,
    /// Only the disk figure (5); the same as --only disk.
    #[arg(long)]
    pub disk_only: bool,
    /// iperf3 runs per configuration in the network figure (the configurations are
    /// interleaved; the loss is judged as the disk figure's is).
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=50))]
    pub net_runs: u32,
    /// Seconds per iperf3 run.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=600))]
    pub net_seconds: u64,
    /// Short loopback connections (connect, a byte each way, close) after each iperf3 run:
    /// the state changes a server with many clients sees, which one iperf3 stream hardly
    /// makes (0: none).
    #[arg(long, default_value_t = 2000, value_parser = clap::value_parser!(u32).range(0..=1_000_000))]
    pub net_connections: u32,
    /// Transfers of 256 KiB after each iperf3 run to a port that drops 2 % of its data
    /// segments (iptables): hundreds of retransmit events (each resends a GSO buffer of
    /// many segments), where one iperf3 stream makes a few (0: none).
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(0..=100_000))]
    pub net_lossy_transfers: u32,
    /// Only the network figure (6); the same as --only net.
    #[arg(long)]
    pub net_only: bool,
    /// Clients scraping /metrics at once in the scrape-load figure.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub scrape_clients: u32,
    /// Seconds of scrape load on each server.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=600))]
    pub scrape_seconds: u64,
    /// Port the daemon listens on, on 127.0.0.1 (0: a free one).
    #[arg(long, default_value_t = 0)]
    pub port: u16,
    /// Use target/release/monitor as it is, without building it.
    #[arg(long)]
    pub no_build: bool,
}

impl Options {
    /// The phases to run, in the order they run.
    fn phases(&self) -> Vec<Phase> {
        let mut only = self.only.clone();
        if self.disk_only {
            only.push(Phase::Disk);
        }
        if self.net_only {
            only.push(Phase::Net);
        }
        [
            Phase::Sched,
            Phase::Daemon,
            Phase::Top,
            Phase::Disk,
            Phase::Net,
            Phase::Scrape,
            Phase::Page,
            Phase::RemoteWrite,
        ]
        .into_iter()
        .filter(|p| only.is_empty() || only.contains(p))
        .collect()
    }
}

/// Where things are, shared by the phases.
struct Env {
    /// target/release/monitor.
    bin: PathBuf,
    /// target/bench: the tools' logs and the bpftrace scripts.
    dir: PathBuf,
    /// Where the daemon listens.
    addr: SocketAddr,
    /// kernel.bpf_stats_enabled=1 while this lives.
    stats: bpf::StatsEnabled,
}

/// Installs and builds what it needs, runs the phases with kernel BPF stats on (restored
/// afterwards) and prints the report on stdout, each phase's tables as it ends and the
/// targets last; progress goes to stderr.
pub fn run(o: &Options) -> anyhow::Result<()> {
    if !cmd::is_root() {
        bail!("the benchmark loads eBPF programs and sets kernel.bpf_stats_enabled: run it as root (sudo -E cargo xtask bench)");
    }
    let phases = o.phases();
    procs::catch_signals();
    setup::ensure()?;
    setup::apt_install(PACKAGES)?;
    if !o.no_build {
        cmd::run(cmd::new("cargo").args(["build", "--release", "-p", "monitor"]))?;
    }
    let root = cmd::root();
    let bin = root.join("target/release/monitor");
    if !bin.exists() {
        bail!(
            "{} is missing (build it, or drop --no-build)",
            bin.display()
        );
    }
    ensure_tracefs()?;
    let dir = root.join("target/bench");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    tools::write_scripts(&dir)?;
    let port = if o.port == 0 { free_port()? } else { o.port };
    // Fail early, before any figure, if a tool cannot run here.
    bpf::snapshot()?;
    for p in &phases {
        match p {
            Phase::Sched => preflight()?,
            Phase::Disk => disk::preflight()?,
            Phase::Net => net::preflight()?,
            Phase::Scrape => scrape::preflight()?,
            _ => {}
        }
    }
    let env = Env {
        bin,
        dir,
        addr: SocketAddr::from((Ipv4Addr::LOCALHOST, port)),
        stats: bpf::StatsEnabled::on()?,
    };
    eprintln!(
        "bench: kernel.bpf_stats_enabled=1 (was {}); logs in {}; phases: {}",
        env.stats.old(),
        env.dir.display(),
        phases
            .iter()
            .map(|p| format!("{p:?}").to_lowercase())
            .collect::<Vec<_>>()
            .join(", ")
    );
    let mut checks = Vec::new();
    let mut work = Vec::new();
    let mut daemon = Vec::new();
    let mut top = None;
    for p in phases {
        match p {
            Phase::Sched => {
                work = workload::phase(o, &env)?;
                for w in &work {
                    report::print_workload(o, w);
                    checks.extend(w.checks());
                }
            }
            Phase::Daemon => {
                daemon = daemon::phase(o, &env)?;
                for d in &daemon {
                    report::print_daemon(d);
                    checks.extend(d.checks());
                }
            }
            Phase::Top => {
                let t = top::phase(o, &env)?;
                report::print_top(&t);
                checks.extend(t.checks());
                top = Some(t);
            }
            Phase::Disk => {
                let d = disk::phase(o, &env)?;
                disk::print(o, &d);
                checks.extend(d.checks());
            }
            Phase::Net => {
                let n = net::phase(o, &env)?;
                net::print(o, &n);
                checks.extend(n.checks());
            }
            Phase::Scrape => {
                let s = scrape::phase(o, &env)?;
                scrape::print(o, &s);
                checks.extend(s.checks());
            }
            Phase::Page => {
                let p = page::phase(o, &env)?;
                page::print(&p);
                checks.extend(p.checks());
            }
            Phase::RemoteWrite => {
                let r = remote_write::phase(o, &env)?;
                remote_write::print(&r);
                checks.extend(r.checks());
            }
        }
    }
    report::print_summary(&work, &daemon, top.as_ref());
    targets::print(&checks);
    // Dropping `env` restores kernel.bpf_stats_enabled (also on the error paths above).
    Ok(())
}

/// Classic tracepoints (ours, bpftrace's) need tracefs, which a fresh machine may not mount.
fn ensure_tracefs() -> anyhow::Result<()> {
    if Path::new("/sys/kernel/tracing/events/sched").exists() {
        return Ok(());
    }
    eprintln!("bench: mounting tracefs on /sys/kernel/tracing");
    cmd::run(cmd::new("mount").args(["-t", "tracefs", "nodev", "/sys/kernel/tracing"]))
}

fn free_port() -> anyhow::Result<u16> {
    let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).context("finding a free port")?;
    Ok(l.local_addr()?.port())
}

/// Fails early, with what is wrong, if a tool cannot run here.
fn preflight() -> anyhow::Result<()> {
    let out = cmd::new("perf")
        .args(["bench", "sched", "messaging", "-p", "-g", "1", "-l", "10"])
        .stdin(Stdio::null())
        .output()
        .context("running perf (Debian package linux-perf)")?;
    if !out.status.success() {
        bail!(
            "perf bench sched messaging does not run here: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    if !Path::new(tools::RUNQLAT).exists() {
        bail!(
            "{} is missing (Debian package libbpf-tools)",
            tools::RUNQLAT
        );
    }
    let b0 = workload::machine_busy()?;
    procs::sleep(std::time::Duration::from_secs(1))?;
    let busy = 100.0 * (workload::machine_busy()? - b0);
    if busy > 20.0 {
        eprintln!(
            "bench: WARNING: the machine is busy before starting ({busy:.0} % of a core): \
             the workload times will be noisy"
        );
    }
    Ok(())
}
