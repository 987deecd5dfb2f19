//! The kernel's BTF cut down to what attaching `tp_btf` programs needs: the id of each
//! tracepoint's `btf_trace_<name>` typedef. aya looks the id up by name in a parsed `Btf`,
//! and a parse of the whole of it (megabytes of types, every struct with its members)
//! peaked at tens of MiB at start-up, which the daemon does not otherwise need: its programs
//! carry no CO-RE relocations (their struct offsets come from the daemon, `family::Setup`).
//! Here every other type keeps its place (ids are positions) as a bare placeholder.

use std::path::Path;

use anyhow::{bail, Context as _};
use aya::{Btf, Endianness};

const MAGIC: u16 = 0xeb9f;
const HEADER_LEN: usize = 24;
const KIND_PTR: u32 = 2;
const KIND_TYPEDEF: u32 = 8;
const PREFIX: &[u8] = b"btf_trace_";

/// Reads `vmlinux` (the kernel's BTF file) into a `Btf` holding only the tracepoint typedefs.
pub fn read(vmlinux: &Path) -> anyhow::Result<Btf> {
    let data = std::fs::read(vmlinux).with_context(|| format!("reading {}", vmlinux.display()))?;
    let blob = cut(&data).with_context(|| format!("parsing {}", vmlinux.display()))?;
    Btf::parse(&blob, Endianness::default())
        .with_context(|| format!("parsing the tracepoint types of {}", vmlinux.display()))
}

fn u32_at(d: &[u8], off: usize) -> anyhow::Result<u32> {
    let b = d
        .get(off..off + 4)
        .with_context(|| format!("truncated at byte {off}"))?;
    Ok(u32::from_ne_bytes([b[0], b[1], b[2], b[3]]))
}

/// Bytes a type's record takes after its 12-byte head.
fn extra(kind: u32, vlen: usize) -> anyhow::Result<usize> {
    Ok(match kind {
        // int, var, decl_tag: one u32.
        1 | 14 | 17 => 4,
        // ptr, fwd, typedef, volatile, const, restrict, func, float, type_tag.
        2 | 7..=12 | 16 | 18 => 0,
        3 => 12,
        // struct, union: members; datasec: variables; enum64: values.
        4 | 5 | 15 | 19 => 12 * vlen,
        // enum values, function parameters.
        6 | 13 => 8 * vlen,
        k => bail!("unknown BTF kind {k}"),
    })
}

/// A BTF blob with the same type ids as `data`: the `btf_trace_*` typedefs named, every
/// other type a nameless pointer; nothing after the last typedef.
fn cut(data: &[u8]) -> anyhow::Result<Vec<u8>> {
    if data.len() < HEADER_LEN || u16::from_ne_bytes([data[0], data[1]]) != MAGIC {
        bail!("not BTF (no magic)");
    }
    let hdr_len = u32_at(data, 4)? as usize;
    let types = hdr_len + u32_at(data, 8)? as usize;
    let types_end = types + u32_at(data, 12)? as usize;
    let strings = hdr_len + u32_at(data, 16)? as usize;
    let strings_end = strings + u32_at(data, 20)? as usize;
    if types_end > data.len() || strings_end > data.len() {
        bail!("sections past the end of the file");
    }
    let name = |off: u32| -> &[u8] {
        let s = &data[(strings + off as usize).min(strings_end)..strings_end];
        &s[..s.iter().position(|&b| b == 0).unwrap_or(s.len())]
    };
    let mut out_types: Vec<[u32; 3]> = Vec::new();
    let mut out_strings = vec![0u8];
    let mut last_named = 0;
    let mut at = types;
    while at < types_end {
        let (name_off, info) = (u32_at(data, at)?, u32_at(data, at + 4)?);
        let kind = (info >> 24) & 0x1f;
        let n = name(name_off);
        if kind == KIND_TYPEDEF && n.starts_with(PREFIX) {
            out_types.push([out_strings.len() as u32, KIND_TYPEDEF << 24, 0]);
            out_strings.extend_from_slice(n);
            out_strings.push(0);
            last_named = out_types.len();
        } else {
            out_types.push([0, KIND_PTR << 24, 0]);
        }
        at += 12 + extra(kind, (info & 0xffff) as usize)?;
    }
    out_types.truncate(last_named);
    let type_len = out_types.len() * 12;
    let mut blob = Vec::with_capacity(HEADER_LEN + type_len + out_strings.len());
    blob.extend_from_slice(&MAGIC.to_ne_bytes());
    blob.extend_from_slice(&[1, 0]);
    for v in [
        HEADER_LEN as u32,
        0,
        type_len as u32,
        type_len as u32,
        out_strings.len() as u32,
    ] {
        blob.extend_from_slice(&v.to_ne_bytes());
    }
    for t in &out_types {
        for v in t {
            blob.extend_from_slice(&v.to_ne_bytes());
        }
    }
    blob.extend_from_slice(&out_strings);
    Ok(blob)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A BTF file: `int`, a struct with two members, `btf_trace_x` and `other` typedefs.
    fn fixture() -> Vec<u8> {
        let strings = b"\0int\0s\0a\0b\0btf_trace_x\0other\0";
        let off = |s: &str| {
            strings
                .windows(s.len() + 1)
                .position(|w| &w[..s.len()] == s.as_bytes() && w[s.len()] == 0)
                .unwrap() as u32
        };
        let mut types: Vec<u32> = vec![off("int"), 1 << 24, 4, 32];
        types.extend([off("s"), 4 << 24 | 2, 8, off("a"), 1, 0, off("b"), 1, 32]);
        types.extend([off("btf_trace_x"), 8 << 24, 2]);
        types.extend([off("other"), 8 << 24, 1]);
        let mut d = Vec::new();
        d.extend_from_slice(&MAGIC.to_ne_bytes());
        d.extend_from_slice(&[1, 0]);
        let type_len = types.len() as u32 * 4;
        for v in [24, 0, type_len, type_len, strings.len() as u32] {
            d.extend_from_slice(&u32::to_ne_bytes(v));
        }
        for v in types {
            d.extend_from_slice(&v.to_ne_bytes());
        }
        d.extend_from_slice(strings);
        d
    }

    #[test]
    fn tracepoint_typedefs_keep_their_ids() {
        let btf = Btf::parse(&cut(&fixture()).unwrap(), Endianness::default()).unwrap();
        let id = btf
            .id_by_type_name_kind("btf_trace_x", aya_obj::btf::BtfKind::Typedef)
            .unwrap();
        assert_eq!(id, 3);
        assert!(btf
            .id_by_type_name_kind("other", aya_obj::btf::BtfKind::Typedef)
            .is_err());
    }

    #[test]
    fn bad_files_are_errors() {
        assert!(cut(b"short").is_err());
        let mut d = fixture();
        d[12] = 0xff;
        assert!(cut(&d).is_err());
    }

    /// The kernel's own file, where there is one: every tracepoint typedef at its id.
    #[test]
    fn the_kernels_ids_are_kept() {
        let path = Path::new("/sys/kernel/btf/vmlinux");
        let Ok(data) = std::fs::read(path) else {
            return;
        };
        let sparse = Btf::parse(&cut(&data).unwrap(), Endianness::default()).unwrap();
        let full = Btf::parse(&data, Endianness::default()).unwrap();
        for name in ["btf_trace_sched_switch", "btf_trace_sched_wakeup"] {
            let kind = aya_obj::btf::BtfKind::Typedef;
            assert_eq!(
                sparse.id_by_type_name_kind(name, kind).ok(),
                full.id_by_type_name_kind(name, kind).ok(),
                "{name}"
            );
        }
    }
}
