//! Classic tracepoints are attached by id, read from tracefs; a fresh host may not have it
//! mounted (and has no debugfs copy either), so the daemon mounts it itself.

use std::{ffi::CString, path::Path};

use anyhow::{bail, Context as _};

const MOUNTS: [&str; 2] = ["/sys/kernel/tracing", "/sys/kernel/debug/tracing"];

fn usable(dir: &Path) -> bool {
    dir.join("events").is_dir()
}

/// Where tracefs is mounted (the first usable of the usual places).
pub fn dir() -> &'static Path {
    Path::new(
        MOUNTS
            .iter()
            .find(|m| usable(Path::new(m)))
            .unwrap_or(&MOUNTS[0]),
    )
}

/// Makes sure tracefs is mounted where aya looks for it. Returns true if it mounted it.
pub fn ensure_mounted() -> anyhow::Result<bool> {
    if MOUNTS.iter().any(|m| usable(Path::new(m))) {
        return Ok(false);
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
    Ok(true)
}
