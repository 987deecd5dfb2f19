//! The network collectors' kernel side and arithmetic: which programs serve each measure,
//! the layout they are handed at load time, their maps, and per-process network counters.

pub mod counters;
pub mod kernel;
pub mod layout;
pub mod netdev;
pub mod unattributed;
