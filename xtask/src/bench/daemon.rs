//! Figure 3: the daemon's own CPU and memory at its default refresh, with many processes to
//! track and a scrape every second.

use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};

use super::{
    procs,
    tools::{self, Kind},
    Env, Options,
};

pub struct DaemonCost {
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

pub fn phase(o: &Options, env: &Env) -> anyhow::Result<DaemonCost> {
    eprintln!(
        "bench: daemon cost: {} idle processes, a scrape every second, {} s",
        o.idle_processes, o.daemon_seconds
    );
    let idle = procs::idle(o.idle_processes)?;
    let mut tool = tools::start(Kind::Monitor, env, "daemon")?;
    let pid = tool.proc.pid();
    // Warm-up, off the clock: the first refreshes and scrapes see every process once.
    for _ in 0..3 {
        scrape(env)?;
        procs::sleep(Duration::from_secs(1))?;
    }
    let t0 = Instant::now();
    let cpu0 = procs::cpu_seconds(pid)?;
    let oncpu0 = procs::oncpu_seconds(pid)?;
    let mut scrape_ms = Vec::new();
    let mut rss_max_kib = 0;
    let mut body = Vec::new();
    for i in 1..=o.daemon_seconds {
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
