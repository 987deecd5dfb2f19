//! Where the audit programs find their data on the running kernel: tracepoint record fields
//! (from each event's `format` file in tracefs) and struct members (from the kernel's BTF).
//! Both are handed to the programs as globals before the object is loaded.

use std::path::Path;

use anyhow::{anyhow, Context as _};
use btf_rs::{Backend, Btf, Type};
use monitor_common::audit::{KernelOffsets, TraceFields, TCP_STATE_STANDARD};

use crate::bpf::tracefs::Format;

/// Record layouts of the tracepoints the audit programs read. A tracepoint the kernel lacks
/// leaves its fields at 0 (its program will not attach either).
pub fn trace_fields(tracefs: &Path) -> TraceFields {
    let read = |cat: &str, ev: &str| Format::read_or_empty(tracefs, cat, ev);
    let exec = read("sched", "sched_process_exec");
    let oom = read("oom", "mark_victim");
    let tcp = read("sock", "inet_sock_set_state");
    let tcp_fields = [
        "skaddr", "oldstate", "newstate", "sport", "dport", "family", "protocol", "saddr", "daddr",
        "saddr_v6", "daddr_v6",
    ];
    let standard = tcp_fields
        .iter()
        .map(|f| tcp.offset(f))
        .eq(TCP_STATE_STANDARD);
    TraceFields {
        exec_filename: exec.offset("filename"),
        oom_pid: oom.offset("pid"),
        oom_comm: oom.offset("comm"),
        oom_total_vm: oom.offset("total_vm"),
        oom_anon_rss: oom.offset("anon_rss"),
        oom_file_rss: oom.offset("file_rss"),
        oom_shmem_rss: oom.offset("shmem_rss"),
        oom_uid: oom.offset("uid"),
        oom_pgtables: oom.offset("pgtables"),
        oom_score_adj: oom.offset("oom_score_adj"),
        tcp_skaddr: tcp.offset("skaddr"),
        tcp_oldstate: tcp.offset("oldstate"),
        tcp_newstate: tcp.offset("newstate"),
        tcp_sport: tcp.offset("sport"),
        tcp_dport: tcp.offset("dport"),
        tcp_family: tcp.offset("family"),
        tcp_protocol: tcp.offset("protocol"),
        tcp_saddr: tcp.offset("saddr"),
        tcp_daddr: tcp.offset("daddr"),
        tcp_saddr_v6: tcp.offset("saddr_v6"),
        tcp_daddr_v6: tcp.offset("daddr_v6"),
        tcp_standard: u32::from(standard),
    }
}

/// Struct member offsets from the kernel's BTF (`/sys/kernel/btf/vmlinux`). A member that
/// cannot be found is left at 0 and named in one warning: its field is then missing from
/// the records, the rest still work.
pub fn kernel_offsets(vmlinux: &Path) -> anyhow::Result<KernelOffsets> {
    let btf = open_btf(vmlinux)?;
    let mut missing = Vec::new();
    let mut get = |ty: &str, path: &str| match offset_of(&btf, ty, path) {
        Ok(o) => o,
        Err(e) => {
            missing.push(format!("{ty}.{path}: {e}"));
            0
        }
    };
    let o = KernelOffsets {
        task_real_parent: get("task_struct", "real_parent"),
        task_tgid: get("task_struct", "tgid"),
        task_exit_code: get("task_struct", "exit_code"),
        task_start_time: get("task_struct", "start_time"),
        task_sum_exec_runtime: get("task_struct", "se.sum_exec_runtime"),
        task_signal: get("task_struct", "signal"),
        signal_sum_sched_runtime: get("signal_struct", "sum_sched_runtime"),
        task_mm: get("task_struct", "mm"),
        mm_arg_start: get("mm_struct", "arg_start"),
        mm_arg_end: get("mm_struct", "arg_end"),
        tcp_bytes_received: get("tcp_sock", "bytes_received"),
        tcp_bytes_acked: get("tcp_sock", "bytes_acked"),
    };
    if !missing.is_empty() {
        tracing::warn!(
            btf = %vmlinux.display(),
            missing = missing.join("; "),
            "kernel struct members not found; audit records will lack those fields"
        );
    }
    Ok(o)
}

/// The kernel's BTF. Mapped where the kernel allows it (6.16+): the file is megabytes and
/// only a few structs are needed, and parsing it all costs tens of MiB of peak memory (given
/// back after loading). Older kernels cannot map it (ENODEV): it is read.
pub fn open_btf(vmlinux: &Path) -> anyhow::Result<Btf> {
    Btf::from_file_with_backend(vmlinux, Backend::Mmap)
        .or_else(|_| Btf::from_file_with_backend(vmlinux, Backend::Cache))
        .map_err(|e| anyhow!("{e}"))
        .with_context(|| format!("reading BTF from {}", vmlinux.display()))
}

/// Byte offset of the dotted member `path` inside struct `ty`, looking through anonymous
/// structs and unions (as `task_struct` and `mm_struct` have).
pub fn offset_of(btf: &Btf, ty: &str, path: &str) -> anyhow::Result<u32> {
    let mut cur = btf
        .resolve_types_by_name(ty)
        .map_err(|e| anyhow!("{e}"))?
        .into_iter()
        .find(|t| matches!(t, Type::Struct(_)))
        .ok_or_else(|| anyhow!("no struct {ty}"))?;
    let mut bits = 0;
    for part in path.split('.') {
        let (o, t) = member(btf, &cur, part)?.ok_or_else(|| anyhow!("no member {part}"))?;
        bits += o;
        cur = t;
    }
    if bits % 8 != 0 {
        return Err(anyhow!("{path} is a bitfield"));
    }
    Ok(bits / 8)
}

/// The member's bit offset and type (typedefs and qualifiers peeled off).
fn member(btf: &Btf, t: &Type, name: &str) -> anyhow::Result<Option<(u32, Type)>> {
    let (Type::Struct(s) | Type::Union(s)) = t else {
        return Ok(None);
    };
    for m in &s.members {
        let mname = btf.resolve_name(m).unwrap_or_default();
        let mut mt = btf.resolve_chained_type(m).map_err(|e| anyhow!("{e}"))?;
        while let Type::Typedef(_) | Type::Const(_) | Type::Volatile(_) = mt {
            let inner = mt
                .as_btf_type()
                .ok_or_else(|| anyhow!("qualifier without a type"))?;
            mt = btf
                .resolve_chained_type(inner)
                .map_err(|e| anyhow!("{e}"))?;
        }
        if mname == name {
            return Ok(Some((m.bit_offset(), mt)));
        }
        if mname.is_empty() {
            if let Some((o, inner)) = member(btf, &mt, name)? {
                return Ok(Some((m.bit_offset() + o, inner)));
            }
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_standard_tcp_state_layout_is_recognised() {
        let dir = tempfile::tempdir().unwrap();
        let ev = dir.path().join("events/sock/inet_sock_set_state");
        std::fs::create_dir_all(&ev).unwrap();
        let format = include_str!("testdata/inet_sock_set_state-6.18.format");
        std::fs::write(ev.join("format"), format).unwrap();
        let f = trace_fields(dir.path());
        assert_eq!(f.tcp_standard, 1);
        assert_eq!(f.tcp_protocol, 30);
        // Before 5.6: no protocol field, so every offset from family on differs.
        let old = format
            .lines()
            .filter(|l| !l.contains(" protocol;"))
            .collect::<Vec<_>>()
            .join("\n");
        std::fs::write(ev.join("format"), old).unwrap();
        assert_eq!(trace_fields(dir.path()).tcp_standard, 0);
    }

    #[test]
    fn older_mark_victim_has_only_a_pid() {
        // 5.x: `field:int pid; offset:8;` and nothing else.
        let f = Format::parse("\tfield:int pid;\toffset:8;\tsize:4;\tsigned:1;\n");
        assert_eq!(f.offset("pid"), 8);
        assert_eq!(f.offset("comm"), 0);
    }
}
