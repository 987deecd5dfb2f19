//! Builds the kernel programs (`monitor-ebpf`) for the BPF target with the nightly toolchain
//! and leaves the object in `OUT_DIR`, where `src/bpf/loader.rs` embeds it.
//! `AYA_BUILD_SKIP=1` skips it (for `cargo check` or clippy without bpf-linker).

use anyhow::{anyhow, Context as _};

fn main() -> anyhow::Result<()> {
    revision();
    let manifest_dir = std::env::var("CARGO_MANIFEST_DIR").context("CARGO_MANIFEST_DIR")?;
    let root = std::path::Path::new(&manifest_dir)
        .parent()
        .ok_or_else(|| anyhow!("{manifest_dir} has no parent"))?
        .join("monitor-ebpf");
    let root = root
        .to_str()
        .ok_or_else(|| anyhow!("{} is not UTF-8", root.display()))?;
    aya_build::build_ebpf(
        [aya_build::Package {
            name: "monitor-ebpf",
            root_dir: root,
            ..Default::default()
        }],
        aya_build::Toolchain::Nightly,
    )
}

/// The git revision for `monitor_build_info`, or "unknown" outside a checkout.
fn revision() {
    let rev = std::process::Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=MONITOR_REVISION={rev}");
    println!("cargo:rerun-if-changed=../.git/HEAD");
}
