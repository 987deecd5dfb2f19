//! The block family: disk I/O measured in the kernel. Its programs are
//! `monitor-ebpf/src/block.rs`, its shared types `monitor-common/src/block.rs`; here are its
//! probes and map reader (`kernel`), its per-process counters (`counters`) and its
//! exposition (`collector`).

pub mod collector;
pub mod counters;
pub mod kernel;
