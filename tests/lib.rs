//! Harness for the integration tests: start the real daemon on a free loopback port, read
//! its endpoints, spawn workloads with known names, and read the kernel's own figures
//! (`/proc/<pid>/stat`, `/proc/<pid>/schedstat`) as the independent truth.
//!
//! Tests panic on failure (they are privileged tests; a `Result` would hide where).

pub mod certs;
pub mod pki;
pub mod rw_receiver;
pub mod sink;

use std::{
    net::TcpListener,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

pub mod faulty_disk;
pub mod workload;

/// The daemon binary: `MONITOR_BIN` (set by `cargo xtask test`) or the debug build.
pub fn monitor_bin() -> PathBuf {
    std::env::var_os("MONITOR_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/debug/monitor"))
}

/// `setpriv` arguments that run a command as nobody with no capabilities at all.
pub const UNPRIVILEGED: &[&str] = &[
    "setpriv",
    "--reuid=65534",
    "--regid=65534",
    "--clear-groups",
    "--inh-caps=-all",
];

pub fn require_root() {
    // SAFETY: geteuid has no preconditions.
    let euid = unsafe { libc::geteuid() };
    assert_eq!(
        euid, 0,
        "integration tests load eBPF programs: run them as root (cargo xtask test)"
    );
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("binding an ephemeral port")
        .local_addr()
        .unwrap()
        .port()
}

/// A running daemon, stopped (SIGTERM) when dropped.
pub struct Daemon {
    child: Child,
    pub port: u16,
    log: tempfile::NamedTempFile,
}

impl Daemon {
    pub fn start(extra: &[&str]) -> Self {
        Self::start_ready(extra, |d| d.get("/healthz").0 == 200)
    }

    /// Starts the daemon and waits until `ready` says it answers (for a daemon that serves
    /// TLS, or asks for credentials).
    pub fn start_ready(extra: &[&str], ready: impl Fn(&Daemon) -> bool) -> Self {
        require_root();
        let port = free_port();
        let log = tempfile::NamedTempFile::new().unwrap();
        let addr = format!("127.0.0.1:{port}");
        let child = Command::new(monitor_bin())
            .args(["run", "--web.listen-address", &addr])
            .args(extra)
            .stdout(Stdio::null())
            .stderr(log.reopen().unwrap())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", monitor_bin().display()));
        let mut d = Daemon { child, port, log };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(Some(status)) = d.child.try_wait() {
                panic!("daemon exited early ({status}):\n{}", d.log());
            }
            if ready(&d) {
                return d;
            }
            assert!(
                Instant::now() < deadline,
                "daemon never answered /healthz:\n{}",
                d.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// (status, body); status 0 when the connection failed.
    pub fn get(&self, path: &str) -> (u16, String) {
        request("GET", &self.url(path))
    }

    pub fn metrics(&self) -> Metrics {
        let (status, body) = self.get("/metrics");
        assert_eq!(status, 200, "GET /metrics: {body}");
        Metrics(body)
    }

    pub fn processes(&self) -> Vec<serde_json::Value> {
        let (status, body) = self.get("/api/v1/processes");
        assert_eq!(status, 200, "GET /api/v1/processes: {body}");
        let v: serde_json::Value = serde_json::from_str(&body).expect("processes JSON");
        v["processes"].as_array().expect("processes array").clone()
    }

    /// `pid`'s entry, waiting for it: a process started since the last refresh (at most
    /// 100 ms old for a request) is not listed yet.
    pub fn process(&self, pid: u32) -> serde_json::Value {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(p) = self
                .processes()
                .into_iter()
                .find(|p| p["pid"].as_u64() == Some(u64::from(pid)))
            {
                return p;
            }
            assert!(
                Instant::now() < deadline,
                "pid {pid} not in /api/v1/processes"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log.path()).unwrap_or_default()
    }

    /// The daemon's own query API (`/api/v1/query`...), as `Prometheus::api`.
    pub fn api(
        &self,
        endpoint: &str,
        params: &[(&str, &str)],
    ) -> Result<serde_json::Value, String> {
        query_api(self.port, endpoint, params)
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        // SAFETY: signalling our own child by pid.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                let log = self.log();
                if log.contains("panicked") && !std::thread::panicking() {
                    panic!("the daemon panicked:\n{log}");
                }
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn request(method: &str, url: &str) -> (u16, String) {
    match ureq::request(method, url)
        .timeout(Duration::from_secs(10))
        .call()
    {
        Ok(r) => {
            let status = r.status();
            (status, r.into_string().unwrap_or_default())
        }
        Err(ureq::Error::Status(code, r)) => (code, r.into_string().unwrap_or_default()),
        Err(_) => (0, String::new()),
    }
}

/// A Prometheus text exposition.
pub struct Metrics(pub String);

impl Metrics {
    /// The value of the sample whose series is exactly `series`, e.g.
    /// `monitor_process_starts_total{group="x"}`.
    pub fn get(&self, series: &str) -> Option<f64> {
        self.0
            .lines()
            .filter(|l| !l.starts_with('#'))
            .find_map(|l| {
                let (s, v) = l.rsplit_once(' ')?;
                (s == series).then(|| v.parse().ok())?
            })
    }

    pub fn value(&self, series: &str) -> f64 {
        self.get(series)
            .unwrap_or_else(|| panic!("no series {series} in:\n{}", self.0))
    }
}

/// utime + stime of `pid` in seconds, from `/proc/<pid>/stat`.
pub fn proc_cpu_seconds(pid: u32) -> f64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after = &s[s.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = after.split_whitespace().collect();
    // Fields 14 and 15 of stat, counted from the state (field 3) here.
    let ticks: u64 = f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap();
    // SAFETY: sysconf has no preconditions.
    ticks as f64 / unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64
}

/// (on-CPU seconds, run-queue wait seconds) of `pid`, from `/proc/<pid>/schedstat`.
pub fn proc_schedstat(pid: u32) -> (f64, f64) {
    let s = std::fs::read_to_string(format!("/proc/{pid}/schedstat")).unwrap();
    let f: Vec<f64> = s
        .split_whitespace()
        .map(|v| v.parse::<f64>().unwrap() / 1e9)
        .collect();
    (f[0], f[1])
}

/// A copy of a system binary under a short unique name, so its processes form their own
/// group (`comm` is the file name, at most 15 characters).
pub struct NamedBinary {
    _dir: tempfile::TempDir,
    pub path: PathBuf,
    pub name: String,
}

impl NamedBinary {
    pub fn new(source: &str, prefix: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let name = format!("{prefix}{}", std::process::id() % 100_000);
        assert!(name.len() <= 15, "{name} is longer than a comm");
        let path = dir.path().join(&name);
        std::fs::copy(source, &path).unwrap();
        NamedBinary {
            _dir: dir,
            path,
            name,
        }
    }
}

/// A child killed (SIGKILL works on stopped ones too) and reaped when dropped, so a failing
/// test leaves nothing running.
pub struct Guard(pub Child);

impl std::ops::Deref for Guard {
    type Target = Child;
    fn deref(&self) -> &Child {
        &self.0
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A CPU-bound shell loop running under `bin`'s name, optionally pinned to one CPU.
pub fn spin(bin: &NamedBinary, cpu: Option<usize>) -> Guard {
    let mut c = Command::new(&bin.path);
    c.args(["-c", "while :; do :; done"]);
    if let Some(cpu) = cpu {
        use std::os::unix::process::CommandExt as _;
        // SAFETY: only async-signal-safe calls between fork and exec.
        unsafe {
            c.pre_exec(move || {
                let mut set: libc::cpu_set_t = std::mem::zeroed();
                libc::CPU_SET(cpu, &mut set);
                if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            })
        };
    }
    Guard(c.spawn().expect("spawning a CPU-bound child"))
}

pub fn signal(child: &Child, sig: i32) {
    // SAFETY: signalling our own child by pid.
    unsafe { libc::kill(child.id() as i32, sig) };
}

/// Stops every child (SIGSTOP) and waits until all are stopped, so the daemon and procfs
/// then see the same, final totals.
pub fn stop_all(children: &[&Guard]) {
    for c in children {
        signal(c, libc::SIGSTOP);
    }
    for c in children {
        wait_stopped(c.id());
    }
}

/// Waits for `pid` to be stopped (state T in /proc/<pid>/stat).
pub fn wait_stopped(pid: u32) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
        let state = s[s.rfind(')').unwrap() + 2..].chars().next().unwrap();
        if state == 'T' {
            return;
        }
        assert!(Instant::now() < deadline, "pid {pid} did not stop");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// `a` and `b` within `tolerance` (a fraction) of `b`.
pub fn assert_close(what: &str, a: f64, b: f64, tolerance: f64) {
    let err = (a - b).abs() / b.abs().max(1e-9);
    assert!(
        err <= tolerance,
        "{what}: {a} vs truth {b} differ by {:.2}% (allowed {:.1}%)",
        err * 100.0,
        tolerance * 100.0
    );
    eprintln!("{what}: {a:.6} vs truth {b:.6} ({:.2}% apart)", err * 100.0);
}

/// Reads a whole child stream (for commands whose output a test checks).
pub fn read_all(mut r: impl std::io::Read) -> String {
    let mut s = String::new();
    let _ = r.read_to_string(&mut s);
    s
}

/// Runs the daemon expecting it to fail: (exit code, stderr).
pub fn fails(pre: &[&str], args: &[&str]) -> (i32, String) {
    let bin = monitor_bin();
    let mut c = match pre.split_first() {
        Some((first, rest)) => {
            let mut c = Command::new(first);
            c.args(rest).arg(&bin);
            c
        }
        None => Command::new(&bin),
    };
    let out = c.args(args).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!stderr.contains("panicked"), "panic on {args:?}:\n{stderr}");
    let code = out.status.code().expect("exited, not killed");
    assert_ne!(code, 0, "{args:?} succeeded:\n{stderr}");
    (code, stderr)
}

/// Whether the server has closed `c` (end of file, or a reset), waiting at most `wait`.
pub fn closed_by_server(c: &mut std::net::TcpStream, wait: Duration) -> bool {
    c.set_read_timeout(Some(wait)).unwrap();
    let mut buf = [0u8; 4096];
    loop {
        match std::io::Read::read(c, &mut buf) {
            Ok(0) => return true,
            // An answer (a 408 or an error page) before the close is fine; read on.
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return true,
            Err(_) => return false,
        }
    }
}

pub fn one_line(stderr: &str) -> &str {
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "expected one line, got:\n{stderr}");
    lines[0]
}

/// A FUSE mount whose server never answers: every statfs on it blocks until the connection
/// is aborted, as with a dead NFS server. Unmounted (lazily) and aborted when dropped.
pub struct HungMount {
    pub dir: tempfile::TempDir,
    _fuse: std::fs::File,
}

impl HungMount {
    #[expect(
        clippy::new_without_default,
        reason = "mounting is an action, not a default value"
    )]
    pub fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let fuse = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/fuse")
            .expect("/dev/fuse");
        let c = |s: &str| std::ffi::CString::new(s).unwrap();
        let opts = format!(
            "fd={},rootmode=40000,user_id=0,group_id=0",
            std::os::fd::AsRawFd::as_raw_fd(&fuse)
        );
        let target = c(dir.path().to_str().unwrap());
        // SAFETY: valid NUL-terminated strings for the duration of the call.
        let rc = unsafe {
            libc::mount(
                c("monitor-test-hang").as_ptr(),
                target.as_ptr(),
                c("fuse").as_ptr(),
                0,
                c(&opts).as_ptr().cast(),
            )
        };
        assert_eq!(rc, 0, "mounting FUSE: {}", std::io::Error::last_os_error());
        HungMount { dir, _fuse: fuse }
    }
}

impl Drop for HungMount {
    fn drop(&mut self) {
        let c = std::ffi::CString::new(self.dir.path().to_str().unwrap()).unwrap();
        // SAFETY: a valid path. Lazy, so it succeeds while calls are blocked; closing the
        // device afterwards aborts the connection and releases them.
        unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
    }
}

/// A Prometheus server on loopback (Debian's package, installed by `cargo xtask test`)
/// scraping one target every second, stopped when dropped.
pub struct Prometheus {
    child: std::process::Child,
    pub port: u16,
    _dir: tempfile::TempDir,
}

impl Prometheus {
    /// Scrapes `127.0.0.1:target_port` as job `monitor`.
    pub fn start(target_port: u16) -> Self {
        Self::with_scrape_configs(&format!(
            "  - job_name: monitor\n    static_configs:\n      \
             - targets: ['127.0.0.1:{target_port}']\n"
        ))
    }

    /// Runs with these `scrape_configs` entries (YAML, indented by two spaces), scraping
    /// every second.
    pub fn with_scrape_configs(scrape_configs: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n\
                 scrape_configs:\n{scrape_configs}"
            ),
        )
        .unwrap();
        let port = free_port();
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.path().join("log")).unwrap())
            .spawn()
            .expect("prometheus (Debian package prometheus) is installed by cargo xtask test");
        Prometheus {
            child,
            port,
            _dir: dir,
        }
    }

    /// An instant query through the HTTP API; `None` until the server answers 200.
    pub fn query(&self, q: &str) -> Option<serde_json::Value> {
        self.api("query", &[("query", q)]).ok()
    }

    /// `POST /api/v1/<endpoint>` with form `params` (`GET` with them in the URL for the
    /// `label/` endpoints, which take no POST): the JSON answer, or the status and body of an
    /// error (Prometheus says what is wrong with a query in it).
    pub fn api(
        &self,
        endpoint: &str,
        params: &[(&str, &str)],
    ) -> Result<serde_json::Value, String> {
        query_api(self.port, endpoint, params)
    }
}

/// A Prometheus-shaped query API on loopback `port` (Prometheus's, or the daemon's own):
/// see `Prometheus::api`.
pub fn query_api(
    port: u16,
    endpoint: &str,
    params: &[(&str, &str)],
) -> Result<serde_json::Value, String> {
    let url = format!("http://127.0.0.1:{port}/api/v1/{endpoint}");
    let answer = if endpoint.starts_with("label/") {
        params
            .iter()
            .fold(ureq::get(&url), |r, (k, v)| r.query(k, v))
            .timeout(Duration::from_secs(10))
            .call()
    } else {
        ureq::post(&url)
            .timeout(Duration::from_secs(10))
            .send_form(params)
    };
    match answer {
        Ok(r) => serde_json::from_str(&r.into_string().unwrap_or_default())
            .map_err(|e| format!("{endpoint}: not JSON: {e}")),
        Err(ureq::Error::Status(code, r)) => {
            Err(format!("{code}: {}", r.into_string().unwrap_or_default()))
        }
        Err(e) => Err(e.to_string()),
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `monitor top --once` against the daemon at `url`, which must succeed.
pub fn top_once(url: &str, args: &[&str]) -> std::process::Output {
    let out = Command::new(monitor_bin())
        .args(["top", "--url", url, "--once"])
        .args(args)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "top --once {args:?}: {stderr}");
    out
}

/// `monitor top --once --output json`, parsed.
pub fn json_once(url: &str, args: &[&str]) -> serde_json::Value {
    let mut a = vec!["--output", "json"];
    a.extend_from_slice(args);
    let out = top_once(url, &a);
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("top's JSON: {e}:\n{}", String::from_utf8_lossy(&out.stdout)))
}
