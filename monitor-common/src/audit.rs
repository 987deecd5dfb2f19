//! Audit records: rare kernel events (exec, exit, OOM kill, TCP connect/accept/close) sent
//! whole through the `AUDIT_EVENTS` ring buffer, and the load-time settings the audit
//! programs read as globals (struct offsets from the kernel's BTF, tracepoint field offsets
//! from tracefs, the cgroup scope).

/// What an audit record is. The value is the record's first `u32`.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuditKind {
    Exec = 1,
    Exit = 2,
    OomKill = 3,
    TcpConnect = 4,
    TcpAccept = 5,
    TcpClose = 6,
}

/// Slots of the per-kind counters (`AUDIT_LOST`); slot 0 is unused.
pub const AUDIT_KIND_SLOTS: u32 = 8;

impl AuditKind {
    pub const ALL: [AuditKind; 6] = [
        Self::Exec,
        Self::Exit,
        Self::OomKill,
        Self::TcpConnect,
        Self::TcpAccept,
        Self::TcpClose,
    ];

    pub const fn from_u32(v: u32) -> Option<Self> {
        match v {
            1 => Some(Self::Exec),
            2 => Some(Self::Exit),
            3 => Some(Self::OomKill),
            4 => Some(Self::TcpConnect),
            5 => Some(Self::TcpAccept),
            6 => Some(Self::TcpClose),
            _ => None,
        }
    }

    /// The name used in the log and in metric labels.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Exec => "exec",
            Self::Exit => "exit",
            Self::OomKill => "oom_kill",
            Self::TcpConnect => "tcp_connect",
            Self::TcpAccept => "tcp_accept",
            Self::TcpClose => "tcp_close",
        }
    }
}

/// Who did it: the task in whose context the record was made (for TCP records, the socket's
/// owner as remembered from process context).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct AuditHeader {
    /// An `AuditKind` as `u32`.
    pub kind: u32,
    /// Thread group id (the process id users see).
    pub pid: u32,
    /// `bpf_ktime_get_ns` (CLOCK_MONOTONIC) at the event.
    pub ts_ns: u64,
    pub uid: u32,
    pub gid: u32,
    pub comm: [u8; 16],
    /// The cgroup v2 id (the cgroup directory's inode number).
    pub cgroup_id: u64,
}

const _: () = assert!(core::mem::size_of::<AuditHeader>() == 48);

pub const FILENAME_LEN: usize = 256;
/// Arguments kept per exec: the start of the NUL-separated argv block.
pub const ARGS_LEN: usize = 512;

#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct ExecRecord {
    pub hdr: AuditHeader,
    pub ppid: u32,
    /// Bytes of `filename` used, including its NUL (0 when it could not be read).
    pub filename_len: u32,
    /// Bytes of `args` read.
    pub args_len: u32,
    /// The whole argv block's size, which may exceed `args_len` (then it was cut).
    pub args_total: u32,
    pub filename: [u8; FILENAME_LEN],
    pub args: [u8; ARGS_LEN],
}

const _: () = assert!(core::mem::size_of::<ExecRecord>() == 64 + FILENAME_LEN + ARGS_LEN);

#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct ExitRecord {
    pub hdr: AuditHeader,
    pub ppid: u32,
    /// `task_struct.exit_code` in wait(2) status form: code << 8, or the signal number.
    pub exit_code: u32,
    /// `task_struct.start_time` (CLOCK_MONOTONIC ns); 0 when unknown.
    pub start_ns: u64,
    /// CPU time of the thread group: the leader's own plus its dead threads'.
    pub cpu_ns: u64,
    /// Which of the fields above could be read: `EXIT_HAS_*` bits.
    pub has: u32,
    pub _pad: u32,
}

pub const EXIT_HAS_PPID: u32 = 1;
pub const EXIT_HAS_CODE: u32 = 2;
pub const EXIT_HAS_START: u32 = 4;
pub const EXIT_HAS_CPU: u32 = 8;

const _: () = assert!(core::mem::size_of::<ExitRecord>() == 80);

/// An OOM kill: the header is the task that ran the killer (often the victim itself, or a
/// task allocating in the same memory cgroup); the rest describes the victim.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct OomRecord {
    pub hdr: AuditHeader,
    pub victim_pid: u32,
    pub victim_uid: u32,
    pub victim_comm: [u8; 16],
    /// Memory of the victim in KiB, as `oom:mark_victim` reports it (6.x kernels); zero
    /// where the kernel's tracepoint lacks the field (see `has`).
    pub total_vm_kb: u64,
    pub anon_rss_kb: u64,
    pub file_rss_kb: u64,
    pub shmem_rss_kb: u64,
    pub pgtables_kb: u64,
    pub oom_score_adj: i32,
    /// `OOM_HAS_*` bits: which fields the kernel's tracepoint carries.
    pub has: u32,
}

pub const OOM_HAS_COMM: u32 = 1;
pub const OOM_HAS_MEMORY: u32 = 2;
pub const OOM_HAS_UID: u32 = 4;
pub const OOM_HAS_PGTABLES: u32 = 8;
pub const OOM_HAS_SCORE_ADJ: u32 = 16;

const _: () = assert!(core::mem::size_of::<OomRecord>() == 120);

#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct TcpRecord {
    pub hdr: AuditHeader,
    /// AF_INET (2) or AF_INET6 (10).
    pub family: u16,
    pub local_port: u16,
    pub remote_port: u16,
    pub _pad: u16,
    /// IPv4 addresses use the first 4 bytes.
    pub local_addr: [u8; 16],
    pub remote_addr: [u8; 16],
    /// `tcp_sock.bytes_received` and `bytes_acked` at close (0 before close, or when the
    /// offsets are unknown: see `has_bytes`).
    pub bytes_received: u64,
    pub bytes_acked: u64,
    /// From ESTABLISHED to CLOSE, for close records.
    pub duration_ns: u64,
    pub has_bytes: u32,
    pub _pad2: u32,
}

const _: () = assert!(core::mem::size_of::<TcpRecord>() == 120);

/// Struct member offsets in bytes, read from the running kernel's BTF at load time (they
/// differ between kernels and builds). 0 means unknown: the program skips that field.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KernelOffsets {
    pub task_real_parent: u32,
    pub task_tgid: u32,
    pub task_exit_code: u32,
    pub task_start_time: u32,
    pub task_sum_exec_runtime: u32,
    pub task_signal: u32,
    pub signal_sum_sched_runtime: u32,
    pub task_mm: u32,
    pub mm_arg_start: u32,
    pub mm_arg_end: u32,
    pub tcp_bytes_received: u32,
    pub tcp_bytes_acked: u32,
}

const _: () = assert!(core::mem::size_of::<KernelOffsets>() == 48);

/// Field offsets inside classic tracepoint records, read from each event's `format` file in
/// tracefs at load time: the layouts changed across kernels. 0 means the field is absent.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TraceFields {
    /// `sched:sched_process_exec`: `__data_loc char[] filename`.
    pub exec_filename: u32,
    /// `oom:mark_victim`.
    pub oom_pid: u32,
    /// A `__data_loc` on 6.x; older kernels have no comm.
    pub oom_comm: u32,
    pub oom_total_vm: u32,
    pub oom_anon_rss: u32,
    pub oom_file_rss: u32,
    pub oom_shmem_rss: u32,
    pub oom_uid: u32,
    pub oom_pgtables: u32,
    pub oom_score_adj: u32,
    /// `sock:inet_sock_set_state`.
    pub tcp_skaddr: u32,
    pub tcp_oldstate: u32,
    pub tcp_newstate: u32,
    pub tcp_sport: u32,
    pub tcp_dport: u32,
    pub tcp_family: u32,
    /// Absent before 5.6 (only TCP sockets were reported then).
    pub tcp_protocol: u32,
    pub tcp_saddr: u32,
    pub tcp_daddr: u32,
    pub tcp_saddr_v6: u32,
    pub tcp_daddr_v6: u32,
    /// 1 when `inet_sock_set_state` has the layout of `TCP_STATE_STANDARD` (5.6 and later):
    /// the program then reads it with direct loads at those constant offsets instead of a
    /// probe read per field.
    pub tcp_standard: u32,
}

const _: () = assert!(core::mem::size_of::<TraceFields>() == 88);

/// The `inet_sock_set_state` record since 5.6: skaddr, oldstate, newstate, sport, dport,
/// family, protocol, saddr, daddr, saddr_v6, daddr_v6.
pub const TCP_STATE_STANDARD: [u32; 11] = [8, 16, 20, 24, 26, 28, 30, 32, 36, 40, 56];

/// Which processes the audit programs record: those in the cgroup v2 `cgroup_id` (at depth
/// `cgroup_level` below the root) or below it; everyone when `cgroup_id` is 0.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AuditScope {
    pub cgroup_id: u64,
    pub cgroup_level: u32,
    /// 1 when the audit log is on. The TCP state program runs for the network collector
    /// too, and emits audit records only then.
    pub enabled: u32,
}

const _: () = assert!(core::mem::size_of::<AuditScope>() == 16);

/// Names of the globals above in the kernel object.
pub const GLOBAL_OFFSETS: &str = "AUDIT_OFFSETS";
pub const GLOBAL_FIELDS: &str = "AUDIT_FIELDS";
pub const GLOBAL_SCOPE: &str = "AUDIT_SCOPE";

/// The owner of a TCP socket, remembered in `TCP_SOCKS` (keyed by the socket's kernel
/// address) from a process-context transition, so the softirq-context transitions that
/// follow are attributed to it. Also the value of `TCP_LISTENERS`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct SockOwner {
    pub pid: u32,
    pub uid: u32,
    pub gid: u32,
    /// 1 when the owner is inside the audit scope.
    pub in_scope: u32,
    pub comm: [u8; 16],
    pub cgroup_id: u64,
    /// When the connection reached ESTABLISHED; 0 before.
    pub established_ns: u64,
    /// When connect() moved it to SYN_SENT (for the connect latency); 0 if not seen.
    pub connect_ns: u64,
    /// The TCP state last reported for it (`tcp_state`).
    pub state: u32,
    /// `tcp_sock` counters as far as they were charged to the owner (see `net`): the next
    /// reading charges only what came since.
    pub segs_out: u32,
    pub segs_in: u32,
    pub retrans: u32,
    pub bytes_sent: u64,
}

const _: () = assert!(core::mem::size_of::<SockOwner>() == 80);

/// TCP states as `inet_sock_set_state` reports them (include/net/tcp_states.h).
pub mod tcp_state {
    pub const ESTABLISHED: i32 = 1;
    pub const SYN_SENT: i32 = 2;
    pub const SYN_RECV: i32 = 3;
    pub const FIN_WAIT1: i32 = 4;
    pub const FIN_WAIT2: i32 = 5;
    pub const TIME_WAIT: i32 = 6;
    pub const CLOSE: i32 = 7;
    pub const CLOSE_WAIT: i32 = 8;
    pub const LAST_ACK: i32 = 9;
    pub const LISTEN: i32 = 10;
    pub const CLOSING: i32 = 11;
}
