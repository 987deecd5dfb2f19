//! Builds the kernel programs (`monitor-ebpf`) for the BPF target with the nightly toolchain
//! and leaves the object in `OUT_DIR`, where `src/bpf/loader.rs` embeds it.
//! `AYA_BUILD_SKIP=1` skips it (for `cargo check` or clippy without bpf-linker).
//!
//! It also fetches the page's chart library, uPlot, from the npm registry (`npm ci` on the
//! pinned `uplot/package-lock.json`, integrity checked) into `OUT_DIR`, where
//! `src/page/mod.rs` embeds it: the library is never copied into the repository.

use anyhow::{anyhow, Context as _};

fn main() -> anyhow::Result<()> {
    revision();
    let skip = std::env::var_os("AYA_BUILD_SKIP").is_some_and(|v| v == "1" || v == "true");
    uplot(skip)?;
    if skip {
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

/// The files of uPlot the page serves, as `OUT_DIR` holds them.
const UPLOT_FILES: &[&str] = &["uPlot.iife.min.js", "uPlot.min.css"];

/// Puts uPlot's files in `OUT_DIR`: from `MONITOR_UPLOT_DIR` if set (a directory holding
/// them, for a build without the registry), else by `npm ci` on the pinned lock file, once
/// per lock file. Without the registry the build fails with one message saying so; with
/// `skip` (checks and lints, which build no runnable daemon) it warns and embeds a stub.
fn uplot(skip: bool) -> anyhow::Result<()> {
    println!("cargo:rerun-if-env-changed=MONITOR_UPLOT_DIR");
    let manifest_dir = std::env::var("CARGO_MANIFEST_DIR").context("CARGO_MANIFEST_DIR")?;
    let pins = std::path::Path::new(&manifest_dir).join("uplot");
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR").context("OUT_DIR")?);
    for f in ["package.json", "package-lock.json"] {
        println!("cargo:rerun-if-changed={}", pins.join(f).display());
    }
    if let Some(dir) = std::env::var_os("MONITOR_UPLOT_DIR") {
        let dir = std::path::PathBuf::from(dir);
        for f in UPLOT_FILES {
            std::fs::copy(dir.join(f), out.join(f)).with_context(|| {
                format!(
                    "MONITOR_UPLOT_DIR: copying {} to OUT_DIR",
                    dir.join(f).display()
                )
            })?;
        }
        return Ok(());
    }
    let lock = std::fs::read(pins.join("package-lock.json"))
        .with_context(|| format!("reading {}", pins.join("package-lock.json").display()))?;
    let stamp = out.join("uplot.stamp");
    if std::fs::read(&stamp).is_ok_and(|s| s == lock)
        && UPLOT_FILES.iter().all(|f| out.join(f).exists())
    {
        return Ok(());
    }
    match npm_ci(&pins, &out) {
        Ok(()) => {
            std::fs::write(&stamp, &lock)
                .with_context(|| format!("writing {}", stamp.display()))?;
            Ok(())
        }
        Err(e) if skip => {
            println!(
                "cargo:warning=uPlot not fetched ({e:#}); the page embeds a stub (AYA_BUILD_SKIP)"
            );
            for f in UPLOT_FILES {
                std::fs::write(out.join(f), "/* uPlot not fetched: AYA_BUILD_SKIP build */")
                    .with_context(|| format!("writing {f}"))?;
            }
            Ok(())
        }
        Err(e) => Err(e.context(
            "the daemon's page needs the chart library uPlot, which the build fetches from the \
             npm registry (npm ci on monitor/uplot/package-lock.json): give the build access to \
             the registry (or an npm cache holding uplot), or set MONITOR_UPLOT_DIR to a \
             directory holding uPlot.iife.min.js and uPlot.min.css",
        )),
    }
}

fn npm_ci(pins: &std::path::Path, out: &std::path::Path) -> anyhow::Result<()> {
    let dir = out.join("uplot");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    for f in ["package.json", "package-lock.json"] {
        std::fs::copy(pins.join(f), dir.join(f)).with_context(|| format!("copying {f}"))?;
    }
    let o = std::process::Command::new("npm")
        .args([
            "ci",
            "--ignore-scripts",
            "--no-audit",
            "--no-fund",
            "--prefer-offline",
        ])
        .current_dir(&dir)
        .output()
        .context("running npm (is Node's npm installed?)")?;
    if !o.status.success() {
        let err = String::from_utf8_lossy(&o.stderr);
        let last = err
            .lines()
            .filter(|l| !l.trim().is_empty())
            .take(3)
            .collect::<Vec<_>>()
            .join(" / ");
        return Err(anyhow!("npm ci failed ({}): {last}", o.status));
    }
    let dist = dir.join("node_modules/uplot/dist");
    for f in UPLOT_FILES {
        std::fs::copy(dist.join(f), out.join(f))
            .with_context(|| format!("copying {} to OUT_DIR", dist.join(f).display()))?;
    }
    Ok(())
}
