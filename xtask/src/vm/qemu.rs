//! Booting a kernel under QEMU's software emulation (`-accel tcg`: KVM is not usable on these
//! machines) with the guest's console on a log file, within a time limit.

use std::{
    path::Path,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{bail, Context as _};

/// Boots `kernel` with `initrd`, returns what the console printed. The guest powers itself
/// off when done; past `limit` it is killed and the error says so.
pub fn boot(kernel: &Path, initrd: &Path, log: &Path, limit: Duration) -> anyhow::Result<String> {
    let console =
        std::fs::File::create(log).with_context(|| format!("creating {}", log.display()))?;
    let mut child = Command::new("qemu-system-x86_64")
        .args(["-accel", "tcg", "-m", "1024", "-smp", "2"])
        .args([
            "-nographic",
            "-no-reboot",
            "-nodefaults",
            "-serial",
            "stdio",
        ])
        .arg("-kernel")
        .arg(kernel)
        .arg("-initrd")
        .arg(initrd)
        .args(["-append", "console=ttyS0 panic=-1 quiet"])
        .stdin(Stdio::null())
        .stdout(console.try_clone()?)
        .stderr(console)
        .spawn()
        .context("starting qemu-system-x86_64 (Debian package qemu-system-x86)")?;
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait()? {
            break s;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            bail!(
                "the guest did not finish within {}s (console in {})",
                limit.as_secs(),
                log.display()
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let out = std::fs::read_to_string(log).unwrap_or_default();
    if !status.success() {
        bail!("qemu exited with {status} (console in {})", log.display());
    }
    Ok(out)
}
