//! Counter entries created on first use.

// Keys and values by reference, as in `block` (large values must stay off the BPF stack).

use aya_ebpf::{
    bindings::BPF_NOEXIST,
    maps::{HashMap, PerCpuArray, PerCpuHashMap},
};

use crate::health::count_failure;

/// A hash map whose counter entries are made on first use: a plain one, or a per-CPU one
/// (whose lookup gives this CPU's value, and whose insert from a program sets this CPU's
/// value and zeroes the others').
pub trait CounterMap<K, V> {
    fn get_ptr_mut(&self, key: &K) -> Option<*mut V>;
    /// `BPF_NOEXIST`: EEXIST (another CPU was first) is not an error to the caller.
    fn insert_new(&self, key: &K, value: &V);
}

impl<K, V> CounterMap<K, V> for HashMap<K, V> {
    #[inline(always)]
    fn get_ptr_mut(&self, key: &K) -> Option<*mut V> {
        HashMap::get_ptr_mut(self, key)
    }
    #[inline(always)]
    fn insert_new(&self, key: &K, value: &V) {
        let _ = self.insert(key, value, u64::from(BPF_NOEXIST));
    }
}

impl<K, V> CounterMap<K, V> for PerCpuHashMap<K, V> {
    #[inline(always)]
    fn get_ptr_mut(&self, key: &K) -> Option<*mut V> {
        PerCpuHashMap::get_ptr_mut(self, key)
    }
    #[inline(always)]
    fn insert_new(&self, key: &K, value: &V) {
        let _ = self.insert(key, value, u64::from(BPF_NOEXIST));
    }
}

/// The entry of `key`, inserted from `zero` (a zeroed per-CPU value, so a large value is
/// never built on the BPF stack) when missing; a failed insert (a full map) is counted as
/// health index `fail`.
#[inline(always)]
pub fn get_or_insert_zero<K, V>(
    map: &impl CounterMap<K, V>,
    zero: &PerCpuArray<V>,
    key: &K,
    fail: u32,
) -> Option<*mut V> {
    if let Some(p) = map.get_ptr_mut(key) {
        return Some(p);
    }
    let z = zero.get_ptr(0)?;
    // SAFETY: a map value pointer, valid for the call.
    map.insert_new(key, unsafe { &*z });
    let p = map.get_ptr_mut(key);
    if p.is_none() {
        count_failure(fail);
    }
    p
}
