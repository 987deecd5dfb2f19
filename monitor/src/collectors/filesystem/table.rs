//! The mount table, read again only when it changed. Reading `/proc/<pid>/mounts` makes the
//! kernel format every mount (paths resolved one by one), and was a third of the filesystem
//! collector's time at a scrape a second. The file is kept open: procfs reports a change of
//! the mount namespace since the last `poll` as `POLLPRI` (a mount, an unmount, a remount,
//! as `findmnt --poll` uses), and the parsed, filtered list is reused until then. A mounts
//! file that is not on procfs (a test's fixture) is read every time.

use std::{
    fs::File,
    io::{Read as _, Seek as _},
    os::fd::AsRawFd as _,
    path::{Path, PathBuf},
};

use anyhow::Context as _;

use super::mounts::{self, Filter, Mount};

/// `PROC_SUPER_MAGIC` (include/uapi/linux/magic.h).
const PROC_SUPER_MAGIC: i64 = 0x9fa0;

/// The filtered mounts of the last read, and the file to poll for the next (on procfs).
#[derive(Default)]
pub struct Table {
    kept: Option<(PathBuf, File)>,
    mounts: Vec<Mount>,
}

impl Table {
    /// The mounts `filter` keeps (the same filter at every call), from `<procfs>/1/mounts`
    /// (PID 1's table is the host's; `<procfs>/self/mounts` is the fallback inside odd
    /// namespaces).
    pub fn read(&mut self, procfs: &Path, filter: &Filter) -> anyhow::Result<&[Mount]> {
        if let Some((root, file)) = &mut self.kept {
            if root == procfs {
                if changed(file) {
                    match reread(file, filter) {
                        Ok(m) => self.mounts = m,
                        Err(e) => {
                            self.kept = None;
                            return Err(e.context("reading the mount table again"));
                        }
                    }
                }
                return Ok(&self.mounts);
            }
        }
        self.kept = None;
        let primary = procfs.join("1/mounts");
        let mut file = File::open(&primary)
            .or_else(|_| File::open(procfs.join("self/mounts")))
            .with_context(|| format!("reading {}", primary.display()))?;
        self.mounts =
            reread(&mut file, filter).with_context(|| format!("reading {}", primary.display()))?;
        if on_procfs(&file) {
            self.kept = Some((procfs.to_path_buf(), file));
        }
        Ok(&self.mounts)
    }
}

/// Reads the whole file from its start and keeps what `filter` keeps.
fn reread(file: &mut File, filter: &Filter) -> anyhow::Result<Vec<Mount>> {
    file.rewind()?;
    let mut text = String::new();
    file.read_to_string(&mut text)?;
    Ok(mounts::parse(&text)
        .into_iter()
        .filter(|m| filter.keeps(m))
        .collect())
}

/// Whether the mount namespace changed since the last poll (or the poll failed: read).
fn changed(file: &File) -> bool {
    let mut p = libc::pollfd {
        fd: file.as_raw_fd(),
        events: libc::POLLPRI,
        revents: 0,
    };
    // SAFETY: one valid pollfd, no waiting.
    let n = unsafe { libc::poll(&mut p, 1, 0) };
    n != 0 && (n < 0 || p.revents & (libc::POLLPRI | libc::POLLERR) != 0)
}

fn on_procfs(file: &File) -> bool {
    // SAFETY: an all-zero statfs is a valid value for the kernel to fill in.
    let mut s: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: a valid descriptor and out pointer.
    unsafe { libc::fstatfs(file.as_raw_fd(), &mut s) == 0 && s.f_type as i64 == PROC_SUPER_MAGIC }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn points(t: &mut Table, procfs: &Path) -> Vec<String> {
        t.read(procfs, &Filter::default())
            .unwrap()
            .iter()
            .map(|m| m.mountpoint.clone())
            .collect()
    }

    #[test]
    fn a_fixture_is_read_every_time() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("1")).unwrap();
        let file = dir.path().join("1/mounts");
        std::fs::write(&file, "/dev/vda / ext4 rw 0 0\n").unwrap();
        let mut t = Table::default();
        assert_eq!(points(&mut t, dir.path()), ["/"]);
        std::fs::write(&file, "/dev/vda / ext4 rw 0 0\n/dev/vdb /data xfs rw 0 0\n").unwrap();
        assert_eq!(points(&mut t, dir.path()), ["/", "/data"]);
        assert!(t
            .read(Path::new("/no/such/root"), &Filter::default())
            .is_err());
    }

    /// The kernel's own table (this process's, through a root whose `1` is `/proc/self`):
    /// kept open, and read again once a mount comes or goes. Needs root.
    #[test]
    fn the_kernel_table_is_read_again_when_a_mount_comes_or_goes() {
        let root = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink("/proc/self", root.path().join("1")).unwrap();
        let mnt = tempfile::tempdir().unwrap();
        let point = mnt.path().to_string_lossy().into_owned();
        let mut t = Table::default();
        assert!(!points(&mut t, root.path()).contains(&point));
        assert!(t.kept.is_some(), "procfs is polled");
        assert!(!points(&mut t, root.path()).contains(&point), "unchanged");
        let c = |s: &str| std::ffi::CString::new(s).unwrap();
        let (src, target, fstype) = (c("mtable"), c(&point), c("tmpfs"));
        // SAFETY: valid NUL-terminated strings; no mount data.
        let r = unsafe {
            libc::mount(
                src.as_ptr(),
                target.as_ptr(),
                fstype.as_ptr(),
                0,
                std::ptr::null(),
            )
        };
        assert_eq!(
            r,
            0,
            "mount: {} (needs root)",
            std::io::Error::last_os_error()
        );
        let mounted = points(&mut t, root.path());
        // SAFETY: a valid NUL-terminated path.
        unsafe { libc::umount(target.as_ptr()) };
        assert!(mounted.contains(&point), "{mounted:?}");
        assert!(!points(&mut t, root.path()).contains(&point));
    }
}
