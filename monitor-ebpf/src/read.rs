//! Small readers every program family shares: load-time globals, tracepoint record fields
//! at load-time offsets, members of typed kernel pointers, and kernel memory by probe read.

use aya_ebpf::{helpers::bpf_probe_read_kernel, programs::TracePointContext};

/// A global's field, read so the compiler cannot fold the compile-time zero.
#[inline(always)]
pub fn global<T: Copy>(f: &T) -> T {
    // SAFETY: a valid reference to a static.
    unsafe { core::ptr::read_volatile(f) }
}

/// A field of the record at `off`; `None` when the kernel's record has no such field.
#[inline(always)]
pub fn read<T>(ctx: &TracePointContext, off: u32) -> Option<T> {
    if off == 0 {
        return None;
    }
    // SAFETY: a probe read inside the tracepoint record.
    unsafe { ctx.read_at::<T>(off as usize).ok() }
}

/// Reads a `T` at `base + off` in kernel memory; `None` when the offset is unknown (0), the
/// base is null or the read fails.
#[inline(always)]
pub fn read_field<T>(base: u64, off: u32) -> Option<T> {
    if off == 0 || base == 0 {
        return None;
    }
    // SAFETY: a probe read: the helper checks the address and fails instead of faulting.
    unsafe { bpf_probe_read_kernel((base + u64::from(off)) as *const T).ok() }
}

/// A member of a kernel struct the typed hook (or a helper) handed over as a BTF pointer, at
/// a load-time offset: a direct load, which the verifier checks against the struct (the
/// offset is a constant of the frozen read-only data). `None` when the offset is unknown.
#[inline(always)]
pub fn member<T: Copy>(base: *const u8, off: &'static u32) -> Option<T> {
    if global(off) == 0 {
        return None;
    }
    Some(member_at(base, off))
}

/// As `member`, for a layout whose offsets may be 0 (a struct's first member): the caller
/// knows the daemon set them all, as it attaches the program only then.
#[inline(always)]
pub fn member_at<T: Copy>(base: *const u8, off: &'static u32) -> T {
    let off = global(off);
    // SAFETY: `base` is a BTF-typed kernel pointer and `off` the offset of a `T` member in
    // it, from the same BTF; the verifier checks the access.
    unsafe { base.add(off as usize).cast::<T>().read() }
}
