//! Builds the kernel programs (`monitor-ebpf`) for the BPF target with the nightly toolchain
//! and leaves the object in `OUT_DIR`, where `src/bpf/loader.rs` embeds it.
//! `AYA_BUILD_SKIP=1` skips it (for `cargo check` or clippy without bpf-linker).

use anyhow::{anyhow, Context as _};

fn main() -> anyhow::Result<()> {
    revision();
    if std::env::var_os("AYA_BUILD_SKIP").is_some_and(|v| v == "1" || v == "true") {
        // Lints and checks need no kernel object, but `include_bytes_aligned!` needs a file.
        let out = std::path::PathBuf::from(std::env::var("OUT_DIR").context("OUT_DIR")?);
        let obj = out.join("monitor");
        if !obj.exists() {
            std::fs::write(&obj, []).with_context(|| format!("writing {}", obj.display()))?;
        }
        println!("cargo:rerun-if-env-changed=AYA_BUILD_SKIP");
        return Ok(());
    }
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
    // A commit moves the branch HEAD points to, not HEAD itself.
    println!("cargo:rerun-if-changed=../.git/HEAD");
    if let Some(r) = std::fs::read_to_string("../.git/HEAD")
        .ok()
        .and_then(|h| h.strip_prefix("ref: ").map(|r| r.trim().to_string()))
    {
        println!("cargo:rerun-if-changed=../.git/{r}");
    }
    println!("cargo:rerun-if-changed=../.git/packed-refs");
}
