//! `netdev`: per-interface bytes, packets, errors and drops from `/proc/net/dev` (the
//! kernel's own counters, as node_exporter reads them), and the traffic no process accounts
//! for: interface bytes beyond the per-process payload bytes of the `network` collector (see
//! `net::unattributed`).

use anyhow::Context as _;
use prometheus::proto::{MetricFamily, MetricType};

use super::{Build, Host, ScrapeCollector, Spec};
use crate::{
    metrics::{counter, family},
    net::netdev::{self, Interface},
};

pub const SPEC: Spec = Spec {
    name: "netdev",
    help: "per-interface bytes, packets, errors and drops from /proc/net/dev, and the bytes no \
           process accounts for",
    default_enabled: true,
    needs_bpf: false,
    build: Build::Collector(|_| Box::new(NetDev)),
};

pub struct NetDev;

/// The families this collector exports (for the alert rules' catalog).
pub const FAMILIES: &[&str] = &[
    "monitor_network_bytes_total",
    "monitor_network_packets_total",
    "monitor_network_errors_total",
    "monitor_network_drops_total",
    "monitor_network_unattributed_bytes_total",
];

fn families(ifaces: &[Interface]) -> Vec<MetricFamily> {
    let per = |name: &str, help: &str, f: &dyn Fn(&Interface) -> (u64, u64)| {
        let mut m = Vec::with_capacity(ifaces.len() * 2);
        for i in ifaces {
            let (rx, tx) = f(i);
            m.push(counter(
                &[("device", &i.name), ("direction", "rx")],
                rx as f64,
            ));
            m.push(counter(
                &[("device", &i.name), ("direction", "tx")],
                tx as f64,
            ));
        }
        family(name, help, MetricType::COUNTER, m)
    };
    vec![
        per(
            "monitor_network_bytes_total",
            "Bytes received (rx) and transmitted (tx) by the interface, headers included.",
            &|i| i.bytes,
        ),
        per(
            "monitor_network_packets_total",
            "Packets received and transmitted by the interface.",
            &|i| i.packets,
        ),
        per(
            "monitor_network_errors_total",
            "Receive and transmit errors of the interface.",
            &|i| i.errors,
        ),
        per(
            "monitor_network_drops_total",
            "Packets the interface or its driver dropped, per direction.",
            &|i| i.drops,
        ),
    ]
}

impl ScrapeCollector for NetDev {
    fn name(&self) -> &'static str {
        SPEC.name
    }

    fn collect(&mut self, host: &Host<'_>, out: &mut Vec<MetricFamily>) -> anyhow::Result<()> {
        let ifaces = netdev::read(host.procfs).context("per-interface counters")?;
        out.extend(families(&ifaces));
        // Only while the per-process figures are measured.
        if let Some((rx, tx)) = host.snapshot.unattributed {
            out.push(family(
                "monitor_network_unattributed_bytes_total",
                "Interface bytes (all interfaces, headers included) beyond the TCP/UDP payload \
                 bytes charged to processes since the daemon started, once the difference \
                 lasted 10 s: protocol headers, forwarded and kernel-generated traffic, other \
                 protocols.",
                MetricType::COUNTER,
                vec![
                    counter(&[("direction", "rx")], rx as f64),
                    counter(&[("direction", "tx")], tx as f64),
                ],
            ));
        }
        Ok(())
    }
}
