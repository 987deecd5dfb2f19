//! Kernel programs of `monitor`. Each program family lives in its own module; the maps they
//! share are in `maps`. Everything is aggregated here in the kernel: no per-event record ever
//! crosses to userspace for scheduler or block events.
#![no_std]
#![no_main]
// Inline asm for the atomic add in `sched_switch` (the eBPF crate builds with nightly).
#![feature(asm_experimental_arch)]

mod atomic;
mod audit;
mod audit_oom;
mod audit_proc;
mod audit_tcp;
mod block;
mod block_btf;
mod entry;
mod health;
mod hooks;
mod maps;
mod net;
mod proc_lifecycle;
mod read;
mod sched_switch;
mod sched_wakeup;
mod service;
mod sock;
mod task;
mod tcp_health;

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo<'_>) -> ! {
    // SAFETY: the verifier rejects any program with a reachable panic path, so this is never
    // reached at run time.
    unsafe { core::hint::unreachable_unchecked() }
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 4] = *b"GPL\0";
