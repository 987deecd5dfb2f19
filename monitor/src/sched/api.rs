//! The scheduler's fields of a process in `/api/v1/processes`. Every daemon has sent them:
//! they are required when a list is read back (a body without them is not a process list).

use serde::{Deserialize, Serialize};

use crate::{metrics::ns_to_seconds, process::counters::Counters};

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Fields {
    pub cpu_seconds_total: f64,
    pub runqueue_wait_seconds_total: f64,
    #[serde(default)]
    pub voluntary_switches_total: u64,
    #[serde(default)]
    pub involuntary_switches_total: u64,
}

impl Fields {
    pub fn of(c: &Counters) -> Self {
        Self {
            cpu_seconds_total: ns_to_seconds(c.cpu_ns),
            runqueue_wait_seconds_total: ns_to_seconds(c.runq_wait_ns),
            voluntary_switches_total: c.voluntary_switches,
            involuntary_switches_total: c.involuntary_switches,
        }
    }
}
