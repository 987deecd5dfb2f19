//! The network family: per-process traffic and TCP health measured in the kernel, and the
//! interfaces' own counters. Its programs are `monitor-ebpf/src/net.rs`, `tcp_health.rs`,
//! `sock.rs` and the TCP state program in `audit_tcp.rs`, its shared types
//! `monitor-common/src/net.rs`; here are its probes and map reader (`kernel`), the layout
//! the programs are handed at load time (`layout`), its steps in the loader and the
//! refresher (`family`), its per-process counter arithmetic (`counters`), its exposition
//! (`collector`), its fields of the process API (`api`), and `/proc/net/dev` (`netdev`, read by the
//! `netdev` collector) with the bytes no process accounts for (`unattributed`).

pub mod api;
pub mod collector;
pub mod counters;
pub mod family;
pub mod kernel;
pub mod layout;
pub mod netdev;
pub mod unattributed;
