//! Loading the kernel programs, attaching them with per-kernel fallbacks, and reading back
//! what they aggregated.

pub mod attach;
pub mod block;
pub mod health;
pub mod sched;
pub mod tracefs;

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
