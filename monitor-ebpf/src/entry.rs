//! Counter entries created on first use.

// Keys and values by reference, as in `block` (large values must stay off the BPF stack).

use aya_ebpf::{
    bindings::BPF_NOEXIST,
    maps::{HashMap, PerCpuArray, PerCpuHashMap},
};

use crate::health::count_failure;

/// The entry of `key`, inserted from `zero` (a zeroed per-CPU value, so a large value is
/// never built on the BPF stack) when missing; a failed insert (a full map) is counted as
/// health index `fail`.
#[inline(always)]
pub fn get_or_insert_zero<K, V>(
    map: &HashMap<K, V>,
    zero: &PerCpuArray<V>,
    key: &K,
    fail: u32,
) -> Option<*mut V> {
    if let Some(p) = map.get_ptr_mut(key) {
        return Some(p);
    }
    let z = zero.get_ptr(0)?;
    // SAFETY: a map value pointer, valid for the call; EEXIST (another CPU was first) is fine.
    let _ = map.insert(key, unsafe { &*z }, u64::from(BPF_NOEXIST));
    let p = map.get_ptr_mut(key);
    if p.is_none() {
        count_failure(fail);
    }
    p
}

/// This CPU's value of `key` in a per-CPU hash, inserted from `zero` when missing (an insert
/// from a program sets this CPU's value and zeroes the others').
#[inline(always)]
pub fn get_or_insert_zero_percpu<K, V>(
    map: &PerCpuHashMap<K, V>,
    zero: &PerCpuArray<V>,
    key: &K,
    fail: u32,
) -> Option<*mut V> {
    if let Some(p) = map.get_ptr_mut(key) {
        return Some(p);
    }
    let z = zero.get_ptr(0)?;
    // SAFETY: as in `get_or_insert_zero`.
    let _ = map.insert(key, unsafe { &*z }, u64::from(BPF_NOEXIST));
    let p = map.get_ptr_mut(key);
    if p.is_none() {
        count_failure(fail);
    }
    p
}
