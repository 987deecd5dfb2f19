//! The network family's fields of a process in `/api/v1/processes`: TCP and UDP payload
//! bytes and packets; `None` (left out) while the family is off, or when read from a
//! daemon that did not have them yet.

use serde::{Deserialize, Serialize};

use crate::process::counters::Counters;

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Fields {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub net_tx_bytes_total: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub net_rx_bytes_total: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub net_tx_packets_total: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub net_rx_packets_total: Option<u64>,
}

impl Fields {
    pub fn of(c: &Counters) -> Self {
        let (tx, rx) = super::counters::bytes(&c.net);
        let (tx_packets, rx_packets) = super::counters::packets(&c.net);
        Self {
            net_tx_bytes_total: Some(tx),
            net_rx_bytes_total: Some(rx),
            net_tx_packets_total: Some(tx_packets),
            net_rx_packets_total: Some(rx_packets),
        }
    }
}
