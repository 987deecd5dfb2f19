//! The notification queue, kept on disk so nothing waiting is lost to a crash or restart:
//! each notification is one file in `<state-dir>/queue`, written to a temporary name,
//! fsynced, renamed into place and the directory fsynced before `push` returns (a
//! write-ahead record); it is deleted only once delivered (or refused with a 4xx). Files
//! are named by a sequence number, so each receiver's notifications go out in order.
//! Bounded: past `max` entries the oldest is dropped and counted.

use std::{
    collections::BTreeMap,
    fs::{self, File},
    io::Write as _,
    path::{Path, PathBuf},
    sync::{Condvar, Mutex},
};

use anyhow::Context as _;
use serde::{Deserialize, Serialize};

use super::notify::payload::Notification;

#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct Entry {
    pub receiver: String,
    pub notification: Notification,
}

struct Inner {
    entries: BTreeMap<u64, Entry>,
    next: u64,
    dropped: u64,
}

pub struct Queue {
    dir: PathBuf,
    max: usize,
    inner: Mutex<Inner>,
    changed: Condvar,
}

fn file_name(seq: u64) -> String {
    format!("{seq:020}.json")
}

fn sync_dir(dir: &Path) -> anyhow::Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .with_context(|| format!("fsync of {}", dir.display()))
}

impl Queue {
    /// Opens (creating) `<state_dir>/queue` and reloads what an earlier run left undelivered.
    pub fn open(state_dir: &Path, max: usize) -> anyhow::Result<Self> {
        let dir = state_dir.join("queue");
        fs::create_dir_all(&dir).with_context(|| {
            format!("cannot create the alert queue directory {}", dir.display())
        })?;
        let mut entries = BTreeMap::new();
        for e in fs::read_dir(&dir).with_context(|| format!("reading {}", dir.display()))? {
            let path = e?.path();
            let name = path
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default();
            if name.starts_with(".tmp") {
                // Never renamed into place: its push never returned.
                let _ = fs::remove_file(&path);
                continue;
            }
            let Some(seq) = name
                .strip_suffix(".json")
                .and_then(|s| s.parse::<u64>().ok())
            else {
                continue;
            };
            let text = fs::read_to_string(&path)
                .with_context(|| format!("reading queued notification {}", path.display()))?;
            match serde_json::from_str::<Entry>(&text) {
                Ok(entry) => {
                    entries.insert(seq, entry);
                }
                Err(e) => {
                    tracing::error!(file = %path.display(), error = %e, "unreadable queued notification; moved aside");
                    let _ = fs::rename(&path, path.with_extension("bad"));
                }
            }
        }
        if !entries.is_empty() {
            tracing::info!(notifications = entries.len(), dir = %dir.display(), "undelivered notifications from an earlier run will be sent");
        }
        let next = entries.keys().next_back().map_or(0, |s| s + 1);
        Ok(Self {
            dir,
            max,
            inner: Mutex::new(Inner {
                entries,
                next,
                dropped: 0,
            }),
            changed: Condvar::new(),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Writes the notification durably, then makes it visible to its receiver's sender.
    pub fn push(&self, entry: Entry) -> anyhow::Result<()> {
        let mut inner = self.lock();
        let seq = inner.next;
        inner.next += 1;
        let body = serde_json::to_vec(&entry).context("encoding a notification")?;
        let tmp = self.dir.join(format!(".tmp{seq}"));
        let path = self.dir.join(file_name(seq));
        (|| -> std::io::Result<()> {
            let mut f = File::create(&tmp)?;
            f.write_all(&body)?;
            f.sync_all()?;
            fs::rename(&tmp, &path)
        })()
        .with_context(|| format!("writing {}", path.display()))?;
        sync_dir(&self.dir)?;
        inner.entries.insert(seq, entry);
        while inner.entries.len() > self.max {
            let Some((&old, e)) = inner.entries.iter().next() else {
                break;
            };
            tracing::warn!(receiver = %e.receiver, "alert queue full: dropping the oldest notification");
            let _ = fs::remove_file(self.dir.join(file_name(old)));
            inner.entries.remove(&old);
            inner.dropped += 1;
        }
        drop(inner);
        self.changed.notify_all();
        Ok(())
    }

    /// The oldest notification for `receiver`, waiting up to `timeout` for one.
    pub fn next_for(&self, receiver: &str, timeout: std::time::Duration) -> Option<(u64, Entry)> {
        let mut inner = self.lock();
        let find = |i: &Inner| {
            i.entries
                .iter()
                .find(|(_, e)| e.receiver == receiver)
                .map(|(s, e)| (*s, e.clone()))
        };
        if let Some(found) = find(&inner) {
            return Some(found);
        }
        inner = self
            .changed
            .wait_timeout(inner, timeout)
            .unwrap_or_else(|p| p.into_inner())
            .0;
        find(&inner)
    }

    /// Whether `seq` is still queued (the queue may have dropped it while it was being sent).
    pub fn contains(&self, seq: u64) -> bool {
        self.lock().entries.contains_key(&seq)
    }

    /// Removes a delivered (or refused) notification, from disk first.
    pub fn remove(&self, seq: u64) {
        let path = self.dir.join(file_name(seq));
        if let Err(e) = fs::remove_file(&path) {
            if e.kind() != std::io::ErrorKind::NotFound {
                tracing::error!(file = %path.display(), error = %e, "cannot remove a delivered notification; it will be sent again after a restart");
            }
        }
        self.lock().entries.remove(&seq);
    }

    /// (length by receiver, dropped so far).
    pub fn stats(&self) -> (BTreeMap<String, usize>, u64) {
        let inner = self.lock();
        let mut by = BTreeMap::new();
        for e in inner.entries.values() {
            *by.entry(e.receiver.clone()).or_insert(0) += 1;
        }
        (by, inner.dropped)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(receiver: &str) -> Entry {
        Entry {
            receiver: receiver.to_string(),
            notification: Notification::new(
                receiver,
                "k".into(),
                Default::default(),
                "http://x",
                vec![],
            ),
        }
    }

    #[test]
    fn survives_reopen_in_order_and_bounded() {
        let dir = tempfile::tempdir().unwrap();
        {
            let q = Queue::open(dir.path(), 3).unwrap();
            for r in ["a", "b", "a", "a"] {
                q.push(entry(r)).unwrap();
            }
            let (by, dropped) = q.stats();
            assert_eq!(dropped, 1);
            assert_eq!(by["a"], 2);
            let (seq, _) = q.next_for("b", Default::default()).unwrap();
            q.remove(seq);
        }
        let q = Queue::open(dir.path(), 3).unwrap();
        let (by, _) = q.stats();
        assert_eq!(by.get("b"), None);
        assert_eq!(by["a"], 2);
        let (first, _) = q.next_for("a", Default::default()).unwrap();
        q.remove(first);
        let (second, _) = q.next_for("a", Default::default()).unwrap();
        assert!(second > first);
        q.push(entry("a")).unwrap();
        assert!(q.next_for("a", Default::default()).unwrap().0 == second);
    }
}
