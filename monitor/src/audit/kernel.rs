//! The audit programs' kernel side: what they attach to, the globals they need before the
//! object is loaded, and the maps the daemon reads.

use aya::{
    maps::{MapData, PerCpuArray, RingBuf},
    Ebpf,
};
use monitor_common::{
    audit::{AuditScope, KernelOffsets, GLOBAL_OFFSETS, GLOBAL_SCOPE},
    maps,
};

use super::layout;
use crate::bpf::{
    attach::{Attached, Choice, Hook, Probe},
    family::{Attacher, KernelFamily, Prepare, Setup},
    take_map,
};

pub const PROBES: &[Probe] = &[
    Probe {
        measure: "audit_exec",
        choices: &[Choice {
            program: "audit_exec",
            hook: Hook::Tracepoint("sched", "sched_process_exec"),
        }],
    },
    Probe {
        measure: "audit_exit",
        choices: &[Choice {
            program: "audit_exit",
            hook: Hook::Tracepoint("sched", "sched_process_exit"),
        }],
    },
    Probe {
        measure: "audit_oom_kill",
        choices: &[Choice {
            program: "audit_oom",
            hook: Hook::Tracepoint("oom", "mark_victim"),
        }],
    },
    Probe {
        measure: "audit_tcp",
        // Shared with the network collector, which may have attached it already.
        choices: crate::net::kernel::TCP_STATE,
    },
];

/// What the kernel side of the audit log is told at load time.
#[derive(Clone, Debug, Default)]
pub struct KernelSetup {
    /// Record only processes in this cgroup v2 directory or below it.
    pub cgroup: Option<std::path::PathBuf>,
}

pub struct AuditMaps {
    pub events: RingBuf<MapData>,
    pub lost: PerCpuArray<MapData, u64>,
}

/// The audit log's family: the struct offsets and the scope its programs are told before
/// the object loads, and every audit program this kernel can run (each on its own: a
/// kernel without `oom:mark_victim` still gets exec, exit and TCP records). Its maps go to
/// the audit log's reader (`maps`), not to the refresher.
pub struct Audit {
    setup: KernelSetup,
    maps: std::sync::Arc<std::sync::Mutex<Option<AuditMaps>>>,
}

impl Audit {
    /// The family, and where its maps are once it is attached.
    pub fn new(setup: KernelSetup) -> (Self, AuditMapsSlot) {
        let maps = std::sync::Arc::default();
        (
            Self {
                setup,
                maps: std::sync::Arc::clone(&maps),
            },
            AuditMapsSlot(maps),
        )
    }
}

/// Where the audit family leaves its maps for the audit log's reader.
pub struct AuditMapsSlot(std::sync::Arc<std::sync::Mutex<Option<AuditMaps>>>);

impl AuditMapsSlot {
    pub fn take(&self) -> Option<AuditMaps> {
        self.0.lock().ok()?.take()
    }
}

impl KernelFamily for Audit {
    fn name(&self) -> &'static str {
        "audit"
    }

    fn required(&self) -> bool {
        true
    }

    fn collects(&self) -> bool {
        false
    }

    fn prepare(&mut self, ctx: &Prepare<'_>, setup: &mut Setup) -> anyhow::Result<()> {
        let offsets = layout::kernel_offsets(ctx.vmlinux).unwrap_or_else(|e| {
            tracing::warn!(
                error = format!("{e:#}"),
                "no kernel BTF: audit records will lack parent, exit code, lifetime, CPU \
                 time, arguments and TCP byte counts"
            );
            KernelOffsets::default()
        });
        let scope = match &self.setup.cgroup {
            None => AuditScope {
                enabled: 1,
                ..Default::default()
            },
            Some(dir) => super::scope::of(dir)?,
        };
        setup.global(GLOBAL_OFFSETS, &offsets);
        setup.global(GLOBAL_SCOPE, &scope);
        setup.hook_families |= monitor_common::hooks::family::AUDIT;
        Ok(())
    }

    fn attach(&mut self, a: &mut Attacher<'_>) -> anyhow::Result<Vec<Attached>> {
        let mut attached = Vec::new();
        for p in PROBES {
            if p.choices.iter().any(|c| a.loaded(c.program)) {
                continue;
            }
            match a.attach(std::slice::from_ref(p)) {
                Ok(more) => attached.extend(more),
                Err(e) if crate::bpf::is_permission_error(e.as_ref()) => return Err(e),
                Err(e) => tracing::warn!(
                    measure = p.measure,
                    error = format!("{e:#}"),
                    "audit events of this kind are not recorded on this kernel"
                ),
            }
        }
        if attached.is_empty() {
            anyhow::bail!("no audit program could attach");
        }
        Ok(attached)
    }

    fn take(&mut self, ebpf: &mut Ebpf, _attached: &[Attached]) -> anyhow::Result<()> {
        let maps = AuditMaps {
            events: take_map(ebpf, maps::AUDIT_EVENTS)?,
            lost: take_map(ebpf, maps::AUDIT_LOST)?,
        };
        if let Ok(mut slot) = self.maps.lock() {
            *slot = Some(maps);
        }
        Ok(())
    }
}
