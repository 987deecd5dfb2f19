//! Network aggregation: what the `net_*` and `tcp_*` programs keep per thread group
//! (`NET_STATS`, next to `TASK_STATS`), per TCP socket (the `SockOwner` entries of
//! `TCP_SOCKS`), and the load-time layout they read records and kernel structs with.

/// Protocol indices of the per-protocol counters.
pub const PROTO_TCP: usize = 0;
pub const PROTO_UDP: usize = 1;
pub const PROTOS: usize = 2;
/// The `protocol` label of each index.
pub const PROTO_NAMES: [&str; PROTOS] = ["tcp", "udp"];

/// Buckets of the per-group connect-latency histogram. Coarser than `hist` (powers of 4 from
/// 64 µs) so that a per-process entry stays small: bucket 0 holds [0, 64 µs), bucket k
/// (1..=10) holds [2^(2k+4), 2^(2k+6)) µs, the last everything from about 67 s.
pub const CONNECT_BUCKETS: usize = 12;

/// The connect-latency bucket of `ns` nanoseconds.
#[inline(always)]
pub const fn connect_bucket(ns: u64) -> usize {
    let us = ns / 1000;
    if us < 64 {
        return 0;
    }
    let b = ((crate::hist::log2_floor(us) - 6) / 2 + 1) as usize;
    if b >= CONNECT_BUCKETS {
        CONNECT_BUCKETS - 1
    } else {
        b
    }
}

/// Upper bound of connect-latency bucket `i` in seconds; `None` for the last one.
pub fn connect_upper_seconds(i: usize) -> Option<f64> {
    if i + 1 >= CONNECT_BUCKETS {
        None
    } else {
        Some((1u64 << (2 * i + 6)) as f64 * 1e-6)
    }
}

/// Value of `NET_STATS`, keyed by tgid: totals since the entry was created.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(
    feature = "user",
    derive(serde::Serialize, serde::Deserialize),
    serde(default)
)]
pub struct NetCounters {
    /// Payload bytes handed to (tx) or copied from (rx) TCP and UDP sockets, by protocol.
    pub tx_bytes: [u64; PROTOS],
    pub rx_bytes: [u64; PROTOS],
    /// UDP: datagrams; TCP: segments (the socket's `segs_out` / `segs_in`).
    pub tx_packets: [u64; PROTOS],
    pub rx_packets: [u64; PROTOS],
    /// TCP segments retransmitted (the socket's `total_retrans`, as `RetransSegs` counts).
    pub tcp_retransmits: u64,
    pub tcp_resets_sent: u64,
    pub tcp_resets_received: u64,
    /// connect() calls (as the kernel's `ActiveOpens`) and accepted connections.
    pub tcp_active_opens: u64,
    pub tcp_passive_opens: u64,
    /// Established connections that closed.
    pub tcp_closes: u64,
    /// SYN sent to ESTABLISHED: a histogram (`connect_bucket`) and its sum.
    pub tcp_connect_ns: u64,
    pub tcp_connect: [u64; CONNECT_BUCKETS],
}

impl Default for NetCounters {
    fn default() -> Self {
        Self {
            tx_bytes: [0; PROTOS],
            rx_bytes: [0; PROTOS],
            tx_packets: [0; PROTOS],
            rx_packets: [0; PROTOS],
            tcp_retransmits: 0,
            tcp_resets_sent: 0,
            tcp_resets_received: 0,
            tcp_active_opens: 0,
            tcp_passive_opens: 0,
            tcp_closes: 0,
            tcp_connect_ns: 0,
            tcp_connect: [0; CONNECT_BUCKETS],
        }
    }
}

const _: () = assert!(core::mem::size_of::<NetCounters>() == (8 + 7 + CONNECT_BUCKETS) * 8);

/// Where the network programs find their data on the running kernel, set by the daemon
/// before the object is loaded: tracepoint record offsets (tracefs `format` files) and struct
/// member offsets (kernel BTF). 0 means unknown: the program skips what needs it.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NetLayout {
    /// `sock:sock_send_length` / `sock_recv_length` (6.3+; one layout for both).
    pub len_sk: u32,
    pub len_family: u32,
    pub len_protocol: u32,
    pub len_ret: u32,
    pub len_flags: u32,
    /// `skb:skb_copy_datagram_iovec`.
    pub copy_skb: u32,
    pub copy_len: u32,
    /// `net:net_dev_queue`.
    pub queue_skb: u32,
    /// `skb:consume_skb`.
    pub consume_skb: u32,
    /// `tcp:tcp_retransmit_skb`, `tcp:tcp_send_reset`, `tcp:tcp_receive_reset`.
    pub retransmit_sk: u32,
    pub send_reset_sk: u32,
    pub receive_reset_sk: u32,
    /// `struct sk_buff`.
    pub skb_sk: u32,
    pub skb_head: u32,
    pub skb_data: u32,
    pub skb_len: u32,
    pub skb_transport_header: u32,
    pub skb_network_header: u32,
    /// `struct sock`: `__sk_common.skc_family`, `__sk_common.skc_state` and `sk_protocol`
    /// (a plain u16 since 5.6).
    pub sk_family: u32,
    pub sk_state: u32,
    pub sk_protocol: u32,
    /// `struct tcp_sock`.
    pub tcp_segs_out: u32,
    pub tcp_segs_in: u32,
    pub tcp_total_retrans: u32,
    pub tcp_bytes_sent: u32,
    /// `tcp_sock.bytes_retrans` (4.19+): the part of `bytes_sent` that was sent again.
    pub tcp_bytes_retrans: u32,
    /// The ports and addresses the classic `inet_sock_set_state` record carries, for the
    /// typed program: `inet_sock.inet_sport` and `inet_saddr` (kept until the socket is
    /// freed, where `skc_num` is cleared before the close), `__sk_common.skc_dport`,
    /// `skc_daddr` (at offset 0: the daemon attaches the typed program only when it found
    /// them all), `skc_v6_rcv_saddr`, `skc_v6_daddr`. Ports in network order.
    pub inet_sport: u32,
    pub sk_dport: u32,
    pub inet_saddr: u32,
    pub sk_daddr: u32,
    pub sk_v6_rcv_saddr: u32,
    pub sk_v6_daddr: u32,
}

const _: () = assert!(core::mem::size_of::<NetLayout>() == 128);

/// Name of the `NetLayout` global in the kernel object.
pub const GLOBAL_LAYOUT: &str = "NET_LAYOUT";

/// `flags` bit of a receive that leaves the data queued (`MSG_PEEK`): not a transfer.
pub const MSG_PEEK: i32 = 2;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connect_buckets_hold_their_bounds() {
        assert_eq!(connect_bucket(0), 0);
        assert_eq!(connect_bucket(63_999), 0);
        assert_eq!(connect_bucket(64_000), 1);
        assert_eq!(connect_bucket(255_999), 1);
        assert_eq!(connect_bucket(256_000), 2);
        // 50 ms sits in (16.384 ms, 65.536 ms].
        assert_eq!(connect_bucket(50_000_000), 5);
        assert_eq!(connect_upper_seconds(5), Some(0.065536));
        assert_eq!(connect_upper_seconds(4), Some(0.016384));
        assert_eq!(connect_bucket(u64::MAX), CONNECT_BUCKETS - 1);
        assert!(connect_upper_seconds(CONNECT_BUCKETS - 1).is_none());
        for ns in [1u64, 70_000, 3_000_000, 49_000_000, 2_000_000_000] {
            let b = connect_bucket(ns);
            assert!(
                (ns as f64) * 1e-9 < connect_upper_seconds(b).unwrap(),
                "{ns}"
            );
            if b > 0 {
                assert!(
                    (ns as f64) * 1e-9 >= connect_upper_seconds(b - 1).unwrap(),
                    "{ns}"
                );
            }
        }
    }
}
