//! Who owns each TCP socket: remembered from process context (`connect()`, `listen()`, or
//! the first call seen on a socket opened before the programs attached), because most TCP
//! events run in softirq, where `current` is unrelated. Shared by the TCP state program
//! (which sets owners), the traffic programs and the retransmit and reset programs (which
//! charge them).

use aya_ebpf::{
    helpers::{
        bpf_get_current_cgroup_id, bpf_get_current_comm, bpf_get_current_pid_tgid,
        bpf_get_current_uid_gid,
    },
    macros::map,
    maps::LruHashMap,
};
use monitor_common::{
    audit::SockOwner,
    maps::{TCP_LISTENERS_CAPACITY, TCP_SOCKS_CAPACITY},
};

use crate::audit::{audit_enabled, current_in_scope};

/// Owner of each tracked socket, keyed by its kernel address.
#[map(name = "TCP_SOCKS")]
pub static TCP_SOCKS: LruHashMap<u64, SockOwner> =
    LruHashMap::with_max_entries(TCP_SOCKS_CAPACITY, 0);

/// Owner of each listening socket, keyed by `family << 16 | port`.
#[map(name = "TCP_LISTENERS")]
pub static TCP_LISTENERS: LruHashMap<u32, SockOwner> =
    LruHashMap::with_max_entries(TCP_LISTENERS_CAPACITY, 0);

#[inline(always)]
pub fn listener_key(family: u16, port: u16) -> u32 {
    (u32::from(family) << 16) | u32::from(port)
}

/// The current task as a socket's owner: its thread group, and with the audit log on, the
/// identity its records carry (the daemon itself reads only the group and the state).
#[inline(always)]
pub fn current_owner() -> SockOwner {
    let pid = (bpf_get_current_pid_tgid() >> 32) as u32;
    if !audit_enabled() {
        return SockOwner {
            pid,
            ..SockOwner::default()
        };
    }
    let uid_gid = bpf_get_current_uid_gid();
    SockOwner {
        pid,
        uid: uid_gid as u32,
        gid: (uid_gid >> 32) as u32,
        in_scope: u32::from(current_in_scope()),
        comm: bpf_get_current_comm().unwrap_or_default(),
        // SAFETY: no preconditions.
        cgroup_id: unsafe { bpf_get_current_cgroup_id() },
        ..SockOwner::default()
    }
}
