//! Debian kernels for the VM matrix: the newest `linux-image-<series>*-amd64` package, downloaded
//! once with `apt-get download` and cached under `target/vm/kernels`. Series of the machine's own
//! Debian release come through its apt sources; older ones (5.10, Debian 11) through a private
//! apt configuration under `target/vm/apt` that lists their suites on the machine's mirror, so
//! the machine's own apt configuration, lists and caches are never touched.

use std::{
    path::{Path, PathBuf},
    process::Command,
    time::Duration,
};

use anyhow::{bail, Context as _};

use crate::cmd;

/// Series whose kernels come from a Debian release the machine's sources do not list, with
/// that release's codename. Its security suite is listed too: point releases of an LTS
/// release's kernel land there first.
const OTHER_RELEASES: &[(&str, &str)] = &[("5.10", "bullseye")];

/// Private package lists older than this are refreshed before a kernel is chosen, so "the
/// newest" follows the archive (a refresh takes a few seconds).
const LISTS_MAX_AGE: Duration = Duration::from_secs(24 * 3600);

const DEBIAN_KEYRING: &str = "/usr/share/keyrings/debian-archive-keyring.gpg";

/// How apt is run for a series: the machine's configuration, or a private one.
pub enum Apt {
    System,
    /// `APT_CONFIG` names a file under `dir` that sets every directory apt reads or writes
    /// (sources, lists, caches, configuration fragments) to one under `dir`. It is read before
    /// the machine's `apt.conf.d`, so pointing `Dir::Etc::parts` at an empty directory keeps
    /// the machine's fragments (and their update hooks) out as well.
    Private {
        dir: PathBuf,
    },
}

impl Apt {
    /// The apt for `series`; a private one is set up under `work/apt/<codename>` first.
    pub fn for_series(series: &str, work: &Path) -> anyhow::Result<Apt> {
        let Some((_, codename)) = OTHER_RELEASES
            .iter()
            .find(|(s, _)| series == *s || series.starts_with(&format!("linux-image-{s}.")))
        else {
            return Ok(Apt::System);
        };
        let dir = work.join("apt").join(codename);
        for d in [
            "lists/partial",
            "cache/archives/partial",
            "parts",
            "sources.d",
        ] {
            let d = dir.join(d);
            std::fs::create_dir_all(&d).with_context(|| format!("creating {}", d.display()))?;
        }
        let sources = machine_sources();
        let mirrors = Mirrors::of(&sources, &os_codename());
        std::fs::write(dir.join("sources.list"), mirrors.sources_list(codename))?;
        std::fs::write(dir.join("apt.conf"), private_conf(&dir))?;
        Ok(Apt::Private { dir })
    }

    fn command(&self, program: &str) -> Command {
        let mut c = cmd::new(program);
        if let Apt::Private { dir } = self {
            c.env("APT_CONFIG", dir.join("apt.conf"));
        }
        c
    }

    /// Refreshes the package lists: the machine's only when they know no package of the series
    /// (as before), the private ones also when they are older than `LISTS_MAX_AGE`.
    fn update(&self) -> anyhow::Result<()> {
        cmd::run(self.command("apt-get").args(["update", "-q"]))
    }

    fn lists_stale(&self) -> bool {
        let Apt::Private { dir } = self else {
            return false;
        };
        let newest = std::fs::read_dir(dir.join("lists"))
            .into_iter()
            .flatten()
            .filter_map(Result::ok)
            .filter(|e| e.file_name().to_string_lossy().ends_with("_Packages"))
            .filter_map(|e| e.metadata().ok()?.modified().ok())
            .max();
        newest.is_none_or(|t| t.elapsed().unwrap_or_default() > LISTS_MAX_AGE)
    }
}

/// The private configuration: every directory apt uses, under `dir`.
fn private_conf(dir: &Path) -> String {
    let d = dir.display();
    format!(
        "Dir::Etc::sourcelist \"{d}/sources.list\";\n\
         Dir::Etc::sourceparts \"{d}/sources.d\";\n\
         Dir::Etc::parts \"{d}/parts\";\n\
         Dir::Etc::main \"/dev/null\";\n\
         Dir::Etc::preferencesparts \"{d}/parts\";\n\
         Dir::State::Lists \"{d}/lists\";\n\
         Dir::Cache \"{d}/cache\";\n\
         Dir::Cache::pkgcache \"\";\n\
         Dir::Cache::srcpkgcache \"\";\n\
         Acquire::Languages \"none\";\n"
    )
}

/// The machine's apt sources, one-line and deb822 files alike, concatenated.
fn machine_sources() -> String {
    let mut text = std::fs::read_to_string("/etc/apt/sources.list").unwrap_or_default();
    let mut parts: Vec<PathBuf> = std::fs::read_dir("/etc/apt/sources.list.d")
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .map(|e| e.path())
        .collect();
    parts.sort();
    for p in parts {
        if let Ok(t) = std::fs::read_to_string(&p) {
            text.push_str("\n\n");
            text.push_str(&t);
        }
    }
    text
}

/// The machine's Debian codename ("bookworm"), from os-release.
fn os_codename() -> String {
    std::fs::read_to_string("/etc/os-release")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VERSION_CODENAME="))
        .map(|c| c.trim_matches('"').to_string())
        .unwrap_or_else(|| "bookworm".into())
}

/// One source entry: its URIs, suites and keyring.
#[derive(Debug, Default, PartialEq)]
struct Entry {
    uris: Vec<String>,
    suites: Vec<String>,
    signed_by: Option<String>,
}

/// Source entries of one-line (`deb [opts] URI suite comp...`) and deb822 (`URIs:`,
/// `Suites:`) text alike; `deb-src` entries are left out.
fn entries(text: &str) -> Vec<Entry> {
    let mut out = Vec::new();
    let mut stanza = Entry::default();
    let mut binary = true;
    let flush = |out: &mut Vec<Entry>, stanza: &mut Entry, binary: &mut bool| {
        let e = std::mem::take(stanza);
        if *binary && !e.uris.is_empty() && !e.suites.is_empty() {
            out.push(e);
        }
        *binary = true;
    };
    for line in text.lines().map(str::trim) {
        if line.is_empty() {
            flush(&mut out, &mut stanza, &mut binary);
            continue;
        }
        if line.starts_with('#') {
            continue;
        }
        if let Some(rest) = line.strip_prefix("deb ") {
            let (opts, rest) = match rest.trim_start().strip_prefix('[') {
                Some(r) => r.split_once(']').unwrap_or(("", r)),
                None => ("", rest),
            };
            let mut w = rest.split_whitespace();
            if let (Some(uri), Some(suite)) = (w.next(), w.next()) {
                out.push(Entry {
                    uris: vec![uri.to_string()],
                    suites: vec![suite.to_string()],
                    signed_by: opts
                        .split_whitespace()
                        .find_map(|o| o.strip_prefix("signed-by="))
                        .map(str::to_string),
                });
            }
            continue;
        }
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        let words = || value.split_whitespace().map(str::to_string).collect();
        match key.trim().to_ascii_lowercase().as_str() {
            "types" => binary = value.split_whitespace().any(|t| t == "deb"),
            "uris" => stanza.uris = words(),
            "suites" => stanza.suites = words(),
            "signed-by" => stanza.signed_by = Some(value.trim().to_string()),
            _ => {}
        }
    }
    flush(&mut out, &mut stanza, &mut binary);
    out
}

/// The Debian mirrors the machine uses: the archive and the security archive.
#[derive(Debug, PartialEq)]
struct Mirrors {
    archive: String,
    security: String,
    keyring: String,
}

impl Mirrors {
    /// The mirrors serving `codename` and `codename-security` in `sources`; Debian's own where
    /// the machine lists none.
    fn of(sources: &str, codename: &str) -> Mirrors {
        let all = entries(sources);
        let serving = |suite: &str| {
            all.iter()
                .find(|e| e.suites.iter().any(|s| s == suite))
                .and_then(|e| Some((e.uris.first()?.clone(), e.signed_by.clone())))
        };
        let archive = serving(codename);
        let security = serving(&format!("{codename}-security"));
        let keyring = archive
            .as_ref()
            .and_then(|(_, k)| k.clone())
            // A keyring given inline (a PGP block) cannot go on a one-line entry.
            .filter(|k| k.starts_with('/'))
            .unwrap_or_else(|| DEBIAN_KEYRING.to_string());
        Mirrors {
            archive: archive.map_or_else(|| "http://deb.debian.org/debian".into(), |(u, _)| u),
            security: security.map_or_else(
                || "http://deb.debian.org/debian-security".into(),
                |(u, _)| u,
            ),
            keyring,
        }
    }

    fn sources_list(&self, codename: &str) -> String {
        let k = &self.keyring;
        format!(
            "deb [signed-by={k}] {} {codename} main\n\
             deb [signed-by={k}] {} {codename}-security main\n",
            self.archive.trim_end_matches('/'),
            self.security.trim_end_matches('/'),
        )
    }
}

/// The newest generic amd64 image of `series` ("5.10", "6.1", "6.12"), or `series` itself
/// when it already names a package.
pub fn resolve(series: &str, apt: &Apt) -> anyhow::Result<String> {
    if series.starts_with("linux-image-") {
        return Ok(series.to_string());
    }
    let search = || -> anyhow::Result<Vec<String>> {
        let out = apt
            .command("apt-cache")
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
    let mut found = if apt.lists_stale() {
        Vec::new()
    } else {
        search()?
    };
    if found.is_empty() {
        apt.update()?;
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
pub fn fetch(package: &str, apt: &Apt, cache: &Path) -> anyhow::Result<KernelFiles> {
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
        apt.command("apt-get")
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
    use super::{entries, version_key, Mirrors, DEBIAN_KEYRING};

    const MACHINE: &str = "Types: deb\nURIs: http://mirror.example/debian\n\
        Suites: bookworm bookworm-updates\nComponents: main\n\
        Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n\n\
        Types: deb deb-src\nURIs: http://mirror.example/debian-security\n\
        Suites: bookworm-security\nComponents: main\n\n\
        deb https://packages.cloud.google.com/apt cloud-sdk-bookworm main\n\n\
        Types: deb-src\nURIs: http://src.example/debian\nSuites: bookworm\n";

    #[test]
    fn reads_both_source_formats() {
        let e = entries(MACHINE);
        assert_eq!(e.len(), 3, "{e:?}");
        assert_eq!(e[0].suites, ["bookworm", "bookworm-updates"]);
        assert_eq!(e[1].uris, ["http://mirror.example/debian-security"]);
        assert_eq!(e[2].uris, ["https://packages.cloud.google.com/apt"]);
        let one = entries("deb [arch=amd64 signed-by=/k.gpg] http://m/debian bookworm main");
        assert_eq!(one[0].signed_by.as_deref(), Some("/k.gpg"));
        assert_eq!(one[0].suites, ["bookworm"]);
    }

    #[test]
    fn older_suites_come_from_the_machines_mirror() {
        let m = Mirrors::of(MACHINE, "bookworm");
        assert_eq!(
            m.sources_list("bullseye"),
            format!(
                "deb [signed-by={DEBIAN_KEYRING}] http://mirror.example/debian bullseye main\n\
                 deb [signed-by={DEBIAN_KEYRING}] http://mirror.example/debian-security \
                 bullseye-security main\n"
            )
        );
        // Nothing listed: Debian's own mirrors.
        let m = Mirrors::of("", "bookworm");
        assert_eq!(m.archive, "http://deb.debian.org/debian");
        assert_eq!(m.security, "http://deb.debian.org/debian-security");
    }

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
