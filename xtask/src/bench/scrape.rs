//! Figure 7: scrape load. `--scrape-clients` clients (20) scrape `/metrics` as fast as they
//! can over kept-alive HTTP/1.1 connections while one more client measures the latency of
//! a health check, each on a fresh connection as a liveness probe makes it; first against our
//! daemon (`/healthz`), then against node_exporter (`/`, its landing page: it has no health
//! endpoint) started on a free loopback port. For each: scrapes per second, the check's
//! latency (p50, p99, max) and the server's own CPU meanwhile.

use std::{
    fs::File,
    net::{Ipv4Addr, SocketAddr},
    path::Path,
    process::{Command, Stdio},
    sync::atomic::{AtomicBool, AtomicU64, Ordering},
    time::{Duration, Instant},
};

use anyhow::{bail, Context as _};

use super::{
    free_port,
    http::Client,
    procs::{self, Proc},
    targets::{percentile, Check, Target},
    tools::{self, Kind},
    Env, Options,
};

pub const NODE_EXPORTER: &str = "/usr/bin/prometheus-node-exporter";

/// Scraping before the measurement starts (connections opened, caches warm).
const WARMUP: Duration = Duration::from_secs(1);
/// Pause between two health checks: a probe, not a load of its own.
const CHECK_EVERY: Duration = Duration::from_millis(10);
const TIMEOUT: Duration = Duration::from_secs(10);

/// What one server did under the load.
pub struct Load {
    pub server: &'static str,
    /// The health check's path.
    pub check_path: &'static str,
    /// Length of the measurement.
    pub secs: f64,
    /// `/metrics` answered 200 during it.
    pub scrapes: u64,
    /// Failed scrapes (errors, timeouts, other statuses).
    pub scrape_errors: u64,
    pub bytes: u64,
    /// Connections the scrapers opened during it (1 per client if kept alive).
    pub connects: u64,
    /// Each health check's latency, connect to last byte, in ms (200s only).
    pub check_ms: Vec<f64>,
    pub check_errors: u64,
    /// The server's utime+stime over it, in % of one core.
    pub server_cpu_pct: f64,
}

impl Load {
    pub fn scrapes_per_sec(&self) -> f64 {
        self.scrapes as f64 / self.secs
    }

    fn pct(&self, p: f64) -> Option<f64> {
        percentile(&self.check_ms, p)
    }

    fn latency(&self) -> String {
        let ms = |v: Option<f64>| v.map_or("-".into(), |v| format!("{v:.2}"));
        format!(
            "p50 {} / p99 {} / max {} ms ({} checks, {} failed)",
            ms(self.pct(50.0)),
            ms(self.pct(99.0)),
            ms(self.pct(100.0)),
            self.check_ms.len(),
            self.check_errors
        )
    }
}

pub struct ScrapeCost {
    pub clients: u32,
    pub ours: Load,
    pub node: Load,
}

/// Counters the scrapers add to.
#[derive(Default)]
struct Counters {
    scrapes: AtomicU64,
    errors: AtomicU64,
    bytes: AtomicU64,
    connects: AtomicU64,
}

impl Counters {
    fn read(&self) -> [u64; 4] {
        [
            self.scrapes.load(Ordering::Relaxed),
            self.errors.load(Ordering::Relaxed),
            self.bytes.load(Ordering::Relaxed),
            self.connects.load(Ordering::Relaxed),
        ]
    }
}

/// One scraper: `/metrics` again and again on a kept-alive connection until `stop`.
fn scraper(addr: SocketAddr, stop: &AtomicBool, n: &Counters) {
    let mut c = Client::new(addr, TIMEOUT);
    while !stop.load(Ordering::Relaxed) {
        let before = c.connects;
        let r = c.get("/metrics");
        n.connects.fetch_add(c.connects - before, Ordering::Relaxed);
        match r {
            Ok(r) if r.status == 200 => {
                n.scrapes.fetch_add(1, Ordering::Relaxed);
                n.bytes.fetch_add(r.body.len() as u64, Ordering::Relaxed);
            }
            _ => {
                n.errors.fetch_add(1, Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    }
}

/// Loads the server `pid` at `addr` with `clients` scrapers for `seconds`, measuring
/// `check_path` meanwhile.
fn load(
    server: &'static str,
    addr: SocketAddr,
    pid: u32,
    check_path: &'static str,
    clients: u32,
    seconds: u64,
) -> anyhow::Result<Load> {
    let stop = AtomicBool::new(false);
    let n = Counters::default();
    std::thread::scope(|s| {
        for _ in 0..clients {
            s.spawn(|| scraper(addr, &stop, &n));
        }
        // Whatever happens below, the scrapers stop before the scope joins them.
        let measured = (|| {
            procs::sleep(WARMUP)?;
            let c0 = n.read();
            let cpu0 = procs::cpu_seconds(pid)?;
            let t0 = Instant::now();
            let end = t0 + Duration::from_secs(seconds);
            let mut check_ms = Vec::new();
            let mut check_errors = 0;
            while Instant::now() < end {
                procs::check_interrupted()?;
                let t = Instant::now();
                // A fresh connection each time, as a liveness probe opens one.
                match Client::new(addr, TIMEOUT).get(check_path) {
                    Ok(r) if r.status == 200 => check_ms.push(t.elapsed().as_secs_f64() * 1e3),
                    _ => check_errors += 1,
                }
                std::thread::sleep(CHECK_EVERY);
            }
            let secs = t0.elapsed().as_secs_f64();
            let cpu = procs::cpu_seconds(pid)? - cpu0;
            let c1 = n.read();
            anyhow::Ok(Load {
                server,
                check_path,
                secs,
                scrapes: c1[0] - c0[0],
                scrape_errors: c1[1] - c0[1],
                bytes: c1[2] - c0[2],
                connects: c1[3] - c0[3],
                check_ms,
                check_errors,
                server_cpu_pct: 100.0 * cpu / secs,
            })
        })();
        stop.store(true, Ordering::Relaxed);
        measured
    })
}

/// Starts node_exporter on `addr` and returns once `/metrics` answers.
fn start_node_exporter(addr: SocketAddr, log: &Path) -> anyhow::Result<Proc> {
    let f = File::create(log).with_context(|| format!("creating {}", log.display()))?;
    let mut c = Command::new(NODE_EXPORTER);
    c.arg(format!("--web.listen-address={addr}"))
        .stdin(Stdio::null())
        .stdout(f.try_clone()?)
        .stderr(f);
    let mut p = Proc::spawn(&mut c, libc::SIGTERM, "node_exporter")?;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        procs::check_interrupted()?;
        if let Some(s) = p.exited() {
            bail!(
                "node_exporter exited ({s}) before answering; {}",
                procs::tail(log, 20)
            );
        }
        if Client::new(addr, TIMEOUT)
            .get("/metrics")
            .is_ok_and(|r| r.status == 200)
        {
            return Ok(p);
        }
        if Instant::now() > deadline {
            bail!(
                "node_exporter did not answer within 30 s; {}",
                procs::tail(log, 20)
            );
        }
        procs::sleep(Duration::from_millis(100))?;
    }
}

pub fn preflight() -> anyhow::Result<()> {
    if !Path::new(NODE_EXPORTER).exists() {
        bail!(
            "{NODE_EXPORTER} is missing (Debian package prometheus-node-exporter; the bench \
             does not install it, as the package starts a service of its own)"
        );
    }
    Ok(())
}

pub fn phase(o: &Options, env: &Env) -> anyhow::Result<ScrapeCost> {
    let clients = o.scrape_clients;
    eprintln!(
        "bench: scrape load: {clients} clients on /metrics for {} s, the daemon then \
         node_exporter",
        o.scrape_seconds
    );
    let mut daemon = tools::start(Kind::Monitor, env, "scrape")?;
    let ours = load(
        "monitor",
        env.addr,
        daemon.proc.pid(),
        "/healthz",
        clients,
        o.scrape_seconds,
    )?;
    if let Some(st) = daemon.proc.exited() {
        bail!(
            "the daemon exited ({st}) under the scrape load; {}",
            procs::tail(&daemon.log, 20)
        );
    }
    daemon.proc.stop()?;

    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, free_port()?));
    let log = env.dir.join("node_exporter-scrape.log");
    let mut node = start_node_exporter(addr, &log)?;
    let theirs = load(
        "node_exporter",
        addr,
        node.pid(),
        "/",
        clients,
        o.scrape_seconds,
    )?;
    if let Some(st) = node.exited() {
        bail!(
            "node_exporter exited ({st}) under the scrape load; {}",
            procs::tail(&log, 20)
        );
    }
    node.stop()?;
    Ok(ScrapeCost {
        clients,
        ours,
        node: theirs,
    })
}

impl ScrapeCost {
    pub fn checks(&self) -> Vec<Check> {
        let n = self.clients;
        vec![
            Check::figure(
                format!("/healthz p99 while {n} clients scrape"),
                self.ours.pct(99.0),
                "ms",
                2,
                Target::Below(10.0),
            )
            .with_detail(self.ours.latency()),
            Check::figure(
                format!("node_exporter / p99 while {n} clients scrape"),
                self.node.pct(99.0),
                "ms",
                2,
                Target::None,
            )
            .with_detail(self.node.latency()),
            Check::ratio(
                format!("/metrics scrapes/s, {n} clients"),
                "node_exporter",
                Some(self.ours.scrapes_per_sec()),
                Some(self.node.scrapes_per_sec()),
                "scrapes/s",
                Target::None,
            ),
        ]
    }
}

pub fn print(o: &Options, d: &ScrapeCost) {
    println!();
    println!(
        "== Scrape load: {} clients on /metrics as fast as they can (HTTP/1.1, kept alive), \
         {} s each, a health check every {} ms on a fresh connection",
        d.clients,
        o.scrape_seconds,
        CHECK_EVERY.as_millis()
    );
    println!(
        "{:<14} {:>10} {:>8} {:>10} {:>9} {:>11}  health check",
        "server", "scrapes/s", "failed", "KiB/scrape", "connects", "server CPU"
    );
    for l in [&d.ours, &d.node] {
        println!(
            "{:<14} {:>10.1} {:>8} {:>10.1} {:>9} {:>9.1} %  {} {}",
            l.server,
            l.scrapes_per_sec(),
            l.scrape_errors,
            if l.scrapes > 0 {
                l.bytes as f64 / l.scrapes as f64 / 1024.0
            } else {
                0.0
            },
            l.connects,
            l.server_cpu_pct,
            l.check_path,
            l.latency()
        );
    }
    println!(
        "(server CPU: the server's utime+stime in % of one core; the clients run on the same \
         {} CPUs)",
        std::thread::available_parallelism().map_or(0, std::num::NonZero::get)
    );
}
