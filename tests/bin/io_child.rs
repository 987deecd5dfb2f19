//! A workload whose I/O and memory the disk tests know exactly:
//! `io-child DEVICE WRITE_BYTES READ_BYTES CHUNK_BYTES RESIDENT_MIB`
//! writes then reads the device with O_DIRECT (every byte reaches the disk as a request of
//! CHUNK_BYTES), fsyncs it, touches RESIDENT_MIB of memory, prints "ready" and waits for its
//! stdin to close before exiting.

use std::{
    alloc::{alloc_zeroed, Layout},
    fs::OpenOptions,
    io::{Read as _, Write as _},
    os::unix::fs::{FileExt as _, OpenOptionsExt as _},
};

fn arg(i: usize) -> u64 {
    std::env::args()
        .nth(i)
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("argument {i} missing or not a number"))
}

fn main() {
    let dev = std::env::args().nth(1).expect("device path");
    let (write, read, chunk, mib) = (arg(2), arg(3), arg(4) as usize, arg(5) as usize);
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_DIRECT)
        .open(&dev)
        .unwrap_or_else(|e| panic!("opening {dev}: {e}"));
    // O_DIRECT needs a buffer aligned to the logical block size; a page covers every device.
    let layout = Layout::from_size_align(chunk, 4096).unwrap();
    // SAFETY: a non-zero size (chunk > 0, checked by the layout's use below).
    let buf = unsafe { std::slice::from_raw_parts_mut(alloc_zeroed(layout), chunk) };
    buf.fill(0x5a);
    let mut off = 0;
    while off < write {
        f.write_all_at(buf, off).expect("direct write");
        off += chunk as u64;
    }
    off = 0;
    while off < read {
        f.read_exact_at(buf, off).expect("direct read");
        off += chunk as u64;
    }
    f.sync_all().expect("fsync");
    let mut resident = vec![0u8; mib << 20];
    for p in resident.chunks_mut(4096) {
        p[0] = 1;
    }
    println!("ready");
    std::io::stdout().flush().unwrap();
    let _ = std::io::stdin().read(&mut [0]);
    std::hint::black_box(&resident);
}
