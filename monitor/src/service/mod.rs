//! The service family: requests, response latency, HTTP status classes and errors per
//! listening port (inbound) and per remote port (outbound), and DNS over UDP, measured in
//! the kernel without instrumentation. Its programs are `monitor-ebpf/src/service.rs`, its
//! shared types `monitor-common/src/service.rs`; here are its probes and map reader
//! (`kernel`), the struct offsets the programs are handed (`layout`), the per-group totals
//! that survive exits (`totals`), its steps in the loader and the refresher (`family`) and
//! its exposition (`collector`).

pub mod collector;
pub mod family;
pub mod kernel;
pub mod layout;
pub mod totals;
