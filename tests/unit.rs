//! Service identity: processes started in a service's cgroup are reported with its unit,
//! in the process list while they live and in `--process.group-by unit` groups after they
//! exit. The truth is the test's own cgroup, made by hand under the cgroup2 mount (this
//! machine has no systemd as PID 1; a process moved into a cgroup before its exec is what
//! systemd does when it starts a unit), and the children's CPU time from the kernel
//! (`wait4`'s rusage, `/proc/<pid>/stat`).

use std::{
    ffi::CString,
    os::unix::process::CommandExt as _,
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, Instant},
};

use monitor_tests::*;

/// Short-lived processes started in the unit.
const SHORT: usize = 3;

/// The cgroup2 mount, from /proc/self/mountinfo: `/sys/fs/cgroup/unified` on this hybrid
/// machine, `/sys/fs/cgroup` on a pure v2 one.
fn cgroup2_mount() -> PathBuf {
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    mounts
        .lines()
        .find(|l| {
            l.split(" - ")
                .nth(1)
                .is_some_and(|t| t.starts_with("cgroup2 "))
        })
        .and_then(|l| l.split(' ').nth(4))
        .map(PathBuf::from)
        .expect("no cgroup2 mount on this machine")
}

/// A cgroup `system.slice/monitor-test-<pid>.service`, removed when dropped.
struct Unit {
    dir: PathBuf,
    /// Its path in the hierarchy, as the daemon must report it.
    path: String,
    name: String,
    made_slice: Option<PathBuf>,
}

impl Unit {
    fn new() -> Self {
        let mount = cgroup2_mount();
        let slice = mount.join("system.slice");
        let made_slice = (!slice.exists()).then(|| slice.clone());
        let name = format!("monitor-test-{}.service", std::process::id());
        let dir = slice.join(&name);
        std::fs::create_dir_all(&dir)
            .unwrap_or_else(|e| panic!("creating cgroup {}: {e}", dir.display()));
        Unit {
            path: format!("/system.slice/{name}"),
            dir,
            name,
            made_slice,
        }
    }

    /// `cmd`, moved into this cgroup between its fork and its exec.
    fn command(&self, bin: &Path, script: &str) -> Command {
        let procs = CString::new(self.dir.join("cgroup.procs").to_str().unwrap()).unwrap();
        let mut c = Command::new(bin);
        c.args(["-c", script]);
        // SAFETY: only async-signal-safe calls (open, write, close) between fork and exec.
        unsafe {
            c.pre_exec(move || {
                let fd = libc::open(procs.as_ptr(), libc::O_WRONLY);
                if fd < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                // "0": the writing process itself.
                let n = libc::write(fd, b"0".as_ptr().cast(), 1);
                libc::close(fd);
                if n != 1 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            })
        };
        c
    }
}

impl Drop for Unit {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir(&self.dir);
        if let Some(s) = &self.made_slice {
            let _ = std::fs::remove_dir(s);
        }
    }
}

/// Runs `c` to its end and returns its CPU seconds (user + system, from `wait4`).
#[expect(
    clippy::zombie_processes,
    reason = "reaped by wait4, which std does not offer, for its rusage"
)]
fn run_to_end(mut c: Command) -> f64 {
    let child = c.spawn().expect("spawning a child in the unit");
    let mut status = 0;
    // SAFETY: an all-zero rusage is valid; both pointers are valid for the call.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: waits for our own child, which nothing else reaps.
    let r = unsafe { libc::wait4(child.id() as i32, &mut status, 0, &mut ru) };
    assert_eq!(r, child.id() as i32, "wait4");
    assert!(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0);
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    secs(ru.ru_utime) + secs(ru.ru_stime)
}

/// Waits until `f` holds (the daemon folds exits at its next refresh).
fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while !f() {
        assert!(Instant::now() < deadline, "never: {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The process list names the unit and cgroup of a process in one, and a process outside
/// (this test) by its own `/proc/self/cgroup`.
#[test]
fn the_process_list_names_each_process_unit() {
    let d = Daemon::start(&[]);
    let unit = Unit::new();
    let bin = NamedBinary::new("/bin/dash", "mtunitl");
    // Waits on its stdin (a pipe the test holds) with a builtin: no child of its own.
    let child = Guard(
        unit.command(&bin.path, "read x")
            .stdin(std::process::Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let p = d.process(child.id());
    assert_eq!(p["cgroup"], unit.path.as_str());
    assert_eq!(p["unit"], unit.name.as_str());
    // Grouped by name as before: the unit is a field, not the group.
    assert_eq!(p["group"], bin.name.as_str());

    // monitor top groups by unit whatever the daemon groups by.
    let doc = json_once(
        &d.url(""),
        &[
            "--interval",
            "200ms",
            "--group",
            "--group-by",
            "unit",
            "--filter",
            &unit.name,
        ],
    );
    let groups = doc["groups"].as_array().expect("groups in top's JSON");
    assert_eq!(groups.len(), 1, "{groups:?}");
    assert_eq!(groups[0]["group"], unit.name.as_str());
    assert_eq!(groups[0]["processes"], 1);

    let own = std::fs::read_to_string("/proc/self/cgroup").unwrap();
    let own = own
        .lines()
        .find_map(|l| l.strip_prefix("0::"))
        .expect("a cgroup2 line in /proc/self/cgroup");
    let me = d.process(std::process::id());
    assert_eq!(me["cgroup"], own);
}

/// Processes that started and exited in the unit between two refreshes count in its group
/// under `--process.group-by unit`: their starts, exits and CPU time, with a live one's.
#[test]
fn group_by_unit_keeps_exited_processes_in_their_unit() {
    let d = Daemon::start(&["--process.group-by", "unit"]);
    let unit = Unit::new();
    let bin = NamedBinary::new("/bin/dash", "mtunit");
    let live = Guard(
        unit.command(&bin.path, "while :; do :; done")
            .spawn()
            .unwrap(),
    );
    let p = d.process(live.id());
    assert_eq!(p["group"], unit.name.as_str());
    assert_eq!(p["unit"], unit.name.as_str());

    let mut short_cpu = 0.0;
    for _ in 0..SHORT {
        short_cpu += run_to_end(unit.command(
            &bin.path,
            "i=0; while [ $i -lt 300000 ]; do i=$((i+1)); done",
        ));
    }
    stop_all(&[&live]);
    let series = |what: &str| format!("monitor_process_{what}{{group=\"{}\"}}", unit.name);
    eventually("the short processes' exits counted in the unit", || {
        d.metrics().get(&series("exits_total")) == Some(SHORT as f64)
    });
    let m = d.metrics();
    assert_eq!(m.value(&series("starts_total")), (SHORT + 1) as f64);
    let truth = short_cpu + proc_cpu_seconds(live.id());
    assert_close(
        "unit CPU vs the children's own",
        m.value(&series("cpu_seconds_total")),
        truth,
        0.05,
    );
    // The live member is the only process of the unit in the list.
    let members: Vec<_> = d
        .processes()
        .into_iter()
        .filter(|p| p["unit"] == unit.name.as_str())
        .collect();
    assert_eq!(members.len(), 1, "{members:?}");
    assert_eq!(members[0]["pid"].as_u64(), Some(u64::from(live.id())));
}
