//! statvfs that never blocks a scrape: each mount's calls run on a thread of its own, kept
//! from one scrape to the next, and are waited for up to a deadline. A call still running
//! then (a dead NFS server, a FUSE daemon that never answers) marks its mount stuck; a stuck
//! mount is skipped until its call returns. (A thread made per call and scrape was a tenth of
//! the daemon's time at a scrape a second: thread creation and its stack's mapping.)

use std::{
    collections::{HashMap, HashSet},
    ffi::CString,
    sync::{mpsc, Arc, Mutex},
    time::{Duration, Instant},
};

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Usage {
    pub size_bytes: f64,
    pub free_bytes: f64,
    pub avail_bytes: f64,
    pub files: f64,
    pub files_free: f64,
    pub read_only: bool,
}

#[derive(Debug)]
pub enum Outcome {
    Ok(Usage),
    Failed(std::io::Error),
    /// The call did not return in time (now, or in an earlier scrape).
    Stuck,
}

fn statvfs(path: &str) -> std::io::Result<Usage> {
    let c = CString::new(path).map_err(|_| std::io::Error::other("NUL in mount point"))?;
    // SAFETY: an all-zero statvfs is a valid value for the kernel to fill in.
    let mut s: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: a valid NUL-terminated path and a valid out pointer.
    if unsafe { libc::statvfs(c.as_ptr(), &mut s) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let frsize = s.f_frsize as f64;
    Ok(Usage {
        size_bytes: s.f_blocks as f64 * frsize,
        free_bytes: s.f_bfree as f64 * frsize,
        avail_bytes: s.f_bavail as f64 * frsize,
        files: s.f_files as f64,
        files_free: s.f_ffree as f64,
        read_only: s.f_flag & libc::ST_RDONLY != 0,
    })
}

/// A reply to one statvfs request.
type Reply = mpsc::Sender<std::io::Result<Usage>>;

/// Stack of a mount's thread: statvfs needs little.
const STACK: usize = 64 * 1024;

/// Mount points whose statvfs is still running, and each mount's thread.
#[derive(Clone, Default)]
pub struct Stuck {
    running: Arc<Mutex<HashSet<String>>>,
    workers: Arc<Mutex<HashMap<String, mpsc::Sender<Reply>>>>,
}

impl Stuck {
    fn set(&self) -> std::sync::MutexGuard<'_, HashSet<String>> {
        self.running.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The thread that stats `path`, started at its first use; it ends when its mount is
    /// no longer asked for (its sender dropped), after the call it may still be in.
    fn worker(&self, path: &str) -> std::io::Result<mpsc::Sender<Reply>> {
        let mut workers = self.workers.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(w) = workers.get(path) {
            return Ok(w.clone());
        }
        let (tx, rx) = mpsc::channel::<Reply>();
        let (p, stuck) = (path.to_string(), self.clone());
        std::thread::Builder::new()
            .name("statvfs".into())
            .stack_size(STACK)
            .spawn(move || {
                for reply in rx {
                    let r = statvfs(&p);
                    stuck.set().remove(&p);
                    let _ = reply.send(r);
                }
            })?;
        workers.insert(path.to_string(), tx.clone());
        Ok(tx)
    }

    /// Stats every path in parallel, waiting at most `timeout` in all. Mounts not among
    /// `paths` lose their threads.
    pub fn stat_all(&self, paths: &[String], timeout: Duration) -> Vec<Outcome> {
        let deadline = Instant::now() + timeout;
        self.workers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|p, _| paths.contains(p));
        let pending: Vec<Option<mpsc::Receiver<std::io::Result<Usage>>>> = paths
            .iter()
            .map(|p| {
                if !self.set().insert(p.clone()) {
                    return None; // still stuck from an earlier scrape
                }
                let (tx, rx) = mpsc::channel();
                let sent = self.worker(p).and_then(|w| {
                    w.send(tx)
                        .map_err(|_| std::io::Error::other("statvfs thread gone"))
                });
                if let Err(e) = sent {
                    self.set().remove(p);
                    self.workers
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .remove(p);
                    let (tx, rx) = mpsc::channel();
                    let _ = tx.send(Err(e));
                    return Some(rx);
                }
                Some(rx)
            })
            .collect();
        pending
            .into_iter()
            .map(|rx| {
                let Some(rx) = rx else {
                    return Outcome::Stuck;
                };
                match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                    Ok(Ok(u)) => Outcome::Ok(u),
                    Ok(Err(e)) => Outcome::Failed(e),
                    Err(_) => Outcome::Stuck,
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_a_real_directory_and_reports_errors() {
        let dir = tempfile::tempdir().unwrap();
        let s = Stuck::default();
        let out = s.stat_all(
            &[
                dir.path().to_string_lossy().into_owned(),
                "/no/such/dir".into(),
            ],
            Duration::from_secs(5),
        );
        match &out[0] {
            Outcome::Ok(u) => assert!(u.size_bytes > 0.0 && u.avail_bytes <= u.free_bytes),
            o => panic!("{o:?}"),
        }
        assert!(matches!(&out[1], Outcome::Failed(e) if e.kind() == std::io::ErrorKind::NotFound));
        assert!(s.set().is_empty());
    }

    #[test]
    fn a_mount_keeps_its_thread_until_it_is_no_longer_asked_for() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().to_string_lossy().into_owned();
        let s = Stuck::default();
        let workers = || s.workers.lock().unwrap().len();
        for _ in 0..5 {
            let out = s.stat_all(std::slice::from_ref(&path), Duration::from_secs(5));
            assert!(matches!(&out[0], Outcome::Ok(_)), "{out:?}");
            assert_eq!(workers(), 1);
        }
        assert!(s.stat_all(&[], Duration::from_secs(5)).is_empty());
        assert_eq!(workers(), 0);
        let out = s.stat_all(&[path], Duration::from_secs(5));
        assert!(matches!(&out[0], Outcome::Ok(_)), "{out:?}");
    }
}
