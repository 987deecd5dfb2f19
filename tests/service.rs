//! Services measured in the kernel without instrumentation, against what the test's own
//! server and client did: a known number of HTTP requests over keep-alive and new
//! connections, each endpoint with a known delay and status, connections dropped and reset
//! with a request unanswered, connections opening with the HTTP/2 preface (left out), and
//! DNS queries to a resolver on loopback answering known rcodes. Server side (inbound, per
//! listening port) and client side (outbound, per remote port) must both equal those
//! counts.

use std::{
    io::{BufRead as _, BufReader},
    process::{ChildStdout, Command, Stdio},
    time::{Duration, Instant},
};

use monitor_tests::*;

/// A `svc-child` under its own name, so it forms its own group.
struct Child {
    _guard: Guard,
    out: BufReader<ChildStdout>,
    group: String,
    _bin: NamedBinary,
}

impl Child {
    fn start(prefix: &str, args: &[&str]) -> Self {
        let bin = NamedBinary::new(env!("CARGO_BIN_EXE_svc-child"), prefix);
        let mut child = Command::new(&bin.path)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("starting svc-child");
        let out = BufReader::new(child.stdout.take().unwrap());
        Child {
            _guard: Guard(child),
            out,
            group: bin.name.clone(),
            _bin: bin,
        }
    }

    fn line(&mut self) -> String {
        let mut line = String::new();
        self.out.read_line(&mut line).unwrap();
        line.trim().to_string()
    }
}

/// Scrapes until `done` holds (the last closes reached the daemon), at most 30 s; the
/// figures are then compared exactly.
fn scrape_until(d: &Daemon, done: impl Fn(&Metrics) -> bool) -> Metrics {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let m = d.metrics();
        if done(&m) || Instant::now() > deadline {
            return m;
        }
        std::thread::sleep(Duration::from_millis(300));
    }
}

/// The cumulative count of histogram `name` with `labels` at bucket bound `le`.
fn bucket(m: &Metrics, name: &str, labels: &str, le: f64) -> f64 {
    let prefix = format!("{name}_bucket{{{labels},le=\"");
    m.0.lines()
        .find_map(|l| {
            let rest = l.strip_prefix(&prefix)?;
            let (bound, value) = rest.split_once("\"} ")?;
            let bound: f64 = bound.parse().ok()?;
            ((bound - le).abs() < 1e-9).then(|| value.parse().unwrap())
        })
        .unwrap_or_else(|| panic!("no bucket le={le} of {name}{{{labels}}} in:\n{}", m.0))
}

/// Other processes of a shared machine must not take the series budgets (ports and groups
/// are kept in the order first seen).
const BUDGETS: &[&str] = &[
    "--service.max-ports",
    "65536",
    "--process.max-groups",
    "100000",
];

const NEW_OK: u64 = 5;
const KEEP_OK: u64 = 6;
const KEEP_FAIL: u64 = 4;
const NEW_FAIL: u64 = 2;
const DROP: u64 = 2;
const RESET: u64 = 3;
/// Connections opening with the HTTP/2 preface, answered (404) once each: accepted, but
/// neither turns nor codes.
const H2: u64 = 2;

#[test]
fn http_turns_latency_codes_and_errors_on_both_sides() {
    let d = Daemon::start(BUDGETS);
    let mut server = Child::start("svsrv", &["http-server"]);
    let port = server.line();
    let port = port
        .strip_prefix("port ")
        .expect("the server's port")
        .to_string();
    let n = |v: u64| v.to_string();
    let mut client = Child::start(
        "svcli",
        &[
            "http-client",
            &port,
            &n(NEW_OK),
            &n(KEEP_OK),
            &n(KEEP_FAIL),
            &n(NEW_FAIL),
            &n(DROP),
            &n(RESET),
            &n(H2),
        ],
    );
    assert_eq!(client.line(), "done");

    let ok = NEW_OK + KEEP_OK;
    let fail = KEEP_FAIL + NEW_FAIL;
    let connections = NEW_OK + 1 + NEW_FAIL + DROP + RESET + H2;
    let srv = format!("port=\"{port}\",group=\"{}\"", server.group);
    let cli = format!("port=\"{port}\",group=\"{}\"", client.group);
    let errors = |prefix: &str, labels: &str, kind: &str| {
        format!("monitor_service_{prefix}errors_total{{{labels},kind=\"{kind}\"}}")
    };
    let m = scrape_until(&d, |m| {
        m.get(&errors("", &srv, "unanswered")) == Some((DROP + RESET) as f64)
            && m.get(&errors("outbound_", &cli, "unanswered")) == Some((DROP + RESET) as f64)
    });

    for (prefix, labels) in [("", &srv), ("outbound_", &cli)] {
        let side = if prefix.is_empty() {
            "server"
        } else {
            "client"
        };
        let requests = m.value(&format!(
            "monitor_service_{prefix}requests_total{{{labels}}}"
        ));
        assert_eq!(requests, (ok + fail) as f64, "{side}: requests\n{}", m.0);
        for (code, want) in [
            ("1xx", 0),
            ("2xx", ok),
            ("3xx", 0),
            ("4xx", 0),
            ("5xx", fail),
        ] {
            let got = m.value(&format!(
                "monitor_service_{prefix}http_responses_total{{{labels},code=\"{code}\"}}"
            ));
            assert_eq!(got, want as f64, "{side}: {code} responses");
        }
        // Which bucket an answer lands in above its delay depends on how loaded the
        // machine is: only what cannot move is checked. No answer comes before its delay:
        // none under 16.4 ms (the 20 ms ones), at most the 20 ms ones under 65.5 ms (the
        // 80 ms ones are above), every one counted.
        let h = format!("monitor_service_{prefix}response_latency_seconds");
        assert_eq!(bucket(&m, &h, labels, 0.016384), 0.0, "{side}: under 20 ms");
        let under_80 = bucket(&m, &h, labels, 0.065536);
        assert!(under_80 <= ok as f64, "{side}: {under_80} under 65.5 ms");
        assert_eq!(
            m.value(&format!("{h}_count{{{labels}}}")),
            (ok + fail) as f64,
            "{side}: latencies"
        );
        let sum = m.value(&format!("{h}_sum{{{labels}}}"));
        assert!(
            sum >= (ok as f64) * 0.020 + (fail as f64) * 0.080,
            "{side}: latency sum {sum} under the delays"
        );
        assert_eq!(
            m.value(&errors(prefix, labels, "unanswered")),
            (DROP + RESET) as f64,
            "{side}: closed with a request unanswered"
        );
    }
    // The client's wait holds the server's: it wrote before the server read, and read
    // after the server wrote.
    let sum = |labels: &str, prefix: &str| {
        m.value(&format!(
            "monitor_service_{prefix}response_latency_seconds_sum{{{labels}}}"
        ))
    };
    assert!(
        sum(&cli, "outbound_") >= sum(&srv, ""),
        "client latency under the server's"
    );
    assert_eq!(
        m.value(&format!(
            "monitor_service_connections_accepted_total{{{srv}}}"
        )),
        connections as f64,
        "connections accepted"
    );
    assert_eq!(m.value(&errors("", &srv, "reset_sent")), RESET as f64);
    assert_eq!(m.value(&errors("", &srv, "reset_received")), 0.0);
    assert_eq!(
        m.value(&errors("outbound_", &cli, "reset_received")),
        RESET as f64
    );
    assert_eq!(m.value(&errors("outbound_", &cli, "reset_sent")), 0.0);
    assert_eq!(m.value("monitor_service_requests_measured"), 1.0);

    // `monitor top`'s services view: the server's port and group, idle over the interval
    // (the client is done).
    let out = Command::new(monitor_bin())
        .args(["top", "--url", &d.url(""), "--once", "--output", "json"])
        .args(["--interval", "500ms", "--limit", "1"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "monitor top: {}",
        read_all(&out.stderr[..])
    );
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let row = doc["services"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["port"] == port.as_str() && r["group"] == server.group.as_str())
        .unwrap_or_else(|| panic!("no service row for {srv} in {doc}"));
    assert_eq!(row["requests_per_second"], 0.0, "{row}");
    assert_eq!(row["errors_per_second"], 0.0, "{row}");
}

#[test]
fn dns_latency_and_rcodes_of_a_resolver_on_loopback() {
    const RESOLVER: &str = "127.0.0.86";
    let (noerror, servfail, nxdomain) = (4u64, 2u64, 3u64);
    // Pairs of queries in one sendmmsg (NOERROR and NXDOMAIN), as glibc's getaddrinfo.
    let pairs = 3u64;
    let d = Daemon::start(BUDGETS);
    let mut server = Child::start("svdns", &["dns-server", RESOLVER]);
    assert_eq!(server.line(), "ready");
    let mut client = Child::start(
        "svdnc",
        &[
            "dns-client",
            RESOLVER,
            &noerror.to_string(),
            &servfail.to_string(),
            &nxdomain.to_string(),
            &pairs.to_string(),
        ],
    );
    assert_eq!(client.line(), "done");
    let g = format!("group=\"{}\"", client.group);
    let total = noerror + servfail + nxdomain + 2 * pairs;
    let m = scrape_until(&d, |m| {
        m.get(&format!("monitor_dns_latency_seconds_count{{{g}}}")) == Some(total as f64)
    });
    for (rcode, want) in [
        ("NOERROR", noerror + pairs),
        ("SERVFAIL", servfail),
        ("NXDOMAIN", nxdomain + pairs),
        ("FORMERR", 0),
        ("REFUSED", 0),
    ] {
        let got = m.value(&format!(
            "monitor_dns_responses_total{{{g},rcode=\"{rcode}\"}}"
        ));
        assert_eq!(got, want as f64, "{rcode} responses\n{}", m.0);
    }
    assert_eq!(
        m.value(&format!("monitor_dns_latency_seconds_count{{{g}}}")),
        total as f64
    );
    // The resolver answers after 5 ms: none under 4.1 ms.
    assert_eq!(bucket(&m, "monitor_dns_latency_seconds", &g, 0.004096), 0.0);
    // The resolver's own socket is not connected to port 53: it makes no DNS figures.
    assert!(m
        .get(&format!(
            "monitor_dns_latency_seconds_count{{group=\"{}\"}}",
            server.group
        ))
        .is_none());
}

/// A kernel without `sock_send_length` (before 6.3), forced: connections and resets are
/// still measured, the turns are reported absent rather than as zeros. Both typed send
/// programs fail: the one the network family shares (which falls back to its classic one)
/// and the service family's own.
#[test]
fn without_the_length_hooks_turns_are_reported_absent() {
    let fail = [
        "--debug.fail-attach",
        "net_sock_send_btf",
        "--debug.fail-attach",
        "svc_send_btf",
    ];
    let d = Daemon::start(&[BUDGETS, &fail].concat());
    let mut server = Child::start("svsrv", &["http-server"]);
    let port = server.line();
    let port = port
        .strip_prefix("port ")
        .expect("the server's port")
        .to_string();
    let mut client = Child::start(
        "svcli",
        &["http-client", &port, "2", "0", "0", "0", "0", "1", "0"],
    );
    assert_eq!(client.line(), "done");
    let srv = format!("port=\"{port}\",group=\"{}\"", server.group);
    let accepted = format!("monitor_service_connections_accepted_total{{{srv}}}");
    let reset = format!("monitor_service_errors_total{{{srv},kind=\"reset_sent\"}}");
    // Two connections with a request each, the keep-alive one (empty here), one reset.
    let m = scrape_until(&d, |m| {
        m.get(&accepted) == Some(4.0) && m.get(&reset) == Some(1.0)
    });
    assert_eq!(m.value(&accepted), 4.0, "{}", m.0);
    assert_eq!(m.value(&reset), 1.0);
    assert_eq!(m.value("monitor_service_requests_measured"), 0.0);
    assert!(
        !m.0.contains("monitor_service_requests_total{"),
        "turns exported without their hooks"
    );
    assert!(!m.0.contains("measure=\"service_send\""));
    assert!(d
        .log()
        .contains("service requests, latency, status codes and DNS are not measured"));
}

/// Two connections with one `/ok` each, an empty keep-alive one and one reset, counted as
/// with every hook; returns the metrics, and checks which program serves each measure.
fn two_requests_and_a_reset(d: &Daemon, programs: [&str; 4]) -> Metrics {
    let mut server = Child::start("svsrv", &["http-server"]);
    let port = server.line();
    let port = port
        .strip_prefix("port ")
        .expect("the server's port")
        .to_string();
    let mut client = Child::start(
        "svcli",
        &["http-client", &port, "2", "0", "0", "0", "0", "1", "0"],
    );
    assert_eq!(client.line(), "done");
    let srv = format!("port=\"{port}\",group=\"{}\"", server.group);
    let accepted = format!("monitor_service_connections_accepted_total{{{srv}}}");
    let reset = format!("monitor_service_errors_total{{{srv},kind=\"reset_sent\"}}");
    let m = scrape_until(d, |m| {
        m.get(&accepted) == Some(4.0) && m.get(&reset) == Some(1.0)
    });
    assert_eq!(m.value(&accepted), 4.0, "{}", m.0);
    assert_eq!(m.value(&reset), 1.0);
    assert_eq!(
        m.value(&format!("monitor_service_requests_total{{{srv}}}")),
        2.0
    );
    assert_eq!(
        m.value(&format!(
            "monitor_service_http_responses_total{{{srv},code=\"2xx\"}}"
        )),
        2.0
    );
    let measures = [
        ("service_connections", "inet_sock_set_state"),
        ("service_send", "sock_send_length"),
        ("service_receive", "sock_recv_length"),
        ("service_reset_sent", "tcp_send_reset"),
    ];
    for ((measure, hook), program) in measures.into_iter().zip(programs) {
        let s = format!(
            "monitor_bpf_hook_info{{collector=\"service\",measure=\"{measure}\",\
             program=\"{program}\",hook=\"tp_btf/{hook}\"}}"
        );
        assert_eq!(m.get(&s), Some(1.0), "{s} missing:\n{}", m.0);
    }
    assert!(m
        .0
        .contains("monitor_bpf_misses_total{program=\"svc_state\""));
    m
}

/// With the network collector off, the typed programs the two collectors share on each
/// socket hook still attach and do the service collector's work; none of the network
/// collector's misses is exported.
#[test]
fn the_shared_socket_hooks_serve_the_service_collector_alone() {
    let d = Daemon::start(&[BUDGETS, &["--no-collector.network"]].concat());
    let m = two_requests_and_a_reset(
        &d,
        [
            "tcp_state_btf",
            "net_sock_send_btf",
            "net_sock_recv_btf",
            "tcp_send_reset_btf",
        ],
    );
    assert!(
        !m.0.contains("monitor_bpf_misses_total{program=\"tcp_state\""),
        "the network collector's misses exported without it"
    );
    assert!(!m.0.contains("monitor_bpf_hook_info{collector=\"network\""));
}

/// Where the shared typed programs cannot attach (forced here), the service collector's own
/// serve it, beside the network collector's classic programs.
#[test]
fn without_the_shared_programs_the_service_collector_s_own_serve() {
    let mut args = BUDGETS.to_vec();
    for p in [
        "tcp_state_btf",
        "net_sock_send_btf",
        "net_sock_recv_btf",
        "tcp_send_reset_btf",
        "tcp_receive_reset_btf",
    ] {
        args.extend(["--debug.fail-attach", p]);
    }
    let d = Daemon::start(&args);
    let m = two_requests_and_a_reset(
        &d,
        [
            "svc_state_btf",
            "svc_send_btf",
            "svc_recv_btf",
            "svc_reset_sent_btf",
        ],
    );
    assert!(m.0.contains(
        "monitor_bpf_hook_info{collector=\"network\",measure=\"tcp_state\",\
         program=\"tcp_state\""
    ));
}
