//! The service family's kernel side: which programs serve each measure, and reading and
//! cleaning `SVC_STATS`.

use aya::{
    maps::{HashMap, MapData},
    Ebpf,
};
use monitor_common::{
    maps,
    service::{ServiceKey, ServiceSock, ServiceStats},
};

use crate::bpf::{
    attach::{Attached, Choice, Hook, Probe},
    take_map,
};

/// Which sockets to follow, and their resets: every kernel with BTF (`inet_sock_set_state`
/// 4.16, typed hooks 5.5). The programs are shared with the network family (one per hook,
/// see `bpf::hooks`): whichever family attaches first attaches them for both; the family's
/// own serve where the shared ones cannot attach.
pub const CONNECTIONS: &[Probe] = &[
    Probe {
        measure: "service_connections",
        choices: &[
            Choice {
                program: "tcp_state_btf",
                hook: Hook::Btf("inet_sock_set_state"),
            },
            Choice {
                program: "svc_state_btf",
                hook: Hook::Btf("inet_sock_set_state"),
            },
        ],
    },
    Probe {
        measure: "service_reset_sent",
        choices: &[
            Choice {
                program: "tcp_send_reset_btf",
                hook: Hook::Btf("tcp_send_reset"),
            },
            Choice {
                program: "svc_reset_sent_btf",
                hook: Hook::Btf("tcp_send_reset"),
            },
        ],
    },
    Probe {
        measure: "service_reset_received",
        choices: &[
            Choice {
                program: "tcp_receive_reset_btf",
                hook: Hook::Btf("tcp_receive_reset"),
            },
            Choice {
                program: "svc_reset_received_btf",
                hook: Hook::Btf("tcp_receive_reset"),
            },
        ],
    },
];

/// Request/response turns, status codes and DNS: `sock_send_length`/`sock_recv_length`
/// (6.3+). Optional: without them the turns are reported absent.
pub const TURNS: &[Probe] = &[
    Probe {
        measure: "service_send",
        choices: &[
            Choice {
                program: "net_sock_send_btf",
                hook: Hook::Btf("sock_send_length"),
            },
            Choice {
                program: "svc_send_btf",
                hook: Hook::Btf("sock_send_length"),
            },
        ],
    },
    Probe {
        measure: "service_receive",
        choices: &[
            Choice {
                program: "net_sock_recv_btf",
                hook: Hook::Btf("sock_recv_length"),
            },
            Choice {
                program: "svc_recv_btf",
                hook: Hook::Btf("sock_recv_length"),
            },
        ],
    },
];

/// Attaches through `attach`: the connection probes or nothing, then the turns if this
/// kernel has their hooks.
pub fn attach(
    mut attach: impl FnMut(&[Probe]) -> anyhow::Result<Vec<Attached>>,
) -> anyhow::Result<Vec<Attached>> {
    let mut all = attach(CONNECTIONS)?;
    match attach(TURNS) {
        Ok(a) => all.extend(a),
        Err(e) if crate::bpf::is_permission_error(e.as_ref()) => return Err(e),
        Err(e) => tracing::warn!(
            error = format!("{e:#}"),
            "service requests, latency, status codes and DNS are not measured on this kernel \
             (they need sock:sock_send_length and sock_recv_length, 6.3+)"
        ),
    }
    Ok(all)
}

/// Whether the turns are measured with what attached.
pub fn turns_measured(attached: &[Attached]) -> bool {
    TURNS
        .iter()
        .all(|p| attached.iter().any(|a| a.measure == p.measure))
}

/// What the family reads: the kernel map, or a fixture.
pub trait ServiceSource: Send {
    fn entries(&mut self) -> anyhow::Result<Vec<(ServiceKey, ServiceStats)>>;
    fn remove(&mut self, key: &ServiceKey);
    /// Sockets followed now (`SVC_SOCKS`), when known.
    fn sockets(&self) -> Option<u64> {
        None
    }
}

pub struct ServiceMaps {
    stats: HashMap<MapData, ServiceKey, ServiceStats>,
    socks: HashMap<MapData, u64, ServiceSock>,
    socks_count: crate::bpf::batch::CachedCount,
}

impl ServiceMaps {
    pub fn take(ebpf: &mut Ebpf) -> anyhow::Result<Self> {
        Ok(Self {
            stats: take_map(ebpf, maps::SVC_STATS)?,
            socks: take_map(ebpf, maps::SVC_SOCKS)?,
            socks_count: Default::default(),
        })
    }
}

impl ServiceSource for ServiceMaps {
    fn entries(&mut self) -> anyhow::Result<Vec<(ServiceKey, ServiceStats)>> {
        crate::bpf::batch::entries(&self.stats, maps::SVC_STATS)
    }

    fn remove(&mut self, key: &ServiceKey) {
        let _ = self.stats.remove(key);
    }

    fn sockets(&self) -> Option<u64> {
        Some(self.socks_count.get(&self.socks))
    }
}
