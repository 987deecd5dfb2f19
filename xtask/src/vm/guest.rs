//! The guest: an initramfs holding busybox, the daemon with its shared libraries, and a
//! shell for the workload; its `/init` runs `monitor bpf verify` in each daemon run's
//! configuration, then the daemon twice (default hooks, then with the tp_btf hook forced to
//! fail so the classic fallback runs), drives a workload, and prints the reports, the
//! exposition and the daemon's log between markers on the serial console.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
};

use anyhow::{bail, Context as _};

use crate::cmd;

/// Processes the workload runs per daemon run; the checks expect exactly this many starts
/// and exits in the workload's group.
pub const WORKLOAD_RUNS: u32 = 3;

/// Direct reads of the guest's loop device per daemon run: this many requests of
/// `DISK_READ_BYTES / DISK_READS` bytes, by a process of group "dd".
pub const DISK_READS: u32 = 32;
pub const DISK_READ_BYTES: u64 = 32 * 64 * 1024;

/// Network workload per daemon run (the tests' `net-child`, over the guest's loopback): one
/// TCP connection carrying `NET_BYTES` from group "vmnetcli" to group "vmnetsrv", and
/// `UDP_COUNT` datagrams of `UDP_SIZE` bytes from "vmudpcli" to "vmudpsrv".
pub const NET_BYTES: u64 = 1 << 20;
pub const UDP_COUNT: u64 = 200;
pub const UDP_SIZE: u64 = 1000;

/// Service identity per daemon run: `WORKLOAD_RUNS` processes of `UNIT_WORK`, each moved
/// into the cgroup of unit `UNIT` before its exec (as systemd starts a unit), counted in
/// group `UNIT_GROUP` by the rule `UNIT_RULE` on their unit (the guest mounts cgroup2 at
/// `/sys/fs/cgroup`: pure v2).
pub const UNIT: &str = "vmunit.service";
pub const UNIT_WORK: &str = "vmunitw";
pub const UNIT_GROUP: &str = "vmunit";
const UNIT_RULE: &str = "--process.group 'vmunit=unit:^vmunit\\.service$'";

/// One daemon configuration run in the guest.
pub struct GuestRun {
    pub name: &'static str,
    /// The workload's group (its executable's name).
    pub group: &'static str,
    pub args: &'static str,
    /// The `monitor bpf verify` run of the same configuration (`VERIFIES`).
    pub verify: &'static str,
}

/// `monitor bpf verify` runs, before the daemon's: (name, arguments). The audit log changes
/// what the object's globals hold, so each daemon run is compared with its own.
pub const VERIFIES: &[(&str, &str)] = &[("plain", ""), ("audit", "--audit")];

pub const RUNS: &[GuestRun] = &[
    GuestRun {
        name: "default",
        group: "vmwork",
        args: "--bpf.stats --audit.file /tmp/default.audit",
        verify: "audit",
    },
    GuestRun {
        name: "classic",
        group: "vmclassic",
        args: "--debug.fail-attach sched_switch_btf --debug.fail-attach sched_wakeup_btf \
               --debug.fail-attach sched_wakeup_new_btf --debug.fail-attach block_owner_io_start \
               --debug.fail-attach net_sock_send --debug.fail-attach net_sock_recv \
               --debug.fail-attach tcp_state_btf --debug.fail-attach tcp_retransmit_btf \
               --debug.fail-attach tcp_send_reset_btf --debug.fail-attach tcp_receive_reset_btf",
        verify: "plain",
    },
];

fn init_script() -> String {
    let mut s = String::from(
        "#!/bin/busybox sh\n\
         /bin/busybox --install -s /bin\n\
         mount -t proc proc /proc\n\
         mount -t sysfs sysfs /sys\n\
         mount -t devtmpfs dev /dev\n\
         mount -t cgroup2 cgroup2 /sys/fs/cgroup\n\
         mkdir -p /sys/fs/cgroup/system.slice/vmunit.service\n\
         inunit() {\n\
           sh -c 'echo $$ > \"$0/cgroup.procs\" && exec \"$@\"' \"$@\"\n\
         }\n\
         ip link set lo up\n\
         echo \"@@ KERNEL $(uname -r)\"\n\
         insmod /opt/loop.ko\n\
         dd if=/dev/zero of=/tmp/disk.img bs=1M count=4 2>/dev/null\n\
         losetup /dev/loop0 /tmp/disk.img\n\
         verify() {\n\
           name=$1; shift\n\
           /monitor bpf verify --output json \"$@\" > /tmp/verify-$name.json 2> /tmp/verify-$name.err\n\
           rc=$?\n\
           echo \"@@ VERIFY $name $rc\"; cat /tmp/verify-$name.json\n\
           echo \"@@ VERIFYLOG $name\"; cat /tmp/verify-$name.err\n\
           echo \"@@ END $name\"\n\
         }\n\
         run() {\n\
           name=$1; work=$2; shift 2\n\
           /monitor run --web.listen-address 127.0.0.1:9957 \"$@\" > /tmp/$name.log 2>&1 &\n\
           pid=$!\n\
           i=0\n\
           until wget -q -O /dev/null http://127.0.0.1:9957/healthz; do\n\
             i=$((i+1)); [ $i -gt 240 ] && break; sleep 0.5\n\
           done\n\
           if [ $i -gt 240 ]; then\n\
             echo \"@@ BEGIN $name\"; echo \"@@ LOG $name\"; cat /tmp/$name.log; echo \"@@ END $name\"\n\
             kill $pid; return\n\
           fi\n\
           cp /opt/dash /tmp/$work\n",
    );
    s.push_str(&format!(
        "  for n in $(seq {WORKLOAD_RUNS}); do /tmp/$work -c 'i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done'; done\n"
    ));
    s.push_str(&format!(
        "  cp /opt/dash /tmp/{UNIT_WORK}\n\
           for n in $(seq {WORKLOAD_RUNS}); do inunit /sys/fs/cgroup/system.slice/{UNIT} /tmp/{UNIT_WORK} -c 'i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done'; done\n"
    ));
    s.push_str(&format!(
        "  dd if=/dev/loop0 of=/dev/null bs={} count={DISK_READS} iflag=direct 2>/dev/null\n",
        DISK_READ_BYTES / u64::from(DISK_READS)
    ));
    // A server in the background prints its port; the client talks to it; both exit when
    // done (stdin is /dev/null). Every run reuses the names, so the server's output file goes
    // first: the background server truncates it only once it starts, and a port line left by
    // the previous run would pass the wait and then read as nothing (the client failed, the
    // server waited forever, the guest hit the boot limit).
    s.push_str(&format!(
        "  net() {{\n\
             kind=$1; srv=$2; cli=$3; n=$4; shift 4\n\
             cp /opt/net-child /tmp/$srv; cp /opt/net-child /tmp/$cli\n\
             rm -f /tmp/$srv.out\n\
             /tmp/$srv $kind-server 127.0.0.1 $n </dev/null >/tmp/$srv.out &\n\
             spid=$!\n\
             i=0; until grep -q port /tmp/$srv.out; do i=$((i+1)); [ $i -gt 100 ] && break; sleep 0.1; done\n\
             port=$(sed -n 's/port //p' /tmp/$srv.out)\n\
             [ -n \"$port\" ] || {{ echo \"@@ NOPORT $srv\"; kill $spid; }}\n\
             /tmp/$cli $kind-client 127.0.0.1:$port \"$@\" </dev/null >/dev/null\n\
             wait $spid\n\
           }}\n\
           net tcp vmnetsrv vmnetcli 1 {NET_BYTES} 1\n\
           net udp vmudpsrv vmudpcli {UDP_COUNT} {UDP_COUNT} {UDP_SIZE}\n"
    ));
    s.push_str(
        "  sleep 1.5\n\
           echo \"@@ BEGIN $name\"\n\
           wget -q -O - http://127.0.0.1:9957/metrics | grep '^monitor_'\n\
           echo \"@@ LOG $name\"\n\
           cat /tmp/$name.log\n\
           echo \"@@ END $name\"\n\
           kill $pid; wait $pid\n\
           echo \"@@ AUDIT $name\"\n\
           cat /tmp/$name.audit 2>/dev/null\n\
           echo \"@@ END $name\"\n\
         }\n",
    );
    for (name, args) in VERIFIES {
        s.push_str(&format!("verify {name} {args}\n"));
    }
    for r in RUNS {
        s.push_str(&format!(
            "run {} {} {} {UNIT_RULE}\n",
            r.name, r.group, r.args
        ));
    }
    s.push_str("echo \"@@ DONE\"\npoweroff -f\n");
    s
}

/// Copies `file` into the staging root at the same path, creating directories.
fn stage(root: &Path, file: &Path) -> anyhow::Result<()> {
    let dest = root.join(file.strip_prefix("/").unwrap_or(file));
    std::fs::create_dir_all(dest.parent().expect("has a parent"))?;
    std::fs::copy(file, &dest)
        .with_context(|| format!("copying {} into the initramfs", file.display()))?;
    Ok(())
}

/// Shared libraries `binary` needs, from ldd.
fn libraries(binary: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let out = cmd::new("ldd")
        .arg(binary)
        .output()
        .context("running ldd")?;
    Ok(String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .filter(|w| w.starts_with('/'))
        .map(PathBuf::from)
        .collect())
}

/// Builds `<work>/initramfs.gz` around `monitor`, the network workload `net_child` and the
/// kernel's loop module, and returns its path.
pub fn initramfs(
    monitor: &Path,
    net_child: &Path,
    loop_module: &Path,
    work: &Path,
) -> anyhow::Result<PathBuf> {
    let root = work.join("root");
    if root.exists() {
        std::fs::remove_dir_all(&root)?;
    }
    for d in ["bin", "proc", "sys", "dev", "tmp", "opt"] {
        std::fs::create_dir_all(root.join(d))?;
    }
    std::fs::copy("/bin/busybox", root.join("bin/busybox"))
        .context("copying /bin/busybox (Debian package busybox-static)")?;
    std::fs::copy(monitor, root.join("monitor"))?;
    std::fs::copy("/bin/dash", root.join("opt/dash"))?;
    std::fs::copy(net_child, root.join("opt/net-child"))
        .with_context(|| format!("copying {}", net_child.display()))?;
    std::fs::copy(loop_module, root.join("opt/loop.ko"))
        .with_context(|| format!("copying {}", loop_module.display()))?;
    let mut libs = libraries(monitor)?;
    libs.extend(libraries(Path::new("/bin/dash"))?);
    libs.extend(libraries(net_child)?);
    libs.sort();
    libs.dedup();
    for l in &libs {
        stage(&root, l)?;
    }
    let init = root.join("init");
    std::fs::write(&init, init_script())?;
    let mut perms = std::fs::metadata(&init)?.permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o755);
    std::fs::set_permissions(&init, perms)?;
    let image = work.join("initramfs.gz");
    let status = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "cd '{}' && find . | cpio -o -H newc --quiet | gzip -1 > '{}'",
            root.display(),
            image.display()
        ))
        .status()?;
    if !status.success() {
        bail!("packing the initramfs with cpio");
    }
    Ok(image)
}

/// What the guest printed for one daemon run.
#[derive(Default, Debug)]
pub struct RunOutput {
    /// Series (name with labels) to value.
    pub metrics: BTreeMap<String, f64>,
    pub log: String,
    /// The audit log's lines (JSON), printed once the daemon has exited, for runs with
    /// `--audit.file /tmp/<run>.audit`.
    pub audit: Vec<String>,
}

/// What `monitor bpf verify` printed in the guest.
#[derive(Default, Debug)]
pub struct VerifyOutput {
    /// Its exit status (`None` if the marker carried none).
    pub status: Option<i32>,
    /// Its report (`--output json`).
    pub json: String,
    /// What it wrote to stderr.
    pub log: String,
}

/// Which part of a run's output the console is printing.
enum Section {
    Metrics,
    Log,
    Audit,
    Verify,
    VerifyLog,
}

/// What the guest printed: its kernel release, each verify run's and each daemon run's
/// output.
#[derive(Default, Debug)]
pub struct GuestOutput {
    pub release: Option<String>,
    pub verify: BTreeMap<String, VerifyOutput>,
    pub runs: BTreeMap<String, RunOutput>,
    pub done: bool,
}

pub fn parse(console: &str) -> GuestOutput {
    let mut out = GuestOutput::default();
    let mut section: Option<(String, Section)> = None;
    for raw in console.lines() {
        let line = raw.trim_end_matches('\r');
        // The firmware's console may leave terminal escapes before the first marker.
        if let Some(rest) = line.find("@@ ").map(|i| &line[i + 3..]) {
            let mut w = rest.split_whitespace();
            match (w.next(), w.next()) {
                (Some("KERNEL"), Some(r)) => out.release = Some(r.to_string()),
                (Some("BEGIN"), Some(n)) => {
                    out.runs.entry(n.to_string()).or_default();
                    section = Some((n.to_string(), Section::Metrics));
                }
                (Some("LOG"), Some(n)) => section = Some((n.to_string(), Section::Log)),
                (Some("AUDIT"), Some(n)) => section = Some((n.to_string(), Section::Audit)),
                (Some("VERIFY"), Some(n)) => {
                    out.verify.entry(n.to_string()).or_default().status =
                        w.next().and_then(|rc| rc.parse().ok());
                    section = Some((n.to_string(), Section::Verify));
                }
                (Some("VERIFYLOG"), Some(n)) => section = Some((n.to_string(), Section::VerifyLog)),
                (Some("END"), _) => section = None,
                (Some("DONE"), _) => out.done = true,
                _ => {}
            }
            continue;
        }
        let Some((name, part)) = &section else {
            continue;
        };
        if let Section::Verify | Section::VerifyLog = part {
            let v = out.verify.entry(name.clone()).or_default();
            let text = if let Section::Verify = part {
                &mut v.json
            } else {
                &mut v.log
            };
            text.push_str(line);
            text.push('\n');
            continue;
        }
        let run = out.runs.entry(name.clone()).or_default();
        match part {
            Section::Metrics => {
                if let Some((series, value)) = line.rsplit_once(' ') {
                    if let Ok(v) = value.parse() {
                        run.metrics.insert(series.to_string(), v);
                    }
                }
            }
            Section::Log => {
                run.log.push_str(line);
                run.log.push('\n');
            }
            Section::Audit => run.audit.push(line.to_string()),
            Section::Verify | Section::VerifyLog => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_sections() {
        let console = "noise\r\n\x1b[?7l\x1b[2J@@ KERNEL 6.1.0-50-amd64\r\n@@ BEGIN default\r\n\
                       monitor_x{a=\"b c\"} 3\r\n@@ LOG default\r\nINFO attached\r\n\
                       @@ END default\r\n@@ AUDIT default\r\n{\"kind\":\"exec\"}\r\n\
                       @@ END default\r\n@@ VERIFY plain 0\r\n{\"programs\": []}\r\n\
                       @@ VERIFYLOG plain\r\nWARN x\r\n@@ END plain\r\n@@ DONE\r\n";
        let o = parse(console);
        assert_eq!(o.release.as_deref(), Some("6.1.0-50-amd64"));
        assert!(o.done);
        let r = &o.runs["default"];
        assert_eq!(r.metrics["monitor_x{a=\"b c\"}"], 3.0);
        assert_eq!(r.log, "INFO attached\n");
        assert_eq!(r.audit, ["{\"kind\":\"exec\"}"]);
        let v = &o.verify["plain"];
        assert_eq!(v.status, Some(0));
        assert_eq!(v.json, "{\"programs\": []}\n");
        assert_eq!(v.log, "WARN x\n");
        assert!(!o.runs.contains_key("plain"));
    }

    #[test]
    fn the_init_script_runs_every_configuration() {
        let s = init_script();
        for r in RUNS {
            assert!(s.contains(&format!("run {} {}", r.name, r.group)));
            assert!(VERIFIES.iter().any(|(n, _)| *n == r.verify));
        }
        for (name, args) in VERIFIES {
            assert!(s.contains(&format!("verify {name} {args}\n")));
        }
        assert!(s.starts_with("#!/bin/busybox sh\n"));
    }
}
