//! A disk that fails where the test says: one file, served by this process over FUSE, whose
//! reads and writes touching a chosen byte range answer EIO, and a loop device over it. The
//! loop driver reads and writes its backing file through the VFS, so a failed FUSE request
//! completes the loop device's block request with an I/O error, as a bad sector would.
//!
//! Everything else answers as a filesystem should: INIT, LOOKUP, GETATTR, OPEN, READ and
//! WRITE outside the range (the bytes are kept in memory), FLUSH, FSYNC, RELEASE.

use std::{
    ffi::OsStr,
    ops::Range,
    path::PathBuf,
    process::Command,
    sync::Mutex,
    time::{Duration, UNIX_EPOCH},
};

use fuser::{
    Errno, FileAttr, FileHandle, FileType, Filesystem, Generation, INodeNo, LockOwner, OpenFlags,
    ReplyAttr, ReplyData, ReplyEmpty, ReplyEntry, ReplyWrite, Request, WriteFlags,
};

/// The one file's name in the mount.
const FILE: &str = "disk";
const FILE_INO: INodeNo = INodeNo(2);
/// Nothing changes behind the kernel's back: attributes may be cached for the whole test.
const TTL: Duration = Duration::from_secs(3600);

struct Backing {
    data: Mutex<Vec<u8>>,
    failing: Range<u64>,
}

impl Backing {
    fn attr(&self, ino: INodeNo) -> FileAttr {
        let (kind, size, perm, nlink) = if ino == INodeNo::ROOT {
            (FileType::Directory, 0, 0o755, 2)
        } else {
            let size = self.data.lock().unwrap().len() as u64;
            (FileType::RegularFile, size, 0o600, 1)
        };
        FileAttr {
            ino,
            size,
            blocks: size.div_ceil(512),
            atime: UNIX_EPOCH,
            mtime: UNIX_EPOCH,
            ctime: UNIX_EPOCH,
            crtime: UNIX_EPOCH,
            kind,
            perm,
            nlink,
            uid: 0,
            gid: 0,
            rdev: 0,
            flags: 0,
            blksize: 4096,
        }
    }

    /// The in-file range of a request, or EIO when it touches the failing bytes.
    fn range(&self, offset: u64, len: u64, size: usize) -> Result<Range<usize>, Errno> {
        let end = offset.saturating_add(len);
        if offset < self.failing.end && end > self.failing.start {
            return Err(Errno::EIO);
        }
        let start = (offset as usize).min(size);
        Ok(start..(end as usize).min(size))
    }
}

impl Filesystem for Backing {
    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        if parent == INodeNo::ROOT && name == FILE {
            reply.entry(&TTL, &self.attr(FILE_INO), Generation(0));
        } else {
            reply.error(Errno::ENOENT);
        }
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        if ino == INodeNo::ROOT || ino == FILE_INO {
            reply.attr(&TTL, &self.attr(ino));
        } else {
            reply.error(Errno::ENOENT);
        }
    }

    fn read(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        let data = self.data.lock().unwrap();
        match self.range(offset, u64::from(size), data.len()) {
            Ok(r) => reply.data(&data[r]),
            Err(e) => reply.error(e),
        }
    }

    fn write(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        bytes: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        let mut data = self.data.lock().unwrap();
        let len = data.len();
        match self.range(offset, bytes.len() as u64, len) {
            // The file has a fixed size, like a disk: nothing is written past its end.
            Ok(r) => {
                let n = r.len();
                data[r].copy_from_slice(&bytes[..n]);
                reply.written(n as u32);
            }
            Err(e) => reply.error(e),
        }
    }

    fn flush(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _lock_owner: LockOwner,
        reply: ReplyEmpty,
    ) {
        reply.ok();
    }

    fn fsync(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        reply.ok();
    }
}

/// The FUSE mount holding the file. Unmounted lazily when dropped (a loop device still
/// attached would make a plain unmount fail); the server thread keeps answering until the
/// kernel lets go of the connection, so nothing blocks on a dead server.
pub struct FaultyFile {
    session: Option<fuser::BackgroundSession>,
    dir: tempfile::TempDir,
}

impl FaultyFile {
    /// A file of `size` zero bytes whose bytes in `failing` cannot be read or written.
    pub fn new(size: usize, failing: Range<u64>) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let backing = Backing {
            data: Mutex::new(vec![0; size]),
            failing,
        };
        let mut config = fuser::Config::default();
        config
            .mount_options
            .push(fuser::MountOption::FSName("monitor-test-faulty".into()));
        // As root, fuser mounts through mount(2) itself: no libfuse, no fusermount.
        let session = fuser::spawn_mount(backing, dir.path(), &config)
            .unwrap_or_else(|e| panic!("mounting FUSE on {}: {e}", dir.path().display()));
        FaultyFile {
            session: Some(session),
            dir,
        }
    }

    pub fn path(&self) -> PathBuf {
        self.dir.path().join(FILE)
    }
}

impl Drop for FaultyFile {
    fn drop(&mut self) {
        let _ = Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
        // fuser finds the mount gone and leaves it; its thread ends with the connection.
        drop(self.session.take());
    }
}

/// A loop device over a file, detached when dropped.
pub struct LoopDevice {
    pub dev: String,
}

impl LoopDevice {
    pub fn new(file: &std::path::Path) -> Self {
        let out = Command::new("losetup")
            .args(["--find", "--show"])
            .arg(file)
            .output()
            .expect("running losetup");
        assert!(
            out.status.success(),
            "losetup {}: {}",
            file.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        let dev = String::from_utf8(out.stdout).unwrap().trim().to_string();
        LoopDevice { dev }
    }

    /// The disk's name, as sysfs and /proc/diskstats call it.
    pub fn name(&self) -> &str {
        self.dev.trim_start_matches("/dev/")
    }
}

impl Drop for LoopDevice {
    fn drop(&mut self) {
        let _ = Command::new("losetup").args(["-d", &self.dev]).status();
    }
}
