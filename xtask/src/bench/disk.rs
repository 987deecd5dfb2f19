//! Figure 5: block I/O. fio's direct random reads and writes on a loop device, alone, under
//! our daemon (block collector alone, and every default collector), under libbpf-tools
//! `biolatency`, and under both the daemon and biolatency at once; configurations interleaved
//! round by round, each tool started fresh. For each: the workload's IOPS, and what each of
//! the tools' programs cost per event, from the kernel's own accounting over the same runs.

use std::{
    collections::BTreeMap,
    fs::File,
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

use anyhow::{bail, Context as _};

use super::{
    bpf::{self, Cost},
    procs::{self, Proc},
    report::median,
    targets::{Check, Target},
    Env, Options,
};
use crate::cmd;

const BIOLATENCY: &str = "/usr/sbin/biolatency";

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Config {
    Baseline,
    MonitorBlock,
    MonitorAll,
    Biolatency,
    /// The daemon (every default collector) and biolatency attached at the same time, each
    /// one's programs told apart by the fds its process holds.
    MonitorBiolatency,
    /// The block collector alone on the pre-6.5 submitter path (`block_bio_queue` +
    /// `block_split`, as on 5.10 and 6.1): what that fallback costs.
    MonitorBlockBio,
}

const CONFIGS: [Config; 6] = [
    Config::Baseline,
    Config::MonitorBlock,
    Config::MonitorAll,
    Config::Biolatency,
    Config::MonitorBiolatency,
    Config::MonitorBlockBio,
];

impl Config {
    fn name(self) -> &'static str {
        match self {
            Config::Baseline => "baseline",
            Config::MonitorBlock => "monitor-block",
            Config::MonitorAll => "monitor",
            Config::Biolatency => "biolatency",
            Config::MonitorBiolatency => "monitor+biolatency",
            Config::MonitorBlockBio => "monitor-block-pre-6.5",
        }
    }

    /// The tools attached, in the order they start in even rounds (reversed in odd ones).
    fn tools(self) -> &'static [Tool] {
        match self {
            Config::Baseline => &[],
            Config::MonitorBlock => &[Tool::MonitorBlock],
            Config::MonitorAll => &[Tool::MonitorAll],
            Config::Biolatency => &[Tool::Biolatency],
            Config::MonitorBiolatency => &[Tool::MonitorAll, Tool::Biolatency],
            Config::MonitorBlockBio => &[Tool::MonitorBlockBio],
        }
    }
}

/// A tool the disk phase starts.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
enum Tool {
    /// The daemon with only its block collector.
    MonitorBlock,
    /// The daemon with every default collector.
    MonitorAll,
    Biolatency,
    /// The daemon with only its block collector, on the pre-6.5 submitter hooks.
    MonitorBlockBio,
}

impl Tool {
    fn name(self) -> &'static str {
        match self {
            Tool::MonitorBlock => "monitor-block",
            Tool::MonitorAll => "monitor",
            Tool::Biolatency => "biolatency",
            Tool::MonitorBlockBio => "monitor-block-bio",
        }
    }

    /// Whether `program` is one of this tool's block programs (the daemon's scheduler
    /// programs, which also run for fio's context switches, are figure 2's subject).
    fn is_block(self, program: &str) -> bool {
        self == Tool::Biolatency || program.starts_with("block")
    }
}

#[derive(Default)]
struct Results {
    /// fio's read+write IOPS per run.
    iops: Vec<f64>,
    /// Each tool's programs, by name, summed over the runs.
    progs: BTreeMap<Tool, BTreeMap<String, Cost>>,
}

/// The time of `tool`'s block programs per completed request (its completion program's
/// runs).
fn per_request(tool: Tool, progs: &BTreeMap<String, Cost>) -> Option<f64> {
    let total: u64 = progs
        .iter()
        .filter(|(n, _)| tool.is_block(n))
        .map(|(_, c)| c.ns)
        .sum();
    let completions = progs
        .iter()
        .find(|(n, _)| n.contains("rq_complete"))?
        .1
        .runs;
    (completions > 0).then(|| total as f64 / completions as f64)
}

pub struct DiskCost {
    results: Vec<Results>,
    fio: String,
    /// Seconds per fio run.
    seconds: u64,
}

/// fio's jobs (`--numjobs`): each waits for one request at a time (`psync`).
const JOBS: u64 = 2;

/// `tool`'s programs (every one, the scheduler's included) per I/O, and that time as a share
/// of each I/O's time in its job: `JOBS / IOPS` seconds, since each job has one request in
/// flight. The kernel's own accounting, so it has none of the throughput's run-to-run noise:
/// what the loss would be if all of that time were spent on the I/O's way (the wakeups and
/// switches of a request's submission and completion are), leaving out what the kernel pays
/// around each program (its entry, and the stats' own clock reads) and cache effects.
fn program_share(r: &Results, tool: Tool, seconds: u64) -> Option<(f64, f64)> {
    let ns: u64 = r.progs.get(&tool)?.values().map(|c| c.ns).sum();
    let ios: f64 = r.iops.iter().map(|i| i * seconds as f64).sum();
    let job_ns = (JOBS * seconds * r.iops.len() as u64) as f64 * 1e9;
    (ios > 0.0 && job_ns > 0.0).then(|| (ns as f64 / ios, 100.0 * ns as f64 / job_ns))
}

/// A loop device over a file under `dir`, detached when dropped.
struct Loop {
    dev: String,
    file: PathBuf,
}

impl Loop {
    fn new(dir: &Path, size_mib: u64) -> anyhow::Result<Self> {
        let file = dir.join("disk.img");
        let f = File::create(&file).with_context(|| format!("creating {}", file.display()))?;
        f.set_len(size_mib << 20)?;
        let out = cmd::new("losetup")
            .args(["--find", "--show"])
            .arg(&file)
            .output()
            .context("running losetup")?;
        if !out.status.success() {
            bail!("losetup: {}", String::from_utf8_lossy(&out.stderr).trim());
        }
        let dev = String::from_utf8(out.stdout)?.trim().to_string();
        Ok(Self { dev, file })
    }
}

impl Drop for Loop {
    fn drop(&mut self) {
        let _ = cmd::new("losetup").args(["-d", &self.dev]).status();
        let _ = std::fs::remove_file(&self.file);
    }
}

fn fio_args(dev: &str, seconds: u64) -> Vec<String> {
    [
        "--name=bench",
        &format!("--filename={dev}"),
        "--direct=1",
        "--rw=randrw",
        "--bs=4k",
        "--ioengine=psync",
        &format!("--numjobs={JOBS}"),
        "--group_reporting",
        "--time_based",
        &format!("--runtime={seconds}"),
        "--output-format=json",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// Read plus write IOPS from fio's JSON report.
fn iops(json: &[u8]) -> anyhow::Result<f64> {
    let v: serde_json::Value = serde_json::from_slice(json).context("parsing fio's JSON")?;
    let job = &v["jobs"][0];
    let r = job["read"]["iops"]
        .as_f64()
        .context("fio JSON: no read iops")?;
    let w = job["write"]["iops"]
        .as_f64()
        .context("fio JSON: no write iops")?;
    Ok(r + w)
}

/// Starts `tool` and returns once its block programs run.
fn start(tool: Tool, env: &Env, lo: &Loop, tag: &str) -> anyhow::Result<(Proc, PathBuf)> {
    let mut c = match tool {
        Tool::MonitorBlock | Tool::MonitorAll | Tool::MonitorBlockBio => {
            let mut c = Command::new(&env.bin);
            c.args(["run", "--web.listen-address"])
                .arg(env.addr.to_string())
                .arg("--bpf.stats");
            if tool != Tool::MonitorAll {
                c.args(["--collector.disable-defaults", "--collector.block"]);
            }
            if tool == Tool::MonitorBlockBio {
                c.args(["--debug.fail-attach", "block_owner_io_start"]);
            }
            c
        }
        Tool::Biolatency => Command::new(BIOLATENCY),
    };
    let log = env.dir.join(format!("disk-{}-{tag}.log", tool.name()));
    let stop = if tool == Tool::Biolatency {
        libc::SIGINT
    } else {
        libc::SIGTERM
    };
    // Attached once a completion program of its has run: poke the device until one does.
    let poke = || {
        let _ = cmd::new("dd")
            .args([
                &format!("if={}", lo.dev),
                "of=/dev/null",
                "bs=4k",
                "count=1",
                "iflag=direct",
            ])
            .stderr(Stdio::null())
            .status();
        Ok(())
    };
    let p = bpf::start_attached(&mut c, stop, tool.name(), &log, poke, |n| {
        n.contains("rq_complete")
    })?;
    Ok((p, log))
}

/// Fails early, with what is missing.
pub fn preflight() -> anyhow::Result<()> {
    if !Path::new(BIOLATENCY).exists() {
        bail!("{BIOLATENCY} is missing (Debian package libbpf-tools)");
    }
    Ok(())
}

pub fn phase(o: &Options, env: &Env) -> anyhow::Result<DiskCost> {
    let lo = Loop::new(&env.dir, 1024)?;
    let args = fio_args(&lo.dev, o.disk_seconds);
    let mut results: Vec<Results> = CONFIGS.iter().map(|_| Results::default()).collect();
    for round in 0..o.disk_runs {
        for k in 0..CONFIGS.len() {
            // Rotated each round, as the scheduler figure's are: with the baseline always
            // first, whatever the first run of a round meets (a cold cache, a host that
            // just got busy) was a loss or gain of every other configuration.
            let i = (round as usize + k) % CONFIGS.len();
            let cfg = &CONFIGS[i];
            eprintln!(
                "bench: disk round {}/{} {}",
                round + 1,
                o.disk_runs,
                cfg.name()
            );
            env.stats.keep_on()?;
            let mut order = cfg.tools().to_vec();
            if round % 2 == 1 {
                order.reverse();
            }
            let together = if order.len() > 1 { "together-" } else { "" };
            let mut tools = Vec::new();
            for t in order {
                let (p, log) = start(t, env, &lo, &format!("{together}{round}"))?;
                tools.push((t, p, log));
            }
            let ids: Vec<_> = tools
                .iter()
                .map(|(_, p, _)| bpf::owned_prog_ids(p.pid()))
                .collect();
            let before = bpf::snapshot()?;
            let out = cmd::new("fio")
                .args(&args)
                .stdin(Stdio::null())
                .output()
                .context("running fio")?;
            let after = bpf::snapshot()?;
            if !out.status.success() {
                bail!(
                    "fio failed: {}",
                    String::from_utf8_lossy(&out.stderr).trim()
                );
            }
            results[i].iops.push(iops(&out.stdout)?);
            for ((t, p, log), ids) in tools.iter_mut().zip(&ids) {
                bpf::add_delta(
                    results[i].progs.entry(*t).or_default(),
                    ids,
                    &before,
                    &after,
                );
                let s = p.stop()?;
                if !s.success() && *t != Tool::Biolatency {
                    bail!("{} exited with {s}; {}", t.name(), procs::tail(log, 20));
                }
            }
        }
    }
    Ok(DiskCost {
        results,
        fio: format!("fio {}", args.join(" ")),
        seconds: o.disk_seconds,
    })
}

impl DiskCost {
    fn get(&self, c: Config) -> &Results {
        &self.results[CONFIGS.iter().position(|x| *x == c).expect("a disk config")]
    }

    fn per_request(&self, c: Config, t: Tool) -> Option<f64> {
        per_request(t, self.get(c).progs.get(&t)?)
    }

    /// fio's IOPS lost under `c`, round by round against the baseline (`Check::paired_loss`).
    fn loss(&self, label: String, c: Config, target: Target) -> Check {
        Check::paired_loss(
            label,
            &self.get(Config::Baseline).iops,
            &self.get(c).iops,
            target,
        )
    }

    /// The block targets: ours at most biolatency's per completed request with both
    /// attached, and at most 3 % of fio's IOPS lost under the daemon at its defaults.
    pub fn checks(&self) -> Vec<Check> {
        let together = Config::MonitorBiolatency;
        let mut v = vec![
            Check::ratio(
                "block ns/request, together",
                "biolatency",
                self.per_request(together, Tool::MonitorAll),
                self.per_request(together, Tool::Biolatency),
                "ns",
                Target::AtMost(1.0),
            ),
            Check::ratio(
                "block ns/request, each alone (block collector only)",
                "biolatency",
                self.per_request(Config::MonitorBlock, Tool::MonitorBlock),
                self.per_request(Config::Biolatency, Tool::Biolatency),
                "ns",
                Target::None,
            ),
            Check::ratio(
                "block ns/request, pre-6.5 submitter path (block collector only)",
                "the 6.5+ path",
                self.per_request(Config::MonitorBlockBio, Tool::MonitorBlockBio),
                self.per_request(Config::MonitorBlock, Tool::MonitorBlock),
                "ns",
                Target::None,
            ),
            self.loss(
                "fio IOPS loss, monitor (default collectors)".into(),
                Config::MonitorAll,
                Target::AtMost(3.0),
            ),
        ];
        for c in [
            Config::MonitorBlock,
            Config::Biolatency,
            Config::MonitorBiolatency,
            Config::MonitorBlockBio,
        ] {
            v.push(self.loss(format!("fio IOPS loss, {}", c.name()), c, Target::None));
        }
        for (c, t) in [
            (Config::MonitorAll, Tool::MonitorAll),
            (Config::Biolatency, Tool::Biolatency),
        ] {
            let share = program_share(self.get(c), t, self.seconds);
            let check = Check::figure(
                format!(
                    "fio: {}'s programs per I/O, share of the I/O's time (kernel accounting)",
                    t.name()
                ),
                share.map(|(_, pct)| pct),
                "%",
                2,
                Target::None,
            );
            v.push(match share {
                Some((ns, pct)) => check.with_detail(format!("{ns:.0} ns per I/O, {pct:.2} %")),
                None => check,
            });
        }
        v
    }
}

pub fn print(o: &Options, d: &DiskCost) {
    println!();
    println!(
        "== Disk: {} ({} runs per configuration, interleaved)",
        d.fio, o.disk_runs
    );
    let base = median(&d.get(Config::Baseline).iops);
    println!(
        "{:<19} {:>12} {:>18}",
        "configuration", "median IOPS", "median/baseline"
    );
    for (cfg, r) in CONFIGS.iter().zip(&d.results) {
        let m = median(&r.iops);
        println!(
            "{:<19} {:>12.0} {:>7.3} ({:>+6.1} %)",
            cfg.name(),
            m,
            m / base,
            100.0 * (m / base - 1.0)
        );
    }
    println!();
    println!("Per program, over all runs (kernel.bpf_stats_enabled):");
    println!(
        "{:<19} {:<14} {:<24} {:>12} {:>12}",
        "configuration", "tool", "program", "events", "ns/event"
    );
    for (cfg, r) in CONFIGS.iter().zip(&d.results) {
        for (tool, progs) in &r.progs {
            for (name, c) in progs.iter().filter(|(n, _)| tool.is_block(n)) {
                println!(
                    "{:<19} {:<14} {:<24} {:>12} {:>12}",
                    cfg.name(),
                    tool.name(),
                    name,
                    c.runs,
                    c.ns_per_run().map_or("-".into(), |v| format!("{v:.1}"))
                );
            }
        }
    }
    for cfg in &CONFIGS[1..] {
        let figures: Vec<String> = cfg
            .tools()
            .iter()
            .map(|t| {
                format!(
                    "{} {}",
                    t.name(),
                    d.per_request(*cfg, *t)
                        .map_or("-".into(), |v| format!("{v:.1} ns"))
                )
            })
            .collect();
        println!(
            "Block programs per completed request, {}: {}",
            cfg.name(),
            figures.join(", ")
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_request_counts_block_programs_per_completion() {
        let progs = bpf::costs(&[
            ("block_rq_issue", 10, 1_000),
            ("block_rq_complete", 10, 2_000),
            ("sched_switch_btf", 50, 20_000),
        ]);
        assert_eq!(per_request(Tool::MonitorAll, &progs), Some(300.0));
        // biolatency's programs are all block ones.
        assert_eq!(per_request(Tool::Biolatency, &progs), Some(2300.0));
        assert_eq!(per_request(Tool::MonitorAll, &BTreeMap::new()), None);
    }

    #[test]
    fn program_share_is_the_programs_time_per_io_over_each_jobs_time_per_io() {
        let progs = bpf::costs(&[("block_rq_complete", 0, 6_000_000)]);
        // Two runs of 1 s at 1,000 and 2,000 IOPS: 3,000 I/Os, 2 µs of programs each; 6 ms
        // of programs over 2 jobs x 2 s of waiting for I/O.
        let r = Results {
            iops: vec![1_000.0, 2_000.0],
            progs: [(Tool::MonitorAll, progs)].into_iter().collect(),
        };
        let (ns, pct) = program_share(&r, Tool::MonitorAll, 1).unwrap();
        assert!((ns - 2_000.0).abs() < 1e-9, "{ns}");
        assert!((pct - 0.15).abs() < 1e-9, "{pct}");
        assert_eq!(program_share(&r, Tool::Biolatency, 1), None);
    }
}
