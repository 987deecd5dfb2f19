//! TCP retransmits and resets per socket owner. These run in softirq or timer context, so
//! the socket's owner comes from `TCP_SOCKS`, never from `current`.

use aya_ebpf::{
    macros::{btf_tracepoint, tracepoint},
    programs::{BtfTracePointContext, TracePointContext},
};
use monitor_common::health::{
    program::{TCP_RESET, TCP_RETRANSMIT},
    reason::{MAP_FULL, NO_OWNER, READ_FAILED},
};

use crate::{
    atomic::add,
    health::{finish, Outcome},
    net::{charge_tcp, layout, net_stats, tcp_owner, tcp_reading_btf, tcp_sync},
    read::{global, read},
};

/// `tcp:tcp_retransmit_skb`: the socket's `total_retrans` moved (by the segments resent, as
/// the kernel's `RetransSegs`); `tcp_sync` charges it with the segments.
#[btf_tracepoint(function = "tcp_retransmit_skb")]
pub fn tcp_retransmit_btf(ctx: BtfTracePointContext) -> u32 {
    finish(TCP_RETRANSMIT, try_tcp_retransmit_btf(&ctx))
}

/// Arguments: `(const struct sock *sk, const struct sk_buff *skb)`; the counters are direct
/// loads of the `tcp_sock`, where the classic program pays a probe read for each.
#[inline(always)]
fn try_tcp_retransmit_btf(ctx: &BtfTracePointContext) -> Outcome {
    let sk: *const u8 = ctx.arg(0);
    if sk.is_null() {
        return Err(READ_FAILED);
    }
    let o = tcp_owner(sk as u64, false).ok_or(NO_OWNER)?;
    charge_tcp(o, tcp_reading_btf(sk)?, None)
}

#[tracepoint(category = "tcp", name = "tcp_retransmit_skb")]
pub fn tcp_retransmit(ctx: TracePointContext) -> u32 {
    finish(TCP_RETRANSMIT, try_tcp_retransmit(&ctx))
}

#[inline(always)]
fn try_tcp_retransmit(ctx: &TracePointContext) -> Outcome {
    let sk = read::<u64>(ctx, global(&layout().retransmit_sk)).ok_or(READ_FAILED)?;
    let o = tcp_owner(sk, false).ok_or(NO_OWNER)?;
    tcp_sync(sk, o, false)
}

#[tracepoint(category = "tcp", name = "tcp_send_reset")]
pub fn tcp_send_reset(ctx: TracePointContext) -> u32 {
    let r = read::<u64>(&ctx, global(&layout().send_reset_sk))
        .ok_or(READ_FAILED)
        .and_then(|sk| count_reset(sk, true));
    finish(TCP_RESET, r)
}

#[tracepoint(category = "tcp", name = "tcp_receive_reset")]
pub fn tcp_receive_reset(ctx: TracePointContext) -> u32 {
    let r = read::<u64>(&ctx, global(&layout().receive_reset_sk))
        .ok_or(READ_FAILED)
        .and_then(|sk| count_reset(sk, false));
    finish(TCP_RESET, r)
}

/// Charges a reset to the owner of socket `sk`; also the network family's part of the typed
/// reset programs (see `hooks`).
#[inline(always)]
pub fn count_reset(sk: u64, sent: bool) -> Outcome {
    // A reset answering a segment for no socket has none: nobody to charge, and no miss.
    if sk == 0 {
        return Ok(());
    }
    let o = tcp_owner(sk, false).ok_or(NO_OWNER)?;
    // SAFETY: a valid map value pointer for the duration of this program.
    let pid = unsafe { (*o).pid };
    let c = net_stats(pid).ok_or(MAP_FULL)?;
    // SAFETY: a map value valid during the program; other CPUs update it too.
    unsafe {
        if sent {
            add(&raw mut (*c).tcp_resets_sent, 1);
        } else {
            add(&raw mut (*c).tcp_resets_received, 1);
        }
    }
    Ok(())
}
