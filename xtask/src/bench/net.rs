//! Figure 6: network. iperf3 over loopback (one TCP stream) alone, under our daemon's network
//! collector (its 6.3+ hooks, and its pre-6.3 hooks forced), and under a bpftrace
//! equivalent; configurations interleaved round by round, each tool started fresh. For each:
//! the stream's throughput, and what each of the tool's programs cost per event, from the
//! kernel's own accounting over the same runs.

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
    Env, Options,
};
use crate::cmd;

/// Per process and protocol, bytes and calls each way: what our 6.3+ send and receive
/// programs keep (without TCP segment counters, which bpftrace would read from `tcp_sock`
/// the same way), plus TCP state changes counted per new state.
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

#[derive(Clone, Copy, PartialEq, Eq)]
enum Config {
    Baseline,
    Monitor,
    MonitorPre63,
    Bpftrace,
}

const CONFIGS: [Config; 4] = [
    Config::Baseline,
    Config::Monitor,
    Config::MonitorPre63,
    Config::Bpftrace,
];

impl Config {
    fn name(self) -> &'static str {
        match self {
            Config::Baseline => "baseline",
            Config::Monitor => "monitor",
            Config::MonitorPre63 => "monitor-pre-6.3",
            Config::Bpftrace => "bpftrace",
        }
    }
}

#[derive(Default)]
struct Results {
    /// iperf3's received bits per second, per run.
    bps: Vec<f64>,
    /// The tool's programs, by name, summed over the runs.
    progs: BTreeMap<String, Cost>,
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

/// Starts `cfg`'s tool and returns once its send program runs.
fn start(cfg: Config, env: &Env, tag: &str) -> anyhow::Result<Option<(Proc, PathBuf)>> {
    let mut c = match cfg {
        Config::Baseline => return Ok(None),
        Config::Monitor | Config::MonitorPre63 => {
            let mut c = Command::new(&env.bin);
            c.args(["run", "--web.listen-address"])
                .arg(env.addr.to_string())
                .args(["--bpf.stats", "--collector.disable-defaults"])
                .args(["--collector.network", "--collector.sched"]);
            if cfg == Config::MonitorPre63 {
                c.args([
                    "--debug.fail-attach",
                    "net_sock_send",
                    "--debug.fail-attach",
                    "net_sock_recv",
                ]);
            }
            c
        }
        Config::Bpftrace => {
            let mut c = Command::new("bpftrace");
            c.arg(env.dir.join("net.bt"));
            c
        }
    };
    let log = env.dir.join(format!("net-{}-{tag}.log", cfg.name()));
    let stop = if cfg == Config::Bpftrace {
        libc::SIGINT
    } else {
        libc::SIGTERM
    };
    // Its send program, by name for ours; bpftrace's names are cut short: any of its own.
    let sends = |name: &str| match cfg {
        Config::Monitor => name == "net_sock_send",
        Config::MonitorPre63 => name == "net_dev_queue",
        Config::Baseline | Config::Bpftrace => true,
    };
    let p = bpf::start_attached(&mut c, stop, cfg.name(), &log, poke, sends)?;
    Ok(Some((p, log)))
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
    let script = env.dir.join("net.bt");
    std::fs::write(&script, BPFTRACE_NET)
        .with_context(|| format!("writing {}", script.display()))?;
    let mut results: Vec<Results> = CONFIGS.iter().map(|_| Results::default()).collect();
    for round in 0..o.net_runs {
        for (i, cfg) in CONFIGS.iter().enumerate() {
            eprintln!(
                "bench: network round {}/{} {}",
                round + 1,
                o.net_runs,
                cfg.name()
            );
            let tool = start(*cfg, env, &round.to_string())?;
            let ids = tool
                .as_ref()
                .map(|(p, _)| bpf::owned_prog_ids(p.pid()))
                .unwrap_or_default();
            let before = bpf::snapshot()?;
            let bps = iperf(o.net_seconds)?;
            let after = bpf::snapshot()?;
            results[i].bps.push(bps);
            bpf::add_delta(&mut results[i].progs, &ids, &before, &after);
            if let Some((mut p, log)) = tool {
                let s = p.stop()?;
                if !s.success() && cfg != &Config::Bpftrace {
                    bail!("{} exited with {s}; {}", cfg.name(), procs::tail(&log, 20));
                }
            }
        }
    }
    Ok(NetCost {
        results,
        iperf: format!("iperf3 -c 127.0.0.1 -t {} (one TCP stream)", o.net_seconds),
    })
}

/// Whether a program of ours is a network one (the daemon also runs its scheduler programs,
/// figure 2's subject).
fn is_network(name: &str) -> bool {
    name.starts_with("net_") || name.starts_with("tcp_")
}

pub fn print(o: &Options, d: &NetCost) {
    println!();
    println!(
        "== Network: {} ({} runs per configuration, interleaved)",
        d.iperf, o.net_runs
    );
    let base = median(&d.results[0].bps);
    println!(
        "{:<16} {:>14} {:>18}",
        "configuration", "median Gbit/s", "median/baseline"
    );
    for (cfg, r) in CONFIGS.iter().zip(&d.results) {
        let m = median(&r.bps);
        println!(
            "{:<16} {:>14.2} {:>7.3} ({:>+6.1} %)",
            cfg.name(),
            m / 1e9,
            m / base,
            100.0 * (m / base - 1.0)
        );
    }
    println!();
    println!("Per program, over all runs (kernel.bpf_stats_enabled):");
    println!(
        "{:<16} {:<24} {:>12} {:>12}",
        "configuration", "program", "events", "ns/event"
    );
    for (cfg, r) in CONFIGS.iter().zip(&d.results) {
        for (name, c) in &r.progs {
            if cfg != &Config::Bpftrace && !is_network(name) {
                continue;
            }
            println!(
                "{:<16} {:<24} {:>12} {:>12}",
                cfg.name(),
                name,
                c.runs,
                c.ns_per_run().map_or("-".into(), |v| format!("{v:.1}"))
            );
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
