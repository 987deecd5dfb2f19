//! Retransmits by the thousand for the network figure: one iperf3 stream on loopback loses
//! nothing, so `tcp_retransmit` ran a few dozen times a run and its cost per event was
//! noise. Here a firewall rule drops a share of the data segments sent to one port
//! (iptables' `statistic` match; loopback has no netem on these kernels), and short
//! transfers to that port retransmit what was dropped.

use std::{
    io::{Read as _, Write as _},
    net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream},
    process::Command,
    time::Duration,
};

use anyhow::{bail, Context as _};

use crate::cmd;

/// Data segments dropped: enough for hundreds of retransmits a run, few enough that the
/// connections recover by fast retransmit rather than waiting out timeouts.
const DROP_PROBABILITY: &str = "0.02";
/// Bytes each connection sends; the peer answers one byte when it has them all.
const TRANSFER: usize = 256 * 1024;
/// Loopback's MSS is 64 KiB: a transfer would be four segments. At an Ethernet-sized one it
/// is about 190, as on a real link.
const MSS: u32 = 1400;

/// The drop rule, removed when dropped (also on error and Ctrl-C's unwinding).
struct Rule {
    args: Vec<String>,
}

impl Rule {
    fn add(port: u16) -> anyhow::Result<Self> {
        let args: Vec<String> = [
            "INPUT",
            "-i",
            "lo",
            "-p",
            "tcp",
            "--dport",
            &port.to_string(),
            "!",
            "--syn",
            "-m",
            "statistic",
            "--mode",
            "random",
            "--probability",
            DROP_PROBABILITY,
            "-j",
            "DROP",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let out = Command::new("iptables")
            .arg("-I")
            .args(&args)
            .output()
            .context("running iptables (package iptables)")?;
        if !out.status.success() {
            bail!(
                "iptables could not add the drop rule: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(Self { args })
    }
}

impl Drop for Rule {
    fn drop(&mut self) {
        let _ = Command::new("iptables").arg("-D").args(&self.args).output();
    }
}

/// Whether this machine can drop segments on loopback (iptables with `statistic`).
pub fn available() -> bool {
    cmd::succeeds(Command::new("iptables").args(["-m", "statistic", "--help"]))
}

/// `n` connections, each sending [`TRANSFER`] bytes to a port whose data segments are
/// dropped at random, answered with one byte once received.
pub fn transfers(n: u32) -> anyhow::Result<()> {
    if n == 0 {
        return Ok(());
    }
    let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).context("binding the lossy listener")?;
    let addr = l.local_addr()?;
    let _rule = Rule::add(addr.port())?;
    let server = std::thread::spawn(move || -> std::io::Result<()> {
        let mut buf = vec![0u8; TRANSFER];
        for _ in 0..n {
            let (mut s, _) = l.accept()?;
            s.read_exact(&mut buf)?;
            s.write_all(b"k")?;
        }
        Ok(())
    });
    let data = vec![7u8; TRANSFER];
    for _ in 0..n {
        let mut c = connect_small_mss(addr)?;
        c.set_read_timeout(Some(Duration::from_secs(60)))?;
        c.write_all(&data).context("lossy transfer")?;
        let mut b = [0u8; 1];
        c.read_exact(&mut b).context("lossy transfer's answer")?;
    }
    server
        .join()
        .map_err(|_| anyhow::anyhow!("the lossy server panicked"))?
        .context("the lossy server")?;
    Ok(())
}

fn connect_small_mss(addr: SocketAddr) -> anyhow::Result<TcpStream> {
    use socket2::{Domain, Socket, Type};
    let s = Socket::new(Domain::IPV4, Type::STREAM, None).context("a lossy socket")?;
    s.set_tcp_mss(MSS)
        .context("setting the lossy socket's MSS")?;
    s.connect(&addr.into()).context("lossy connect")?;
    Ok(s.into())
}
