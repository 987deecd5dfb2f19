//! The panel catalogue: every panel of the dashboards, once. Each panel has its title,
//! description, unit, kind and PromQL; the Grafana dashboard (`grafana.rs`) is generated from
//! it, and the daemon's own page and query API are to read the same list.
//!
//! Queries are PromQL with Grafana's variables, as Grafana sends them after substitution:
//! `$job`, `$instance` (regular expressions, multi-select), `$group` (the same, on every series
//! with a `group` label) and `$__rate_interval` (the window of every `rate`). They stay inside
//! the subset the daemon's own engine evaluates (`alert::expr::check`), so no `topk`: a top-k
//! table is an instant query sorted and cut by the viewer (`Kind::Table`). Every type
//! serializes, so the daemon can hand the catalogue to its page as it is.

use serde::Serialize;

/// How a panel draws its queries.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
#[serde(rename_all = "snake_case", tag = "type")]
pub enum Kind {
    /// Lines over time (range queries).
    TimeSeries { stacked: bool },
    /// One figure per series, the last value, with a sparkline.
    Stat { thresholds: Thresholds },
    /// A histogram's buckets over time: `sum by (le) (rate(x_bucket[...]))`, one cell per
    /// bucket and step. Every histogram the daemon exports has one.
    Heatmap,
    /// An instant query as a table, sorted by value and cut to `limit` rows.
    Table { order: Order, limit: Option<usize> },
}

#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Order {
    /// Highest first (top-k).
    Desc,
    /// Lowest first (soonest full, probes down first).
    Asc,
}

/// When a stat turns red.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Thresholds {
    None,
    Above(f64),
    Below(f64),
}

/// What a panel's values are. Values are in base units (seconds, bytes, ratios 0..1), as
/// exported; the unit says how to show them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Unit {
    /// 0..1, shown as a percentage.
    Ratio,
    Bytes,
    BytesPerSecond,
    Seconds,
    /// Events per second.
    PerSecond,
    Iops,
    PacketsPerSecond,
    /// A plain number.
    Count,
    /// 0 or 1, shown as no or yes.
    Bool,
}

impl Unit {
    /// Grafana's unit id.
    pub fn grafana(self) -> &'static str {
        match self {
            Unit::Ratio => "percentunit",
            Unit::Bytes => "bytes",
            Unit::BytesPerSecond => "binBps",
            Unit::Seconds => "s",
            Unit::PerSecond => "ops",
            Unit::Iops => "iops",
            Unit::PacketsPerSecond => "pps",
            Unit::Count => "short",
            Unit::Bool => "bool_yes_no",
        }
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct Query {
    pub expr: String,
    /// Series name in the legend, Grafana's `{{label}}` template.
    pub legend: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct Panel {
    pub title: String,
    pub description: String,
    pub unit: Unit,
    pub kind: Kind,
    pub queries: Vec<Query>,
    /// Its series carry a `group` label: clicking one opens the drill-down for that group.
    pub links_to_group: bool,
}

#[derive(Clone, Debug, Serialize)]
pub struct Row {
    pub title: String,
    pub description: String,
    pub panels: Vec<Panel>,
    /// The per-group drill-down: what the `links_to_group` links lead to.
    pub drill_down: bool,
}

/// The matchers on every series: the dashboard's job and instance.
pub const HOST: &str = r#"job=~"$job",instance=~"$instance""#;
/// The matcher on every series with a `group` label.
pub const GROUP: &str = r#"group=~"$group""#;

/// Series `name` of the chosen hosts, with `extra` matchers.
fn h(name: &str, extra: &str) -> String {
    if extra.is_empty() {
        format!("{name}{{{HOST}}}")
    } else {
        format!("{name}{{{HOST},{extra}}}")
    }
}

/// Series `name` of the chosen hosts and groups.
fn g(name: &str, extra: &str) -> String {
    if extra.is_empty() {
        h(name, GROUP)
    } else {
        h(name, &format!("{GROUP},{extra}"))
    }
}

fn rate(selector: &str) -> String {
    format!("rate({selector}[$__rate_interval])")
}

fn increase(selector: &str) -> String {
    format!("increase({selector}[$__rate_interval])")
}

fn q(expr: impl Into<String>, legend: &str) -> Query {
    Query {
        expr: expr.into(),
        legend: legend.to_string(),
    }
}

fn panel(title: &str, unit: Unit, kind: Kind, description: &str, queries: Vec<Query>) -> Panel {
    Panel {
        title: title.to_string(),
        description: description.to_string(),
        unit,
        kind,
        queries,
        links_to_group: false,
    }
}

fn ts(title: &str, unit: Unit, description: &str, queries: Vec<Query>) -> Panel {
    panel(
        title,
        unit,
        Kind::TimeSeries { stacked: false },
        description,
        queries,
    )
}

fn stacked(title: &str, unit: Unit, description: &str, queries: Vec<Query>) -> Panel {
    panel(
        title,
        unit,
        Kind::TimeSeries { stacked: true },
        description,
        queries,
    )
}

fn stat(title: &str, unit: Unit, t: Thresholds, description: &str, expr: String) -> Panel {
    panel(
        title,
        unit,
        Kind::Stat { thresholds: t },
        description,
        vec![q(expr, "{{instance}}")],
    )
}

/// The heatmap of histogram `name` (its `_bucket` series, filtered by `matchers`).
fn heatmap(title: &str, description: &str, name: &str, grouped: bool) -> Panel {
    let bucket = format!("{name}_bucket");
    let sel = if grouped {
        g(&bucket, "")
    } else {
        h(&bucket, "")
    };
    panel(
        title,
        Unit::Seconds,
        Kind::Heatmap,
        description,
        vec![q(format!("sum by (le) ({})", rate(&sel)), "{{le}}")],
    )
}

/// A table of the highest ten, by value.
fn top(title: &str, unit: Unit, description: &str, expr: String) -> Panel {
    table(title, unit, Order::Desc, Some(10), description, expr)
}

fn table(
    title: &str,
    unit: Unit,
    order: Order,
    limit: Option<usize>,
    description: &str,
    expr: String,
) -> Panel {
    panel(
        title,
        unit,
        Kind::Table { order, limit },
        description,
        vec![q(expr, "")],
    )
}

fn linked(mut p: Panel) -> Panel {
    p.links_to_group = true;
    p
}

fn row(title: &str, description: &str, panels: Vec<Panel>) -> Row {
    Row {
        title: title.to_string(),
        description: description.to_string(),
        panels,
        drill_down: false,
    }
}

fn quantile(q: f64, by: &str, bucket_selector: &str) -> String {
    format!(
        "histogram_quantile({q}, sum by ({by}, le) ({}))",
        rate(bucket_selector)
    )
}

/// Share of CPU time busy (not idle, not waiting for I/O), per `by`.
fn cpu_busy(by: &str) -> String {
    let cpu = |extra| h("monitor_cpu_seconds_total", extra);
    format!(
        "1 - sum by ({by}) ({}) / sum by ({by}) ({})",
        rate(&cpu(r#"mode=~"idle|iowait""#)),
        rate(&cpu(""))
    )
}

/// Seconds per second some task waited for `resource` (PSI "some"; `stalled`: "full").
fn pressure(resource: &str, stalled: bool) -> String {
    let name = if stalled {
        "monitor_pressure_stalled_seconds_total"
    } else {
        "monitor_pressure_waiting_seconds_total"
    };
    format!(
        "sum by (instance) ({})",
        rate(&h(name, &format!(r#"resource="{resource}""#)))
    )
}

/// Mean disk latency per group: latency summed over requests / requests, where there were any.
fn group_disk_latency(by: &str) -> String {
    format!(
        "sum by ({by}) ({}) / (sum by ({by}) ({}) > 0)",
        rate(&g("monitor_process_disk_latency_seconds_total", "")),
        rate(&g("monitor_process_disk_requests_total", ""))
    )
}

/// Every row of the dashboard, in order.
pub fn rows() -> Vec<Row> {
    vec![
        quick_stats(),
        cpu(),
        memory(),
        disk(),
        space(),
        network(),
        applications(),
        services(),
        logs(),
        alerts(),
        drill_down(),
        self_health(),
    ]
}

fn quick_stats() -> Row {
    use Thresholds::{Above, Below};
    let net = |dir: &str| {
        format!(
            "sum by (instance) ({})",
            rate(&h(
                "monitor_network_bytes_total",
                &format!(r#"direction="{dir}",device!="lo""#)
            ))
        )
    };
    row(
        "Quick stats",
        "What is wrong now, per host: each figure turns red past the threshold of the \
         daemon's default alert rule for it.",
        vec![
            stat(
                "CPU busy",
                Unit::Ratio,
                Above(0.9),
                "Share of all CPUs' time not idle and not waiting for I/O (the HostCPUBusy \
                 rule fires above 90% for 5 minutes).",
                cpu_busy("instance"),
            ),
            stat(
                "Run-queue latency p99",
                Unit::Seconds,
                Above(0.05),
                "99th percentile of the time a runnable task waited for a CPU, the \
                 scheduler's own figure (HostRunqueueLatencyHigh: above 50 ms).",
                quantile(
                    0.99,
                    "instance",
                    &h("monitor_runqueue_latency_seconds_bucket", ""),
                ),
            ),
            stat(
                "Memory available",
                Unit::Ratio,
                Below(0.1),
                "MemAvailable as a share of MemTotal: what can be allocated without swapping \
                 (HostMemoryLow: under 10%).",
                format!(
                    "{} / {}",
                    h("monitor_memory_available_bytes", ""),
                    h("monitor_memory_total_bytes", "")
                ),
            ),
            stat(
                "Memory stalls",
                Unit::Ratio,
                Above(0.1),
                "Share of time some task was stalled waiting for memory (PSI some).",
                pressure("memory", false),
            ),
            stat(
                "Fullest filesystem",
                Unit::Ratio,
                Above(0.95),
                "Used share (not available to unprivileged users) of the fullest mounted \
                 filesystem (FilesystemAlmostFull: under 5% available).",
                format!(
                    "max by (instance) (1 - {} / ({} > 0))",
                    h("monitor_filesystem_avail_bytes", ""),
                    h("monitor_filesystem_size_bytes", "")
                ),
            ),
            stat(
                "Soonest full",
                Unit::Seconds,
                Below(86400.0),
                "Time until the first filesystem fills at its last hour's fill rate (+Inf: \
                 none is filling; FilesystemFillingUp: within 24 hours).",
                format!(
                    "min by (instance) ({})",
                    h("monitor_filesystem_predicted_full_seconds", "")
                ),
            ),
            stat(
                "Disk latency p99",
                Unit::Seconds,
                Above(0.1),
                "99th percentile of block request latency, issue to completion, over all disks.",
                quantile(
                    0.99,
                    "instance",
                    &h("monitor_disk_latency_seconds_bucket", ""),
                ),
            ),
            stat(
                "Network in",
                Unit::BytesPerSecond,
                Thresholds::None,
                "Bytes received per second by all interfaces but loopback.",
                net("rx"),
            ),
            stat(
                "Network out",
                Unit::BytesPerSecond,
                Thresholds::None,
                "Bytes sent per second by all interfaces but loopback.",
                net("tx"),
            ),
            stat(
                "Firing alerts",
                Unit::Count,
                Above(0.5),
                "Alerts the daemon's own rules have firing now (see the Alerts row).",
                format!(
                    "sum by (instance) ({})",
                    h("monitor_alerts", r#"state="firing""#)
                ),
            ),
            stat(
                "Collectors failing",
                Unit::Count,
                Above(0.5),
                "Collectors whose last run failed: a kernel program detached or never \
                 attached, or a source could not be read (see Self-health).",
                format!(
                    "sum by (instance) (1 - {})",
                    h("monitor_collector_success", "")
                ),
            ),
            stat(
                "Processes",
                Unit::Count,
                Thresholds::None,
                "Live processes.",
                h("monitor_processes", ""),
            ),
        ],
    )
}

fn cpu() -> Row {
    let cpu = |extra| h("monitor_cpu_seconds_total", extra);
    row(
        "CPU",
        "Utilisation (busy by mode and per CPU), saturation (run-queue latency, CPU pressure) \
         and who: the groups using CPU and waiting for it, measured at each context switch.",
        vec![
            stacked(
                "CPU busy by mode",
                Unit::Ratio,
                "Share of all CPUs' time in each mode but idle (/proc/stat).",
                vec![q(
                    format!(
                        "sum by (instance, mode) ({}) / on (instance) group_left sum by (instance) ({})",
                        rate(&cpu(r#"mode!="idle""#)),
                        rate(&cpu(""))
                    ),
                    "{{mode}}",
                )],
            ),
            ts(
                "CPU busy per CPU",
                Unit::Ratio,
                "Share of each CPU's time not idle and not waiting for I/O.",
                vec![q(cpu_busy("instance, cpu"), "cpu {{cpu}}")],
            ),
            heatmap(
                "Run-queue latency",
                "Time from a task becoming runnable (wakeup or preemption) to running, every \
                 wait of every task, in log2 buckets (the kernel's histogram, like runqlat).",
                "monitor_runqueue_latency_seconds",
                false,
            ),
            ts(
                "Run-queue latency p50 and p99",
                Unit::Seconds,
                "Median and 99th percentile of run-queue waits.",
                vec![
                    q(
                        quantile(
                            0.5,
                            "instance",
                            &h("monitor_runqueue_latency_seconds_bucket", ""),
                        ),
                        "p50",
                    ),
                    q(
                        quantile(
                            0.99,
                            "instance",
                            &h("monitor_runqueue_latency_seconds_bucket", ""),
                        ),
                        "p99",
                    ),
                ],
            ),
            ts(
                "CPU pressure",
                Unit::Ratio,
                "Share of time some runnable task waited for a CPU (PSI some).",
                vec![q(pressure("cpu", false), "some")],
            ),
            ts(
                "Context switches",
                Unit::PerSecond,
                "Switches per second of the chosen groups: voluntary (the task blocked) and \
                 involuntary (preempted).",
                vec![q(
                    format!(
                        "sum by (instance, kind) ({})",
                        rate(&g("monitor_process_context_switches_total", ""))
                    ),
                    "{{kind}}",
                )],
            ),
            linked(top(
                "Top groups by CPU",
                Unit::Ratio,
                "CPU time per second of each group (1 = one core busy), counted in the \
                 kernel at each context switch, the running slice included. Click a group \
                 for its drill-down.",
                format!(
                    "sum by (instance, group) ({})",
                    rate(&g("monitor_process_cpu_seconds_total", ""))
                ),
            )),
            linked(top(
                "Top groups by run-queue wait",
                Unit::Seconds,
                "Seconds per second the group's tasks were runnable but not running: who \
                 waits for CPU. Click a group for its drill-down.",
                format!(
                    "sum by (instance, group) ({})",
                    rate(&g("monitor_process_runqueue_wait_seconds_total", ""))
                ),
            )),
            ts(
                "Process starts and exits",
                Unit::PerSecond,
                "Execs and process exits per second of the chosen groups.",
                vec![
                    q(
                        format!(
                            "sum by (instance) ({})",
                            rate(&g("monitor_process_starts_total", ""))
                        ),
                        "starts",
                    ),
                    q(
                        format!(
                            "sum by (instance) ({})",
                            rate(&g("monitor_process_exits_total", ""))
                        ),
                        "exits",
                    ),
                ],
            ),
        ],
    )
}

fn memory() -> Row {
    let mem = |field: &str| h(&format!("monitor_memory_{field}_bytes"), "");
    row(
        "Memory",
        "Utilisation (used, available, swap, the groups holding most), saturation (memory \
         pressure) and errors (OOM kills per group).",
        vec![
            stacked(
                "Memory used and available",
                Unit::Bytes,
                "Used is MemTotal - MemAvailable; available is what can be allocated \
                 without swapping (page cache included).",
                vec![
                    q(format!("{} - {}", mem("total"), mem("available")), "used"),
                    q(mem("available"), "available"),
                ],
            ),
            ts(
                "Cache, buffers, dirty",
                Unit::Bytes,
                "Page cache, buffers, and dirty pages waiting to be written back.",
                vec![
                    q(mem("cached"), "cached"),
                    q(mem("buffers"), "buffers"),
                    q(mem("dirty"), "dirty"),
                    q(mem("writeback"), "writeback"),
                ],
            ),
            ts(
                "Swap used",
                Unit::Bytes,
                "SwapTotal - SwapFree.",
                vec![q(
                    format!("{} - {}", mem("swap_total"), mem("swap_free")),
                    "swap used",
                )],
            ),
            ts(
                "Memory pressure",
                Unit::Ratio,
                "Share of time some task (some) or every non-idle task (full) was stalled \
                 waiting for memory (PSI).",
                vec![
                    q(pressure("memory", false), "some"),
                    q(pressure("memory", true), "full"),
                ],
            ),
            linked(top(
                "Top groups by resident memory",
                Unit::Bytes,
                "Resident memory (the sum of VmRSS) of each group's live processes; pages \
                 shared between processes count once per process. A process is read again \
                 at most every 2 s after it ran, and every 20 to 30 s when idle. Click a \
                 group for its drill-down.",
                format!(
                    "sum by (instance, group) ({})",
                    g("monitor_process_resident_memory_bytes", "")
                ),
            )),
            linked(ts(
                "OOM kills by group",
                Unit::Count,
                "Processes the kernel's OOM killer chose, per group (oom:mark_victim); only \
                 groups with a kill in the interval are drawn.",
                vec![q(
                    format!(
                        "sum by (instance, group) ({}) > 0",
                        increase(&g("monitor_process_oom_kills_total", ""))
                    ),
                    "{{group}}",
                )],
            )),
        ],
    )
}

fn disk() -> Row {
    let per_device = |name: &str| format!("sum by (instance, device, op) ({})", rate(&h(name, "")));
    row(
        "Disk",
        "Per disk and operation: utilisation (IOPS, bytes), saturation (queue wait, I/O \
         pressure), errors, and latency as heatmaps; per group: who moves the bytes and who \
         waits. Counted in the kernel at each request's submission, issue and completion.",
        vec![
            ts(
                "Disk IOPS",
                Unit::Iops,
                "Completed requests per second per disk and operation.",
                vec![q(
                    per_device("monitor_disk_requests_total"),
                    "{{device}} {{op}}",
                )],
            ),
            ts(
                "Disk throughput",
                Unit::BytesPerSecond,
                "Bytes per second per disk and operation.",
                vec![q(
                    per_device("monitor_disk_bytes_total"),
                    "{{device}} {{op}}",
                )],
            ),
            heatmap(
                "Disk latency",
                "Block request latency, issue to the driver until completion, all disks, \
                 log2 buckets (like biolatency).",
                "monitor_disk_latency_seconds",
                false,
            ),
            heatmap(
                "Disk queue wait",
                "Time from submission to issue (plugged, queued, held by the I/O scheduler), \
                 all disks.",
                "monitor_disk_queue_wait_seconds",
                false,
            ),
            ts(
                "Disk latency p99 per disk",
                Unit::Seconds,
                "99th percentile of request latency per disk and operation.",
                vec![q(
                    quantile(
                        0.99,
                        "instance, device, op",
                        &h("monitor_disk_latency_seconds_bucket", ""),
                    ),
                    "{{device}} {{op}}",
                )],
            ),
            ts(
                "I/O pressure",
                Unit::Ratio,
                "Share of time some (or every non-idle) task was stalled waiting for I/O (PSI).",
                vec![
                    q(pressure("io", false), "some"),
                    q(pressure("io", true), "full"),
                ],
            ),
            ts(
                "Disk errors",
                Unit::PerSecond,
                "Requests per second completed with an error status (DiskIOErrors fires on \
                 any).",
                vec![q(
                    per_device("monitor_disk_errors_total"),
                    "{{device}} {{op}}",
                )],
            ),
            linked(top(
                "Top groups by disk bytes",
                Unit::BytesPerSecond,
                "Bytes per second read and written by the I/O each group submitted (buffered \
                 writes are submitted by the kernel's flusher threads: kworker). Click a \
                 group for its drill-down.",
                format!(
                    "sum by (instance, group) ({})",
                    rate(&g("monitor_process_disk_bytes_total", ""))
                ),
            )),
            linked(top(
                "Top groups by disk latency",
                Unit::Seconds,
                "Mean issue-to-completion latency of the requests each group submitted in the \
                 interval. Click a group for its drill-down.",
                group_disk_latency("instance, group"),
            )),
        ],
    )
}

fn space() -> Row {
    let fs = |name: &str| h(&format!("monitor_filesystem_{name}"), "");
    row(
        "Space",
        "Per mounted filesystem: used share, inodes, time to full, read-only and \
         unresponsive mounts.",
        vec![
            ts(
                "Filesystem used",
                Unit::Ratio,
                "1 - available / size per mount (space reserved for root counts as used).",
                vec![q(
                    format!("1 - {} / ({} > 0)", fs("avail_bytes"), fs("size_bytes")),
                    "{{mountpoint}}",
                )],
            ),
            ts(
                "Inodes used",
                Unit::Ratio,
                "1 - free inodes / inodes per mount (filesystems without an inode limit left out).",
                vec![q(
                    format!("1 - {} / ({} > 0)", fs("files_free"), fs("files")),
                    "{{mountpoint}}",
                )],
            ),
            table(
                "Time to full",
                Unit::Seconds,
                Order::Asc,
                None,
                "Seconds until each filesystem is full at its last hour's fill rate (least \
                 squares), soonest first; +Inf when not filling.",
                fs("predicted_full_seconds"),
            ),
            table(
                "Read-only mounts",
                Unit::Bool,
                Order::Desc,
                None,
                "Mounts mounted or remounted read-only (an ext4 error remounts read-only), \
                 read-only first.",
                fs("readonly"),
            ),
            table(
                "Mounts not answering",
                Unit::Bool,
                Order::Desc,
                None,
                "Mounts whose statvfs failed or did not return in time (a dead NFS server), \
                 failing first.",
                fs("device_error"),
            ),
        ],
    )
}

fn network() -> Row {
    let per_dev = |name: &str| {
        format!(
            "sum by (instance, device, direction) ({})",
            rate(&h(name, ""))
        )
    };
    row(
        "Network",
        "Per interface: utilisation (bytes, packets), errors and drops; per group, seen in \
         the kernel: traffic, TCP retransmits, resets, connect latency and connections.",
        vec![
            ts(
                "Interface traffic",
                Unit::BytesPerSecond,
                "Bytes per second per interface and direction (/proc/net/dev).",
                vec![q(
                    per_dev("monitor_network_bytes_total"),
                    "{{device}} {{direction}}",
                )],
            ),
            ts(
                "Interface packets",
                Unit::PacketsPerSecond,
                "Packets per second per interface and direction.",
                vec![q(
                    per_dev("monitor_network_packets_total"),
                    "{{device}} {{direction}}",
                )],
            ),
            ts(
                "Interface errors and drops",
                Unit::PacketsPerSecond,
                "Packets per second counted as errors or dropped, per interface and direction.",
                vec![
                    q(
                        per_dev("monitor_network_errors_total"),
                        "{{device}} {{direction}} errors",
                    ),
                    q(
                        per_dev("monitor_network_drops_total"),
                        "{{device}} {{direction}} drops",
                    ),
                ],
            ),
            ts(
                "Traffic no process accounts for",
                Unit::BytesPerSecond,
                "Interface bytes beyond the payload charged to processes: headers, ACKs, \
                 forwarded and kernel traffic, other protocols (follows the smallest \
                 difference of the last 10 s).",
                vec![q(
                    format!(
                        "sum by (instance, direction) ({})",
                        rate(&h("monitor_network_unattributed_bytes_total", ""))
                    ),
                    "{{direction}}",
                )],
            ),
            linked(top(
                "Top groups by traffic",
                Unit::BytesPerSecond,
                "TCP and UDP payload bytes per second each group sent and received, counted \
                 in the sender's or reader's context. Click a group for its drill-down.",
                format!(
                    "sum by (instance, group) ({})",
                    rate(&g("monitor_process_net_bytes_total", ""))
                ),
            )),
            linked(ts(
                "TCP retransmits by group",
                Unit::PerSecond,
                "Segments per second retransmitted by each group's sockets; only groups that \
                 retransmitted are drawn.",
                vec![q(
                    format!(
                        "sum by (instance, group) ({}) > 0",
                        rate(&g("monitor_process_tcp_retransmits_total", ""))
                    ),
                    "{{group}}",
                )],
            )),
            linked(ts(
                "TCP resets by group",
                Unit::PerSecond,
                "Resets per second sent (tx) and received (rx) by each group's sockets; only \
                 groups with resets are drawn.",
                vec![q(
                    format!(
                        "sum by (instance, group, direction) ({}) > 0",
                        rate(&g("monitor_process_tcp_resets_total", ""))
                    ),
                    "{{group}} {{direction}}",
                )],
            )),
            heatmap(
                "TCP connect latency",
                "SYN sent to ESTABLISHED of the chosen groups' connect() calls (buckets at \
                 powers of 4).",
                "monitor_process_tcp_connect_latency_seconds",
                true,
            ),
            ts(
                "TCP connections opened and closed",
                Unit::PerSecond,
                "Connections per second opened (active: connect(); passive: accepted) and \
                 established connections closed, of the chosen groups.",
                vec![
                    q(
                        format!(
                            "sum by (instance, kind) ({})",
                            rate(&g("monitor_process_tcp_connections_opened_total", ""))
                        ),
                        "opened {{kind}}",
                    ),
                    q(
                        format!(
                            "sum by (instance) ({})",
                            rate(&g("monitor_process_tcp_connections_closed_total", ""))
                        ),
                        "closed",
                    ),
                ],
            ),
            ts(
                "TCP connections by state",
                Unit::Count,
                "TCP sockets of the chosen groups now, by state.",
                vec![q(
                    format!(
                        "sum by (instance, state) ({})",
                        g("monitor_process_tcp_connections", "")
                    ),
                    "{{state}}",
                )],
            ),
        ],
    )
}

/// Requests, latency and errors per listening port and per remote port, as the service
/// family sees them at the syscall boundary (no instrumentation).
fn applications() -> Row {
    let per = |name: &str, by: &str| format!("sum by (instance, {by}) ({})", rate(&g(name, "")));
    row(
        "Applications",
        "Request/response turns, response latency and errors per listening port and group \
         (inbound) and per remote port (outbound), measured in the kernel; HTTP status \
         classes for plaintext HTTP/1.x.",
        vec![
            ts(
                "Requests by port",
                Unit::PerSecond,
                "Request/response turns per second on accepted connections, per listening port.",
                vec![q(per("monitor_service_requests_total", "port"), "{{port}}")],
            ),
            heatmap(
                "Response latency",
                "From the first byte of a request read to the first byte of its response \
                 written, every listening port of the chosen groups.",
                "monitor_service_response_latency_seconds",
                true,
            ),
            ts(
                "Response latency p99 by port",
                Unit::Seconds,
                "The 99th percentile of the response latency per listening port.",
                vec![q(
                    quantile(
                        0.99,
                        "instance, port",
                        &g("monitor_service_response_latency_seconds_bucket", ""),
                    ),
                    "{{port}}",
                )],
            ),
            ts(
                "HTTP responses by class",
                Unit::PerSecond,
                "Responses per second per status class (plaintext HTTP/1.x), all ports.",
                vec![q(
                    per("monitor_service_http_responses_total", "code"),
                    "{{code}}",
                )],
            ),
            ts(
                "Service errors",
                Unit::PerSecond,
                "Resets sent or received and connections closed with a request unanswered, \
                 per second, by kind.",
                vec![q(per("monitor_service_errors_total", "kind"), "{{kind}}")],
            ),
            ts(
                "Outbound requests by remote port",
                Unit::PerSecond,
                "Request/response turns per second on connections the groups made, per \
                 remote port.",
                vec![q(
                    per("monitor_service_outbound_requests_total", "port"),
                    "{{port}}",
                )],
            ),
            heatmap(
                "Outbound response latency",
                "From the first byte of a request written to the first byte of its \
                 response read, on the groups' own connections.",
                "monitor_service_outbound_response_latency_seconds",
                true,
            ),
            ts(
                "DNS responses by rcode",
                Unit::PerSecond,
                "Answers to the groups' DNS queries over UDP, per second, by response code.",
                vec![q(per("monitor_dns_responses_total", "rcode"), "{{rcode}}")],
            ),
        ],
    )
}

fn services() -> Row {
    row(
        "Services and probes",
        "The watched services and probes of the alerting config (services:, probes:).",
        vec![
            ts(
                "Service processes",
                Unit::Count,
                "Live processes matching each watched service (ServiceDown fires at 0).",
                vec![q(h("monitor_service_processes", ""), "{{service}}")],
            ),
            ts(
                "Service recent starts",
                Unit::Count,
                "Processes of each service started within its window (ServiceRestarting \
                 fires above max_restarts).",
                vec![q(h("monitor_service_recent_starts", ""), "{{service}}")],
            ),
            table(
                "Probes up",
                Unit::Bool,
                Order::Asc,
                None,
                "Whether each probe's last check succeeded, failing first.",
                h("monitor_probe_up", ""),
            ),
            heatmap(
                "Probe duration",
                "Time to each probe's answer or connection, all probes.",
                "monitor_probe_duration_seconds",
                false,
            ),
            ts(
                "Probe failures",
                Unit::PerSecond,
                "Failed checks per second per probe.",
                vec![q(
                    format!(
                        "sum by (instance, probe) ({})",
                        rate(&h("monitor_probe_failures_total", ""))
                    ),
                    "{{probe}}",
                )],
            ),
            table(
                "HTTP probe status",
                Unit::Count,
                Order::Desc,
                None,
                "Status code of each HTTP probe's last answer.",
                h("monitor_probe_http_status_code", ""),
            ),
        ],
    )
}

fn logs() -> Row {
    row(
        "Log-file matches",
        "Lines of the followed log files (--log-match.file) and those matching each pattern \
         (--log-match.pattern).",
        vec![
            ts(
                "Matching lines",
                Unit::PerSecond,
                "Lines per second matching each pattern, per file.",
                vec![q(
                    format!(
                        "sum by (instance, file, pattern) ({})",
                        rate(&h("monitor_log_matches_total", ""))
                    ),
                    "{{file}} {{pattern}}",
                )],
            ),
            ts(
                "Lines read",
                Unit::PerSecond,
                "Lines per second read from each followed file.",
                vec![q(
                    format!(
                        "sum by (instance, file) ({})",
                        rate(&h("monitor_log_lines_total", ""))
                    ),
                    "{{file}}",
                )],
            ),
            table(
                "Followed files open",
                Unit::Bool,
                Order::Asc,
                None,
                "Whether each followed file exists and is open, missing first.",
                h("monitor_log_file_open", ""),
            ),
            ts(
                "Rotations and truncations",
                Unit::Count,
                "Rotations (the path names a new file) and truncations (the file got \
                 shorter) seen in the interval, per file.",
                vec![
                    q(
                        format!(
                            "sum by (instance, file) ({})",
                            increase(&h("monitor_log_file_rotations_total", ""))
                        ),
                        "{{file}} rotations",
                    ),
                    q(
                        format!(
                            "sum by (instance, file) ({})",
                            increase(&h("monitor_log_file_truncations_total", ""))
                        ),
                        "{{file}} truncations",
                    ),
                ],
            ),
        ],
    )
}

fn alerts() -> Row {
    row(
        "Alerts",
        "The daemon's own alert rules (default rules and rule files) and the delivery of \
         their notifications.",
        vec![
            table(
                "Firing and pending alerts",
                Unit::Count,
                Order::Desc,
                None,
                "Alerts now firing or pending, by rule and severity (empty when all is well).",
                format!(
                    "sum by (instance, alertname, severity, state) ({}) > 0",
                    h("monitor_alerts", r#"state=~"firing|pending""#)
                ),
            ),
            ts(
                "Alerts over time",
                Unit::Count,
                "Alerts firing and pending.",
                vec![q(
                    format!(
                        "sum by (instance, state) ({})",
                        h("monitor_alerts", r#"state=~"firing|pending""#)
                    ),
                    "{{state}}",
                )],
            ),
            ts(
                "Notifications",
                Unit::PerSecond,
                "Notifications delivered and failed delivery attempts per second, per receiver, \
                 and notifications dropped from a full queue.",
                vec![
                    q(
                        format!(
                            "sum by (instance, receiver) ({})",
                            rate(&h("monitor_alert_notifications_total", ""))
                        ),
                        "{{receiver}} delivered",
                    ),
                    q(
                        format!(
                            "sum by (instance, receiver) ({})",
                            rate(&h("monitor_alert_notification_failures_total", ""))
                        ),
                        "{{receiver}} failed",
                    ),
                    q(
                        format!(
                            "sum by (instance) ({})",
                            rate(&h("monitor_alert_queue_dropped_total", ""))
                        ),
                        "dropped",
                    ),
                ],
            ),
            ts(
                "Notification queue",
                Unit::Count,
                "Notifications waiting on disk to be delivered, per receiver.",
                vec![q(h("monitor_alert_queue_length", ""), "{{receiver}}")],
            ),
            ts(
                "Rule evaluation failures",
                Unit::PerSecond,
                "Failed evaluations per second per rule (the daemon's log says why).",
                vec![q(
                    format!(
                        "sum by (instance, alertname) ({})",
                        rate(&h("monitor_alert_rule_evaluation_failures_total", ""))
                    ),
                    "{{alertname}}",
                )],
            ),
            ts(
                "Heartbeat",
                Unit::PerSecond,
                "Heartbeat requests per second the heartbeat URL accepted, and those that failed.",
                vec![
                    q(
                        format!(
                            "sum by (instance) ({})",
                            rate(&h("monitor_heartbeat_pings_total", ""))
                        ),
                        "pings",
                    ),
                    q(
                        format!(
                            "sum by (instance) ({})",
                            rate(&h("monitor_heartbeat_failures_total", ""))
                        ),
                        "failures",
                    ),
                ],
            ),
        ],
    )
}

fn drill_down() -> Row {
    let by_group = |name: &str, extra_by: &str| {
        format!(
            "sum by (instance, group{extra_by}) ({})",
            rate(&g(name, ""))
        )
    };
    let mut r = row(
        "Groups: $group",
        "The chosen groups (the group variable) over time: CPU, wait, memory, disk, network. \
         The top tables and group series of the other rows link here.",
        vec![
            ts(
                "CPU by group",
                Unit::Ratio,
                "CPU time per second (1 = one core).",
                vec![q(
                    by_group("monitor_process_cpu_seconds_total", ""),
                    "{{group}}",
                )],
            ),
            ts(
                "Run-queue wait by group",
                Unit::Seconds,
                "Seconds per second runnable but not running.",
                vec![q(
                    by_group("monitor_process_runqueue_wait_seconds_total", ""),
                    "{{group}}",
                )],
            ),
            ts(
                "Context switches by group",
                Unit::PerSecond,
                "Voluntary and involuntary switches per second.",
                vec![q(
                    by_group("monitor_process_context_switches_total", ", kind"),
                    "{{group}} {{kind}}",
                )],
            ),
            ts(
                "Resident memory by group",
                Unit::Bytes,
                "The sum of the VmRSS of each group's live processes.",
                vec![q(
                    format!(
                        "sum by (instance, group) ({})",
                        g("monitor_process_resident_memory_bytes", "")
                    ),
                    "{{group}}",
                )],
            ),
            ts(
                "Disk bytes by group",
                Unit::BytesPerSecond,
                "Bytes per second of the reads and writes each group submitted.",
                vec![q(
                    by_group("monitor_process_disk_bytes_total", ", op"),
                    "{{group}} {{op}}",
                )],
            ),
            ts(
                "Disk requests by group",
                Unit::Iops,
                "Requests per second each group submitted.",
                vec![q(
                    by_group("monitor_process_disk_requests_total", ", op"),
                    "{{group}} {{op}}",
                )],
            ),
            ts(
                "Disk latency by group",
                Unit::Seconds,
                "Mean issue-to-completion latency of each group's requests.",
                vec![q(group_disk_latency("instance, group"), "{{group}}")],
            ),
            ts(
                "Network traffic by group",
                Unit::BytesPerSecond,
                "Payload bytes per second sent (tx) and received (rx), TCP and UDP.",
                vec![q(
                    by_group("monitor_process_net_bytes_total", ", direction, protocol"),
                    "{{group}} {{protocol}} {{direction}}",
                )],
            ),
            ts(
                "TCP connect latency p99 by group",
                Unit::Seconds,
                "99th percentile of each group's connect() latency (SYN sent to ESTABLISHED).",
                vec![q(
                    quantile(
                        0.99,
                        "instance, group",
                        &g("monitor_process_tcp_connect_latency_seconds_bucket", ""),
                    ),
                    "{{group}}",
                )],
            ),
            ts(
                "Starts and exits by group",
                Unit::PerSecond,
                "Execs and process exits per second.",
                vec![
                    q(
                        by_group("monitor_process_starts_total", ""),
                        "{{group}} starts",
                    ),
                    q(
                        by_group("monitor_process_exits_total", ""),
                        "{{group}} exits",
                    ),
                ],
            ),
        ],
    );
    r.drill_down = true;
    r
}

fn self_health() -> Row {
    row(
        "Self-health",
        "The daemon itself: collectors, kernel programs (cost per run, map fill, misses), \
         its own CPU and memory, freshness of its figures.",
        vec![
            table(
                "Collector success",
                Unit::Bool,
                Order::Asc,
                None,
                "Whether each collector's last run succeeded, failing first.",
                h("monitor_collector_success", ""),
            ),
            ts(
                "Collector duration",
                Unit::Seconds,
                "How long each collector's last run took.",
                vec![q(
                    h("monitor_collector_duration_seconds", ""),
                    "{{collector}}",
                )],
            ),
            ts(
                "BPF program cost per run",
                Unit::Seconds,
                "Mean run time of each kernel program per event (counted while --bpf.stats \
                 is on; empty otherwise).",
                vec![q(
                    format!(
                        "sum by (instance, program) ({}) / (sum by (instance, program) ({}) > 0)",
                        rate(&h("monitor_bpf_program_run_seconds_total", "")),
                        rate(&h("monitor_bpf_program_runs_total", ""))
                    ),
                    "{{program}}",
                )],
            ),
            stacked(
                "BPF program CPU",
                Unit::Ratio,
                "CPU time per second the kernel programs took (1 = one core; --bpf.stats).",
                vec![q(
                    format!(
                        "sum by (instance, program) ({})",
                        rate(&h("monitor_bpf_program_run_seconds_total", ""))
                    ),
                    "{{program}}",
                )],
            ),
            ts(
                "BPF map fill",
                Unit::Ratio,
                "Entries / capacity of each kernel map (counted at most every 10 s): a full \
                 map loses events.",
                vec![q(
                    format!(
                        "{} / ({} > 0)",
                        h("monitor_bpf_map_entries", ""),
                        h("monitor_bpf_map_capacity", "")
                    ),
                    "{{map}}",
                )],
            ),
            ts(
                "Kernel misses and drops",
                Unit::PerSecond,
                "Per second: what each kernel program saw and could not record, by reason; \
                 failed map updates, by map; exits noticed from /proc because their event was \
                 lost.",
                vec![
                    q(
                        format!(
                            "sum by (instance, program, reason) ({})",
                            rate(&h("monitor_bpf_misses_total", ""))
                        ),
                        "{{program}} {{reason}}",
                    ),
                    q(
                        format!(
                            "sum by (instance, map) ({})",
                            rate(&h("monitor_bpf_map_update_failures_total", ""))
                        ),
                        "{{map}} update failed",
                    ),
                    q(
                        format!(
                            "sum by (instance) ({})",
                            rate(&h("monitor_process_exit_events_missed_total", ""))
                        ),
                        "exit events missed",
                    ),
                ],
            ),
            ts(
                "Daemon CPU",
                Unit::Ratio,
                "The daemon's own CPU time per second, user space (1 = one core).",
                vec![q(rate(&h("process_cpu_seconds_total", "")), "monitor")],
            ),
            ts(
                "Daemon memory",
                Unit::Bytes,
                "The daemon's resident memory.",
                vec![q(h("process_resident_memory_bytes", ""), "resident")],
            ),
            ts(
                "Snapshot age and refresh duration",
                Unit::Seconds,
                "Age of the snapshot the last scrape was served from, and how long its \
                 refresh took.",
                vec![
                    q(h("monitor_snapshot_age_seconds", ""), "snapshot age"),
                    q(
                        h("monitor_refresh_duration_seconds", ""),
                        "refresh duration",
                    ),
                ],
            ),
            ts(
                "Series budget",
                Unit::Count,
                "Groups with their own series (kept) and groups summed into group=\"other\" \
                 (folded), see --process.max-groups.",
                vec![q(h("monitor_process_groups", ""), "{{state}}")],
            ),
            table(
                "Hooks in use",
                Unit::Count,
                Order::Desc,
                None,
                "Which kernel hook serves each measure (the best the kernel offers; the rest \
                 are fallbacks).",
                h("monitor_bpf_hook_info", ""),
            ),
            table(
                "Version",
                Unit::Count,
                Order::Desc,
                None,
                "The daemon's version and revision on each host.",
                h("monitor_build_info", ""),
            ),
        ],
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the daemon's page will read: every panel with its kind and unit.
    #[test]
    fn serializes_for_the_page() {
        let v = serde_json::to_value(rows()).unwrap();
        let first = &v[0]["panels"][0];
        assert_eq!(first["title"], "CPU busy");
        assert_eq!(first["unit"], "ratio");
        assert_eq!(first["kind"]["type"], "stat");
        assert_eq!(first["kind"]["thresholds"]["above"], 0.9);
        let top = &v[1]["panels"][6];
        assert_eq!(
            top["kind"],
            serde_json::json!({"type": "table", "order": "desc", "limit": 10})
        );
        assert_eq!(top["links_to_group"], true);
    }
}
