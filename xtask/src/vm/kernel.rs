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
pub fn vmlinuz(package: &str, cache: &Path) -> anyhow::Result<PathBuf> {
    let dir = cache.join(package);
    let image = dir.join("vmlinuz");
    if image.is_file() {
        return Ok(image);
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
    // Only the image: the package's modules are not needed (the guest's root is an
    // initramfs, and everything the programs use is built in).
    let listing = cmd::new("dpkg-deb").arg("-c").arg(&deb).output()?;
    let member = String::from_utf8_lossy(&listing.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().last())
        .find(|m| m.starts_with("./boot/vmlinuz-"))
        .map(str::to_string)
        .with_context(|| format!("{} has no /boot/vmlinuz", deb.display()))?;
    let status = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "dpkg-deb --fsys-tarfile '{}' | tar -xO '{member}' > '{}'",
            deb.display(),
            image.display()
        ))
        .status()?;
    if !status.success() {
        let _ = std::fs::remove_file(&image);
        bail!("extracting {member} from {}", deb.display());
    }
    std::fs::remove_file(&deb)?;
    Ok(image)
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
