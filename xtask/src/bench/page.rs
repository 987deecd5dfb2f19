//! Figure 8: what the query history and the page cost. The daemon with the first count of
//! `--idle-processes` running and a scrape every second, three times: with the history off
//! (`--web.history.retention=0s`), then on (its defaults) with a client that asks what the
//! page asks (an instant query for stats and tables; a 5 min range at the first round, then
//! only the new steps, for charts): every panel at the first round (the page opening, before
//! the measurement: a one-off, its time and CPU reported apart), then every 5 s the
//! panels of the page's first screen (the page refreshes only the panels on screen: the
//! quick stats and the CPU row's first six at 1400x1000), and again with every panel every
//! 5 s (a page scrolled through all of them at once, its upper bound). CPU and peak RSS
//! are compared between the two runs; since the history fills for its retention (15 min,
//! longer than a run), its memory at full retention is projected from its growth per
//! sampling (`monitor_history_bytes`), and it is bounded by `--web.history.max-bytes` anyway.

use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};

use super::{
    procs,
    targets::{Check, Target},
    tools::{self, Kind},
    Env, Options,
};

const WARMUP_SECS: u64 = 3;
/// The page's default refresh.
const ROUND: Duration = Duration::from_secs(5);
/// The history's default retention, in samplings at the default 1 s refresh.
const RETENTION_SAMPLES: f64 = 900.0;
/// Panels on the page's first screen at 1400x1000 (12 quick stats and 6 charts).
const SCREEN_PANELS: usize = 18;

pub struct Run {
    pub cpu_pct: f64,
    pub rss_max_kib: u64,
}

pub struct PageCost {
    pub idle_processes: u32,
    pub secs: u64,
    pub off: Run,
    /// The page's first screen refreshed.
    pub on: Run,
    /// Every panel refreshed.
    pub all: Run,
    pub all_round_ms: Vec<f64>,
    /// Queries one round sends, and each round's time (ms).
    pub queries: usize,
    /// The opening round (every panel over 5 min, before the measurement): its time and
    /// the daemon's CPU time in it (ms).
    pub opening: (f64, f64),
    pub round_ms: Vec<f64>,
    pub failed: usize,
    /// `monitor_history_bytes` at the start and end of the measurement, and the samplings
    /// between them.
    pub bytes: (f64, f64),
    pub series: f64,
    pub projected_bytes: f64,
}

fn mib(kib: f64) -> f64 {
    kib / 1024.0
}

impl PageCost {
    fn extra_mib(&self) -> f64 {
        let rss = mib(self.on.rss_max_kib as f64 - self.off.rss_max_kib as f64);
        // What the history adds beyond what it held at the end of the run.
        rss + (self.projected_bytes - self.bytes.1).max(0.0) / 1048576.0
    }

    pub fn checks(&self) -> Vec<Check> {
        let n = self.idle_processes;
        vec![
            Check::figure(
                format!("history and page CPU, {n} idle procs, page open (first screen)"),
                Some(self.on.cpu_pct - self.off.cpu_pct),
                "%",
                2,
                Target::Below(0.3),
            ),
            Check::figure(
                format!("history and page CPU, {n} idle procs, every panel every 5 s"),
                Some(self.all.cpu_pct - self.off.cpu_pct),
                "%",
                2,
                Target::None,
            ),
            Check::figure(
                format!("history and page memory at 15 min retention, {n} idle procs"),
                Some(self.extra_mib()),
                "MiB",
                1,
                Target::Below(16.0),
            ),
        ]
    }
}

pub fn print(d: &PageCost) {
    println!();
    println!(
        "== Query history and page: {} idle processes, a scrape every second, {} s a run; \
         the page client sends {} queries every 5 s",
        d.idle_processes, d.secs, d.queries
    );
    println!("{:<28} {:>10} {:>14}", "daemon", "CPU", "highest VmRSS");
    for (name, r) in [
        ("history off", &d.off),
        ("history on, page open", &d.on),
        ("history on, every panel", &d.all),
    ] {
        println!(
            "{name:<28} {:>8.2} % {:>10.1} MiB",
            r.cpu_pct,
            mib(r.rss_max_kib as f64)
        );
    }
    for (what, ms) in [
        ("first screen", &d.round_ms),
        ("every panel", &d.all_round_ms),
    ] {
        let mut ms = ms.clone();
        ms.sort_by(f64::total_cmp);
        println!(
            "page rounds ({what}): median {:.1} ms, slowest {:.1} ms",
            ms.get(ms.len() / 2).copied().unwrap_or(0.0),
            ms.last().copied().unwrap_or(0.0),
        );
    }
    println!(
        "page opening (every panel over 5 min, before the measurement): {:.0} ms, {:.0} ms of \
         the daemon's CPU",
        d.opening.0, d.opening.1
    );
    println!("queries failed: {}", d.failed);
    println!(
        "history: {:.0} series, {:.2} MiB at the end of the run; {:.2} MiB projected at full \
         retention (900 samplings)",
        d.series,
        d.bytes.1 / 1048576.0,
        d.projected_bytes / 1048576.0
    );
}

pub fn phase(o: &Options, env: &Env) -> anyhow::Result<PageCost> {
    let n = o.idle_processes.first().copied().unwrap_or(1000);
    let secs = o.daemon_seconds;
    eprintln!("bench: history and page: starting {n} idle processes");
    let idle = procs::idle(n)?;
    let (off, _) = measure(
        env,
        secs,
        &["--web.history.retention=0s"],
        "history-off",
        None,
    )?;
    let (on, client) = measure(env, secs, &[], "history-on", Some(SCREEN_PANELS))?;
    let (all, every) = measure(env, secs, &[], "history-all", Some(usize::MAX))?;
    drop(idle);
    let client = client.context("no page client")?;
    let every = every.context("no page client")?;
    let per_sample = (client.bytes.1 - client.bytes.0) / client.samplings.max(1.0);
    Ok(PageCost {
        idle_processes: n,
        secs,
        off,
        on,
        all,
        all_round_ms: every.round_ms,
        queries: client.queries,
        opening: client.opening,
        round_ms: client.round_ms,
        failed: client.failed + every.failed,
        bytes: client.bytes,
        series: client.series,
        projected_bytes: client.bytes.1 + per_sample * (RETENTION_SAMPLES - client.span).max(0.0),
    })
}

struct Client {
    queries: usize,
    /// The page's opening round: its time and the daemon's CPU time in it (ms).
    opening: (f64, f64),
    round_ms: Vec<f64>,
    failed: usize,
    bytes: (f64, f64),
    series: f64,
    /// Samplings during the measurement, and the history's span at its end (s).
    samplings: f64,
    span: f64,
}

fn measure(
    env: &Env,
    secs: u64,
    extra: &[&str],
    tag: &str,
    // With a page client: the panels it refreshes after the first round.
    screen: Option<usize>,
) -> anyhow::Result<(Run, Option<Client>)> {
    let page = screen.is_some();
    let mut tool = tools::start_with(Kind::Monitor, env, tag, extra)?;
    let pid = tool.proc.pid();
    for _ in 0..WARMUP_SECS {
        get(env, "/metrics")?;
        procs::sleep(Duration::from_secs(1))?;
    }
    let panels = if page { catalogue(env)? } else { Vec::new() };
    let gauge = |name: &str| -> anyhow::Result<f64> {
        let body = get(env, "/metrics")?;
        Ok(String::from_utf8_lossy(&body)
            .lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or(0.0))
    };
    let (mut rss_max_kib, mut round_ms, mut failed) = (0, Vec::new(), 0);
    let mut last_end: Option<u64> = None;
    // Opening the page (every panel over 5 min) is a one-off, measured apart: inside the
    // window it would be most of a short run's figure, which is about a page kept open.
    let mut opening = (0.0, 0.0);
    if page {
        let (o0, c0) = (Instant::now(), procs::cpu_seconds(pid)?);
        let all: Vec<&(String, bool)> = panels.iter().map(|q| &q.1).collect();
        failed += round(env, &all, &mut last_end)?;
        opening = (
            o0.elapsed().as_secs_f64() * 1e3,
            (procs::cpu_seconds(pid)? - c0) * 1e3,
        );
        procs::sleep(ROUND)?;
    }
    let bytes0 = gauge("monitor_history_bytes")?;
    let span0 = gauge("monitor_history_span_seconds")?;
    let t0 = Instant::now();
    let cpu0 = procs::cpu_seconds(pid)?;
    let mut next_round = t0;
    for i in 1..=secs {
        get(env, "/metrics")?;
        if page && Instant::now() >= next_round {
            next_round += ROUND;
            let r0 = Instant::now();
            let shown: Vec<&(String, bool)> = panels
                .iter()
                .filter(|q| q.0 < screen.unwrap_or(0))
                .map(|q| &q.1)
                .collect();
            failed += round(env, &shown, &mut last_end)?;
            round_ms.push(r0.elapsed().as_secs_f64() * 1e3);
        }
        rss_max_kib = rss_max_kib.max(procs::status_kib(pid, "VmRSS")?);
        procs::sleep((t0 + Duration::from_secs(i)).saturating_duration_since(Instant::now()))?;
    }
    let elapsed = t0.elapsed().as_secs_f64();
    let cpu = procs::cpu_seconds(pid)? - cpu0;
    let client = if page {
        let span = gauge("monitor_history_span_seconds")?;
        Some(Client {
            queries: panels.len(),
            opening,
            round_ms,
            failed,
            bytes: (bytes0, gauge("monitor_history_bytes")?),
            series: gauge("monitor_history_series")?,
            samplings: span - span0,
            span,
        })
    } else {
        None
    };
    if let Some(st) = tool.proc.exited() {
        bail!("the daemon exited ({st}); {}", procs::tail(&tool.log, 20));
    }
    tool.proc.stop()?;
    Ok((
        Run {
            cpu_pct: 100.0 * cpu / elapsed,
            rss_max_kib,
        },
        client,
    ))
}

fn get(env: &Env, path: &str) -> anyhow::Result<Vec<u8>> {
    let (status, body) = procs::http_get(env.addr, path).with_context(|| format!("GET {path}"))?;
    if status != 200 {
        bail!(
            "GET {path} answered {status}: {}",
            String::from_utf8_lossy(&body)
        );
    }
    Ok(body)
}

/// Each query of the catalogue, as the page sends it at a 1 s refresh interval (a 4 s rate
/// window, every host and group), with its panel's place and whether it is an instant query.
fn catalogue(env: &Env) -> anyhow::Result<Vec<(usize, (String, bool))>> {
    let c: serde_json::Value = serde_json::from_slice(&get(env, "/page/catalogue.json")?)
        .context("the page's catalogue is not JSON")?;
    let mut out = Vec::new();
    let panels = c["rows"]
        .as_array()
        .context("no rows")?
        .iter()
        .filter_map(|r| r["panels"].as_array())
        .flatten();
    for (i, p) in panels.enumerate() {
        {
            let instant = matches!(p["kind"]["type"].as_str(), Some("stat" | "table"));
            for q in p["queries"].as_array().context("no queries")? {
                let e = q["expr"].as_str().context("no expr")?;
                let e = e
                    .replace("$__rate_interval", "4s")
                    .replace("$job", ".+")
                    .replace("$instance", ".+")
                    .replace("$group", ".+");
                out.push((i, (e, instant)));
            }
        }
    }
    Ok(out)
}

/// One page refresh: every query; the number that failed.
fn round(
    env: &Env,
    panels: &[&(String, bool)],
    last_end: &mut Option<u64>,
) -> anyhow::Result<usize> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs();
    // The page's step over 5 min at a 1 s refresh: 2 s (about 150 points a chart), on
    // multiples of itself.
    let now = now / 2 * 2;
    let start = last_end.map_or(now - 300, |e| e + 2);
    let mut failed = 0;
    for (e, instant) in panels.iter().copied() {
        let path = if *instant {
            format!("/api/v1/query?query={}&time={now}", encode(e))
        } else {
            format!(
                "/api/v1/query_range?query={}&start={start}&end={now}&step=2",
                encode(e)
            )
        };
        if !matches!(procs::http_get(env.addr, &path), Ok((200, _))) {
            failed += 1;
        }
    }
    *last_end = Some(now);
    Ok(failed)
}

/// Percent-encoding for a query parameter.
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_are_percent_encoded() {
        assert_eq!(
            encode(r#"a{b=~".+"} / 2"#),
            "a%7Bb%3D~%22.%2B%22%7D%20%2F%202"
        );
    }
}
