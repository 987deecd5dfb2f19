//! TCP connect, accept and close from `sock:inet_sock_set_state` (4.16+).
//!
//! The tracepoint fires in whatever context changed the state: process context for
//! `connect()` (CLOSE -> SYN_SENT), `listen()` (-> LISTEN) and `close()`, but softirq for the
//! active side's SYN_SENT -> ESTABLISHED and the passive side's SYN_RECV -> ESTABLISHED, where
//! `current` is whoever happened to run. So the owner is taken only in process context and
//! carried in two state maps: `TCP_SOCKS` by the socket's kernel address (connecting and
//! accepted sockets), `TCP_LISTENERS` by family and local port (an accepted socket belongs
//! to the process that listens on its port). Byte counts at close come from `tcp_sock` at
//! offsets found in the kernel's BTF.
//!
//! A later per-group TCP health measure can extend this same program and its maps.

use aya_ebpf::{
    helpers::bpf_ktime_get_ns,
    macros::{map, tracepoint},
    maps::LruHashMap,
    programs::TracePointContext,
};
use monitor_common::{
    audit::{tcp_state, AuditHeader, AuditKind, SockOwner, TcpRecord},
    maps::{TCP_LISTENERS_CAPACITY, TCP_SOCKS_CAPACITY},
};

use crate::{
    audit::{
        count_lost, current_header, current_in_scope, fields, global, offsets, read_field,
        AUDIT_EVENTS,
    },
    audit_oom::read,
};

const AF_INET: u16 = 2;
const AF_INET6: u16 = 10;
const IPPROTO_TCP: u16 = 6;

/// Owner of each tracked socket, keyed by its kernel address.
#[map(name = "TCP_SOCKS")]
pub static TCP_SOCKS: LruHashMap<u64, SockOwner> =
    LruHashMap::with_max_entries(TCP_SOCKS_CAPACITY, 0);

/// Owner of each listening socket, keyed by `family << 16 | port`.
#[map(name = "TCP_LISTENERS")]
pub static TCP_LISTENERS: LruHashMap<u32, SockOwner> =
    LruHashMap::with_max_entries(TCP_LISTENERS_CAPACITY, 0);

/// One state change, as read from the record.
struct Change {
    sk: u64,
    family: u16,
    sport: u16,
    dport: u16,
}

#[tracepoint(category = "sock", name = "inet_sock_set_state")]
pub fn audit_tcp_state(ctx: TracePointContext) -> u32 {
    let f = fields();
    if let Some(p) = read::<u16>(&ctx, global(&f.tcp_protocol)) {
        if p != IPPROTO_TCP {
            return 0;
        }
    }
    let (Some(sk), Some(old), Some(new), Some(family), Some(sport), Some(dport)) = (
        read::<u64>(&ctx, global(&f.tcp_skaddr)),
        read::<i32>(&ctx, global(&f.tcp_oldstate)),
        read::<i32>(&ctx, global(&f.tcp_newstate)),
        read::<u16>(&ctx, global(&f.tcp_family)),
        read::<u16>(&ctx, global(&f.tcp_sport)),
        read::<u16>(&ctx, global(&f.tcp_dport)),
    ) else {
        return 0;
    };
    if family != AF_INET && family != AF_INET6 {
        return 0;
    }
    let c = Change {
        sk,
        family,
        sport,
        dport,
    };
    match (old, new) {
        // connect(): process context, the owner is current.
        (_, tcp_state::SYN_SENT) => {
            let _ = TCP_SOCKS.insert(sk, current_owner(), 0);
        }
        // listen(): process context.
        (_, tcp_state::LISTEN) => {
            let _ = TCP_LISTENERS.insert(listener_key(family, sport), current_owner(), 0);
        }
        (tcp_state::SYN_SENT, tcp_state::ESTABLISHED) => {
            if let Some(o) = TCP_SOCKS.get_ptr_mut(sk) {
                // SAFETY: a valid map value pointer for the duration of this program.
                let owner = unsafe {
                    (*o).established_ns = bpf_ktime_get_ns();
                    *o
                };
                emit(&ctx, AuditKind::TcpConnect, &owner, &c, 0);
            }
        }
        (tcp_state::SYN_RECV, tcp_state::ESTABLISHED) => {
            // SAFETY: a valid map value pointer, copied at once.
            if let Some(l) = unsafe { TCP_LISTENERS.get(listener_key(family, sport)) } {
                let mut owner = *l;
                // SAFETY: no preconditions.
                owner.established_ns = unsafe { bpf_ktime_get_ns() };
                let _ = TCP_SOCKS.insert(sk, owner, 0);
                emit(&ctx, AuditKind::TcpAccept, &owner, &c, 0);
            }
        }
        (tcp_state::LISTEN, tcp_state::CLOSE) => {
            let _ = TCP_LISTENERS.remove(listener_key(family, sport));
        }
        (_, tcp_state::CLOSE) => {
            // SAFETY: a valid map value pointer, copied at once.
            if let Some(o) = unsafe { TCP_SOCKS.get(sk) } {
                let owner = *o;
                let _ = TCP_SOCKS.remove(sk);
                if owner.established_ns != 0 {
                    emit(&ctx, AuditKind::TcpClose, &owner, &c, owner.established_ns);
                }
            }
        }
        _ => {}
    }
    0
}

#[inline(always)]
fn listener_key(family: u16, port: u16) -> u32 {
    (u32::from(family) << 16) | u32::from(port)
}

#[inline(always)]
fn current_owner() -> SockOwner {
    let h = current_header(AuditKind::TcpConnect);
    SockOwner {
        pid: h.pid,
        uid: h.uid,
        gid: h.gid,
        in_scope: u32::from(current_in_scope()),
        comm: h.comm,
        cgroup_id: h.cgroup_id,
        established_ns: 0,
    }
}

#[inline(always)]
fn emit(ctx: &TracePointContext, kind: AuditKind, owner: &SockOwner, c: &Change, since: u64) {
    if owner.in_scope == 0 {
        return;
    }
    let Some(mut entry) = AUDIT_EVENTS.reserve::<TcpRecord>(0) else {
        count_lost(kind);
        return;
    };
    // SAFETY: no preconditions.
    let now = unsafe { bpf_ktime_get_ns() };
    let f = fields();
    let mut rec = TcpRecord {
        hdr: AuditHeader {
            kind: kind as u32,
            pid: owner.pid,
            ts_ns: now,
            uid: owner.uid,
            gid: owner.gid,
            comm: owner.comm,
            cgroup_id: owner.cgroup_id,
        },
        family: c.family,
        local_port: c.sport,
        remote_port: c.dport,
        ..TcpRecord::default()
    };
    if c.family == AF_INET {
        let s = read::<[u8; 4]>(ctx, global(&f.tcp_saddr)).unwrap_or_default();
        let d = read::<[u8; 4]>(ctx, global(&f.tcp_daddr)).unwrap_or_default();
        rec.local_addr[..4].copy_from_slice(&s);
        rec.remote_addr[..4].copy_from_slice(&d);
    } else {
        rec.local_addr = read::<[u8; 16]>(ctx, global(&f.tcp_saddr_v6)).unwrap_or_default();
        rec.remote_addr = read::<[u8; 16]>(ctx, global(&f.tcp_daddr_v6)).unwrap_or_default();
    }
    if kind == AuditKind::TcpClose {
        let o = offsets();
        if let (Some(rx), Some(acked)) = (
            read_field::<u64>(c.sk, global(&o.tcp_bytes_received)),
            read_field::<u64>(c.sk, global(&o.tcp_bytes_acked)),
        ) {
            rec.bytes_received = rx;
            rec.bytes_acked = acked;
            rec.has_bytes = 1;
        }
        rec.duration_ns = now.saturating_sub(since);
    }
    entry.write(rec);
    entry.submit(0);
}
