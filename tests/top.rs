//! `monitor top` as a person uses it, in a real terminal (tmux: send-keys to type,
//! capture-pane to read the screen), and as scripts use it (`--once`), checked against the
//! daemon's own `/api/v1/processes`.

use std::{
    io::{Read as _, Write as _},
    net::TcpListener,
    path::PathBuf,
    process::Command,
    time::{Duration, Instant},
};

use monitor_tests::*;

/// How long the screen may take to show what a test waits for.
const DEADLINE: Duration = Duration::from_secs(30);

/// A tmux server of its own (its socket in a directory of its own, so nothing of the
/// user's is touched) running a shell in a 200x50 pane; killed with everything in it, and
/// its socket removed, when dropped.
struct Tmux {
    socket: PathBuf,
    _dir: tempfile::TempDir,
}

const PROMPT: &str = "PROMPT$";

impl Tmux {
    fn shell() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let t = Tmux {
            socket: dir.path().join("tmux"),
            _dir: dir,
        };
        t.tmux(&[
            "new-session",
            "-d",
            "-x",
            "200",
            "-y",
            "50",
            "-s",
            "t",
            &format!("env PS1='{PROMPT} ' /bin/sh"),
        ]);
        t.wait_for("the shell prompt", |s| s.contains(PROMPT));
        t
    }

    fn tmux(&self, args: &[&str]) -> String {
        let out = Command::new("tmux")
            .arg("-S")
            .arg(&self.socket)
            .args(["-f", "/dev/null"])
            .args(args)
            .output()
            .expect("running tmux (cargo xtask test installs it)");
        assert!(
            out.status.success(),
            "tmux {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn screen(&self) -> String {
        self.tmux(&["capture-pane", "-p", "-t", "t"])
    }

    fn keys(&self, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", "t"];
        args.extend_from_slice(keys);
        self.tmux(&args);
    }

    /// Types a command line into the shell.
    fn type_line(&self, line: &str) {
        self.keys(&["-l", line]);
        self.keys(&["Enter"]);
    }

    /// Polls the screen until `ok` holds; returns that screen.
    fn wait_for(&self, what: &str, ok: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + DEADLINE;
        loop {
            let s = self.screen();
            if ok(&s) {
                return s;
            }
            assert!(
                Instant::now() < deadline,
                "waited {DEADLINE:?} for {what}; the screen:\n{s}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn alternate_screen(&self) -> bool {
        self.tmux(&["display-message", "-p", "-t", "t", "#{alternate_on}"])
            .trim()
            == "1"
    }

    fn shell_pid(&self) -> u32 {
        self.tmux(&["display-message", "-p", "-t", "t", "#{pane_pid}"])
            .trim()
            .parse()
            .expect("pane pid")
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .arg("-S")
            .arg(&self.socket)
            .arg("kill-server")
            .output();
    }
}

/// The table on a screen: (pid or process count, name) per row.
fn rows(screen: &str) -> Vec<(u32, String)> {
    let mut lines = screen.lines();
    let header = lines.by_ref().position(|l| {
        let l = l.trim_start();
        (l.starts_with("PID") || l.starts_with("PROCS")) && l.contains("CPU%")
    });
    if header.is_none() {
        return Vec::new();
    }
    lines
        .map_while(|l| {
            let mut f = l.split_whitespace();
            let pid = f.next()?.parse().ok()?;
            Some((pid, f.last()?.to_string()))
        })
        .collect()
}

/// The first line of the screen: source, interval, sort, filter.
fn title(screen: &str) -> &str {
    screen.lines().next().unwrap_or("")
}

fn top_in(t: &Tmux, d: &Daemon, extra: &str) {
    t.type_line(&format!(
        "clear; {} top --url {} {extra}; echo exit=$?",
        monitor_bin().display(),
        d.url("")
    ));
}

fn exit_code(screen: &str) -> Option<i32> {
    screen
        .lines()
        .find_map(|l| l.trim().strip_prefix("exit=")?.parse().ok())
}

#[test]
fn the_busy_child_tops_the_cpu_sort_and_a_key_changes_the_sort() {
    let d = Daemon::start(&[]);
    let bin = NamedBinary::new("/bin/dash", "mttop");
    let child = spin(&bin, None);
    let t = Tmux::shell();
    top_in(&t, &d, "");
    let s = t.wait_for("the spinning child as the first row", |s| {
        rows(s).first().map(|r| r.0) == Some(child.id())
    });
    assert!(title(&s).contains("sort CPU%▼"), "{s}");
    assert!(title(&s).contains(&format!("daemon {}", d.url(""))), "{s}");
    assert_eq!(rows(&s)[0].1, bin.name, "{s}");

    t.keys(&["p"]);
    let s = t.wait_for("the table sorted by PID", |s| {
        let r = rows(s);
        title(s).contains("sort PID▲") && r.len() > 10 && r.windows(2).all(|w| w[0].0 < w[1].0)
    });
    assert_ne!(rows(&s)[0].0, child.id(), "{s}");

    // The same key again reverses the order.
    t.keys(&["p"]);
    t.wait_for("PID, highest first", |s| {
        let r = rows(s);
        title(s).contains("sort PID▼") && r.len() > 10 && r.windows(2).all(|w| w[0].0 > w[1].0)
    });
    t.keys(&["q"]);
    t.wait_for("the shell back", |s| exit_code(s) == Some(0));
}

#[test]
fn the_filter_hides_other_processes_and_groups_add_up() {
    let d = Daemon::start(&[]);
    let bin = NamedBinary::new("/bin/dash", "mtfilt");
    let a = spin(&bin, None);
    let b = spin(&bin, None);
    let t = Tmux::shell();
    top_in(&t, &d, "");
    t.wait_for("the process table", |s| rows(s).len() > 10);

    t.keys(&["/"]);
    t.keys(&["-l", &bin.name]);
    t.keys(&["Enter"]);
    let s = t.wait_for("only the two children", |s| {
        let r = rows(s);
        title(s).contains(&format!("filter \"{}\"", bin.name)) && r.len() == 2
    });
    let mut pids: Vec<u32> = rows(&s).iter().map(|r| r.0).collect();
    pids.sort_unstable();
    let mut want = vec![a.id(), b.id()];
    want.sort_unstable();
    assert_eq!(pids, want, "{s}");
    assert!(rows(&s).iter().all(|r| r.1 == bin.name), "{s}");

    // One row for the group, counting both.
    t.keys(&["g"]);
    let s = t.wait_for("the group row", |s| {
        s.contains("GROUP") && rows(s) == [(2, bin.name.clone())]
    });
    assert!(title(&s).contains("grouped"), "{s}");

    // Esc clears the filter: everything is back.
    t.keys(&["g"]);
    t.keys(&["Escape"]);
    t.wait_for("every process again", |s| {
        rows(s).len() > 10 && !title(s).contains("filter")
    });
    t.keys(&["q"]);
    t.wait_for("the shell back", |s| exit_code(s) == Some(0));
}

/// The pid of the child of `parent` named `comm`.
fn child_named(parent: u32, comm: &str) -> Option<u32> {
    std::fs::read_dir("/proc").ok()?.find_map(|e| {
        let pid: u32 = e.ok()?.file_name().to_str()?.parse().ok()?;
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        let (name, rest) = stat.split_once(" (")?.1.rsplit_once(") ")?;
        let ppid: u32 = rest.split_whitespace().nth(1)?.parse().ok()?;
        (ppid == parent && name == comm).then_some(pid)
    })
}

#[test]
fn every_way_out_restores_the_terminal() {
    let d = Daemon::start(&[]);
    let t = Tmux::shell();
    for how in ["q", "Ctrl-C", "SIGTERM", "panic"] {
        top_in(&t, &d, if how == "panic" { "--debug.panic" } else { "" });
        if how != "panic" {
            t.wait_for("top's screen", |s| {
                title(s).starts_with("monitor top - daemon")
            });
            assert!(
                t.alternate_screen(),
                "{how}: top is not on the alternate screen"
            );
        }
        match how {
            "q" => t.keys(&["q"]),
            "Ctrl-C" => t.keys(&["C-c"]),
            "SIGTERM" => {
                let pid = child_named(t.shell_pid(), "monitor").expect("top's pid");
                // SAFETY: signalling a process this test started (through the shell).
                unsafe { libc::kill(pid as i32, libc::SIGTERM) };
            }
            _ => {}
        }
        let s = t.wait_for("the shell back", |s| {
            exit_code(s).is_some() && s.trim_end().ends_with(PROMPT)
        });
        assert!(
            !t.alternate_screen(),
            "{how}: still on the alternate screen"
        );
        assert!(
            !s.contains("CPU%"),
            "{how}: the table is left on screen:\n{s}"
        );
        if how == "panic" {
            assert_eq!(exit_code(&s), Some(101), "{s}");
            assert!(
                s.contains("panicking on purpose"),
                "{how}: no message:\n{s}"
            );
        } else {
            assert_eq!(exit_code(&s), Some(0), "{how}:\n{s}");
        }
        t.type_line("clear; stty -a | tr ' ;' '\\n\\n' | grep -xE -- '-?(echo|icanon|isig)' | tr '\\n' ' '; echo :stty");
        // The typed command line ends the same way: wait for the output line itself.
        let output = |s: &str| {
            s.lines()
                .find(|l| l.ends_with(" :stty") && !l.contains("stty -a"))
                .map(str::to_string)
        };
        let s = t.wait_for("stty's modes", |s| output(s).is_some());
        let modes = output(&s).unwrap_or_default();
        for m in ["echo", "icanon", "isig"] {
            assert!(
                modes.split_whitespace().any(|w| w == m),
                "{how}: {m} is off after exit: {modes}"
            );
        }
    }
}

#[test]
fn top_ends_when_its_terminal_goes_away() {
    let d = Daemon::start(&[]);
    let t = Tmux::shell();
    top_in(&t, &d, "");
    t.wait_for("top's screen", |s| {
        title(s).starts_with("monitor top - daemon")
    });
    let pid = child_named(t.shell_pid(), "monitor").expect("top's pid");
    // Killing the server closes the pane's terminal under top.
    drop(t);
    let deadline = Instant::now() + Duration::from_secs(5);
    while std::path::Path::new(&format!("/proc/{pid}")).exists() {
        if Instant::now() > deadline {
            let cpu = proc_cpu_seconds(pid);
            // SAFETY: a process this test started (through the shell) and must not leave.
            unsafe { libc::kill(pid as i32, libc::SIGKILL) };
            panic!("top outlived its terminal by 5 s (and used {cpu:.1} s of CPU)");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn find(doc: &serde_json::Value, pid: u32) -> serde_json::Value {
    doc["processes"]
        .as_array()
        .expect("a processes array")
        .iter()
        .find(|p| p["pid"].as_u64() == Some(u64::from(pid)))
        .unwrap_or_else(|| panic!("pid {pid} not in {doc}"))
        .clone()
}

#[test]
fn batch_json_agrees_with_the_daemon_api() {
    let d = Daemon::start(&[]);
    let bin = NamedBinary::new("/bin/dash", "mtjson");
    let child = spin(&bin, None);
    std::thread::sleep(Duration::from_secs(1));

    // Running: about one core (the machine has two), less when others compete; never more
    // than one core for one thread, as the slice in progress is counted at each read.
    let doc = json_once(&d.url(""), &["--interval", "1s", "--filter", &bin.name]);
    assert_eq!(doc["source"], "daemon", "{doc}");
    assert_eq!(doc["measured"], true, "{doc}");
    let p = find(&doc, child.id());
    let cpu = p["cpu_percent"].as_f64().unwrap();
    assert!(cpu > 20.0 && cpu <= 101.0, "cpu_percent {cpu}: {p}");
    assert!(
        doc["host"]["cpu_busy_percent"].as_f64().unwrap() > 0.0,
        "{doc}"
    );
    assert!(
        doc["host"]["runqueue_latency_p99_seconds"].is_number(),
        "{doc}"
    );
    assert!(
        doc["host"]["memory_total_bytes"].as_f64().unwrap() > 0.0,
        "{doc}"
    );

    // Frozen: both reads see the same totals, field for field.
    stop_all(&[&child]);
    std::thread::sleep(Duration::from_millis(300));
    let doc = json_once(&d.url(""), &["--interval", "200ms", "--filter", &bin.name]);
    let ours = find(&doc, child.id());
    let api = d.process(child.id());
    for f in ["pid", "ppid", "comm", "exe", "cmdline", "uid", "group"] {
        assert_eq!(ours[f], api[f], "{f}: top {ours} vs API {api}");
    }
    for f in [
        "cpu_seconds_total",
        "runqueue_wait_seconds_total",
        "voluntary_switches_total",
        "involuntary_switches_total",
    ] {
        assert_close(
            f,
            ours[f].as_f64().unwrap(),
            api[f].as_f64().unwrap(),
            0.001,
        );
    }
    assert_eq!(ours["cpu_percent"].as_f64(), Some(0.0), "{ours}");
    assert_eq!(ours["user"], "root");
    // Memory, disk and network come from the API (the child does no I/O).
    assert_eq!(
        ours["rss_bytes"].as_f64(),
        api["rss_bytes"].as_f64(),
        "{ours} vs {api}"
    );
    assert_eq!(
        ours["disk_read_bytes_per_second"].as_f64(),
        Some(0.0),
        "{ours}"
    );
    for f in ["net_rx_bytes_per_second", "net_tx_bytes_per_second"] {
        assert_eq!(ours[f].as_f64(), Some(0.0), "{f}: {ours}");
    }
}

#[test]
fn batch_table_and_csv_list_the_child() {
    let d = Daemon::start(&[]);
    let bin = NamedBinary::new("/bin/dash", "mtcsv");
    let child = spin(&bin, None);
    let pid = child.id().to_string();

    let out = top_once(&d.url(""), &["--output", "csv", "--limit", "500"]);
    let csv = String::from_utf8_lossy(&out.stdout);
    let mut lines = csv.lines();
    assert_eq!(
        lines.next(),
        Some(
            "pid,user,cpu_percent,runqueue_wait_ms_per_second,rss_bytes,\
             disk_read_bytes_per_second,disk_write_bytes_per_second,disk_latency_ms,\
             net_rx_bytes_per_second,net_tx_bytes_per_second,comm,group"
        )
    );
    let row = lines
        .find(|l| l.starts_with(&format!("{pid},")))
        .unwrap_or_else(|| panic!("no row for {pid}:\n{csv}"));
    let f: Vec<&str> = row.split(',').collect();
    assert_eq!(f.len(), 12, "{row}");
    assert_eq!(f[10], bin.name, "{row}");
    assert!(f[2].parse::<f64>().unwrap() > 10.0, "{row}");
    // Disk and network are measured (the child does neither): zero.
    assert_eq!(f[5], "0", "{row}");
    assert_eq!(f[8], "0", "{row}");
    assert_eq!(f[9], "0", "{row}");

    let out = top_once(
        &d.url(""),
        &["--output", "table", "--sort", "pid", "--limit", "1000"],
    );
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(table.starts_with("monitor top - daemon"), "{table}");
    assert!(
        table
            .lines()
            .any(|l| l.trim_start().starts_with("PID USER")),
        "{table}"
    );
    assert!(
        table.lines().any(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            f.first() == Some(&pid.as_str()) && f.last() == Some(&bin.name.as_str())
        }),
        "no row for {pid}:\n{table}"
    );
}

#[test]
fn standalone_when_no_daemon_listens() {
    require_root();
    // Nothing listens there: top loads the kernel programs itself.
    let url = format!("http://127.0.0.1:{}", free_port());
    let bin = NamedBinary::new("/bin/dash", "mtalone");
    let child = spin(&bin, None);
    let doc = json_once(&url, &["--interval", "1s", "--filter", &bin.name]);
    assert_eq!(doc["source"], "standalone", "{doc}");
    assert_eq!(doc["measured"], true, "{doc}");
    let p = find(&doc, child.id());
    assert_eq!(p["group"], bin.name.as_str());
    assert!(p["cpu_seconds_total"].as_f64().unwrap() > 0.0, "{p}");
    // The slice in progress counts at each read, so a lone spinner that runs a whole
    // interval without a switch still reads busy.
    let pct = p["cpu_percent"].as_f64().unwrap();
    assert!(pct > 20.0 && pct <= 101.0, "{p}");
    assert!(
        doc["host"]["runqueue_waits_per_second"].is_number(),
        "{doc}"
    );
}

#[test]
fn standalone_without_privileges_says_why_in_one_line() {
    require_root();
    let url = format!("http://127.0.0.1:{}", free_port());
    let (code, err) = fails(UNPRIVILEGED, &["top", "--once", "--url", &url]);
    assert_eq!(code, 1);
    let line = one_line(&err);
    assert!(
        line.contains("no daemon at") && line.contains("refused") && line.contains("root"),
        "{line}"
    );
}

/// A server answering every request with `response`, on a free loopback port.
fn serve(response: &'static str) -> String {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", l.local_addr().unwrap());
    std::thread::spawn(move || {
        for mut s in l.incoming().flatten().take(10) {
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf);
            let _ = s.write_all(response.as_bytes());
        }
    });
    url
}

#[test]
fn bad_flags_and_bad_servers_fail_in_one_line() {
    // (arguments, what the error line names)
    for (args, names) in [
        (&["--interval", "soon"][..], "--interval"),
        (&["--interval", "0"], "--interval"),
        (
            &["--once", "--output", "xml"],
            "[possible values: table, json, csv]",
        ),
        (&["--sort", "size"], "unknown column"),
        (&["--limit", "0"], "--limit"),
        (&["--url", "ftp://127.0.0.1"], "only http://"),
        (&["--output", "json"], "not provided: --once"),
    ] {
        let mut a = vec!["top"];
        a.extend_from_slice(args);
        let (code, err) = fails(&[], &a);
        assert_eq!(code, 2, "{args:?}");
        assert!(one_line(&err).contains(names), "{args:?}: {err}");
    }

    let d = Daemon::start(&[]);
    let (code, err) = fails(&[], &["top", "--once", "--url", &d.url("/nope")]);
    assert_eq!(code, 1);
    assert!(one_line(&err).contains("HTTP 404"), "{err}");

    let url = serve("HTTP/1.1 200 OK\r\nContent-Length: 6\r\nConnection: close\r\n\r\n<html>");
    let (code, err) = fails(&[], &["top", "--once", "--url", &url]);
    assert_eq!(code, 1);
    assert!(
        one_line(&err).contains("not a monitor process list"),
        "{err}"
    );

    let url = serve("HTTP/1.1 500 Internal Server Error\r\nContent-Length: 5\r\n\r\noops\n");
    let (code, err) = fails(&[], &["top", "--once", "--url", &url]);
    assert_eq!(code, 1);
    assert!(one_line(&err).contains("HTTP 500: oops"), "{err}");

    // The live view needs a terminal.
    let (code, err) = fails(&[], &["top", "--url", &d.url("")]);
    assert_eq!(code, 1);
    assert!(one_line(&err).contains("needs a terminal"), "{err}");
}
