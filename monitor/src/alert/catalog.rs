//! The metric families the daemon can export, whether or not they have samples right now:
//! what a rule may name. Each source declares its own; families that other collectors are
//! adding (OOM: its name is fixed) are listed so rules over them are accepted now and fire
//! once those collectors export samples. A test checks every family
//! the running daemon exports is listed here.

/// Families by source. Histograms are listed by base name (`_bucket`, `_sum`, `_count` are
/// accepted); `monitor_memory_*` is one entry per `/proc/meminfo` field, so it is a prefix.
pub const FAMILIES: &[(&str, &[&str])] = &[
    ("cpu", &["monitor_cpu_seconds_total"]),
    ("meminfo", &["monitor_memory_*"]),
    (
        "pressure",
        &[
            "monitor_pressure_waiting_seconds_total",
            "monitor_pressure_stalled_seconds_total",
        ],
    ),
    (
        "filesystem",
        &[
            "monitor_filesystem_size_bytes",
            "monitor_filesystem_free_bytes",
            "monitor_filesystem_avail_bytes",
            "monitor_filesystem_files",
            "monitor_filesystem_files_free",
            "monitor_filesystem_readonly",
            "monitor_filesystem_device_error",
            "monitor_filesystem_predicted_full_seconds",
        ],
    ),
    (
        "sched",
        &[
            "monitor_process_cpu_seconds_total",
            "monitor_process_runqueue_wait_seconds_total",
            "monitor_process_context_switches_total",
            "monitor_process_starts_total",
            "monitor_process_exits_total",
            "monitor_process_resident_memory_bytes",
            "monitor_runqueue_latency_seconds",
            "monitor_processes",
            "monitor_process_groups",
            "monitor_process_exit_events_missed_total",
        ],
    ),
    (
        "bpf",
        &[
            "monitor_bpf_hook_info",
            "monitor_bpf_program_runs_total",
            "monitor_bpf_program_run_seconds_total",
            "monitor_bpf_program_verified_instructions",
            "monitor_bpf_stats_enabled",
            "monitor_bpf_map_entries",
            "monitor_bpf_map_capacity",
            "monitor_bpf_map_update_failures_total",
            "monitor_bpf_misses_total",
            "monitor_fault_injected",
        ],
    ),
    (
        "daemon",
        &[
            "monitor_collector_success",
            "monitor_collector_duration_seconds",
            "monitor_snapshot_age_seconds",
            "monitor_refresh_duration_seconds",
            "monitor_refreshes_total",
            "monitor_build_info",
            "process_cpu_seconds_total",
            "process_open_fds",
            "process_max_fds",
            "process_virtual_memory_bytes",
            "process_virtual_memory_max_bytes",
            "process_resident_memory_bytes",
            "process_start_time_seconds",
            "process_threads",
        ],
    ),
    (
        "block",
        &[
            "monitor_disk_requests_total",
            "monitor_disk_bytes_total",
            "monitor_disk_errors_total",
            "monitor_disk_latency_seconds",
            "monitor_disk_queue_wait_seconds",
            "monitor_process_disk_bytes_total",
            "monitor_process_disk_requests_total",
            "monitor_process_disk_latency_seconds_total",
        ],
    ),
    ("oom (being added)", &["monitor_process_oom_kills_total"]),
    ("network", crate::net::collector::FAMILIES),
    ("service", crate::service::collector::FAMILIES),
    ("netdev", crate::collectors::netdev::FAMILIES),
    ("alerts", crate::alert::metrics::FAMILIES),
    ("heartbeat", crate::alert::heartbeat::FAMILIES),
    ("services", crate::alert::services::FAMILIES),
    ("probes", crate::alert::probes::FAMILIES),
    ("log matches", crate::logmatch::FAMILIES),
    ("audit", crate::audit::stats::FAMILIES),
    ("history", crate::history::FAMILIES),
    ("remote write", crate::remote_write::metrics::FAMILIES),
    ("web server", crate::web::metrics::FAMILIES),
];

fn listed(name: &str) -> bool {
    FAMILIES
        .iter()
        .flat_map(|(_, f)| f.iter())
        .any(|f| match f.strip_suffix('*') {
            Some(prefix) => name.starts_with(prefix),
            None => *f == name,
        })
}

/// Whether a series named `name` can appear in the daemon's exposition.
pub fn exportable(name: &str) -> bool {
    listed(name)
        || ["_bucket", "_sum", "_count"]
            .iter()
            .any(|s| name.strip_suffix(s).is_some_and(listed))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(exportable("monitor_memory_available_bytes"));
        assert!(exportable("monitor_runqueue_latency_seconds_bucket"));
        assert!(exportable("monitor_process_oom_kills_total"));
        assert!(exportable("monitor_snapshot_age_seconds"));
        assert!(exportable("monitor_log_matches_total"));
        assert!(exportable("monitor_audit_events_dropped_total"));
        assert!(exportable("monitor_remote_write_samples_pending"));
        assert!(!exportable("monitor_cpu_seconds"));
        assert!(!exportable("node_cpu_seconds_total"));
    }
}
