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
    // A commit moves the branch HEAD points to, not HEAD itself. `--git-path` resolves both
    // in a plain clone and in a worktree (where `.git` is a file).
    for name in ["HEAD", "packed-refs"] {
        if let Some(p) = git_path(name) {
            println!("cargo:rerun-if-changed={p}");
        }
    }
    if let Some(r) = git_path("HEAD")
        .and_then(|h| std::fs::read_to_string(h).ok())
        .and_then(|h| h.strip_prefix("ref: ").map(|r| r.trim().to_string()))
        .and_then(|r| git_path(&r))
    {
        println!("cargo:rerun-if-changed={r}");
    }
}

/// Absolute path of `name` inside the git directory, if this is a checkout and it exists.
fn git_path(name: &str) -> Option<String> {
    let out = std::process::Command::new("git")
        .args(["rev-parse", "--path-format=absolute", "--git-path", name])
        .output()
        .ok()
        .filter(|o| o.status.success())?;
    let p = String::from_utf8(out.stdout).ok()?.trim().to_string();
    std::path::Path::new(&p).exists().then_some(p)
}
