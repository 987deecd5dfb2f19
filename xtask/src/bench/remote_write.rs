//! Figure 9: what remote write costs. The daemon with the first count of `--idle-processes`
//! running and nobody scraping it (a host that pushes instead), three times: without remote
//! write, then pushing every 15 s (the default) and every 1 s to a counting receiver on
//! loopback (`receiver`). CPU and the highest RSS are compared with the run without; the
//! bytes on the wire per sample are the receiver's own count (HTTP headers and the
//! compressed body, over the samples decoded from the bodies). The refreshes a second show
//! that pushing asks for no refresh of its own.

use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};

use super::{
    procs,
    receiver::{Counts, Receiver},
    targets::{Check, Target},
    tools::{self, Kind},
    Env, Options,
};

const WARMUP_SECS: u64 = 3;

pub struct Run {
    /// None for the run without remote write.
    pub interval: Option<&'static str>,
    pub cpu_pct: f64,
    pub rss_max_kib: u64,
    pub refreshes_per_sec: f64,
    /// What reached the receiver during the measurement.
    pub got: Counts,
    /// The daemon's own count of samples the receiver took, over its whole run, and the
    /// receiver's over the same span (equal unless a request was in flight at the end).
    pub sent_by_daemon: f64,
    pub got_whole_run: u64,
}

pub struct RemoteWriteCost {
    pub idle_processes: u32,
    pub secs: u64,
    pub runs: Vec<Run>,
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

impl Run {
    fn per_sample(&self, bytes: u64) -> Option<f64> {
        (self.got.samples > 0).then(|| bytes as f64 / self.got.samples as f64)
    }
}

impl RemoteWriteCost {
    fn off(&self) -> &Run {
        &self.runs[0]
    }

    pub fn checks(&self) -> Vec<Check> {
        let n = self.idle_processes;
        let mut out = Vec::new();
        for r in &self.runs[1..] {
            let every = r.interval.unwrap_or("-");
            out.push(Check::figure(
                format!("remote write CPU, {n} idle procs, every {every}"),
                Some(r.cpu_pct - self.off().cpu_pct),
                "%",
                2,
                Target::None,
            ));
            out.push(Check::figure(
                format!("remote write memory (highest VmRSS), {n} idle procs, every {every}"),
                Some(mib(r.rss_max_kib) - mib(self.off().rss_max_kib)),
                "MiB",
                1,
                Target::None,
            ));
            out.push(Check::figure(
                format!("remote write bytes on the wire per sample, every {every}"),
                r.per_sample(r.got.wire_bytes),
                "B",
                1,
                Target::None,
            ));
        }
        out
    }
}

pub fn print(d: &RemoteWriteCost) {
    println!();
    println!(
        "== Remote write: {} idle processes, no scrapes, {} s a run, to a counting receiver \
         on loopback",
        d.idle_processes, d.secs
    );
    println!(
        "{:<18} {:>8} {:>14} {:>12} {:>9} {:>9} {:>12} {:>12} {:>9}",
        "daemon",
        "CPU",
        "highest VmRSS",
        "refreshes/s",
        "requests",
        "samples",
        "B/sample",
        "body B/smpl",
        "bad"
    );
    for r in &d.runs {
        let per = |b| r.per_sample(b).map_or("-".into(), |v| format!("{v:.1}"));
        println!(
            "{:<18} {:>6.2} % {:>10.1} MiB {:>12.2} {:>9} {:>9} {:>12} {:>12} {:>9}",
            r.interval
                .map_or("no remote write".to_string(), |i| format!("every {i}")),
            r.cpu_pct,
            mib(r.rss_max_kib),
            r.refreshes_per_sec,
            r.got.requests,
            r.got.samples,
            per(r.got.wire_bytes),
            per(r.got.body_bytes),
            r.got.bad
        );
    }
    for r in &d.runs[1..] {
        println!(
            "every {}: the daemon counts {:.0} samples taken, the receiver decoded {} \
             over the whole run",
            r.interval.unwrap_or("-"),
            r.sent_by_daemon,
            r.got_whole_run
        );
    }
}

pub fn phase(o: &Options, env: &Env) -> anyhow::Result<RemoteWriteCost> {
    let n = o.idle_processes.first().copied().unwrap_or(1000);
    let secs = o.remote_write_seconds;
    eprintln!("bench: remote write: starting {n} idle processes");
    let idle = procs::idle(n)?;
    let receiver = Receiver::start()?;
    let mut runs = Vec::new();
    for interval in [None, Some("15s"), Some("1s")] {
        runs.push(measure(env, secs, interval, &receiver)?);
    }
    drop(idle);
    Ok(RemoteWriteCost {
        idle_processes: n,
        secs,
        runs,
    })
}

fn measure(
    env: &Env,
    secs: u64,
    interval: Option<&'static str>,
    receiver: &Receiver,
) -> anyhow::Result<Run> {
    let tag = format!("rw-{}", interval.unwrap_or("off"));
    let spool = env.dir.join(format!("{tag}-spool"));
    if spool.exists() {
        std::fs::remove_dir_all(&spool).with_context(|| format!("removing {}", spool.display()))?;
    }
    let url = receiver.url();
    let spool_arg = spool.to_string_lossy().into_owned();
    let extra: Vec<&str> = match interval {
        Some(i) => vec![
            "--remote-write.url",
            &url,
            "--remote-write.interval",
            i,
            "--remote-write.spool-dir",
            &spool_arg,
        ],
        None => Vec::new(),
    };
    eprintln!("bench: remote write: {tag}, {secs} s");
    receiver.take();
    let mut tool = tools::start_with(Kind::Monitor, env, &tag, &extra)?;
    let pid = tool.proc.pid();
    procs::sleep(Duration::from_secs(WARMUP_SECS))?;
    let refreshes0 = counter(env, "monitor_refreshes_total")?;
    let before = receiver.take();
    let t0 = Instant::now();
    let cpu0 = procs::cpu_seconds(pid)?;
    let mut rss_max_kib = 0;
    for i in 1..=secs {
        rss_max_kib = rss_max_kib.max(procs::status_kib(pid, "VmRSS")?);
        procs::sleep((t0 + Duration::from_secs(i)).saturating_duration_since(Instant::now()))?;
    }
    let elapsed = t0.elapsed().as_secs_f64();
    let cpu = procs::cpu_seconds(pid)? - cpu0;
    let got = receiver.take();
    // After the clock: the scrapes below ask for refreshes of their own.
    let refreshes = counter(env, "monitor_refreshes_total")? - refreshes0;
    let sent_by_daemon = match interval {
        Some(_) => counter(env, "monitor_remote_write_samples_sent_total")?,
        None => 0.0,
    };
    let after = receiver.take();
    if let Some(st) = tool.proc.exited() {
        bail!("the daemon exited ({st}); {}", procs::tail(&tool.log, 20));
    }
    tool.proc.stop()?;
    Ok(Run {
        interval,
        cpu_pct: 100.0 * cpu / elapsed,
        rss_max_kib,
        // The last scrape asked for a refresh of its own.
        refreshes_per_sec: (refreshes - 1.0).max(0.0) / elapsed,
        got,
        sent_by_daemon,
        got_whole_run: before.samples + got.samples + after.samples,
    })
}

/// The sum of a family's samples in a scrape (every endpoint's, for remote write's).
fn counter(env: &Env, name: &str) -> anyhow::Result<f64> {
    let (status, body) = procs::http_get(env.addr, "/metrics").context("scraping /metrics")?;
    if status != 200 {
        bail!("/metrics answered {status}");
    }
    sum(&String::from_utf8_lossy(&body), name).with_context(|| format!("no {name} in /metrics"))
}

/// The sum of the samples of family `name` in a text exposition, if it has any.
fn sum(text: &str, name: &str) -> Option<f64> {
    let values: Vec<f64> = text
        .lines()
        .filter_map(|l| l.strip_prefix(name))
        .filter(|rest| rest.starts_with(' ') || rest.starts_with('{'))
        .filter_map(|rest| rest.rsplit(' ').next()?.parse().ok())
        .collect();
    (!values.is_empty()).then(|| values.iter().sum())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_a_family_and_only_it() {
        let text = "# HELP x_total x\nx_total{endpoint=\"a\"} 2\nx_total{endpoint=\"b\"} 3.5\n\
                    x_total_other 9\ny 1\n";
        assert_eq!(sum(text, "x_total"), Some(5.5));
        assert_eq!(sum(text, "y"), Some(1.0));
        assert_eq!(sum(text, "z"), None);
    }
}
