//! Service figures (requests, response latency, status codes and errors per port) that the
//! `svc_*` programs aggregate in the kernel: per socket the state of its current turn
//! (`ServiceSock` in `SVC_SOCKS`), per thread group, port and direction the totals
//! (`ServiceStats` in `SVC_STATS`). No record per request crosses to user space.

use crate::hist::BUCKETS;

/// `ServiceKey::kind`: which side of a conversation the group is on.
pub mod kind {
    /// An accepted socket: the group serves on its local port.
    pub const INBOUND: u8 = 0;
    /// A connected socket: the group is the client of the remote port.
    pub const OUTBOUND: u8 = 1;
    /// A connected UDP socket to port 53: the group's DNS queries.
    pub const DNS: u8 = 2;
    pub const COUNT: usize = 3;
}

/// `ServiceSock::phase`: where a socket's conversation is.
pub mod phase {
    /// Nothing asked yet, or the last question answered.
    pub const IDLE: u8 = 0;
    /// A request was read (inbound) or written (outbound), its response not yet.
    pub const WAITING: u8 = 1;
    pub const ANSWERED: u8 = 2;
    /// The socket closed; kept until a reset that follows the close is charged.
    pub const CLOSED: u8 = 3;
    /// HTTP/2 (it opened with the preface): its requests are not followed.
    pub const MULTIPLEXED: u8 = 4;
}

/// `ServiceSock::flags` bits.
pub mod flags {
    /// Accepted while its listener's owner was unknown (it listened before the programs
    /// attached): the connection is counted for the first process that uses it.
    pub const ACCEPT_PENDING: u8 = 1;
    /// DNS: query slot 1 and 2 hold an unanswered query.
    pub const DNS_SLOT1: u8 = 2;
    pub const DNS_SLOT2: u8 = 4;
    /// Data was seen on it (its first request was looked at for the HTTP/2 preface).
    pub const STARTED: u8 = 8;
}

/// Key of `SVC_STATS`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ServiceKey {
    pub tgid: u32,
    /// Inbound: the local (listening) port; outbound: the remote port; DNS: 53.
    pub port: u16,
    pub kind: u8,
    pub _pad: u8,
}

const _: () = assert!(core::mem::size_of::<ServiceKey>() == 8);

/// `codes` slots: HTTP status classes 1xx..5xx at 1..=5; DNS rcodes 0..=6 at their value,
/// any other rcode at 7.
pub const CODES: usize = 8;
pub const DNS_OTHER_RCODE: usize = 7;

/// Value of `SVC_STATS`: totals since the entry was made.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(
    feature = "user",
    derive(serde::Serialize, serde::Deserialize),
    serde(default)
)]
pub struct ServiceStats {
    /// Connections accepted (inbound only).
    pub accepted: u64,
    /// Request/response turns.
    pub requests: u64,
    /// From the first byte of a request to the first byte of its response: the sum and a
    /// `hist` histogram.
    pub latency_ns: u64,
    pub latency: [u64; BUCKETS],
    pub codes: [u64; CODES],
    pub resets_sent: u64,
    pub resets_received: u64,
    /// Connections that closed with a request unanswered.
    pub unanswered: u64,
}

impl Default for ServiceStats {
    fn default() -> Self {
        Self {
            accepted: 0,
            requests: 0,
            latency_ns: 0,
            latency: [0; BUCKETS],
            codes: [0; CODES],
            resets_sent: 0,
            resets_received: 0,
            unanswered: 0,
        }
    }
}

const _: () = assert!(core::mem::size_of::<ServiceStats>() == (6 + BUCKETS + CODES) * 8);

/// Value of `SVC_SOCKS`, keyed by the socket's kernel address: its current turn.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ServiceSock {
    /// When the current request began (DNS: query slot 1).
    pub start_ns: u64,
    /// DNS: when the query in slot 2 was sent.
    pub start2_ns: u64,
    /// The group last seen using it (0 until one is).
    pub tgid: u32,
    pub port: u16,
    pub kind: u8,
    pub phase: u8,
    /// DNS: the ids of the queries in slots 1 and 2.
    pub dns_id: u16,
    pub dns_id2: u16,
    pub flags: u8,
    pub _pad: [u8; 3],
}

const _: () = assert!(core::mem::size_of::<ServiceSock>() == 32);

/// Where the service programs find their data on the running kernel, from its BTF; 0 means
/// unknown (the program skips what needs it).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ServiceLayout {
    /// `struct sock`: `__sk_common.skc_family`, `sk_protocol`, `__sk_common.skc_num` (the
    /// local port, host order), `__sk_common.skc_dport` (the remote port, network order).
    pub sk_family: u32,
    pub sk_protocol: u32,
    pub sk_num: u32,
    pub sk_dport: u32,
    /// `struct pt_regs` (x86_64): the syscall number and its second argument (the user
    /// buffer, iovec or msghdr), for the status line and the DNS header.
    pub regs_orig_ax: u32,
    pub regs_si: u32,
}

const _: () = assert!(core::mem::size_of::<ServiceLayout>() == 24);

/// Name of the `ServiceLayout` global in the kernel object.
pub const GLOBAL_LAYOUT: &str = "SVC_LAYOUT";
