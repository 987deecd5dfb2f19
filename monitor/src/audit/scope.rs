//! `--audit.cgroup`: the kernel programs compare an ancestor of the current task's cgroup v2
//! with the configured one, which needs the cgroup's id (its directory's inode number) and
//! its depth below the hierarchy's root.

use std::{
    os::unix::fs::MetadataExt as _,
    path::{Path, PathBuf},
};

use anyhow::{anyhow, Context as _};
use monitor_common::audit::AuditScope;

/// The mount point of the cgroup v2 hierarchy, from `/proc/self/mountinfo`.
pub fn cgroup2_root() -> anyhow::Result<PathBuf> {
    let text =
        std::fs::read_to_string("/proc/self/mountinfo").context("reading /proc/self/mountinfo")?;
    root_in(&text).ok_or_else(|| anyhow!("no cgroup2 filesystem is mounted"))
}

pub(crate) fn root_in(mountinfo: &str) -> Option<PathBuf> {
    mountinfo.lines().find_map(|l| {
        let (pre, post) = l.split_once(" - ")?;
        (post.split_whitespace().next()? == "cgroup2")
            .then(|| pre.split_whitespace().nth(4).map(PathBuf::from))?
    })
}

pub fn of(dir: &Path) -> anyhow::Result<AuditScope> {
    let root = cgroup2_root()?;
    let dir = dir
        .canonicalize()
        .with_context(|| format!("--audit.cgroup {}", dir.display()))?;
    let rel = dir.strip_prefix(&root).map_err(|_| {
        anyhow!(
            "--audit.cgroup {}: not inside the cgroup v2 hierarchy at {}",
            dir.display(),
            root.display()
        )
    })?;
    let meta =
        std::fs::metadata(&dir).with_context(|| format!("--audit.cgroup {}", dir.display()))?;
    Ok(AuditScope {
        cgroup_id: meta.ino(),
        cgroup_level: rel.components().count() as u32,
        enabled: 1,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_cgroup2_mount() {
        let mi = "30 25 0:26 / /sys/fs/cgroup ro,nosuid shared:4 - tmpfs tmpfs ro,mode=755\n\
                  35 30 0:31 / /sys/fs/cgroup/unified rw,nosuid shared:10 - cgroup2 cgroup2 rw\n";
        assert_eq!(root_in(mi), Some(PathBuf::from("/sys/fs/cgroup/unified")));
        assert_eq!(root_in("1 2 0:1 / / rw - ext4 /dev/vda rw\n"), None);
    }
}
