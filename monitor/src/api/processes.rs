//! The body of `/api/v1/processes`: built by the daemon's refresher (`Core::read`), its memory
//! figures read when it is asked for, encoded by `http`, and decoded by `monitor top` (or
//! handed to it as is when top runs standalone).
//! One type for both ends, so the list the daemon serves and the one top reads cannot drift.
//!
//! top may read a daemon of another version (a remote `--url`), so decoding is lenient where
//! the list has grown: figures that later collectors added (memory, disk, network) read as
//! `None` when a daemon does not send them, which top shows as not measured rather than as
//! zero; identity fields added later read as their default. The fields every daemon has sent
//! are required, so a body that is not a process list is rejected.

use std::{path::Path, sync::Arc};

use serde::{Deserialize, Serialize};

/// The body of `/api/v1/processes`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ProcessList {
    /// Whether the per-process kernel figures are being measured (the `sched` collector).
    pub measured: bool,
    /// When the figures were read, on the kernel's monotonic clock (seconds since boot): the
    /// time base for rates, as a response can be up to one refresh older than the request.
    /// The daemon always sends it; absent from daemons older than `monitor top`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_at_monotonic_seconds: Option<f64>,
    /// Sorted by pid.
    pub processes: Vec<ProcessRow>,
}

impl ProcessList {
    /// Reads each process's `rss_bytes` and `swap_bytes` from `<procfs>/<pid>/status`
    /// (`None` for a process that exited since the list was made).
    pub fn read_memory(&mut self, procfs: &Path) {
        for p in &mut self.processes {
            let mem = crate::process::memory::read(procfs, p.pid);
            p.rss_bytes = mem.map(|m| m.rss_bytes);
            p.swap_bytes = mem.map(|m| m.swap_bytes);
        }
    }
}

/// One live process. Field names and order are the API's.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ProcessRow {
    pub pid: u32,
    #[serde(default)]
    pub ppid: u32,
    /// Shared with the process table (the list is made at every refresh: a reference
    /// count, not a copy of each process's command line).
    pub comm: Arc<str>,
    #[serde(default)]
    pub exe: Arc<str>,
    #[serde(default)]
    pub cmdline: Arc<str>,
    #[serde(default)]
    pub uid: u32,
    pub group: Arc<str>,
    /// Its service (`process::unit`): a systemd unit, container, pod or cgroup path, from
    /// the cgroup the kernel saw it in at exec or first run; empty when not known.
    #[serde(default)]
    pub unit: Arc<str>,
    /// That cgroup's path in the cgroup2 hierarchy; empty when not known.
    #[serde(default)]
    pub cgroup: Arc<str>,
    /// Each family's fields, in the API's order (see each family's `api`).
    #[serde(flatten)]
    pub sched: crate::sched::api::Fields,
    /// From /proc/<pid>/status when the list is asked for; `null` if the process just went.
    #[serde(default)]
    pub rss_bytes: Option<u64>,
    #[serde(default)]
    pub swap_bytes: Option<u64>,
    #[serde(flatten)]
    pub disk: crate::block::api::Fields,
    #[serde(flatten)]
    pub net: crate::net::api::Fields,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row() -> ProcessRow {
        ProcessRow {
            pid: 42,
            ppid: 1,
            comm: "db".into(),
            exe: "/usr/bin/db".into(),
            cmdline: "db --serve".into(),
            uid: 1000,
            group: "db".into(),
            unit: "db.service".into(),
            cgroup: "/system.slice/db.service".into(),
            sched: crate::sched::api::Fields {
                cpu_seconds_total: 1.5,
                runqueue_wait_seconds_total: 0.25,
                voluntary_switches_total: 10,
                involuntary_switches_total: 2,
            },
            rss_bytes: Some(4096),
            swap_bytes: None,
            disk: crate::block::api::Fields {
                disk_read_bytes_total: Some(8192),
                disk_write_bytes_total: Some(0),
                disk_reads_total: Some(2),
                disk_writes_total: Some(0),
                disk_latency_seconds_total: Some(0.5),
            },
            net: crate::net::api::Fields {
                net_tx_bytes_total: Some(7),
                net_rx_bytes_total: Some(0),
                net_tx_packets_total: Some(1),
                net_rx_packets_total: Some(0),
            },
        }
    }

    /// The wire format, field for field: names, order, integers as integers, and a memory
    /// figure of a process that went as `null`.
    #[test]
    fn the_daemon_writes_the_api_fields() {
        let list = ProcessList {
            measured: true,
            read_at_monotonic_seconds: Some(12.5),
            processes: vec![row()],
        };
        assert_eq!(
            serde_json::to_string(&list).unwrap(),
            concat!(
                r#"{"measured":true,"read_at_monotonic_seconds":12.5,"processes":[{"#,
                r#""pid":42,"ppid":1,"comm":"db","exe":"/usr/bin/db","cmdline":"db --serve","#,
                r#""uid":1000,"group":"db","unit":"db.service","#,
                r#""cgroup":"/system.slice/db.service","cpu_seconds_total":1.5,"#,
                r#""runqueue_wait_seconds_total":0.25,"voluntary_switches_total":10,"#,
                r#""involuntary_switches_total":2,"rss_bytes":4096,"swap_bytes":null,"#,
                r#""disk_read_bytes_total":8192,"disk_write_bytes_total":0,"#,
                r#""disk_reads_total":2,"disk_writes_total":0,"#,
                r#""disk_latency_seconds_total":0.5,"net_tx_bytes_total":7,"#,
                r#""net_rx_bytes_total":0,"net_tx_packets_total":1,"net_rx_packets_total":0}]}"#,
            )
        );
    }

    #[test]
    fn what_is_written_reads_back_the_same() {
        let list = ProcessList {
            measured: false,
            read_at_monotonic_seconds: Some(3.0),
            processes: vec![row(), ProcessRow::default()],
        };
        let back: ProcessList =
            serde_json::from_str(&serde_json::to_string(&list).unwrap()).unwrap();
        assert_eq!(back, list);
    }

    #[test]
    fn fields_a_daemon_did_not_send_read_as_absent() {
        let list: ProcessList = serde_json::from_str(
            r#"{"measured":true,"processes":[{"pid":1,"comm":"init","group":"init",
                "cpu_seconds_total":1,"runqueue_wait_seconds_total":0}]}"#,
        )
        .unwrap();
        assert_eq!(list.read_at_monotonic_seconds, None);
        let p = &list.processes[0];
        assert_eq!(
            (p.ppid, &*p.exe, &*p.unit, p.sched.voluntary_switches_total),
            (0, "", "", 0)
        );
        assert_eq!(
            (
                p.rss_bytes,
                p.disk.disk_read_bytes_total,
                p.net.net_rx_packets_total
            ),
            (None, None, None)
        );
        // Written back, the counters stay absent (not zero).
        let json = serde_json::to_string(p).unwrap();
        assert!(!json.contains("disk_read_bytes_total"), "{json}");
    }
}
