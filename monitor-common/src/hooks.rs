//! The socket hooks two families share (`inet_sock_set_state`, `sock_send_length`,
//! `sock_recv_length`, `tcp_send_reset`, `tcp_receive_reset`): one typed program on each, told
//! at load time which families' work to do and where the socket's family and protocol are.

/// Which families the shared programs serve, bits of `HookLayout::families`.
pub mod family {
    /// The network collector: traffic, TCP health, the socket owners.
    pub const NETWORK: u32 = 1;
    /// The service collector: turns, latency, codes, resets per port.
    pub const SERVICE: u32 = 2;
    /// The audit log's TCP records (the state program's owner tracking serves them).
    pub const AUDIT: u32 = 4;
}

/// Set by the daemon before the object loads; zero offsets mean unknown.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HookLayout {
    /// `family` bits of the enabled families.
    pub families: u32,
    /// `struct sock` members read once per event for every family.
    pub sk_family: u32,
    pub sk_protocol: u32,
}

const _: () = assert!(core::mem::size_of::<HookLayout>() == 12);

/// The object's global holding the `HookLayout`.
pub const GLOBAL_LAYOUT: &str = "HOOK_LAYOUT";
