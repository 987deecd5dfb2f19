//! The scheduler family: CPU time, run-queue wait, context switches, process starts, exits
//! and OOM kills, measured in the kernel. Its programs are `monitor-ebpf/src/sched_switch.rs`,
//! `sched_wakeup.rs` and `proc_lifecycle.rs`, its shared types `monitor-common/src/sched.rs`
//! and `event.rs`; here are its probes and map reader (`kernel`), the slice in progress
//! (`running`) and its exposition (`collector`).

pub mod collector;
pub mod kernel;
pub mod running;
