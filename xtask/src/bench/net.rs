//! Figure 6: network. iperf3 over loopback (one TCP stream) alone, under our daemon's network
//! collector (its 6.3+ hooks, and its pre-6.3 hooks forced), under bpftrace equivalents (one
//! script for every hook, one that keeps per-socket TCP state as ours does on
//! `inet_sock_set_state`), and under the daemon and both bpftrace scripts at once; configurations interleaved round by round,
//! each tool started fresh. For each: the stream's throughput, and what each of the tools'
//! programs cost per event, from the kernel's own accounting over the same runs, which also
//! take in a burst of short connections after each stream (`--net-connections`): TCP state
//! changes by the thousand, where one stream makes a few dozen, cold in every cache.

use std::{
    collections::BTreeMap,
    io::Write as _,
    net::{Ipv4Addr, TcpListener, TcpStream},
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{bail, Context as _};

use super::{
    bpf::{self, Cost},
    procs::{self, Proc},
    report::median,
    targets::{Check, Target},
    Env, Options,
};
use crate::cmd;

/// Per process and protocol, bytes and calls each way: what our 6.3+ send and receive
/// programs keep (without TCP segment counters, which bpftrace would read from `tcp_sock`
/// the same way), plus TCP state changes counted per new state (a figure kept for
/// reference: the target on that hook is against `BPFTRACE_TCP`).
const BPFTRACE_NET: &str = r#"tracepoint:sock:sock_send_length
/args->ret > 0 && (args->family == 2 || args->family == 10)/
{
	@tx_bytes[pid, args->protocol] = sum(args->ret);
	@tx_calls[pid, args->protocol] = count();
}

tracepoint:sock:sock_recv_length
/args->ret > 0 && (args->family == 2 || args->family == 10) && !(args->flags & 2)/
{
	@rx_bytes[pid, args->protocol] = sum(args->ret);
	@rx_calls[pid, args->protocol] = count();
}

tracepoint:sock:inet_sock_set_state
{
	@states[args->newstate] = count();
}

tracepoint:tcp:tcp_retransmit_skb
{
	@retransmits[args->skaddr] = count();
}
"#;

/// What our programs on `inet_sock_set_state` keep, the way tcplife and tcpconnlat keep it:
/// each listener's owner by family and port; each socket's owner, start time and state from
/// connect() (SYN_SENT) or accept (SYN_RECV -> ESTABLISHED, the listener's owner), deleted
/// at CLOSE; per owner the active and passive opens, the connects' latency histogram, the
/// accepts per port and the closes; and the count per new state of `BPFTRACE_NET`. Only TCP
/// over IPv4 or IPv6, as ours. State numbers: `include/net/tcp_states.h`.
const BPFTRACE_TCP: &str = r#"tracepoint:sock:inet_sock_set_state
/args->protocol == 6 && (args->family == 2 || args->family == 10)/
{
	$sk = args->skaddr;
	$new = args->newstate;
	@states[$new] = count();
	if ($new == 10) {
		@listener[args->family, args->sport] = pid;
	} else if ($new == 2) {
		@owner[$sk] = pid;
		@start[$sk] = nsecs;
		@sock_state[$sk] = $new;
		@active_opens[pid] = count();
	} else if ($new == 1) {
		if (args->oldstate == 2) {
			$o = @owner[$sk];
			@connect_ns[$o] = hist(nsecs - @start[$sk]);
		} else {
			$o = @listener[args->family, args->sport];
			@owner[$sk] = $o;
			@passive_opens[$o] = count();
			@accepted[$o, args->sport] = count();
		}
		@start[$sk] = nsecs;
		@sock_state[$sk] = $new;
	} else if ($new == 7) {
		if (args->oldstate == 10) {
			delete(@listener[args->family, args->sport]);
		} else if (@start[$sk] != 0) {
			@closed[@owner[$sk]] = count();
			delete(@owner[$sk]);
			delete(@start[$sk]);
			delete(@sock_state[$sk]);
		}
	} else if ($new != 3) {
		@sock_state[$sk] = $new;
	}
}
"#;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Config {
    Baseline,
    Monitor,
    MonitorPre63,
    /// Both bpftrace scripts (`BPFTRACE_NET`, `BPFTRACE_TCP`), each its own process.
    Bpftrace,
    /// The daemon (6.3+ hooks) and both bpftrace scripts attached at the same time, each
    /// one's programs told apart by the fds its process holds.
    MonitorBpftrace,
}

const CONFIGS: [Config; 5] = [
    Config::Baseline,
    Config::Monitor,
    Config::MonitorPre63,
    Config::Bpftrace,
    Config::MonitorBpftrace,
];

impl Config {
    fn name(self) -> &'static str {
        match self {
            Config::Baseline => "baseline",
            Config::Monitor => "monitor",
            Config::MonitorPre63 => "monitor-pre-6.3",
            Config::Bpftrace => "bpftrace",
            Config::MonitorBpftrace => "monitor+bpftrace",
        }
    }

    /// The tools attached, in the order they start in even rounds (reversed in odd ones).
    fn tools(self) -> &'static [Tool] {
        match self {
            Config::Baseline => &[],
            Config::Monitor => &[Tool::Monitor],
            Config::MonitorPre63 => &[Tool::MonitorPre63],
            Config::Bpftrace => &[Tool::Bpftrace, Tool::BpftraceTcp],
            Config::MonitorBpftrace => &[Tool::Monitor, Tool::Bpftrace, Tool::BpftraceTcp],
        }
    }
}

/// A tool the network phase starts.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
enum Tool {
    /// The daemon's network and scheduler collectors on their 6.3+ hooks.
    Monitor,
    /// The same with the pre-6.3 hooks forced.
    MonitorPre63,
    /// `BPFTRACE_NET`.
    Bpftrace,
    /// `BPFTRACE_TCP`.
    BpftraceTcp,
}

impl Tool {
    fn name(self) -> &'static str {
        match self {
            Tool::Monitor => "monitor",
            Tool::MonitorPre63 => "monitor-pre-6.3",
            Tool::Bpftrace => "bpftrace",
            Tool::BpftraceTcp => "bpftrace-tcp",
        }
    }

    fn is_bpftrace(self) -> bool {
        matches!(self, Tool::Bpftrace | Tool::BpftraceTcp)
    }

    /// Whether `program` is one of this tool's network programs (the daemon also runs its
    /// scheduler programs, figure 2's subject).
    fn is_network(self, program: &str) -> bool {
        self.is_bpftrace() || is_network(program)
    }
}

/// The tracepoints where bpftrace's script does what ours do: compared per hook, every
/// program of ours on it counted (the service collector's share the network's hooks).
const EQUIVALENTS: [&str; 4] = [
    "sock_send_length",
    "sock_recv_length",
    "inet_sock_set_state",
    "tcp_retransmit_skb",
];

/// The peers ours are compared with on `hook`, each with its name in the report and the
/// target of the together ratio.
fn peers(hook: &str) -> &'static [(Tool, &'static str, Target)] {
    if hook == "inet_sock_set_state" {
        &[
            (Tool::BpftraceTcp, "bpftrace-tcp", Target::AtMost(1.0)),
            (Tool::Bpftrace, "bpftrace count per state", Target::None),
        ]
    } else {
        &[(Tool::Bpftrace, "bpftrace", Target::AtMost(1.0))]
    }
}

#[derive(Default)]
struct Results {
    /// iperf3's received bits per second, per run.
    bps: Vec<f64>,
    /// Each tool's programs, by name, summed over the runs.
    progs: BTreeMap<Tool, BTreeMap<String, Cost>>,
    /// The tracepoint each of our programs is on, as the daemon reports it
    /// (`monitor_bpf_hook_info`), by program name.
    hooks: BTreeMap<String, String>,
    /// Each tool's programs (every one, the scheduler's included) during the iperf3 streams
    /// alone, ns summed over the runs.
    stream_ns: BTreeMap<Tool, u64>,
    /// The machine's CPU work (busy less steal) during the streams, seconds summed over the
    /// runs.
    stream_work: f64,
}

/// `tool`'s programs' time during the streams as a share of the CPU work the machine did
/// meanwhile. The kernel's own accounting, so it has none of the throughput's run-to-run
/// noise: on a stream bound by CPU, what its throughput would lose to that time alone,
/// leaving out what the kernel pays around each program (its entry, and the stats' own
/// clock reads) and cache effects.
fn program_share(r: &Results, tool: Tool) -> Option<f64> {
    let ns = *r.stream_ns.get(&tool)?;
    (r.stream_work > 0.0).then(|| 100.0 * ns as f64 / (r.stream_work * 1e9))
}

pub struct NetCost {
    results: Vec<Results>,
    iperf: String,
}

/// One loopback connection carrying a few bytes each way: makes send and receive programs run.
fn poke() -> anyhow::Result<()> {
    let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
    let mut c = TcpStream::connect(l.local_addr()?)?;
    let (mut s, _) = l.accept()?;
    c.write_all(b"poke")?;
    let mut buf = [0u8; 4];
    std::io::Read::read_exact(&mut s, &mut buf)?;
    Ok(())
}

/// Starts `tool` and returns once its send program runs.
fn start(tool: Tool, env: &Env, tag: &str) -> anyhow::Result<(Proc, PathBuf)> {
    let mut c = match tool {
        Tool::Monitor | Tool::MonitorPre63 => {
            let mut c = Command::new(&env.bin);
            c.args(["run", "--web.listen-address"])
                .arg(env.addr.to_string())
                .args(["--bpf.stats", "--collector.disable-defaults"])
                // The service collector is on by default and shares the network's hooks;
                // the bpf collector names the hook of each program (`daemon_hooks`).
                .args([
                    "--collector.network",
                    "--collector.service",
                    "--collector.bpf",
                ])
                .arg("--collector.sched");
            if tool == Tool::MonitorPre63 {
                // Before 6.3 neither family has the length hooks.
                for p in [
                    "net_sock_send",
                    "net_sock_recv",
                    "svc_send_btf",
                    "svc_recv_btf",
                ] {
                    c.args(["--debug.fail-attach", p]);
                }
            }
            c
        }
        Tool::Bpftrace | Tool::BpftraceTcp => {
            let mut c = Command::new("bpftrace");
            c.arg(env.dir.join(script(tool)));
            c
        }
    };
    let log = env.dir.join(format!("net-{}-{tag}.log", tool.name()));
    let stop = if tool.is_bpftrace() {
        libc::SIGINT
    } else {
        libc::SIGTERM
    };
    // Its send program, by name for ours; bpftrace's names are cut short: any of its own.
    let sends = |name: &str| match tool {
        Tool::Monitor => ours(name, "net_sock_send"),
        Tool::MonitorPre63 => name == "net_dev_queue",
        Tool::Bpftrace | Tool::BpftraceTcp => true,
    };
    let p = bpf::start_attached(&mut c, stop, tool.name(), &log, poke, sends)?;
    Ok((p, log))
}

/// The file a bpftrace tool's script is written to, in the bench's directory.
fn script(tool: Tool) -> &'static str {
    if tool == Tool::BpftraceTcp {
        "net-tcp.bt"
    } else {
        "net.bt"
    }
}

/// `n` short loopback connections, one after another: connect, a byte each way, close on
/// both ends (about ten TCP state changes each).
fn churn(n: u32) -> anyhow::Result<()> {
    if n == 0 {
        return Ok(());
    }
    let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).context("binding the churn listener")?;
    let addr = l.local_addr()?;
    let server = std::thread::spawn(move || -> std::io::Result<()> {
        for _ in 0..n {
            let (mut s, _) = l.accept()?;
            let mut b = [0u8; 1];
            std::io::Read::read_exact(&mut s, &mut b)?;
            s.write_all(&b)?;
        }
        Ok(())
    });
    for _ in 0..n {
        let mut c = TcpStream::connect(addr).context("churn connect")?;
        c.write_all(b"x")?;
        let mut b = [0u8; 1];
        std::io::Read::read_exact(&mut c, &mut b)?;
    }
    server
        .join()
        .map_err(|_| anyhow::anyhow!("the churn server panicked"))?
        .context("the churn server")?;
    Ok(())
}

/// iperf3's received throughput from its JSON report.
fn bits_per_second(json: &[u8]) -> anyhow::Result<f64> {
    let v: serde_json::Value = serde_json::from_slice(json).context("parsing iperf3's JSON")?;
    if let Some(e) = v["error"].as_str() {
        bail!("iperf3: {e}");
    }
    v["end"]["sum_received"]["bits_per_second"]
        .as_f64()
        .context("iperf3 JSON: no end.sum_received.bits_per_second")
}

/// One iperf3 run: a one-off server on a fresh port and a client for `seconds`.
fn iperf(seconds: u64) -> anyhow::Result<f64> {
    let port = {
        let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).context("finding a free port")?;
        l.local_addr()?.port()
    };
    let mut server = Proc::spawn(
        Command::new("iperf3")
            .args(["-s", "-1", "-B", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
        libc::SIGTERM,
        "iperf3 server",
    )?;
    // The server listens within a moment; the client retries until it does.
    let deadline = Instant::now() + Duration::from_secs(10);
    let out = loop {
        let out = cmd::new("iperf3")
            .args(["-c", "127.0.0.1", "-p", &port.to_string(), "-J"])
            .args(["-t", &seconds.to_string()])
            .stdin(Stdio::null())
            .output()
            .context("running iperf3 (Debian package iperf3)")?;
        if bits_per_second(&out.stdout).is_ok() || Instant::now() > deadline {
            break out;
        }
        procs::sleep(Duration::from_millis(100))?;
    };
    let _ = server.stop();
    bits_per_second(&out.stdout)
}

pub fn phase(o: &Options, env: &Env) -> anyhow::Result<NetCost> {
    for (tool, text) in [
        (Tool::Bpftrace, BPFTRACE_NET),
        (Tool::BpftraceTcp, BPFTRACE_TCP),
    ] {
        let path = env.dir.join(script(tool));
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
    }
    let mut results: Vec<Results> = CONFIGS.iter().map(|_| Results::default()).collect();
    let lossy = o.net_lossy_transfers > 0 && super::lossy::available();
    if o.net_lossy_transfers > 0 && !lossy {
        eprintln!("bench: iptables cannot drop segments here: no lossy transfers");
    }
    for round in 0..o.net_runs {
        for k in 0..CONFIGS.len() {
            // Rotated each round, as the scheduler figure's are: with the baseline always
            // first, whatever the first run of a round meets (a cold cache, a host that
            // just got busy) was a loss or gain of every other configuration.
            let i = (round as usize + k) % CONFIGS.len();
            let cfg = &CONFIGS[i];
            eprintln!(
                "bench: network round {}/{} {}",
                round + 1,
                o.net_runs,
                cfg.name()
            );
            env.stats.keep_on()?;
            let mut order = cfg.tools().to_vec();
            if round % 2 == 1 {
                order.reverse();
            }
            let together = if order.len() > 1 { "together-" } else { "" };
            let mut tools = Vec::new();
            for t in order {
                let (p, log) = start(t, env, &format!("{together}{round}"))?;
                tools.push((t, p, log));
            }
            let ids: Vec<_> = tools
                .iter()
                .map(|(_, p, _)| bpf::owned_prog_ids(p.pid()))
                .collect();
            if tools.iter().any(|(t, _, _)| !t.is_bpftrace()) {
                results[i].hooks.extend(daemon_hooks(env)?);
            }
            let before = bpf::snapshot()?;
            let work = super::workload::machine_work()?;
            let bps = iperf(o.net_seconds)?;
            results[i].stream_work += super::workload::machine_work()? - work;
            let streamed = bpf::snapshot()?;
            for ((t, _, _), ids) in tools.iter().zip(&ids) {
                let mut progs = BTreeMap::new();
                bpf::add_delta(&mut progs, ids, &before, &streamed);
                *results[i].stream_ns.entry(*t).or_default() +=
                    progs.values().map(|c| c.ns).sum::<u64>();
            }
            churn(o.net_connections)?;
            if lossy {
                super::lossy::transfers(o.net_lossy_transfers)?;
            }
            let after = bpf::snapshot()?;
            results[i].bps.push(bps);
            for ((t, p, log), ids) in tools.iter_mut().zip(&ids) {
                bpf::add_delta(
                    results[i].progs.entry(*t).or_default(),
                    ids,
                    &before,
                    &after,
                );
                let s = p.stop()?;
                if !s.success() && !t.is_bpftrace() {
                    bail!("{} exited with {s}; {}", t.name(), procs::tail(log, 20));
                }
            }
        }
    }
    Ok(NetCost {
        results,
        iperf: format!(
            "iperf3 -c 127.0.0.1 -t {} (one TCP stream), then {} short connections{}",
            o.net_seconds,
            o.net_connections,
            if lossy {
                format!(
                    ", then {} transfers of 256 KiB at a 1,400-byte MSS to a port dropping 2 % \
                     of its data segments",
                    o.net_lossy_transfers
                )
            } else {
                String::new()
            }
        ),
    })
}

/// Whether our program `n` is `name` or its typed twin `<name>_btf` (the daemon attaches
/// whichever the kernel has).
fn ours(n: &str, name: &str) -> bool {
    n == name || n.strip_suffix("_btf") == Some(name)
}

/// Whether a program of ours is a network or service one (the daemon also runs its
/// scheduler programs, figure 2's subject).
fn is_network(name: &str) -> bool {
    ["net_", "tcp_", "svc_"].iter().any(|p| name.starts_with(p))
}

/// Which tracepoint each program of the running daemon is on, from its
/// `monitor_bpf_hook_info` series (program name to the hook's last part).
fn daemon_hooks(env: &Env) -> anyhow::Result<BTreeMap<String, String>> {
    let (status, body) =
        procs::http_get(env.addr, "/metrics").context("scraping the daemon's /metrics")?;
    if status != 200 {
        bail!("/metrics answered {status}");
    }
    Ok(hooks_of(&String::from_utf8_lossy(&body)))
}

fn hooks_of(metrics: &str) -> BTreeMap<String, String> {
    let label = |line: &str, name: &str| -> Option<String> {
        let start = line.find(&format!("{name}=\""))? + name.len() + 2;
        let len = line[start..].find('"')?;
        Some(line[start..start + len].to_string())
    };
    metrics
        .lines()
        .filter(|l| l.starts_with("monitor_bpf_hook_info{"))
        .filter_map(|l| {
            let hook = label(l, "hook")?;
            let tracepoint = hook.rsplit('/').next()?.to_string();
            Some((label(l, "program")?, tracepoint))
        })
        .collect()
}

/// The ns per event on tracepoint `hook` of `tool`'s programs: for ours, every program the
/// daemon reported on it, their times summed over the events (each program runs once per
/// event; the most runs of them is the event count); bpftrace's by its name, the hook's
/// cut to 15 characters.
fn ns_per_event(
    progs: &BTreeMap<String, Cost>,
    hooks: &BTreeMap<String, String>,
    tool: Tool,
    hook: &str,
) -> Option<f64> {
    let on_hook = |n: &str| match tool {
        Tool::Bpftrace | Tool::BpftraceTcp => bpf::is_named(n, hook),
        Tool::Monitor | Tool::MonitorPre63 => {
            hooks.iter().any(|(p, h)| h == hook && bpf::is_named(n, p))
        }
    };
    let mut total = Cost::default();
    for (_, c) in progs.iter().filter(|(n, _)| on_hook(n)) {
        total.runs = total.runs.max(c.runs);
        total.ns += c.ns;
    }
    total.ns_per_run()
}

impl NetCost {
    fn get(&self, c: Config) -> &Results {
        &self.results[CONFIGS
            .iter()
            .position(|x| *x == c)
            .expect("a network config")]
    }

    fn ns_per_event(&self, c: Config, t: Tool, hook: &str) -> Option<f64> {
        let r = self.get(c);
        ns_per_event(r.progs.get(&t)?, &r.hooks, t, hook)
    }

    /// The network targets: at most 3 % of iperf3's throughput lost under the daemon
    /// (round by round, `Check::paired_loss`), and each network program at most its bpftrace equivalent's cost per event
    /// with both attached (alone, for reference). On `inet_sock_set_state` the equivalent
    /// is `BPFTRACE_TCP`: ours keeps per-socket owners, connect latency and opens and
    /// closes per process there, which `BPFTRACE_NET`'s count per state does not, so its
    /// ratio is printed beside, without a target.
    pub fn checks(&self) -> Vec<Check> {
        let base = &self.get(Config::Baseline).bps;
        let loss = |label: String, c: Config, target: Target| {
            Check::paired_loss(label, base, &self.get(c).bps, target)
        };
        let mut v = vec![loss(
            "iperf3 throughput loss, monitor".into(),
            Config::Monitor,
            Target::AtMost(3.0),
        )];
        for c in [
            Config::MonitorPre63,
            Config::Bpftrace,
            Config::MonitorBpftrace,
        ] {
            v.push(loss(
                format!("iperf3 throughput loss, {}", c.name()),
                c,
                Target::None,
            ));
        }
        for hook in EQUIVALENTS {
            for (peer, peer_name, target) in peers(hook) {
                self.push_ratios(&mut v, hook, *peer, peer_name, *target);
            }
        }
        for (c, tools) in [
            (Config::Monitor, &[Tool::Monitor][..]),
            (Config::Bpftrace, &[Tool::Bpftrace, Tool::BpftraceTcp][..]),
        ] {
            let r = self.get(c);
            let share: Option<f64> = tools.iter().map(|t| program_share(r, *t)).sum();
            v.push(Check::figure(
                format!(
                    "iperf3: {}'s programs, share of the machine's CPU work during the stream \
                     (kernel accounting)",
                    c.name()
                ),
                share,
                "%",
                2,
                Target::None,
            ));
        }
        v
    }

    /// The ratios of ours on `hook` against `peer`'s, together (against `target`) and each
    /// alone.
    fn push_ratios(
        &self,
        v: &mut Vec<Check>,
        hook: &str,
        peer: Tool,
        peer_name: &str,
        target: Target,
    ) {
        let against = if peer == Tool::Bpftrace && hook != "inet_sock_set_state" {
            String::new()
        } else {
            format!(", against {peer_name}")
        };
        for (c_ours, c_theirs, how, target) in [
            (
                Config::MonitorBpftrace,
                Config::MonitorBpftrace,
                "together",
                target,
            ),
            (
                Config::Monitor,
                Config::Bpftrace,
                "each alone",
                Target::None,
            ),
        ] {
            v.push(Check::ratio(
                format!("net ns/event, all of ours on {hook}, {how}{against}"),
                peer_name,
                self.ns_per_event(c_ours, Tool::Monitor, hook),
                self.ns_per_event(c_theirs, peer, hook),
                "ns",
                target,
            ));
        }
    }
}

pub fn print(o: &Options, d: &NetCost) {
    println!();
    println!(
        "== Network: {} ({} runs per configuration, interleaved)",
        d.iperf, o.net_runs
    );
    let base = median(&d.get(Config::Baseline).bps);
    println!(
        "{:<17} {:>14} {:>18}",
        "configuration", "median Gbit/s", "median/baseline"
    );
    for (cfg, r) in CONFIGS.iter().zip(&d.results) {
        let m = median(&r.bps);
        println!(
            "{:<17} {:>14.2} {:>7.3} ({:>+6.1} %)",
            cfg.name(),
            m / 1e9,
            m / base,
            100.0 * (m / base - 1.0)
        );
    }
    println!();
    println!("Per program, over all runs (kernel.bpf_stats_enabled):");
    println!(
        "{:<17} {:<16} {:<24} {:>12} {:>12}",
        "configuration", "tool", "program", "events", "ns/event"
    );
    for (cfg, r) in CONFIGS.iter().zip(&d.results) {
        for (tool, progs) in &r.progs {
            for (name, c) in progs.iter().filter(|(n, _)| tool.is_network(n)) {
                println!(
                    "{:<17} {:<16} {:<24} {:>12} {:>12}",
                    cfg.name(),
                    tool.name(),
                    name,
                    c.runs,
                    c.ns_per_run().map_or("-".into(), |v| format!("{v:.1}"))
                );
            }
        }
    }
}

/// Fails early, with what is missing.
pub fn preflight() -> anyhow::Result<()> {
    if !Path::new("/usr/bin/iperf3").exists() {
        bail!("/usr/bin/iperf3 is missing (Debian package iperf3)");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn program_share_is_the_programs_time_over_the_machines_work() {
        let r = Results {
            stream_ns: [(Tool::Monitor, 30_000_000)].into_iter().collect(),
            stream_work: 1.5,
            ..Default::default()
        };
        assert_eq!(program_share(&r, Tool::Monitor), Some(2.0));
        assert_eq!(program_share(&r, Tool::Bpftrace), None);
        let idle = Results {
            stream_ns: r.stream_ns.clone(),
            ..Default::default()
        };
        assert_eq!(program_share(&idle, Tool::Monitor), None);
    }

    #[test]
    fn every_program_of_ours_on_a_hook_counts_against_bpftrace_s() {
        let metrics = "\
# TYPE monitor_bpf_hook_info gauge
monitor_bpf_hook_info{collector=\"network\",measure=\"net_send\",program=\"net_sock_send_btf\",hook=\"tp_btf/sock_send_length\"} 1
monitor_bpf_hook_info{collector=\"service\",measure=\"service_send\",program=\"net_sock_send_btf\",hook=\"tp_btf/sock_send_length\"} 1
monitor_bpf_hook_info{collector=\"service\",measure=\"service_receive\",program=\"svc_sock_recv_btf\",hook=\"tp_btf/sock_recv_length\"} 1
monitor_bpf_hook_info{collector=\"network\",measure=\"net_receive\",program=\"net_sock_recv\",hook=\"tracepoint/sock/sock_recv_length\"} 1
monitor_bpf_hook_info{collector=\"network\",measure=\"tcp_state\",program=\"tcp_state_btf\",hook=\"tp_btf/inet_sock_set_state\"} 1
";
        let hooks = hooks_of(metrics);
        assert_eq!(hooks.len(), 4, "{hooks:?}");
        assert_eq!(hooks["net_sock_recv"], "sock_recv_length");
        let progs = bpf::costs(&[
            ("net_sock_send_btf", 10, 7_000),
            // One program serving two families counts once.
            ("net_sock_recv", 10, 3_000),
            // bpftool's name cut to 15 characters where the program has no BTF.
            ("svc_sock_recv_b", 10, 2_000),
            ("sock_send_lengt", 10, 6_000),
            ("tcp_state_btf", 0, 0),
            // Not on a compared hook.
            ("sched_switch_btf", 10, 1_000),
        ]);
        let f = |t, hook| ns_per_event(&progs, &hooks, t, hook);
        assert_eq!(f(Tool::Monitor, "sock_send_length"), Some(700.0));
        assert_eq!(f(Tool::Bpftrace, "sock_send_length"), Some(600.0));
        // Two programs on the hook: their times summed over the same events.
        assert_eq!(f(Tool::Monitor, "sock_recv_length"), Some(500.0));
        // No events: no figure, rather than 0.
        assert_eq!(f(Tool::Monitor, "inet_sock_set_state"), None);
        assert_eq!(f(Tool::Bpftrace, "sock_recv_length"), None);
    }
}
