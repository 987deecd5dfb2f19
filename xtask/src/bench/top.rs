//! Figure 4: `monitor top`'s own cost at a 1 s refresh, drawing into a real terminal (a
//! 200x50 tmux pane), reading a running daemon while 1,000 extra idle processes are listed.

use std::{
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, Instant},
};

use anyhow::{bail, Context as _};

use super::{
    procs,
    targets::{Check, Target},
    tools::{self, Kind},
    Env, Options,
};

pub struct TopCost {
    /// Idle processes running besides the machine's own.
    pub idle_processes: u32,
    /// Length of the measurement.
    pub secs: f64,
    /// utime + stime over it, in % of one core.
    pub cpu_pct: f64,
    /// The same from its threads' schedstat (ns-precise), as a cross-check.
    pub oncpu_pct: f64,
    /// VmRSS at the end.
    pub rss_kib: u64,
    /// The process count top's title showed at the end.
    pub processes: Option<u64>,
}

impl TopCost {
    pub fn checks(&self) -> Vec<Check> {
        vec![Check::figure(
            format!(
                "monitor top CPU, {} idle procs, 1 s refresh",
                self.idle_processes
            ),
            Some(self.cpu_pct),
            "%",
            2,
            Target::Below(2.0),
        )]
    }
}

/// A tmux server with its socket in `dir`, killed (and the program in its pane with it)
/// when dropped.
struct Tmux {
    socket: PathBuf,
}

impl Tmux {
    fn start(dir: &Path, command: &str) -> anyhow::Result<Self> {
        let t = Self {
            socket: dir.join("top-tmux"),
        };
        t.run(&[
            "new-session",
            "-d",
            "-x",
            "200",
            "-y",
            "50",
            "-s",
            "top",
            command,
        ])?;
        Ok(t)
    }

    fn run(&self, args: &[&str]) -> anyhow::Result<String> {
        let out = Command::new("tmux")
            .arg("-S")
            .arg(&self.socket)
            .args(["-f", "/dev/null"])
            .args(args)
            .output()
            .context("running tmux (Debian package tmux)")?;
        if !out.status.success() {
            bail!(
                "tmux {args:?}: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    fn screen(&self) -> anyhow::Result<String> {
        self.run(&["capture-pane", "-p", "-t", "top"])
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.run(&["kill-server"]);
        let _ = std::fs::remove_file(&self.socket);
    }
}

/// "... - 1083 processes - ..." in top's title line.
fn processes(screen: &str) -> Option<u64> {
    let title = screen.lines().next()?;
    let words: Vec<&str> = title.split_whitespace().collect();
    let i = words.iter().position(|w| *w == "processes")?;
    words.get(i.checked_sub(1)?)?.parse().ok()
}

/// At the first count of `--idle-processes`.
pub fn phase(o: &Options, env: &Env) -> anyhow::Result<TopCost> {
    let n = o.idle_processes.first().copied().unwrap_or(1000);
    eprintln!(
        "bench: top cost: {n} idle processes, a daemon, 1 s refresh in a 200x50 tmux pane, {} s",
        o.top_seconds
    );
    let idle = procs::idle(n)?;
    let mut daemon = tools::start(Kind::Monitor, env, "top")?;
    let tmux = Tmux::start(
        &env.dir,
        &format!(
            "exec {} top --url http://{} --interval 1s",
            env.bin.display(),
            env.addr
        ),
    )?;
    let pid: u32 = tmux
        .run(&["display-message", "-p", "-t", "top", "#{pane_pid}"])?
        .trim()
        .parse()
        .context("tmux's pane pid")?;
    // Warm-up, off the clock: until top lists the idle processes and shows rates (its second
    // sample), then 2 s.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let s = tmux.screen()?;
        let listed = processes(&s).is_some_and(|p| p >= u64::from(n));
        if listed && !s.contains("measuring") && s.contains("CPU%") {
            break;
        }
        if Instant::now() > deadline {
            bail!("top did not show its table within 15 s; the screen:\n{s}");
        }
        procs::sleep(Duration::from_millis(200))?;
    }
    procs::sleep(Duration::from_secs(2))?;
    let t0 = Instant::now();
    let cpu0 = procs::cpu_seconds(pid)?;
    let oncpu0 = procs::oncpu_seconds(pid)?;
    procs::sleep(Duration::from_secs(o.top_seconds))?;
    let secs = t0.elapsed().as_secs_f64();
    let cpu = procs::cpu_seconds(pid).context("top exited during the measurement")? - cpu0;
    let oncpu = procs::oncpu_seconds(pid)? - oncpu0;
    let rss_kib = procs::status_kib(pid, "VmRSS")?;
    let screen = tmux.screen()?;
    if let Some(st) = daemon.proc.exited() {
        bail!(
            "the daemon exited ({st}) during the measurement; {}",
            procs::tail(&daemon.log, 20)
        );
    }
    drop(tmux);
    daemon.proc.stop()?;
    drop(idle);
    Ok(TopCost {
        idle_processes: n,
        secs,
        cpu_pct: 100.0 * cpu / secs,
        oncpu_pct: 100.0 * oncpu / secs,
        rss_kib,
        processes: processes(&screen),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_process_count_from_the_title() {
        let s = "monitor top - daemon http://127.0.0.1:1 - every 1s - 1083 processes - sort CPU%\n";
        assert_eq!(processes(s), Some(1083));
        assert_eq!(processes("nothing here\n"), None);
        assert_eq!(processes(""), None);
    }
}
