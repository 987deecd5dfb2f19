//! Reading a whole hash map in a few system calls (`BPF_MAP_LOOKUP_BATCH`, 5.6+), where
//! iterating costs two per entry (next key, then its value): with 10,000 processes that was
//! 20,000 system calls a refresh for `TASK_STATS` alone.

use std::os::fd::{AsFd as _, AsRawFd as _};

use aya::{
    maps::{HashMap, IterableMap, MapData, MapError},
    Pod,
};

const BPF_MAP_LOOKUP_BATCH: libc::c_long = 24;
/// Entries asked for by the first call of a read, and at most by a later one (each asks for
/// twice the last): most maps hold a few entries, and a buffer sized for thousands is
/// allocated, zeroed and faulted in at every read (with 1,000 processes that was a fifth of
/// the daemon's time, for a 4,096-entry buffer of service figures). A hash bucket larger than
/// the room makes the kernel answer ENOSPC, and the call is retried with room for more.
const FIRST_CHUNK: u32 = 64;
const CHUNK: u32 = 4096;

/// The `batch` member of `union bpf_attr` (include/uapi/linux/bpf.h).
#[repr(C)]
#[derive(Default)]
struct BatchAttr {
    in_batch: u64,
    out_batch: u64,
    keys: u64,
    values: u64,
    count: u32,
    map_fd: u32,
    elem_flags: u64,
    flags: u64,
}

/// One batch command of `bpf(2)` on `attr`.
///
/// # Safety
/// The addresses in `attr` must be valid for what `cmd` reads and writes there.
unsafe fn call(cmd: libc::c_long, attr: &mut BatchAttr) -> Result<(), std::io::Error> {
    // SAFETY: the caller's promise; `attr` itself is a valid `union bpf_attr` prefix.
    let r = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            std::ptr::from_mut(attr),
            std::mem::size_of::<BatchAttr>(),
        )
    };
    if r < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// Every entry of `map`, in as few calls as the kernel allows; `Ok(None)` when the kernel
/// has no batch operations for it (before 5.6), for the caller to iterate instead.
pub fn read_all<K: Pod + Default, V: Pod + Default>(
    map: &HashMap<MapData, K, V>,
) -> Result<Option<Vec<(K, V)>>, std::io::Error> {
    read_all_of(map.map())
}

/// As `read_all`, for any hash or array map of `K` keys and `V` values (the caller's
/// promise: the typed map that owns `map` checked their sizes).
pub fn read_all_of<K: Pod + Default, V: Pod + Default>(
    map: &MapData,
) -> Result<Option<Vec<(K, V)>>, std::io::Error> {
    let fd = map.fd().as_fd().as_raw_fd();
    let mut out = Vec::new();
    let mut chunk = FIRST_CHUNK;
    // The batch token is a bucket index for a hash, an index for an array (a u32 both).
    let (mut token_in, mut token_out) = (0u32, 0u32);
    let mut first = true;
    let (mut keys, mut values) = (Vec::new(), Vec::new());
    loop {
        keys.resize(chunk as usize, K::default());
        values.resize(chunk as usize, V::default());
        let mut attr = BatchAttr {
            in_batch: if first {
                0
            } else {
                (&raw const token_in) as u64
            },
            out_batch: (&raw mut token_out) as u64,
            keys: keys.as_mut_ptr() as u64,
            values: values.as_mut_ptr() as u64,
            count: chunk,
            map_fd: fd as u32,
            ..Default::default()
        };
        // SAFETY: `attr` points at buffers of `count` keys and values of the map's types
        // (the typed map checked their sizes when it was made) and at two u32 tokens, all
        // alive for the call; the kernel writes at most `count` of each.
        let err = unsafe { call(BPF_MAP_LOOKUP_BATCH, &mut attr) }.err();
        let done = match err.as_ref().and_then(std::io::Error::raw_os_error) {
            None => false,
            Some(libc::ENOENT) => true,
            Some(libc::ENOSPC) if chunk < 1 << 20 => {
                chunk *= 4;
                continue;
            }
            Some(libc::EINVAL | libc::ENOTSUP | libc::EOPNOTSUPP) if first => return Ok(None),
            Some(_) => return Err(err.expect("an error")),
        };
        let n = (attr.count as usize).min(chunk as usize);
        out.extend(keys[..n].iter().copied().zip(values[..n].iter().copied()));
        if done {
            return Ok(Some(out));
        }
        first = false;
        token_in = token_out;
        chunk = chunk.max((chunk * 2).min(CHUNK));
    }
}

const BPF_MAP_DELETE_BATCH: libc::c_long = 27;

/// Deletes `keys` from `map` in as few calls as the kernel allows (`BPF_MAP_DELETE_BATCH`,
/// 5.6+), one per key before: on a host forking thousands of processes a second, one call
/// per exited process and map was most of the daemon's time. A key not in the map is
/// passed over. Returns how many were deleted.
pub fn delete<K: Pod, V: Pod>(map: &mut HashMap<MapData, K, V>, keys: &[K]) -> usize {
    let fd = map.map().fd().as_fd().as_raw_fd();
    let mut rest = keys;
    let mut deleted = 0;
    while !rest.is_empty() {
        let mut attr = BatchAttr {
            keys: rest.as_ptr() as u64,
            count: u32::try_from(rest.len()).unwrap_or(u32::MAX),
            map_fd: fd as u32,
            ..Default::default()
        };
        // SAFETY: `attr` points at `count` keys of the map's key type (the typed map checked
        // its size), alive for the call; the kernel only reads them and writes `count`.
        let Err(err) = (unsafe { call(BPF_MAP_DELETE_BATCH, &mut attr) }) else {
            return deleted + rest.len();
        };
        // The kernel stops at the first key it cannot delete and says how many it did.
        let done = (attr.count as usize).min(rest.len());
        deleted += done;
        match err.raw_os_error() {
            Some(libc::ENOENT) => rest = rest.get(done + 1..).unwrap_or_default(),
            Some(libc::EINVAL | libc::ENOTSUP | libc::EOPNOTSUPP) if done == 0 => {
                // No batch operations (before 5.6): one call per key.
                for k in rest {
                    if map.remove(k).is_ok() {
                        deleted += 1;
                    }
                }
                return deleted;
            }
            _ => {
                tracing::debug!(error = %err, "deleting a batch of map entries");
                return deleted;
            }
        }
    }
    deleted
}

/// Every entry of `map`: batched where the kernel can, iterated where it cannot. An entry
/// removed while it is read is left out.
pub fn entries<K: Pod + Default, V: Pod + Default>(
    map: &HashMap<MapData, K, V>,
    name: &str,
) -> anyhow::Result<Vec<(K, V)>> {
    use anyhow::Context as _;
    if let Some(all) = read_all(map).with_context(|| format!("reading map {name}"))? {
        return Ok(all);
    }
    let mut out = Vec::new();
    for kv in map.iter() {
        match kv {
            Ok(kv) => out.push(kv),
            Err(MapError::KeyNotFound) => continue,
            Err(e) => return Err(e).with_context(|| format!("reading map {name}")),
        }
    }
    Ok(out)
}

/// How many entries `map` holds (for `monitor_bpf_map_entries`), in as few calls as the
/// kernel allows.
pub fn count<K: Pod + Default, V: Pod + Default>(map: &HashMap<MapData, K, V>) -> u64 {
    match read_all(map) {
        Ok(Some(all)) => all.len() as u64,
        _ => map.keys().filter(Result::is_ok).count() as u64,
    }
}

/// How often `CachedCount` counts again: a count walks every bucket of the map (its
/// capacity, not its entries), and only feeds `monitor_bpf_map_entries`.
pub const COUNT_EVERY: std::time::Duration = std::time::Duration::from_secs(10);

/// A map's entry count, counted again at most every `COUNT_EVERY`.
#[derive(Debug, Default)]
pub struct CachedCount(std::cell::Cell<Option<(std::time::Instant, u64)>>);

impl CachedCount {
    pub fn get<K: Pod + Default, V: Pod + Default>(&self, map: &HashMap<MapData, K, V>) -> u64 {
        self.get_with(|| count(map))
    }

    /// The count `f` makes, made again at most every `COUNT_EVERY`.
    pub fn get_with(&self, f: impl FnOnce() -> u64) -> u64 {
        let now = std::time::Instant::now();
        match self.0.get() {
            Some((at, n)) if now.duration_since(at) < COUNT_EVERY => n,
            _ => {
                let n = f();
                self.0.set(Some((now, n)));
                n
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A real hash map (the tests run as root): a read gives back every entry written, past
    /// the first small call and the growing ones, and a batch delete takes what it names.
    #[test]
    fn reads_every_entry_and_deletes_in_batches() {
        for n in [0u32, 1, FIRST_CHUNK - 1, FIRST_CHUNK + 1, 5000] {
            let mut m = HashMap::<MapData, u32, [u64; 4]>::create(8192, 0)
                .expect("making a hash map (needs root)");
            for k in 0..n {
                m.insert(k, [u64::from(k); 4], 0).unwrap();
            }
            let mut all = read_all(&m).unwrap().expect("batch reads (5.6+)");
            all.sort_unstable_by_key(|(k, _)| *k);
            assert_eq!(all.len(), n as usize, "{n} entries");
            assert!(all
                .iter()
                .enumerate()
                .all(|(i, (k, v))| *k == i as u32 && *v == [u64::from(*k); 4]));
            assert_eq!(count(&m), u64::from(n));

            let gone: Vec<u32> = (0..n).step_by(2).chain([n + 10]).collect();
            assert_eq!(delete(&mut m, &gone), n.div_ceil(2) as usize);
            assert_eq!(count(&m), u64::from(n / 2));
        }
    }
}
