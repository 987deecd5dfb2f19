//! Loading the kernel programs, attaching them with per-kernel fallbacks, and reading back
//! what they aggregated.

pub mod attach;
pub mod batch;
pub mod family;
pub mod health;
pub mod hooks;
pub mod mapped;
pub mod per_task;
#[cfg(test)]
pub mod recording;
pub mod sparse_btf;
pub mod tracefs;
pub mod verify;

/// The kernel object built from `monitor-ebpf` by `build.rs`.
pub static OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/monitor"));

/// True when `err`'s chain holds an EPERM or EACCES from the kernel: the daemon lacks the
/// privileges for BPF, which no fallback can fix.
pub fn is_permission_error(err: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur = Some(err);
    while let Some(e) = cur {
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            if matches!(io.raw_os_error(), Some(libc::EPERM) | Some(libc::EACCES)) {
                return true;
            }
        }
        cur = e.source();
    }
    false
}

/// Takes map `name` out of the object as a typed map.
pub fn take_map<T: TryFrom<aya::maps::Map, Error = aya::maps::MapError>>(
    ebpf: &mut aya::Ebpf,
    name: &str,
) -> anyhow::Result<T> {
    use anyhow::Context as _;
    let map = ebpf
        .take_map(name)
        .with_context(|| format!("map {name} is not in the object"))?;
    T::try_from(map).with_context(|| format!("map {name}"))
}

#[cfg(test)]
mod tests {
    use monitor_common::{health::program, maps};

    use super::attach::Probe;

    /// Every program and map name the daemon asks for by name, against the object built
    /// from `monitor-ebpf`: a renamed program or map fails here, not at start-up on a host.
    #[test]
    fn shared_names_are_in_the_built_object() {
        if super::OBJECT.is_empty() {
            eprintln!("built with AYA_BUILD_SKIP: no kernel object to check");
            return;
        }
        let obj = aya_obj::Object::parse(super::OBJECT).expect("parsing the kernel object");
        let probes: Vec<&Probe> = crate::sched::kernel::PROBES
            .iter()
            .chain(crate::block::kernel::all_probes())
            .chain(crate::net::kernel::PROBES)
            .chain([&crate::net::kernel::UDP_RECEIVE])
            .chain(crate::audit::kernel::PROBES)
            .chain(crate::sched::kernel::OOM_PROBE)
            .chain(crate::service::kernel::CONNECTIONS)
            .chain(crate::service::kernel::TURNS)
            .collect();
        let mut programs: Vec<&str> = probes
            .iter()
            .flat_map(|p| p.choices.iter().map(|c| c.program))
            .collect();
        programs.extend(
            program::OBJECT_PROGRAMS
                .iter()
                .flat_map(|p| p.iter().copied()),
        );
        programs.extend(crate::sched::kernel::TYPED_PROGRAMS);
        for name in programs {
            assert!(
                obj.programs.contains_key(name),
                "program {name} is not in the object"
            );
        }
        for name in [
            maps::TASK_STATS,
            maps::RUNQ_START,
            maps::CPU_SLOT,
            maps::RUNQ_HIST,
            maps::HEALTH,
            maps::MISSES,
            maps::PROC_EVENTS,
            maps::DISK_STATS,
            maps::BLOCK_REQUESTS,
            maps::BLOCK_RQ_SLOTS,
            maps::PART_DISK,
            maps::BLOCK_TASKS,
            maps::AUDIT_EVENTS,
            maps::AUDIT_LOST,
            maps::TCP_SOCKS,
            maps::TCP_LISTENERS,
            maps::NET_STATS,
            maps::SVC_STATS,
            maps::SVC_SOCKS,
            maps::SVC_LISTENERS,
        ] {
            assert!(
                obj.maps.contains_key(name),
                "map {name} is not in the object"
            );
        }
    }
}
