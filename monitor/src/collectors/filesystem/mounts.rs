//! The mount table (`/proc/1/mounts`: the host's namespace even when the daemon runs in a
//! container with the host's /proc) and which mounts to report.

use regex::Regex;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mount {
    pub device: String,
    pub mountpoint: String,
    pub fstype: String,
    pub read_only: bool,
}

/// Undoes the kernel's octal escapes in mount fields (`\040` for a space).
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        // The kernel escapes bytes, so three octal digits stay at or below \377; anything
        // above (found by the proc_text fuzz target) is literal text, not an escape.
        if b[i] == b'\\'
            && i + 3 < b.len()
            && (b'0'..=b'3').contains(&b[i + 1])
            && b[i + 2..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            let v = (b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0');
            out.push(v);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Parses a mounts file; a mountpoint listed twice keeps its last (visible) entry.
pub fn parse(text: &str) -> Vec<Mount> {
    let mut out: Vec<Mount> = Vec::new();
    for line in text.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 4 {
            continue;
        }
        let m = Mount {
            device: unescape(f[0]),
            mountpoint: unescape(f[1]),
            fstype: f[2].to_string(),
            read_only: f[3].split(',').any(|o| o == "ro"),
        };
        out.retain(|o| o.mountpoint != m.mountpoint);
        out.push(m);
    }
    out
}

/// Which mounts to report: a mount is reported when it matches the include patterns (when
/// given) and none of the exclude ones, for both its mountpoint and its type.
#[derive(Clone, Debug)]
pub struct Filter {
    pub mount_points_include: Option<Regex>,
    pub mount_points_exclude: Regex,
    pub fs_types_include: Option<Regex>,
    pub fs_types_exclude: Regex,
}

/// Pseudo filesystems, skipped by default (node_exporter's list, plus tracefs and the like).
pub const DEFAULT_FS_TYPES_EXCLUDE: &str = "^(autofs|binfmt_misc|bpf|cgroup2?|configfs|debugfs|devpts|devtmpfs|fusectl|hugetlbfs|iso9660|mqueue|nsfs|overlay|proc|procfs|pstore|rpc_pipefs|securityfs|selinuxfs|squashfs|sysfs|tracefs)$";
/// Kernel and container-runtime trees, skipped by default.
pub const DEFAULT_MOUNT_POINTS_EXCLUDE: &str =
    "^/(dev|proc|run/credentials/.+|sys|var/lib/docker/.+|var/lib/containers/storage/.+)($|/)";

impl Filter {
    pub fn keeps(&self, m: &Mount) -> bool {
        let inc = |r: &Option<Regex>, s: &str| r.as_ref().is_none_or(|r| r.is_match(s));
        inc(&self.mount_points_include, &m.mountpoint)
            && !self.mount_points_exclude.is_match(&m.mountpoint)
            && inc(&self.fs_types_include, &m.fstype)
            && !self.fs_types_exclude.is_match(&m.fstype)
    }
}

impl Default for Filter {
    fn default() -> Self {
        Self {
            mount_points_include: None,
            mount_points_exclude: Regex::new(DEFAULT_MOUNT_POINTS_EXCLUDE).expect("valid"),
            fs_types_include: None,
            fs_types_exclude: Regex::new(DEFAULT_FS_TYPES_EXCLUDE).expect("valid"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MOUNTS: &str = "proc /proc proc rw,relatime 0 0\n\
/dev/vda / ext4 rw,relatime 0 0\n\
tmpfs /dev/shm tmpfs rw 0 0\n\
/dev/sdb1 /mnt/my\\040disk xfs ro,noatime 0 0\n\
tmpfs /run tmpfs rw 0 0\n\
tmpfs /run tmpfs rw,size=5k 0 0\n\
cgroup2 /sys/fs/cgroup/unified cgroup2 rw 0 0\n";

    #[test]
    fn parses_escapes_options_and_duplicates() {
        let m = parse(MOUNTS);
        assert_eq!(m.len(), 6);
        let disk = m.iter().find(|m| m.device == "/dev/sdb1").unwrap();
        assert_eq!(disk.mountpoint, "/mnt/my disk");
        assert!(disk.read_only);
        assert_eq!(m.iter().filter(|m| m.mountpoint == "/run").count(), 1);
    }

    #[test]
    fn default_filter_skips_pseudo_filesystems() {
        let f = Filter::default();
        let kept: Vec<String> = parse(MOUNTS)
            .into_iter()
            .filter(|m| f.keeps(m))
            .map(|m| m.mountpoint)
            .collect();
        assert_eq!(kept, vec!["/", "/mnt/my disk", "/run"]);
        let only_xfs = Filter {
            fs_types_include: Some(Regex::new("^xfs$").unwrap()),
            ..Filter::default()
        };
        assert_eq!(
            parse(MOUNTS).iter().filter(|m| only_xfs.keeps(m)).count(),
            1
        );
    }

    /// Found by the proc_text fuzz target: `\777` overflowed a byte.
    #[test]
    fn escapes_above_a_byte_stay_literal() {
        assert_eq!(unescape("/a\\777b"), "/a\\777b");
        assert_eq!(unescape("/a\\377"), String::from_utf8_lossy(b"/a\xff"));
        assert_eq!(unescape("my\\040disk"), "my disk");
    }
}
