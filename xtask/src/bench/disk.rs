//! Figure 5: block I/O. fio's direct random reads and writes on a loop device, alone, under
//! our daemon (block collector alone, and every default collector), and under libbpf-tools
//! `biolatency`; configurations interleaved round by round, each tool started fresh. For
//! each: the workload's IOPS, and what each of the tool's programs cost per event, from the
//! kernel's own accounting over the same runs.

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
    Env, Options,
};
use crate::cmd;

pub const BIOLATENCY: &str = "/usr/sbin/biolatency";

#[derive(Clone, Copy, PartialEq, Eq)]
enum Config {
    Baseline,
    MonitorBlock,
    MonitorAll,
    Biolatency,
}

const CONFIGS: [Config; 4] = [
    Config::Baseline,
    Config::MonitorBlock,
    Config::MonitorAll,
    Config::Biolatency,
];

impl Config {
    fn name(self) -> &'static str {
        match self {
            Config::Baseline => "baseline",
            Config::MonitorBlock => "monitor-block",
            Config::MonitorAll => "monitor",
            Config::Biolatency => "biolatency",
        }
    }
}

#[derive(Default)]
struct Results {
    /// fio's read+write IOPS per run.
    iops: Vec<f64>,
    /// The tool's programs, by name, summed over the runs.
    progs: BTreeMap<String, Cost>,
}

pub struct DiskCost {
    results: Vec<Results>,
    fio: String,
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
        "--numjobs=2",
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

/// Starts `cfg`'s tool and returns once its block programs run.
fn start(cfg: Config, env: &Env, lo: &Loop, tag: &str) -> anyhow::Result<Option<(Proc, PathBuf)>> {
    let mut c = match cfg {
        Config::Baseline => return Ok(None),
        Config::MonitorBlock | Config::MonitorAll => {
            let mut c = Command::new(&env.bin);
            c.args(["run", "--web.listen-address"])
                .arg(env.addr.to_string())
                .arg("--bpf.stats");
            if cfg == Config::MonitorBlock {
                c.args(["--collector.disable-defaults", "--collector.block"]);
            }
            c
        }
        Config::Biolatency => Command::new(BIOLATENCY),
    };
    let log = env.dir.join(format!("disk-{}-{tag}.log", cfg.name()));
    let stop = if cfg == Config::Biolatency {
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
    let p = bpf::start_attached(&mut c, stop, cfg.name(), &log, poke, |n| {
        n.contains("rq_complete")
    })?;
    Ok(Some((p, log)))
}

pub fn phase(o: &Options, env: &Env) -> anyhow::Result<DiskCost> {
    if !Path::new(BIOLATENCY).exists() {
        bail!("{BIOLATENCY} is missing (Debian package libbpf-tools)");
    }
    let lo = Loop::new(&env.dir, 1024)?;
    let args = fio_args(&lo.dev, o.disk_seconds);
    let mut results: Vec<Results> = CONFIGS.iter().map(|_| Results::default()).collect();
    for round in 0..o.disk_runs {
        for (i, cfg) in CONFIGS.iter().enumerate() {
            eprintln!(
                "bench: disk round {}/{} {}",
                round + 1,
                o.disk_runs,
                cfg.name()
            );
            let tool = start(*cfg, env, &lo, &round.to_string())?;
            let ids = tool
                .as_ref()
                .map(|(p, _)| bpf::owned_prog_ids(p.pid()))
                .unwrap_or_default();
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
            bpf::add_delta(&mut results[i].progs, &ids, &before, &after);
            if let Some((mut p, log)) = tool {
                let s = p.stop()?;
                if !s.success() && cfg != &Config::Biolatency {
                    bail!("{} exited with {s}; {}", cfg.name(), procs::tail(&log, 20));
                }
            }
        }
    }
    Ok(DiskCost {
        results,
        fio: format!("fio {}", args.join(" ")),
    })
}

pub fn print(o: &Options, d: &DiskCost) {
    println!();
    println!(
        "== Disk: {} ({} runs per configuration, interleaved)",
        d.fio, o.disk_runs
    );
    let base = median(&d.results[0].iops);
    println!(
        "{:<15} {:>12} {:>18}",
        "configuration", "median IOPS", "median/baseline"
    );
    for (cfg, r) in CONFIGS.iter().zip(&d.results) {
        let m = median(&r.iops);
        println!(
            "{:<15} {:>12.0} {:>7.3} ({:>+6.1} %)",
            cfg.name(),
            m,
            m / base,
            100.0 * (m / base - 1.0)
        );
    }
    println!();
    println!("Per program, over all runs (kernel.bpf_stats_enabled):");
    println!(
        "{:<15} {:<24} {:>12} {:>12}",
        "configuration", "program", "events", "ns/event"
    );
    for (cfg, r) in CONFIGS.iter().zip(&d.results) {
        for (name, c) in &r.progs {
            // The daemon's scheduler programs are figure 2's subject.
            if !name.starts_with("block") && cfg != &Config::Biolatency {
                continue;
            }
            println!(
                "{:<15} {:<24} {:>12} {:>12}",
                cfg.name(),
                name,
                c.runs,
                c.ns_per_run().map_or("-".into(), |v| format!("{v:.1}"))
            );
        }
    }
    let per = |cfg: Config| -> Option<f64> {
        let r = &d.results[CONFIGS.iter().position(|c| *c == cfg)?];
        let total: u64 = r
            .progs
            .iter()
            .filter(|(n, _)| n.starts_with("block") || cfg == Config::Biolatency)
            .map(|(_, c)| c.ns)
            .sum();
        let completions = r
            .progs
            .iter()
            .find(|(n, _)| n.contains("rq_complete"))?
            .1
            .runs;
        (completions > 0).then(|| total as f64 / completions as f64)
    };
    if let (Some(m), Some(b)) = (per(Config::MonitorBlock), per(Config::Biolatency)) {
        println!(
            "Block programs per completed request: monitor {m:.1} ns, biolatency {b:.1} ns ({:.2}x)",
            m / b
        );
    }
}
