//! Services without instrumentation: request/response turns on TCP sockets, their latency,
//! HTTP/1.x status classes, resets and unanswered closes, and DNS over connected UDP,
//! aggregated per thread group, port and direction (`SVC_STATS`).
//!
//! - `sock:inet_sock_set_state` (typed) picks the sockets to follow: accepted ones
//!   (SYN_RECV -> ESTABLISHED, keyed to the listening port) and connecting ones (-> SYN_SENT,
//!   keyed to the remote port). Nothing else is ever put in `SVC_SOCKS`.
//! - `sock:sock_recv_length` / `sock_send_length` (6.3+, typed) run in the caller's context
//!   with the socket: one lookup in `SVC_SOCKS`, and an untracked TCP socket is done. On an
//!   accepted socket data read while idle starts a request and the first data written after
//!   it answers it; on a connected socket the other way round. The status line of a response
//!   and a DNS header are read from the caller's user buffer, found through the syscall's
//!   registers (`bpf_task_pt_regs`): no syscall tracepoint is needed.
//! - `tcp:tcp_send_reset` / `tcp_receive_reset` (typed) charge resets to tracked sockets.
//!
//! The typed programs on these hooks are shared with the network family (`hooks`), which
//! calls `on_state`, `on_length` and `on_reset` here when the service collector is on; the
//! family's own (`svc_*_btf`) serve only where the shared ones cannot attach.
//!
//! The kernels before 6.3 lack the two length tracepoints: there only connections accepted
//! and resets are measured (the daemon reports the turns absent).

#![expect(
    clippy::needless_borrows_for_generic_args,
    reason = "Map keys and values go by reference, as in `net` (a 344-byte value must not be \
              copied onto the BPF stack)."
)]

use aya_ebpf::{
    helpers::{
        bpf_get_current_pid_tgid, bpf_get_current_task_btf, bpf_ktime_get_ns, bpf_probe_read_user,
        bpf_task_pt_regs,
    },
    macros::{btf_tracepoint, map},
    maps::{HashMap, LruHashMap, PerCpuArray},
    programs::BtfTracePointContext,
};
use monitor_common::{
    audit::tcp_state,
    health::{
        program::{SVC_RECV, SVC_RESET, SVC_SEND, SVC_STATE},
        reason::{MAP_FULL, NO_OWNER, READ_FAILED},
        SVC_SOCKS_INSERT_FAILED, SVC_STATS_INSERT_FAILED,
    },
    hist::{bucket, BUCKETS},
    maps::{SVC_LISTENERS_CAPACITY, SVC_SOCKS_CAPACITY, SVC_STATS_CAPACITY},
    net::{PROTO_TCP, PROTO_UDP},
    service::{
        flags, kind, phase, ServiceKey, ServiceLayout, ServiceSock, ServiceStats, CODES,
        DNS_OTHER_RCODE,
    },
};

use crate::{
    atomic::add,
    entry::get_or_insert_zero,
    health::{count_failure, finish, Outcome},
    net::{inet_proto, sock_length_args},
    read::member,
    sock::listener_key,
};

const DNS_PORT: u16 = 53;
/// Bytes read from a response (`HTTP/1.1 200`) or a DNS message (its header).
const PEEK: i32 = 12;

/// x86_64 syscall numbers whose second argument leads to the data moved.
mod nr {
    pub const READ: u64 = 0;
    pub const WRITE: u64 = 1;
    pub const READV: u64 = 19;
    pub const WRITEV: u64 = 20;
    pub const SENDTO: u64 = 44;
    pub const RECVFROM: u64 = 45;
    pub const SENDMSG: u64 = 46;
    pub const RECVMSG: u64 = 47;
    pub const SENDMMSG: u64 = 307;
}

/// `sizeof(struct mmsghdr)` on x86_64: a msghdr (56) and `msg_len`, padded.
const MMSGHDR: u64 = 64;

/// Per thread group, port and direction. A plain hash (an eviction would take a counter
/// backwards); the daemon removes the entries of processes gone.
#[map(name = "SVC_STATS")]
pub static SVC_STATS: HashMap<ServiceKey, ServiceStats> =
    HashMap::with_max_entries(SVC_STATS_CAPACITY, 0);

/// A zeroed `ServiceStats` to insert from (kept off the BPF stack).
#[map(name = "SVC_ZERO")]
static SVC_ZERO: PerCpuArray<ServiceStats> = PerCpuArray::with_max_entries(1, 0);

/// The followed sockets, by kernel address.
#[map(name = "SVC_SOCKS")]
static SVC_SOCKS: LruHashMap<u64, ServiceSock> =
    LruHashMap::with_max_entries(SVC_SOCKS_CAPACITY, 0);

/// The thread group that listens on each `family << 16 | port`.
#[map(name = "SVC_LISTENERS")]
static SVC_LISTENERS: LruHashMap<u32, u32> =
    LruHashMap::with_max_entries(SVC_LISTENERS_CAPACITY, 0);

// Set by the daemon at load time; zero means unknown.
#[unsafe(no_mangle)]
static SVC_LAYOUT: ServiceLayout = ServiceLayout {
    sk_family: 0,
    sk_protocol: 0,
    sk_num: 0,
    sk_dport: 0,
    regs_orig_ax: 0,
    regs_si: 0,
};

#[inline(always)]
fn current_tgid() -> u32 {
    (bpf_get_current_pid_tgid() >> 32) as u32
}

#[inline(always)]
fn now() -> u64 {
    // SAFETY: no preconditions.
    unsafe { bpf_ktime_get_ns() }
}

/// The `SVC_STATS` entry of (`tgid`, `port`, `kind`), created on first use.
#[inline(always)]
fn stats(tgid: u32, port: u16, kind: u8) -> Result<*mut ServiceStats, u32> {
    if tgid == 0 {
        return Err(NO_OWNER);
    }
    let key = ServiceKey {
        tgid,
        port,
        kind,
        _pad: 0,
    };
    get_or_insert_zero(&SVC_STATS, &SVC_ZERO, &key, SVC_STATS_INSERT_FAILED).ok_or(MAP_FULL)
}

/// The service family's own typed programs, where the shared ones (`hooks`) cannot attach
/// (the network family's layout incomplete, or forced off in tests): the same work, with
/// the socket's family and protocol read here.
#[btf_tracepoint(function = "inet_sock_set_state")]
pub fn svc_state_btf(ctx: BtfTracePointContext) -> u32 {
    let sk: *const u8 = ctx.arg(0);
    let old: i64 = ctx.arg(1);
    let new: i64 = ctx.arg(2);
    if sk.is_null() {
        return 0;
    }
    let r = inet(sk).and_then(|k| match k {
        Some((family, PROTO_TCP)) => on_state(sk, family, old as i32, new as i32, 0),
        _ => Ok(()),
    });
    finish(SVC_STATE, r)
}

#[btf_tracepoint(function = "sock_send_length")]
pub fn svc_send_btf(ctx: BtfTracePointContext) -> u32 {
    finish(SVC_SEND, own_length(&ctx, true))
}

#[btf_tracepoint(function = "sock_recv_length")]
pub fn svc_recv_btf(ctx: BtfTracePointContext) -> u32 {
    finish(SVC_RECV, own_length(&ctx, false))
}

#[btf_tracepoint(function = "tcp_send_reset")]
pub fn svc_reset_sent_btf(ctx: BtfTracePointContext) -> u32 {
    finish(SVC_RESET, own_reset(&ctx, true))
}

#[btf_tracepoint(function = "tcp_receive_reset")]
pub fn svc_reset_received_btf(ctx: BtfTracePointContext) -> u32 {
    finish(SVC_RESET, own_reset(&ctx, false))
}

/// Both reset hooks' first argument is the socket (none for a reset answering no socket).
#[inline(always)]
fn own_reset(ctx: &BtfTracePointContext, sent: bool) -> Outcome {
    let sk: *const u8 = ctx.arg(0);
    if sk.is_null() {
        return Ok(());
    }
    on_reset(sk as u64, sent)
}

#[inline(always)]
fn own_length(ctx: &BtfTracePointContext, tx: bool) -> Outcome {
    let Some((sk, ret)) = sock_length_args(ctx, tx) else {
        return Ok(());
    };
    match inet(sk)? {
        Some((_, proto)) => on_length(sk, ret, tx, proto),
        None => Ok(()),
    }
}

/// The address family and protocol index of an IPv4 or IPv6 TCP or UDP socket.
#[inline(always)]
fn inet(sk: *const u8) -> Result<Option<(u16, usize)>, u32> {
    let l = &SVC_LAYOUT;
    let family = member::<u16>(sk, &l.sk_family).ok_or(READ_FAILED)?;
    let protocol = member::<u16>(sk, &l.sk_protocol).ok_or(READ_FAILED)?;
    Ok(inet_proto(family, protocol).map(|p| (family, p)))
}

#[inline(always)]
fn follow(sk: u64, s: &ServiceSock) -> Outcome {
    if SVC_SOCKS.insert(&sk, s, 0).is_err() {
        count_failure(SVC_SOCKS_INSERT_FAILED);
        return Err(MAP_FULL);
    }
    Ok(())
}

/// The service family's part of a typed state change (see `hooks`), on an IPv4 or IPv6 TCP
/// socket of `family`. `listener`: an accepted socket's listener owner as the network
/// family found it in `TCP_LISTENERS` (set at the same listen() as `SVC_LISTENERS`), 0 when
/// it did not look or found none.
#[inline(always)]
pub fn on_state(sk: *const u8, family: u16, old: i32, new: i32, listener: u32) -> Outcome {
    let l = &SVC_LAYOUT;
    let key = sk as u64;
    match (old, new) {
        // listen(): process context, the owner is current.
        (_, tcp_state::LISTEN) => {
            let port = member::<u16>(sk, &l.sk_num).ok_or(READ_FAILED)?;
            let _ = SVC_LISTENERS.insert(&listener_key(family, port), &current_tgid(), 0);
        }
        (tcp_state::LISTEN, tcp_state::CLOSE) => {
            let port = member::<u16>(sk, &l.sk_num).ok_or(READ_FAILED)?;
            let _ = SVC_LISTENERS.remove(&listener_key(family, port));
        }
        // connect(): process context; the remote port is set by now.
        (_, tcp_state::SYN_SENT) => {
            let port = u16::from_be(member::<u16>(sk, &l.sk_dport).ok_or(READ_FAILED)?);
            let s = ServiceSock {
                tgid: current_tgid(),
                port,
                kind: kind::OUTBOUND,
                ..ServiceSock::default()
            };
            follow(key, &s)?;
        }
        // Accepted, in softirq: the listener's owner is taken from `SVC_LISTENERS`.
        (tcp_state::SYN_RECV, tcp_state::ESTABLISHED) => {
            let port = member::<u16>(sk, &l.sk_num).ok_or(READ_FAILED)?;
            let mut s = ServiceSock {
                port,
                kind: kind::INBOUND,
                ..ServiceSock::default()
            };
            let owner = if listener != 0 {
                Some(listener)
            } else {
                // SAFETY: a map value pointer, copied at once.
                unsafe { SVC_LISTENERS.get(&listener_key(family, port)) }.copied()
            };
            match owner {
                Some(owner) if owner != 0 => s.tgid = owner,
                _ => s.flags = flags::ACCEPT_PENDING,
            }
            let followed = follow(key, &s);
            if s.tgid != 0 {
                let st = stats(s.tgid, port, kind::INBOUND)?;
                // SAFETY: a map value valid during the program; other CPUs update it too.
                unsafe { add(&raw mut (*st).accepted, 1) };
            }
            followed?;
        }
        (_, tcp_state::CLOSE) => {
            let Some(s) = SVC_SOCKS.get_ptr_mut(&key) else {
                return Ok(());
            };
            // SAFETY: a map value pointer valid during the program.
            let (was, tgid, port, k) = unsafe {
                let was = (*s).phase;
                // Kept for a reset that follows the close (an abortive close sends it after).
                (*s).phase = phase::CLOSED;
                (was, (*s).tgid, (*s).port, (*s).kind)
            };
            if was == phase::WAITING {
                let st = stats(tgid, port, k)?;
                // SAFETY: as above.
                unsafe { add(&raw mut (*st).unanswered, 1) };
            }
        }
        _ => {}
    }
    Ok(())
}

/// The service family's part of a typed `sock_send_length`/`sock_recv_length` event (see
/// `hooks`), on a TCP or UDP socket (`proto`) that moved `ret` bytes.
#[inline(always)]
pub fn on_length(sk: *const u8, ret: i32, tx: bool, proto: usize) -> Outcome {
    let key = sk as u64;
    let Some(s) = SVC_SOCKS.get_ptr_mut(&key) else {
        // Only a DNS query starts following a socket here.
        return if tx && proto == PROTO_UDP {
            dns_query(sk, key, ret)
        } else {
            Ok(())
        };
    };
    // SAFETY: a map value pointer valid during the program.
    let (k, ph) = unsafe { ((*s).kind, (*s).phase) };
    if ph >= phase::CLOSED {
        return Ok(());
    }
    match (k, tx) {
        (kind::INBOUND, false) | (kind::OUTBOUND, true) => {
            asked(s, ret);
            Ok(())
        }
        (kind::INBOUND, true) | (kind::OUTBOUND, false) => answered(s, k, ret),
        (_, true) if proto == PROTO_UDP => dns_query(sk, key, ret),
        (_, true) => Ok(()),
        (_, false) => dns_answer(s, ret),
    }
}

/// A request's data moved (read by a server, written by a client): the first of it starts
/// the wait. An accepted socket of an unknown listener is counted for its first user. A
/// connection that opens with the HTTP/2 preface carries many requests at once, which turns
/// cannot tell apart: it is left out.
#[inline(always)]
fn asked(s: *mut ServiceSock, ret: i32) {
    let tgid = current_tgid();
    // SAFETY: a map value pointer valid during the program.
    let first = unsafe {
        let f = (*s).flags & flags::STARTED == 0;
        (*s).flags |= flags::STARTED;
        f
    };
    if first && ret >= PEEK && user_head().is_some_and(|h| &h == b"PRI * HTTP/2") {
        // SAFETY: as above.
        unsafe { (*s).phase = phase::MULTIPLEXED };
    }
    // SAFETY: a map value pointer valid during the program.
    let pending = unsafe {
        if (*s).phase != phase::WAITING && (*s).phase != phase::MULTIPLEXED {
            (*s).phase = phase::WAITING;
            (*s).start_ns = now();
        }
        (*s).tgid = tgid;
        let p = (*s).flags & flags::ACCEPT_PENDING != 0;
        (*s).flags &= !flags::ACCEPT_PENDING;
        p.then_some((*s).port)
    };
    if let Some(port) = pending {
        if let Ok(st) = stats(tgid, port, kind::INBOUND) {
            // SAFETY: a map value valid during the program; other CPUs update it too.
            unsafe { add(&raw mut (*st).accepted, 1) };
        }
    }
}

/// A response's data moved: the first of it after a request ends the turn.
#[inline(always)]
fn answered(s: *mut ServiceSock, k: u8, ret: i32) -> Outcome {
    // SAFETY: a map value pointer valid during the program.
    let (waiting, start, port) = unsafe {
        let w = (*s).phase == phase::WAITING;
        if w {
            (*s).phase = phase::ANSWERED;
        }
        (w, (*s).start_ns, (*s).port)
    };
    // Data from a server that speaks first, or more of a response already counted.
    if !waiting {
        return Ok(());
    }
    let ns = now().saturating_sub(start);
    let st = stats(current_tgid(), port, k)?;
    let class = if ret >= PEEK { http_class() } else { None };
    count_turn(st, ns);
    if let Some(c) = class {
        count_code(st, c);
    }
    Ok(())
}

/// One request answered after `ns`.
#[inline(always)]
fn count_turn(st: *mut ServiceStats, ns: u64) {
    // SAFETY: a map value valid during the program; the bucket checked for the verifier.
    unsafe {
        add(&raw mut (*st).requests, 1);
        add(&raw mut (*st).latency_ns, ns);
        let b = bucket(ns);
        if b < BUCKETS {
            add((&raw mut (*st).latency as *mut u64).add(b), 1);
        }
    }
}

/// One more in `codes[c]`. Constant indices: the compiler proves a computed one in bounds
/// on a copy of the register the verifier then cannot follow.
#[inline(always)]
fn count_code(st: *mut ServiceStats, c: usize) {
    // SAFETY: a map value valid during the program; every index is below `CODES`.
    unsafe {
        let p = &raw mut (*st).codes;
        match c {
            0 => add(&raw mut (*p)[0], 1),
            1 => add(&raw mut (*p)[1], 1),
            2 => add(&raw mut (*p)[2], 1),
            3 => add(&raw mut (*p)[3], 1),
            4 => add(&raw mut (*p)[4], 1),
            5 => add(&raw mut (*p)[5], 1),
            6 => add(&raw mut (*p)[6], 1),
            _ => add(&raw mut (*p)[CODES - 1], 1),
        }
    }
}

/// The status class of an HTTP/1.x status line at the start of the data moved.
#[inline(always)]
fn http_class() -> Option<usize> {
    let h = user_head()?;
    if &h[..7] != b"HTTP/1." || h[8] != b' ' || !(b'1'..=b'5').contains(&h[9]) {
        return None;
    }
    Some(usize::from(h[9] - b'0'))
}

/// The first bytes the current syscall moved, from its user buffer: the second argument
/// of `read`/`write`/`recvfrom`/`sendto`, the first iovec of `readv`/`writev`, the first
/// iovec of the msghdr of `recvmsg`/`sendmsg`. `None` for other calls (`sendfile`,
/// io_uring) or when a read fails.
#[inline(always)]
fn user_head() -> Option<[u8; PEEK as usize]> {
    user_data(0).map(|(h, _)| h)
}

/// As `user_head`, and `sendmmsg`'s message `n` (each message of one call passes the send
/// tracepoint with the same registers); also whether the call was `sendmmsg`.
#[inline(always)]
fn user_data(n: u64) -> Option<([u8; PEEK as usize], bool)> {
    let l = &SVC_LAYOUT;
    // SAFETY: helpers without preconditions; the registers are a BTF pointer (checked by
    // the verifier), the user reads fail instead of faulting.
    unsafe {
        let regs = bpf_task_pt_regs(bpf_get_current_task_btf()) as *const u8;
        if regs.is_null() {
            return None;
        }
        let call = member::<u64>(regs, &l.regs_orig_ax)?;
        let arg = member::<u64>(regs, &l.regs_si)?;
        // `msghdr.msg_iov` follows `msg_name` and `msg_namelen` (padded).
        let first_iov = |msghdr: u64| -> Option<u64> {
            let iov = bpf_probe_read_user((msghdr + 16) as *const u64).ok()?;
            bpf_probe_read_user(iov as *const u64).ok()
        };
        let data = match call {
            nr::READ | nr::WRITE | nr::RECVFROM | nr::SENDTO => arg,
            nr::READV | nr::WRITEV => bpf_probe_read_user(arg as *const u64).ok()?,
            nr::RECVMSG | nr::SENDMSG => first_iov(arg)?,
            nr::SENDMMSG => first_iov(arg + n * MMSGHDR)?,
            _ => return None,
        };
        let h = bpf_probe_read_user(data as *const [u8; PEEK as usize]).ok()?;
        Some((h, call == nr::SENDMMSG))
    }
}

/// A DNS query on a connected UDP socket (the caller checked the protocol) to port 53: its id is kept in a free slot (glibc
/// sends the A and AAAA queries together on one socket).
#[inline(always)]
fn dns_query(sk: *const u8, key: u64, ret: i32) -> Outcome {
    if ret < PEEK {
        return Ok(());
    }
    let l = &SVC_LAYOUT;
    let port = u16::from_be(member::<u16>(sk, &l.sk_dport).ok_or(READ_FAILED)?);
    if port != DNS_PORT {
        return Ok(());
    }
    let Some((mut h, mmsg)) = user_data(0) else {
        return Err(READ_FAILED);
    };
    let existing = SVC_SOCKS.get_ptr_mut(&key);
    // The second message of a `sendmmsg` (glibc sends A and AAAA so) reads the first again
    // from the registers: the id already in slot 1 means it is the next message.
    if let Some(s) = existing {
        // SAFETY: a map value pointer valid during the program.
        let again = unsafe {
            (*s).flags & flags::DNS_SLOT1 != 0 && (*s).dns_id == u16::from_be_bytes([h[0], h[1]])
        };
        if mmsg && again {
            h = user_data(1).ok_or(READ_FAILED)?.0;
        }
    }
    // QR set: a response, not a query.
    if h[2] & 0x80 != 0 {
        return Ok(());
    }
    let id = u16::from_be_bytes([h[0], h[1]]);
    let t = now();
    let tgid = current_tgid();
    let Some(s) = existing else {
        let s = ServiceSock {
            start_ns: t,
            tgid,
            port,
            kind: kind::DNS,
            phase: phase::WAITING,
            dns_id: id,
            flags: flags::DNS_SLOT1,
            ..ServiceSock::default()
        };
        return follow(key, &s);
    };
    // SAFETY: a map value pointer valid during the program.
    unsafe {
        (*s).tgid = tgid;
        if (*s).flags & flags::DNS_SLOT1 == 0 || (*s).flags & flags::DNS_SLOT2 != 0 {
            // Slot 1 free, or both taken (the oldest query is given up).
            (*s).dns_id = id;
            (*s).start_ns = t;
            (*s).flags |= flags::DNS_SLOT1;
        } else {
            (*s).dns_id2 = id;
            (*s).start2_ns = t;
            (*s).flags |= flags::DNS_SLOT2;
        }
    }
    Ok(())
}

/// A DNS response: the query of the same id ends, its rcode is counted.
#[inline(always)]
fn dns_answer(s: *mut ServiceSock, ret: i32) -> Outcome {
    if ret < PEEK {
        return Ok(());
    }
    let Some(h) = user_head() else {
        return Err(READ_FAILED);
    };
    if h[2] & 0x80 == 0 {
        return Ok(());
    }
    let id = u16::from_be_bytes([h[0], h[1]]);
    // SAFETY: a map value pointer valid during the program.
    let start = unsafe {
        if (*s).flags & flags::DNS_SLOT1 != 0 && (*s).dns_id == id {
            (*s).flags &= !flags::DNS_SLOT1;
            (*s).start_ns
        } else if (*s).flags & flags::DNS_SLOT2 != 0 && (*s).dns_id2 == id {
            (*s).flags &= !flags::DNS_SLOT2;
            (*s).start2_ns
        } else {
            return Ok(());
        }
    };
    let ns = now().saturating_sub(start);
    let rcode = usize::from(h[3] & 0x0f).min(DNS_OTHER_RCODE);
    let st = stats(current_tgid(), DNS_PORT, kind::DNS)?;
    count_turn(st, ns);
    count_code(st, rcode);
    Ok(())
}

/// The service family's part of a typed reset (see `hooks`) on socket `key` (not null).
#[inline(always)]
pub fn on_reset(key: u64, sent: bool) -> Outcome {
    let Some(s) = SVC_SOCKS.get_ptr_mut(&key) else {
        return Ok(());
    };
    // SAFETY: a map value pointer, copied before the entry may go.
    let v = unsafe { *s };
    if v.phase == phase::CLOSED {
        let _ = SVC_SOCKS.remove(&key);
    }
    let st = stats(v.tgid, v.port, v.kind)?;
    // SAFETY: a map value valid during the program; other CPUs update it too.
    unsafe {
        if sent {
            add(&raw mut (*st).resets_sent, 1);
        } else {
            add(&raw mut (*st).resets_received, 1);
        }
    }
    Ok(())
}
