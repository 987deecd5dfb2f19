//! The printed report: one table per figure, then a summary beside the targets.

use super::{
    bpf::Cost,
    daemon::DaemonCost,
    tools::{Config, CONFIGS},
    top::TopCost,
    workload::Workload,
    Env, Options,
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

fn ratio(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    Some(a? / b?)
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

pub fn print(o: &Options, env: &Env, work: &Workload, d: &DaemonCost, t: &TopCost) {
    let base = median(&work.get(Config::Baseline).secs);
    let base_min = min(&work.get(Config::Baseline).secs);

    println!();
    println!(
        "== Workload: perf bench sched messaging {} ({} runs per configuration, interleaved)",
        env.perf_args.join(" "),
        o.runs
    );
    println!(
        "{:<13} {:>9} {:>9} {:>9} {:>18} {:>12} {:>11} {:>9} {:>10}",
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
            "{:<13} {:>9.3} {:>9.3} {:>9.3} {:>7.3} ({:>+6.1} %) {:>12.3} {:>10.0}k {:>9} {:>8.1} %",
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
        "(tool CPU: the tool's own threads; other CPU: anything but the workload and the tool, \
         in % of one core)"
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
        "== BPF programs during the workload (kernel.bpf_stats_enabled=1, summed over {} runs)",
        o.runs
    );
    println!(
        "{:<10} {:<20} {:>12} {:>11}",
        "tool", "program", "runs", "ns/run"
    );
    let line = |tool: &str, name: &str, c: Cost| {
        println!(
            "{tool:<10} {name:<20} {:>12} {:>11}",
            c.runs,
            ns(c.ns_per_run())
        );
    };
    for (cfg, r) in CONFIGS.iter().zip(&work.results).skip(1) {
        for (name, c) in &r.progs {
            line(cfg.name(), name, *c);
        }
        println!(
            "{:<10} {:<20} {:>12} {:>11}",
            cfg.name(),
            "= all, per switch",
            "",
            ns(r.ns_per_switch())
        );
    }
    if let Some(c) = work.floor {
        line("empty", "sched_switch", c);
        println!(
            "           (an empty bpftrace program on the classic tracepoint, warm-up run: the floor)"
        );
    }

    println!();
    println!(
        "== Daemon cost ({} idle processes, default 1 s refresh, /metrics every 1 s, {:.0} s)",
        o.idle_processes, d.secs
    );
    println!(
        "CPU      {:.2} % of one core (utime+stime); {:.2} % from its threads' schedstat",
        d.cpu_pct, d.oncpu_pct
    );
    println!(
        "memory   VmRSS {:.1} MiB at the end, {:.1} MiB highest sampled; VmHWM {:.1} MiB",
        mib(d.rss_kib),
        mib(d.rss_max_kib),
        mib(d.hwm_kib)
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

    println!();
    println!(
        "== monitor top cost ({} idle processes, a daemon, 1 s refresh, tmux 200x50, {:.0} s)",
        o.idle_processes, t.secs
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

    let sw = |c: Config| work.get(c).sched_switch().and_then(Cost::ns_per_run);
    let slow = |c: Config| {
        let m = median(&work.get(c).secs);
        let best = min(&work.get(c).secs) / base_min;
        format!(
            "{:+.1} % (best-of {:+.1} %)",
            100.0 * (m / base - 1.0),
            100.0 * (best - 1.0)
        )
    };
    let per_switch = |c: Config| ns(work.get(c).ns_per_switch());
    let ours_vs = |c: Config| ratio(sw(Config::Monitor), sw(c));
    let fmt_ratio = |r: Option<f64>| r.map_or("-".into(), |r| format!("{r:.2}"));
    let verdict = |ok: bool| if ok { "met" } else { "MISSED" };
    let rows = [
        ("workload, baseline median", format!("{base:.3} s"), "", ""),
        ("slowdown, monitor (median)", slow(Config::Monitor), "", ""),
        ("slowdown, runqlat (median)", slow(Config::Runqlat), "", ""),
        (
            "slowdown, bpftrace (median)",
            slow(Config::Bpftrace),
            "",
            "",
        ),
        (
            "sched_switch ns/event, monitor",
            ns(sw(Config::Monitor)),
            "",
            "",
        ),
        (
            "sched_switch ns/event, runqlat",
            ns(sw(Config::Runqlat)),
            "",
            "",
        ),
        (
            "sched_switch ns/event, bpftrace",
            ns(sw(Config::Bpftrace)),
            "",
            "",
        ),
        (
            "sched_switch ns/event, empty (floor)",
            ns(work.floor.and_then(Cost::ns_per_run)),
            "",
            "",
        ),
        (
            "monitor / runqlat, sched_switch",
            fmt_ratio(ours_vs(Config::Runqlat)),
            "<= 1.00",
            ours_vs(Config::Runqlat).map_or("-", |r| verdict(r <= 1.0)),
        ),
        (
            "monitor / bpftrace, sched_switch",
            fmt_ratio(ours_vs(Config::Bpftrace)),
            "",
            "",
        ),
        (
            "all BPF ns per switch, monitor",
            per_switch(Config::Monitor),
            "",
            "",
        ),
        (
            "all BPF ns per switch, runqlat",
            per_switch(Config::Runqlat),
            "",
            "",
        ),
        (
            "all BPF ns per switch, bpftrace",
            per_switch(Config::Bpftrace),
            "",
            "",
        ),
        (
            "daemon CPU, % of one core",
            format!("{:.2} %", d.cpu_pct),
            "< 1 %",
            verdict(d.cpu_pct < 1.0),
        ),
        (
            "daemon RSS (VmRSS, steady)",
            format!("{:.1} MiB", mib(d.rss_max_kib)),
            "< 30 MiB",
            verdict(mib(d.rss_max_kib) < 30.0),
        ),
        (
            "daemon peak RSS (VmHWM)",
            format!("{:.1} MiB", mib(d.hwm_kib)),
            "< 30 MiB",
            verdict(mib(d.hwm_kib) < 30.0),
        ),
        (
            "monitor top CPU, % of one core",
            format!("{:.2} %", t.cpu_pct),
            "< 2 %",
            verdict(t.cpu_pct < 2.0),
        ),
    ];
    println!();
    println!("== Summary");
    println!("{:<37} {:<28} {:<9} verdict", "figure", "value", "target");
    for (figure, value, target, v) in rows {
        println!("{figure:<37} {value:<28} {target:<9} {v}");
    }
}
