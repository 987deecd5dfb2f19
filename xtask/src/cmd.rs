//! Running commands with the environment the build needs.

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{bail, Context as _};

/// The workspace root (xtask lives one level below it).
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask is inside the workspace")
        .to_path_buf()
}

/// `$CARGO_HOME/bin`, where `cargo install` puts bpf-linker.
pub fn cargo_bin() -> PathBuf {
    std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))
        .unwrap_or_else(|| PathBuf::from("/root/.cargo"))
        .join("bin")
}

/// PATH with `$CARGO_HOME/bin` first, so the eBPF build finds bpf-linker.
pub fn path_env() -> std::ffi::OsString {
    let bin = cargo_bin();
    let mut paths = vec![bin.clone()];
    if let Some(p) = std::env::var_os("PATH") {
        paths.extend(std::env::split_paths(&p).filter(|p| *p != bin));
    }
    std::env::join_paths(paths).expect("PATH entries have no separator")
}

/// A command run from the workspace root with the build's PATH.
pub fn new(program: &str) -> Command {
    let mut c = Command::new(program);
    c.current_dir(root()).env("PATH", path_env());
    c
}

/// Runs `c`, failing with the command line if it does not succeed.
pub fn run(c: &mut Command) -> anyhow::Result<()> {
    let line = format!("{c:?}");
    let status = c.status().with_context(|| format!("starting {line}"))?;
    if !status.success() {
        bail!("{line} failed ({status})");
    }
    Ok(())
}

/// Whether `c` runs and succeeds (output discarded).
pub fn succeeds(c: &mut Command) -> bool {
    c.stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// Totals of `cargo test` runs, read from their `test result:` lines.
#[derive(Default)]
pub struct TestTotals {
    pub passed: u64,
    pub failed: u64,
    pub ignored: u64,
}

impl TestTotals {
    fn add_line(&mut self, line: &str) {
        let Some(rest) = line.strip_prefix("test result: ") else {
            return;
        };
        for part in rest.split(['.', ';']) {
            let mut w = part.split_whitespace();
            if let (Some(n), Some(what)) = (w.next(), w.next()) {
                let Ok(n) = n.parse::<u64>() else { continue };
                match what {
                    "passed" => self.passed += n,
                    "failed" => self.failed += n,
                    "ignored" => self.ignored += n,
                    _ => {}
                }
            }
        }
    }
}

/// Runs a `cargo test` command, passing its output through and adding up its results.
pub fn run_tests(c: &mut Command, totals: &mut TestTotals) -> anyhow::Result<()> {
    use std::io::BufRead as _;
    let line = format!("{c:?}");
    let mut child = c
        .stdout(std::process::Stdio::piped())
        .spawn()
        .with_context(|| format!("starting {line}"))?;
    let stdout = child.stdout.take().expect("piped");
    for l in std::io::BufReader::new(stdout).lines() {
        let l = l.context("reading test output")?;
        println!("{l}");
        totals.add_line(&l);
    }
    let status = child
        .wait()
        .with_context(|| format!("waiting for {line}"))?;
    if !status.success() {
        bail!("{line} failed ({status})");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_cargo_test_result_lines() {
        let mut t = TestTotals::default();
        t.add_line("test result: ok. 21 passed; 0 failed; 1 ignored; 0 measured; 0 filtered out; finished in 0.01s");
        t.add_line(
            "test result: FAILED. 5 passed; 1 failed; 0 ignored; 0 measured; 0 filtered out",
        );
        t.add_line("running 3 tests");
        assert_eq!((t.passed, t.failed, t.ignored), (26, 1, 1));
    }
}
