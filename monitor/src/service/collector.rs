//! `service`: requests, response latency, HTTP status classes and errors per listening
//! port and group (inbound) and per group and remote port (outbound), and DNS latency and
//! rcodes per group, from socket and TCP tracepoints (eBPF), aggregated in the kernel.

use std::collections::HashSet;

use monitor_common::service::{kind, ServiceStats, DNS_OTHER_RCODE};
use prometheus::proto::{MetricFamily, MetricType};

use super::totals::{Row, Totals};
use crate::{
    collectors::{Build, Spec, View},
    metrics::{counter, family, gauge, histogram, log2_buckets, ns_to_seconds},
};

pub const SPEC: Spec = Spec {
    name: "service",
    help: "per-port requests, response latency, HTTP status classes and errors of the \
           services each group serves and uses, and its DNS latency and rcodes, from socket \
           tracepoints (eBPF, no instrumentation; requests need 6.3+)",
    default_enabled: true,
    needs_bpf: true,
    build: Build::Family(|c| Box::new(super::family::Service::new(c.service_max_ports))),
};

/// Ports of each direction with their own series by default; the others are summed into
/// `other`.
pub const MAX_PORTS: usize = 32;

/// The families this collector exports (for the alert rules' catalog).
pub const FAMILIES: &[&str] = &[
    "monitor_service_connections_accepted_total",
    "monitor_service_requests_total",
    "monitor_service_response_latency_seconds",
    "monitor_service_http_responses_total",
    "monitor_service_errors_total",
    "monitor_service_outbound_requests_total",
    "monitor_service_outbound_response_latency_seconds",
    "monitor_service_outbound_http_responses_total",
    "monitor_service_outbound_errors_total",
    "monitor_service_ports_other",
    "monitor_service_requests_measured",
    "monitor_dns_latency_seconds",
    "monitor_dns_responses_total",
];

const CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];
const RCODES: [&str; DNS_OTHER_RCODE + 1] = [
    "NOERROR", "FORMERR", "SERVFAIL", "NXDOMAIN", "NOTIMP", "REFUSED", "YXDOMAIN", "other",
];
const ERRORS: [&str; 3] = ["reset_sent", "reset_received", "unanswered"];

fn errors(s: &ServiceStats) -> [u64; 3] {
    [s.resets_sent, s.resets_received, s.unanswered]
}

fn per(r: &Row) -> Vec<(&'static str, &str)> {
    vec![("port", r.port.as_str()), ("group", r.group.as_str())]
}

/// The families of one direction, named `monitor_service_<prefix><what>`.
fn direction(rows: &[Row], prefix: &str, turns: bool, side: &str, out: &mut Vec<MetricFamily>) {
    let name = |what: &str| format!("monitor_service_{prefix}{what}");
    if turns {
        out.push(family(
            &name("requests_total"),
            &format!(
                "Request/response turns on the group's {side} sockets: data one way after the \
                 socket was idle or had answered, then the first data back."
            ),
            MetricType::COUNTER,
            rows.iter()
                .map(|r| counter(&per(r), r.stats.requests as f64))
                .collect(),
        ));
        out.push(family(
            &name("response_latency_seconds"),
            &format!(
                "On the group's {side} sockets, from the first byte of a request to the first \
                 byte of its response, at the syscall boundary."
            ),
            MetricType::HISTOGRAM,
            rows.iter()
                .filter(|r| r.stats.requests != 0)
                .map(|r| {
                    histogram(
                        &per(r),
                        &log2_buckets(&r.stats.latency),
                        ns_to_seconds(r.stats.latency_ns),
                    )
                })
                .collect(),
        ));
        let mut m = Vec::new();
        for r in rows
            .iter()
            .filter(|r| r.stats.codes[1..=5].iter().any(|&n| n != 0))
        {
            for (i, class) in CLASSES.iter().enumerate() {
                let mut l = per(r);
                l.push(("code", class));
                m.push(counter(&l, r.stats.codes[i + 1] as f64));
            }
        }
        out.push(family(
            &name("http_responses_total"),
            &format!(
                "HTTP/1.x responses on the group's {side} sockets by status class, from the \
                 status line of a response's first bytes (plaintext only)."
            ),
            MetricType::COUNTER,
            m,
        ));
    }
    let mut m = Vec::new();
    for r in rows {
        for (k, n) in ERRORS.iter().zip(errors(&r.stats)) {
            let mut l = per(r);
            l.push(("kind", k));
            m.push(counter(&l, n as f64));
        }
    }
    out.push(family(
        &name("errors_total"),
        &format!(
            "On the group's {side} sockets: TCP resets sent and received, and connections \
             closed with a request unanswered."
        ),
        MetricType::COUNTER,
        m,
    ));
}

fn dns(rows: &[Row], out: &mut Vec<MetricFamily>) {
    out.push(family(
        "monitor_dns_latency_seconds",
        "From a DNS query sent on a connected UDP socket to port 53 to the response of the \
         same id, per group.",
        MetricType::HISTOGRAM,
        rows.iter()
            .map(|r| {
                histogram(
                    &[("group", &r.group)],
                    &log2_buckets(&r.stats.latency),
                    ns_to_seconds(r.stats.latency_ns),
                )
            })
            .collect(),
    ));
    let mut m = Vec::new();
    for r in rows {
        for (i, rcode) in RCODES.iter().enumerate() {
            m.push(counter(
                &[("group", &r.group), ("rcode", rcode)],
                r.stats.codes[i] as f64,
            ));
        }
    }
    out.push(family(
        "monitor_dns_responses_total",
        "DNS responses the group received, by rcode.",
        MetricType::COUNTER,
        m,
    ));
}

pub fn families(
    t: &Totals,
    turns: bool,
    max_ports: usize,
    view: &View<'_>,
    out: &mut Vec<MetricFamily>,
) {
    let kept: HashSet<&str> = view.export.groups.iter().map(|(g, _)| &**g).collect();
    let (inbound, in_other) = t.rows(kind::INBOUND, &kept, max_ports);
    let (outbound, out_other) = t.rows(kind::OUTBOUND, &kept, max_ports);
    out.push(family(
        "monitor_service_connections_accepted_total",
        "TCP connections accepted on the port, per group (the listener's, or the first to \
         use the connection).",
        MetricType::COUNTER,
        inbound
            .iter()
            .map(|r| {
                counter(
                    &[("port", &r.port), ("group", &r.group)],
                    r.stats.accepted as f64,
                )
            })
            .collect(),
    ));
    direction(&inbound, "", turns, "accepted", out);
    direction(&outbound, "outbound_", turns, "connected", out);
    if turns {
        dns(&t.dns(&kept), out);
    }
    out.push(family(
        "monitor_service_ports_other",
        "Ports summed into port=\"other\" (beyond the first ones seen), by direction.",
        MetricType::GAUGE,
        vec![
            gauge(&[("direction", "inbound")], in_other as f64),
            gauge(&[("direction", "outbound")], out_other as f64),
        ],
    ));
    out.push(family(
        "monitor_service_requests_measured",
        "1 when requests, latency, status codes and DNS are measured on this kernel \
         (sock:sock_send_length and sock_recv_length, 6.3+), 0 when only connections and \
         errors are.",
        MetricType::GAUGE,
        vec![gauge(&[], f64::from(u8::from(turns)))],
    ));
}
