//! Where the network programs find their data on the running kernel: record offsets from
//! tracefs `format` files, struct members from the kernel's BTF. Handed over as the
//! `NET_LAYOUT` global before the object is loaded.

use std::path::Path;

use monitor_common::net::{NetLayout, GLOBAL_LAYOUT};

use crate::{audit::layout::offset_of, bpf::tracefs::Format};

/// The typed TCP state program (see `Layout::typed_state`).
const TYPED_STATE: &str = "tcp_state_btf";

/// The layout, owned for as long as the loader borrows it.
pub struct Layout {
    layout: NetLayout,
    /// Whether every struct member was found: the typed `tcp_state` reads some at offset 0,
    /// so it cannot tell an unknown member from the first, and is attached only then.
    typed_state: bool,
}

impl Layout {
    /// Reads what this kernel has. A missing tracepoint leaves its fields at 0 (its program
    /// will not attach either); missing struct members are named in one warning.
    /// `btf` is the kernel's, opened from `vmlinux` (named in the warnings).
    pub fn read(tracefs: &Path, vmlinux: &Path, btf: &anyhow::Result<btf_rs::Btf>) -> Self {
        let fmt = |cat: &str, ev: &str| Format::read_or_empty(tracefs, cat, ev);
        let len = fmt("sock", "sock_send_length");
        let copy = fmt("skb", "skb_copy_datagram_iovec");
        let queue = fmt("net", "net_dev_queue");
        let mut typed_state = false;
        let mut l = NetLayout {
            len_sk: len.offset("sk"),
            len_family: len.offset("family"),
            len_protocol: len.offset("protocol"),
            len_ret: len.offset("ret"),
            len_flags: len.offset("flags"),
            copy_skb: copy.offset("skbaddr"),
            copy_len: copy.offset("len"),
            queue_skb: queue.offset("skbaddr"),
            consume_skb: fmt("skb", "consume_skb").offset("skbaddr"),
            retransmit_sk: fmt("tcp", "tcp_retransmit_skb").offset("skaddr"),
            send_reset_sk: fmt("tcp", "tcp_send_reset").offset("skaddr"),
            receive_reset_sk: fmt("tcp", "tcp_receive_reset").offset("skaddr"),
            ..NetLayout::default()
        };
        match btf {
            Ok(btf) => {
                let mut missing = Vec::new();
                let mut get = |ty: &str, path: &str| match offset_of(btf, ty, path) {
                    Ok(o) => o,
                    Err(e) => {
                        missing.push(format!("{ty}.{path}: {e}"));
                        0
                    }
                };
                l.skb_sk = get("sk_buff", "sk");
                l.skb_head = get("sk_buff", "head");
                l.skb_data = get("sk_buff", "data");
                l.skb_len = get("sk_buff", "len");
                l.skb_transport_header = get("sk_buff", "transport_header");
                l.skb_network_header = get("sk_buff", "network_header");
                l.sk_family = get("sock", "__sk_common.skc_family");
                l.sk_state = get("sock", "__sk_common.skc_state");
                l.sk_protocol = get("sock", "sk_protocol");
                l.tcp_segs_out = get("tcp_sock", "segs_out");
                l.tcp_segs_in = get("tcp_sock", "segs_in");
                l.tcp_total_retrans = get("tcp_sock", "total_retrans");
                l.tcp_bytes_sent = get("tcp_sock", "bytes_sent");
                l.tcp_bytes_retrans = get("tcp_sock", "bytes_retrans");
                l.inet_sport = get("inet_sock", "inet_sport");
                l.sk_dport = get("sock", "__sk_common.skc_dport");
                l.inet_saddr = get("inet_sock", "inet_saddr");
                l.sk_daddr = get("sock", "__sk_common.skc_daddr");
                l.sk_v6_rcv_saddr = get("sock", "__sk_common.skc_v6_rcv_saddr");
                l.sk_v6_daddr = get("sock", "__sk_common.skc_v6_daddr");
                typed_state = missing.is_empty();
                if !missing.is_empty() {
                    tracing::warn!(
                        btf = %vmlinux.display(),
                        missing = missing.join("; "),
                        "kernel struct members not found; TCP segments, retransmits, the \
                         typed TCP state hook and the pre-6.3 traffic hooks need them"
                    );
                }
            }
            Err(e) => tracing::warn!(
                error = format!("{e:#}"),
                btf = %vmlinux.display(),
                "no kernel BTF: TCP segments and retransmits are not counted, and traffic \
                 needs sock:sock_send_length (6.3+)"
            ),
        }
        Self {
            layout: l,
            typed_state,
        }
    }

    pub fn set(&self, setup: &mut crate::bpf::family::Setup) {
        setup.global(GLOBAL_LAYOUT, &self.layout);
        if !self.typed_state {
            setup.fail.push(TYPED_STATE.to_string());
        }
    }
}
