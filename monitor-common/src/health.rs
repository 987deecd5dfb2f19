//! Indices into the `HEALTH` per-CPU array: what the kernel side failed to record.
//! The daemon exports each one, so nothing is dropped silently.

/// An insert into `TASK_STATS` failed (the map is full): that switch's time is lost.
pub const TASK_STATS_INSERT_FAILED: u32 = 0;
/// An insert into `RUNQ_START` failed: that wait is not measured.
pub const RUNQ_START_INSERT_FAILED: u32 = 1;
/// A process event could not be reserved in `PROC_EVENTS` (the daemon fell behind).
pub const PROC_EVENTS_LOST: u32 = 2;

/// An insert into `DISK_STATS` failed (the map is full): that request is not counted.
pub const DISK_STATS_INSERT_FAILED: u32 = 3;
/// An insert into `BLOCK_REQUESTS` failed: that request's latency and submitter are lost.
pub const BLOCK_REQUESTS_INSERT_FAILED: u32 = 4;

/// An insert into `BLOCK_TASKS` failed (the map is full): that request is not charged.
pub const BLOCK_TASKS_INSERT_FAILED: u32 = 7;

/// An insert into `NET_STATS` failed (the map is full): that traffic is not counted.
pub const NET_STATS_INSERT_FAILED: u32 = 5;
/// An insert into `TCP_SOCKS` failed: that socket's segments and health go uncounted.
pub const TCP_SOCKS_INSERT_FAILED: u32 = 6;

/// An insert into `SVC_STATS` failed (the map is full): that service figure is lost.
pub const SVC_STATS_INSERT_FAILED: u32 = 8;
/// An insert into `SVC_SOCKS` failed: that connection's turns are not followed.
pub const SVC_SOCKS_INSERT_FAILED: u32 = 9;

pub const HEALTH_COUNTERS: u32 = 10;

/// Why a program dropped what it saw: the `reason` label of `monitor_bpf_misses_total`.
pub mod reason {
    /// An insert into a map failed (the map is full).
    pub const MAP_FULL: u32 = 0;
    /// A ring buffer had no room for a record (the daemon fell behind).
    pub const RING_FULL: u32 = 1;
    /// A field of the record or of a kernel struct could not be read.
    pub const READ_FAILED: u32 = 2;
    /// A TCP socket whose owner is not known (opened before the programs attached and not
    /// used since, or its entry aged out).
    pub const NO_OWNER: u32 = 3;
    /// A block request completed without its submission or issue having been seen (in
    /// flight when the programs attached, or its entry evicted).
    pub const NO_SUBMITTER: u32 = 4;
    pub const COUNT: u32 = 5;
    pub const NAMES: [&str; COUNT as usize] = [
        "map_full",
        "ring_full",
        "read_failed",
        "no_owner",
        "no_submitter",
    ];
}

/// The programs, by index into `MISSES` (`program * reason::COUNT + reason`). Names are the
/// programs' names in the object (a test checks them against it).
pub mod program {
    pub const SCHED_SWITCH: u32 = 0;
    pub const SCHED_WAKEUP: u32 = 1;
    pub const SCHED_PROCESS_EXEC: u32 = 2;
    pub const SCHED_PROCESS_EXIT: u32 = 3;
    pub const OOM_MARK_VICTIM: u32 = 4;
    pub const BLOCK_SUBMIT: u32 = 5;
    pub const BLOCK_RQ_ISSUE: u32 = 6;
    pub const BLOCK_RQ_COMPLETE: u32 = 7;
    pub const NET_SOCK_SEND: u32 = 8;
    pub const NET_SOCK_RECV: u32 = 9;
    pub const NET_SKB_COPY: u32 = 10;
    pub const NET_DEV_QUEUE: u32 = 11;
    pub const NET_UDP_CONSUME: u32 = 12;
    pub const TCP_STATE: u32 = 13;
    pub const TCP_RETRANSMIT: u32 = 14;
    pub const TCP_RESET: u32 = 15;
    pub const SVC_STATE: u32 = 16;
    pub const SVC_SEND: u32 = 17;
    pub const SVC_RECV: u32 = 18;
    pub const SVC_RESET: u32 = 19;
    pub const COUNT: u32 = 20;
    /// The `program` label: the measure's program family (a typed program and its classic
    /// fallback, or the submission programs of both block paths, share one).
    pub const NAMES: [&str; COUNT as usize] = [
        "sched_switch",
        "sched_wakeup",
        "sched_process_exec",
        "sched_process_exit",
        "oom_mark_victim",
        "block_submit",
        "block_rq_issue",
        "block_rq_complete",
        "net_sock_send",
        "net_sock_recv",
        "net_skb_copy",
        "net_dev_queue",
        "net_udp_consume",
        "tcp_state",
        "tcp_retransmit",
        "tcp_reset",
        "svc_state",
        "svc_send",
        "svc_recv",
        "svc_reset",
    ];
    /// The object's programs behind each entry (typed and classic variants, both block
    /// submission paths); a family is reported while one of them is attached.
    pub const OBJECT_PROGRAMS: [&[&str]; COUNT as usize] = [
        &["sched_switch_btf", "sched_switch_tp"],
        &[
            "sched_wakeup_btf",
            "sched_wakeup_new_btf",
            "sched_wakeup",
            "sched_wakeup_new",
        ],
        &["sched_process_exec"],
        &["sched_process_exit"],
        &["oom_mark_victim"],
        &[
            "block_owner_io_start_btf",
            "block_owner_io_start",
            "block_owner_bio_queue",
            "block_owner_split",
        ],
        &["block_rq_issue_btf", "block_rq_issue"],
        &["block_rq_complete_btf", "block_rq_complete"],
        &["net_sock_send_btf", "net_sock_send"],
        &["net_sock_recv_btf", "net_sock_recv"],
        &["net_skb_copy"],
        &["net_dev_queue"],
        &["net_udp_consume"],
        &["tcp_state_btf", "tcp_state"],
        &["tcp_retransmit_btf", "tcp_retransmit"],
        &[
            "tcp_send_reset_btf",
            "tcp_receive_reset_btf",
            "tcp_send_reset",
            "tcp_receive_reset",
        ],
        // The typed programs shared with the network family (`hooks` in the object), then
        // the family's own.
        &["tcp_state_btf", "svc_state_btf"],
        &["net_sock_send_btf", "svc_send_btf"],
        &["net_sock_recv_btf", "svc_recv_btf"],
        &[
            "tcp_send_reset_btf",
            "tcp_receive_reset_btf",
            "svc_reset_sent_btf",
            "svc_reset_received_btf",
        ],
    ];
    /// The reasons each program can count, so every possible series exists from the start
    /// at 0 (and no impossible one is exported).
    pub const REASONS: [&[u32]; COUNT as usize] = {
        use super::reason::*;
        [
            &[MAP_FULL],
            &[MAP_FULL],
            &[RING_FULL],
            &[RING_FULL],
            &[RING_FULL, READ_FAILED],
            &[MAP_FULL],
            &[MAP_FULL],
            &[MAP_FULL, NO_SUBMITTER, READ_FAILED],
            &[MAP_FULL, READ_FAILED],
            &[MAP_FULL, READ_FAILED],
            &[MAP_FULL, READ_FAILED],
            &[MAP_FULL, READ_FAILED, NO_OWNER],
            &[MAP_FULL, READ_FAILED],
            &[MAP_FULL, READ_FAILED, NO_OWNER, RING_FULL],
            &[READ_FAILED, NO_OWNER, MAP_FULL],
            &[READ_FAILED, NO_OWNER, MAP_FULL],
            &[MAP_FULL, READ_FAILED],
            &[MAP_FULL, READ_FAILED],
            &[MAP_FULL, READ_FAILED],
            &[MAP_FULL, NO_OWNER],
        ]
    };
}

/// Entries of the `MISSES` per-CPU array.
pub const MISS_SLOTS: u32 = program::COUNT * reason::COUNT;
