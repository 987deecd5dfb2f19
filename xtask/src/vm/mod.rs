//! `cargo xtask vm-test`: boot Debian's kernels under QEMU and check, on each, that every
//! kernel program passes the verifier and attaches through the expected hook (or falls back
//! as designed), that the daemon serves metrics, and that it counts a workload run in the
//! guest. Prints one PASS or FAIL line per kernel, and each program's verifier instruction
//! count (from `monitor bpf verify`: the verifier's own statistics, on every kernel) so growth
//! is visible.

mod guest;
mod kernel;
mod qemu;

use std::{
    collections::BTreeMap,
    time::{Duration, Instant},
};

use anyhow::{bail, Context as _};

use crate::{cmd, setup};

/// Kernels the test command checks besides the host's: Debian 11's (through a private apt
/// configuration: the machine lists no bullseye), Debian 12's and its backports'.
pub const MATRIX: &[&str] = &["5.10", "6.1", "6.12"];

const PACKAGES: &[&str] = &[
    "qemu-system-x86",
    "busybox-static",
    "cpio",
    // Debian's kernel modules are xz- or zstd-compressed.
    "xz-utils",
    "zstd",
];

const BOOT_LIMIT: Duration = Duration::from_secs(300);

#[derive(clap::Args)]
pub struct Options {
    /// Kernel series ("5.10", "6.1", "6.12") or a full package name; repeatable. Default: the matrix.
    #[arg(long = "kernel")]
    pub kernels: Vec<String>,
    /// Use target/release/monitor as it is.
    #[arg(long)]
    pub no_build: bool,
}

/// The series' (major, minor), from "5.10" or a package name ("linux-image-6.12.117+deb12-amd64").
fn version(series: &str) -> (u64, u64) {
    let mut n = series
        .trim_start_matches("linux-image-")
        .split(|c: char| !c.is_ascii_digit())
        .map(|s| s.parse().unwrap_or(0));
    (n.next().unwrap_or(0), n.next().unwrap_or(0))
}

/// The hook each measure must use on a kernel series, per guest run. tp_btf has the switch's
/// `prev_state` argument from 5.18 (5.10 takes the classic tracepoint, for real), the wakeups
/// from 5.5; the classic run forces the classic hooks everywhere.
fn expected_hooks(series: &str, run: &str) -> Vec<(&'static str, &'static str)> {
    let v = version(series);
    let classic = run == "classic";
    let switch = if classic || v < (5, 18) {
        "tracepoint/sched/sched_switch"
    } else {
        "tp_btf/sched_switch"
    };
    // Every kernel of the matrix has BTF naming `sched_info.run_delay`: the switch charges
    // the kernel's wait, and only the new threads' wakeup is attached.
    let wakeup_new = if classic {
        "tracepoint/sched/sched_wakeup_new"
    } else {
        "tp_btf/sched_wakeup_new"
    };
    let mut hooks = vec![
        ("cpu_time_and_switches", switch),
        ("runqueue_wakeup_new", wakeup_new),
        ("process_exec", "tracepoint/sched/sched_process_exec"),
        ("process_exit", "tracepoint/sched/sched_process_exit"),
        ("process_oom_kill", "tracepoint/oom/mark_victim"),
    ];
    // sock_send_length and sock_recv_length exist from 6.3; the classic run forces the older
    // hooks everywhere.
    if classic || v < (6, 3) {
        hooks.push(("net_send", "tracepoint/net/net_dev_queue"));
        hooks.push(("net_receive", "tracepoint/skb/skb_copy_datagram_iovec"));
        hooks.push(("net_receive_udp", "tracepoint/skb/consume_skb"));
    } else {
        hooks.push(("net_send", "tp_btf/sock_send_length"));
        hooks.push(("net_receive", "tp_btf/sock_recv_length"));
    }
    // The typed TCP state hook wherever there is BTF (every kernel of the matrix); the
    // classic run forces the record.
    if classic {
        hooks.push(("tcp_state", "tracepoint/sock/inet_sock_set_state"));
        hooks.push(("tcp_retransmit", "tracepoint/tcp/tcp_retransmit_skb"));
        hooks.push(("tcp_reset_sent", "tracepoint/tcp/tcp_send_reset"));
        hooks.push(("tcp_reset_received", "tracepoint/tcp/tcp_receive_reset"));
    } else {
        hooks.push(("tcp_state", "tp_btf/inet_sock_set_state"));
        hooks.push(("tcp_retransmit", "tp_btf/tcp_retransmit_skb"));
        hooks.push(("tcp_reset_sent", "tp_btf/tcp_send_reset"));
        hooks.push(("tcp_reset_received", "tp_btf/tcp_receive_reset"));
    }
    hooks.push(("service_connections", "tp_btf/inet_sock_set_state"));
    hooks.push(("service_reset_sent", "tp_btf/tcp_send_reset"));
    hooks.push(("service_reset_received", "tp_btf/tcp_receive_reset"));
    // The service turns have no fallback: before 6.3 they are reported absent (checked in
    // `check_service`).
    if v >= (6, 3) {
        hooks.push(("service_send", "tp_btf/sock_send_length"));
        hooks.push(("service_receive", "tp_btf/sock_recv_length"));
    }
    // block_io_start exists from 6.5, and with it the typed path (all three hooks typed);
    // the classic run forces the bio path everywhere.
    if classic || v < (6, 5) {
        hooks.push(("disk_issue", "tracepoint/block/block_rq_issue"));
        hooks.push(("disk_completion", "tracepoint/block/block_rq_complete"));
        hooks.push(("disk_submitter", "tracepoint/block/block_bio_queue"));
        hooks.push(("disk_submitter_split", "tracepoint/block/block_split"));
    } else {
        hooks.push(("disk_issue", "tp_btf/block_rq_issue"));
        hooks.push(("disk_completion", "tp_btf/block_rq_complete"));
        hooks.push(("disk_submitter", "tp_btf/block_io_start"));
    }
    hooks
}

/// The default run's hooks, for the report line: measure=hook, the common prefixes cut.
fn hooks(series: &str) -> String {
    expected_hooks(series, "default")
        .iter()
        .map(|(m, h)| format!("{m}={}", h.trim_start_matches("tracepoint/")))
        .collect::<Vec<_>>()
        .join(" ")
}

fn label<'a>(series: &'a str, name: &str) -> Option<&'a str> {
    let start = series.find(&format!("{name}=\""))? + name.len() + 2;
    let len = series[start..].find('"')?;
    Some(&series[start..start + len])
}

/// Checks one guest run; returns the daemon's `verified_insns` figures (5.16+).
fn check_run(
    series: &str,
    run: &guest::GuestRun,
    out: &guest::RunOutput,
) -> anyhow::Result<BTreeMap<String, u64>> {
    let m = &out.metrics;
    if m.is_empty() {
        bail!("run {}: no metrics; daemon log:\n{}", run.name, out.log);
    }
    if out.log.contains("panicked") || out.log.contains("ERROR") {
        bail!("run {}: the daemon logged an error:\n{}", run.name, out.log);
    }
    for c in [
        "cpu", "sched", "block", "network", "service", "netdev", "bpf",
    ] {
        let v = m.get(&format!("monitor_collector_success{{collector=\"{c}\"}}"));
        if v != Some(&1.0) {
            bail!(
                "run {}: collector {c} success is {v:?}; daemon log:\n{}",
                run.name,
                out.log
            );
        }
    }
    for (measure, hook) in expected_hooks(series, run.name) {
        let got: Vec<&str> = m
            .keys()
            .filter(|k| {
                k.starts_with("monitor_bpf_hook_info{") && label(k, "measure") == Some(measure)
            })
            .filter_map(|k| label(k, "hook"))
            .collect();
        if got != [hook] {
            bail!(
                "run {}: measure {measure} uses {got:?}, expected {hook}",
                run.name
            );
        }
    }
    // The guest's direct reads, per device and charged to their process.
    let reads = f64::from(guest::DISK_READS);
    let bytes = guest::DISK_READ_BYTES as f64;
    for (series, want) in [
        (
            r#"monitor_disk_requests_total{device="loop0",op="read"}"#,
            reads,
        ),
        (
            r#"monitor_disk_latency_seconds_count{device="loop0",op="read"}"#,
            reads,
        ),
        (
            r#"monitor_disk_bytes_total{device="loop0",op="read"}"#,
            bytes,
        ),
        (
            r#"monitor_process_disk_bytes_total{group="dd",op="read"}"#,
            bytes,
        ),
        (
            r#"monitor_process_disk_requests_total{group="dd",op="read"}"#,
            reads,
        ),
    ] {
        let got = m.get(series).copied();
        if got != Some(want) {
            bail!("run {}: {series} is {got:?}, expected {want}", run.name);
        }
    }
    check_network(run, m)?;
    check_service(series, run, m)?;
    // The workload, and the same in a unit's cgroup, grouped by a rule on the unit.
    for g in [run.group, guest::UNIT_GROUP] {
        for what in ["starts", "exits"] {
            let v = m.get(&format!("monitor_process_{what}_total{{group=\"{g}\"}}"));
            if v != Some(&f64::from(guest::WORKLOAD_RUNS)) {
                bail!(
                    "run {}: {what} of the workload group {g} is {v:?}, expected {}",
                    run.name,
                    guest::WORKLOAD_RUNS
                );
            }
        }
        let cpu = m
            .get(&format!(
                "monitor_process_cpu_seconds_total{{group=\"{g}\"}}"
            ))
            .copied()
            .unwrap_or(0.0);
        if cpu <= 0.0 {
            bail!(
                "run {}: no CPU time counted for the workload group {g}",
                run.name
            );
        }
    }
    if run.args.contains("--audit.file") {
        check_audit(run, &out.audit)?;
    }
    Ok(m.iter()
        .filter(|(k, _)| k.starts_with("monitor_bpf_program_verified_instructions{"))
        .filter_map(|(k, v)| Some((label(k, "program")?.to_string(), *v as u64)))
        .collect())
}

/// A `monitor bpf verify` report from the guest: it must have exited 0 (every program it
/// could load counted, and where the kernel reports `verified_insns`, equal to it).
fn verify_report(name: &str, v: &guest::VerifyOutput) -> anyhow::Result<serde_json::Value> {
    if v.status != Some(0) {
        bail!(
            "monitor bpf verify ({name}) exited with {:?}:\n{}{}",
            v.status,
            v.log,
            v.json
        );
    }
    serde_json::from_str(&v.json).with_context(|| {
        format!(
            "monitor bpf verify ({name}) printed no JSON report:\n{}{}",
            v.json, v.log
        )
    })
}

/// Report entries by program.
fn report_programs(report: &serde_json::Value) -> BTreeMap<&str, &serde_json::Value> {
    report["programs"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| Some((p["program"].as_str()?, p)))
        .collect()
}

/// Every program a daemon run attached passed verify in the same configuration, with the
/// daemon's count where it has one; returns how many counts were compared.
fn check_verify(
    run: &guest::GuestRun,
    out: &guest::RunOutput,
    daemon: &BTreeMap<String, u64>,
    report: &serde_json::Value,
) -> anyhow::Result<usize> {
    let programs = report_programs(report);
    let attached: std::collections::BTreeSet<&str> = out
        .metrics
        .keys()
        .filter(|k| k.starts_with("monitor_bpf_hook_info{"))
        .filter_map(|k| label(k, "program"))
        .collect();
    for p in attached
        .iter()
        .copied()
        .chain(daemon.keys().map(String::as_str))
    {
        let entry = programs.get(p).with_context(|| {
            format!(
                "run {}: program {p} is not in verify's report ({})",
                run.name, run.verify
            )
        })?;
        if entry["status"] != "verified" {
            bail!(
                "run {}: the daemon loaded {p}, verify ({}) says {entry}",
                run.name,
                run.verify
            );
        }
    }
    for (p, n) in daemon {
        let got = programs[p.as_str()]["processed"].as_u64();
        if got != Some(*n) {
            bail!(
                "run {}: {p}: the daemon's verified_insns is {n}, verify ({}) counted {got:?}",
                run.name,
                run.verify
            );
        }
    }
    Ok(daemon.len())
}

/// The report line's counts: each program's without the audit log, then what the audit log
/// adds or changes, then what this kernel cannot load and why.
fn verifier_counts(plain: &serde_json::Value, audit: &serde_json::Value) -> String {
    let (plain, audit) = (report_programs(plain), report_programs(audit));
    let verified = |p: &serde_json::Value| {
        (p["status"] == "verified")
            .then(|| p["processed"].as_u64())
            .flatten()
    };
    let list = |v: Vec<String>| v.join(" ");
    let counts: Vec<String> = plain
        .iter()
        .filter_map(|(name, p)| Some(format!("{name}={}", verified(p)?)))
        .collect();
    let with_audit: Vec<String> = audit
        .iter()
        .filter_map(|(name, p)| {
            let n = verified(p)?;
            (plain.get(name).and_then(|q| verified(q)) != Some(n)).then(|| format!("{name}={n}"))
        })
        .collect();
    let mut not_here = Vec::new();
    for (name, p) in &audit {
        match p["status"].as_str() {
            Some("absent") => not_here.push(format!("{name} (no hook)")),
            Some("refused") => not_here.push(format!(
                "{name} (refused: {})",
                p["reason"].as_str().unwrap_or("")
            )),
            _ => {}
        }
    }
    let mut s = list(counts);
    if !with_audit.is_empty() {
        s.push_str(&format!("; with the audit log: {}", list(with_audit)));
    }
    if !not_here.is_empty() {
        s.push_str(&format!("; not loadable here: {}", not_here.join(", ")));
    }
    s
}

/// The guest's network workload, per group: exact payload bytes on every path.
/// The service family on the TCP workload: one connection accepted by "vmnetsrv"; from
/// 6.3 the server read data it never answered and the client sent data never answered, so
/// each side counts one connection closed with a request unanswered; before 6.3 the turns
/// are reported absent (no hook, `monitor_service_requests_measured 0`).
fn check_service(
    series: &str,
    run: &guest::GuestRun,
    m: &std::collections::BTreeMap<String, f64>,
) -> anyhow::Result<()> {
    let turns = version(series) >= (6, 3);
    let sum = |family: &str, group: &str, extra: &str| -> f64 {
        m.iter()
            .filter(|(k, _)| {
                k.starts_with(&format!("{family}{{"))
                    && label(k, "group") == Some(group)
                    && (extra.is_empty() || k.contains(extra))
            })
            .map(|(_, v)| v)
            .sum()
    };
    let unanswered = if turns { 1.0 } else { 0.0 };
    for (what, got, want) in [
        (
            "connections accepted by vmnetsrv",
            sum("monitor_service_connections_accepted_total", "vmnetsrv", ""),
            1.0,
        ),
        (
            "vmnetsrv's unanswered requests",
            sum(
                "monitor_service_errors_total",
                "vmnetsrv",
                "kind=\"unanswered\"",
            ),
            unanswered,
        ),
        (
            "vmnetcli's unanswered requests",
            sum(
                "monitor_service_outbound_errors_total",
                "vmnetcli",
                "kind=\"unanswered\"",
            ),
            unanswered,
        ),
        (
            "monitor_service_requests_measured",
            m.get("monitor_service_requests_measured")
                .copied()
                .unwrap_or(-1.0),
            if turns { 1.0 } else { 0.0 },
        ),
    ] {
        if got != want {
            bail!("run {}: {what} is {got}, expected {want}", run.name);
        }
    }
    if !turns
        && m.keys().any(|k| {
            k.starts_with("monitor_bpf_hook_info{") && label(k, "measure") == Some("service_send")
        })
    {
        bail!("run {}: service_send attached before 6.3", run.name);
    }
    Ok(())
}

fn check_network(
    run: &guest::GuestRun,
    m: &std::collections::BTreeMap<String, f64>,
) -> anyhow::Result<()> {
    let bytes = |g: &str, dir: &str, proto: &str| {
        format!(
            "monitor_process_net_bytes_total{{group=\"{g}\",direction=\"{dir}\",protocol=\"{proto}\"}}"
        )
    };
    let tcp = guest::NET_BYTES as f64;
    let udp = (guest::UDP_COUNT * guest::UDP_SIZE) as f64;
    let want = vec![
        (bytes("vmnetcli", "tx", "tcp"), tcp),
        (bytes("vmnetsrv", "rx", "tcp"), tcp),
        (bytes("vmudpcli", "tx", "udp"), udp),
        (bytes("vmudpsrv", "rx", "udp"), udp),
        (
            r#"monitor_process_net_packets_total{group="vmudpcli",direction="tx",protocol="udp"}"#
                .to_string(),
            guest::UDP_COUNT as f64,
        ),
        (
            r#"monitor_process_tcp_connections_opened_total{group="vmnetcli",kind="active"}"#
                .to_string(),
            1.0,
        ),
        (
            r#"monitor_process_tcp_connections_opened_total{group="vmnetsrv",kind="passive"}"#
                .to_string(),
            1.0,
        ),
    ];
    for (series, want) in want {
        let got = m.get(&series).copied();
        if got != Some(want) {
            bail!("run {}: {series} is {got:?}, expected {want}", run.name);
        }
    }
    Ok(())
}

/// The audit log of a run that kept one: the workload's execs and exits, and the TCP
/// connection's connect, accept and close, each exactly once per process.
fn check_audit(run: &guest::GuestRun, audit: &[String]) -> anyhow::Result<()> {
    let events: Vec<serde_json::Value> = audit
        .iter()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).with_context(|| format!("audit line {l:?}")))
        .collect::<anyhow::Result<_>>()?;
    let count = |kind: &str, comm: &str| {
        events
            .iter()
            .filter(|e| e["kind"] == kind && e["comm"] == comm)
            .count()
    };
    let runs = guest::WORKLOAD_RUNS as usize;
    for (kind, comm, want) in [
        ("exec", run.group, runs),
        ("exit", run.group, runs),
        ("tcp_connect", "vmnetcli", 1),
        ("tcp_accept", "vmnetsrv", 1),
        ("tcp_close", "vmnetcli", 1),
    ] {
        let got = count(kind, comm);
        if got != want {
            bail!(
                "run {}: the audit log has {got} {kind} events of {comm}, expected {want} ({} lines)",
                run.name,
                events.len()
            );
        }
    }
    Ok(())
}

/// Boots one kernel and checks it; `Ok` carries the report line's details.
fn test_kernel(
    series: &str,
    monitor: &std::path::Path,
    net_child: &std::path::Path,
    work: &std::path::Path,
) -> anyhow::Result<String> {
    let apt = kernel::Apt::for_series(series, work)?;
    let package = kernel::resolve(series, &apt)?;
    let files = kernel::fetch(&package, &apt, &work.join("kernels"))?;
    let initrd = guest::initramfs(monitor, net_child, &files.loop_module, work)?;
    let log = work.join(format!("{package}.console.log"));
    let start = Instant::now();
    let console = qemu::boot(&files.vmlinuz, &initrd, &log, BOOT_LIMIT)?;
    let out = guest::parse(&console);
    let release = out.release.clone().with_context(|| {
        format!(
            "{package}: the guest never ran its init (console in {})",
            log.display()
        )
    })?;
    if !out.done {
        bail!(
            "{release}: the guest stopped before finishing (console in {})",
            log.display()
        );
    }
    let mut reports = std::collections::BTreeMap::new();
    for (name, _) in guest::VERIFIES {
        let v = out
            .verify
            .get(*name)
            .with_context(|| format!("{release}: monitor bpf verify ({name}) printed nothing"))?;
        reports.insert(
            *name,
            verify_report(name, v).with_context(|| release.clone())?,
        );
    }
    // Every program loaded in any run, the fallback's included, is in its verify run's
    // report; from 5.16 the daemon's count (the kernel's verified_insns) must be the one the
    // verifier's statistics gave.
    let mut compared = 0;
    for run in guest::RUNS {
        let r = out
            .runs
            .get(run.name)
            .with_context(|| format!("{release}: run {} printed nothing", run.name))?;
        let daemon = check_run(series, run, r).with_context(|| release.clone())?;
        if version(series) >= (5, 16) && daemon.is_empty() {
            bail!(
                "{release}: run {}: no verified_insns counts, expected one per program",
                run.name
            );
        }
        compared +=
            check_verify(run, r, &daemon, &reports[run.verify]).with_context(|| release.clone())?;
    }
    let counts = verifier_counts(&reports["plain"], &reports["audit"]);
    let agree = if compared > 0 {
        format!("; each as the daemon's verified_insns ({compared} loads compared)")
    } else {
        "; the kernel reports no verified_insns before 5.16".to_string()
    };
    Ok(format!(
        "{release} ({package}) in {:.0}s; hooks: {}; verifier-processed instructions \
         (BPF_LOG_STATS): {counts}{agree}",
        start.elapsed().as_secs_f64(),
        hooks(series)
    ))
}

/// Runs the matrix (or `kernels`), printing one line per kernel. Returns (passed, failed).
pub fn run_matrix(kernels: &[String], build: bool) -> anyhow::Result<(u64, u64)> {
    setup::ensure()?;
    setup::apt_install(PACKAGES)?;
    if !cmd::is_root() {
        bail!("vm-test downloads kernels with apt and boots them: run as root");
    }
    if build {
        cmd::run(cmd::new("cargo").args(["build", "--release", "-p", "monitor"]))?;
        cmd::run(cmd::new("cargo").args([
            "build",
            "--release",
            "-p",
            "monitor-tests",
            "--bin",
            "net-child",
        ]))?;
    }
    let work = cmd::root().join("target/vm");
    std::fs::create_dir_all(&work)?;
    let monitor = cmd::root().join("target/release/monitor");
    let net_child = cmd::root().join("target/release/net-child");
    let (mut passed, mut failed) = (0, 0);
    for k in kernels {
        match test_kernel(k, &monitor, &net_child, &work) {
            Ok(line) => {
                passed += 1;
                println!("vm-test {k}: PASS {line}");
            }
            Err(e) => {
                failed += 1;
                println!("vm-test {k}: FAIL {e:#}");
            }
        }
    }
    Ok((passed, failed))
}

pub fn run(o: &Options) -> anyhow::Result<()> {
    let kernels: Vec<String> = if o.kernels.is_empty() {
        MATRIX.iter().map(|s| s.to_string()).collect()
    } else {
        o.kernels.clone()
    };
    let (passed, failed) = run_matrix(&kernels, !o.no_build)?;
    if failed > 0 {
        bail!("{failed} of {} kernels failed", passed + failed);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{check_run, check_verify, expected_hooks, guest, label, verifier_counts, version};

    fn output(hook: &str, starts: f64) -> guest::RunOutput {
        let mut o = guest::RunOutput::default();
        for c in [
            "cpu", "sched", "block", "network", "service", "netdev", "bpf",
        ] {
            o.metrics.insert(
                format!("monitor_collector_success{{collector=\"{c}\"}}"),
                1.0,
            );
        }
        let (state, retransmit) = if hook.starts_with("tp_btf") {
            ("tp_btf/inet_sock_set_state", "tp_btf/tcp_retransmit_skb")
        } else {
            (
                "tracepoint/sock/inet_sock_set_state",
                "tracepoint/tcp/tcp_retransmit_skb",
            )
        };
        let wakeup_new = if hook.starts_with("tp_btf") {
            "tp_btf/sched_wakeup_new"
        } else {
            "tracepoint/sched/sched_wakeup_new"
        };
        for (m, h) in [
            ("cpu_time_and_switches", hook),
            ("runqueue_wakeup_new", wakeup_new),
            ("process_exec", "tracepoint/sched/sched_process_exec"),
            ("process_exit", "tracepoint/sched/sched_process_exit"),
            ("process_oom_kill", "tracepoint/oom/mark_victim"),
            ("disk_issue", "tracepoint/block/block_rq_issue"),
            ("disk_completion", "tracepoint/block/block_rq_complete"),
            ("disk_submitter", "tracepoint/block/block_bio_queue"),
            ("disk_submitter_split", "tracepoint/block/block_split"),
            ("net_send", "tracepoint/net/net_dev_queue"),
            ("net_receive", "tracepoint/skb/skb_copy_datagram_iovec"),
            ("net_receive_udp", "tracepoint/skb/consume_skb"),
            ("tcp_state", state),
            ("tcp_retransmit", retransmit),
            ("tcp_reset_sent", "tp_btf/tcp_send_reset"),
            ("tcp_reset_received", "tp_btf/tcp_receive_reset"),
            ("service_connections", "tp_btf/inet_sock_set_state"),
            ("service_reset_sent", "tp_btf/tcp_send_reset"),
            ("service_reset_received", "tp_btf/tcp_receive_reset"),
        ] {
            o.metrics.insert(
                format!("monitor_bpf_hook_info{{collector=\"sched\",measure=\"{m}\",program=\"p\",hook=\"{h}\"}}"),
                1.0,
            );
        }
        for (s, v) in [
            (
                r#"monitor_disk_requests_total{device="loop0",op="read"}"#,
                32.0,
            ),
            (
                r#"monitor_disk_latency_seconds_count{device="loop0",op="read"}"#,
                32.0,
            ),
            (
                r#"monitor_disk_bytes_total{device="loop0",op="read"}"#,
                2097152.0,
            ),
            (
                r#"monitor_process_disk_bytes_total{group="dd",op="read"}"#,
                2097152.0,
            ),
            (
                r#"monitor_process_disk_requests_total{group="dd",op="read"}"#,
                32.0,
            ),
            (
                r#"monitor_process_net_bytes_total{group="vmnetcli",direction="tx",protocol="tcp"}"#,
                1048576.0,
            ),
            (
                r#"monitor_process_net_bytes_total{group="vmnetsrv",direction="rx",protocol="tcp"}"#,
                1048576.0,
            ),
            (
                r#"monitor_process_net_bytes_total{group="vmudpcli",direction="tx",protocol="udp"}"#,
                200000.0,
            ),
            (
                r#"monitor_process_net_packets_total{group="vmudpcli",direction="tx",protocol="udp"}"#,
                200.0,
            ),
            (
                r#"monitor_process_net_bytes_total{group="vmudpsrv",direction="rx",protocol="udp"}"#,
                200000.0,
            ),
            (
                r#"monitor_process_tcp_connections_opened_total{group="vmnetcli",kind="active"}"#,
                1.0,
            ),
            (
                r#"monitor_process_tcp_connections_opened_total{group="vmnetsrv",kind="passive"}"#,
                1.0,
            ),
            (
                r#"monitor_service_connections_accepted_total{port="4000",group="vmnetsrv"}"#,
                1.0,
            ),
            ("monitor_service_requests_measured", 0.0),
        ] {
            o.metrics.insert(s.into(), v);
        }
        for g in ["vmwork", guest::UNIT_GROUP] {
            for w in ["starts", "exits"] {
                o.metrics.insert(
                    format!("monitor_process_{w}_total{{group=\"{g}\"}}"),
                    starts,
                );
            }
            o.metrics.insert(
                format!("monitor_process_cpu_seconds_total{{group=\"{g}\"}}"),
                0.5,
            );
        }
        o.metrics.insert(
            "monitor_bpf_program_verified_instructions{program=\"sched_switch_btf\"}".into(),
            3653.0,
        );
        for _ in 0..guest::WORKLOAD_RUNS {
            for kind in ["exec", "exit"] {
                o.audit
                    .push(format!(r#"{{"kind":"{kind}","pid":7,"comm":"vmwork"}}"#));
            }
        }
        for (kind, comm) in [
            ("tcp_connect", "vmnetcli"),
            ("tcp_accept", "vmnetsrv"),
            ("tcp_close", "vmnetcli"),
            ("tcp_close", "vmnetsrv"),
        ] {
            o.audit
                .push(format!(r#"{{"kind":"{kind}","pid":8,"comm":"{comm}"}}"#));
        }
        o
    }

    #[test]
    fn a_run_as_expected_passes_and_reports_the_verifier() {
        let v = check_run("6.1", &guest::RUNS[0], &output("tp_btf/sched_switch", 3.0)).unwrap();
        assert_eq!(v, [("sched_switch_btf".to_string(), 3653)].into());
    }

    #[test]
    fn an_unexpected_fallback_or_a_missed_event_fails() {
        let e = check_run(
            "6.1",
            &guest::RUNS[0],
            &output("tracepoint/sched/sched_switch", 3.0),
        );
        assert!(format!("{:#}", e.unwrap_err()).contains("cpu_time_and_switches"));
        let e = check_run("6.1", &guest::RUNS[0], &output("tp_btf/sched_switch", 2.0));
        assert!(format!("{:#}", e.unwrap_err()).contains("starts"));
        let mut o = output("tp_btf/sched_switch", 3.0);
        o.audit.retain(|l| !l.contains("tcp_accept"));
        let e = check_run("6.1", &guest::RUNS[0], &o);
        assert!(format!("{:#}", e.unwrap_err()).contains("tcp_accept"));
    }

    fn report(entries: &[(&str, &str, Option<u64>)]) -> serde_json::Value {
        let programs: Vec<serde_json::Value> = entries
            .iter()
            .map(|(name, status, n)| match n {
                Some(n) => serde_json::json!({"program": name, "status": status, "processed": n}),
                None => serde_json::json!({"program": name, "status": status, "reason": "why"}),
            })
            .collect();
        serde_json::json!({ "programs": programs })
    }

    #[test]
    fn verify_must_count_what_the_daemon_loaded() {
        let out = output("tp_btf/sched_switch", 3.0);
        let daemon = [("sched_switch_btf".to_string(), 3653)].into();
        // The fixture's hooks all name program "p".
        let good = report(&[
            ("p", "verified", Some(10)),
            ("sched_switch_btf", "verified", Some(3653)),
        ]);
        assert_eq!(
            check_verify(&guest::RUNS[0], &out, &daemon, &good).unwrap(),
            1
        );
        let differs = report(&[
            ("p", "verified", Some(10)),
            ("sched_switch_btf", "verified", Some(3600)),
        ]);
        let e = check_verify(&guest::RUNS[0], &out, &daemon, &differs).unwrap_err();
        assert!(format!("{e:#}").contains("3653"), "{e:#}");
        let refused = report(&[
            ("p", "refused", None),
            ("sched_switch_btf", "verified", Some(3653)),
        ]);
        assert!(check_verify(&guest::RUNS[0], &out, &daemon, &refused).is_err());
        let missing = report(&[("sched_switch_btf", "verified", Some(3653))]);
        assert!(check_verify(&guest::RUNS[0], &out, &daemon, &missing).is_err());
    }

    #[test]
    fn the_counts_line() {
        let plain = report(&[
            ("a", "verified", Some(5)),
            ("audit_exec", "skipped", None),
            ("tcp_state", "verified", Some(100)),
            ("x_btf", "absent", None),
        ]);
        let audit = report(&[
            ("a", "verified", Some(5)),
            ("audit_exec", "verified", Some(50)),
            ("tcp_state", "verified", Some(300)),
            ("x_btf", "absent", None),
            ("y_btf", "refused", None),
        ]);
        assert_eq!(
            verifier_counts(&plain, &audit),
            "a=5 tcp_state=100; with the audit log: audit_exec=50 tcp_state=300; not loadable \
             here: x_btf (no hook), y_btf (refused: why)"
        );
    }

    #[test]
    fn hooks_follow_the_kernel_version() {
        let h = |series, run| expected_hooks(series, run).into_iter().collect::<Vec<_>>();
        let find = |hooks: &[(&str, &'static str)], m: &str| {
            hooks.iter().find(|(k, _)| *k == m).map(|(_, h)| *h)
        };
        let old = h("5.10", "default");
        assert_eq!(
            find(&old, "cpu_time_and_switches"),
            Some("tracepoint/sched/sched_switch")
        );
        assert_eq!(
            find(&old, "runqueue_wakeup_new"),
            Some("tp_btf/sched_wakeup_new")
        );
        assert_eq!(find(&old, "runqueue_wakeup"), None);
        assert_eq!(
            find(&old, "disk_submitter_split"),
            Some("tracepoint/block/block_split")
        );
        assert_eq!(
            find(&old, "net_receive_udp"),
            Some("tracepoint/skb/consume_skb")
        );
        let new = h("linux-image-6.12.117+deb12-amd64", "default");
        assert_eq!(
            find(&new, "cpu_time_and_switches"),
            Some("tp_btf/sched_switch")
        );
        assert_eq!(find(&new, "disk_submitter"), Some("tp_btf/block_io_start"));
        assert_eq!(
            find(&new, "disk_completion"),
            Some("tp_btf/block_rq_complete")
        );
        assert_eq!(
            find(&old, "disk_completion"),
            Some("tracepoint/block/block_rq_complete")
        );
        assert_eq!(find(&new, "net_receive_udp"), None);
        assert_eq!(version("6.1"), (6, 1));
        assert_eq!(version("linux-image-5.10.0-46-amd64"), (5, 10));
    }

    #[test]
    fn reads_labels() {
        let s = "monitor_bpf_hook_info{collector=\"sched\",measure=\"process_exec\",hook=\"tracepoint/sched/x\"}";
        assert_eq!(label(s, "measure"), Some("process_exec"));
        assert_eq!(label(s, "hook"), Some("tracepoint/sched/x"));
        assert_eq!(label(s, "nope"), None);
    }
}
