//! The per-process model: who each thread group is (from procfs), which group it belongs
//! to, and its kernel-measured totals, folded into per-group totals that never go backwards.

pub mod budget;
pub mod cgroup;
pub mod counters;
pub mod family;
pub mod group;
pub mod identity;
pub mod live;
pub mod memory;
pub mod resident;
pub mod shrink;
pub mod table;
pub mod unit;
