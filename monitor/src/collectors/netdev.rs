//! `netdev`: per-interface bytes, packets, errors and drops from `/proc/net/dev` (the
//! kernel's own counters, as node_exporter reads them), and the traffic no process accounts
//! for: interface bytes minus the per-process payload bytes of the `network` collector.

use anyhow::Context as _;
use prometheus::proto::{MetricFamily, MetricType};

use super::{Collector, Spec, View};
use crate::{
    metrics::{counter, family},
    net::{
        counters::bytes,
        netdev::{self, Interface},
    },
};

pub const SPEC: Spec = Spec {
    name: "netdev",
    help: "per-interface bytes, packets, errors and drops from /proc/net/dev, and the bytes no \
           process accounts for",
    default_enabled: true,
    needs_bpf: false,
    build: |_| Box::<NetDev>::default(),
};

/// Running totals for the unattributed counter, kept between scrapes.
#[derive(Default)]
pub struct NetDev {
    /// Interface (rx, tx) bytes per interface at the last scrape.
    last_ifaces: Vec<(String, (u64, u64))>,
    /// Process (rx, tx) payload bytes at the last scrape.
    last_procs: Option<(u64, u64)>,
    /// Accumulated unattributed (rx, tx) bytes.
    unattributed: (u64, u64),
}

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

impl NetDev {
    /// Adds what the interfaces moved since the last scrape beyond what processes moved. An
    /// interface that went away or was re-created (counters back to 0) counts from 0.
    fn account(&mut self, ifaces: &[Interface], procs: (u64, u64)) {
        let mut moved = (0u64, 0u64);
        for i in ifaces {
            let (rx0, tx0) = self
                .last_ifaces
                .iter()
                .find(|(n, _)| *n == i.name)
                .map_or((0, 0), |(_, b)| *b);
            let (rx0, tx0) = if self.last_procs.is_none() {
                i.bytes
            } else {
                (rx0, tx0)
            };
            moved.0 += i.bytes.0.checked_sub(rx0).unwrap_or(i.bytes.0);
            moved.1 += i.bytes.1.checked_sub(tx0).unwrap_or(i.bytes.1);
        }
        if let Some((prx, ptx)) = self.last_procs {
            let d = (procs.0.saturating_sub(prx), procs.1.saturating_sub(ptx));
            self.unattributed.0 += moved.0.saturating_sub(d.0);
            self.unattributed.1 += moved.1.saturating_sub(d.1);
        }
        self.last_ifaces = ifaces.iter().map(|i| (i.name.clone(), i.bytes)).collect();
        self.last_procs = Some(procs);
    }
}

impl Collector for NetDev {
    fn name(&self) -> &'static str {
        SPEC.name
    }

    fn collect(&mut self, view: &View<'_>, out: &mut Vec<MetricFamily>) -> anyhow::Result<()> {
        let ifaces = netdev::read(view.procfs).context("per-interface counters")?;
        out.extend(families(&ifaces));
        // Only while the per-process figures are measured.
        if let (Ok(s), Ok(_)) = (view.sched, view.net) {
            let procs = s.export.rows().iter().fold((0, 0), |acc, (_, c)| {
                let (tx, rx) = bytes(&c.net);
                (acc.0 + rx, acc.1 + tx)
            });
            self.account(&ifaces, procs);
            out.push(family(
                "monitor_network_unattributed_bytes_total",
                "Interface bytes (all interfaces, headers included) beyond the TCP/UDP payload \
                 bytes charged to processes since the daemon started: protocol headers, \
                 forwarded and kernel-generated traffic, other protocols.",
                MetricType::COUNTER,
                vec![
                    counter(&[("direction", "rx")], self.unattributed.0 as f64),
                    counter(&[("direction", "tx")], self.unattributed.1 as f64),
                ],
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn iface(name: &str, rx: u64, tx: u64) -> Interface {
        Interface {
            name: name.into(),
            bytes: (rx, tx),
            ..Default::default()
        }
    }

    #[test]
    fn unattributed_is_what_interfaces_moved_beyond_processes() {
        let mut n = NetDev::default();
        n.account(&[iface("lo", 1000, 1000)], (10, 10));
        assert_eq!(n.unattributed, (0, 0));
        n.account(&[iface("lo", 1500, 1700)], (410, 110));
        assert_eq!(n.unattributed, (100, 600));
        // Processes moved more than the interfaces (another namespace): nothing added.
        n.account(&[iface("lo", 1600, 1800)], (1410, 1110));
        assert_eq!(n.unattributed, (100, 600));
        // A new interface counts from zero; a re-created one too.
        n.account(
            &[iface("lo", 10, 1800), iface("veth0", 50, 0)],
            (1410, 1110),
        );
        assert_eq!(n.unattributed, (160, 600));
    }
}
