//! The write-ahead spool of one endpoint: every request body (one collection's samples,
//! encoded and compressed, exactly the bytes to POST) is written to a file of its own in the
//! endpoint's directory, fsynced and renamed into place before the sender sees it, and is
//! deleted only once the endpoint took it (or refused it for good). Files are named by a
//! sequence number, so the sender sends them in order and a restart resumes where the last
//! run stopped; the name also carries the sample count and timestamp, so reopening reads no
//! body. Bounded in bytes: past the bound the oldest bodies are dropped and their samples
//! counted.

use std::{
    collections::BTreeMap,
    fs::{self, File},
    io::Write as _,
    path::{Path, PathBuf},
    sync::{Condvar, Mutex, MutexGuard},
    time::{Duration, Instant},
};

use anyhow::Context as _;

/// One spooled request.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Record {
    pub seq: u64,
    pub samples: u64,
    /// The samples' timestamp, in milliseconds since the Unix epoch.
    pub timestamp_ms: i64,
    pub bytes: u64,
}

impl Record {
    fn file_name(&self) -> String {
        format!("{:020}-{}-{}.rw", self.seq, self.timestamp_ms, self.samples)
    }

    fn parse(name: &str, bytes: u64) -> Option<Self> {
        let mut parts = name.strip_suffix(".rw")?.splitn(3, '-');
        Some(Record {
            seq: parts.next()?.parse().ok()?,
            timestamp_ms: parts.next()?.parse().ok()?,
            samples: parts.next()?.parse().ok()?,
            bytes,
        })
    }
}

#[derive(Default)]
struct Inner {
    records: BTreeMap<u64, Record>,
    bytes: u64,
    samples: u64,
    next: u64,
    dropped_samples: u64,
    /// Dropping since the sender last took a record: logged once, not at every collection.
    dropping: bool,
}

pub struct Spool {
    dir: PathBuf,
    max_bytes: u64,
    inner: Mutex<Inner>,
    changed: Condvar,
}

/// What the metrics show of a spool.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Stats {
    pub records: usize,
    pub samples: u64,
    pub bytes: u64,
    pub oldest_ms: Option<i64>,
    /// The newest record's timestamp (so a restart never stamps samples older than it).
    pub newest_ms: Option<i64>,
    pub dropped_samples: u64,
}

fn sync_dir(dir: &Path) -> anyhow::Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .with_context(|| format!("fsync of {}", dir.display()))
}

impl Spool {
    /// Opens (creating) `dir` and takes over what an earlier run left unsent.
    pub fn open(dir: &Path, max_bytes: u64) -> anyhow::Result<Self> {
        fs::create_dir_all(dir)
            .with_context(|| format!("cannot create the remote write spool {}", dir.display()))?;
        let mut inner = Inner::default();
        let entries = fs::read_dir(dir)
            .with_context(|| format!("cannot read the remote write spool {}", dir.display()))?;
        for e in entries {
            let e = e.with_context(|| format!("reading {}", dir.display()))?;
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with(".tmp") {
                // Never renamed into place: its write never returned.
                let _ = fs::remove_file(e.path());
                continue;
            }
            let bytes = e.metadata().map(|m| m.len()).unwrap_or(0);
            let Some(r) = Record::parse(&name, bytes) else {
                continue;
            };
            inner.bytes += r.bytes;
            inner.samples += r.samples;
            inner.records.insert(r.seq, r);
        }
        inner.next = inner.records.keys().next_back().map_or(0, |s| s + 1);
        if !inner.records.is_empty() {
            tracing::info!(
                dir = %dir.display(),
                requests = inner.records.len(),
                samples = inner.samples,
                "unsent remote write samples from an earlier run will be sent"
            );
        }
        let spool = Self {
            dir: dir.to_path_buf(),
            max_bytes,
            inner: Mutex::new(inner),
            changed: Condvar::new(),
        };
        // The bound may have shrunk since.
        let mut inner = spool.lock();
        spool.bound(&mut inner);
        drop(inner);
        Ok(spool)
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Writes `body` durably, then makes it visible to the sender; drops the oldest records
    /// if the spool is then over its bound.
    pub fn push(&self, body: &[u8], samples: u64, timestamp_ms: i64) -> anyhow::Result<()> {
        let mut inner = self.lock();
        let r = Record {
            seq: inner.next,
            samples,
            timestamp_ms,
            bytes: body.len() as u64,
        };
        inner.next += 1;
        let tmp = self.dir.join(format!(".tmp{}", r.seq));
        let path = self.dir.join(r.file_name());
        (|| -> std::io::Result<()> {
            let mut f = File::create(&tmp)?;
            f.write_all(body)?;
            f.sync_all()?;
            fs::rename(&tmp, &path)
        })()
        .inspect_err(|_| {
            let _ = fs::remove_file(&tmp);
        })
        .with_context(|| format!("writing {}", path.display()))?;
        sync_dir(&self.dir)?;
        inner.bytes += r.bytes;
        inner.samples += r.samples;
        inner.records.insert(r.seq, r);
        self.bound(&mut inner);
        drop(inner);
        self.changed.notify_all();
        Ok(())
    }

    fn bound(&self, inner: &mut Inner) {
        while inner.bytes > self.max_bytes {
            let Some((_, old)) = inner.records.pop_first() else {
                break;
            };
            if !inner.dropping {
                inner.dropping = true;
                tracing::warn!(
                    dir = %self.dir.display(),
                    max_bytes = self.max_bytes,
                    "remote write spool full: dropping the oldest samples until the endpoint takes \
                     some (counted in monitor_remote_write_samples_dropped_total)"
                );
            }
            let _ = fs::remove_file(self.dir.join(old.file_name()));
            inner.bytes -= old.bytes;
            inner.samples -= old.samples;
            inner.dropped_samples += old.samples;
        }
    }

    /// The oldest record and its body, waiting up to `timeout` for one. A body that cannot
    /// be read is dropped (and counted), and the next one taken.
    pub fn oldest(&self, timeout: Duration) -> Option<(Record, Vec<u8>)> {
        self.next(None, timeout)
    }

    /// The first record after the one numbered `after` (the oldest for `None`) and its
    /// body, waiting up to `timeout` for one, as `oldest` does.
    pub fn next(&self, after: Option<u64>, timeout: Duration) -> Option<(Record, Vec<u8>)> {
        let deadline = Instant::now() + timeout;
        let mut inner = self.lock();
        loop {
            let found = match after {
                Some(seq) => inner.records.range(seq + 1..).next().map(|(_, r)| *r),
                None => inner.records.values().next().copied(),
            };
            let Some(r) = found else {
                let now = Instant::now();
                if now >= deadline {
                    return None;
                }
                inner = self
                    .changed
                    .wait_timeout(inner, deadline - now)
                    .unwrap_or_else(|p| p.into_inner())
                    .0;
                continue;
            };
            let path = self.dir.join(r.file_name());
            match fs::read(&path) {
                Ok(body) => return Some((r, body)),
                Err(e) => {
                    tracing::error!(file = %path.display(), error = %e, "unreadable remote write spool file; its samples are dropped");
                    let _ = fs::rename(&path, path.with_extension("bad"));
                    inner.records.remove(&r.seq);
                    inner.bytes -= r.bytes;
                    inner.samples -= r.samples;
                    inner.dropped_samples += r.samples;
                }
            }
        }
    }

    /// Removes a sent (or refused) record, from disk first; false if it was dropped
    /// meanwhile (its samples counted as dropped then).
    pub fn remove(&self, r: &Record) -> bool {
        let mut inner = self.lock();
        if inner.records.remove(&r.seq).is_none() {
            return false;
        }
        let path = self.dir.join(r.file_name());
        if let Err(e) = fs::remove_file(&path) {
            tracing::error!(file = %path.display(), error = %e, "cannot remove a sent remote write request; it will be sent again after a restart");
        }
        inner.bytes -= r.bytes;
        inner.samples -= r.samples;
        inner.dropping = false;
        true
    }

    pub fn contains(&self, r: &Record) -> bool {
        self.lock().records.contains_key(&r.seq)
    }

    pub fn stats(&self) -> Stats {
        let inner = self.lock();
        Stats {
            records: inner.records.len(),
            samples: inner.samples,
            bytes: inner.bytes,
            oldest_ms: inner.records.values().next().map(|r| r.timestamp_ms),
            newest_ms: inner.records.values().next_back().map(|r| r.timestamp_ms),
            dropped_samples: inner.dropped_samples,
        }
    }

    pub fn max_bytes(&self) -> u64 {
        self.max_bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_order_across_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let s = Spool::open(dir.path(), 1000).unwrap();
            s.push(b"first", 2, 1000).unwrap();
            s.push(b"second", 3, 2000).unwrap();
            s.push(b"third", 4, 3000).unwrap();
            let (r, body) = s.oldest(Duration::ZERO).unwrap();
            assert_eq!(body, b"first");
            assert!(s.remove(&r));
            assert!(!s.remove(&r));
        }
        // A write that never finished.
        std::fs::write(dir.path().join(".tmp9"), b"half").unwrap();
        let s = Spool::open(dir.path(), 1000).unwrap();
        assert!(!dir.path().join(".tmp9").exists());
        assert_eq!(
            s.stats(),
            Stats {
                records: 2,
                samples: 7,
                bytes: 11,
                oldest_ms: Some(2000),
                newest_ms: Some(3000),
                dropped_samples: 0
            }
        );
        let (r, body) = s.oldest(Duration::ZERO).unwrap();
        assert_eq!(
            (body.as_slice(), r.samples, r.timestamp_ms),
            (&b"second"[..], 3, 2000)
        );
        s.remove(&r);
        s.push(b"fourth", 5, 4000).unwrap();
        let (r, body) = s.oldest(Duration::ZERO).unwrap();
        assert_eq!(body, b"third");
        s.remove(&r);
        assert_eq!(s.oldest(Duration::ZERO).unwrap().1, b"fourth");
    }

    #[test]
    fn next_takes_the_record_after_one() {
        let dir = tempfile::tempdir().unwrap();
        let s = Spool::open(dir.path(), 1000).unwrap();
        s.push(b"a", 1, 10).unwrap();
        s.push(b"b", 1, 20).unwrap();
        let (first, _) = s.oldest(Duration::ZERO).unwrap();
        let (second, body) = s.next(Some(first.seq), Duration::ZERO).unwrap();
        assert_eq!((body.as_slice(), second.timestamp_ms), (&b"b"[..], 20));
        assert!(s
            .next(Some(second.seq), Duration::from_millis(10))
            .is_none());
        // Taken, not removed: still the oldest.
        assert_eq!(s.oldest(Duration::ZERO).unwrap().0, first);
    }

    #[test]
    fn full_drops_the_oldest_and_counts_it() {
        let dir = tempfile::tempdir().unwrap();
        let s = Spool::open(dir.path(), 10).unwrap();
        s.push(b"aaaa", 1, 1).unwrap();
        s.push(b"bbbb", 2, 2).unwrap();
        let (in_flight, _) = s.oldest(Duration::ZERO).unwrap();
        s.push(b"cccc", 4, 3).unwrap();
        let st = s.stats();
        assert_eq!((st.records, st.bytes, st.samples), (2, 8, 6));
        assert_eq!(st.dropped_samples, 1);
        assert_eq!(st.oldest_ms, Some(2));
        // Sent while it was being dropped: not counted twice.
        assert!(!s.remove(&in_flight));
        assert!(!s.contains(&in_flight));
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 2);
        // A smaller bound at the next start drops more.
        drop(s);
        let s = Spool::open(dir.path(), 5).unwrap();
        let st = s.stats();
        assert_eq!((st.records, st.samples, st.dropped_samples), (1, 4, 2));
    }
}
