//! The block family: disk I/O measured in the kernel. Its programs are
//! `monitor-ebpf/src/block.rs`, its shared types `monitor-common/src/block.rs`; here are its
//! probes and map reader (`kernel`), its steps in the loader and the refresher (`family`),
//! its per-process counters (`counters`), its exposition (`collector`) and its fields of the
//! process API (`api`).

pub mod api;
pub mod collector;
pub mod counters;
pub mod family;
pub mod kernel;
