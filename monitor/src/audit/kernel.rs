//! The audit programs' kernel side: what they attach to, the globals they need before the
//! object is loaded, and the maps the daemon reads.

use std::path::Path;

use aya::{
    maps::{MapData, PerCpuArray, RingBuf},
    Btf, Ebpf, EbpfLoader,
};
use monitor_common::{
    audit::{AuditScope, KernelOffsets, TraceFields, GLOBAL_FIELDS, GLOBAL_OFFSETS, GLOBAL_SCOPE},
    maps,
};

use super::layout;
use crate::bpf::{
    attach::{attach_all, AttachOptions, Attached, Choice, Hook, Probe},
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
        choices: &[crate::net::kernel::TCP_STATE],
    },
];

/// The `sched` collector's OOM counter: attached on its own, as a kernel without
/// `oom:mark_victim` must not take the rest of the collector down.
pub const OOM_PROBE: &[Probe] = &[Probe {
    measure: "process_oom_kill",
    choices: &[Choice {
        program: "oom_mark_victim",
        hook: Hook::Tracepoint("oom", "mark_victim"),
    }],
}];

/// What the kernel side of the audit log is told at load time.
#[derive(Clone, Debug, Default)]
pub struct KernelSetup {
    /// Record only processes in this cgroup v2 directory or below it.
    pub cgroup: Option<std::path::PathBuf>,
}

/// The globals, read once before the object is loaded. They must outlive the loader.
pub struct Globals {
    fields: TraceFields,
    offsets: KernelOffsets,
    scope: AuditScope,
}

impl Globals {
    /// Tracepoint layouts always (the `sched` collector's OOM program reads them too); struct
    /// offsets and the scope only when the audit log is on.
    pub fn read(tracefs: &Path, audit: Option<&KernelSetup>) -> anyhow::Result<Self> {
        let fields = layout::trace_fields(tracefs);
        let (offsets, scope) = match audit {
            None => (KernelOffsets::default(), AuditScope::default()),
            Some(setup) => {
                let offsets = layout::kernel_offsets(Path::new("/sys/kernel/btf/vmlinux"))
                    .unwrap_or_else(|e| {
                        tracing::warn!(
                            error = format!("{e:#}"),
                            "no kernel BTF: audit records will lack parent, exit code, \
                             lifetime, CPU time, arguments and TCP byte counts"
                        );
                        KernelOffsets::default()
                    });
                let scope = match &setup.cgroup {
                    None => AuditScope {
                        enabled: 1,
                        ..Default::default()
                    },
                    Some(dir) => super::scope::of(dir)?,
                };
                (offsets, scope)
            }
        };
        Ok(Self {
            fields,
            offsets,
            scope,
        })
    }

    pub fn apply<'a>(&'a self, loader: &mut EbpfLoader<'a>) {
        loader
            .override_global(GLOBAL_FIELDS, &self.fields, true)
            .override_global(GLOBAL_OFFSETS, &self.offsets, true)
            .override_global(GLOBAL_SCOPE, &self.scope, true);
    }
}

pub struct AuditMaps {
    pub events: RingBuf<MapData>,
    pub lost: PerCpuArray<MapData, u64>,
}

/// Attaches every audit program that this kernel can run (each on its own: a kernel
/// without `oom:mark_victim` still gets exec, exit and TCP records) and takes the maps.
pub fn attach(
    ebpf: &mut Ebpf,
    btf: Option<&Btf>,
    opts: &AttachOptions,
) -> anyhow::Result<(AuditMaps, Vec<Attached>)> {
    let mut attached = Vec::new();
    for p in PROBES {
        if p.choices.iter().any(|c| {
            ebpf.program(c.program)
                .is_some_and(|prog| prog.fd().is_ok())
        }) {
            continue;
        }
        match attach_all(ebpf, btf, std::slice::from_ref(p), opts) {
            Ok(a) => attached.extend(a),
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
    Ok((
        AuditMaps {
            events: take_map(ebpf, maps::AUDIT_EVENTS)?,
            lost: take_map(ebpf, maps::AUDIT_LOST)?,
        },
        attached,
    ))
}
