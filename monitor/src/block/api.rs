//! The block family's fields of a process in `/api/v1/processes`: `None` (left out) while
//! the family is off, or when read from a daemon that did not have them yet.

use serde::{Deserialize, Serialize};

use crate::{metrics::ns_to_seconds, process::counters::Counters};

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Fields {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disk_read_bytes_total: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disk_write_bytes_total: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disk_reads_total: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disk_writes_total: Option<u64>,
    /// Issue-to-completion time summed over the process's requests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disk_latency_seconds_total: Option<f64>,
}

impl Fields {
    pub fn of(c: &Counters) -> Self {
        let d = &c.disk;
        Self {
            disk_read_bytes_total: Some(d.read_bytes),
            disk_write_bytes_total: Some(d.write_bytes),
            disk_reads_total: Some(d.reads),
            disk_writes_total: Some(d.writes),
            disk_latency_seconds_total: Some(ns_to_seconds(d.read_ns + d.write_ns)),
        }
    }
}
