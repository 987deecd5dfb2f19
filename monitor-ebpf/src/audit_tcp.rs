//! TCP connect, accept and close from `sock:inet_sock_set_state` (4.16+): typed (`tp_btf`,
//! the socket's ports, addresses and `tcp_sock` counters as direct loads at BTF offsets)
//! where the kernel has BTF, the classic record (and probe reads) otherwise.
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
//! The same program counts per-group TCP health for the network collector (opens, closes,
//! connect latency, the state each socket is in) and keeps the owners the network programs
//! charge; it emits audit records only when the audit log is on (`AuditScope.enabled`).

use aya_ebpf::{
    helpers::bpf_ktime_get_ns, macros::tracepoint, programs::TracePointContext, EbpfContext,
};
use monitor_common::{
    audit::{tcp_state, AuditHeader, AuditKind, SockOwner, TcpRecord},
    health::{
        program::TCP_STATE,
        reason::{MAP_FULL, NO_OWNER, READ_FAILED, RING_FULL},
        TCP_SOCKS_INSERT_FAILED,
    },
    net::connect_bucket,
};

use crate::{
    atomic::add,
    audit::{audit_enabled, count_lost, fields, offsets, AUDIT_EVENTS},
    health::{count_failure, finish, Outcome},
    net::{
        as_tcp_sock, charge_tcp, layout, net_stats, tcp_reading_btf, tcp_sync, AF_INET, AF_INET6,
    },
    read::{global, member_at, read, read_field},
    sock::{current_owner, listener_key, TCP_LISTENERS, TCP_SOCKS},
};

const IPPROTO_TCP: u16 = 6;

/// One state change, as read from the record or the socket.
struct Change {
    sk: u64,
    family: u16,
    /// The local and remote ports, as the record has them; from a typed hook's socket they
    /// are read where a branch needs them (`ports`), as most state changes do not.
    ports: Option<(u16, u16)>,
}

/// The change's local and remote ports (0 where the socket cannot be read as a `tcp_sock`).
#[inline(always)]
fn ports(c: &Change, src: Src<'_>) -> (u16, u16) {
    match (c.ports, src) {
        (Some(p), _) => p,
        (None, Src::Sock(sk)) => {
            let tp = as_tcp_sock(sk);
            if tp.is_null() {
                return (0, 0);
            }
            let l = layout();
            (
                u16::from_be(member_at::<u16>(tp, &l.inet_sport)),
                u16::from_be(member_at::<u16>(tp, &l.sk_dport)),
            )
        }
        (None, Src::Record(_)) => (0, 0),
    }
}

/// Where the rest of a change is read: addresses for the audit log, counters at close.
#[derive(Clone, Copy)]
enum Src<'a> {
    Record(&'a TracePointContext),
    /// The typed hook's `struct sock *`.
    Sock(*const u8),
}

/// The network family's (and the audit log's) part of a typed state change (see `hooks`),
/// on an IPv4 or IPv6 TCP socket of `family`. An accepted socket's listener owner, when
/// found, is left in `listener` (the service family's part needs it too: one lookup for both).
#[inline(always)]
pub fn on_typed_change(
    sk: *const u8,
    family: u16,
    old: i32,
    new: i32,
    listener: &mut u32,
) -> Outcome {
    let c = Change {
        sk: sk as u64,
        family,
        ports: None,
    };
    on_change(&c, old, new, Src::Sock(sk), listener)
}

#[tracepoint(category = "sock", name = "inet_sock_set_state")]
pub fn tcp_state(ctx: TracePointContext) -> u32 {
    finish(TCP_STATE, try_tcp_state(&ctx))
}

#[inline(always)]
fn try_tcp_state(ctx: &TracePointContext) -> Outcome {
    let f = fields();
    let (protocol, sk, old, new, family, sport, dport) = if global(&f.tcp_standard) != 0 {
        // SAFETY: direct loads at the offsets of `TCP_STATE_STANDARD`, which the daemon
        // found in this kernel's format file; the verifier checks them against the record.
        unsafe {
            let rec = ctx.as_ptr() as *const u8;
            (
                rec.add(30).cast::<u16>().read(),
                rec.add(8).cast::<u64>().read(),
                rec.add(16).cast::<i32>().read(),
                rec.add(20).cast::<i32>().read(),
                rec.add(28).cast::<u16>().read(),
                rec.add(24).cast::<u16>().read(),
                rec.add(26).cast::<u16>().read(),
            )
        }
    } else {
        let (Some(sk), Some(old), Some(new), Some(family), Some(sport), Some(dport)) = (
            read::<u64>(ctx, global(&f.tcp_skaddr)),
            read::<i32>(ctx, global(&f.tcp_oldstate)),
            read::<i32>(ctx, global(&f.tcp_newstate)),
            read::<u16>(ctx, global(&f.tcp_family)),
            read::<u16>(ctx, global(&f.tcp_sport)),
            read::<u16>(ctx, global(&f.tcp_dport)),
        ) else {
            return Err(READ_FAILED);
        };
        // Before 5.6 the record has no protocol: only TCP sockets were reported.
        let protocol = read::<u16>(ctx, global(&f.tcp_protocol)).unwrap_or(IPPROTO_TCP);
        (protocol, sk, old, new, family, sport, dport)
    };
    if protocol != IPPROTO_TCP {
        return Ok(());
    }
    if family != AF_INET && family != AF_INET6 {
        return Ok(());
    }
    let c = Change {
        sk,
        family,
        ports: Some((sport, dport)),
    };
    on_change(&c, old, new, Src::Record(ctx), &mut 0)
}

#[inline(always)]
fn on_change(c: &Change, old: i32, new: i32, src: Src<'_>, listener: &mut u32) -> Outcome {
    let (sk, family) = (c.sk, c.family);
    // Read only by the opens: most changes (the closing ones) need no clock.
    // SAFETY: no preconditions.
    let now = || unsafe { bpf_ktime_get_ns() };
    match (old, new) {
        // connect(): process context, the owner is current.
        (_, tcp_state::SYN_SENT) => {
            let mut o = current_owner();
            o.connect_ns = now();
            o.state = new as u32;
            let owned = own(sk, &o);
            let n = net_stats(o.pid).ok_or(MAP_FULL)?;
            // SAFETY: a map value valid during the program; other CPUs update it too.
            unsafe { add(&raw mut (*n).tcp_active_opens, 1) };
            owned?;
        }
        // listen(): process context.
        (_, tcp_state::LISTEN) => {
            let sport = ports(c, src).0;
            let _ = TCP_LISTENERS.insert(listener_key(family, sport), current_owner(), 0);
        }
        (tcp_state::SYN_SENT, tcp_state::ESTABLISHED) => {
            let o = TCP_SOCKS.get_ptr_mut(sk).ok_or(NO_OWNER)?;
            let now = now();
            // SAFETY: a valid map value pointer for the duration of this program.
            let owner = unsafe {
                (*o).established_ns = now;
                (*o).state = new as u32;
                *o
            };
            if owner.connect_ns != 0 && now >= owner.connect_ns {
                observe_connect(owner.pid, now - owner.connect_ns)?;
            }
            emit(src, AuditKind::TcpConnect, &owner, c, 0)?;
        }
        (tcp_state::SYN_RECV, tcp_state::ESTABLISHED) => {
            let sport = ports(c, src).0;
            // SAFETY: a valid map value pointer, copied at once.
            let l = unsafe { TCP_LISTENERS.get(listener_key(family, sport)) }.ok_or(NO_OWNER)?;
            let mut owner = *l;
            *listener = owner.pid;
            // Without the audit log (whose close record gives the duration) the time is
            // only read as "was established": no clock for it.
            owner.established_ns = if audit_enabled() { now() } else { 1 };
            owner.state = new as u32;
            let owned = own(sk, &owner);
            let n = net_stats(owner.pid).ok_or(MAP_FULL)?;
            // SAFETY: as above.
            unsafe { add(&raw mut (*n).tcp_passive_opens, 1) };
            emit(src, AuditKind::TcpAccept, &owner, c, 0)?;
            owned?;
        }
        (tcp_state::LISTEN, tcp_state::CLOSE) => {
            let _ = TCP_LISTENERS.remove(listener_key(family, ports(c, src).0));
        }
        (_, tcp_state::CLOSE) => {
            // A socket never owned (opened before the programs attached, never used since)
            // closes unseen: nothing of it was counted.
            if let Some(o) = TCP_SOCKS.get_ptr_mut(sk) {
                // SAFETY: a valid map value pointer for the duration of this program.
                let pid = unsafe { (*o).pid };
                // The owner's counters, looked up once for the last segments and the close.
                // A null pointer rather than an `Option` kept across the branches below: the
                // verifier rejects the option's unwritten `None` side ("R7 !read_ok").
                let n = net_stats(pid).unwrap_or(core::ptr::null_mut());
                // The last segments and retransmits since the previous reading.
                let synced = match src {
                    Src::Record(_) => tcp_sync(sk, o, false),
                    Src::Sock(sk) => tcp_reading_btf(sk).and_then(|r| {
                        let hint = if n.is_null() { None } else { Some((pid, n)) };
                        charge_tcp(o, r, hint)
                    }),
                };
                // SAFETY: a valid map value pointer, copied before the entry goes.
                let owner = unsafe { *o };
                let _ = TCP_SOCKS.remove(sk);
                if owner.established_ns != 0 {
                    if n.is_null() {
                        return Err(MAP_FULL);
                    }
                    // SAFETY: a map value valid during the program; other CPUs update it too.
                    unsafe { add(&raw mut (*n).tcp_closes, 1) };
                    emit(src, AuditKind::TcpClose, &owner, c, owner.established_ns)?;
                }
                synced?;
            }
        }
        // A passive open's child socket, not accepted yet: never owned.
        (_, tcp_state::SYN_RECV) => {}
        (_, state) => {
            if let Some(o) = TCP_SOCKS.get_ptr_mut(sk) {
                // SAFETY: a valid map value pointer for the duration of this program.
                unsafe { (*o).state = state as u32 };
            }
        }
    }
    Ok(())
}

/// Remembers `owner` as the owner of socket `sk`; a full map is counted (and returned, for
/// the caller to report once it has counted the open itself).
#[inline(always)]
fn own(sk: u64, owner: &SockOwner) -> Outcome {
    if TCP_SOCKS.insert(sk, owner, 0).is_err() {
        count_failure(TCP_SOCKS_INSERT_FAILED);
        return Err(MAP_FULL);
    }
    Ok(())
}

/// One connect latency (SYN sent to ESTABLISHED) for the owner's histogram.
#[inline(always)]
fn observe_connect(pid: u32, ns: u64) -> Outcome {
    let c = net_stats(pid).ok_or(MAP_FULL)?;
    let b = connect_bucket(ns);
    // SAFETY: a map value valid during the program; `b` is in bounds (checked for the
    // verifier too).
    unsafe {
        if b < monitor_common::net::CONNECT_BUCKETS {
            add((&raw mut (*c).tcp_connect as *mut u64).add(b), 1);
        }
        add(&raw mut (*c).tcp_connect_ns, ns);
    }
    Ok(())
}

#[inline(always)]
fn emit(src: Src<'_>, kind: AuditKind, owner: &SockOwner, c: &Change, since: u64) -> Outcome {
    if !audit_enabled() || owner.in_scope == 0 {
        return Ok(());
    }
    // Read only for a record: from a typed hook they cost a helper call and two loads.
    let (local_port, remote_port) = ports(c, src);
    let Some(mut entry) = AUDIT_EVENTS.reserve::<TcpRecord>(0) else {
        count_lost(kind);
        return Err(RING_FULL);
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
        local_port,
        remote_port,
        ..TcpRecord::default()
    };
    match (src, c.family == AF_INET) {
        (Src::Record(ctx), true) => {
            let s = read::<[u8; 4]>(ctx, global(&f.tcp_saddr)).unwrap_or_default();
            let d = read::<[u8; 4]>(ctx, global(&f.tcp_daddr)).unwrap_or_default();
            rec.local_addr[..4].copy_from_slice(&s);
            rec.remote_addr[..4].copy_from_slice(&d);
        }
        (Src::Record(ctx), false) => {
            rec.local_addr = read::<[u8; 16]>(ctx, global(&f.tcp_saddr_v6)).unwrap_or_default();
            rec.remote_addr = read::<[u8; 16]>(ctx, global(&f.tcp_daddr_v6)).unwrap_or_default();
        }
        // The daemon attaches the typed program only with every member found (`skc_daddr`
        // is at offset 0).
        (Src::Sock(sk), true) => {
            let l = layout();
            // `inet_saddr` is in the `inet_sock` part, beyond `struct sock`.
            let tp = as_tcp_sock(sk);
            if !tp.is_null() {
                let s = member_at::<[u8; 4]>(tp, &l.inet_saddr);
                rec.local_addr[..4].copy_from_slice(&s);
            }
            let d = member_at::<[u8; 4]>(sk, &l.sk_daddr);
            rec.remote_addr[..4].copy_from_slice(&d);
        }
        (Src::Sock(sk), false) => {
            let l = layout();
            rec.local_addr = member_at::<[u8; 16]>(sk, &l.sk_v6_rcv_saddr);
            rec.remote_addr = member_at::<[u8; 16]>(sk, &l.sk_v6_daddr);
        }
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
    Ok(())
}
