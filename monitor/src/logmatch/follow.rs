//! Following one file like `tail -F`: new lines are read as they are appended; a rename
//! (rotation) is noticed when the path names another inode, and the old file is read to its
//! end before the new one is read from its start; a truncation is noticed when the file is
//! shorter than what was read, and reading starts over; a file that does not exist yet is
//! picked up when it appears.

use std::{
    fs::File,
    io::{Read, Seek, SeekFrom},
    os::unix::fs::MetadataExt as _,
    path::{Path, PathBuf},
};

/// Longest line kept; a longer one is cut (the rest of it still counts as the same line).
const MAX_LINE: usize = 64 * 1024;

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Events {
    pub rotations: u64,
    pub truncations: u64,
}

pub struct Follower {
    path: PathBuf,
    file: Option<(File, u64, u64)>, // (file, dev, ino)
    offset: u64,
    partial: Vec<u8>,
    /// Whether the partial line was cut at `MAX_LINE`.
    overlong: bool,
}

impl Follower {
    /// `from_end`: start at the end of a file that already exists (its old lines are not
    /// counted); files that appear later are always read from their start.
    pub fn new(path: &Path, from_end: bool) -> Self {
        let mut f = Self {
            path: path.to_path_buf(),
            file: None,
            offset: 0,
            partial: Vec::new(),
            overlong: false,
        };
        if f.open() && from_end {
            if let Some((file, ..)) = &mut f.file {
                f.offset = file.seek(SeekFrom::End(0)).unwrap_or(0);
            }
        }
        f
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn is_open(&self) -> bool {
        self.file.is_some()
    }

    fn open(&mut self) -> bool {
        match File::open(&self.path).and_then(|f| {
            let m = f.metadata()?;
            Ok((f, m.dev(), m.ino()))
        }) {
            Ok(f) => {
                self.file = Some(f);
                self.offset = 0;
                true
            }
            Err(_) => false,
        }
    }

    /// Reads what is new, handing each complete line to `line`.
    pub fn poll(&mut self, mut line: impl FnMut(&[u8])) -> Events {
        let mut ev = Events::default();
        if self.file.is_none() && !self.open() {
            return ev;
        }
        // Truncated in place (copytruncate): start over.
        if let Some((f, ..)) = &self.file {
            if f.metadata().map(|m| m.len()).unwrap_or(0) < self.offset {
                ev.truncations += 1;
                self.offset = 0;
                self.partial.clear();
                self.overlong = false;
            }
        }
        self.read_to_end(&mut line);
        // Renamed away (rotation) or deleted: once the path names another file, finish the
        // old one (done above) and switch, reading the new one from its start.
        let now = std::fs::metadata(&self.path)
            .ok()
            .map(|m| (m.dev(), m.ino()));
        let moved = match (&self.file, now) {
            (Some((_, dev, ino)), Some(n)) => n != (*dev, *ino),
            _ => false,
        };
        if moved {
            ev.rotations += 1;
            // A last line without its newline still ends with the file.
            if !self.partial.is_empty() {
                line(&self.partial);
                self.partial.clear();
                self.overlong = false;
            }
            if self.open() {
                self.read_to_end(&mut line);
            }
        }
        ev
    }

    fn read_to_end(&mut self, line: &mut impl FnMut(&[u8])) {
        let Some((f, ..)) = &mut self.file else {
            return;
        };
        if f.seek(SeekFrom::Start(self.offset)).is_err() {
            return;
        }
        let mut buf = [0u8; 64 * 1024];
        loop {
            let n = match f.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            self.offset += n as u64;
            let mut rest = &buf[..n];
            while let Some(i) = rest.iter().position(|&b| b == b'\n') {
                if self.partial.is_empty() && !self.overlong {
                    line(&rest[..i]);
                } else {
                    push(&mut self.partial, &mut self.overlong, &rest[..i]);
                    line(&self.partial);
                    self.partial.clear();
                    self.overlong = false;
                }
                rest = &rest[i + 1..];
            }
            push(&mut self.partial, &mut self.overlong, rest);
        }
    }
}

/// Adds to a line being assembled, keeping at most `MAX_LINE` bytes of it.
fn push(partial: &mut Vec<u8>, overlong: &mut bool, bytes: &[u8]) {
    let room = MAX_LINE.saturating_sub(partial.len());
    if bytes.len() > room {
        *overlong = true;
    }
    partial.extend_from_slice(&bytes[..bytes.len().min(room)]);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn lines(f: &mut Follower) -> (Vec<String>, Events) {
        let mut out = Vec::new();
        let ev = f.poll(|l| out.push(String::from_utf8_lossy(l).into_owned()));
        (out, ev)
    }

    fn append(p: &Path, s: &str) {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(p)
            .unwrap();
        f.write_all(s.as_bytes()).unwrap();
    }

    #[test]
    fn follows_appends_rotation_truncation_and_late_files() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("app.log");
        let mut f = Follower::new(&p, true);
        assert!(!f.is_open());
        append(&p, "a\nb\npart");
        assert_eq!(lines(&mut f).0, ["a", "b"]);
        append(&p, "ial\n");
        assert_eq!(lines(&mut f).0, ["partial"]);
        // Rotation: more lines land in the old file after the rename, then a new file.
        append(&p, "c\n");
        std::fs::rename(&p, dir.path().join("app.log.1")).unwrap();
        append(&dir.path().join("app.log.1"), "d\n");
        append(&p, "e\n");
        let (l, ev) = lines(&mut f);
        assert_eq!(l, ["c", "d", "e"]);
        assert_eq!(ev.rotations, 1);
        // Truncation in place.
        append(&p, "fffffffffff\n");
        assert_eq!(lines(&mut f).0, ["fffffffffff"]);
        std::fs::OpenOptions::new()
            .write(true)
            .truncate(true)
            .open(&p)
            .unwrap();
        append(&p, "g\n");
        let (l, ev) = lines(&mut f);
        assert_eq!(l, ["g"]);
        assert_eq!(ev.truncations, 1);
    }

    #[test]
    fn starts_at_the_end_of_an_existing_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.log");
        append(&p, "old\n");
        let mut f = Follower::new(&p, true);
        append(&p, "new\n");
        assert_eq!(lines(&mut f).0, ["new"]);
        let mut g = Follower::new(&p, false);
        assert_eq!(lines(&mut g).0, ["old", "new"]);
    }
}
