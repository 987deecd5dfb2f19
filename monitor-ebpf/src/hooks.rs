//! One typed program per socket hook that two families use: the network family (with the
//! audit log's TCP records) and the service family. Each event then pays one dispatch and
//! one read of the socket's family and protocol, instead of one per family; the families'
//! own logic stays in `audit_tcp`, `net`, `tcp_health` and `service`, and each counts its
//! misses under its own program index. The daemon says at load time which families are on
//! (`HOOK_LAYOUT.families`): the program does only their work, and is attached while one
//! of them is. The classic (pre-BTF) programs are each family's own, unchanged.

use aya_ebpf::{macros::btf_tracepoint, programs::BtfTracePointContext};
use monitor_common::{
    health::{
        program::{
            NET_SOCK_RECV, NET_SOCK_SEND, SVC_RECV, SVC_RESET, SVC_SEND, SVC_STATE, TCP_RESET,
            TCP_STATE,
        },
        reason::READ_FAILED,
    },
    hooks::{family, HookLayout},
    net::PROTO_TCP,
};

use crate::{
    audit_tcp,
    health::{finish, miss},
    net::{self, inet_proto, sock_length_args, RX, TX},
    read::{global, member},
    service, tcp_health,
};

// Set by the daemon at load time; zero means unknown (and no family: nothing is done).
#[unsafe(no_mangle)]
static HOOK_LAYOUT: HookLayout = HookLayout {
    families: 0,
    sk_family: 0,
    sk_protocol: 0,
};

/// Whether any of the `family` bits in `bits` is on.
#[inline(always)]
fn on(bits: u32) -> bool {
    global(&HOOK_LAYOUT.families) & bits != 0
}

/// The address family and protocol index of an IPv4 or IPv6 TCP or UDP socket; `None` for
/// any other.
#[inline(always)]
fn inet(sk: *const u8) -> Result<Option<(u16, usize)>, u32> {
    let l = &HOOK_LAYOUT;
    let family = member::<u16>(sk, &l.sk_family).ok_or(READ_FAILED)?;
    let protocol = member::<u16>(sk, &l.sk_protocol).ok_or(READ_FAILED)?;
    Ok(inet_proto(family, protocol).map(|p| (family, p)))
}

/// Arguments: `(const struct sock *sk, const int oldstate, const int newstate)`.
#[btf_tracepoint(function = "inet_sock_set_state")]
pub fn tcp_state_btf(ctx: BtfTracePointContext) -> u32 {
    let sk: *const u8 = ctx.arg(0);
    let old: i64 = ctx.arg(1);
    let new: i64 = ctx.arg(2);
    if sk.is_null() {
        return 0;
    }
    let tcp = on(family::NETWORK | family::AUDIT);
    let svc = on(family::SERVICE);
    match inet(sk) {
        Err(why) => {
            if tcp {
                miss(TCP_STATE, why);
            }
            if svc {
                miss(SVC_STATE, why);
            }
        }
        Ok(Some((fam, PROTO_TCP))) => {
            // An accepted socket's listener owner as the TCP part found it (0: not found).
            let mut listener = 0;
            if tcp {
                // The TCP part reads the network family's layout, which only that family
                // sets: without it (the audit log alone) nothing it read would be right.
                let r = if global(&net::layout().sk_protocol) == 0 {
                    Err(READ_FAILED)
                } else {
                    audit_tcp::on_typed_change(sk, fam, old as i32, new as i32, &mut listener)
                };
                finish(TCP_STATE, r);
            }
            if svc {
                finish(
                    SVC_STATE,
                    service::on_state(sk, fam, old as i32, new as i32, listener),
                );
            }
        }
        Ok(_) => {}
    }
    0
}

#[btf_tracepoint(function = "sock_send_length")]
pub fn net_sock_send_btf(ctx: BtfTracePointContext) -> u32 {
    on_length(&ctx, TX, NET_SOCK_SEND, SVC_SEND)
}

#[btf_tracepoint(function = "sock_recv_length")]
pub fn net_sock_recv_btf(ctx: BtfTracePointContext) -> u32 {
    on_length(&ctx, RX, NET_SOCK_RECV, SVC_RECV)
}

/// A `sock_send_length`/`sock_recv_length` event for both families; `net_prog` and
/// `svc_prog` are where each counts its misses.
#[inline(always)]
fn on_length(ctx: &BtfTracePointContext, tx: bool, net_prog: u32, svc_prog: u32) -> u32 {
    let Some((sk, ret)) = sock_length_args(ctx, tx) else {
        return 0;
    };
    let traffic = on(family::NETWORK);
    let svc = on(family::SERVICE);
    match inet(sk) {
        Err(why) => {
            if traffic {
                miss(net_prog, why);
            }
            if svc {
                miss(svc_prog, why);
            }
        }
        Ok(Some((_, proto))) => {
            if traffic {
                finish(net_prog, net::on_sock_length_btf(sk, ret, tx, proto));
            }
            if svc {
                finish(svc_prog, service::on_length(sk, ret, tx, proto));
            }
        }
        Ok(None) => {}
    }
    0
}

#[btf_tracepoint(function = "tcp_send_reset")]
pub fn tcp_send_reset_btf(ctx: BtfTracePointContext) -> u32 {
    on_reset(&ctx, true)
}

#[btf_tracepoint(function = "tcp_receive_reset")]
pub fn tcp_receive_reset_btf(ctx: BtfTracePointContext) -> u32 {
    on_reset(&ctx, false)
}

/// First argument: the socket (null for a reset answering a segment of no socket: nobody
/// to charge, and no miss).
#[inline(always)]
fn on_reset(ctx: &BtfTracePointContext, sent: bool) -> u32 {
    let sk: *const u8 = ctx.arg(0);
    if sk.is_null() {
        return 0;
    }
    let key = sk as u64;
    if on(family::NETWORK) {
        finish(TCP_RESET, tcp_health::count_reset(key, sent));
    }
    if on(family::SERVICE) {
        finish(SVC_RESET, service::on_reset(key, sent));
    }
    0
}
