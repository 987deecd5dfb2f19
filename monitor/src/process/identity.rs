//! Who a process is, read from procfs under a configurable root (so tests use fixtures).

use std::{
    path::{Path, PathBuf},
    sync::Arc,
};

use serde::Serialize;

use super::cgroup::Place;

/// The longest command line kept per process; longer ones are cut (procfs has no bound).
const CMDLINE_MAX: usize = 4096;

#[derive(Clone, Debug, Default, Serialize, PartialEq, Eq)]
pub struct Identity {
    pub pid: u32,
    pub ppid: u32,
    /// Shared, not copied, by every process list made from it.
    pub comm: Arc<str>,
    /// Path of the executable; empty for kernel threads or when it cannot be read.
    pub exe: Arc<str>,
    pub cmdline: Arc<str>,
    pub uid: u32,
    /// Start time in clock ticks after boot: tells a reused pid from the process before it.
    #[serde(skip)]
    pub start_ticks: u64,
    /// Its cgroup and service: set by the process table from the kernel's cgroup id
    /// (`cgroup::Cgroups`), not read here.
    #[serde(skip)]
    pub place: Place,
}

#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error("process {0} is gone")]
    Gone(u32),
    #[error("reading {path}: {source}")]
    Read {
        path: PathBuf,
        source: procfs::ProcError,
    },
}

/// Reads identities from a procfs mounted at `root`.
#[derive(Clone, Debug)]
pub struct IdentityReader {
    root: PathBuf,
}

impl IdentityReader {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn read(&self, pid: u32) -> Result<Identity, IdentityError> {
        let dir = self.root.join(pid.to_string());
        let gone_or = |path: &Path, e: procfs::ProcError| match e {
            procfs::ProcError::NotFound(_) => IdentityError::Gone(pid),
            source => IdentityError::Read {
                path: path.to_path_buf(),
                source,
            },
        };
        let proc =
            procfs::process::Process::new_with_root(dir.clone()).map_err(|e| gone_or(&dir, e))?;
        let stat = read_stat(&dir.join("stat")).map_err(|e| gone_or(&dir.join("stat"), e))?;
        // A zombie has exited: only its exit status waits to be reaped. (A thread group
        // whose leader exited while other threads run also shows its leader as a zombie;
        // its figures still reach its group through the kernel entry.)
        if stat.state == 'Z' {
            return Err(IdentityError::Gone(pid));
        }
        let uid = proc.uid().map_err(|e| gone_or(&dir, e))?;
        // Kernel threads have neither; a process exiting right now may lose them: identity
        // stays usable without.
        let exe = proc
            .exe()
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_default();
        let mut cmdline = proc.cmdline().map(|v| v.join(" ")).unwrap_or_default();
        if cmdline.len() > CMDLINE_MAX {
            let mut cut = CMDLINE_MAX;
            while !cmdline.is_char_boundary(cut) {
                cut -= 1;
            }
            cmdline.truncate(cut);
        }
        Ok(Identity {
            pid,
            ppid: u32::try_from(stat.ppid).unwrap_or(0),
            comm: stat.comm.into(),
            exe: exe.into(),
            cmdline: cmdline.into(),
            uid,
            start_ticks: stat.starttime,
            place: Place::default(),
        })
    }

    /// Pids of every process (thread group) now in procfs.
    pub fn live_pids(&self) -> std::io::Result<Vec<u32>> {
        let mut pids = Vec::new();
        for entry in std::fs::read_dir(&self.root)? {
            let entry = entry?;
            if let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|s| s.parse::<u32>().ok())
            {
                pids.push(pid);
            }
        }
        Ok(pids)
    }
}

/// `<pid>/stat`, parsed by procfs once its shape is checked: procfs-core 0.17 slices the text
/// around the parentheses of `pid (comm) state ...` without bounds checks and panics on a
/// file without them or with nothing after (found by the `proc_tree` fuzz target; the kernel
/// never writes one, but `--path.procfs` can point at any tree).
fn read_stat(path: &Path) -> Result<procfs::process::Stat, procfs::ProcError> {
    let raw = std::fs::read(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => procfs::ProcError::NotFound(Some(path.to_path_buf())),
        _ => procfs::ProcError::Io(e, Some(path.to_path_buf())),
    })?;
    if !stat_is_well_formed(&String::from_utf8_lossy(&raw)) {
        return Err(procfs::ProcError::Incomplete(Some(path.to_path_buf())));
    }
    <procfs::process::Stat as procfs::FromRead>::from_read(&raw[..])
}

/// `PID (COMM) STATE ...`: a pid before the first parenthesis, and a space and more after the
/// last one, as procfs-core's slicing assumes (it trims the text first).
fn stat_is_well_formed(text: &str) -> bool {
    let t = text.trim();
    match (t.find('('), t.rfind(')')) {
        (Some(open), Some(close)) => {
            open >= 2
                && t.is_char_boundary(open - 1)
                && close > open
                && t.len() > close + 2
                && t.as_bytes()[close + 1] == b' '
        }
        _ => false,
    }
}

/// A kernel `comm` buffer (NUL padded) as a string.
pub fn comm_str(comm: &[u8]) -> String {
    let end = comm.iter().position(|&b| b == 0).unwrap_or(comm.len());
    String::from_utf8_lossy(&comm[..end]).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_fixture_process() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("4242");
        std::fs::create_dir(&p).unwrap();
        std::fs::write(
            p.join("stat"),
            "4242 (my proc) S 17 4242 4242 0 -1 4194304 100 0 0 0 5 3 0 0 20 0 1 0 777 1000 10 \
             18446744073709551615 0 0 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0 0 0 0 0 0 0 0 0\n",
        )
        .unwrap();
        std::fs::write(p.join("cmdline"), b"/usr/bin/my\0--flag\0x\0").unwrap();
        std::os::unix::fs::symlink("/usr/bin/my", p.join("exe")).unwrap();
        let id = IdentityReader::new(dir.path()).read(4242).unwrap();
        assert_eq!(id.pid, 4242);
        assert_eq!(id.ppid, 17);
        assert_eq!(&*id.comm, "my proc");
        assert_eq!(&*id.exe, "/usr/bin/my");
        assert_eq!(&*id.cmdline, "/usr/bin/my --flag x");
        assert_eq!(id.start_ticks, 777);
        assert!(matches!(
            IdentityReader::new(dir.path()).read(1),
            Err(IdentityError::Gone(1))
        ));
        assert_eq!(
            IdentityReader::new(dir.path()).live_pids().unwrap(),
            vec![4242]
        );
    }

    /// Found by the proc_tree fuzz target: procfs-core panicked on these.
    #[test]
    fn a_malformed_stat_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("7");
        std::fs::create_dir(&p).unwrap();
        for bad in [
            "16887 (cat)",
            "(cat) S 1",
            "7 (cat) ",
            "7 cat) S",
            "7 (cat)S 1",
            "\u{e9}(x) S",
        ] {
            std::fs::write(p.join("stat"), bad).unwrap();
            let r = IdentityReader::new(dir.path()).read(7);
            assert!(
                matches!(r, Err(IdentityError::Read { .. })),
                "{bad:?}: {r:?}"
            );
        }
        assert!(stat_is_well_formed("7 (c) a) S 1 2"));
    }

    #[test]
    fn comm_stops_at_nul() {
        assert_eq!(comm_str(b"bash\0\0\0\0\0\0\0\0\0\0\0\0"), "bash");
        assert_eq!(comm_str(b"0123456789abcdef"), "0123456789abcdef");
    }
}
