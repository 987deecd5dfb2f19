//! statvfs that never blocks a scrape: each call runs on its own thread and is waited for
//! up to a deadline. A call still running then (a dead NFS server, a FUSE daemon that never
//! answers) marks its mount stuck; a stuck mount is skipped until its call returns.

use std::{
    collections::HashSet,
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

/// Mount points whose statvfs is still running.
#[derive(Clone, Default)]
pub struct Stuck(Arc<Mutex<HashSet<String>>>);

impl Stuck {
    fn set(&self) -> std::sync::MutexGuard<'_, HashSet<String>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Stats every path in parallel, waiting at most `timeout` in all.
    pub fn stat_all(&self, paths: &[String], timeout: Duration) -> Vec<Outcome> {
        let deadline = Instant::now() + timeout;
        let pending: Vec<Option<mpsc::Receiver<std::io::Result<Usage>>>> = paths
            .iter()
            .map(|p| {
                if !self.set().insert(p.clone()) {
                    return None; // still stuck from an earlier scrape
                }
                let (tx, rx) = mpsc::channel();
                let (path, stuck) = (p.clone(), self.clone());
                let spawned = std::thread::Builder::new()
                    .name("statvfs".into())
                    .spawn(move || {
                        let r = statvfs(&path);
                        stuck.set().remove(&path);
                        let _ = tx.send(r);
                    });
                match spawned {
                    Ok(_) => Some(rx),
                    Err(e) => {
                        self.set().remove(p);
                        let (tx, rx) = mpsc::channel();
                        let _ = tx.send(Err(e));
                        Some(rx)
                    }
                }
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
}
