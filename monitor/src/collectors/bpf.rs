//! `bpf`: the kernel programs' own health: which hook serves each measure, per-program run
//! counts and run time (while `kernel.bpf_stats_enabled` is on: see `--bpf.stats`), and per
//! map its entries, capacity and failed updates.

use anyhow::anyhow;
use prometheus::proto::{MetricFamily, MetricType};

use super::{Build, Collector, Spec, View};
use crate::{
    bpf::health::{program_stats, stats_enabled},
    metrics::{counter, family, gauge},
};

pub const SPEC: Spec = Spec {
    name: "bpf",
    help: "health of the kernel programs: hooks in use, run counts and run time, map fill and \
           failed updates",
    default_enabled: true,
    needs_bpf: true,
    build: Build::Collector(|_| Box::new(Bpf)),
};

pub struct Bpf;

impl Collector for Bpf {
    fn name(&self) -> &'static str {
        SPEC.name
    }

    fn collect(&mut self, view: &View<'_>, out: &mut Vec<MetricFamily>) -> anyhow::Result<()> {
        let k = view.kernel;
        let ebpf = k
            .ebpf
            .as_ref()
            .ok_or_else(|| anyhow!("the kernel programs are not loaded"))?;
        out.push(family(
            "monitor_bpf_hook_info",
            "The hook serving each measure on this kernel (1 per attached program).",
            MetricType::GAUGE,
            k.hooks
                .iter()
                .map(|(collector, a)| {
                    gauge(
                        &[
                            ("collector", collector),
                            ("measure", a.measure),
                            ("program", a.program),
                            ("hook", &a.hook),
                        ],
                        1.0,
                    )
                })
                .collect(),
        ));
        let progs = program_stats(ebpf);
        out.push(family(
            "monitor_bpf_program_runs_total",
            "Times each program ran (counted by the kernel while BPF stats are enabled).",
            MetricType::COUNTER,
            progs
                .iter()
                .map(|p| counter(&[("program", &p.name)], p.run_count as f64))
                .collect(),
        ));
        out.push(family(
            "monitor_bpf_program_run_seconds_total",
            "Time spent in each program (counted by the kernel while BPF stats are enabled).",
            MetricType::COUNTER,
            progs
                .iter()
                .map(|p| counter(&[("program", &p.name)], p.run_time.as_secs_f64()))
                .collect(),
        ));
        out.push(family(
            "monitor_bpf_program_verified_instructions",
            "Instructions the verifier processed for each program.",
            MetricType::GAUGE,
            progs
                .iter()
                .filter_map(|p| {
                    p.verified_instructions
                        .map(|n| gauge(&[("program", &p.name)], f64::from(n)))
                })
                .collect(),
        ));
        let on = k.holds_stats() || stats_enabled(view.procfs) == Some(true);
        {
            out.push(family(
                "monitor_bpf_stats_enabled",
                "Whether the kernel counts BPF program run time (--bpf.stats or kernel.bpf_stats_enabled).",
                MetricType::GAUGE,
                vec![gauge(&[], f64::from(u8::from(on)))],
            ));
        }
        if let Some(m) = &k.misses {
            // The service family's labels are `svc_*`; its programs on the shared hooks
            // count there only while it runs, the other families' labels only while one of
            // them does.
            let attached = |label: &str, name: &str| {
                let svc = label.starts_with("svc_");
                k.hooks
                    .iter()
                    .any(|(c, a)| a.program == name && (*c == "service") == svc)
            };
            out.push(family(
                "monitor_bpf_misses_total",
                "Events a kernel program saw but could not record, by program and reason \
                 (map_full, ring_full, read_failed, no_owner, no_submitter, no_entry).",
                MetricType::COUNTER,
                m.read(attached)?
                    .iter()
                    .map(|m| {
                        counter(
                            &[("program", m.program), ("reason", m.reason)],
                            m.count as f64,
                        )
                    })
                    .collect(),
            ));
        }
        let maps = view.maps;
        if !maps.is_empty() {
            out.push(family(
                "monitor_bpf_map_entries",
                "Entries in each map.",
                MetricType::GAUGE,
                maps.iter()
                    .filter_map(|m| m.entries.map(|e| gauge(&[("map", m.name)], e as f64)))
                    .collect(),
            ));
            out.push(family(
                "monitor_bpf_map_capacity",
                "Capacity of each map (entries; bytes for ring buffers).",
                MetricType::GAUGE,
                maps.iter()
                    .map(|m| gauge(&[("map", m.name)], m.capacity as f64))
                    .collect(),
            ));
            out.push(family(
                "monitor_bpf_map_update_failures_total",
                "Updates the kernel programs could not make (map full, ring buffer full).",
                MetricType::COUNTER,
                maps.iter()
                    .map(|m| counter(&[("map", m.name)], m.update_failures as f64))
                    .collect(),
            ));
        }
        Ok(())
    }
}
