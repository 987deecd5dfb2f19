//! The audit log against what the test itself did: the commands it ran (filename, arguments,
//! parent), how its children ended (exit code, signal, CPU from wait4's rusage), a TCP
//! connection between two of its processes (ports from the sockets themselves, bytes it
//! sent), rotation, a burst of 20,000 processes where written + dropped = started, and a real
//! OOM kill in a memory-limited cgroup (confirmed by the cgroup's own oom_kill count).
#![expect(
    clippy::zombie_processes,
    reason = "children are reaped with wait4, for their status and rusage"
)]

use std::{
    io::{Read, Write},
    net::TcpListener,
    os::unix::process::{CommandExt as _, ExitStatusExt as _},
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use monitor_tests::{Daemon, Guard, NamedBinary};
use serde_json::Value;

/// Every event in the audit log and its rotated files, oldest first.
fn events(path: &Path) -> Vec<Value> {
    let mut files: Vec<PathBuf> = (1..=20)
        .rev()
        .map(|n| PathBuf::from(format!("{}.{n}", path.display())))
        .filter(|p| p.exists())
        .collect();
    files.push(path.to_path_buf());
    let mut out = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap_or_default();
        for line in text.lines() {
            out.push(
                serde_json::from_str(line)
                    .unwrap_or_else(|e| panic!("{}: not JSON ({e}): {line}", f.display())),
            );
        }
    }
    out
}

/// Polls the log until `pick` finds what it wants, or fails with the log's tail.
fn wait_for<T>(path: &Path, what: &str, mut pick: impl FnMut(&[Value]) -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let evs = events(path);
        if let Some(t) = pick(&evs) {
            return t;
        }
        assert!(
            Instant::now() < deadline,
            "{what} never appeared in the audit log; last events:\n{:#?}",
            &evs[evs.len().saturating_sub(5)..]
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn find(evs: &[Value], kind: &str, pid: u32) -> Option<Value> {
    evs.iter()
        .find(|e| e["kind"] == kind && e["pid"].as_u64() == Some(u64::from(pid)))
        .cloned()
}

fn audit_daemon(dir: &Path, extra: &[&str]) -> (Daemon, PathBuf) {
    let log = dir.join("audit.log");
    let mut args = vec!["--audit.file", log.to_str().unwrap()];
    args.extend_from_slice(extra);
    (Daemon::start(&args), log)
}

/// (wait status, CPU seconds from rusage) of a child, reaped here.
fn wait4(pid: u32) -> (std::process::ExitStatus, f64) {
    let mut status = 0;
    // SAFETY: zeroed rusage is valid; both pointers live for the call.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: reaping our own child.
    let r = unsafe { libc::wait4(pid as i32, &mut status, 0, &mut ru) };
    assert_eq!(r, pid as i32, "wait4: {}", std::io::Error::last_os_error());
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    (
        std::process::ExitStatus::from_raw(status),
        secs(ru.ru_utime) + secs(ru.ru_stime),
    )
}

#[test]
fn exec_shows_filename_arguments_and_parent() {
    let dir = tempfile::tempdir().unwrap();
    let bin = NamedBinary::new("/bin/echo", "aex");
    let (d, log) = audit_daemon(
        dir.path(),
        &["--audit.include-comm", &format!("^{}$", bin.name)],
    );
    let args = ["alpha", "two words", "--flag=3"];
    let child = Command::new(&bin.path)
        .args(args)
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id();
    let (status, _) = wait4(pid);
    assert!(status.success());
    // A process outside the filter: its events are counted as filtered, not written.
    Command::new("/bin/true").status().unwrap();

    let exec = wait_for(&log, "the exec event", |e| find(e, "exec", pid));
    assert_eq!(exec["filename"], bin.path.to_str().unwrap());
    let mut want = vec![bin.path.to_str().unwrap()];
    want.extend(args);
    assert_eq!(exec["args"], serde_json::json!(want));
    assert_eq!(exec["args_truncated"], false);
    assert_eq!(exec["ppid"].as_u64(), Some(u64::from(std::process::id())));
    assert_eq!(exec["comm"], bin.name.as_str());
    // SAFETY: no preconditions.
    let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
    assert_eq!(exec["uid"].as_u64(), Some(u64::from(uid)));
    assert_eq!(exec["gid"].as_u64(), Some(u64::from(gid)));
    let exit = wait_for(&log, "the exit event", |e| find(e, "exit", pid));
    assert_eq!(exit["exit_code"], 0);
    // Every written event is the filtered-for command's.
    assert!(events(&log).iter().all(|e| e["comm"] == bin.name.as_str()));
    let deadline = Instant::now() + Duration::from_secs(10);
    while d
        .metrics()
        .value("monitor_audit_events_dropped_total{kind=\"exec\",reason=\"filter\"}")
        < 1.0
    {
        assert!(Instant::now() < deadline, "filtered exec never counted");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn long_arguments_are_cut_and_marked() {
    let dir = tempfile::tempdir().unwrap();
    let bin = NamedBinary::new("/bin/echo", "along");
    let (_d, log) = audit_daemon(
        dir.path(),
        &["--audit.include-comm", &format!("^{}$", bin.name)],
    );
    let long = "x".repeat(2000);
    let child = Command::new(&bin.path)
        .arg(&long)
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id();
    wait4(pid);
    let exec = wait_for(&log, "the exec event", |e| find(e, "exec", pid));
    assert_eq!(exec["args_truncated"], true);
    let args = exec["args"].as_array().unwrap();
    assert_eq!(args[0], bin.path.to_str().unwrap());
    let kept = args[1].as_str().unwrap();
    assert!(
        !kept.is_empty() && long.starts_with(kept) && kept.len() < long.len(),
        "{kept}"
    );
}

#[test]
fn exit_code_signal_lifetime_and_cpu() {
    let dir = tempfile::tempdir().unwrap();
    let sh = NamedBinary::new("/bin/sh", "aexit");
    let (_d, log) = audit_daemon(
        dir.path(),
        &["--audit.include-comm", &format!("^{}$", sh.name)],
    );

    let three = Command::new(&sh.path)
        .args(["-c", "exit 3"])
        .spawn()
        .unwrap();
    let pid3 = three.id();
    let (status, _) = wait4(pid3);
    assert_eq!(status.code(), Some(3));

    // Busy for a while, then SIGKILL: the record's CPU time against wait4's rusage, and
    // its lifetime between what the test saw around the spawn and the kill.
    let before_spawn = Instant::now();
    let busy = Command::new(&sh.path)
        .args(["-c", "while :; do :; done"])
        .spawn()
        .unwrap();
    let after_spawn = Instant::now();
    let pid9 = busy.id();
    std::thread::sleep(Duration::from_millis(700));
    // SAFETY: signalling our own child.
    unsafe { libc::kill(pid9 as i32, libc::SIGKILL) };
    let (status, cpu) = wait4(pid9);
    let after_wait = before_spawn.elapsed();
    assert_eq!(status.signal(), Some(libc::SIGKILL));

    let e3 = wait_for(&log, "the exit 3 event", |e| find(e, "exit", pid3));
    assert_eq!(e3["exit_code"], 3);
    assert!(e3.get("signal").is_none(), "{e3}");
    let e9 = wait_for(&log, "the SIGKILL event", |e| find(e, "exit", pid9));
    assert_eq!(e9["signal"], 9);
    assert!(e9.get("exit_code").is_none(), "{e9}");
    assert_eq!(e9["core_dumped"], Value::Null);
    let lifetime = e9["lifetime_seconds"].as_f64().unwrap();
    let shortest =
        Duration::from_millis(700).as_secs_f64() - (after_spawn - before_spawn).as_secs_f64();
    assert!(
        lifetime >= shortest && lifetime <= after_wait.as_secs_f64(),
        "lifetime {lifetime} not within [{shortest}, {}]",
        after_wait.as_secs_f64()
    );
    // rusage has tick resolution; the kernel record is exact.
    let recorded = e9["cpu_seconds"].as_f64().unwrap();
    assert!(
        (recorded - cpu).abs() <= 0.05 * cpu + 0.02,
        "cpu {recorded} vs rusage {cpu}"
    );
}

#[test]
fn tcp_connection_seen_from_both_ends() {
    let dir = tempfile::tempdir().unwrap();
    let bash = NamedBinary::new("/bin/bash", "atcp");
    let (_d, log) = audit_daemon(
        dir.path(),
        &[
            "--audit.include-kind",
            "tcp_connect",
            "--audit.include-kind",
            "tcp_accept",
            "--audit.include-kind",
            "tcp_close",
        ],
    );
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let server_port = listener.local_addr().unwrap().port();
    const SENT: usize = 3000;
    const REPLY: &str = "0123456";
    // The client: another process, sending SENT bytes, reading the reply, closing.
    let script = format!(
        "exec 3<>/dev/tcp/127.0.0.1/{server_port}; head -c {SENT} /dev/zero | tr '\\0' x >&3; \
         read -r -n {} reply <&3; exec 3<&-",
        REPLY.len()
    );
    let client = Guard(
        Command::new(&bash.path)
            .args(["-c", &script])
            .spawn()
            .unwrap(),
    );
    let client_pid = client.id();
    let (mut conn, peer) = listener.accept().unwrap();
    let client_port = peer.port();
    let mut got = vec![0u8; SENT];
    conn.read_exact(&mut got).unwrap();
    conn.write_all(REPLY.as_bytes()).unwrap();
    let mut rest = Vec::new();
    conn.read_to_end(&mut rest).unwrap(); // the client's close
    drop(conn);
    let server_pid = std::process::id();

    let by_port = |evs: &[Value], kind: &str, local: u16| {
        evs.iter()
            .find(|e| e["kind"] == kind && e["local_port"].as_u64() == Some(u64::from(local)))
            .cloned()
    };
    let connect = wait_for(&log, "the connect event", |e| {
        by_port(e, "tcp_connect", client_port)
    });
    assert_eq!(connect["pid"].as_u64(), Some(u64::from(client_pid)));
    assert_eq!(connect["comm"], bash.name.as_str());
    assert_eq!(connect["local_address"], "127.0.0.1");
    assert_eq!(connect["remote_address"], "127.0.0.1");
    assert_eq!(
        connect["remote_port"].as_u64(),
        Some(u64::from(server_port))
    );

    let accept = wait_for(&log, "the accept event", |e| {
        by_port(e, "tcp_accept", server_port)
    });
    assert_eq!(accept["pid"].as_u64(), Some(u64::from(server_pid)));
    assert_eq!(accept["remote_port"].as_u64(), Some(u64::from(client_port)));
    assert_eq!(accept["local_address"], "127.0.0.1");

    let sclose = wait_for(&log, "the server's close", |e| {
        by_port(e, "tcp_close", server_port)
    });
    assert_eq!(sclose["pid"].as_u64(), Some(u64::from(server_pid)));
    assert_eq!(sclose["remote_port"].as_u64(), Some(u64::from(client_port)));
    let cclose = wait_for(&log, "the client's close", |e| {
        by_port(e, "tcp_close", client_port)
    });
    assert_eq!(cclose["pid"].as_u64(), Some(u64::from(client_pid)));
    assert_eq!(cclose["remote_port"].as_u64(), Some(u64::from(server_port)));
    // Sequence-space counters: the payload, plus one for a FIN, plus one for the SYN on the
    // connecting side.
    let within = |v: &Value, payload: usize, extra: usize, what: &str| {
        let n = v.as_u64().unwrap_or_else(|| panic!("{what}: {v}")) as usize;
        assert!(
            n >= payload && n <= payload + extra,
            "{what}: {n} for {payload} bytes of payload"
        );
    };
    within(&sclose["bytes_received"], SENT, 1, "server received");
    within(&sclose["bytes_acked"], REPLY.len(), 1, "server acked");
    within(&cclose["bytes_received"], REPLY.len(), 1, "client received");
    within(&cclose["bytes_acked"], SENT, 2, "client acked");
    assert!(sclose["duration_seconds"].as_f64().unwrap() > 0.0);
}

#[test]
fn rotation_keeps_n_files_within_the_bound() {
    let dir = tempfile::tempdir().unwrap();
    let bin = NamedBinary::new("/bin/true", "arot");
    let (d, _log) = audit_daemon(
        dir.path(),
        &[
            "--audit.max-size",
            "4KiB",
            "--audit.max-files",
            "3",
            "--audit.include-comm",
            &format!("^{}$", bin.name),
        ],
    );
    // About 500 bytes of log per process: 200 processes fill far more than 4 files.
    let n = 200;
    for _ in 0..n {
        Command::new(&bin.path).status().unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let m = d.metrics();
        let written = m.value("monitor_audit_events_total{kind=\"exec\"}")
            + m.value("monitor_audit_events_total{kind=\"exit\"}");
        if written >= f64::from(2 * n) {
            break;
        }
        assert!(Instant::now() < deadline, "only {written} events written");
        std::thread::sleep(Duration::from_millis(100));
    }
    let mut names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(
        names,
        ["audit.log", "audit.log.1", "audit.log.2", "audit.log.3"]
    );
    for name in &names {
        let text = std::fs::read_to_string(dir.path().join(name)).unwrap();
        assert!(text.len() <= 4096, "{name} has {} bytes", text.len());
        assert!(text.ends_with('\n'), "{name} ends mid-line");
        for line in text.lines() {
            let v: Value = serde_json::from_str(line).unwrap();
            assert_eq!(v["comm"], bin.name.as_str());
        }
    }
}

/// A cgroup v2 directory of the test's own, removed when dropped.
struct Cgroup(PathBuf);

impl Cgroup {
    fn new(root: &Path, name: &str) -> Self {
        let dir = root.join(format!("{name}-{}", std::process::id()));
        std::fs::create_dir(&dir).unwrap_or_else(|e| panic!("creating {}: {e}", dir.display()));
        Cgroup(dir)
    }
}

impl Drop for Cgroup {
    fn drop(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::fs::remove_dir(&self.0).is_err() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

fn cgroup2_root() -> PathBuf {
    let mi = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    mi.lines()
        .find_map(|l| {
            let (pre, post) = l.split_once(" - ")?;
            (post.split_whitespace().next()? == "cgroup2")
                .then(|| pre.split_whitespace().nth(4).map(PathBuf::from))?
        })
        .expect("a cgroup2 mount")
}

#[test]
fn a_burst_of_20000_processes_is_all_accounted_for() {
    const N: u64 = 20_000;
    let dir = tempfile::tempdir().unwrap();
    let cg = Cgroup::new(&cgroup2_root(), "monitor-audit-burst");
    let tru = NamedBinary::new("/bin/true", "aburst");
    let bash = NamedBinary::new("/bin/bash", "aspawn");
    // The kernel records only processes in the test's cgroup, so every event seen is the
    // test's own; the rate limit makes the daemon drop some for sure.
    let (d, log) = audit_daemon(
        dir.path(),
        &[
            "--audit.cgroup",
            cg.0.to_str().unwrap(),
            "--audit.rate-limit",
            "200",
        ],
    );
    let script = format!(
        "read go; i=0; while [ $i -lt {N} ]; do {}; i=$((i+1)); done",
        tru.path.display()
    );
    let mut spawner = Guard(
        Command::new(&bash.path)
            .args(["-c", &script])
            .stdin(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    std::fs::write(cg.0.join("cgroup.procs"), spawner.id().to_string()).unwrap();
    let started = Instant::now();
    spawner.0.stdin.take().unwrap().write_all(b"go\n").unwrap();
    let status = spawner.0.wait().unwrap();
    assert!(status.success());
    eprintln!("{N} processes in {:.1}s", started.elapsed().as_secs_f64());

    // Execs: the N children. Exits: the N children and the spawner.
    let want = [("exec", N), ("exit", N + 1)];
    let reasons = ["ring_buffer_full", "rate_limit", "filter", "write_error"];
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let m = d.metrics();
        let evs = events(&log);
        let mut ok = true;
        let mut report = String::new();
        for (kind, n) in want {
            let in_file = evs.iter().filter(|e| e["kind"] == kind).count() as u64;
            let written = m.value(&format!("monitor_audit_events_total{{kind=\"{kind}\"}}")) as u64;
            let dropped: u64 = reasons
                .iter()
                .map(|r| {
                    m.value(&format!(
                        "monitor_audit_events_dropped_total{{kind=\"{kind}\",reason=\"{r}\"}}"
                    )) as u64
                })
                .sum();
            report += &format!(
                "{kind}: {in_file} in the file, {written} written, {dropped} dropped, {n} started; "
            );
            ok &= in_file == written && written + dropped == n;
        }
        if ok {
            eprintln!("{report}");
            let rate_limited = m
                .value("monitor_audit_events_dropped_total{kind=\"exec\",reason=\"rate_limit\"}")
                + m.value(
                    "monitor_audit_events_dropped_total{kind=\"exit\",reason=\"rate_limit\"}",
                );
            assert!(rate_limited > 0.0, "the rate limit never acted: {report}");
            break;
        }
        assert!(Instant::now() < deadline, "never added up: {report}");
        std::thread::sleep(Duration::from_millis(500));
    }
    // Everything written is the test's own.
    let evs = events(&log);
    for e in &evs {
        if e["kind"] == "exec" {
            assert_eq!(e["comm"], tru.name.as_str(), "{e}");
        }
    }
}

#[test]
fn an_oom_kill_is_counted_and_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let tail = NamedBinary::new("/usr/bin/tail", "aoom");
    let (d, log) = audit_daemon(
        dir.path(),
        &["--audit.include-comm", &format!("^{}$", tail.name)],
    );
    // The memory controller: on cgroup2 when it has it, else cgroup v1's.
    let v2 = cgroup2_root();
    let v2_memory = std::fs::read_to_string(v2.join("cgroup.controllers"))
        .unwrap_or_default()
        .split_whitespace()
        .any(|c| c == "memory");
    const LIMIT: u64 = 64 << 20;
    let (cg, events_file, kills_key) = if v2_memory {
        let cg = Cgroup::new(&v2, "monitor-audit-oom");
        std::fs::write(cg.0.join("memory.max"), LIMIT.to_string()).unwrap();
        let _ = std::fs::write(cg.0.join("memory.swap.max"), "0");
        let f = cg.0.join("memory.events");
        (cg, f, "oom_kill")
    } else {
        let cg = Cgroup::new(Path::new("/sys/fs/cgroup/memory"), "monitor-audit-oom");
        std::fs::write(cg.0.join("memory.limit_in_bytes"), LIMIT.to_string()).unwrap();
        let _ = std::fs::write(cg.0.join("memory.swappiness"), "0");
        let f = cg.0.join("memory.oom_control");
        (cg, f, "oom_kill")
    };
    let procs = std::ffi::CString::new(cg.0.join("cgroup.procs").to_str().unwrap()).unwrap();
    // `tail` keeps the current line in memory, and /dev/zero has no newline: it grows until
    // the cgroup's limit.
    let mut c = Command::new(&tail.path);
    c.arg("/dev/zero");
    // SAFETY: only async-signal-safe calls (open, write, close) between fork and exec.
    unsafe {
        c.pre_exec(move || {
            let fd = libc::open(procs.as_ptr(), libc::O_WRONLY);
            if fd < 0 || libc::write(fd, b"0".as_ptr().cast(), 1) != 1 {
                return Err(std::io::Error::last_os_error());
            }
            libc::close(fd);
            Ok(())
        })
    };
    let child = c.spawn().unwrap();
    let pid = child.id();
    let (status, _) = wait4(pid);
    assert_eq!(status.signal(), Some(libc::SIGKILL), "{status:?}");
    let kills: u64 = std::fs::read_to_string(&events_file)
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix(kills_key)?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {kills_key} in {}", events_file.display()));
    assert_eq!(kills, 1, "the cgroup's own OOM kill count");

    let oom = wait_for(&log, "the OOM kill event", |e| find(e, "oom_kill", pid));
    assert_eq!(oom["comm"], tail.name.as_str());
    let rss = oom["anon_rss_bytes"].as_u64().unwrap()
        + oom["file_rss_bytes"].as_u64().unwrap()
        + oom["shmem_rss_bytes"].as_u64().unwrap();
    assert!(
        rss > LIMIT / 2 && rss <= LIMIT + (4 << 20),
        "victim's resident memory {rss} for a {LIMIT}-byte limit"
    );
    let exit = wait_for(&log, "the exit event", |e| find(e, "exit", pid));
    assert_eq!(exit["signal"], 9);
    // The kernel program's own log line (aya-log), forwarded into the daemon's log.
    let said = format!("OOM killer chose pid {pid}");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !d.log().contains(&said) {
        assert!(Instant::now() < deadline, "no {said:?} in:\n{}", d.log());
        std::thread::sleep(Duration::from_millis(100));
    }

    let series = format!("monitor_process_oom_kills_total{{group=\"{}\"}}", tail.name);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if d.metrics().get(&series) == Some(1.0) {
            break;
        }
        assert!(Instant::now() < deadline, "{series} never reached 1");
        std::thread::sleep(Duration::from_millis(100));
    }
}
