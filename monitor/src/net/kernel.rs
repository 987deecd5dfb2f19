//! The network collector's kernel side: which programs serve each measure (best hook
//! first), and reading its maps.

use std::collections::HashSet;

use aya::{
    maps::{HashMap, MapData},
    Ebpf,
};
use monitor_common::{audit::SockOwner, maps, net::NetCounters};

use crate::{
    bpf::{
        attach::{Attached, Choice, Hook, Probe},
        health::MapStat,
        per_task::PerTaskMap,
        take_map,
    },
    process::table::KernelEntry,
};

/// The programs both the network collector and the audit log's TCP records use: typed
/// first (direct loads of the socket), the classic record where the kernel has no BTF.
pub const TCP_STATE: &[Choice] = &[
    Choice {
        program: "tcp_state_btf",
        hook: Hook::Btf("inet_sock_set_state"),
    },
    Choice {
        program: "tcp_state",
        hook: Hook::Tracepoint("sock", "inet_sock_set_state"),
    },
];

/// With `skb_copy_datagram_iovec` only (before 6.3): UDP received, which it does not see.
pub const UDP_RECEIVE: Probe = Probe {
    measure: "net_receive_udp",
    choices: &[Choice {
        program: "net_udp_consume",
        hook: Hook::Tracepoint("skb", "consume_skb"),
    }],
};

/// Attaches the collector's probes through `attach`, adding the pre-6.3 UDP receive program
/// where the receive measure fell back (optional: without it, UDP received is not measured).
pub fn attach(
    mut attach: impl FnMut(&[Probe]) -> anyhow::Result<Vec<Attached>>,
) -> anyhow::Result<Vec<Attached>> {
    let mut all = attach(PROBES)?;
    if all.iter().any(|a| a.program == "net_skb_copy") {
        match attach(std::slice::from_ref(&UDP_RECEIVE)) {
            Ok(a) => all.extend(a),
            Err(e) if crate::bpf::is_permission_error(e.as_ref()) => return Err(e),
            Err(e) => tracing::warn!(
                error = format!("{e:#}"),
                "UDP received bytes are not measured on this kernel"
            ),
        }
    }
    Ok(all)
}

pub const PROBES: &[Probe] = &[
    Probe {
        measure: "net_send",
        choices: &[
            Choice {
                program: "net_sock_send_btf",
                hook: Hook::Btf("sock_send_length"),
            },
            Choice {
                program: "net_sock_send",
                hook: Hook::Tracepoint("sock", "sock_send_length"),
            },
            Choice {
                program: "net_dev_queue",
                hook: Hook::Tracepoint("net", "net_dev_queue"),
            },
        ],
    },
    Probe {
        measure: "net_receive",
        choices: &[
            Choice {
                program: "net_sock_recv_btf",
                hook: Hook::Btf("sock_recv_length"),
            },
            Choice {
                program: "net_sock_recv",
                hook: Hook::Tracepoint("sock", "sock_recv_length"),
            },
            Choice {
                program: "net_skb_copy",
                hook: Hook::Tracepoint("skb", "skb_copy_datagram_iovec"),
            },
        ],
    },
    Probe {
        measure: "tcp_state",
        choices: TCP_STATE,
    },
    Probe {
        measure: "tcp_retransmit",
        choices: &[
            Choice {
                program: "tcp_retransmit_btf",
                hook: Hook::Btf("tcp_retransmit_skb"),
            },
            Choice {
                program: "tcp_retransmit",
                hook: Hook::Tracepoint("tcp", "tcp_retransmit_skb"),
            },
        ],
    },
    Probe {
        measure: "tcp_reset_sent",
        choices: &[
            Choice {
                program: "tcp_send_reset_btf",
                hook: Hook::Btf("tcp_send_reset"),
            },
            Choice {
                program: "tcp_send_reset",
                hook: Hook::Tracepoint("tcp", "tcp_send_reset"),
            },
        ],
    },
    Probe {
        measure: "tcp_reset_received",
        choices: &[
            Choice {
                program: "tcp_receive_reset_btf",
                hook: Hook::Btf("tcp_receive_reset"),
            },
            Choice {
                program: "tcp_receive_reset",
                hook: Hook::Tracepoint("tcp", "tcp_receive_reset"),
            },
        ],
    },
];

/// Says in the log how exact the traffic figures are with the hooks that attached.
pub fn log_exactness(attached: &[Attached]) {
    for a in attached {
        match a.program {
            "net_sock_send" | "net_sock_recv" | "net_sock_send_btf" | "net_sock_recv_btf" => {
                tracing::info!(
                    measure = a.measure,
                    hook = %a.hook,
                    "network bytes exact: the payload of each call"
                )
            }
            "net_dev_queue" => tracing::warn!(
                measure = a.measure,
                hook = %a.hook,
                "network bytes sent without sock:sock_send_length (before 6.3): TCP counts \
                 retransmitted payload again; sends from sockets opened before the daemon are \
                 seen once they receive"
            ),
            "net_skb_copy" => tracing::warn!(
                measure = a.measure,
                hook = %a.hook,
                "network bytes received without sock:sock_recv_length (before 6.3): TCP exact"
            ),
            "net_udp_consume" => tracing::warn!(
                measure = a.measure,
                hook = %a.hook,
                "UDP bytes received without sock:sock_recv_length (before 6.3): each datagram \
                 whole when read, also the part a short read dropped"
            ),
            _ => {}
        }
    }
}

/// What the family reads of its maps: the kernel's (`NetMaps`), or recorded contents
/// (`bpf::recording`, for tests without privileges).
pub trait NetSource: Send {
    /// Adds each thread group's network counters to its entry (see `bpf::per_task`).
    fn merge(
        &mut self,
        entries: &mut Vec<KernelEntry>,
        live: &HashSet<u32>,
        knows: &dyn Fn(u32) -> bool,
    ) -> anyhow::Result<()>;
    /// Forgets the groups whose `TASK_STATS` entries were folded.
    fn remove(&mut self, tgids: &[u32]);
    fn stats_entries(&self) -> u64;
    fn sockets(&self) -> Sockets;
}

/// The family's maps' fill and failed updates.
pub fn map_stats(source: &dyn NetSource, sockets: &Sockets, health: &[u64]) -> Vec<MapStat> {
    use monitor_common::health::{NET_STATS_INSERT_FAILED, TCP_SOCKS_INSERT_FAILED};
    vec![
        MapStat {
            name: maps::NET_STATS,
            entries: Some(source.stats_entries()),
            capacity: maps::NET_STATS_CAPACITY.into(),
            update_failures: health[NET_STATS_INSERT_FAILED as usize],
        },
        MapStat {
            name: maps::TCP_SOCKS,
            entries: Some(sockets.connections.len() as u64),
            capacity: maps::TCP_SOCKS_CAPACITY.into(),
            update_failures: health[TCP_SOCKS_INSERT_FAILED as usize],
        },
    ]
}

pub struct NetMaps {
    stats: PerTaskMap<NetCounters>,
    socks: HashMap<MapData, u64, SockOwner>,
    listeners: HashMap<MapData, u32, SockOwner>,
}

/// Current TCP sockets as the kernel programs know them: (owner pid, state) each, and the
/// owners of listening sockets.
#[derive(Default)]
pub struct Sockets {
    pub connections: Vec<(u32, u32)>,
    pub listeners: Vec<u32>,
}

impl NetMaps {
    pub fn take(ebpf: &mut Ebpf) -> anyhow::Result<Self> {
        Ok(Self {
            stats: PerTaskMap::take(ebpf, maps::NET_STATS)?,
            socks: take_map(ebpf, maps::TCP_SOCKS)?,
            listeners: take_map(ebpf, maps::TCP_LISTENERS)?,
        })
    }
}

impl NetSource for NetMaps {
    /// A group without a scheduler entry is added on its own when the process table
    /// `knows` it (a socket of a process that exited moments ago: its close, last segments
    /// and retransmits come after the exit); otherwise, unless it is alive, its entry is
    /// stale and removed.
    fn merge(
        &mut self,
        entries: &mut Vec<KernelEntry>,
        live: &HashSet<u32>,
        knows: &dyn Fn(u32) -> bool,
    ) -> anyhow::Result<()> {
        self.stats.merge(entries, live, knows, |c, v| c.net = v)
    }

    fn remove(&mut self, tgids: &[u32]) {
        self.stats.remove(tgids);
    }

    fn stats_entries(&self) -> u64 {
        self.stats.entries()
    }

    fn sockets(&self) -> Sockets {
        let read = |m: &HashMap<MapData, _, SockOwner>, name| {
            crate::bpf::batch::entries(m, name).unwrap_or_else(|e| {
                tracing::debug!(error = format!("{e:#}"), "reading the socket owners");
                Vec::new()
            })
        };
        Sockets {
            connections: read(&self.socks, maps::TCP_SOCKS)
                .into_iter()
                .map(|(_, o): (u64, SockOwner)| (o.pid, o.state))
                .collect(),
            listeners: read_listeners(&self.listeners),
        }
    }
}

fn read_listeners(m: &HashMap<MapData, u32, SockOwner>) -> Vec<u32> {
    crate::bpf::batch::entries(m, maps::TCP_LISTENERS)
        .unwrap_or_default()
        .into_iter()
        .map(|(_, o)| o.pid)
        .collect()
}

/// The network figures besides the per-process counters, as of the last refresh.
pub struct NetSnapshot {
    pub sockets: Sockets,
    pub maps: Vec<MapStat>,
    /// (rx, tx) interface bytes no process was charged with (see `unattributed`); `None`
    /// when the interfaces cannot be read.
    pub unattributed: Option<(u64, u64)>,
}
