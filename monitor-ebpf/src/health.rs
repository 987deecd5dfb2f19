use crate::maps::HEALTH;

/// Counts one failure of kind `idx` (a `monitor_common::health` constant).
#[inline(always)]
pub fn count_failure(idx: u32) {
    if let Some(p) = HEALTH.get_ptr_mut(idx) {
        // SAFETY: a per-CPU slot, touched only by programs on this CPU, which do not nest
        // for tracepoints.
        unsafe { *p += 1 };
    }
}
