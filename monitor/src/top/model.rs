//! The computed model: one row per process (or per group) with its rates over the last
//! interval, and the host's figures; filtered, sorted and cut as asked.

use std::{
    cmp::Ordering,
    collections::{BTreeMap, HashMap},
};

use super::{
    columns::{Column, SortSpec},
    rates::{busy_percent, counter_delta, histogram_delta, per_second, quantile, rate},
    sample::Sample,
};
use crate::{api::processes::ProcessRow, process::group::users_from_passwd};

/// User names by uid; a uid without a name shows as its number.
#[derive(Default)]
pub struct Users(HashMap<u32, String>);

impl Users {
    pub fn from_passwd(passwd: &str) -> Self {
        Self(users_from_passwd(passwd))
    }

    pub fn name(&self, uid: u32) -> String {
        self.0.get(&uid).cloned().unwrap_or_else(|| uid.to_string())
    }
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Row {
    /// Process id (0 for a group).
    pub pid: u32,
    /// Processes in the row: 1, or the group's members.
    pub count: usize,
    /// The owner; `*` for a group of several owners.
    pub user: String,
    /// The process's name, or the group's.
    pub name: String,
    pub group: String,
    /// Its service, as the daemon sent it (empty when not known or not sent).
    pub unit: String,
    /// Where the process is in the current sample (`None` for a group).
    pub index: Option<usize>,
    pub cpu_percent: Option<f64>,
    pub wait_ms_per_second: Option<f64>,
    pub rss_bytes: Option<f64>,
    pub read_bytes_per_second: Option<f64>,
    pub write_bytes_per_second: Option<f64>,
    /// Disk latency seconds and I/Os completed over the interval: their ratio is the mean.
    pub disk_latency: Option<(f64, f64)>,
    pub rx_bytes_per_second: Option<f64>,
    pub tx_bytes_per_second: Option<f64>,
}

impl Row {
    /// Mean disk latency over the interval in ms; `None` without I/O to average.
    pub fn latency_ms(&self) -> Option<f64> {
        let (seconds, ios) = self.disk_latency?;
        (ios > 0.0).then(|| 1e3 * seconds / ios)
    }

    /// The figure a numeric column shows (text columns have none).
    pub fn value(&self, c: Column) -> Option<f64> {
        match c {
            Column::Pid if self.index.is_none() => Some(self.count as f64),
            Column::Pid => Some(f64::from(self.pid)),
            Column::Cpu => self.cpu_percent,
            Column::Wait => self.wait_ms_per_second,
            Column::Rss => self.rss_bytes,
            Column::Read => self.read_bytes_per_second,
            Column::Write => self.write_bytes_per_second,
            Column::Latency => self.latency_ms(),
            Column::Rx => self.rx_bytes_per_second,
            Column::Tx => self.tx_bytes_per_second,
            Column::User | Column::Name => None,
        }
    }
}

/// One row per process of `cur`, with rates since `prev` (none without it).
pub fn process_rows(prev: Option<&Sample>, cur: &Sample, users: &Users) -> Vec<Row> {
    let seconds = prev.map(|p| cur.seconds_since(p));
    let before: HashMap<u32, &ProcessRow> = prev
        .map(|p| p.procs.iter().map(|x| (x.pid, x)).collect())
        .unwrap_or_default();
    cur.procs
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let old = before.get(&p.pid).copied();
            // A pid missing from the previous sample started since: all of its counts are
            // new. No previous sample at all: no rate yet.
            let earlier = |f: fn(&ProcessRow) -> Option<f64>| match old {
                Some(o) => f(o),
                None => Some(0.0),
            };
            let r = |f: fn(&ProcessRow) -> Option<f64>| rate(earlier(f), f(p), seconds?);
            let disk_latency = (|| {
                seconds?;
                let ios = |x: &ProcessRow| {
                    Some(float(x.disk.disk_reads_total)? + float(x.disk.disk_writes_total)?)
                };
                let lat = |x: &ProcessRow| x.disk.disk_latency_seconds_total;
                let d_ios = counter_delta(earlier(ios)?, ios(p)?);
                let d_lat = counter_delta(earlier(lat)?, lat(p)?);
                Some((d_lat, d_ios))
            })();
            Row {
                pid: p.pid,
                count: 1,
                user: users.name(p.uid),
                name: p.comm.to_string(),
                group: p.group.to_string(),
                unit: p.unit.to_string(),
                index: Some(i),
                cpu_percent: r(|x| Some(x.sched.cpu_seconds_total)).map(|v| 100.0 * v),
                wait_ms_per_second: r(|x| Some(x.sched.runqueue_wait_seconds_total))
                    .map(|v| 1e3 * v),
                rss_bytes: float(p.rss_bytes),
                read_bytes_per_second: r(|x| float(x.disk.disk_read_bytes_total)),
                write_bytes_per_second: r(|x| float(x.disk.disk_write_bytes_total)),
                disk_latency,
                rx_bytes_per_second: r(|x| float(x.net.net_rx_bytes_total)),
                tx_bytes_per_second: r(|x| float(x.net.net_tx_bytes_total)),
            }
        })
        .collect()
}

/// A byte or request count as a figure (exact below 2^53, far above any real count).
fn float(v: Option<u64>) -> Option<f64> {
    v.map(|v| v as f64)
}

fn add(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a + b),
        (a, None) => a,
        (None, b) => b,
    }
}

/// One row per group: its processes' figures added up.
/// What `monitor top --group-by` groups rows by.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum GroupKey {
    /// The daemon's group (its `--process.group-by`).
    #[default]
    Daemon,
    /// The process's service (`unit`), whatever the daemon groups by.
    Unit,
}

/// Sets each row's group by `key`: under `Unit`, its unit (`unknown` where the daemon sent
/// none).
pub fn regroup(rows: &mut [Row], key: GroupKey) {
    if key == GroupKey::Unit {
        for r in rows {
            r.group = if r.unit.is_empty() {
                crate::process::group::UNKNOWN_UNIT.to_string()
            } else {
                r.unit.clone()
            };
        }
    }
}

pub fn group_rows(rows: &[Row]) -> Vec<Row> {
    let mut groups: BTreeMap<&str, Row> = BTreeMap::new();
    for r in rows {
        let g = groups.entry(&r.group).or_insert_with(|| Row {
            user: r.user.clone(),
            name: r.group.clone(),
            group: r.group.clone(),
            ..Default::default()
        });
        g.count += 1;
        if g.user != r.user {
            g.user = "*".to_string();
        }
        g.cpu_percent = add(g.cpu_percent, r.cpu_percent);
        g.wait_ms_per_second = add(g.wait_ms_per_second, r.wait_ms_per_second);
        g.rss_bytes = add(g.rss_bytes, r.rss_bytes);
        g.read_bytes_per_second = add(g.read_bytes_per_second, r.read_bytes_per_second);
        g.write_bytes_per_second = add(g.write_bytes_per_second, r.write_bytes_per_second);
        g.disk_latency = match (g.disk_latency, r.disk_latency) {
            (Some(a), Some(b)) => Some((a.0 + b.0, a.1 + b.1)),
            (a, b) => a.or(b),
        };
        g.rx_bytes_per_second = add(g.rx_bytes_per_second, r.rx_bytes_per_second);
        g.tx_bytes_per_second = add(g.tx_bytes_per_second, r.tx_bytes_per_second);
    }
    groups.into_values().collect()
}

/// Rows without a figure sort last whichever the direction; ties go by pid, then name.
fn compare(a: &Row, b: &Row, spec: SortSpec) -> Ordering {
    let ord = match spec.column {
        Column::User => a.user.cmp(&b.user),
        Column::Name => a.name.cmp(&b.name),
        c => match (a.value(c), b.value(c)) {
            (Some(x), Some(y)) => x.total_cmp(&y),
            (Some(_), None) => return Ordering::Less,
            (None, Some(_)) => return Ordering::Greater,
            (None, None) => Ordering::Equal,
        },
    };
    let ord = if spec.descending { ord.reverse() } else { ord };
    ord.then(a.pid.cmp(&b.pid))
        .then_with(|| a.name.cmp(&b.name))
}

/// Keeps the rows whose name holds `filter` (case-insensitive), sorted, at most `limit`.
pub fn select(mut rows: Vec<Row>, filter: &str, sort: SortSpec, limit: Option<usize>) -> Vec<Row> {
    if !filter.is_empty() {
        let needle = filter.to_lowercase();
        rows.retain(|r| r.name.to_lowercase().contains(&needle));
    }
    rows.sort_by(|a, b| compare(a, b, sort));
    if let Some(n) = limit {
        rows.truncate(n);
    }
    rows
}

/// Host figures over the last interval.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct HostView {
    pub cpu_busy_percent: Option<f64>,
    pub cpus: Option<usize>,
    pub runq_p50: Option<f64>,
    pub runq_p99: Option<f64>,
    pub runq_waits_per_second: Option<f64>,
    pub memory_used: Option<f64>,
    pub memory_total: Option<f64>,
    pub disk_read: Option<f64>,
    pub disk_write: Option<f64>,
    pub net_rx: Option<f64>,
    pub net_tx: Option<f64>,
}

pub fn host_view(prev: Option<&Sample>, cur: &Sample) -> HostView {
    let h = &cur.host;
    let before = prev.map(|p| &p.host);
    // Host figures are read when the sample is taken, so its local time is their time base.
    let seconds = prev.map_or(0.0, |p| {
        cur.at.saturating_duration_since(p.at).as_secs_f64()
    });
    let io = |f: fn(&super::sample::HostSample) -> Option<super::sample::Io>| {
        let (a, b) = (before.and_then(f), f(h));
        (
            rate(a.map(|x| x.read), b.map(|x| x.read), seconds),
            rate(a.map(|x| x.write), b.map(|x| x.write), seconds),
        )
    };
    let (disk_read, disk_write) = io(|h| h.disk);
    let (net_rx, net_tx) = io(|h| h.net);
    let runq = match (before.and_then(|b| b.runq.as_ref()), h.runq.as_ref()) {
        (Some(a), Some(b)) => Some(histogram_delta(Some(a), b)),
        _ => None,
    };
    HostView {
        cpu_busy_percent: match (before.and_then(|b| b.cpu), h.cpu) {
            (Some(a), Some(b)) => busy_percent(&a, &b),
            _ => None,
        },
        cpus: h.cpu.map(|c| c.cpus),
        runq_p50: runq.as_ref().and_then(|d| quantile(0.5, d)),
        runq_p99: runq.as_ref().and_then(|d| quantile(0.99, d)),
        runq_waits_per_second: runq.as_ref().and_then(|d| per_second(d.count(), seconds)),
        memory_used: h
            .memory
            .map(|m| (m.total_bytes - m.available_bytes).max(0.0)),
        memory_total: h.memory.map(|m| m.total_bytes),
        disk_read,
        disk_write,
        net_rx,
        net_tx,
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;
    use crate::top::sample::{CpuTimes, HostSample, Io};

    fn proc(pid: u32, comm: &str, cpu: f64) -> ProcessRow {
        ProcessRow {
            pid,
            comm: comm.into(),
            group: comm.into(),
            sched: crate::sched::api::Fields {
                cpu_seconds_total: cpu,
                runqueue_wait_seconds_total: cpu / 10.0,
                ..Default::default()
            },
            ..Default::default()
        }
    }

    fn sample(at: Instant, read_at: f64, procs: Vec<ProcessRow>) -> Sample {
        Sample {
            at,
            read_at: Some(read_at),
            measured: true,
            procs,
            host: HostSample::default(),
            warning: None,
        }
    }

    #[test]
    fn rates_between_two_samples() {
        let t = Instant::now();
        let a = sample(t, 100.0, vec![proc(1, "init", 1.0), proc(7, "old", 5.0)]);
        let mut p2 = proc(2, "new", 0.5);
        p2.disk.disk_read_bytes_total = Some(4096);
        let b = sample(
            t + Duration::from_secs(3),
            // The source's own clock says 2 s passed: that is the time base.
            102.0,
            vec![proc(1, "init", 2.0), p2, proc(7, "reused", 1.0)],
        );
        let users = Users::from_passwd("root:x:0:0::/root:/bin/sh\n");
        let rows = process_rows(Some(&a), &b, &users);
        assert_eq!(rows[0].cpu_percent, Some(50.0));
        assert_eq!(rows[0].wait_ms_per_second, Some(50.0));
        assert_eq!(rows[0].user, "root");
        // New since the last sample: all of its time is in this interval.
        assert_eq!(rows[1].cpu_percent, Some(25.0));
        assert_eq!(rows[1].read_bytes_per_second, Some(2048.0));
        // Absent figures stay absent.
        assert_eq!(rows[0].read_bytes_per_second, None);
        assert_eq!(rows[0].rss_bytes, None);
        // A counter that went down (reused pid): counted from zero.
        assert_eq!(rows[2].cpu_percent, Some(50.0));
        // No previous sample: no rates.
        assert!(process_rows(None, &b, &users)
            .iter()
            .all(|r| r.cpu_percent.is_none()));
        // No time passed: no rates rather than infinities.
        let same = sample(t, 100.0, vec![proc(1, "init", 2.0)]);
        assert_eq!(process_rows(Some(&a), &same, &users)[0].cpu_percent, None);
    }

    #[test]
    fn disk_latency_is_time_over_ios() {
        let t = Instant::now();
        let with = |lat: f64, reads: u64| ProcessRow {
            disk: crate::block::api::Fields {
                disk_latency_seconds_total: Some(lat),
                disk_reads_total: Some(reads),
                disk_writes_total: Some(0),
                ..Default::default()
            },
            ..proc(3, "db", 0.0)
        };
        let a = sample(t, 0.0, vec![with(1.0, 100)]);
        let b = sample(t, 1.0, vec![with(1.5, 200)]);
        let r = &process_rows(Some(&a), &b, &Users::default())[0];
        assert_eq!(r.latency_ms(), Some(5.0));
        let idle = &process_rows(Some(&b), &b, &Users::default())[0];
        assert_eq!(idle.latency_ms(), None);
    }

    fn row(pid: u32, name: &str, group: &str, cpu: Option<f64>) -> Row {
        Row {
            pid,
            count: 1,
            user: "root".into(),
            name: name.into(),
            group: group.into(),
            index: Some(pid as usize),
            cpu_percent: cpu,
            ..Default::default()
        }
    }

    #[test]
    fn sort_filter_and_limit() {
        let rows = vec![
            row(3, "bash", "bash", Some(1.0)),
            row(1, "init", "init", None),
            row(2, "spin", "spin", Some(99.0)),
            row(4, "Spinner", "spin", Some(1.0)),
        ];
        let pids = |rows: &[Row]| rows.iter().map(|r| r.pid).collect::<Vec<_>>();
        let by_cpu = select(rows.clone(), "", SortSpec::natural(Column::Cpu), None);
        // Busiest first, ties by pid, unmeasured last.
        assert_eq!(pids(&by_cpu), [2, 3, 4, 1]);
        let asc = SortSpec {
            column: Column::Cpu,
            descending: false,
        };
        assert_eq!(pids(&select(rows.clone(), "", asc, None)), [3, 4, 2, 1]);
        let by_pid = select(rows.clone(), "", SortSpec::natural(Column::Pid), Some(2));
        assert_eq!(pids(&by_pid), [1, 2]);
        let by_name = select(rows.clone(), "", SortSpec::natural(Column::Name), None);
        assert_eq!(pids(&by_name), [4, 3, 1, 2]);
        let spin = select(rows, "SPIN", SortSpec::natural(Column::Cpu), None);
        assert_eq!(pids(&spin), [2, 4]);
    }

    #[test]
    fn groups_add_up_their_processes() {
        let mut b = row(4, "spin2", "spin", Some(1.0));
        b.user = "bob".into();
        let rows = vec![
            row(2, "spin", "spin", Some(99.0)),
            b,
            row(3, "bash", "bash", None),
        ];
        let g = group_rows(&rows);
        assert_eq!(g.len(), 2);
        let mut by_unit = rows.clone();
        by_unit[0].unit = "spin.service".into();
        by_unit[1].unit = "spin.service".into();
        regroup(&mut by_unit, GroupKey::Unit);
        let u = group_rows(&by_unit);
        let names: Vec<&str> = u.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["spin.service", "unknown"]);
        assert_eq!(u[0].cpu_percent, Some(100.0));
        let spin = g.iter().find(|r| r.name == "spin").unwrap();
        assert_eq!(spin.count, 2);
        assert_eq!(spin.cpu_percent, Some(100.0));
        assert_eq!(spin.user, "*");
        assert_eq!(spin.value(Column::Pid), Some(2.0));
        let bash = g.iter().find(|r| r.name == "bash").unwrap();
        assert_eq!(bash.cpu_percent, None);
        assert_eq!(bash.user, "root");
    }

    #[test]
    fn host_view_over_the_interval() {
        let t = Instant::now();
        let mut a = sample(t, 0.0, vec![]);
        a.host.cpu = Some(CpuTimes {
            busy: 10.0,
            total: 100.0,
            cpus: 2,
        });
        a.host.disk = Some(Io {
            read: 0.0,
            write: 1000.0,
        });
        let mut b = sample(t + Duration::from_secs(2), 0.0, vec![]);
        b.host.cpu = Some(CpuTimes {
            busy: 11.0,
            total: 104.0,
            cpus: 2,
        });
        b.host.disk = Some(Io {
            read: 4096.0,
            write: 1000.0,
        });
        let v = host_view(Some(&a), &b);
        assert_eq!(v.cpu_busy_percent, Some(25.0));
        assert_eq!(v.cpus, Some(2));
        assert_eq!(v.disk_read, Some(2048.0));
        assert_eq!(v.disk_write, Some(0.0));
        assert_eq!(v.net_rx, None);
        assert_eq!(v.runq_p50, None);
        let first = host_view(None, &b);
        assert_eq!(first.cpu_busy_percent, None);
        assert_eq!(first.cpus, Some(2));
    }
}
