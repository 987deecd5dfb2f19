//! The kernel's own per-program accounting: `kernel.bpf_stats_enabled`, `bpftool prog show
//! --json`, and which programs a process holds (its fds' `prog_id` in `/proc/<pid>/fdinfo`).

use std::{
    collections::{BTreeMap, BTreeSet},
    fs::File,
    path::Path,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{bail, Context as _};

use super::procs::{self, Proc};
use crate::cmd;

const SYSCTL: &str = "/proc/sys/kernel/bpf_stats_enabled";

/// Turns `kernel.bpf_stats_enabled` on; the old value comes back when dropped.
pub struct StatsEnabled {
    old: String,
}

impl StatsEnabled {
    pub fn on() -> anyhow::Result<Self> {
        let old = std::fs::read_to_string(SYSCTL)
            .with_context(|| format!("reading {SYSCTL}"))?
            .trim()
            .to_string();
        std::fs::write(SYSCTL, "1").with_context(|| format!("writing 1 to {SYSCTL}"))?;
        Ok(Self { old })
    }

    pub fn old(&self) -> &str {
        &self.old
    }

    /// Turns it back on if something else turned it off meanwhile (a test restoring its own
    /// saved value, say), saying so.
    pub fn keep_on(&self) -> anyhow::Result<()> {
        let now = std::fs::read_to_string(SYSCTL).with_context(|| format!("reading {SYSCTL}"))?;
        if now.trim() == "0" {
            eprintln!("bench: something turned kernel.bpf_stats_enabled off; turning it on again");
            std::fs::write(SYSCTL, "1").with_context(|| format!("writing 1 to {SYSCTL}"))?;
        }
        Ok(())
    }
}

impl Drop for StatsEnabled {
    fn drop(&mut self) {
        if let Err(e) = std::fs::write(SYSCTL, &self.old) {
            eprintln!("bench: could not restore {SYSCTL} to {}: {e}", self.old);
        }
    }
}

#[derive(Clone, Debug)]
pub struct Prog {
    /// As bpftool prints it: the full name where the program has BTF, else the kernel's
    /// 15-character truncation.
    pub name: String,
    pub run_cnt: u64,
    pub run_time_ns: u64,
}

/// Every loaded program, by id.
pub type Snapshot = BTreeMap<u32, Prog>;

pub fn snapshot() -> anyhow::Result<Snapshot> {
    let out = cmd::new("bpftool")
        .args(["prog", "show", "--json"])
        .output()
        .context("running bpftool prog show --json")?;
    if !out.status.success() {
        bail!(
            "bpftool prog show --json failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let v: serde_json::Value =
        serde_json::from_slice(&out.stdout).context("parsing bpftool's JSON")?;
    let mut progs = Snapshot::new();
    for p in v.as_array().context("bpftool's JSON is not a list")? {
        let Some(id) = p["id"].as_u64() else { continue };
        progs.insert(
            id as u32,
            Prog {
                name: p["name"].as_str().unwrap_or("?").to_string(),
                // bpftool leaves both out while they are 0.
                run_cnt: p["run_cnt"].as_u64().unwrap_or(0),
                run_time_ns: p["run_time_ns"].as_u64().unwrap_or(0),
            },
        );
    }
    Ok(progs)
}

/// The programs a process holds an fd of (a program fd, or a link's).
pub fn owned_prog_ids(pid: u32) -> BTreeSet<u32> {
    let mut ids = BTreeSet::new();
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/fdinfo")) else {
        return ids;
    };
    for e in dir.flatten() {
        let Ok(s) = std::fs::read_to_string(e.path()) else {
            continue;
        };
        for l in s.lines() {
            if let Some(id) = l.strip_prefix("prog_id:") {
                if let Ok(id) = id.trim().parse() {
                    ids.insert(id);
                }
            }
        }
    }
    ids
}

/// Whether bpftool's `name` is the program `full` (names are cut to 15 characters in the
/// kernel, and bpftool only restores them from BTF when the program has some).
pub fn is_named(name: &str, full: &str) -> bool {
    name == full || (name.len() == 15 && full.starts_with(name))
}

/// Whether bpftool's `name` is a program on the tracepoint `hook`, whichever variant of it:
/// the daemon names a hook's programs after it with a suffix for the kind (`sched_wakeup_btf`
/// for tp_btf, `sched_switch_tp` for the classic tracepoint), the peers after the hook alone,
/// and bpftrace's names are cut to 15 characters.
pub fn is_on_hook(name: &str, hook: &str) -> bool {
    let bare = ["_btf", "_tp", "_raw"]
        .iter()
        .find_map(|s| name.strip_suffix(s))
        .unwrap_or(name);
    is_named(name, hook) || bare == hook
}

/// A program's run count and run time.
#[derive(Clone, Copy, Default, Debug)]
pub struct Cost {
    pub runs: u64,
    pub ns: u64,
}

impl Cost {
    pub fn ns_per_run(self) -> Option<f64> {
        (self.runs > 0).then(|| self.ns as f64 / self.runs as f64)
    }
}

/// Programs by name from `(name, runs, ns)` rows, for the figures' tests.
#[cfg(test)]
pub fn costs(rows: &[(&str, u64, u64)]) -> BTreeMap<String, Cost> {
    rows.iter()
        .map(|(n, runs, ns)| {
            (
                n.to_string(),
                Cost {
                    runs: *runs,
                    ns: *ns,
                },
            )
        })
        .collect()
}

/// What the programs `ids` did between two snapshots, summed into `into` by program name.
pub fn add_delta(
    into: &mut BTreeMap<String, Cost>,
    ids: &BTreeSet<u32>,
    before: &Snapshot,
    after: &Snapshot,
) {
    for id in ids {
        let (Some(b), Some(a)) = (before.get(id), after.get(id)) else {
            continue;
        };
        let c = into.entry(a.name.clone()).or_default();
        c.runs += a.run_cnt.saturating_sub(b.run_cnt);
        c.ns += a.run_time_ns.saturating_sub(b.run_time_ns);
    }
}

/// Starts `c` with its stdout and stderr in `log`, and returns once one of the programs it
/// holds that `ready` names has run (so it is attached: run counts only move then), plus
/// 300 ms for the rest of its start-up. `poke` makes the events that program waits for.
pub fn start_attached(
    c: &mut Command,
    stop: libc::c_int,
    what: &str,
    log: &Path,
    mut poke: impl FnMut() -> anyhow::Result<()>,
    ready: impl Fn(&str) -> bool,
) -> anyhow::Result<Proc> {
    let f = File::create(log).with_context(|| format!("creating {}", log.display()))?;
    c.stdin(Stdio::null()).stdout(f.try_clone()?).stderr(f);
    let mut p = Proc::spawn(c, stop, what)?;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        procs::check_interrupted()?;
        if let Some(s) = p.exited() {
            bail!(
                "{what} exited ({s}) before attaching; {}",
                procs::tail(log, 20)
            );
        }
        poke()?;
        let snap = snapshot()?;
        let running = owned_prog_ids(p.pid())
            .iter()
            .filter_map(|id| snap.get(id))
            .any(|p| p.run_cnt > 0 && ready(&p.name));
        if running {
            procs::sleep(Duration::from_millis(300))?;
            return Ok(p);
        }
        if Instant::now() > deadline {
            bail!(
                "{what} did not attach within 30 s; {}",
                procs::tail(log, 20)
            );
        }
        procs::sleep(Duration::from_millis(100))?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hook_matches_each_variant_of_its_program_and_no_other() {
        assert!(is_on_hook("sched_wakeup_btf", "sched_wakeup"));
        assert!(is_on_hook("sched_wakeup", "sched_wakeup"));
        assert!(is_on_hook("sched_wakeup_new_btf", "sched_wakeup_new"));
        assert!(is_on_hook("sched_switch_tp", "sched_switch"));
        // bpftrace's 15-character cut.
        assert!(is_on_hook("sched_wakeup_ne", "sched_wakeup_new"));
        assert!(!is_on_hook("sched_wakeup_btf", "sched_wakeup_new"));
        assert!(!is_on_hook("sched_wakeup_new_btf", "sched_wakeup"));
        assert!(!is_on_hook("sched_wakeup_ne", "sched_wakeup"));
        assert!(!is_on_hook("sched_process_exec", "sched_process_exit"));
    }
}
