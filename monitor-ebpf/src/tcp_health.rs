//! TCP retransmits and resets per socket owner. These run in softirq or timer context, so
//! the socket's owner comes from `TCP_SOCKS`, never from `current`.

use aya_ebpf::{macros::tracepoint, programs::TracePointContext};

use crate::{
    atomic::add,
    audit::global,
    audit_oom::read,
    net::{layout, net_stats, tcp_owner, tcp_sync},
};

/// `tcp:tcp_retransmit_skb`: the socket's `total_retrans` moved (by the segments resent, as
/// the kernel's `RetransSegs`); `tcp_sync` charges it with the segments.
#[tracepoint(category = "tcp", name = "tcp_retransmit_skb")]
pub fn tcp_retransmit(ctx: TracePointContext) -> u32 {
    let Some(sk) = read::<u64>(&ctx, global(&layout().retransmit_sk)) else {
        return 0;
    };
    if let Some(o) = tcp_owner(sk, false) {
        tcp_sync(sk, o, false);
    }
    0
}

#[tracepoint(category = "tcp", name = "tcp_send_reset")]
pub fn tcp_send_reset(ctx: TracePointContext) -> u32 {
    // A reset answering a segment for no socket has none: nobody to charge.
    if let Some(sk) = read::<u64>(&ctx, global(&layout().send_reset_sk)) {
        count_reset(sk, true);
    }
    0
}

#[tracepoint(category = "tcp", name = "tcp_receive_reset")]
pub fn tcp_receive_reset(ctx: TracePointContext) -> u32 {
    if let Some(sk) = read::<u64>(&ctx, global(&layout().receive_reset_sk)) {
        count_reset(sk, false);
    }
    0
}

#[inline(always)]
fn count_reset(sk: u64, sent: bool) {
    if sk == 0 {
        return;
    }
    let Some(o) = tcp_owner(sk, false) else {
        return;
    };
    // SAFETY: a valid map value pointer for the duration of this program.
    let pid = unsafe { (*o).pid };
    let Some(c) = net_stats(pid) else {
        return;
    };
    // SAFETY: a map value valid during the program; other CPUs update it too.
    unsafe {
        if sent {
            add(&raw mut (*c).tcp_resets_sent, 1);
        } else {
            add(&raw mut (*c).tcp_resets_received, 1);
        }
    }
}
