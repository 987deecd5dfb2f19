//! Toolchain pieces the kernel programs need (see shared/reference/toolchain.md): the
//! nightly's rust-src (for `-Z build-std=core`), LLVM 22 (the nightly's LLVM) and bpf-linker
//! built against it. Each is checked first, so a set-up machine costs well under a second.

use anyhow::{bail, Context as _};

use crate::cmd;

const LLVM_PREFIX: &str = "/usr/lib/llvm-22";
const LLVM_PACKAGES: &[&str] = &[
    "llvm-22-dev",
    "libpolly-22-dev",
    "libzstd-dev",
    "zlib1g-dev",
];

pub fn ensure() -> anyhow::Result<()> {
    ensure_rust_src()?;
    ensure_llvm()?;
    ensure_bpf_linker()?;
    Ok(())
}

fn ensure_rust_src() -> anyhow::Result<()> {
    let out = cmd::new("rustup")
        .args(["component", "list", "--toolchain", "nightly", "--installed"])
        .output()
        .context("running rustup (is rustup installed?)")?;
    if !out.status.success() {
        bail!("the nightly toolchain is missing (rustup toolchain list shows no nightly)");
    }
    if String::from_utf8_lossy(&out.stdout)
        .lines()
        .any(|l| l.starts_with("rust-src"))
    {
        return Ok(());
    }
    eprintln!("xtask: installing rust-src for nightly");
    cmd::run(cmd::new("rustup").args(["component", "add", "rust-src", "--toolchain", "nightly"]))
}

/// Installs Debian packages that are missing, running `apt-get update` once first.
pub fn apt_install(packages: &[&str]) -> anyhow::Result<()> {
    let installed = |p: &str| {
        cmd::new("dpkg-query")
            .args(["-W", "-f=${Status}", p])
            .output()
            .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("install ok installed"))
    };
    let missing: Vec<&str> = packages.iter().copied().filter(|p| !installed(p)).collect();
    if missing.is_empty() {
        return Ok(());
    }
    if !cmd::is_root() {
        bail!(
            "missing Debian packages {} and not root to install them (apt-get install -y {})",
            missing.join(" "),
            missing.join(" ")
        );
    }
    eprintln!("xtask: installing {}", missing.join(" "));
    cmd::run(cmd::new("apt-get").args(["update", "-q"]))?;
    cmd::run(
        cmd::new("apt-get")
            .args(["install", "-y", "-q", "--no-install-recommends"])
            .args(&missing)
            .env("DEBIAN_FRONTEND", "noninteractive"),
    )
}

fn ensure_llvm() -> anyhow::Result<()> {
    apt_install(LLVM_PACKAGES)
}

fn ensure_bpf_linker() -> anyhow::Result<()> {
    let linker = cmd::cargo_bin().join("bpf-linker");
    if cmd::succeeds(std::process::Command::new(&linker).arg("--version")) {
        return Ok(());
    }
    eprintln!("xtask: building bpf-linker against LLVM 22 (about a minute)");
    // The default features want LLVM 23 and would find Debian's LLVM 14 on PATH.
    cmd::run(
        cmd::new("cargo")
            .args([
                "install",
                "bpf-linker",
                "--locked",
                "--no-default-features",
                "--features",
                "llvm-22",
            ])
            .env("LLVM_PREFIX", LLVM_PREFIX),
    )
}
