//! `cargo xtask soak --minutes N`: the release daemon under a fork storm (thousands of
//! short-lived processes a second), disk and loopback network load, and a scrape every
//! second, for N minutes. It prints RSS growth (a fitted line after the warm-up), open
//! descriptors, map fill, misses, and whether every exit the storm made was counted; samples
//! go to `target/soak/samples.csv`. Like the benchmark it reports and never asserts a timing.

mod load;
mod sample;
mod storm;

use std::{
    net::{Ipv4Addr, SocketAddr},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{bail, Context as _};

use crate::{bench::procs, cmd, setup};
use sample::Sample;

/// RSS may grow this much per hour after the warm-up (issue #18).
const RSS_GROWTH_LIMIT_MIB_PER_HOUR: f64 = 1.0;

#[derive(clap::Args)]
pub struct Options {
    /// Minutes of load.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=1440))]
    pub minutes: u64,
    /// Short-lived processes the storm forks a second.
    #[arg(long, default_value_t = 2000, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub forks_per_second: u32,
    /// Threads forking (the rate is shared between them).
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..=64))]
    pub storm_threads: u32,
    /// fio's I/O operations a second (4 KiB, direct, random reads and writes).
    #[arg(long, default_value_t = 300, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub disk_iops: u32,
    /// Loopback TCP connections a second, each carrying 64 KiB.
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub connections_per_second: u32,
    /// Use target/release/monitor as it is, without building it.
    #[arg(long)]
    pub no_build: bool,
}

pub fn run(o: &Options) -> anyhow::Result<()> {
    if !cmd::is_root() {
        bail!("the soak runs the daemon, which loads eBPF programs: run it as root");
    }
    procs::catch_signals();
    setup::ensure()?;
    setup::apt_install(&["fio"])?;
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
    let dir = root.join("target/soak");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let port = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?
        .local_addr()?
        .port();
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let log = dir.join("monitor.log");
    let out = std::fs::File::create(&log).with_context(|| format!("creating {}", log.display()))?;
    let mut daemon = procs::Proc::spawn(
        Command::new(&bin)
            .args(["run", "--web.listen-address", &addr.to_string()])
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out),
        libc::SIGTERM,
        "the daemon",
    )?;
    wait_healthy(&mut daemon, addr, &log)?;
    let pid = daemon.pid();

    let total = Duration::from_secs(o.minutes * 60);
    let warmup = warmup_secs(total.as_secs_f64());
    eprintln!(
        "soak: {} min, {} forks/s, {} IOPS, {} connections/s; daemon pid {pid} on {addr}; \
         warm-up {warmup:.0} s; log {}",
        o.minutes,
        o.forks_per_second,
        o.disk_iops,
        o.connections_per_second,
        log.display()
    );
    let mut first = Sample {
        rss_kib: procs::status_kib(pid, "VmRSS")?,
        fds: sample::fds(pid),
        ..Default::default()
    };
    // The counters before any load: the report gives what the soak added.
    let (_, body) = procs::http_get(addr, "/metrics")?;
    sample::from_metrics(&mut first, &String::from_utf8_lossy(&body));
    let start = Instant::now();
    let storm = storm::Storm::start(o.forks_per_second, o.storm_threads)?;
    let net = load::Net::start(o.connections_per_second, 64 * 1024)?;
    let mut disk = load::disk(&dir, o.disk_iops, total.as_secs() + 5, &dir.join("fio.log"))?;
    let mut samples = Vec::new();
    let mut next = start;
    let mut interrupted = None;
    while start.elapsed() < total {
        next += Duration::from_secs(1);
        if let Err(e) = procs::sleep(next.saturating_duration_since(Instant::now())) {
            interrupted = Some(e);
            break;
        }
        if let Some(s) = daemon.exited() {
            bail!(
                "the daemon exited ({s}) during the soak; {}",
                procs::tail(&log, 20)
            );
        }
        let mut s = Sample {
            t: start.elapsed().as_secs_f64(),
            forked: storm.reaped(),
            ..Default::default()
        };
        let t0 = Instant::now();
        match procs::http_get(addr, "/metrics") {
            Ok((200, body)) => sample::from_metrics(&mut s, &String::from_utf8_lossy(&body)),
            Ok((code, _)) => eprintln!("soak: /metrics answered {code}"),
            Err(e) => eprintln!("soak: /metrics failed: {e:#}"),
        }
        s.scrape_ms = t0.elapsed().as_secs_f64() * 1e3;
        // The process list too, as the page and `monitor top` ask for it.
        let _ = procs::http_get(addr, "/api/v1/processes");
        s.rss_kib = procs::status_kib(pid, "VmRSS")?;
        s.fds = sample::fds(pid);
        if samples.len() % 60 == 59 {
            eprintln!(
                "soak: {:>4.0} s: RSS {:.1} MiB, {} fds, {} forked, {} exits counted",
                s.t,
                s.rss_kib as f64 / 1024.0,
                s.fds,
                s.forked,
                s.exits
            );
        }
        samples.push(s);
    }
    let elapsed = start.elapsed().as_secs_f64();
    let (forked, fork_failures) = storm.stop();
    let (connections, connection_errors) = net.stop();
    let _ = disk.stop();
    if let Some(e) = interrupted {
        return Err(e);
    }
    // Every child is reaped: wait for the daemon's next refreshes to fold the last exits.
    let last = settle(addr, pid, forked, elapsed)?;
    let _ = daemon.stop();
    sample::write_csv(&dir.join("samples.csv"), &samples)?;
    report(&Report {
        o,
        elapsed,
        warmup,
        first: &first,
        samples: &samples,
        last: &last,
        forked,
        fork_failures,
        connections,
        connection_errors,
    });
    Ok(())
}

/// The query history (on by default) grows until it holds its 15-minute retention; start-up
/// allocations and the first full tables settle in the first minute. Growth is measured after
/// both when the run is long enough (16 minutes of warm-up, at most half the run), else after
/// a fifth of it (at least a minute).
fn warmup_secs(total: f64) -> f64 {
    const HISTORY_FULL: f64 = 16.0 * 60.0;
    if total >= 2.0 * HISTORY_FULL {
        HISTORY_FULL
    } else {
        (total / 5.0).max(60.0)
    }
}

fn wait_healthy(
    daemon: &mut procs::Proc,
    addr: SocketAddr,
    log: &std::path::Path,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        procs::check_interrupted()?;
        if let Some(s) = daemon.exited() {
            bail!("the daemon exited ({s}) at start; {}", procs::tail(log, 20));
        }
        if matches!(procs::http_get(addr, "/healthz"), Ok((200, _))) {
            // Let the first refreshes run before the baseline.
            return procs::sleep(Duration::from_secs(3));
        }
        if Instant::now() > deadline {
            bail!(
                "the daemon never answered /healthz; {}",
                procs::tail(log, 20)
            );
        }
        procs::sleep(Duration::from_millis(200))?;
    }
}

/// Scrapes until the storm group's exit count reaches what the storm made (or 15 s pass).
fn settle(addr: SocketAddr, pid: u32, forked: u64, t: f64) -> anyhow::Result<Sample> {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        procs::sleep(Duration::from_secs(1))?;
        let mut s = Sample {
            t,
            forked,
            ..Default::default()
        };
        let (_, body) = procs::http_get(addr, "/metrics")?;
        sample::from_metrics(&mut s, &String::from_utf8_lossy(&body));
        s.rss_kib = procs::status_kib(pid, "VmRSS")?;
        s.fds = sample::fds(pid);
        if s.exits >= forked as f64 || Instant::now() > deadline {
            return Ok(s);
        }
    }
}

struct Report<'a> {
    o: &'a Options,
    elapsed: f64,
    warmup: f64,
    first: &'a Sample,
    samples: &'a [Sample],
    last: &'a Sample,
    forked: u64,
    fork_failures: u64,
    connections: u64,
    connection_errors: u64,
}

fn report(r: &Report<'_>) {
    let mib = |k: u64| k as f64 / 1024.0;
    let after_warmup = r.samples.iter().find(|s| s.t >= r.warmup);
    let rss_max = r.samples.iter().map(|s| s.rss_kib).max().unwrap_or(0);
    let fds_max = r.samples.iter().map(|s| s.fds).max().unwrap_or(0);
    let growth = sample::rss_growth_mib_per_hour(r.samples, r.warmup);
    let lost = r.forked as f64 - r.last.exits;
    let mut fill: Vec<(String, f64)> = Vec::new();
    for s in r.samples {
        for (m, f) in &s.fill {
            match fill.iter_mut().find(|(n, _)| n == m) {
                Some(e) => e.1 = e.1.max(*f),
                None => fill.push((m.clone(), *f)),
            }
        }
    }
    fill.sort_by(|a, b| b.1.total_cmp(&a.1));
    let scrapes: Vec<f64> = r.samples.iter().map(|s| s.scrape_ms).collect();
    let scrape_max = scrapes.iter().copied().fold(0.0, f64::max);
    println!("\nSoak: {:.1} min of load", r.elapsed / 60.0);
    println!(
        "  load: {} processes forked and reaped ({:.0}/s, {} forks failed), fio at {} IOPS, \
         {} loopback connections of 64 KiB ({} failed)",
        r.forked,
        r.forked as f64 / r.elapsed,
        r.fork_failures,
        r.o.disk_iops,
        r.connections,
        r.connection_errors
    );
    println!(
        "  RSS: {:.1} MiB at start, {:.1} MiB after the {:.0} s warm-up, {:.1} MiB at the end, \
         {:.1} MiB at most",
        mib(r.first.rss_kib),
        mib(after_warmup.map_or(0, |s| s.rss_kib)),
        r.warmup,
        mib(r.last.rss_kib),
        mib(rss_max)
    );
    match growth {
        Some(g) => {
            println!("  RSS growth after the warm-up (least-squares line): {g:+.2} MiB/hour")
        }
        None => println!("  RSS growth: too few samples after the warm-up"),
    }
    println!(
        "  open descriptors: {} at start, {} at the end, {} at most",
        r.first.fds, r.last.fds, fds_max
    );
    let shown: Vec<String> = fill
        .iter()
        .take(5)
        .map(|(m, f)| format!("{m} {:.1}%", f * 100.0))
        .collect();
    println!("  map fill (highest seen): {}", shown.join(", "));
    let added: Vec<(String, f64)> = r
        .last
        .misses_by
        .iter()
        .map(|(k, v)| {
            (
                k.clone(),
                v - r.first.misses_by.get(k).copied().unwrap_or(0.0),
            )
        })
        .filter(|(_, d)| *d > 0.0)
        .collect();
    let lost_records: f64 = added
        .iter()
        .filter(|(k, _)| sample::is_loss(k))
        .map(|(_, d)| d)
        .sum();
    let exit_events_missed = r.last.exit_events_missed - r.first.exit_events_missed;
    let update_failures = r.last.update_failures - r.first.update_failures;
    println!(
        "  misses during the soak: {} ({lost_records} records lost to a full map or ring, or a \
         failed read), {exit_events_missed} exit events missed, {update_failures} map update \
         failures",
        if added.is_empty() {
            "none".to_string()
        } else {
            added
                .iter()
                .map(|(k, d)| format!("{k} {d}"))
                .collect::<Vec<_>>()
                .join(", ")
        }
    );
    println!(
        "  exits: {} counted for group {:?} of {} made: {}",
        r.last.exits,
        storm::COMM,
        r.forked,
        if lost == 0.0 {
            "every exit counted".to_string()
        } else {
            format!("{lost} not counted")
        }
    );
    println!("  scrapes: {} (slowest {scrape_max:.0} ms)", scrapes.len());
    let rss_ok = growth.is_some_and(|g| g < RSS_GROWTH_LIMIT_MIB_PER_HOUR);
    let nothing_lost = lost == 0.0 && lost_records == 0.0 && exit_events_missed == 0.0;
    println!(
        "  target: RSS growth under {RSS_GROWTH_LIMIT_MIB_PER_HOUR} MiB/hour: {}; nothing lost: {}",
        if rss_ok { "met" } else { "MISSED" },
        if nothing_lost { "met" } else { "MISSED" }
    );
}
