//! Reading an array map through a memory mapping (`BPF_F_MMAPABLE`, 5.5+): a batch read
//! copies each element out with its own lookup, so counting the block family's 32,768
//! request slots that way was a sixth of the daemon's time at 1,000 idle processes, where
//! scanning them in place costs a few page faults.

use std::os::fd::{AsFd as _, AsRawFd as _};

use aya::{maps::MapData, Pod};

/// How many of the `len` elements of array `map` satisfy `f`, read in place; `None` when
/// the map cannot be mapped (made without `BPF_F_MMAPABLE`), for the caller to read it
/// otherwise. The mapping lasts only for the scan, so its pages do not stay in the daemon's
/// resident memory.
pub fn count<V: Pod>(map: &MapData, len: u32, f: impl Fn(&V) -> bool) -> Option<u64> {
    // The kernel lays elements out at their size rounded up to 8 bytes.
    let stride = std::mem::size_of::<V>().next_multiple_of(8);
    if stride != std::mem::size_of::<V>() || std::mem::align_of::<V>() > 8 {
        return None;
    }
    let bytes = stride.checked_mul(len as usize)?;
    if bytes == 0 {
        return Some(0);
    }
    let fd = map.fd().as_fd().as_raw_fd();
    // SAFETY: a fresh read-only shared mapping of the map's fd, of the map's own size; the
    // kernel refuses it (MAP_FAILED) for a map that is not mappable or is smaller.
    let at = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            bytes,
            libc::PROT_READ,
            libc::MAP_SHARED,
            fd,
            0,
        )
    };
    if at == libc::MAP_FAILED {
        return None;
    }
    let n = (0..len as usize)
        .filter(|&i| {
            // SAFETY: the mapping holds `len` elements of `V` (the typed map checked the value
            // size, and the stride is the size), is page-aligned, and lives until the munmap
            // below. The programs write it meanwhile: each element is read with a volatile
            // copy, and a torn read only changes whether that one element counts.
            let v = unsafe { std::ptr::read_volatile(at.cast::<V>().add(i)) };
            f(&v)
        })
        .count() as u64;
    // SAFETY: unmaps exactly the mapping made above.
    unsafe { libc::munmap(at, bytes) };
    Some(n)
}

#[cfg(test)]
mod tests {
    use aya::maps::{Array, IterableMap as _};
    use monitor_common::block::RqSlot;

    use super::*;

    /// include/uapi/linux/bpf.h.
    const BPF_F_MMAPABLE: u32 = 1 << 10;

    /// A real array map (the tests run as root), written through `bpf(2)` and counted in
    /// place: the count is what was written, and an array made without the flag is refused.
    #[test]
    fn counts_in_place_what_was_written() {
        let mut a = Array::<MapData, RqSlot>::create(4096, BPF_F_MMAPABLE)
            .expect("making a mappable array (needs root)");
        let taken = [0u32, 1, 2, 511, 512, 4095];
        for (n, &i) in taken.iter().enumerate() {
            let slot = RqSlot {
                rq: 0xffff_8880_0000_0000 + n as u64,
                tgid: 7,
                ..Default::default()
            };
            a.set(i, slot, 0).unwrap();
        }
        let is_taken = |s: &RqSlot| s.rq != 0;
        assert_eq!(count(a.map(), 4096, is_taken), Some(taken.len() as u64));
        assert_eq!(count(a.map(), 4096, |s: &RqSlot| s.tgid == 7), Some(6));
        // Larger than the map: the kernel refuses the mapping.
        assert_eq!(count(a.map(), 8192, is_taken), None);

        let plain = Array::<MapData, RqSlot>::create(16, 0).unwrap();
        assert_eq!(count(plain.map(), 16, is_taken), None);
    }
}
