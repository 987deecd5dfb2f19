//! Figure 3: the daemon's own CPU and memory at its default refresh, with many processes to
//! track (each count of `--idle-processes` in turn) and a scrape every second.

use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};

use super::{
    procs,
    targets::{Check, Target},
    tools::{self, Kind},
    Env, Options,
};

/// Seconds of refreshes and scrapes after start-up before the measurement.
const WARMUP_SECS: u64 = 3;

pub struct DaemonCost {
    /// Idle processes running besides the machine's own.
    pub idle_processes: u32,
    /// From the daemon's start until its programs ran and /healthz answered.
    pub startup_secs: f64,
    /// VmHWM then.
    pub hwm_attached_kib: u64,
    /// VmHWM after the warm-up ([`WARMUP_SECS`] of refreshes and scrapes, the whole process
    /// table read once): the start-up peak.
    pub hwm_startup_kib: u64,
    pub warmup_secs: u64,
    /// Length of the measurement.
    pub secs: f64,
    /// utime + stime over it, in % of one core.
    pub cpu_pct: f64,
    /// The same from its threads' schedstat (ns-precise), as a cross-check.
    pub oncpu_pct: f64,
    /// VmRSS at the end.
    pub rss_kib: u64,
    /// The highest VmRSS sampled (once a second).
    pub rss_max_kib: u64,
    /// VmHWM at the end: the peak since the daemon started, start-up included.
    pub hwm_kib: u64,
    pub scrape_ms: Vec<f64>,
    pub metrics_bytes: usize,
    /// Sample lines in the last scrape.
    pub series: usize,
    /// Whether the last scrape shows the idle processes' group.
    pub sees_idle: bool,
}

/// The targets at `n` idle processes: (CPU % of a core, steady MiB, peak MiB, which peak).
/// They are set for 1,000 and 10,000; a count in between is held to the 10,000 ones.
fn limits(n: u32) -> (f64, f64, f64, Peak) {
    if n <= 1000 {
        (0.5, 20.0, 30.0, Peak::StartUp)
    } else {
        (1.0, 40.0, 40.0, Peak::WholeRun)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Peak {
    StartUp,
    WholeRun,
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

impl DaemonCost {
    pub fn checks(&self) -> Vec<Check> {
        let n = self.idle_processes;
        let (cpu, steady, peak, which) = limits(n);
        let (peak_label, peak_kib) = match which {
            Peak::StartUp => ("start-up peak (VmHWM after warm-up)", self.hwm_startup_kib),
            Peak::WholeRun => ("peak (VmHWM, whole run)", self.hwm_kib),
        };
        vec![
            Check::figure(
                format!("daemon CPU, {n} idle procs, 1 s scrape"),
                Some(self.cpu_pct),
                "%",
                2,
                Target::Below(cpu),
            ),
            Check::figure(
                format!("daemon RSS, {n} idle procs, steady (highest VmRSS)"),
                Some(mib(self.rss_max_kib)),
                "MiB",
                1,
                Target::Below(steady),
            ),
            Check::figure(
                format!("daemon {peak_label}, {n} idle procs"),
                Some(mib(peak_kib)),
                "MiB",
                1,
                Target::Below(peak),
            ),
        ]
    }
}

/// The daemon's cost at each count of `--idle-processes`, one after the other.
pub fn phase(o: &Options, env: &Env) -> anyhow::Result<Vec<DaemonCost>> {
    o.idle_processes
        .iter()
        .map(|&n| phase_at(n, o.daemon_seconds, env))
        .collect()
}

fn phase_at(n: u32, seconds: u64, env: &Env) -> anyhow::Result<DaemonCost> {
    eprintln!("bench: daemon cost: starting {n} idle processes");
    let t = Instant::now();
    let idle = procs::idle(n)?;
    eprintln!(
        "bench: daemon cost: {} idle processes up in {:.1} s; a scrape every second, {seconds} s",
        idle.len(),
        t.elapsed().as_secs_f64()
    );
    let t0 = Instant::now();
    let mut tool = tools::start(Kind::Monitor, env, &format!("daemon-{n}"))?;
    let startup_secs = t0.elapsed().as_secs_f64();
    let pid = tool.proc.pid();
    let hwm_attached_kib = procs::status_kib(pid, "VmHWM")?;
    // Warm-up, off the clock: the first refreshes and scrapes see every process once.
    for _ in 0..WARMUP_SECS {
        scrape(env)?;
        procs::sleep(Duration::from_secs(1))?;
    }
    let hwm_startup_kib = procs::status_kib(pid, "VmHWM")?;
    let t0 = Instant::now();
    let cpu0 = procs::cpu_seconds(pid)?;
    let oncpu0 = procs::oncpu_seconds(pid)?;
    let mut scrape_ms = Vec::new();
    let mut rss_max_kib = 0;
    let mut body = Vec::new();
    for i in 1..=seconds {
        let s0 = Instant::now();
        body = scrape(env)?;
        scrape_ms.push(s0.elapsed().as_secs_f64() * 1e3);
        rss_max_kib = rss_max_kib.max(procs::status_kib(pid, "VmRSS")?);
        let next = t0 + Duration::from_secs(i);
        procs::sleep(next.saturating_duration_since(Instant::now()))?;
    }
    let secs = t0.elapsed().as_secs_f64();
    let cpu = procs::cpu_seconds(pid)? - cpu0;
    let oncpu = procs::oncpu_seconds(pid)? - oncpu0;
    let rss_kib = procs::status_kib(pid, "VmRSS")?;
    let hwm_kib = procs::status_kib(pid, "VmHWM")?;
    if let Some(st) = tool.proc.exited() {
        bail!(
            "the daemon exited ({st}) during the measurement; {}",
            procs::tail(&tool.log, 20)
        );
    }
    tool.proc.stop()?;
    drop(idle);
    let text = String::from_utf8_lossy(&body);
    Ok(DaemonCost {
        idle_processes: n,
        startup_secs,
        hwm_attached_kib,
        hwm_startup_kib,
        warmup_secs: WARMUP_SECS,
        secs,
        cpu_pct: 100.0 * cpu / secs,
        oncpu_pct: 100.0 * oncpu / secs,
        rss_kib,
        rss_max_kib: rss_max_kib.max(rss_kib),
        hwm_kib,
        scrape_ms,
        metrics_bytes: body.len(),
        series: text
            .lines()
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .count(),
        sees_idle: text.contains("\"sleep\""),
    })
}

fn scrape(env: &Env) -> anyhow::Result<Vec<u8>> {
    let (status, body) =
        procs::http_get(env.addr, "/metrics").context("scraping the daemon's /metrics")?;
    if status != 200 {
        bail!("/metrics answered {status}");
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_count_has_its_targets() {
        assert_eq!(limits(1000), (0.5, 20.0, 30.0, Peak::StartUp));
        assert_eq!(limits(10), (0.5, 20.0, 30.0, Peak::StartUp));
        assert_eq!(limits(10_000), (1.0, 40.0, 40.0, Peak::WholeRun));
        assert_eq!(limits(5000), (1.0, 40.0, 40.0, Peak::WholeRun));
    }
}
