//! Handing back, once the programs are loaded and again once start-up is over, the pages of
//! the daemon's own binary that only start-up used (the embedded kernel object among them).
//! Code and constants are mapped from the binary's file; what start-up ran (argument
//! parsing, the kernel BTF parse, loading and verifying the programs, the first walk of
//! every process) stays resident for good, and was most of the daemon's resident
//! memory (10 of 21 MiB at 1,000 processes). Dropping the mappings' page-table entries
//! costs nothing lasting: the steady state's own code faults back in from the page cache at
//! its next use, so the resident set becomes what the daemon runs. (The kernel may drop
//! these clean pages under memory pressure at any time in the same way, so nothing here
//! depends on the file more than running it already does.)

/// Read-only private mappings of the file at `exe` that hold no page of their own, in a
/// `/proc/<pid>/smaps` text: (start, end). A mapping read-only now may have been written
/// before: the relocated part of the binary (`PT_GNU_RELRO`) is made read-only after the
/// loader writes it, and its pages are private copies (`Anonymous`), which dropping would
/// lose.
pub fn read_only_ranges(smaps: &str, exe: &str) -> Vec<(usize, usize)> {
    // Each of our mappings, and whether its Anonymous line said 0 (none yet: not known clean).
    let mut found: Vec<(usize, usize, Option<bool>)> = Vec::new();
    let mut ours = false;
    for l in smaps.lines() {
        let mut f = l.split_whitespace();
        let Some(first) = f.next() else { continue };
        if first == "Anonymous:" {
            if let Some(m) = found.last_mut().filter(|_| ours) {
                m.2 = Some(f.next() == Some("0"));
            }
            continue;
        }
        let Some((a, b)) = first.split_once('-').filter(|_| !first.ends_with(':')) else {
            continue;
        };
        // A mapping's header: private, not writable, and the file itself (a path followed by
        // more, such as " (deleted)", is not).
        let perms = f.next().unwrap_or("");
        let path = f.nth(3);
        ours = path == Some(exe)
            && f.next().is_none()
            && perms.as_bytes().get(1) == Some(&b'-')
            && perms.ends_with('p');
        if let (true, Ok(a), Ok(b)) = (
            ours,
            usize::from_str_radix(a, 16),
            usize::from_str_radix(b, 16),
        ) {
            found.push((a, b, None));
        } else {
            ours = false;
        }
    }
    found
        .into_iter()
        .filter(|m| m.0 < m.1 && m.2 == Some(true))
        .map(|(a, b, _)| (a, b))
        .collect()
}

/// Drops the resident pages of this binary's read-only mappings; what fails is logged at
/// debug level (only the memory figure depends on it).
pub fn release() {
    let exe = match std::fs::read_link("/proc/self/exe") {
        Ok(p) => p.to_string_lossy().into_owned(),
        Err(e) => {
            tracing::debug!(error = %e, "releasing start-up pages: reading /proc/self/exe");
            return;
        }
    };
    let smaps = match std::fs::read_to_string("/proc/self/smaps") {
        Ok(m) => m,
        Err(e) => {
            tracing::debug!(error = %e, "releasing start-up pages: reading /proc/self/smaps");
            return;
        }
    };
    for (start, end) in read_only_ranges(&smaps, &exe) {
        // SAFETY: [start, end) is a whole read-only private mapping of this binary's file
        // holding no private page (smaps' Anonymous: 0 kB), so MADV_DONTNEED only drops
        // page-table entries: a later access (this very code's next instruction included)
        // faults the same bytes back in from the file.
        let r =
            unsafe { libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_DONTNEED) };
        if r != 0 {
            tracing::debug!(
                error = %std::io::Error::last_os_error(),
                "releasing start-up pages at {start:#x}"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_binarys_clean_read_only_private_mappings() {
        let smaps = "\
55d0c0000000-55d0c0620000 r--p 00000000 fd:01 123 /usr/bin/monitor
Rss:                1000 kB
Anonymous:             0 kB
55d0c0620000-55d0c1075000 r-xp 00620000 fd:01 123 /usr/bin/monitor
Rss:                9000 kB
Anonymous:             0 kB
55d0c1075000-55d0c1100000 r--p 01073000 fd:01 123 /usr/bin/monitor
Anonymous:           556 kB
55d0c1100000-55d0c110e000 rw-p 01073000 fd:01 123 /usr/bin/monitor
Anonymous:             8 kB
55d0c2000000-55d0c3000000 rw-p 00000000 00:00 0 [heap]
Anonymous:          5800 kB
7f0000000000-7f0000100000 r-xp 00000000 fd:01 456 /usr/lib/x86_64-linux-gnu/libc.so.6
Anonymous:             0 kB
7f0000200000-7f0000300000 r--s 00000000 00:0e 789 /usr/bin/monitor
Anonymous:             0 kB
7f0000300000-7f0000301000 r--p 00000000 fd:01 123 /usr/bin/monitor (deleted)
Anonymous:             0 kB
7f0000400000-7f0000401000 r--p 00000000 fd:01 123 /usr/bin/monitor
";
        // The last mapping has no Anonymous line: not known clean, left alone.
        assert_eq!(
            read_only_ranges(smaps, "/usr/bin/monitor"),
            vec![
                (0x55d0_c000_0000, 0x55d0_c062_0000),
                (0x55d0_c062_0000, 0x55d0_c107_5000)
            ]
        );
        assert!(read_only_ranges(smaps, "/usr/bin/other").is_empty());
        assert!(read_only_ranges("garbage\n\n1-2 r--p", "/x").is_empty());
    }

    /// On this very process: its code keeps running after its pages are dropped.
    #[test]
    fn the_process_runs_on_after_release() {
        release();
        let v: Vec<u64> = (0..1000).map(|i| i * i).collect();
        assert_eq!(v.iter().sum::<u64>(), 332_833_500);
    }
}
