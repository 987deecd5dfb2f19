//! Figures 1 and 2: the workload's time under each tool, and what each tool's programs cost
//! per run, from the kernel's own accounting, over the same runs.

use std::{collections::BTreeMap, process::Stdio, time::Instant};

use anyhow::{bail, Context as _};

use super::{
    bpf::{self, Cost},
    procs,
    tools::{self, Config, CONFIGS},
    Env, Options,
};
use crate::cmd;

/// A configuration's figures, over all its runs.
#[derive(Default)]
pub struct Results {
    /// perf's own "Total time" per run, in seconds.
    pub secs: Vec<f64>,
    /// Context switches per second over each run, from /proc/stat.
    pub switch_rate: Vec<f64>,
    /// The tool's own CPU (its threads' on-CPU time) over each run, in % of one core.
    pub tool_cpu: Vec<f64>,
    /// CPU used by neither the workload nor the tool (other processes, kernel threads) over
    /// each run, in % of one core: noise, which should be near 0.
    pub other_cpu: Vec<f64>,
    /// The tool's programs, by name, summed over the runs.
    pub progs: BTreeMap<String, Cost>,
    /// The most programs not the tool's that ran during one of the runs (another tracer).
    pub foreign_progs: usize,
}

impl Results {
    pub fn sched_switch(&self) -> Option<Cost> {
        self.progs
            .iter()
            .find(|(n, _)| n.starts_with("sched_switch"))
            .map(|(_, c)| *c)
    }

    /// All of the tool's program time per sched_switch run, i.e. per context switch.
    pub fn ns_per_switch(&self) -> Option<f64> {
        let sw = self.sched_switch()?;
        let total: u64 = self.progs.values().map(|c| c.ns).sum();
        (sw.runs > 0).then(|| total as f64 / sw.runs as f64)
    }
}

/// Everything the workload phase measured.
pub struct Workload {
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

/// Busy time of all CPUs (everything but idle and iowait) from /proc/stat, in seconds.
pub fn machine_busy() -> anyhow::Result<f64> {
    let s = std::fs::read_to_string("/proc/stat").context("reading /proc/stat")?;
    let line = s
        .lines()
        .find(|l| l.starts_with("cpu "))
        .context("no cpu line in /proc/stat")?;
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|v| v.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal (guest time is inside user).
    let busy: u64 = v.iter().take(8).sum::<u64>() - v.get(3).unwrap_or(&0) - v.get(4).unwrap_or(&0);
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1);
    Ok(busy as f64 / hz as f64)
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

fn run_workload(env: &Env) -> anyhow::Result<Sample> {
    procs::check_interrupted()?;
    let c0 = context_switches()?;
    let busy0 = machine_busy()?;
    let cpu0 = children_cpu();
    let t0 = Instant::now();
    let out = cmd::new("perf")
        .args(["bench", "sched", "messaging"])
        .args(&env.perf_args)
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

/// Runs the workload once under `cfg`'s tool, started fresh, adding the figures to `r`.
fn measure(cfg: Config, env: &Env, tag: &str, r: &mut Results) -> anyhow::Result<Sample> {
    env.stats.keep_on()?;
    let mut tool = tools::start(cfg, env, tag)?;
    let cpu0 = match &tool {
        Some(t) => procs::oncpu_seconds(t.proc.pid())?,
        None => 0.0,
    };
    let before = bpf::snapshot()?;
    let s = run_workload(env)?;
    let after = bpf::snapshot()?;
    let mut tool_cpu = 0.0;
    let mine = tool.as_ref().map(|t| &t.ids);
    let foreign = after
        .iter()
        .filter(|(id, p)| {
            mine.is_none_or(|m| !m.contains(id))
                && before.get(id).is_some_and(|b| p.run_cnt > b.run_cnt)
        })
        .count();
    r.foreign_progs = r.foreign_progs.max(foreign);
    if let Some(t) = &mut tool {
        let cpu = procs::oncpu_seconds(t.proc.pid())? - cpu0;
        if let Some(st) = t.proc.exited() {
            bail!(
                "{} exited ({st}) during the workload; {}",
                cfg.name(),
                procs::tail(&t.log, 20)
            );
        }
        tool_cpu = cpu;
        r.tool_cpu.push(100.0 * cpu / s.wall);
        bpf::add_delta(&mut r.progs, &t.ids, &before, &after);
        let st = t.proc.stop()?;
        if !st.success() {
            eprintln!(
                "bench: {} exited with {st} when stopped; {}",
                cfg.name(),
                procs::tail(&t.log, 5)
            );
        }
    }
    r.secs.push(s.secs);
    r.switch_rate.push(s.switches as f64 / s.wall);
    r.other_cpu
        .push((100.0 * (s.busy - s.cpu - tool_cpu) / s.wall).max(0.0));
    Ok(s)
}

pub fn phase(o: &Options, env: &Env) -> anyhow::Result<Workload> {
    eprintln!(
        "bench: workload perf bench sched messaging {}; warm-up run under an empty program",
        env.perf_args.join(" ")
    );
    let mut warm = Results::default();
    measure(Config::Empty, env, "warmup", &mut warm)?;
    let floor = warm.sched_switch();

    let mut results: Vec<Results> = CONFIGS.iter().map(|_| Results::default()).collect();
    for round in 0..o.runs as usize {
        for k in 0..CONFIGS.len() {
            // Rotate the order each round so no configuration always runs first.
            let i = (round + k) % CONFIGS.len();
            let cfg = CONFIGS[i];
            let s = measure(cfg, env, &(round + 1).to_string(), &mut results[i])?;
            eprintln!(
                "bench: round {}/{} {:<9} {:.3} s ({:.0}k context switches/s, other CPU {:.1} %)",
                round + 1,
                o.runs,
                cfg.name(),
                s.secs,
                s.switches as f64 / s.wall / 1e3,
                results[i].other_cpu.last().copied().unwrap_or(0.0)
            );
        }
    }
    Ok(Workload { results, floor })
}
