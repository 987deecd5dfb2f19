//! `cargo xtask bench`: placeholder replaced by the benchmark implementation.

#[derive(clap::Args)]
pub struct Options {}

pub fn run(_o: &Options) -> anyhow::Result<()> {
    anyhow::bail!("not written yet")
}
