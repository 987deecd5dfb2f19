//! Child processes that are always reaped, a Ctrl-C flag, and what `/proc` says about a
//! process (CPU time, memory), plus a plain HTTP/1.0 GET.

use std::{
    io::{Read as _, Write as _},
    net::{SocketAddr, TcpStream},
    os::unix::process::CommandExt as _,
    path::Path,
    process::{Child, Command, ExitStatus},
    sync::atomic::{AtomicBool, Ordering},
    time::{Duration, Instant},
};

use anyhow::{bail, Context as _};

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    INTERRUPTED.store(true, Ordering::SeqCst);
}

/// Turns SIGINT and SIGTERM into a flag that [`check_interrupted`] reports, so an interrupted
/// benchmark unwinds through its guards (children stopped, sysctl restored).
pub fn catch_signals() {
    let handler = on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
    // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
    unsafe {
        libc::signal(libc::SIGINT, handler);
        libc::signal(libc::SIGTERM, handler);
    }
}

pub fn check_interrupted() -> anyhow::Result<()> {
    if INTERRUPTED.load(Ordering::SeqCst) {
        bail!("interrupted");
    }
    Ok(())
}

/// Sleeps `d`, waking early (with an error) when interrupted.
pub fn sleep(d: Duration) -> anyhow::Result<()> {
    let end = Instant::now() + d;
    loop {
        check_interrupted()?;
        let now = Instant::now();
        if now >= end {
            return Ok(());
        }
        std::thread::sleep((end - now).min(Duration::from_millis(50)));
    }
}

/// A child that is stopped and reaped when dropped: first with `stop` (SIGINT lets runqlat
/// and bpftrace detach and print, SIGTERM lets the daemon shut down), then SIGKILL after
/// a grace period. It also gets SIGKILL if this process dies without unwinding.
pub struct Proc {
    child: Child,
    stop: libc::c_int,
    what: String,
}

impl Proc {
    pub fn spawn(c: &mut Command, stop: libc::c_int, what: &str) -> anyhow::Result<Self> {
        // SAFETY: prctl is async-signal-safe and touches no memory of the parent.
        unsafe {
            c.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let child = c
            .spawn()
            .with_context(|| format!("starting {what} ({c:?})"))?;
        Ok(Self {
            child,
            stop,
            what: what.to_string(),
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `Some(status)` once the child has exited.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    fn signal(&self, sig: libc::c_int) {
        // SAFETY: the pid is our unreaped child, so it cannot have been reused.
        unsafe {
            libc::kill(self.child.id() as libc::pid_t, sig);
        }
    }

    /// Stops the child as [`Drop`] would, and returns how it exited.
    pub fn stop(&mut self) -> anyhow::Result<ExitStatus> {
        if let Some(s) = self.exited() {
            return Ok(s);
        }
        self.signal(self.stop);
        if self.stop != libc::SIGKILL {
            let end = Instant::now() + Duration::from_secs(10);
            while Instant::now() < end {
                if let Some(s) = self.exited() {
                    return Ok(s);
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            eprintln!("bench: {} ignored its stop signal; killing it", self.what);
            self.signal(libc::SIGKILL);
        }
        self.child
            .wait()
            .with_context(|| format!("waiting for {}", self.what))
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}

/// `n` idle processes (`sleep 3600`): a host with many processes to track. They are killed
/// (all of them first, then reaped) and the limits raised for them put back when this is
/// dropped.
pub struct Idle {
    procs: Vec<Proc>,
    _raised: Vec<Raised>,
}

impl Idle {
    pub fn len(&self) -> usize {
        self.procs.len()
    }
}

impl Drop for Idle {
    fn drop(&mut self) {
        for p in &mut self.procs {
            if p.exited().is_none() {
                p.signal(libc::SIGKILL);
            }
        }
        // Each one is reaped by its own Drop.
        self.procs.clear();
    }
}

/// Starts `n` idle processes, raising first what would stop that many (the soft process
/// limit, kernel.pid_max, kernel.threads-max), with room for the rest of the machine.
pub fn idle(n: u32) -> anyhow::Result<Idle> {
    let room = u64::from(n) + running_tasks()? + 4096;
    raise_nproc(room)?;
    let mut raised = Vec::new();
    for path in ["/proc/sys/kernel/pid_max", "/proc/sys/kernel/threads-max"] {
        if let Some(r) = Raised::at_least(path, room)? {
            raised.push(r);
        }
    }
    let mut procs = Vec::with_capacity(n as usize);
    for i in 0..n {
        check_interrupted()?;
        let mut c = Command::new("sleep");
        c.arg("3600")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        let p = Proc::spawn(&mut c, libc::SIGKILL, "sleep")
            .with_context(|| format!("starting idle process {} of {n}", i + 1))?;
        procs.push(p);
    }
    Ok(Idle {
        procs,
        _raised: raised,
    })
}

/// Tasks (threads) alive on the machine, from /proc/loadavg's "running/total" field.
fn running_tasks() -> anyhow::Result<u64> {
    let s = std::fs::read_to_string("/proc/loadavg").context("reading /proc/loadavg")?;
    parse_loadavg_tasks(&s).context("parsing /proc/loadavg")
}

fn parse_loadavg_tasks(s: &str) -> Option<u64> {
    s.split_whitespace().nth(3)?.split_once('/')?.1.parse().ok()
}

/// Raises this process's soft RLIMIT_NPROC to at least `n` (up to the hard limit; root is not
/// held to it anyway with CAP_SYS_ADMIN, but a user namespace may be).
fn raise_nproc(n: u64) -> anyhow::Result<()> {
    // SAFETY: getrlimit and setrlimit read and write the struct they are given.
    unsafe {
        let mut r: libc::rlimit = std::mem::zeroed();
        if libc::getrlimit(libc::RLIMIT_NPROC, &mut r) != 0 {
            bail!(
                "getrlimit(RLIMIT_NPROC): {}",
                std::io::Error::last_os_error()
            );
        }
        if r.rlim_cur != libc::RLIM_INFINITY && r.rlim_cur < n {
            r.rlim_cur = if r.rlim_max == libc::RLIM_INFINITY {
                n
            } else {
                n.min(r.rlim_max)
            };
            if libc::setrlimit(libc::RLIMIT_NPROC, &r) != 0 {
                bail!(
                    "setrlimit(RLIMIT_NPROC): {}",
                    std::io::Error::last_os_error()
                );
            }
        }
    }
    Ok(())
}

/// A sysctl raised for a while; the old value is written back when dropped.
pub struct Raised {
    path: &'static str,
    old: String,
}

impl Raised {
    /// Raises `path` to `n` if it is below; `None` if it was high enough.
    fn at_least(path: &'static str, n: u64) -> anyhow::Result<Option<Self>> {
        let old = std::fs::read_to_string(path)
            .with_context(|| format!("reading {path}"))?
            .trim()
            .to_string();
        let v: u64 = old.parse().with_context(|| format!("parsing {path}"))?;
        if v >= n {
            return Ok(None);
        }
        eprintln!("bench: raising {path} from {v} to {n} for the idle processes");
        std::fs::write(path, n.to_string()).with_context(|| format!("writing {n} to {path}"))?;
        Ok(Some(Self { path, old }))
    }
}

impl Drop for Raised {
    fn drop(&mut self) {
        if let Err(e) = std::fs::write(self.path, &self.old) {
            eprintln!(
                "bench: could not restore {} to {}: {e}",
                self.path, self.old
            );
        }
    }
}

/// utime + stime of a whole process (all its threads), in seconds.
pub fn cpu_seconds(pid: u32) -> anyhow::Result<f64> {
    let path = format!("/proc/{pid}/stat");
    let s = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    // The name (field 2) may hold spaces and parentheses: fields are counted after the
    // last ')', where field 3 (state) is index 0, so utime (14) and stime (15) are 11 and 12.
    let rest = s
        .rsplit_once(')')
        .map(|(_, r)| r)
        .with_context(|| format!("parsing {path}"))?;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let field = |i: usize| -> anyhow::Result<u64> {
        f.get(i)
            .and_then(|v| v.parse().ok())
            .with_context(|| format!("parsing {path}"))
    };
    let ticks = field(11)? + field(12)?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1);
    Ok(ticks as f64 / hz as f64)
}

/// On-CPU time of a process's live threads (the first field of each
/// `/proc/<pid>/task/<tid>/schedstat`), in seconds: ns-precise where utime+stime count in
/// ticks, but blind to threads that exited.
pub fn oncpu_seconds(pid: u32) -> anyhow::Result<f64> {
    let dir = format!("/proc/{pid}/task");
    let mut ns = 0u64;
    for e in std::fs::read_dir(&dir).with_context(|| format!("reading {dir}"))? {
        let p = e?.path().join("schedstat");
        // A thread may exit between listing and reading.
        if let Ok(s) = std::fs::read_to_string(&p) {
            ns += s
                .split_whitespace()
                .next()
                .and_then(|v| v.parse::<u64>().ok())
                .with_context(|| format!("parsing {}", p.display()))?;
        }
    }
    Ok(ns as f64 / 1e9)
}

/// A `Vm*` line of `/proc/<pid>/status` in KiB (VmRSS, VmHWM).
pub fn status_kib(pid: u32, key: &str) -> anyhow::Result<u64> {
    let path = format!("/proc/{pid}/status");
    let s = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    s.lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .with_context(|| format!("no {key} in {path}"))
}

/// The last lines of a log file, for error messages.
pub fn tail(path: &Path, lines: usize) -> String {
    let s = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = s.lines().collect();
    let from = all.len().saturating_sub(lines);
    format!(
        "{} (last lines):\n{}",
        path.display(),
        all[from..].join("\n")
    )
}

/// A plain HTTP/1.0 GET: the status code and the body.
pub fn http_get(addr: SocketAddr, path: &str) -> anyhow::Result<(u16, Vec<u8>)> {
    let timeout = Duration::from_secs(5);
    let mut s = TcpStream::connect_timeout(&addr, timeout)?;
    s.set_read_timeout(Some(timeout))?;
    s.set_write_timeout(Some(timeout))?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n")?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf)?;
    let head_end = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .context("no end of HTTP headers")?;
    let status = std::str::from_utf8(&buf[..head_end])
        .ok()
        .and_then(|h| h.split_whitespace().nth(1)?.parse().ok())
        .context("no HTTP status line")?;
    Ok((status, buf[head_end + 4..].to_vec()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_task_count_from_loadavg() {
        assert_eq!(
            parse_loadavg_tasks("0.52 0.61 0.70 3/412 12345\n"),
            Some(412)
        );
        assert_eq!(parse_loadavg_tasks("0.52 0.61"), None);
    }
}
