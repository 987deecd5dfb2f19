//! `sched`: per-group CPU time, run-queue wait, context switches, process starts and exits,
//! and the host run-queue latency histogram, all measured in the kernel (eBPF).

use monitor_common::sched::RunqHist;
use prometheus::proto::{MetricFamily, MetricType};

use crate::{
    collectors::{Build, Spec, View},
    metrics::{counter, family, gauge, histogram, log2_buckets, ns_to_seconds},
    process::counters::Counters,
};

pub const SPEC: Spec = Spec {
    name: "sched",
    help: "per-process CPU time, run-queue wait, context switches, starts and exits, and the \
           run-queue latency histogram, from scheduler tracepoints (eBPF)",
    default_enabled: true,
    needs_bpf: true,
    build: Build::Family(|_| Box::<super::family::Sched>::default()),
};

/// The family's exposition: per group from the process table's export, and the host
/// run-queue histogram `hist`.
pub fn families(hist: &RunqHist, view: &View<'_>) -> Vec<MetricFamily> {
    let export = view.export;
    let rows = export.rows();
    let per_group = |name: &str, help: &str, f: &dyn Fn(&Counters) -> f64| {
        family(
            name,
            help,
            MetricType::COUNTER,
            rows.iter()
                .map(|(g, c)| counter(&[("group", g)], f(c)))
                .collect(),
        )
    };
    let mut out = vec![
        per_group(
            "monitor_process_cpu_seconds_total",
            "CPU time of the group's processes, measured at each context switch.",
            &|c| ns_to_seconds(c.cpu_ns),
        ),
        per_group(
            "monitor_process_runqueue_wait_seconds_total",
            "Time the group's threads were runnable but waiting for a CPU.",
            &|c| ns_to_seconds(c.runq_wait_ns),
        ),
        per_group(
            "monitor_process_starts_total",
            "Processes that started (exec) into the group.",
            &|c| c.starts as f64,
        ),
        per_group(
            "monitor_process_exits_total",
            "Processes of the group that exited.",
            &|c| c.exits as f64,
        ),
        per_group(
            "monitor_process_oom_kills_total",
            "Processes of the group chosen by the OOM killer (oom:mark_victim).",
            &|c| c.oom_kills as f64,
        ),
    ];
    let mut switches = Vec::with_capacity(rows.len() * 2);
    for (g, c) in &rows {
        switches.push(counter(
            &[("group", g), ("kind", "voluntary")],
            c.voluntary_switches as f64,
        ));
        switches.push(counter(
            &[("group", g), ("kind", "involuntary")],
            c.involuntary_switches as f64,
        ));
    }
    out.push(family(
        "monitor_process_context_switches_total",
        "Context switches of the group's threads: voluntary (blocked) or involuntary (preempted).",
        MetricType::COUNTER,
        switches,
    ));
    let buckets = log2_buckets(&hist.buckets);
    out.push(family(
        "monitor_runqueue_latency_seconds",
        "Time from a thread becoming runnable to running, host-wide.",
        MetricType::HISTOGRAM,
        vec![histogram(&[], &buckets, ns_to_seconds(hist.sum_ns))],
    ));
    out.push(family(
        "monitor_process_resident_memory_bytes",
        "Resident memory of the group's live processes (the sum of their VmRSS: shared pages \
         count once per process), read at most every 2 s after a process ran, every 20 to 30 \
         s while it is idle.",
        MetricType::GAUGE,
        view.table
            .resident(export)
            .iter()
            .map(|(g, b)| gauge(&[("group", g)], *b as f64))
            .collect(),
    ));
    out.push(family(
        "monitor_process_groups",
        "Process groups with their own series (kept) and summed into group=\"other\" (folded).",
        MetricType::GAUGE,
        vec![
            gauge(&[("state", "kept")], export.groups.len() as f64),
            gauge(&[("state", "folded")], export.folded as f64),
        ],
    ));
    out.push(family(
        "monitor_processes",
        "Live processes.",
        MetricType::GAUGE,
        vec![gauge(&[], view.table.processes().count() as f64)],
    ));
    out.push(family(
        "monitor_process_exit_events_missed_total",
        "Process exits noticed from procfs because their kernel event was lost.",
        MetricType::COUNTER,
        vec![counter(&[], view.table.exits_without_event as f64)],
    ));
    out
}
