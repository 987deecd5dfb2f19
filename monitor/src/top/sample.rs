//! Raw samples: figures as a source reports them (counters since some start, gauges), before
//! any rate is computed. A sample is one read of the process list plus the host's figures.

use std::time::Instant;

use anyhow::Context as _;

use crate::api::processes::{ProcessList, ProcessRow};

/// Host CPU time summed over CPUs, in seconds.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CpuTimes {
    /// Every mode but idle and iowait.
    pub busy: f64,
    pub total: f64,
    pub cpus: usize,
}

/// A histogram as cumulative counts per upper bound (the last bound is infinite), like
/// Prometheus's `_bucket{le=...}` series.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Histogram {
    pub buckets: Vec<(f64, f64)>,
    pub sum: f64,
}

impl Histogram {
    pub fn count(&self) -> f64 {
        self.buckets.last().map_or(0.0, |b| b.1)
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Memory {
    pub total_bytes: f64,
    pub available_bytes: f64,
}

/// Byte counters of a pair of directions: disk read/write, network receive/transmit.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Io {
    pub read: f64,
    pub write: f64,
}

/// One inbound service's counters as read (`monitor_service_*{port, group}`).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ServicePoint {
    pub port: String,
    pub group: String,
    pub requests: f64,
    /// Every kind summed: resets sent and received, unanswered closes.
    pub errors: f64,
    pub latency: Histogram,
}

/// Host-wide figures. Each is optional: a source may not have it (a remote daemon's memory,
/// a daemon run without its `cpu` collector).
#[derive(Clone, Debug, Default)]
pub struct HostSample {
    pub cpu: Option<CpuTimes>,
    pub runq: Option<Histogram>,
    pub memory: Option<Memory>,
    pub disk: Option<Io>,
    pub net: Option<Io>,
    /// The daemon's services, when it has the `service` collector (never standalone).
    pub services: Vec<ServicePoint>,
}

#[derive(Debug)]
pub struct Sample {
    /// When this process received it.
    pub at: Instant,
    /// When the source read the kernel (monotonic seconds), where it says.
    pub read_at: Option<f64>,
    /// Whether the kernel figures are measured (the daemon's `sched` collector is on).
    pub measured: bool,
    pub procs: Vec<ProcessRow>,
    pub host: HostSample,
    /// Something the source could not read, for the header (the sample is still usable).
    pub warning: Option<String>,
}

impl Sample {
    /// A sample of the daemon's process list, received at `at` (host figures left empty).
    pub fn from_list(list: ProcessList, at: Instant) -> Self {
        Self {
            at,
            read_at: list.read_at_monotonic_seconds,
            measured: list.measured,
            procs: list.processes,
            host: HostSample::default(),
            warning: None,
        }
    }

    /// Seconds between `earlier` and this sample, on the source's clock when both carry it.
    pub fn seconds_since(&self, earlier: &Sample) -> f64 {
        match (self.read_at, earlier.read_at) {
            (Some(a), Some(b)) => a - b,
            _ => self.at.saturating_duration_since(earlier.at).as_secs_f64(),
        }
    }
}

/// Parses a `/api/v1/processes` body into a sample (host figures left empty).
pub fn parse_processes(body: &[u8], at: Instant) -> anyhow::Result<Sample> {
    let list: ProcessList = serde_json::from_slice(body).context(
        "not a monitor process list (expected {\"measured\": ..., \"processes\": [...]})",
    )?;
    Ok(Sample::from_list(list, at))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_todays_api_and_later_fields() {
        let body = br#"{"measured":true,"read_at_monotonic_seconds":12.5,"processes":[
            {"pid":1,"ppid":0,"comm":"init","exe":"/sbin/init","cmdline":"/sbin/init","uid":0,
             "group":"init","cpu_seconds_total":1.5,"runqueue_wait_seconds_total":0.25,
             "voluntary_switches_total":10,"involuntary_switches_total":2},
            {"pid":2,"comm":"x","group":"x","cpu_seconds_total":0,"runqueue_wait_seconds_total":0,
             "rss_bytes":4096,"disk_read_bytes_total":100,"net_tx_bytes_total":7}]}"#;
        let s = parse_processes(body, Instant::now()).unwrap();
        assert!(s.measured);
        assert_eq!(s.read_at, Some(12.5));
        assert_eq!(s.procs.len(), 2);
        assert_eq!(&*s.procs[0].comm, "init");
        assert_eq!(s.procs[0].sched.cpu_seconds_total, 1.5);
        assert_eq!(s.procs[0].rss_bytes, None);
        assert_eq!(s.procs[1].rss_bytes, Some(4096));
        assert_eq!(s.procs[1].disk.disk_read_bytes_total, Some(100));
        assert_eq!(s.procs[1].net.net_tx_bytes_total, Some(7));
        // Absent optional figures stay absent when written back; memory is `null`, as the
        // daemon writes it for a process that just went.
        let json = serde_json::to_string(&s.procs[0]).unwrap();
        assert!(!json.contains("disk_read_bytes_total"), "{json}");
        assert!(json.contains(r#""rss_bytes":null"#), "{json}");
    }

    #[test]
    fn rejects_what_is_not_a_process_list() {
        for body in [
            &b"<html>nope</html>"[..],
            b"{}",
            b"{\"measured\":true,\"processes\":[{\"pid\":-1}]}",
            b"",
        ] {
            let e = parse_processes(body, Instant::now()).unwrap_err();
            assert!(
                format!("{e:#}").contains("not a monitor process list"),
                "{e:#}"
            );
        }
    }
}
