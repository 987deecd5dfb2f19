//! The printed report: one table per figure, then a summary of the figures; the targets
//! come last ([`super::targets`]).

use super::{
    bpf::Cost,
    daemon::DaemonCost,
    targets::{fmt_ratio, ratio},
    tools::Kind,
    top::TopCost,
    workload::{is_sched, ns_per_switch, sched_switch, Config, Workload, CONFIGS},
    Options,
};

pub fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    match s.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => s[n / 2],
        n => (s[n / 2 - 1] + s[n / 2]) / 2.0,
    }
}

fn max(v: &[f64]) -> f64 {
    v.iter().copied().fold(f64::NAN, f64::max)
}

fn min(v: &[f64]) -> f64 {
    v.iter().copied().fold(f64::NAN, f64::min)
}

fn ns(v: Option<f64>) -> String {
    v.map_or("-".into(), |v| format!("{v:.1} ns"))
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// The workload table and the BPF programs table at one size.
pub fn print_workload(o: &Options, work: &Workload) {
    let base = median(&work.get(Config::Baseline).secs);
    let base_min = min(&work.get(Config::Baseline).secs);

    println!();
    println!(
        "== Workload, {} processes: perf bench sched messaging {} ({} runs per configuration, \
         interleaved)",
        work.size.processes(),
        work.size.perf_args.join(" "),
        o.runs
    );
    println!(
        "{:<15} {:>9} {:>9} {:>9} {:>18} {:>12} {:>11} {:>9} {:>10}",
        "configuration",
        "median s",
        "min s",
        "max s",
        "median/baseline",
        "min/baseline",
        "switches/s",
        "tool CPU",
        "other CPU"
    );
    for (cfg, r) in CONFIGS.iter().zip(&work.results) {
        let m = median(&r.secs);
        let tool_cpu = if r.tool_cpu.is_empty() {
            "-".to_string()
        } else {
            format!("{:.2} %", median(&r.tool_cpu))
        };
        println!(
            "{:<15} {:>9.3} {:>9.3} {:>9.3} {:>7.3} ({:>+6.1} %) {:>12.3} {:>10.0}k {:>9} {:>8.1} %",
            cfg.name(),
            m,
            min(&r.secs),
            max(&r.secs),
            m / base,
            100.0 * (m / base - 1.0),
            min(&r.secs) / base_min,
            median(&r.switch_rate) / 1e3,
            tool_cpu,
            median(&r.other_cpu)
        );
    }
    let noisy = work
        .results
        .iter()
        .flat_map(|r| &r.other_cpu)
        .copied()
        .fold(0.0, f64::max);
    println!(
        "(tool CPU: the tools' own threads, both tools added where two are attached; other \
         CPU: anything but the workload and the tools, in % of one core)"
    );
    let foreign = work
        .results
        .iter()
        .map(|r| r.foreign_progs)
        .max()
        .unwrap_or(0);
    if foreign > 0 {
        println!(
            "WARNING: {foreign} BPF programs of another process ran during some runs (another \
             tracer or a test daemon): every configuration paid for them"
        );
    }
    if noisy > 5.0 {
        println!(
            "WARNING: other processes used up to {noisy:.0} % of a core during some runs: \
             the times above are noisy; rerun on a quiet machine"
        );
    }

    println!();
    println!(
        "== BPF programs during the workload, {} processes (kernel.bpf_stats_enabled=1, summed \
         over {} runs)",
        work.size.processes(),
        o.runs
    );
    println!(
        "{:<15} {:<9} {:<22} {:>12} {:>11}",
        "configuration", "tool", "program", "runs", "ns/run"
    );
    let line = |cfg: &str, tool: &str, name: &str, c: Cost| {
        println!(
            "{cfg:<15} {tool:<9} {name:<22} {:>12} {:>11}",
            c.runs,
            ns(c.ns_per_run())
        );
    };
    for (cfg, r) in CONFIGS.iter().zip(&work.results) {
        for tool in cfg.tools() {
            let progs = r.progs(*tool);
            // The daemon's block and network programs that did not run are left out.
            for (name, c) in progs.iter().filter(|(_, c)| c.runs > 0) {
                line(cfg.name(), tool.name(), name, *c);
            }
            for (what, v) in [
                ("= sched, per switch", ns_per_switch(&progs, is_sched)),
                ("= all, per switch", ns_per_switch(&progs, |_| true)),
            ] {
                println!(
                    "{:<15} {:<9} {what:<22} {:>12} {:>11}",
                    cfg.name(),
                    tool.name(),
                    "",
                    ns(v)
                );
            }
        }
    }
    if let Some(c) = work.floor {
        line("warm-up", "empty", "sched_switch", c);
        println!(
            "{:<25} (an empty bpftrace program on the classic tracepoint: the floor)",
            ""
        );
    }
    // With two tools on one tracepoint, the one attached first runs first and may take the
    // cache misses the other is then spared: the same figures split by who came first.
    let together = work.get(Config::MonitorRunqlat);
    for first in Config::MonitorRunqlat.tools() {
        let keep = |o: &[Kind]| o.first() == Some(first);
        let n = together.runs.iter().filter(|r| keep(&r.order)).count();
        if n == 0 {
            continue;
        }
        let ours = ns_per_switch(&together.progs_where(Kind::Monitor, keep), is_sched);
        let theirs = ns_per_switch(&together.progs_where(Kind::Runqlat, keep), is_sched);
        println!(
            "monitor+runqlat, {} attached first ({n} runs): sched per switch ours {} / runqlat \
             {} = {}",
            first.name(),
            ns(ours),
            ns(theirs),
            fmt_ratio(ratio(ours, theirs))
        );
    }
}

/// The daemon's cost at one count of idle processes.
pub fn print_daemon(d: &DaemonCost) {
    println!();
    println!(
        "== Daemon cost ({} idle processes, default 1 s refresh, /metrics every 1 s, {:.0} s)",
        d.idle_processes, d.secs
    );
    println!(
        "CPU      {:.2} % of one core (utime+stime); {:.2} % from its threads' schedstat",
        d.cpu_pct, d.oncpu_pct
    );
    println!(
        "memory   VmRSS {:.1} MiB at the end, {:.1} MiB highest sampled; VmHWM {:.1} MiB at \
         the end",
        mib(d.rss_kib),
        mib(d.rss_max_kib),
        mib(d.hwm_kib)
    );
    println!(
        "start-up VmHWM {:.1} MiB once attached and answering, {:.1} MiB after the warm-up \
         ({} s of refreshes and scrapes: the start-up peak); start-up took {:.1} s",
        mib(d.hwm_attached_kib),
        mib(d.hwm_startup_kib),
        d.warmup_secs,
        d.startup_secs
    );
    println!(
        "scrapes  {}: median {:.1} ms, max {:.1} ms; {} samples, {:.1} KiB{}",
        d.scrape_ms.len(),
        median(&d.scrape_ms),
        max(&d.scrape_ms),
        d.series,
        d.metrics_bytes as f64 / 1024.0,
        if d.sees_idle {
            ""
        } else {
            " (no group=\"sleep\" in it!)"
        }
    );
}

pub fn print_top(t: &TopCost) {
    println!();
    println!(
        "== monitor top cost ({} idle processes, a daemon, 1 s refresh, tmux 200x50, {:.0} s)",
        t.idle_processes, t.secs
    );
    println!(
        "CPU      {:.2} % of one core (utime+stime); {:.2} % from its threads' schedstat",
        t.cpu_pct, t.oncpu_pct
    );
    println!(
        "memory   VmRSS {:.1} MiB at the end; it listed {} processes",
        mib(t.rss_kib),
        t.processes.map_or("?".to_string(), |n| n.to_string())
    );
}

/// The figures of the workload, daemon and top phases in one list (the targets follow).
pub fn print_summary(work: &[Workload], daemon: &[DaemonCost], top: Option<&TopCost>) {
    let mut rows: Vec<(String, String)> = Vec::new();
    for w in work {
        let n = w.size.processes();
        let base = median(&w.get(Config::Baseline).secs);
        let base_min = min(&w.get(Config::Baseline).secs);
        let slow = |c: Config| {
            let m = median(&w.get(c).secs);
            let best = min(&w.get(c).secs) / base_min;
            format!(
                "{:+.1} % (best-of {:+.1} %)",
                100.0 * (m / base - 1.0),
                100.0 * (best - 1.0)
            )
        };
        let sw = |c: Config, t: Kind| sched_switch(&w.get(c).progs(t)).and_then(Cost::ns_per_run);
        let all = |c: Config, t: Kind| ns_per_switch(&w.get(c).progs(t), |_| true);
        rows.push((
            format!("workload, {n} procs, baseline median"),
            format!("{base:.3} s"),
        ));
        for c in &CONFIGS[1..] {
            rows.push((
                format!("slowdown, {n} procs, {} (median)", c.name()),
                slow(*c),
            ));
        }
        for (c, t) in [
            (Config::Monitor, Kind::Monitor),
            (Config::MonitorClassic, Kind::MonitorClassic),
            (Config::Runqlat, Kind::Runqlat),
            (Config::Bpftrace, Kind::Bpftrace),
        ] {
            rows.push((
                format!("sched_switch ns/event, {n} procs, {}", t.name()),
                ns(sw(c, t)),
            ));
        }
        rows.push((
            format!("sched_switch ns/event, {n} procs, empty (floor)"),
            ns(w.floor.and_then(Cost::ns_per_run)),
        ));
        for t in [Kind::Monitor, Kind::Runqlat] {
            rows.push((
                format!("sched_switch ns/event, {n} procs, {}, together", t.name()),
                ns(sw(Config::MonitorRunqlat, t)),
            ));
        }
        rows.push((
            format!("monitor / runqlat, sched_switch, {n} procs"),
            fmt_ratio(ratio(
                sw(Config::Monitor, Kind::Monitor),
                sw(Config::Runqlat, Kind::Runqlat),
            )),
        ));
        rows.push((
            format!("monitor / bpftrace, sched_switch, {n} procs"),
            fmt_ratio(ratio(
                sw(Config::Monitor, Kind::Monitor),
                sw(Config::Bpftrace, Kind::Bpftrace),
            )),
        ));
        rows.push((
            format!("monitor-classic (5.10's switch hook) / monitor, sched per switch, {n} procs"),
            fmt_ratio(ratio(
                ns_per_switch(
                    &w.get(Config::MonitorClassic).progs(Kind::MonitorClassic),
                    is_sched,
                ),
                ns_per_switch(&w.get(Config::Monitor).progs(Kind::Monitor), is_sched),
            )),
        ));
        rows.push((
            format!("monitor / runqlat, sched_switch, {n} procs, together"),
            fmt_ratio(ratio(
                sw(Config::MonitorRunqlat, Kind::Monitor),
                sw(Config::MonitorRunqlat, Kind::Runqlat),
            )),
        ));
        for (c, t) in [
            (Config::Monitor, Kind::Monitor),
            (Config::Runqlat, Kind::Runqlat),
            (Config::Bpftrace, Kind::Bpftrace),
        ] {
            rows.push((
                format!("all BPF ns per switch, {n} procs, {}", t.name()),
                ns(all(c, t)),
            ));
        }
        for t in [Kind::Monitor, Kind::Runqlat] {
            rows.push((
                format!("all BPF ns per switch, {n} procs, {}, together", t.name()),
                ns(all(Config::MonitorRunqlat, t)),
            ));
        }
    }
    for d in daemon {
        let n = d.idle_processes;
        rows.push((
            format!("daemon CPU, {n} idle procs, % of one core"),
            format!("{:.2} %", d.cpu_pct),
        ));
        rows.push((
            format!("daemon RSS, {n} idle procs (VmRSS, steady)"),
            format!("{:.1} MiB", mib(d.rss_max_kib)),
        ));
        rows.push((
            format!("daemon start-up peak, {n} idle procs (VmHWM)"),
            format!("{:.1} MiB", mib(d.hwm_startup_kib)),
        ));
        rows.push((
            format!("daemon peak, {n} idle procs (VmHWM, whole run)"),
            format!("{:.1} MiB", mib(d.hwm_kib)),
        ));
    }
    if let Some(t) = top {
        rows.push((
            "monitor top CPU, % of one core".into(),
            format!("{:.2} %", t.cpu_pct),
        ));
    }
    if rows.is_empty() {
        return;
    }
    println!();
    println!("== Summary");
    let width = rows.iter().map(|(f, _)| f.len()).max().unwrap_or(0);
    println!("{:<width$}  value", "figure");
    for (figure, value) in rows {
        println!("{figure:<width$}  {value}");
    }
}
