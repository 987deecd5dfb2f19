//! Disk and network load beside the storm: fio on a small file (rate-limited, direct I/O so
//! requests reach the block layer), and loopback TCP connections opened, filled and closed
//! at a steady pace (each a new socket for the daemon's socket maps to track and forget).

use std::{
    io::{Read as _, Write as _},
    net::{Ipv4Addr, TcpListener, TcpStream},
    path::Path,
    process::{Command, Stdio},
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc,
    },
    thread::JoinHandle,
    time::{Duration, Instant},
};

use anyhow::Context as _;

use crate::bench::procs::Proc;

/// fio random reads and writes on a 64 MiB file in `dir`, at most `iops`, for `secs`.
pub fn disk(dir: &Path, iops: u32, secs: u64, log: &Path) -> anyhow::Result<Proc> {
    let file = dir.join("fio.bin");
    let out = std::fs::File::create(log).with_context(|| format!("creating {}", log.display()))?;
    let mut c = Command::new("fio");
    c.args([
        "--name=soak",
        "--size=64M",
        "--rw=randrw",
        "--bs=4k",
        "--direct=1",
        "--ioengine=psync",
        "--time_based",
    ])
    .arg(format!("--filename={}", file.display()))
    .arg(format!("--rate_iops={iops}"))
    .arg(format!("--runtime={secs}"))
    .stdin(Stdio::null())
    .stdout(out.try_clone()?)
    .stderr(out);
    Proc::spawn(&mut c, libc::SIGINT, "fio (Debian package fio)")
}

/// Loopback TCP: `per_second` connections, each carrying `bytes` to a server that reads and
/// drops them.
pub struct Net {
    stop: Arc<AtomicBool>,
    connections: Arc<AtomicU64>,
    errors: Arc<AtomicU64>,
    threads: Vec<JoinHandle<()>>,
}

impl Net {
    pub fn start(per_second: u32, bytes: usize) -> anyhow::Result<Self> {
        let listener =
            TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).context("binding the soak's server")?;
        let addr = listener.local_addr()?;
        listener.set_nonblocking(true)?;
        let stop = Arc::new(AtomicBool::new(false));
        let connections = Arc::new(AtomicU64::new(0));
        let errors = Arc::new(AtomicU64::new(0));
        let server = {
            let stop = stop.clone();
            std::thread::Builder::new()
                .name("soak-server".into())
                .spawn(move || {
                    let mut buf = vec![0u8; 64 * 1024];
                    while !stop.load(Ordering::Relaxed) {
                        match listener.accept() {
                            Ok((mut s, _)) => {
                                let _ = s.set_nonblocking(false);
                                let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
                                while matches!(s.read(&mut buf), Ok(n) if n > 0) {}
                            }
                            Err(_) => std::thread::sleep(Duration::from_millis(2)),
                        }
                    }
                })?
        };
        let client = {
            let (stop, connections, errors) = (stop.clone(), connections.clone(), errors.clone());
            std::thread::Builder::new()
                .name("soak-client".into())
                .spawn(move || {
                    let chunk = vec![0x5au8; bytes];
                    let start = Instant::now();
                    let mut made = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        let due = (start.elapsed().as_secs_f64() * f64::from(per_second)) as u64;
                        if made >= due {
                            std::thread::sleep(Duration::from_millis(5));
                            continue;
                        }
                        made += 1;
                        let sent = TcpStream::connect(addr).and_then(|mut s| s.write_all(&chunk));
                        match sent {
                            Ok(()) => connections.fetch_add(1, Ordering::Relaxed),
                            Err(_) => errors.fetch_add(1, Ordering::Relaxed),
                        };
                    }
                })?
        };
        Ok(Self {
            stop,
            connections,
            errors,
            threads: vec![server, client],
        })
    }

    /// Stops and returns (connections that carried their bytes, connections that failed).
    pub fn stop(mut self) -> (u64, u64) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
        (
            self.connections.load(Ordering::Relaxed),
            self.errors.load(Ordering::Relaxed),
        )
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}
