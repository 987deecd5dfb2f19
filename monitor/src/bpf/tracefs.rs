//! Classic tracepoints are attached by id, read from tracefs; a fresh host may not have it
//! mounted (and has no debugfs copy either), so the daemon mounts it itself.

use std::{
    ffi::CString,
    path::{Path, PathBuf},
};

use anyhow::{bail, Context as _};

/// Where aya looks for tracefs, in order; the first is where the daemon mounts it.
pub const MOUNTS: [&str; 2] = ["/sys/kernel/tracing", "/sys/kernel/debug/tracing"];

fn usable(dir: &Path) -> bool {
    dir.join("events").is_dir()
}

/// Makes sure tracefs is mounted where aya looks for it. Returns where it is, and whether
/// this call mounted it.
pub fn ensure_mounted() -> anyhow::Result<(PathBuf, bool)> {
    if let Some(m) = MOUNTS.iter().map(Path::new).find(|m| usable(m)) {
        return Ok((m.to_path_buf(), false));
    }
    let target = MOUNTS[0];
    let c = |s: &str| CString::new(s).expect("no NUL in constant");
    let (src, dst, fstype) = (c("nodev"), c(target), c("tracefs"));
    // SAFETY: all pointers are valid NUL-terminated strings; a null data argument is allowed.
    let rc = unsafe {
        libc::mount(
            src.as_ptr(),
            dst.as_ptr(),
            fstype.as_ptr(),
            0,
            std::ptr::null(),
        )
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error())
            .with_context(|| format!("mounting tracefs on {target}"));
    }
    if !usable(Path::new(target)) {
        bail!("tracefs mounted on {target} but it has no events directory");
    }
    Ok((PathBuf::from(target), true))
}

/// The fields of one tracepoint's record: name -> byte offset.
#[derive(Debug, Default)]
pub struct Format(Vec<(String, u32)>);

impl Format {
    /// Parses a tracefs `format` file: lines like
    /// `field:unsigned long total_vm; offset:16; size:8; signed:0;` (tab-separated).
    pub fn parse(text: &str) -> Self {
        let mut out = Vec::new();
        for line in text.lines() {
            let Some(decl) = line.trim().strip_prefix("field:") else {
                continue;
            };
            let mut parts = decl.split(';');
            let decl = parts.next().unwrap_or_default();
            let Some(offset) = parts
                .find_map(|p| p.trim().strip_prefix("offset:"))
                .and_then(|o| o.parse::<u32>().ok())
            else {
                continue;
            };
            // The name is the last identifier of the declaration, before any `[N]`.
            let name = decl
                .split_whitespace()
                .last()
                .unwrap_or_default()
                .split('[')
                .next()
                .unwrap_or_default();
            out.push((name.to_string(), offset));
        }
        Self(out)
    }

    pub fn read(tracefs: &Path, category: &str, event: &str) -> anyhow::Result<Self> {
        let path = tracefs
            .join("events")
            .join(category)
            .join(event)
            .join("format");
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        Ok(Self::parse(&text))
    }

    /// As `read`, or no fields when the event cannot be read (a kernel without it: its
    /// program will not attach either).
    pub fn read_or_empty(tracefs: &Path, category: &str, event: &str) -> Self {
        Self::read(tracefs, category, event).unwrap_or_else(|e| {
            tracing::debug!(error = format!("{e:#}"), "tracepoint format unavailable");
            Self::default()
        })
    }

    /// The field's offset, if the record has it.
    pub fn get(&self, name: &str) -> Option<u32> {
        self.0.iter().find(|(n, _)| n == name).map(|(_, o)| *o)
    }

    /// The field's offset, 0 when the record has no such field (0 is never a field's own
    /// offset: the common header is there).
    pub fn offset(&self, name: &str) -> u32 {
        self.get(name).unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_fields_by_name() {
        let f = Format::parse(
            "name: mark_victim\nID: 1\nformat:\n\
             \tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;\n\
             \tfield:int pid;\toffset:8;\tsize:4;\tsigned:1;\n\
             \tfield:__data_loc char[] comm;\toffset:12;\tsize:4;\tsigned:0;\n\
             \tfield:__u8 saddr_v6[16];\toffset:40;\tsize:16;\tsigned:0;\n\n\
             print fmt: \"pid=%d\", REC->pid\n",
        );
        assert_eq!(f.offset("pid"), 8);
        assert_eq!(f.offset("comm"), 12);
        assert_eq!(f.offset("saddr_v6"), 40);
        assert_eq!(f.offset("total_vm"), 0);
    }
}
