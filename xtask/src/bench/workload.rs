//! Figures 1 and 2: the workload's time under each tool, and what each tool's programs cost
//! per run, from the kernel's own accounting, over the same runs; at each workload size
//! (`--groups`), with each peer attached alone and together with our daemon.

use std::{collections::BTreeMap, process::Stdio, time::Instant};

use anyhow::{bail, Context as _};

use super::{
    bpf::{self, Cost},
    procs,
    targets::{Check, Target},
    tools::{self, Kind},
    Env, Options,
};
use crate::cmd;

/// A workload configuration: the tools attached at once during its runs.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Config {
    Baseline,
    Monitor,
    Runqlat,
    Bpftrace,
    /// Our daemon and runqlat attached at the same time: both pay for the other's cache
    /// misses, as they would on a host running both; each one's programs are told apart by
    /// the fds its process holds.
    MonitorRunqlat,
    /// Our daemon on the classic `sched_switch`, the switch path of kernels before 5.18
    /// (5.10 among them): what that fallback costs.
    MonitorClassic,
}

/// The configurations compared, in the order of the report.
pub const CONFIGS: [Config; 6] = [
    Config::Baseline,
    Config::Monitor,
    Config::Runqlat,
    Config::Bpftrace,
    Config::MonitorRunqlat,
    Config::MonitorClassic,
];

impl Config {
    pub fn name(self) -> &'static str {
        match self {
            Config::Baseline => "baseline",
            Config::Monitor => "monitor",
            Config::Runqlat => "runqlat",
            Config::Bpftrace => "bpftrace",
            Config::MonitorRunqlat => "monitor+runqlat",
            Config::MonitorClassic => "monitor-classic",
        }
    }

    /// The tools attached, in the order they are started in odd rounds (reversed in even
    /// ones, so that neither is always first on the tracepoint, where it would take the
    /// cache misses the other is then spared).
    pub fn tools(self) -> &'static [Kind] {
        match self {
            Config::Baseline => &[],
            Config::Monitor => &[Kind::Monitor],
            Config::Runqlat => &[Kind::Runqlat],
            Config::Bpftrace => &[Kind::Bpftrace],
            Config::MonitorRunqlat => &[Kind::Monitor, Kind::Runqlat],
            Config::MonitorClassic => &[Kind::MonitorClassic],
        }
    }
}

/// Programs by name, with their run counts and run time.
pub type Progs = BTreeMap<String, Cost>;

/// What each tool's programs did during one run.
#[derive(Default)]
pub struct RunProgs {
    /// The tools in the order they were attached.
    pub order: Vec<Kind>,
    pub by_tool: BTreeMap<Kind, Progs>,
}

/// A configuration's figures, over all its runs.
#[derive(Default)]
pub struct Results {
    /// perf's own "Total time" per run, in seconds.
    pub secs: Vec<f64>,
    /// Context switches per second over each run, from /proc/stat.
    pub switch_rate: Vec<f64>,
    /// The tools' own CPU (their threads' on-CPU time, all tools added) over each run, in %
    /// of one core.
    pub tool_cpu: Vec<f64>,
    /// CPU used by neither the workload nor the tools (other processes, kernel threads) over
    /// each run, in % of one core: noise, which should be near 0.
    pub other_cpu: Vec<f64>,
    /// Each run's programs, tool by tool.
    pub runs: Vec<RunProgs>,
    /// The most programs not the tools' that ran during one of the runs (another tracer).
    pub foreign_progs: usize,
}

impl Results {
    /// `tool`'s programs summed over the runs whose attach order `keep` accepts.
    pub fn progs_where(&self, tool: Kind, keep: impl Fn(&[Kind]) -> bool) -> Progs {
        let mut sum = Progs::new();
        for r in self.runs.iter().filter(|r| keep(&r.order)) {
            for (name, c) in r.by_tool.get(&tool).into_iter().flatten() {
                let s = sum.entry(name.clone()).or_default();
                s.runs += c.runs;
                s.ns += c.ns;
            }
        }
        sum
    }

    /// `tool`'s programs summed over all the runs.
    pub fn progs(&self, tool: Kind) -> Progs {
        self.progs_where(tool, |_| true)
    }
}

/// The sched_switch program among `progs` (its name carries the hook's variant).
pub fn sched_switch(progs: &Progs) -> Option<Cost> {
    progs
        .iter()
        .find(|(n, _)| n.starts_with("sched_switch"))
        .map(|(_, c)| *c)
}

/// The time of the programs among `progs` that `include` names, per sched_switch run, i.e.
/// per context switch.
pub fn ns_per_switch(progs: &Progs, include: impl Fn(&str) -> bool) -> Option<f64> {
    let sw = sched_switch(progs)?;
    let total: u64 = progs
        .iter()
        .filter(|(n, _)| include(n))
        .map(|(_, c)| c.ns)
        .sum();
    (sw.runs > 0).then(|| total as f64 / sw.runs as f64)
}

/// A scheduler program: one on a `sched:` tracepoint (switch, wakeups, exec, exit), whichever
/// tool's. The daemon's other programs (block, network) are left out of the per-switch
/// figure the target is about.
pub fn is_sched(name: &str) -> bool {
    name.starts_with("sched_")
}

/// One workload size: `perf bench sched messaging` with `groups` groups of 40 processes.
#[derive(Clone)]
pub struct Size {
    pub groups: u32,
    pub perf_args: Vec<String>,
}

impl Size {
    /// `loops` is for one group: at G groups each run does loops/G, so every size passes the
    /// same number of messages and a run takes about as long.
    pub fn new(groups: u32, loops: u32, socketpair: bool) -> Self {
        let mut perf_args: Vec<String> = Vec::new();
        if !socketpair {
            perf_args.push("-p".into());
        }
        perf_args.extend(["-g".into(), groups.to_string()]);
        perf_args.extend(["-l".into(), (loops / groups).max(1).to_string()]);
        Self { groups, perf_args }
    }

    /// Each group is 20 senders and 20 receivers.
    pub fn processes(&self) -> u32 {
        self.groups * 40
    }
}

/// Everything the workload phase measured at one size.
pub struct Workload {
    pub size: Size,
    /// In the order of [`CONFIGS`].
    pub results: Vec<Results>,
    /// An empty program on the classic sched_switch tracepoint, from the warm-up run.
    pub floor: Option<Cost>,
}

impl Workload {
    pub fn get(&self, c: Config) -> &Results {
        let i = CONFIGS
            .iter()
            .position(|x| *x == c)
            .expect("a compared config");
        &self.results[i]
    }

    /// `tool`'s scheduler programs per context switch in configuration `c`.
    pub fn sched_per_switch(&self, c: Config, tool: Kind) -> Option<f64> {
        ns_per_switch(&self.get(c).progs(tool), is_sched)
    }

    /// The scheduler target: ours at most 0.8 × runqlat's per context switch with both
    /// attached; the same ratio from the runs each had alone, for reference.
    pub fn checks(&self) -> Vec<Check> {
        let n = self.size.processes();
        let together = Config::MonitorRunqlat;
        vec![
            Check::ratio(
                format!("sched ns/switch, {n} procs, together"),
                "runqlat",
                self.sched_per_switch(together, Kind::Monitor),
                self.sched_per_switch(together, Kind::Runqlat),
                "ns",
                Target::AtMost(0.8),
            ),
            Check::ratio(
                format!("sched ns/switch, {n} procs, each alone"),
                "runqlat",
                self.sched_per_switch(Config::Monitor, Kind::Monitor),
                self.sched_per_switch(Config::Runqlat, Kind::Runqlat),
                "ns",
                Target::None,
            ),
        ]
    }
}

/// One run of the workload.
struct Sample {
    /// perf's "Total time".
    secs: f64,
    /// Measured around the perf process.
    wall: f64,
    /// Context switches on the whole machine meanwhile.
    switches: u64,
    /// Busy CPU time of the whole machine meanwhile, in seconds.
    busy: f64,
    /// CPU time of the workload's processes, in seconds.
    cpu: f64,
}

/// The `cpu` line of /proc/stat in seconds: user, nice, system, idle, iowait, irq, softirq,
/// steal (guest time is inside user).
fn cpu_times() -> anyhow::Result<[f64; 8]> {
    let s = std::fs::read_to_string("/proc/stat").context("reading /proc/stat")?;
    let line = s
        .lines()
        .find(|l| l.starts_with("cpu "))
        .context("no cpu line in /proc/stat")?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    let mut t = [0.0; 8];
    for (t, v) in t.iter_mut().zip(line.split_whitespace().skip(1)) {
        *t = v.parse::<u64>().unwrap_or(0) as f64 / hz;
    }
    Ok(t)
}

/// Busy time of all CPUs (everything but idle and iowait) from /proc/stat, in seconds.
pub fn machine_busy() -> anyhow::Result<f64> {
    let t = cpu_times()?;
    Ok(t.iter().sum::<f64>() - t[3] - t[4])
}

/// Busy time less steal (the hypervisor running another guest): what this machine's CPUs
/// really ran, in seconds.
pub fn machine_work() -> anyhow::Result<f64> {
    let t = cpu_times()?;
    Ok(t.iter().sum::<f64>() - t[3] - t[4] - t[7])
}

/// CPU time of the reaped children (and theirs), in seconds.
fn children_cpu() -> f64 {
    // SAFETY: getrusage fills the struct it is given.
    let ru = unsafe {
        let mut ru: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_CHILDREN, &mut ru);
        ru
    };
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    secs(ru.ru_utime) + secs(ru.ru_stime)
}

fn context_switches() -> anyhow::Result<u64> {
    let s = std::fs::read_to_string("/proc/stat").context("reading /proc/stat")?;
    s.lines()
        .find_map(|l| l.strip_prefix("ctxt ")?.trim().parse().ok())
        .context("no ctxt line in /proc/stat")
}

fn run_workload(size: &Size) -> anyhow::Result<Sample> {
    procs::check_interrupted()?;
    let c0 = context_switches()?;
    let busy0 = machine_busy()?;
    let cpu0 = children_cpu();
    let t0 = Instant::now();
    let out = cmd::new("perf")
        .args(["bench", "sched", "messaging"])
        .args(&size.perf_args)
        .stdin(Stdio::null())
        .output()
        .context("running perf bench")?;
    let wall = t0.elapsed().as_secs_f64();
    let switches = context_switches()? - c0;
    let busy = machine_busy()? - busy0;
    let cpu = children_cpu() - cpu0;
    procs::check_interrupted()?;
    if !out.status.success() {
        bail!(
            "perf bench sched messaging failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    let secs = stdout
        .lines()
        .find_map(|l| {
            l.trim()
                .strip_prefix("Total time:")?
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        })
        .with_context(|| format!("no \"Total time:\" in perf's output:\n{stdout}"))?;
    Ok(Sample {
        secs,
        wall,
        switches,
        busy,
        cpu,
    })
}

/// Runs the workload once under the tools of `order`, started fresh in that order, adding
/// the figures to `r`; `what` names the configuration in errors.
fn measure(
    what: &str,
    order: &[Kind],
    env: &Env,
    size: &Size,
    tag: &str,
    r: &mut Results,
) -> anyhow::Result<Sample> {
    env.stats.keep_on()?;
    let mut tools = Vec::new();
    for k in order {
        tools.push(tools::start(*k, env, tag)?);
    }
    let mut cpu0 = Vec::new();
    for t in &tools {
        cpu0.push(procs::oncpu_seconds(t.proc.pid())?);
    }
    let before = bpf::snapshot()?;
    let s = run_workload(size)?;
    let after = bpf::snapshot()?;
    let foreign = after
        .iter()
        .filter(|(id, p)| {
            !tools.iter().any(|t| t.ids.contains(id))
                && before.get(id).is_some_and(|b| p.run_cnt > b.run_cnt)
        })
        .count();
    r.foreign_progs = r.foreign_progs.max(foreign);
    let mut tool_cpu = 0.0;
    let mut run = RunProgs {
        order: order.to_vec(),
        ..RunProgs::default()
    };
    for (t, c0) in tools.iter_mut().zip(cpu0) {
        tool_cpu += procs::oncpu_seconds(t.proc.pid())? - c0;
        if let Some(st) = t.proc.exited() {
            bail!(
                "{} exited ({st}) during the workload ({what}); {}",
                t.kind.name(),
                procs::tail(&t.log, 20)
            );
        }
        bpf::add_delta(
            run.by_tool.entry(t.kind).or_default(),
            &t.ids,
            &before,
            &after,
        );
    }
    for t in &mut tools {
        let st = t.proc.stop()?;
        if !st.success() {
            eprintln!(
                "bench: {} exited with {st} when stopped; {}",
                t.kind.name(),
                procs::tail(&t.log, 5)
            );
        }
    }
    if !tools.is_empty() {
        r.tool_cpu.push(100.0 * tool_cpu / s.wall);
    }
    r.runs.push(run);
    r.secs.push(s.secs);
    r.switch_rate.push(s.switches as f64 / s.wall);
    r.other_cpu
        .push((100.0 * (s.busy - s.cpu - tool_cpu) / s.wall).max(0.0));
    Ok(s)
}

/// The order in which `cfg`'s tools start in round `round` (0-based): alternated from round to
/// round where there are two.
pub fn start_order(tools: &[Kind], round: usize) -> Vec<Kind> {
    let mut order = tools.to_vec();
    if round % 2 == 1 {
        order.reverse();
    }
    order
}

/// The workload at each size of `--groups`, one after the other.
pub fn phase(o: &Options, env: &Env) -> anyhow::Result<Vec<Workload>> {
    let mut all = Vec::new();
    for &g in &o.groups {
        all.push(phase_at(o, env, Size::new(g, o.loops, o.socketpair))?);
    }
    Ok(all)
}

fn phase_at(o: &Options, env: &Env, size: Size) -> anyhow::Result<Workload> {
    let g = size.groups;
    eprintln!(
        "bench: workload perf bench sched messaging {} ({} processes); warm-up run under an \
         empty program",
        size.perf_args.join(" "),
        size.processes()
    );
    let mut warm = Results::default();
    measure(
        "warm-up",
        &[Kind::Empty],
        env,
        &size,
        &format!("g{g}-warmup"),
        &mut warm,
    )?;
    let floor = sched_switch(&warm.progs(Kind::Empty));

    let mut results: Vec<Results> = CONFIGS.iter().map(|_| Results::default()).collect();
    for round in 0..o.runs as usize {
        for k in 0..CONFIGS.len() {
            // Rotate the order each round so no configuration always runs first.
            let i = (round + k) % CONFIGS.len();
            let cfg = CONFIGS[i];
            let order = start_order(cfg.tools(), round);
            let tag = if order.len() > 1 {
                format!("together-g{g}-{}", round + 1)
            } else {
                format!("g{g}-{}", round + 1)
            };
            let s = measure(cfg.name(), &order, env, &size, &tag, &mut results[i])?;
            eprintln!(
                "bench: {} processes, round {}/{} {:<15} {:.3} s ({:.0}k context switches/s, \
                 other CPU {:.1} %)",
                size.processes(),
                round + 1,
                o.runs,
                cfg.name(),
                s.secs,
                s.switches as f64 / s.wall / 1e3,
                results[i].other_cpu.last().copied().unwrap_or(0.0)
            );
        }
    }
    Ok(Workload {
        size,
        results,
        floor,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::bench::bpf::costs as progs;

    #[test]
    fn per_switch_adds_the_programs_named_and_divides_by_the_switches() {
        let p = progs(&[
            ("sched_switch_btf", 100, 40_000),
            ("sched_wakeup_btf", 90, 27_000),
            ("block_rq_issue", 10, 5_000),
        ]);
        assert_eq!(ns_per_switch(&p, is_sched), Some(670.0));
        assert_eq!(ns_per_switch(&p, |_| true), Some(720.0));
        assert_eq!(
            ns_per_switch(&progs(&[("sched_wakeup", 1, 1)]), is_sched),
            None
        );
        assert_eq!(
            ns_per_switch(&progs(&[("sched_switch", 0, 0)]), is_sched),
            None
        );
    }

    #[test]
    fn sizes_pass_the_same_messages() {
        let one = Size::new(1, 15000, false);
        assert_eq!(one.perf_args, ["-p", "-g", "1", "-l", "15000"]);
        assert_eq!(one.processes(), 40);
        let ten = Size::new(10, 15000, true);
        assert_eq!(ten.perf_args, ["-g", "10", "-l", "1500"]);
        assert_eq!(ten.processes(), 400);
        assert_eq!(Size::new(10, 5, false).perf_args[4], "1");
    }

    #[test]
    fn two_tools_swap_their_start_order_each_round() {
        let both = Config::MonitorRunqlat.tools();
        assert_eq!(start_order(both, 0), [Kind::Monitor, Kind::Runqlat]);
        assert_eq!(start_order(both, 1), [Kind::Runqlat, Kind::Monitor]);
        assert_eq!(start_order(both, 2), [Kind::Monitor, Kind::Runqlat]);
        assert_eq!(start_order(&[Kind::Runqlat], 1), [Kind::Runqlat]);
    }

    #[test]
    fn progs_are_summed_per_tool_over_the_runs_kept() {
        let mut r = Results::default();
        for order in [
            vec![Kind::Monitor, Kind::Runqlat],
            vec![Kind::Runqlat, Kind::Monitor],
        ] {
            let mut run = RunProgs {
                order,
                ..RunProgs::default()
            };
            run.by_tool
                .insert(Kind::Monitor, progs(&[("sched_switch_btf", 10, 100)]));
            run.by_tool
                .insert(Kind::Runqlat, progs(&[("sched_switch", 10, 200)]));
            r.runs.push(run);
        }
        assert_eq!(r.progs(Kind::Monitor)["sched_switch_btf"].ns, 200);
        let first = r.progs_where(Kind::Runqlat, |o| o[0] == Kind::Runqlat);
        assert_eq!(first["sched_switch"].runs, 10);
        assert!(r.progs(Kind::Bpftrace).is_empty());
    }
}
