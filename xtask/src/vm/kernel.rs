//! Debian kernels for the VM matrix: the newest `linux-image-<series>*-amd64` package known
//! to apt, downloaded once with `apt-get download` and cached under `target/vm/kernels`.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _};

use crate::cmd;

/// The newest generic amd64 image of `series` ("6.1", "6.12"), or `series` itself when it
/// already names a package.
pub fn resolve(series: &str) -> anyhow::Result<String> {
    if series.starts_with("linux-image-") {
        return Ok(series.to_string());
    }
    let search = || -> anyhow::Result<Vec<String>> {
        let out = cmd::new("apt-cache")
            .args([
                "search",
                "--names-only",
                &format!("^linux-image-{series}[.]"),
            ])
            .output()
            .context("running apt-cache search")?;
        Ok(String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.split_whitespace().next())
            // The generic flavour only: no cloud, rt or unsigned/dbg variants.
            .filter(|p| p.ends_with("-amd64") && !p.contains("cloud") && !p.contains("-rt-"))
            .filter(|p| !p.ends_with("-unsigned") && !p.contains("-dbg"))
            .map(str::to_string)
            .collect())
    };
    let mut found = search()?;
    if found.is_empty() {
        cmd::run(cmd::new("apt-get").args(["update", "-q"]))?;
        found = search()?;
    }
    found.sort_by_key(|p| version_key(p));
    found
        .pop()
        .with_context(|| format!("no linux-image-{series}* amd64 package known to apt"))
}

/// Numbers in a package name, for "newest" ordering (6.1.0-50 after 6.1.0-9).
fn version_key(name: &str) -> Vec<u64> {
    name.split(|c: char| !c.is_ascii_digit())
        .filter_map(|s| s.parse().ok())
        .collect()
}

/// The kernel image of `package`, downloading and extracting it into `cache` if needed.
/// What the guest needs of a kernel package: its image, and the loop driver (a module in
/// Debian's builds) so the guest has a block device to drive.
pub struct KernelFiles {
    pub vmlinuz: PathBuf,
    pub loop_module: PathBuf,
}

/// Downloads `package` once into `cache` and extracts what the guest needs.
pub fn fetch(package: &str, cache: &Path) -> anyhow::Result<KernelFiles> {
    let dir = cache.join(package);
    let files = KernelFiles {
        vmlinuz: dir.join("vmlinuz"),
        loop_module: dir.join("loop.ko"),
    };
    if files.vmlinuz.is_file() && files.loop_module.is_file() {
        return Ok(files);
    }
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    eprintln!("xtask: downloading {package}");
    cmd::run(
        cmd::new("apt-get")
            .arg("download")
            .arg(package)
            .current_dir(&dir),
    )?;
    let deb = std::fs::read_dir(&dir)?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|e| e == "deb"))
        .with_context(|| format!("apt-get download {package} left no .deb"))?;
    let listing = cmd::new("dpkg-deb").arg("-c").arg(&deb).output()?;
    let listing = String::from_utf8_lossy(&listing.stdout);
    let member = |what: &str, pred: &dyn Fn(&str) -> bool| -> anyhow::Result<String> {
        listing
            .lines()
            .filter_map(|l| l.split_whitespace().last())
            .find(|m| pred(m))
            .map(str::to_string)
            .with_context(|| format!("{} has no {what}", deb.display()))
    };
    let image = member("/boot/vmlinuz", &|m| m.starts_with("./boot/vmlinuz-"))?;
    let module = member("loop module", &|m| m.contains("/drivers/block/loop.ko"))?;
    // Debian compresses modules on newer releases; busybox's insmod wants them plain.
    let decompress = if module.ends_with(".xz") {
        "| xz -dc"
    } else if module.ends_with(".zst") {
        "| zstd -dc"
    } else {
        ""
    };
    for (m, dest, filter) in [
        (&image, &files.vmlinuz, ""),
        (&module, &files.loop_module, decompress),
    ] {
        let status = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!(
                "dpkg-deb --fsys-tarfile '{}' | tar -xO '{m}' {filter} > '{}'",
                deb.display(),
                dest.display()
            ))
            .status()?;
        if !status.success() {
            let _ = std::fs::remove_file(dest);
            bail!("extracting {m} from {}", deb.display());
        }
    }
    std::fs::remove_file(&deb)?;
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::version_key;

    #[test]
    fn newest_by_numbers() {
        assert!(
            version_key("linux-image-6.1.0-50-amd64") > version_key("linux-image-6.1.0-9-amd64")
        );
        assert!(
            version_key("linux-image-6.12.101+deb12-amd64")
                > version_key("linux-image-6.12.100+deb12-amd64")
        );
    }
}
