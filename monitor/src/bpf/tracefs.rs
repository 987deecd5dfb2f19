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
