//! The scheduler family: CPU time, run-queue wait, context switches, process starts, exits
//! and OOM kills, measured in the kernel. Its programs are `monitor-ebpf/src/sched_switch.rs`,
//! `sched_wakeup.rs` and `proc_lifecycle.rs`, its shared types `monitor-common/src/sched.rs`
//! and `event.rs`; here are its probes and map reader (`kernel`), its steps in the loader
//! and the refresher (`family`), the slice in progress (`running`), its exposition
//! (`collector`) and its fields of the process API (`api`).

pub mod api;
pub mod collector;
pub mod family;
pub mod kernel;
pub mod running;
