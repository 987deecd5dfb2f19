//! `cargo xtask run`: build in release mode and run the daemon.

use anyhow::bail;

use crate::{cmd, setup};

pub fn run(args: &[String]) -> anyhow::Result<()> {
    setup::ensure()?;
    cmd::run(cmd::new("cargo").args(["build", "--release", "-p", "monitor"]))?;
    if !cmd::is_root() {
        bail!("the daemon loads eBPF programs: run as root (sudo -E cargo xtask run)");
    }
    let bin = cmd::root().join("target/release/monitor");
    let err = std::os::unix::process::CommandExt::exec(
        std::process::Command::new(&bin).arg("run").args(args),
    );
    bail!("starting {}: {err}", bin.display())
}
