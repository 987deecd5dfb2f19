//! `--capabilities.keep`: once the kernel programs are attached, the daemon gives up every
//! capability it will not use again, so a flaw in what runs for days after (the HTTP server,
//! the parsers, the receivers) cannot load programs or read kernel memory.
//!
//! Capabilities belong to each thread: the drop covers the calling thread and every thread it
//! starts afterwards. Threads started earlier drop their own (see `drop_all_here`), and the
//! drop checks every thread of the process and warns about any that kept more.

use std::collections::BTreeSet;

use anyhow::Context as _;
use caps::{CapSet, Capability, CapsHashSet};

/// What the daemon keeps after start.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Keep {
    /// What it still uses (see `needed`).
    Needed,
    /// Everything it was started with: nothing is dropped.
    All,
    /// Exactly these (none when empty), where it had them.
    Only(Vec<Capability>),
}

/// Parses `needed`, `all`, `none` or a comma-separated list such as `cap_sys_ptrace,bpf`.
pub fn parse_keep(s: &str) -> Result<Keep, String> {
    match s.trim() {
        "needed" => Ok(Keep::Needed),
        "all" => Ok(Keep::All),
        "none" => Ok(Keep::Only(Vec::new())),
        list => list
            .split(',')
            .map(|name| {
                caps::to_canonical(name.trim())
                    .parse::<Capability>()
                    .map_err(|_| {
                        format!(
                            "unknown capability {:?} (expected needed, all, none or names such \
                             as cap_sys_ptrace,cap_dac_read_search)",
                            name.trim()
                        )
                    })
            })
            .collect::<Result<_, _>>()
            .map(Keep::Only),
    }
}

/// Another user's `/proc/<pid>/exe`, `io` and `fd` sit behind the kernel's ptrace access
/// check (CAP_SYS_PTRACE); files in directories it cannot search need CAP_DAC_READ_SEARCH.
/// Both are what a daemon not running as root needs for the process table.
const PROC_READING: [Capability; 2] = [Capability::CAP_DAC_READ_SEARCH, Capability::CAP_SYS_PTRACE];

/// The default keep set: reading `/proc`, plus whatever bpf(2) still asks for. Map reads go
/// through descriptors already open, which needs no capability since 6.5; before it, with
/// `kernel.unprivileged_bpf_disabled` set, every bpf(2) call wants CAP_BPF (CAP_SYS_ADMIN
/// before 5.8). Probing the kernel answers that for this machine rather than guessing from
/// its version.
fn needed() -> CapsHashSet {
    let mut set: CapsHashSet = PROC_READING.into_iter().collect();
    if bpf_wants_capability() {
        let supported = caps::runtime::thread_all_supported();
        set.insert(if supported.contains(&Capability::CAP_BPF) {
            Capability::CAP_BPF
        } else {
            Capability::CAP_SYS_ADMIN
        });
    }
    set
}

/// Asks the kernel, from a short-lived thread without capabilities, for the next key of a
/// map descriptor that cannot exist: EBADF means the call reached the descriptor lookup
/// without any capability check, EPERM means the kernel refused the unprivileged call.
fn bpf_wants_capability() -> bool {
    const BPF_MAP_GET_NEXT_KEY: libc::c_long = 4;
    std::thread::scope(|s| {
        s.spawn(|| {
            if caps::clear(None, CapSet::Effective).is_err() {
                return true;
            }
            // union bpf_attr, zeroed but for map_fd (the first field): -1, never open.
            let mut attr = [0u64; 16];
            attr[0] = u64::from(u32::MAX);
            // SAFETY: the kernel reads at most `size` bytes from `attr`, which outlives the
            // call; with a descriptor that cannot be open it writes nothing.
            let r = unsafe {
                libc::syscall(
                    libc::SYS_bpf,
                    BPF_MAP_GET_NEXT_KEY,
                    attr.as_mut_ptr(),
                    std::mem::size_of_val(&attr),
                )
            };
            r < 0 && std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
        })
        .join()
        .unwrap_or(true)
    })
}

/// Drops, in the calling thread, every capability but those `keep` names (and had), from the
/// effective, permitted and inheritable sets, clears the ambient set (programs the daemon
/// runs, such as command receivers, get none) and, where CAP_SETPCAP allows, the bounding
/// set. Logs what was kept.
pub fn drop_after_attach(keep: &Keep) -> anyhow::Result<()> {
    let wanted: CapsHashSet = match keep {
        Keep::All => {
            let had = caps::read(None, CapSet::Effective).context("reading the capabilities")?;
            tracing::info!(kept = %names(&had), "capabilities kept: all (--capabilities.keep=all)");
            return Ok(());
        }
        Keep::Needed => needed(),
        Keep::Only(list) => list.iter().copied().collect(),
    };
    let permitted = caps::read(None, CapSet::Permitted).context("reading the capabilities")?;
    let kept: CapsHashSet = wanted.intersection(&permitted).copied().collect();
    let bounding = if caps::has_cap(None, CapSet::Effective, Capability::CAP_SETPCAP)
        .context("reading the capabilities")?
    {
        let over: Vec<Capability> = caps::read(None, CapSet::Bounding)
            .context("reading the bounding set")?
            .difference(&kept)
            .copied()
            .collect();
        for c in over {
            caps::drop(None, CapSet::Bounding, c)
                .with_context(|| format!("dropping {c} from the bounding set"))?;
        }
        "reduced to the kept set"
    } else {
        "unchanged (no CAP_SETPCAP to change it)"
    };
    caps::clear(None, CapSet::Ambient).context("clearing the ambient capabilities")?;
    caps::clear(None, CapSet::Inheritable).context("clearing the inheritable capabilities")?;
    caps::set(None, CapSet::Effective, &kept).context("lowering the effective capabilities")?;
    caps::set(None, CapSet::Permitted, &kept).context("lowering the permitted capabilities")?;
    let dropped: CapsHashSet = permitted.difference(&kept).copied().collect();
    let missing: CapsHashSet = wanted.difference(&permitted).copied().collect();
    tracing::info!(
        kept = %names(&kept),
        dropped = %names(&dropped),
        not_held = %names(&missing),
        bounding,
        "capabilities dropped after attach"
    );
    warn_about_other_threads(&kept);
    Ok(())
}

/// For a thread started before the drop that never needs a capability (it reads memory the
/// kernel maps into the process): gives up all of them for itself, the bounding set too where
/// it may.
pub fn drop_all_here() {
    if caps::has_cap(None, CapSet::Effective, Capability::CAP_SETPCAP).unwrap_or(false) {
        if let Err(e) = caps::clear(None, CapSet::Bounding) {
            tracing::debug!(error = %e, "cannot clear this thread's bounding set");
        }
    }
    for set in [
        CapSet::Ambient,
        CapSet::Effective,
        CapSet::Permitted,
        CapSet::Inheritable,
    ] {
        if let Err(e) = caps::clear(None, set) {
            tracing::debug!(error = %e, "cannot drop this thread's capabilities");
        }
    }
}

/// Threads started before the drop keep what they had: name any that hold more than `kept`
/// (a thread added early without `drop_all_here`).
fn warn_about_other_threads(kept: &CapsHashSet) {
    let mask: u64 = kept.iter().map(|c| c.bitmask()).fold(0, |a, b| a | b);
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return;
    };
    for task in tasks.flatten() {
        let status = std::fs::read_to_string(task.path().join("status")).unwrap_or_default();
        let Some(eff) = cap_field(&status, "CapEff:") else {
            continue;
        };
        if eff & !mask != 0 {
            let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
            tracing::warn!(
                thread = comm.trim(),
                cap_eff = format!("{eff:016x}"),
                "a thread kept capabilities the daemon dropped"
            );
        }
    }
}

/// A capability mask from a `/proc/<pid>/status` line such as `CapEff:\t000001ffffffffff`.
pub fn cap_field(status: &str, field: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
}

fn names(set: &CapsHashSet) -> String {
    let sorted: BTreeSet<String> = set.iter().map(|c| c.to_string().to_lowercase()).collect();
    if sorted.is_empty() {
        "none".into()
    } else {
        sorted.into_iter().collect::<Vec<_>>().join(",")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keep_values() {
        assert_eq!(parse_keep("needed"), Ok(Keep::Needed));
        assert_eq!(parse_keep("all"), Ok(Keep::All));
        assert_eq!(parse_keep("none"), Ok(Keep::Only(vec![])));
        assert_eq!(
            parse_keep("cap_sys_ptrace, DAC_READ_SEARCH"),
            Ok(Keep::Only(vec![
                Capability::CAP_SYS_PTRACE,
                Capability::CAP_DAC_READ_SEARCH
            ]))
        );
        let e = parse_keep("cap_sys_ptrace,cap_bogus").unwrap_err();
        assert!(e.contains("\"cap_bogus\""), "{e}");
        assert!(parse_keep("").is_err());
    }

    #[test]
    fn status_masks() {
        let s = "Name:\tmonitor\nCapInh:\t0000000000000000\nCapEff:\t0000000000080004\n";
        assert_eq!(cap_field(s, "CapEff:"), Some(0x80004));
        assert_eq!(cap_field(s, "CapBnd:"), None);
    }

    #[test]
    fn names_are_sorted_and_lowercase() {
        let set: CapsHashSet = [Capability::CAP_SYS_PTRACE, Capability::CAP_BPF]
            .into_iter()
            .collect();
        assert_eq!(names(&set), "cap_bpf,cap_sys_ptrace");
        assert_eq!(names(&CapsHashSet::new()), "none");
    }
}
