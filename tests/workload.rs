//! The dashboard tests' daemon and workload (tests/dashboard.rs, tests/page.rs): a daemon with
//! alerting (a webhook receiver, a heartbeat, a watched service, a failing TCP probe and a
//! passing HTTP probe), the log-file matcher and BPF stats on, under CPU, disk, network and
//! log work made here, so every panel of the catalogue has something to show.

use std::{
    io::Write as _,
    net::{TcpListener, TcpStream},
    process::Command,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    thread::JoinHandle,
    time::Duration,
};

use crate::{free_port, request, sink::Sink, spin, Daemon, Guard, NamedBinary};

/// Panels allowed to return nothing under this workload, each with why (for Prometheus's
/// answers in tests/dashboard.rs and the page's in tests/page.rs).
pub const MAY_BE_EMPTY: &[(&str, &str)] = &[
    // Only groups with a kill are drawn, and this test kills nothing (tests/audit.rs makes a
    // real OOM kill and checks its count).
    ("OOM kills by group", "no OOM kill here"),
    // Only groups that retransmitted are drawn; loopback loses nothing (tests/network.rs
    // checks retransmits under real loss).
    ("TCP retransmits by group", "no loss on loopback"),
    // A rule's failure series appears when it first fails; every rule here evaluates.
    ("Rule evaluation failures", "no rule fails"),
    // Only ports with a reset or an unanswered request are drawn; this workload's clients
    // wait for every answer (tests/service.rs makes both and counts them).
    ("Service errors", "no reset or unanswered request here"),
    // Only groups that asked a resolver are drawn; nothing here resolves a name over UDP
    // (tests/service.rs runs a resolver and checks every rcode).
    ("DNS responses by rcode", "no DNS query here"),
];

pub struct Workload {
    pub daemon: Daemon,
    /// The CPU-bound child: its group is the test's own.
    pub spinner: NamedBinary,
    stop: Arc<AtomicBool>,
    background: Option<JoinHandle<()>>,
    _children: Vec<Guard>,
    /// A TCP connection held open (both ends, a listener made after the daemon attached), so
    /// the sockets-by-state panel always has one: the traffic's own connections last
    /// milliseconds and a sampling may miss them all.
    _held: (TcpListener, TcpStream, TcpStream),
    _sink: Sink,
    _dir: tempfile::TempDir,
}

impl Workload {
    /// `extra`: more daemon flags.
    pub fn start(extra: &[&str]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        // Webhook receiver, heartbeat and the HTTP probe's target.
        let sink = Sink::start(&[]);
        let closed = free_port();
        let spinner = NamedBinary::new("/bin/dash", "mtdash");
        let log = dir.path().join("app.log");
        std::fs::write(&log, "").unwrap();
        let config = dir.path().join("alerting.yml");
        std::fs::write(
            &config,
            format!(
                "receivers:\n  - name: hook\n    webhook: {{url: \"{hook}\"}}\n\
                 route: {{receiver: hook, group_wait: 1s, group_interval: 1s}}\n\
                 heartbeat: {{url: \"{ping}\", interval: 1s}}\n\
                 services:\n  - {{name: spinner, comm: \"^{spinner}$\"}}\n\
                 probes:\n\
                 \x20 - {{name: closed, tcp: {{address: \"127.0.0.1:{closed}\"}}, interval: 1s, timeout: 1s, for: 0s}}\n\
                 \x20 - {{name: web, http: {{url: \"{health}\"}}, interval: 1s}}\n",
                hook = sink.url("/hook"),
                ping = sink.url("/ping"),
                spinner = spinner.name,
                health = sink.url("/health"),
            ),
        )
        .unwrap();
        let state = dir.path().join("state");
        let mut args = vec![
            "--bpf.stats",
            "--alert.config",
            config.to_str().unwrap(),
            "--alert.state-dir",
            state.to_str().unwrap(),
            "--alert.evaluation-interval",
            "1s",
            "--log-match.file",
            log.to_str().unwrap(),
            "--log-match.pattern",
            "errors=error",
        ];
        args.extend_from_slice(extra);
        let daemon = Daemon::start(&args);

        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server, _) = listener.accept().unwrap();

        // The workload: a CPU-bound child, direct disk reads and writes, TCP traffic to the
        // sink, log lines (the probes and notifications make their own).
        let spin = spin(&spinner, None);
        let data = dir.path().join("data");
        let disk = Guard(
            Command::new("sh")
                .arg("-c")
                .arg(format!(
                    "while :; do dd if=/dev/zero of={f} bs=64k count=32 oflag=direct conv=fsync 2>/dev/null; \
                     dd if={f} of=/dev/null bs=64k iflag=direct 2>/dev/null; done",
                    f = data.display()
                ))
                .spawn()
                .unwrap(),
        );
        let stop = Arc::new(AtomicBool::new(false));
        let background = {
            let (stop, url, log) = (stop.clone(), sink.url("/traffic"), log.clone());
            std::thread::spawn(move || {
                let mut f = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
                while !stop.load(Ordering::Relaxed) {
                    let _ = request("GET", &url);
                    writeln!(f, "an error line and a plain one").unwrap();
                    std::thread::sleep(Duration::from_millis(100));
                }
            })
        };
        Workload {
            daemon,
            spinner,
            stop,
            background: Some(background),
            _children: vec![spin, disk],
            _held: (listener, client, server),
            _sink: sink,
            _dir: dir,
        }
    }
}

impl Drop for Workload {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(b) = self.background.take() {
            let _ = b.join();
        }
    }
}
