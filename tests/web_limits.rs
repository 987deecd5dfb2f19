//! The server against clients that stall: thousands of connections that send half a
//! request head (or nothing) are closed by the header timeout while scrapes go on answered,
//! and the daemon's file descriptors come back to their level before; connections over the
//! cap are refused and counted; idle kept-alive connections are closed; oversized requests
//! are refused.

use std::{
    io::{Read as _, Write as _},
    net::TcpStream,
    time::{Duration, Instant},
};

use monitor_tests::*;

fn poll<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count()
}

/// The fewest descriptors the daemon holds over a few samples: its refreshes open procfs
/// files for a moment.
fn quiet_fds(pid: u32) -> usize {
    (0..20)
        .map(|_| {
            std::thread::sleep(Duration::from_millis(50));
            fds(pid)
        })
        .min()
        .unwrap()
}

/// Lets this process (and the daemon it starts) hold `n` more descriptors.
fn raise_fd_limit(n: u64) {
    let mut l = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: a valid pointer to an rlimit for the duration of the calls.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut l), 0);
        if l.rlim_cur < n {
            l.rlim_cur = n.min(l.rlim_max);
            assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &l), 0);
        }
    }
    assert!(
        l.rlim_cur >= n,
        "RLIMIT_NOFILE hard limit {} is below {n}",
        l.rlim_max
    );
}

fn connect(port: u16) -> TcpStream {
    TcpStream::connect(("127.0.0.1", port)).expect("connecting to the daemon")
}

#[test]
fn half_open_connections_are_closed_while_scrapes_are_answered() {
    const HALF: usize = 2500;
    const SILENT: usize = 500;
    raise_fd_limit(8192);
    // Long enough to open them all before the first expires.
    let d = Daemon::start(&[
        "--web.header-timeout",
        "30s",
        "--web.max-connections",
        "4000",
    ]);
    assert_eq!(d.get("/metrics").0, 200);
    let before = quiet_fds(d.pid());
    let mut held = Vec::new();
    for i in 0..HALF + SILENT {
        let mut c = connect(d.port);
        if i < HALF {
            c.write_all(b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Ag")
                .unwrap();
        }
        held.push(c);
    }
    // The daemon holds them all (a descriptor each), and answers meanwhile.
    let holding = poll("the daemon to accept every connection", || {
        let m = d.metrics();
        let open = m.value("monitor_http_connections_open");
        (open >= (HALF + SILENT) as f64).then_some(open)
    });
    assert!(fds(d.pid()) >= before + HALF + SILENT, "holding {holding}");
    assert_eq!(d.get("/healthz"), (200, "ok\n".to_string()));
    assert_eq!(d.get("/metrics").0, 200);
    // Each is closed by the server: the first wait covers the timeout, the rest are closed
    // by then.
    for (i, c) in held.iter_mut().enumerate() {
        assert!(
            closed_by_server(c, Duration::from_secs(60)),
            "connection {i} still open"
        );
    }
    let m = d.metrics();
    assert!(
        m.value("monitor_http_connections_timed_out_total{phase=\"header\"}")
            >= (HALF + SILENT) as f64
    );
    assert_eq!(m.value("monitor_http_connections_refused_total"), 0.0);
    drop(held);
    poll(
        "the daemon's descriptors to come back to their level",
        || (fds(d.pid()) <= before).then_some(()),
    );
    // Only the scrape that reads it is open now.
    assert_eq!(d.metrics().value("monitor_http_connections_open"), 1.0);
}

#[test]
fn connections_over_the_cap_are_refused_and_counted() {
    const CAP: usize = 20;
    const OVER: usize = 30;
    let d = Daemon::start(&[
        "--web.max-connections",
        &CAP.to_string(),
        "--web.header-timeout",
        "60s",
    ]);
    // Until the readiness probe's connection is gone, it holds a slot.
    poll("only the scrape's own connection open", || {
        (d.metrics().value("monitor_http_connections_open") == 1.0).then_some(())
    });
    // ... and the one that read that closes a moment later.
    std::thread::sleep(Duration::from_millis(500));
    let mut held: Vec<TcpStream> = (0..CAP).map(|_| connect(d.port)).collect();
    for c in &mut held {
        c.write_all(b"GET / HTTP/1.1\r\n").unwrap();
    }
    // Every one over the cap is closed at once: long before the 60 s header timeout.
    for i in 0..OVER {
        let mut c = connect(d.port);
        assert!(
            closed_by_server(&mut c, Duration::from_secs(20)),
            "connection {i} over the cap was kept"
        );
    }
    // The held ones are still open.
    for c in &mut held {
        c.set_nonblocking(true).unwrap();
        let mut b = [0u8; 1];
        assert!(
            matches!(c.read(&mut b), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock),
            "a connection under the cap was closed"
        );
    }
    drop(held);
    let refused = poll("a slot to free", || {
        let (status, body) = d.get("/metrics");
        (status == 200).then(|| Metrics(body).value("monitor_http_connections_refused_total"))
    });
    // The 30, and any try of the poll above made while the held ones were still closing.
    assert!(refused >= OVER as f64, "{refused}");
    assert_eq!(
        d.metrics().value("monitor_http_connections_max"),
        CAP as f64
    );
    // Said once in the log, not once per refusal.
    assert_eq!(
        d.log().matches("refusing an HTTP connection").count(),
        1,
        "{}",
        d.log()
    );
}

#[test]
fn an_idle_kept_alive_connection_is_closed() {
    let d = Daemon::start(&["--web.idle-timeout", "2s", "--web.header-timeout", "10m"]);
    let mut c = connect(d.port);
    c.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut buf = [0u8; 1024];
    let n = c.read(&mut buf).unwrap();
    assert!(
        buf[..n].starts_with(b"HTTP/1.1 200"),
        "{:?}",
        String::from_utf8_lossy(&buf[..n])
    );
    // The header timeout is ten minutes: only the idle timeout can close it within the
    // wait.
    assert!(closed_by_server(&mut c, Duration::from_secs(120)));
    let m = d.metrics();
    assert!(m.value("monitor_http_connections_timed_out_total{phase=\"idle\"}") >= 1.0);
}

fn raw(port: u16, request: &[u8]) -> String {
    let mut c = connect(port);
    c.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    // The server may answer and close before it has read all of an oversized request.
    let _ = c.write_all(request);
    let mut out = Vec::new();
    let _ = c.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

#[test]
fn oversized_requests_are_refused() {
    let d = Daemon::start(&[
        "--web.max-request-bytes",
        "4KiB",
        "--web.max-header-bytes",
        "16KiB",
    ]);
    let post = |body: &str| {
        raw(
            d.port,
            format!(
                "POST /api/v1/query HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\
                 Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n\
                 {body}",
                body.len()
            )
            .as_bytes(),
        )
    };
    let answer = post(&("query=".to_string() + &"1+".repeat(4000) + "1"));
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    // A small one goes through.
    let answer = post("query=1");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let huge = format!(
        "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\nConnection: close\r\n\r\n",
        "a".repeat(40_000)
    );
    let answer = raw(d.port, huge.as_bytes());
    assert!(answer.starts_with("HTTP/1.1 431"), "{answer}");
    assert_eq!(d.get("/healthz").0, 200);
}

#[test]
fn the_daemon_stops_without_waiting_for_stalled_clients() {
    let d = Daemon::start(&["--web.header-timeout", "10m", "--web.idle-timeout", "10m"]);
    let mut held: Vec<TcpStream> = (0..50).map(|_| connect(d.port)).collect();
    for c in held.iter_mut().step_by(2) {
        c.write_all(b"GET /metrics HTTP/1.1\r\nHo").unwrap();
    }
    poll("the daemon to hold them", || {
        (d.metrics().value("monitor_http_connections_open") >= 50.0).then_some(())
    });
    // SAFETY: signalling the daemon this test started, by pid.
    unsafe { libc::kill(d.pid() as i32, libc::SIGTERM) };
    for c in &mut held {
        assert!(closed_by_server(c, Duration::from_secs(60)));
    }
    poll("the daemon to exit", || {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", d.pid())).unwrap_or_default();
        let state = stat.rsplit_once(") ").and_then(|(_, r)| r.chars().next());
        matches!(state, None | Some('Z')).then_some(())
    });
    let log = d.log();
    assert!(log.contains("stopped"), "{log}");
    // Not held up by them until the drain's end.
    assert!(!log.contains("still open"), "{log}");
}
