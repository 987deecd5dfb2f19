//! Who owns each TCP socket: remembered from process context (`connect()`, `listen()`, or
//! the first call seen on a socket opened before the programs attached), because most TCP
//! events run in softirq, where `current` is unrelated. Shared by the TCP state program
//! (which sets owners), the traffic programs and the retransmit and reset programs (which
//! charge them).

use aya_ebpf::{macros::map, maps::LruHashMap};
use monitor_common::{
    audit::{AuditKind, SockOwner},
    maps::{TCP_LISTENERS_CAPACITY, TCP_SOCKS_CAPACITY},
};

use crate::audit::{current_header, current_in_scope};

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

#[inline(always)]
pub fn current_owner() -> SockOwner {
    let h = current_header(AuditKind::TcpConnect);
    SockOwner {
        pid: h.pid,
        uid: h.uid,
        gid: h.gid,
        in_scope: u32::from(current_in_scope()),
        comm: h.comm,
        cgroup_id: h.cgroup_id,
        ..SockOwner::default()
    }
}
