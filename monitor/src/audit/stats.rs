//! What the audit log did with every event it saw, by kind: written, or dropped for a
//! reason. Exported as `monitor_audit_events_total{kind}` and
//! `monitor_audit_events_dropped_total{kind,reason}`, so written + dropped = seen.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use monitor_common::audit::{AuditKind, AUDIT_KIND_SLOTS};
use prometheus::proto::{MetricFamily, MetricType};

use crate::{
    collectors::{Host, ScrapeCollector},
    metrics::{counter, family},
};

const SLOTS: usize = AUDIT_KIND_SLOTS as usize;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    /// The kernel found no room in the ring buffer (the daemon fell behind).
    RingBufferFull = 0,
    /// Over `--audit.rate-limit`.
    RateLimit = 1,
    /// Excluded by the include/exclude filters.
    Filter = 2,
    /// Writing the log file failed.
    WriteError = 3,
}

const REASONS: [(Reason, &str); 4] = [
    (Reason::RingBufferFull, "ring_buffer_full"),
    (Reason::RateLimit, "rate_limit"),
    (Reason::Filter, "filter"),
    (Reason::WriteError, "write_error"),
];

#[derive(Debug, Default)]
pub struct Stats {
    written: [AtomicU64; SLOTS],
    dropped: [[AtomicU64; SLOTS]; 4],
}

impl Stats {
    pub fn written(&self, kind: AuditKind) {
        self.written[kind as usize].fetch_add(1, Relaxed);
    }

    pub fn dropped(&self, kind: AuditKind, reason: Reason) {
        self.dropped[reason as usize][kind as usize].fetch_add(1, Relaxed);
    }

    /// The kernel's own count of records it could not reserve (a running total).
    pub fn set_ring_buffer_full(&self, kind: AuditKind, total: u64) {
        self.dropped[Reason::RingBufferFull as usize][kind as usize].store(total, Relaxed);
    }

    pub fn families(&self) -> Vec<MetricFamily> {
        let written = AuditKind::ALL
            .iter()
            .map(|k| {
                counter(
                    &[("kind", k.name())],
                    self.written[*k as usize].load(Relaxed) as f64,
                )
            })
            .collect();
        let mut dropped = Vec::new();
        for k in AuditKind::ALL {
            for (r, name) in REASONS {
                dropped.push(counter(
                    &[("kind", k.name()), ("reason", name)],
                    self.dropped[r as usize][k as usize].load(Relaxed) as f64,
                ));
            }
        }
        vec![
            family(
                "monitor_audit_events_total",
                "Audit events written to the audit log, by kind.",
                MetricType::COUNTER,
                written,
            ),
            family(
                "monitor_audit_events_dropped_total",
                "Audit events seen but not written, by kind and reason (ring_buffer_full: \
                 lost in the kernel; rate_limit; filter; write_error).",
                MetricType::COUNTER,
                dropped,
            ),
        ]
    }
}

/// The families the audit log exports (for the alert rules' catalogue).
pub const FAMILIES: &[&str] = &[
    "monitor_audit_events_total",
    "monitor_audit_events_dropped_total",
];

/// Exports the audit counters with the other collectors' families.
pub struct AuditCollector(pub std::sync::Arc<Stats>);

impl ScrapeCollector for AuditCollector {
    fn name(&self) -> &'static str {
        "audit"
    }

    fn collect(&mut self, _host: &Host<'_>, out: &mut Vec<MetricFamily>) -> anyhow::Result<()> {
        out.extend(self.0.families());
        Ok(())
    }
}
