//! The tools under test in the workload phase: our daemon, libbpf-tools runqlat, a bpftrace
//! runqlat; each one started, then waited for until its programs are attached.

use std::{
    collections::BTreeSet,
    fs::File,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{bail, Context as _};

use super::{bpf, procs, procs::Proc, Env};

pub const RUNQLAT: &str = "/usr/sbin/runqlat";

/// bpftrace's runqlat.bt, with one change: the classic tracepoint reports a preempted task's
/// `prev_state` as TASK_REPORT_MAX (0x100) since 4.14, so "still runnable" is "no state bit
/// below it set", which is what libbpf-tools' runqlat and our program count as runnable.
const BPFTRACE_RUNQLAT: &str = r#"tracepoint:sched:sched_wakeup,
tracepoint:sched:sched_wakeup_new
{
	@qtime[args->pid] = nsecs;
}

tracepoint:sched:sched_switch
{
	if ((args->prev_state & 0xff) == 0) {
		@qtime[args->prev_pid] = nsecs;
	}
	$ns = @qtime[args->next_pid];
	if ($ns) {
		@usecs = hist((nsecs - $ns) / 1000);
	}
	delete(@qtime[args->next_pid]);
}

END
{
	clear(@qtime);
}
"#;

/// An empty program on the classic sched_switch tracepoint: the floor that the hook and the
/// kernel's run-time accounting cost on their own.
const BPFTRACE_EMPTY: &str = "tracepoint:sched:sched_switch { }\n";

pub fn write_scripts(dir: &Path) -> anyhow::Result<()> {
    for (name, text) in [
        ("runqlat.bt", BPFTRACE_RUNQLAT),
        ("empty.bt", BPFTRACE_EMPTY),
    ] {
        let p = dir.join(name);
        std::fs::write(&p, text).with_context(|| format!("writing {}", p.display()))?;
    }
    Ok(())
}

/// A tool the workload phase attaches: our daemon or a peer.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
pub enum Kind {
    Monitor,
    /// The daemon on the classic `sched:sched_switch` (as on kernels before 5.18, 5.10
    /// among them: forced with `--debug.fail-attach sched_switch_btf`).
    MonitorClassic,
    Runqlat,
    Bpftrace,
    /// The floor: an empty bpftrace program (measured in the warm-up run, not compared).
    Empty,
}

impl Kind {
    /// Our daemon, on either switch hook.
    pub fn is_daemon(self) -> bool {
        matches!(self, Kind::Monitor | Kind::MonitorClassic)
    }

    pub fn name(self) -> &'static str {
        match self {
            Kind::Monitor => "monitor",
            Kind::MonitorClassic => "monitor-classic",
            Kind::Runqlat => "runqlat",
            Kind::Bpftrace => "bpftrace",
            Kind::Empty => "empty",
        }
    }

    /// The hooks the tool has programs on once everything is loaded, besides sched_switch
    /// (matched with [`bpf::is_on_hook`], so the daemon's tp_btf or classic variant counts).
    fn hooks(self) -> &'static [&'static str] {
        match self {
            Kind::Empty => &[],
            // No `sched_wakeup`: the switch charges the kernel's own run-queue wait.
            Kind::Monitor | Kind::MonitorClassic => &[
                "sched_wakeup_new",
                "sched_process_exec",
                "sched_process_exit",
            ],
            Kind::Runqlat | Kind::Bpftrace => &["sched_wakeup", "sched_wakeup_new"],
        }
    }
}

/// A peer or our daemon, running with its programs attached.
pub struct Tool {
    pub kind: Kind,
    pub proc: Proc,
    /// The programs it holds.
    pub ids: BTreeSet<u32>,
    /// Its stdout and stderr.
    pub log: PathBuf,
}

/// Starts `kind`, logging to `<name>-<tag>.log`, and returns once its programs run.
pub fn start(kind: Kind, env: &Env, tag: &str) -> anyhow::Result<Tool> {
    start_with(kind, env, tag, &[])
}

/// `start`, with more arguments for the daemon.
pub fn start_with(kind: Kind, env: &Env, tag: &str, extra: &[&str]) -> anyhow::Result<Tool> {
    let mut c = match kind {
        Kind::Monitor | Kind::MonitorClassic => {
            let mut c = Command::new(&env.bin);
            c.args(["run", "--web.listen-address"])
                .arg(env.addr.to_string())
                .arg("--bpf.stats")
                .args(extra);
            if kind == Kind::MonitorClassic {
                c.args(["--debug.fail-attach", "sched_switch_btf"]);
            }
            c
        }
        Kind::Runqlat => Command::new(RUNQLAT),
        Kind::Bpftrace => {
            let mut c = Command::new("bpftrace");
            c.arg(env.dir.join("runqlat.bt"));
            c
        }
        Kind::Empty => {
            let mut c = Command::new("bpftrace");
            c.arg(env.dir.join("empty.bt"));
            c
        }
    };
    let log = env.dir.join(format!("{}-{tag}.log", kind.name()));
    let f = File::create(&log).with_context(|| format!("creating {}", log.display()))?;
    c.stdin(Stdio::null()).stdout(f.try_clone()?).stderr(f);
    // runqlat and bpftrace print their histogram on SIGINT; the daemon stops on SIGTERM.
    let stop = if kind.is_daemon() {
        libc::SIGTERM
    } else {
        libc::SIGINT
    };
    let mut proc = Proc::spawn(&mut c, stop, kind.name())?;
    let ids = wait_attached(kind, &mut proc, env, &log)?;
    Ok(Tool {
        kind,
        proc,
        ids,
        log,
    })
}

/// Waits until the tool holds all its programs and its sched_switch program runs (so it is
/// attached: run counts only move while attached), and for the daemon until /healthz answers.
fn wait_attached(cfg: Kind, p: &mut Proc, env: &Env, log: &Path) -> anyhow::Result<BTreeSet<u32>> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        procs::check_interrupted()?;
        if let Some(s) = p.exited() {
            bail!(
                "{} exited ({s}) before attaching; {}",
                cfg.name(),
                procs::tail(log, 20)
            );
        }
        let ids = bpf::owned_prog_ids(p.pid());
        let snap = bpf::snapshot()?;
        let held: Vec<&bpf::Prog> = ids.iter().filter_map(|id| snap.get(id)).collect();
        let missing: Vec<&str> = cfg
            .hooks()
            .iter()
            .copied()
            .filter(|hook| !held.iter().any(|p| bpf::is_on_hook(&p.name, hook)))
            .collect();
        // Run counts only move while a program is attached.
        let switching = held
            .iter()
            .any(|p| p.name.starts_with("sched_switch") && p.run_cnt > 0);
        if missing.is_empty() && switching {
            let healthy =
                !cfg.is_daemon() || matches!(procs::http_get(env.addr, "/healthz"), Ok((200, _)));
            if healthy {
                // Let it finish starting (first refresh, histogram setup) off the clock.
                procs::sleep(Duration::from_millis(300))?;
                return Ok(bpf::owned_prog_ids(p.pid()));
            }
        }
        if Instant::now() > deadline {
            bail!(
                "{} did not attach its programs within 30 s (missing: {}{}); {}",
                cfg.name(),
                missing.join(" "),
                if switching {
                    ""
                } else {
                    " a running sched_switch"
                },
                procs::tail(log, 20)
            );
        }
        procs::sleep(Duration::from_millis(50))?;
    }
}
