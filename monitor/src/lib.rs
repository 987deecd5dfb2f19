//! The daemon and the CLI as a library: `main.rs` wires the commands, and the fuzz targets
//! (`fuzz/`) reach the parsers of outside input through `fuzzing`.

pub mod alert;
mod api;
mod assemble;
mod audit;
mod block;
pub mod bpf;
mod build_info;
pub mod cli;
mod collectors;
mod core;
pub mod dashboard;
pub mod fuzzing;
#[cfg(test)]
mod golden;
mod history;
mod http;
pub mod log;
mod logmatch;
mod metrics;
mod net;
mod page;
mod privilege;
mod process;
mod remote_write;
pub mod run;
mod sched;
mod scrape;
mod service;
mod snapshot;
mod startup_pages;
pub mod top;
mod web;
