//! Kernel audit records decoded into the log's JSON events.

use std::{
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    time::{Duration, SystemTime},
};

use anyhow::{anyhow, bail};
use monitor_common::audit::{
    AuditHeader, AuditKind, ExecRecord, ExitRecord, OomRecord, TcpRecord, EXIT_HAS_CODE,
    EXIT_HAS_CPU, EXIT_HAS_PPID, EXIT_HAS_START, OOM_HAS_COMM, OOM_HAS_MEMORY, OOM_HAS_PGTABLES,
    OOM_HAS_SCORE_ADJ, OOM_HAS_UID,
};
use serde::Serialize;

use crate::process::identity::comm_str;

/// One audit log line. `pid`, `uid` and `comm` name the process the event is about (for an
/// OOM kill, the victim), which is what the filters match.
#[derive(Debug, Serialize)]
pub struct Event {
    pub time: String,
    pub kind: &'static str,
    pub pid: u32,
    pub uid: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gid: Option<u32>,
    pub comm: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cgroup_id: Option<u64>,
    #[serde(flatten)]
    pub detail: Detail,
}

#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum Detail {
    Exec {
        ppid: u32,
        filename: String,
        args: Vec<String>,
        /// The argv block was longer than the bytes kept.
        args_truncated: bool,
    },
    Exit {
        #[serde(skip_serializing_if = "Option::is_none")]
        ppid: Option<u32>,
        /// Set when the process exited by itself.
        #[serde(skip_serializing_if = "Option::is_none")]
        exit_code: Option<u32>,
        /// Set when a signal ended it.
        #[serde(skip_serializing_if = "Option::is_none")]
        signal: Option<u32>,
        #[serde(skip_serializing_if = "std::ops::Not::not")]
        core_dumped: bool,
        #[serde(skip_serializing_if = "Option::is_none")]
        lifetime_seconds: Option<f64>,
        #[serde(skip_serializing_if = "Option::is_none")]
        cpu_seconds: Option<f64>,
    },
    OomKill {
        #[serde(skip_serializing_if = "Option::is_none")]
        total_vm_bytes: Option<u64>,
        #[serde(skip_serializing_if = "Option::is_none")]
        anon_rss_bytes: Option<u64>,
        #[serde(skip_serializing_if = "Option::is_none")]
        file_rss_bytes: Option<u64>,
        #[serde(skip_serializing_if = "Option::is_none")]
        shmem_rss_bytes: Option<u64>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pgtables_bytes: Option<u64>,
        #[serde(skip_serializing_if = "Option::is_none")]
        oom_score_adj: Option<i32>,
        /// The task that ran the OOM killer.
        killer_pid: u32,
        killer_comm: String,
    },
    Tcp {
        family: &'static str,
        local_address: IpAddr,
        local_port: u16,
        remote_address: IpAddr,
        remote_port: u16,
        /// `tcp_sock.bytes_received` and `bytes_acked` (RFC 4898 counters): sequence space,
        /// so a FIN counts one byte, and for the connecting side the SYN one more.
        #[serde(skip_serializing_if = "Option::is_none")]
        bytes_received: Option<u64>,
        /// Bytes the peer acknowledged (`tcp_sock.bytes_acked`).
        #[serde(skip_serializing_if = "Option::is_none")]
        bytes_acked: Option<u64>,
        #[serde(skip_serializing_if = "Option::is_none")]
        duration_seconds: Option<f64>,
    },
}

/// Turns kernel monotonic timestamps into wall-clock times.
#[derive(Clone, Copy, Debug)]
pub struct Clock {
    wall: SystemTime,
    mono_ns: u64,
}

impl Clock {
    pub fn now() -> Self {
        Self {
            wall: SystemTime::now(),
            mono_ns: (crate::core::monotonic_seconds() * 1e9) as u64,
        }
    }

    pub fn wall(&self, ts_ns: u64) -> SystemTime {
        if ts_ns <= self.mono_ns {
            self.wall - Duration::from_nanos(self.mono_ns - ts_ns)
        } else {
            self.wall + Duration::from_nanos(ts_ns - self.mono_ns)
        }
    }
}

fn read<T: Copy>(bytes: &[u8]) -> anyhow::Result<T> {
    if bytes.len() < std::mem::size_of::<T>() {
        bail!(
            "record of {} bytes is shorter than {}",
            bytes.len(),
            std::any::type_name::<T>()
        );
    }
    // SAFETY: the length is checked above; the record types are `repr(C)` integers and byte
    // arrays, valid for any bit pattern; the ring buffer gives no alignment promise.
    Ok(unsafe { std::ptr::read_unaligned(bytes.as_ptr().cast::<T>()) })
}

fn seconds(ns: u64) -> f64 {
    ns as f64 / 1e9
}

/// The kind of a raw record, from its first word.
pub fn kind_of(bytes: &[u8]) -> Option<AuditKind> {
    AuditKind::from_u32(read::<u32>(bytes).ok()?)
}

/// Decodes one ring-buffer record.
pub fn decode(bytes: &[u8], clock: &Clock) -> anyhow::Result<Event> {
    let hdr: AuditHeader = read(bytes)?;
    let kind =
        AuditKind::from_u32(hdr.kind).ok_or_else(|| anyhow!("unknown record kind {}", hdr.kind))?;
    let mut ev = Event {
        time: humantime::format_rfc3339_micros(clock.wall(hdr.ts_ns)).to_string(),
        kind: kind.name(),
        pid: hdr.pid,
        uid: hdr.uid,
        gid: Some(hdr.gid),
        comm: comm_str(&hdr.comm),
        cgroup_id: Some(hdr.cgroup_id),
        detail: Detail::Exit {
            ppid: None,
            exit_code: None,
            signal: None,
            core_dumped: false,
            lifetime_seconds: None,
            cpu_seconds: None,
        },
    };
    ev.detail = match kind {
        AuditKind::Exec => {
            let r: ExecRecord = read(bytes)?;
            let n = (r.args_len as usize).min(r.args.len());
            let mut args: Vec<String> = r.args[..n]
                .split(|&c| c == 0)
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect();
            // The block ends with a NUL, which leaves one empty piece.
            if r.args[..n].last() == Some(&0) {
                args.pop();
            }
            Detail::Exec {
                ppid: r.ppid,
                filename: comm_str(&r.filename[..(r.filename_len as usize).min(r.filename.len())]),
                args,
                args_truncated: r.args_total > r.args_len,
            }
        }
        AuditKind::Exit => {
            let r: ExitRecord = read(bytes)?;
            let has = |bit| r.has & bit != 0;
            let status = r.exit_code;
            let signalled = status & 0x7f != 0;
            Detail::Exit {
                ppid: has(EXIT_HAS_PPID).then_some(r.ppid),
                exit_code: (has(EXIT_HAS_CODE) && !signalled).then_some((status >> 8) & 0xff),
                signal: (has(EXIT_HAS_CODE) && signalled).then_some(status & 0x7f),
                core_dumped: has(EXIT_HAS_CODE) && signalled && status & 0x80 != 0,
                lifetime_seconds: has(EXIT_HAS_START)
                    .then(|| seconds(r.hdr.ts_ns.saturating_sub(r.start_ns))),
                cpu_seconds: has(EXIT_HAS_CPU).then(|| seconds(r.cpu_ns)),
            }
        }
        AuditKind::OomKill => {
            let r: OomRecord = read(bytes)?;
            let has = |bit| r.has & bit != 0;
            // The sizes come from a tracepoint's record; a garbled one must not overflow.
            let kb = |v: u64, bit| has(bit).then_some(v.saturating_mul(1024));
            ev.pid = r.victim_pid;
            ev.comm = if has(OOM_HAS_COMM) {
                comm_str(&r.victim_comm)
            } else {
                String::new()
            };
            ev.uid = if has(OOM_HAS_UID) { r.victim_uid } else { 0 };
            ev.gid = None;
            ev.cgroup_id = None;
            Detail::OomKill {
                total_vm_bytes: kb(r.total_vm_kb, OOM_HAS_MEMORY),
                anon_rss_bytes: kb(r.anon_rss_kb, OOM_HAS_MEMORY),
                file_rss_bytes: kb(r.file_rss_kb, OOM_HAS_MEMORY),
                shmem_rss_bytes: kb(r.shmem_rss_kb, OOM_HAS_MEMORY),
                pgtables_bytes: kb(r.pgtables_kb, OOM_HAS_PGTABLES),
                oom_score_adj: has(OOM_HAS_SCORE_ADJ).then_some(r.oom_score_adj),
                killer_pid: r.hdr.pid,
                killer_comm: comm_str(&r.hdr.comm),
            }
        }
        AuditKind::TcpConnect | AuditKind::TcpAccept | AuditKind::TcpClose => {
            let r: TcpRecord = read(bytes)?;
            let (family, local, remote) = match r.family {
                2 => (
                    "ipv4",
                    IpAddr::V4(Ipv4Addr::new(
                        r.local_addr[0],
                        r.local_addr[1],
                        r.local_addr[2],
                        r.local_addr[3],
                    )),
                    IpAddr::V4(Ipv4Addr::new(
                        r.remote_addr[0],
                        r.remote_addr[1],
                        r.remote_addr[2],
                        r.remote_addr[3],
                    )),
                ),
                _ => (
                    "ipv6",
                    IpAddr::V6(Ipv6Addr::from(r.local_addr)),
                    IpAddr::V6(Ipv6Addr::from(r.remote_addr)),
                ),
            };
            let close = kind == AuditKind::TcpClose;
            Detail::Tcp {
                family,
                local_address: local,
                local_port: r.local_port,
                remote_address: remote,
                remote_port: r.remote_port,
                bytes_received: (close && r.has_bytes != 0).then_some(r.bytes_received),
                bytes_acked: (close && r.has_bytes != 0).then_some(r.bytes_acked),
                duration_seconds: close.then(|| seconds(r.duration_ns)),
            }
        }
    };
    Ok(ev)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes<T>(v: &T) -> Vec<u8> {
        // SAFETY: reading a plain `repr(C)` value as bytes.
        unsafe {
            std::slice::from_raw_parts((v as *const T).cast::<u8>(), std::mem::size_of::<T>())
        }
        .to_vec()
    }

    fn hdr(kind: AuditKind) -> AuditHeader {
        let mut comm = [0u8; 16];
        comm[..4].copy_from_slice(b"true");
        AuditHeader {
            kind: kind as u32,
            pid: 42,
            ts_ns: 5_000_000_000,
            uid: 1000,
            gid: 100,
            comm,
            cgroup_id: 7,
        }
    }

    #[test]
    fn exec_args_split_and_truncation() {
        let mut r = ExecRecord {
            hdr: hdr(AuditKind::Exec),
            ppid: 1,
            filename_len: 10,
            args_len: 9,
            args_total: 9,
            filename: [0; 256],
            args: [0; 512],
        };
        r.filename[..9].copy_from_slice(b"/bin/true");
        r.args[..9].copy_from_slice(b"true\0-a b");
        r.args_len = 9;
        let ev = decode(&bytes(&r), &Clock::now()).unwrap();
        let j = serde_json::to_value(&ev).unwrap();
        assert_eq!(j["kind"], "exec");
        assert_eq!(j["filename"], "/bin/true");
        assert_eq!(j["args"], serde_json::json!(["true", "-a b"]));
        assert_eq!(j["args_truncated"], false);
        r.args_total = 900;
        let j = serde_json::to_value(decode(&bytes(&r), &Clock::now()).unwrap()).unwrap();
        assert_eq!(j["args_truncated"], true);
    }

    #[test]
    fn exit_code_or_signal() {
        let mut r = ExitRecord {
            hdr: hdr(AuditKind::Exit),
            exit_code: 3 << 8,
            start_ns: 4_000_000_000,
            cpu_ns: 250_000_000,
            has: EXIT_HAS_CODE | EXIT_HAS_START | EXIT_HAS_CPU,
            ..Default::default()
        };
        let j = serde_json::to_value(decode(&bytes(&r), &Clock::now()).unwrap()).unwrap();
        assert_eq!(j["exit_code"], 3);
        assert!(j.get("signal").is_none());
        assert_eq!(j["lifetime_seconds"], 1.0);
        assert_eq!(j["cpu_seconds"], 0.25);
        r.exit_code = 9;
        let j = serde_json::to_value(decode(&bytes(&r), &Clock::now()).unwrap()).unwrap();
        assert_eq!(j["signal"], 9);
        assert!(j.get("exit_code").is_none());
    }

    #[test]
    fn short_or_unknown_records_are_errors() {
        assert!(decode(&[1, 0, 0], &Clock::now()).is_err());
        let mut h = hdr(AuditKind::Exec);
        h.kind = 99;
        assert!(decode(&bytes(&h), &Clock::now()).is_err());
    }

    /// Found by the kernel_record fuzz target: sizes in KiB near u64::MAX overflowed.
    #[test]
    fn oversized_oom_memory_saturates() {
        let r = OomRecord {
            hdr: hdr(AuditKind::OomKill),
            victim_pid: 42,
            victim_uid: 0,
            victim_comm: [0; 16],
            total_vm_kb: u64::MAX,
            anon_rss_kb: u64::MAX / 1000,
            file_rss_kb: 1,
            shmem_rss_kb: 0,
            pgtables_kb: 0,
            oom_score_adj: 0,
            has: OOM_HAS_MEMORY,
        };
        let j = serde_json::to_value(decode(&bytes(&r), &Clock::now()).unwrap()).unwrap();
        assert_eq!(j["total_vm_bytes"], u64::MAX);
        assert_eq!(j["file_rss_bytes"], 1024);
    }
}
