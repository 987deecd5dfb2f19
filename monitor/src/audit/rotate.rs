//! A log file rotated by size: before a line would take the file past `max_bytes`, the file
//! becomes `NAME.1` (`NAME.1` becomes `NAME.2`, and so on), and at most `keep` rotated files
//! are kept. Lines are never split, so every file holds whole lines within the bound.
//! Each line is one unbuffered write: a failed write is known to be that line's, so the
//! written and dropped counts stay exact.

use std::{
    fs::{File, OpenOptions},
    io::Write,
    path::{Path, PathBuf},
};

use anyhow::Context as _;

pub struct Rotating {
    path: PathBuf,
    max_bytes: u64,
    keep: u32,
    file: File,
    size: u64,
}

fn open(path: &Path) -> anyhow::Result<(File, u64)> {
    let f = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("opening {}", path.display()))?;
    let size = f
        .metadata()
        .with_context(|| format!("reading the size of {}", path.display()))?
        .len();
    Ok((f, size))
}

impl Rotating {
    pub fn open(path: &Path, max_bytes: u64, keep: u32) -> anyhow::Result<Self> {
        let (file, size) = open(path)?;
        Ok(Self {
            path: path.to_path_buf(),
            max_bytes,
            keep,
            file,
            size,
        })
    }

    fn rotated(&self, n: u32) -> PathBuf {
        let mut s = self.path.clone().into_os_string();
        s.push(format!(".{n}"));
        PathBuf::from(s)
    }

    fn rotate(&mut self) -> anyhow::Result<()> {
        if self.keep == 0 {
            std::fs::remove_file(&self.path)
                .with_context(|| format!("removing {}", self.path.display()))?;
        } else {
            // The oldest falls off the end; a missing one (fewer rotations so far) is fine.
            let _ = std::fs::remove_file(self.rotated(self.keep));
            for n in (1..self.keep).rev() {
                let from = self.rotated(n);
                if from.exists() {
                    std::fs::rename(&from, self.rotated(n + 1))
                        .with_context(|| format!("renaming {}", from.display()))?;
                }
            }
            std::fs::rename(&self.path, self.rotated(1))
                .with_context(|| format!("renaming {}", self.path.display()))?;
        }
        let (file, size) = open(&self.path)?;
        self.file = file;
        self.size = size;
        Ok(())
    }

    /// Writes one line (a newline is added).
    pub fn write_line(&mut self, line: &str) -> anyhow::Result<()> {
        let len = line.len() as u64 + 1;
        if self.size > 0 && self.size + len > self.max_bytes {
            self.rotate()?;
        }
        let mut buf = Vec::with_capacity(line.len() + 1);
        buf.extend_from_slice(line.as_bytes());
        buf.push(b'\n');
        self.file
            .write_all(&buf)
            .with_context(|| format!("writing {}", self.path.display()))?;
        self.size += len;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_n_files_within_the_bound() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        let mut r = Rotating::open(&path, 100, 2).unwrap();
        for i in 0..40 {
            r.write_line(&format!("line {i:03} xxxxxxxxxx")).unwrap();
        }
        let mut names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(names, ["audit.log", "audit.log.1", "audit.log.2"]);
        for n in &names {
            let text = std::fs::read_to_string(dir.path().join(n)).unwrap();
            assert!(text.len() <= 100, "{n} has {} bytes", text.len());
            assert!(text.ends_with('\n'));
        }
        // The newest lines are in the live file, the ones before in .1.
        let live = std::fs::read_to_string(&path).unwrap();
        assert!(live.ends_with("line 039 xxxxxxxxxx\n"));
        let one = std::fs::read_to_string(dir.path().join("audit.log.1")).unwrap();
        let first_live: u32 = live[5..8].parse().unwrap();
        assert!(one.contains(&format!("line {:03} ", first_live - 1)));
    }
}
