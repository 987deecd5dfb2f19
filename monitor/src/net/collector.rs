//! `network`: per-group traffic (payload bytes and packets by direction and protocol) and
//! TCP health (retransmits, resets, opens, closes, connect latency, connections by state),
//! measured in the kernel (eBPF, socket and TCP tracepoints).

use std::{collections::BTreeMap, sync::Arc};

use monitor_common::net::{connect_upper_seconds, NetCounters, CONNECT_BUCKETS, PROTO_NAMES};
use prometheus::proto::{MetricFamily, MetricType};

use crate::collectors::{Build, Spec, View};
use crate::{
    metrics::{counter, family, gauge, histogram, ns_to_seconds},
    net::kernel::NetSnapshot,
    process::budget::OTHER,
};

pub const SPEC: Spec = Spec {
    name: "network",
    help: "per-process-group TCP/UDP bytes and packets and TCP health (retransmits, resets, \
           opens, closes, connect latency, connections by state), from socket and TCP \
           tracepoints (eBPF)",
    default_enabled: true,
    needs_bpf: true,
    build: Build::Family(|_| Box::<super::family::Network>::default()),
};

/// The families this collector exports (for the alert rules' catalog).
pub const FAMILIES: &[&str] = &[
    "monitor_process_net_bytes_total",
    "monitor_process_net_packets_total",
    "monitor_process_tcp_retransmits_total",
    "monitor_process_tcp_resets_total",
    "monitor_process_tcp_connections_opened_total",
    "monitor_process_tcp_connections_closed_total",
    "monitor_process_tcp_connect_latency_seconds",
    "monitor_process_tcp_connections",
];

const DIRECTIONS: [&str; 2] = ["tx", "rx"];

/// The name of TCP state `s` (include/net/tcp_states.h).
pub fn state_name(s: u32) -> &'static str {
    match s {
        1 => "established",
        2 => "syn_sent",
        3 => "syn_recv",
        4 => "fin_wait1",
        5 => "fin_wait2",
        6 => "time_wait",
        7 => "close",
        8 => "close_wait",
        9 => "last_ack",
        10 => "listen",
        11 => "closing",
        _ => "unknown",
    }
}

fn traffic(rows: &[(&str, NetCounters)]) -> Vec<MetricFamily> {
    let per = |name: &str, help: &str, get: &dyn Fn(&NetCounters, usize, usize) -> u64| {
        let mut m = Vec::with_capacity(rows.len() * 4);
        for (g, c) in rows {
            for (d, dir) in DIRECTIONS.iter().enumerate() {
                for (p, proto) in PROTO_NAMES.iter().enumerate() {
                    m.push(counter(
                        &[("group", g), ("direction", dir), ("protocol", proto)],
                        get(c, d, p) as f64,
                    ));
                }
            }
        }
        family(name, help, MetricType::COUNTER, m)
    };
    vec![
        per(
            "monitor_process_net_bytes_total",
            "TCP and UDP payload bytes the group's processes sent (tx) and received (rx).",
            &|c, d, p| if d == 0 { c.tx_bytes[p] } else { c.rx_bytes[p] },
        ),
        per(
            "monitor_process_net_packets_total",
            "UDP datagrams and TCP segments (as the kernel's OutSegs/InSegs count them) of the \
             group's sockets.",
            &|c, d, p| {
                if d == 0 {
                    c.tx_packets[p]
                } else {
                    c.rx_packets[p]
                }
            },
        ),
    ]
}

fn tcp_health(rows: &[(&str, NetCounters)]) -> Vec<MetricFamily> {
    let per_group = |name: &str, help: &str, f: &dyn Fn(&NetCounters) -> u64| {
        family(
            name,
            help,
            MetricType::COUNTER,
            rows.iter()
                .map(|(g, c)| counter(&[("group", g)], f(c) as f64))
                .collect(),
        )
    };
    let pairs = |name: &str,
                 help: &str,
                 label: &str,
                 values: [&str; 2],
                 f: &dyn Fn(&NetCounters) -> [u64; 2]| {
        let mut m = Vec::with_capacity(rows.len() * 2);
        for (g, c) in rows {
            for (v, n) in values.iter().zip(f(c)) {
                m.push(counter(&[("group", g), (label, v)], n as f64));
            }
        }
        family(name, help, MetricType::COUNTER, m)
    };
    vec![
        per_group(
            "monitor_process_tcp_retransmits_total",
            "TCP segments the group's sockets retransmitted (as the kernel's RetransSegs).",
            &|c| c.tcp_retransmits,
        ),
        pairs(
            "monitor_process_tcp_resets_total",
            "TCP resets the group's sockets sent (tx) and received (rx).",
            "direction",
            DIRECTIONS,
            &|c| [c.tcp_resets_sent, c.tcp_resets_received],
        ),
        pairs(
            "monitor_process_tcp_connections_opened_total",
            "TCP connections the group opened: active (connect() calls, as the kernel's \
             ActiveOpens) and passive (accepted, as PassiveOpens).",
            "kind",
            ["active", "passive"],
            &|c| [c.tcp_active_opens, c.tcp_passive_opens],
        ),
        per_group(
            "monitor_process_tcp_connections_closed_total",
            "Established TCP connections of the group that closed.",
            &|c| c.tcp_closes,
        ),
        family(
            "monitor_process_tcp_connect_latency_seconds",
            "Time from a connect()'s SYN to ESTABLISHED, per group.",
            MetricType::HISTOGRAM,
            // Only groups that completed a connect(): 14 series a group otherwise.
            rows.iter()
                .filter(|(_, c)| c.tcp_connect.iter().any(|&n| n != 0))
                .map(|(g, c)| {
                    let b: Vec<(Option<f64>, u64)> = (0..CONNECT_BUCKETS)
                        .map(|i| (connect_upper_seconds(i), c.tcp_connect[i]))
                        .collect();
                    histogram(&[("group", g)], &b, ns_to_seconds(c.tcp_connect_ns))
                })
                .collect(),
        ),
    ]
}

/// Current connections by group and state; groups without their own series are summed into
/// "other", as the counters are.
fn connections(n: &NetSnapshot, view: &View<'_>) -> MetricFamily {
    let kept: std::collections::HashSet<&str> =
        view.export.groups.iter().map(|(g, _)| &**g).collect();
    let group_of = |pid: u32| -> Arc<str> {
        match view.table.group_of(pid) {
            Some(g) if kept.contains(&**g) => g.clone(),
            _ => Arc::from(OTHER),
        }
    };
    let mut counts: BTreeMap<(Arc<str>, &'static str), u64> = BTreeMap::new();
    for (pid, state) in &n.sockets.connections {
        *counts
            .entry((group_of(*pid), state_name(*state)))
            .or_default() += 1;
    }
    for pid in &n.sockets.listeners {
        *counts.entry((group_of(*pid), "listen")).or_default() += 1;
    }
    family(
        "monitor_process_tcp_connections",
        "TCP sockets of the group by state, as the kernel programs followed them (sockets \
         opened before the daemon started appear once they move data).",
        MetricType::GAUGE,
        counts
            .iter()
            .map(|((g, s), v)| gauge(&[("group", g), ("state", s)], *v as f64))
            .collect(),
    )
}

/// The family's exposition, per group from the process table's export.
pub fn families(n: &NetSnapshot, view: &View<'_>, out: &mut Vec<MetricFamily>) {
    // Series only for the groups this family has seen (any traffic or TCP event); the
    // others are all zeros, and the sum over groups is the same without them.
    let rows: Vec<(&str, NetCounters)> = view
        .export
        .rows()
        .into_iter()
        .map(|(g, c)| (g, c.net))
        .filter(|(_, c)| *c != NetCounters::default())
        .collect();
    out.extend(traffic(&rows));
    out.extend(tcp_health(&rows));
    out.push(connections(n, view));
}
