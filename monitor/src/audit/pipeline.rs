//! The audit log's reader: a thread that waits on the ring buffer, decodes each record,
//! applies the filters and the rate limit, and writes JSON lines to the rotating file,
//! counting every event's fate.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use monitor_common::audit::AuditKind;

use super::{
    filter::Filter,
    kernel::AuditMaps,
    rate::RateLimit,
    record::{decode, kind_of, Clock},
    rotate::Rotating,
    stats::{Reason, Stats},
};

/// How long the reader sleeps between reads of the ring buffer (a read is of mapped memory,
/// no system call); also how often the kernel's lost counts are read. It does not sleep in
/// poll(2) on the ring buffer: a process exiting while a thread polled a BPF ring buffer
/// locked up a 6.1 kernel in the VM tests.
const POLL: Duration = Duration::from_millis(100);

pub struct Pipeline {
    pub maps: AuditMaps,
    pub out: Rotating,
    pub filter: Filter,
    pub rate: Option<RateLimit>,
    pub stats: Arc<Stats>,
    /// Whether the last write failed: a failing disk is logged once, not every batch.
    pub failing: bool,
}

impl Pipeline {
    pub fn spawn(mut self) -> anyhow::Result<()> {
        std::thread::Builder::new()
            .name("audit".into())
            .spawn(move || loop {
                self.drain();
                std::thread::sleep(POLL);
            })
            .map_err(|e| anyhow::anyhow!("starting the audit thread: {e}"))?;
        Ok(())
    }

    fn drain(&mut self) {
        let clock = Clock::now();
        let mut write_failed = None;
        let mut written_any = false;
        while let Some(item) = self.maps.events.next() {
            let Some(kind) = kind_of(&item) else {
                tracing::debug!(len = item.len(), "unknown audit record");
                continue;
            };
            let ev = match decode(&item, &clock) {
                Ok(ev) => ev,
                Err(e) => {
                    tracing::debug!(error = format!("{e:#}"), "undecodable audit record");
                    self.stats.dropped(kind, Reason::WriteError);
                    continue;
                }
            };
            drop(item);
            if !self.filter.passes(&ev) {
                self.stats.dropped(kind, Reason::Filter);
                continue;
            }
            if let Some(r) = &mut self.rate {
                if !r.admit(Instant::now()) {
                    self.stats.dropped(kind, Reason::RateLimit);
                    continue;
                }
            }
            let line = match serde_json::to_string(&ev) {
                Ok(l) => l,
                Err(e) => {
                    write_failed = Some(anyhow::anyhow!("encoding an audit event: {e}"));
                    self.stats.dropped(kind, Reason::WriteError);
                    continue;
                }
            };
            match self.out.write_line(&line) {
                Ok(()) => {
                    self.stats.written(kind);
                    written_any = true;
                }
                Err(e) => {
                    self.stats.dropped(kind, Reason::WriteError);
                    write_failed = Some(e);
                }
            }
        }
        match (write_failed, self.failing) {
            (Some(e), false) => {
                tracing::error!(
                    error = format!("{e:#}"),
                    "audit log write failed; events are dropped (reason write_error) until it works"
                );
                self.failing = true;
            }
            (None, true) if written_any => {
                tracing::info!("audit log writes work again");
                self.failing = false;
            }
            _ => {}
        }
        self.read_lost();
    }

    fn read_lost(&mut self) {
        for k in AuditKind::ALL {
            match self.maps.lost.get(&(k as u32), 0) {
                Ok(per_cpu) => self
                    .stats
                    .set_ring_buffer_full(k, per_cpu.iter().sum::<u64>()),
                Err(e) => tracing::debug!(error = %e, "reading map AUDIT_LOST"),
            }
        }
    }
}
