/// Atomic `*p += v`. The BPF target has no compare-and-swap in rustc's view, so core's
/// atomics offer no `fetch_add`; the instruction itself (`BPF_ATOMIC | BPF_ADD`) exists on
/// every kernel we support.
#[inline(always)]
pub unsafe fn add(p: *mut u64, v: u64) {
    if v != 0 {
        // SAFETY: the caller passes a valid, 8-byte aligned map value field.
        unsafe {
            core::arch::asm!(
                "lock *(u64 *)({p} + 0) += {v}",
                p = in(reg) p,
                v = in(reg) v,
                options(nostack),
            )
        };
    }
}
