//! Types read by both the kernel programs and the daemon.
//!
//! Every type here is `#[repr(C)]` with fixed-width fields and explicit padding, and its size
//! is checked at compile time: the two sides are built by different compilers for different
//! targets, and a silent layout drift would corrupt every figure.
#![no_std]

pub mod audit;
pub mod block;
pub mod event;
pub mod health;
pub mod hist;
pub mod hooks;
pub mod maps;
pub mod net;
pub mod sched;
pub mod service;

#[cfg(feature = "user")]
mod pod {
    // SAFETY: each type is `#[repr(C)]`, made only of integers and byte arrays, with no
    // implicit padding (sizes asserted next to each definition), so any bit pattern is valid.
    unsafe impl aya::Pod for crate::sched::TaskStats {}
    // SAFETY: as above.
    unsafe impl aya::Pod for crate::sched::CpuSlot {}
    // SAFETY: as above.
    unsafe impl aya::Pod for crate::sched::SchedLayout {}
    // SAFETY: as above.
    unsafe impl aya::Pod for crate::sched::ThreadState {}
    // SAFETY: as above.
    unsafe impl aya::Pod for crate::sched::RunqHist {}
    // SAFETY: as above.
    unsafe impl aya::Pod for crate::block::DiskKey {}
    // SAFETY: as above.
    unsafe impl aya::Pod for crate::block::BlockTaskCounters {}
    // SAFETY: as above.
    unsafe impl aya::Pod for crate::block::DiskStats {}
    // SAFETY: as above.
    unsafe impl aya::Pod for crate::block::RequestKey {}
    // SAFETY: as above.
    unsafe impl aya::Pod for crate::block::RequestState {}
    // SAFETY: as above.
    unsafe impl aya::Pod for crate::block::RqSlot {}
    // SAFETY: as above.
    unsafe impl aya::Pod for crate::block::BlockLayout {}
    // SAFETY: as above.
    unsafe impl aya::Pod for crate::audit::KernelOffsets {}
    // SAFETY: as above.
    unsafe impl aya::Pod for crate::audit::TraceFields {}
    // SAFETY: as above.
    unsafe impl aya::Pod for crate::audit::AuditScope {}
    // SAFETY: as above.
    unsafe impl aya::Pod for crate::audit::SockOwner {}
    // SAFETY: as above.
    unsafe impl aya::Pod for crate::net::NetCounters {}
    // SAFETY: as above.
    unsafe impl aya::Pod for crate::net::NetLayout {}
    // SAFETY: as above.
    unsafe impl aya::Pod for crate::service::ServiceKey {}
    // SAFETY: as above.
    unsafe impl aya::Pod for crate::service::ServiceStats {}
    // SAFETY: as above.
    unsafe impl aya::Pod for crate::service::ServiceSock {}
    // SAFETY: as above.
    unsafe impl aya::Pod for crate::service::ServiceLayout {}
    // SAFETY: as above.
    unsafe impl aya::Pod for crate::hooks::HookLayout {}
}
