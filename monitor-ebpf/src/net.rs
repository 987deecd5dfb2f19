//! Per-process network traffic: payload bytes and packets, TCP and UDP, charged to the
//! process that sends or receives (`NET_STATS`, per thread group like `TASK_STATS`).
//!
//! The typed programs of the 6.3+ hooks are in `hooks`, shared with the service family.
//!
//! Two hooks per direction, chosen by the daemon at attach time:
//! - 6.3+: `sock:sock_send_length` / `sock_recv_length`, in the caller's context with the
//!   socket and the bytes moved: exact payload bytes per call. Typed (`tp_btf`) first: no
//!   trace record is built, the socket's family and protocol and its `tcp_sock` counters
//!   are direct loads the verifier checks against the kernel's BTF, where the classic hook
//!   pays a probe-read helper call for each;
//! - before 6.3: receive through `skb:skb_copy_datagram_iovec` (the reader's context, one
//!   event per buffer copied to it; TCP only: UDP copies a linear datagram without it) and,
//!   for UDP, `skb:consume_skb` (a datagram freed by the reader once read), send through `net:net_dev_queue` (one event per buffer
//!   handed to a device, in the sender's context for UDP, possibly in softirq for TCP, so TCP
//!   is charged to the socket's owner from `TCP_SOCKS` and measured by `tcp_sock.bytes_sent`
//!   less `bytes_retrans`, the payload sent again).
//!
//! TCP packets are the socket's own segment counters (`segs_out`, `segs_in`, as the kernel's
//! `OutSegs`/`InSegs` count them) and retransmits its `total_retrans`, read at each event on
//! the socket: what moved since the last reading is charged to the owner (see `tcp_sync`).
//! UDP packets are datagrams: one per call or per buffer.

#![expect(
    clippy::needless_borrows_for_generic_args,
    reason = "Map keys and values go by reference, as in `block` (a 200-byte value must not be \
              copied onto the BPF stack)."
)]

use aya_ebpf::{
    bindings::BPF_NOEXIST,
    helpers::{bpf_get_current_pid_tgid, bpf_probe_read_kernel, bpf_skc_to_tcp_sock},
    macros::{map, tracepoint},
    maps::{HashMap, PerCpuArray},
    programs::{BtfTracePointContext, TracePointContext},
};
use monitor_common::{
    audit::{tcp_state, SockOwner},
    health::{
        program::{NET_DEV_QUEUE, NET_SKB_COPY, NET_SOCK_RECV, NET_SOCK_SEND, NET_UDP_CONSUME},
        reason::{MAP_FULL, NO_OWNER, READ_FAILED},
        NET_STATS_INSERT_FAILED, TCP_SOCKS_INSERT_FAILED,
    },
    maps::NET_STATS_CAPACITY,
    net::{NetCounters, NetLayout, MSG_PEEK, PROTO_TCP, PROTO_UDP},
};

use crate::{
    atomic::add,
    entry::get_or_insert_zero,
    health::{count_failure, finish, Outcome},
    read::{global, member, read, read_field},
    sock::{current_owner, TCP_SOCKS},
};

pub const AF_INET: u16 = 2;
pub const AF_INET6: u16 = 10;
const IPPROTO_TCP: u16 = 6;
const IPPROTO_UDP: u16 = 17;
/// `skc_state` of the mini sockets a packet can carry instead of a full one.
const TCP_NEW_SYN_RECV: u8 = 12;
const TCP_TIME_WAIT: u8 = 6;

/// Per thread group: traffic and TCP health. A plain hash, as `TASK_STATS` (an eviction
/// would take a counter backwards); the daemon removes entries with their process.
#[map(name = "NET_STATS")]
pub static NET_STATS: HashMap<u32, NetCounters> = HashMap::with_max_entries(NET_STATS_CAPACITY, 0);

/// A zeroed `NetCounters` to insert from (kept off the BPF stack).
#[map(name = "NET_ZERO")]
static NET_ZERO: PerCpuArray<NetCounters> = PerCpuArray::with_max_entries(1, 0);

// Set by the daemon at load time; zero means unknown.
#[unsafe(no_mangle)]
static NET_LAYOUT: NetLayout = NetLayout {
    len_sk: 0,
    len_family: 0,
    len_protocol: 0,
    len_ret: 0,
    len_flags: 0,
    copy_skb: 0,
    copy_len: 0,
    queue_skb: 0,
    consume_skb: 0,
    retransmit_sk: 0,
    send_reset_sk: 0,
    receive_reset_sk: 0,
    skb_sk: 0,
    skb_head: 0,
    skb_data: 0,
    skb_len: 0,
    skb_transport_header: 0,
    skb_network_header: 0,
    sk_family: 0,
    sk_state: 0,
    sk_protocol: 0,
    tcp_segs_out: 0,
    tcp_segs_in: 0,
    tcp_total_retrans: 0,
    tcp_bytes_sent: 0,
    tcp_bytes_retrans: 0,
    inet_sport: 0,
    sk_dport: 0,
    inet_saddr: 0,
    sk_daddr: 0,
    sk_v6_rcv_saddr: 0,
    sk_v6_daddr: 0,
};

#[inline(always)]
pub fn layout() -> &'static NetLayout {
    &NET_LAYOUT
}

pub const TX: bool = true;
pub const RX: bool = false;

/// The socket and the bytes moved of a typed `sock_send_length`/`sock_recv_length` event
/// (arguments `(struct sock *sk, int ret, int flags)`); `None` when nothing moved: an error
/// or an empty call, or a receive that left the data queued (`MSG_PEEK`).
#[inline(always)]
pub fn sock_length_args(ctx: &BtfTracePointContext, tx: bool) -> Option<(*const u8, i32)> {
    let sk: *const u8 = ctx.arg(0);
    let ret: i64 = ctx.arg(1);
    let ret = ret as i32;
    if ret <= 0 || sk.is_null() {
        return None;
    }
    if !tx {
        let flags: i64 = ctx.arg(2);
        if flags as i32 & MSG_PEEK != 0 {
            return None;
        }
    }
    Some((sk, ret))
}

/// The network family's part of a typed `sock_send_length`/`sock_recv_length` event (see
/// `hooks`), on a TCP or UDP socket (`proto`) that moved `ret` bytes.
#[inline(always)]
pub fn on_sock_length_btf(sk: *const u8, ret: i32, tx: bool, proto: usize) -> Outcome {
    let charged = charge_current(tx, proto, ret as u64);
    if proto != PROTO_TCP {
        return charged.map(|_| ());
    }
    let o = tcp_owner(sk as u64, true).ok_or(MAP_FULL)?;
    charge_tcp(o, tcp_reading_btf(sk)?, charged.ok())?;
    charged.map(|_| ())
}

/// The `tcp_sock` counters of a socket a typed hook handed over: direct loads.
#[inline(always)]
pub fn tcp_reading_btf(sk: *const u8) -> Result<TcpReading, u32> {
    let tp = as_tcp_sock(sk);
    if tp.is_null() {
        return Err(READ_FAILED);
    }
    tcp_reading_of(tp)
}

/// A typed hook's socket as the `tcp_sock` it is, null when it is not one (the verifier
/// then allows loads of the whole `tcp_sock`, `inet_sock` members included).
#[inline(always)]
pub fn as_tcp_sock(sk: *const u8) -> *const u8 {
    // SAFETY: `sk` is a typed hook's socket; the helper checks what it points at.
    unsafe { bpf_skc_to_tcp_sock(sk as *mut _) as *const u8 }
}

/// The counters of a `tcp_sock` from `as_tcp_sock`.
#[inline(always)]
pub fn tcp_reading_of(tp: *const u8) -> Result<TcpReading, u32> {
    let l = layout();
    Ok(TcpReading {
        out: member::<u32>(tp, &l.tcp_segs_out).ok_or(READ_FAILED)?,
        inn: member::<u32>(tp, &l.tcp_segs_in).ok_or(READ_FAILED)?,
        retrans: member::<u32>(tp, &l.tcp_total_retrans).ok_or(READ_FAILED)?,
        bytes_sent: None,
    })
}

#[tracepoint(category = "sock", name = "sock_send_length")]
pub fn net_sock_send(ctx: TracePointContext) -> u32 {
    finish(NET_SOCK_SEND, on_sock_length(&ctx, TX))
}

#[tracepoint(category = "sock", name = "sock_recv_length")]
pub fn net_sock_recv(ctx: TracePointContext) -> u32 {
    finish(NET_SOCK_RECV, on_sock_length(&ctx, RX))
}

#[inline(always)]
fn on_sock_length(ctx: &TracePointContext, tx: bool) -> Outcome {
    let l = layout();
    let (Some(sk), Some(family), Some(protocol), Some(ret)) = (
        read::<u64>(ctx, global(&l.len_sk)),
        read::<u16>(ctx, global(&l.len_family)),
        read::<u16>(ctx, global(&l.len_protocol)),
        read::<i32>(ctx, global(&l.len_ret)),
    ) else {
        return Err(READ_FAILED);
    };
    let Some(proto) = inet_proto(family, protocol).filter(|_| ret > 0) else {
        return Ok(());
    };
    if !tx && read::<i32>(ctx, global(&l.len_flags)).ok_or(READ_FAILED)? & MSG_PEEK != 0 {
        return Ok(());
    }
    let charged = charge_current(tx, proto, ret as u64);
    if proto == PROTO_TCP {
        let o = tcp_owner(sk, true).ok_or(MAP_FULL)?;
        tcp_sync(sk, o, false)?;
    }
    charged.map(|_| ())
}

#[tracepoint(category = "skb", name = "skb_copy_datagram_iovec")]
pub fn net_skb_copy(ctx: TracePointContext) -> u32 {
    finish(NET_SKB_COPY, try_net_skb_copy(&ctx))
}

#[inline(always)]
fn try_net_skb_copy(ctx: &TracePointContext) -> Outcome {
    let l = layout();
    let skb = read::<u64>(ctx, global(&l.copy_skb)).ok_or(READ_FAILED)?;
    let len = read::<i32>(ctx, global(&l.copy_len)).ok_or(READ_FAILED)?;
    if len <= 0 {
        return Ok(());
    }
    let Some((sk, proto)) = skb_socket(skb)? else {
        return Ok(());
    };
    let charged = charge_current(RX, proto, len as u64);
    if proto == PROTO_TCP {
        let o = tcp_owner(sk, true).ok_or(MAP_FULL)?;
        tcp_sync(sk, o, false)?;
    }
    charged.map(|_| ())
}

#[tracepoint(category = "net", name = "net_dev_queue")]
pub fn net_dev_queue(ctx: TracePointContext) -> u32 {
    finish(NET_DEV_QUEUE, try_net_dev_queue(&ctx))
}

#[inline(always)]
fn try_net_dev_queue(ctx: &TracePointContext) -> Outcome {
    let l = layout();
    let skb = read::<u64>(ctx, global(&l.queue_skb)).ok_or(READ_FAILED)?;
    let Some((sk, proto)) = skb_socket(skb)? else {
        return Ok(());
    };
    if proto == PROTO_TCP {
        // Possibly softirq (ACK-clocked sends): only a socket whose owner is known.
        let o = tcp_owner(sk, false).ok_or(NO_OWNER)?;
        return tcp_sync(sk, o, true);
    }
    // UDP is sent in the sender's context: the payload is the UDP length less its header.
    let head = read_field::<u64>(skb, global(&l.skb_head)).ok_or(READ_FAILED)?;
    let th = read_field::<u16>(skb, global(&l.skb_transport_header)).ok_or(READ_FAILED)?;
    if th == u16::MAX || head == 0 {
        return Err(READ_FAILED);
    }
    // SAFETY: a probe read; a bad address fails instead of faulting.
    let ulen = unsafe { bpf_probe_read_kernel((head + u64::from(th) + 4) as *const [u8; 2]) }
        .map_err(|_| READ_FAILED)?;
    let ulen = u16::from_be_bytes(ulen);
    if ulen >= 8 {
        charge_current(TX, PROTO_UDP, u64::from(ulen - 8))?;
    }
    Ok(())
}

/// Before 6.3, UDP received: a datagram is freed by `recvmsg` once read (a peek keeps it), in
/// the reader's context. Of every buffer freed, only those whose data starts right after an
/// 8-byte transport header (the UDP receive path pulls the header; a sent buffer starts at
/// its link header; TCP's header is 20 bytes or more) of an IP packet carrying UDP.
#[tracepoint(category = "skb", name = "consume_skb")]
pub fn net_udp_consume(ctx: TracePointContext) -> u32 {
    finish(NET_UDP_CONSUME, try_net_udp_consume(&ctx))
}

#[inline(always)]
fn try_net_udp_consume(ctx: &TracePointContext) -> Outcome {
    let l = layout();
    let skb = read::<u64>(ctx, global(&l.consume_skb)).ok_or(READ_FAILED)?;
    // Every buffer the kernel frees passes here: one whose fields cannot be read is not
    // known to be a datagram, so it is no miss.
    let (Some(head), Some(data), Some(th)) = (
        read_field::<u64>(skb, global(&l.skb_head)),
        read_field::<u64>(skb, global(&l.skb_data)),
        read_field::<u16>(skb, global(&l.skb_transport_header)),
    ) else {
        return Ok(());
    };
    if head == 0 || th == u16::MAX || data != head + u64::from(th) + 8 {
        return Ok(());
    }
    let nh = read_field::<u16>(skb, global(&l.skb_network_header)).ok_or(READ_FAILED)?;
    let ip = head + u64::from(nh);
    // SAFETY: probe reads; a bad address fails instead of faulting.
    let proto = match unsafe { bpf_probe_read_kernel(ip as *const u8) }.map(|b| b >> 4) {
        // SAFETY: as above.
        Ok(4) => unsafe { bpf_probe_read_kernel((ip + 9) as *const u8) },
        // SAFETY: as above.
        Ok(6) => unsafe { bpf_probe_read_kernel((ip + 6) as *const u8) },
        _ => return Ok(()),
    };
    if proto != Ok(IPPROTO_UDP as u8) {
        return Ok(());
    }
    let len = read_field::<u32>(skb, global(&l.skb_len)).ok_or(READ_FAILED)?;
    charge_current(RX, PROTO_UDP, u64::from(len))?;
    Ok(())
}

/// The full TCP or UDP socket a buffer belongs to, with its protocol index; `None` for any
/// other (or none), `Err` when it could not be told.
#[inline(always)]
fn skb_socket(skb: u64) -> Result<Option<(u64, usize)>, u32> {
    let l = layout();
    // A buffer without a socket (forwarded, kernel-made) is no one's traffic.
    let sk = read_field::<u64>(skb, global(&l.skb_sk)).ok_or(READ_FAILED)?;
    if sk == 0 {
        return Ok(None);
    }
    let family = read_field::<u16>(sk, global(&l.sk_family)).ok_or(READ_FAILED)?;
    if family != AF_INET && family != AF_INET6 {
        return Ok(None);
    }
    // Mini sockets (a SYN-ACK's request, a TIME_WAIT ACK) end before `sk_protocol`.
    let state = read_field::<u8>(sk, global(&l.sk_state)).ok_or(READ_FAILED)?;
    if state == TCP_NEW_SYN_RECV || state == TCP_TIME_WAIT {
        return Ok(None);
    }
    let protocol = read_field::<u16>(sk, global(&l.sk_protocol)).ok_or(READ_FAILED)?;
    Ok(inet_proto(family, protocol).map(|p| (sk, p)))
}

/// The protocol index of an IPv4 or IPv6 TCP or UDP socket; `None` for any other.
#[inline(always)]
pub fn inet_proto(family: u16, protocol: u16) -> Option<usize> {
    if family != AF_INET && family != AF_INET6 {
        return None;
    }
    match protocol {
        IPPROTO_TCP => Some(PROTO_TCP),
        IPPROTO_UDP => Some(PROTO_UDP),
        _ => None,
    }
}

/// Bytes (and, for UDP, one datagram) moved by the current task; returns its entry, for the
/// TCP counters that usually follow on the same group.
#[inline(always)]
fn charge_current(tx: bool, proto: usize, bytes: u64) -> Result<(u32, *mut NetCounters), u32> {
    let tgid = (bpf_get_current_pid_tgid() >> 32) as u32;
    let c = net_stats(tgid).ok_or(MAP_FULL)?;
    // SAFETY: a map value valid during the program; other CPUs update it too. `proto` is
    // 0 or 1, checked again for the verifier.
    unsafe {
        if proto > PROTO_UDP {
            return Ok((tgid, c));
        }
        let (b, p) = if tx {
            (
                (&raw mut (*c).tx_bytes as *mut u64).add(proto),
                (&raw mut (*c).tx_packets as *mut u64).add(proto),
            )
        } else {
            (
                (&raw mut (*c).rx_bytes as *mut u64).add(proto),
                (&raw mut (*c).rx_packets as *mut u64).add(proto),
            )
        };
        add(b, bytes);
        if proto == PROTO_UDP {
            add(p, 1);
        }
    }
    Ok((tgid, c))
}

/// The `NET_STATS` entry of `tgid`, created on first use.
#[inline(always)]
pub fn net_stats(tgid: u32) -> Option<*mut NetCounters> {
    if tgid == 0 {
        return None;
    }
    get_or_insert_zero(&NET_STATS, &NET_ZERO, &tgid, NET_STATS_INSERT_FAILED)
}

/// The `TCP_SOCKS` entry of a TCP socket. A socket first seen here (opened before the
/// programs attached) is adopted by the current task when `create` (process context only),
/// its counters taken as already charged.
#[inline(always)]
pub fn tcp_owner(sk: u64, create: bool) -> Option<*mut SockOwner> {
    if let Some(o) = TCP_SOCKS.get_ptr_mut(&sk) {
        return Some(o);
    }
    if !create {
        return None;
    }
    let l = layout();
    let mut o = current_owner();
    o.state = tcp_state::ESTABLISHED as u32;
    o.segs_out = read_field::<u32>(sk, global(&l.tcp_segs_out)).unwrap_or(0);
    o.segs_in = read_field::<u32>(sk, global(&l.tcp_segs_in)).unwrap_or(0);
    o.retrans = read_field::<u32>(sk, global(&l.tcp_total_retrans)).unwrap_or(0);
    o.bytes_sent = payload_sent(sk).unwrap_or(0);
    if TCP_SOCKS.insert(&sk, &o, u64::from(BPF_NOEXIST)).is_err() {
        // EEXIST: another CPU adopted it first.
        if let Some(p) = TCP_SOCKS.get_ptr_mut(&sk) {
            return Some(p);
        }
        count_failure(TCP_SOCKS_INSERT_FAILED);
        return None;
    }
    TCP_SOCKS.get_ptr_mut(&sk)
}

/// `cur - seen` for a counter that only grows (0 if it seems to have gone back).
#[inline(always)]
fn since(cur: u32, seen: u32) -> u64 {
    if cur >= seen {
        u64::from(cur - seen)
    } else {
        0
    }
}

/// Payload bytes a TCP socket has sent once: `bytes_sent` counts retransmitted payload
/// again, `bytes_retrans` says how much of it that was (0 where the kernel lacks it).
#[inline(always)]
fn payload_sent(sk: u64) -> Option<u64> {
    let l = layout();
    let sent = read_field::<u64>(sk, global(&l.tcp_bytes_sent))?;
    let again = read_field::<u64>(sk, global(&l.tcp_bytes_retrans)).unwrap_or(0);
    Some(sent.saturating_sub(again))
}

/// A socket's `tcp_sock` counters as read now.
pub struct TcpReading {
    pub out: u32,
    pub inn: u32,
    pub retrans: u32,
    /// Payload bytes sent (read only on the pre-6.3 send path, which charges bytes by it).
    pub bytes_sent: Option<u64>,
}

/// Charges the socket's owner with what its `tcp_sock` counters moved since the last
/// reading: segments out and in, retransmitted segments, and, when `sent_bytes` (the
/// pre-6.3 send path), payload bytes sent. Reads through probe reads (the socket is an
/// address from a classic tracepoint's record).
#[inline(always)]
pub fn tcp_sync(sk: u64, o: *mut SockOwner, sent_bytes: bool) -> Outcome {
    let l = layout();
    let (Some(out), Some(inn), Some(retrans)) = (
        read_field::<u32>(sk, global(&l.tcp_segs_out)),
        read_field::<u32>(sk, global(&l.tcp_segs_in)),
        read_field::<u32>(sk, global(&l.tcp_total_retrans)),
    ) else {
        return Err(READ_FAILED);
    };
    let bytes_sent = if sent_bytes { payload_sent(sk) } else { None };
    charge_tcp(
        o,
        TcpReading {
            out,
            inn,
            retrans,
            bytes_sent,
        },
        None,
    )
}

/// Charges the owner `o` with what moved since its last reading. `hint` is an entry already
/// looked up (the current task's), used when the owner is that group.
///
/// Two CPUs syncing one socket at the same instant can both charge the same movement; the
/// socket lock serialises almost every caller, so this is rare.
#[inline(always)]
pub fn charge_tcp(
    o: *mut SockOwner,
    r: TcpReading,
    hint: Option<(u32, *mut NetCounters)>,
) -> Outcome {
    // SAFETY: `o` is a `TCP_SOCKS` value pointer, valid during the program.
    let (pid, d_out, d_in, d_retrans, d_bytes) = unsafe {
        let d_out = since(r.out, (*o).segs_out);
        let d_in = since(r.inn, (*o).segs_in);
        let d_retrans = since(r.retrans, (*o).retrans);
        (*o).segs_out = r.out;
        (*o).segs_in = r.inn;
        (*o).retrans = r.retrans;
        let mut d_bytes = 0;
        if let Some(b) = r.bytes_sent {
            if b >= (*o).bytes_sent {
                d_bytes = b - (*o).bytes_sent;
            }
            (*o).bytes_sent = b;
        }
        ((*o).pid, d_out, d_in, d_retrans, d_bytes)
    };
    if d_out == 0 && d_in == 0 && d_retrans == 0 && d_bytes == 0 {
        return Ok(());
    }
    let c = match hint {
        Some((tgid, c)) if tgid == pid => c,
        _ => net_stats(pid).ok_or(MAP_FULL)?,
    };
    // SAFETY: a map value valid during the program; other CPUs update it too.
    unsafe {
        add(&raw mut (*c).tx_packets[PROTO_TCP], d_out);
        add(&raw mut (*c).rx_packets[PROTO_TCP], d_in);
        add(&raw mut (*c).tcp_retransmits, d_retrans);
        add(&raw mut (*c).tx_bytes[PROTO_TCP], d_bytes);
    }
    Ok(())
}
