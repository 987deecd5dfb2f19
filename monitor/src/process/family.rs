//! Joining a family's own per-process map (`NET_STATS`, `BLOCK_TASKS`: keyed by tgid like
//! `TASK_STATS`) to the scheduler's entries, and what to drop from it.

use std::collections::{HashMap, HashSet};

use super::{counters::Counters, table::KernelEntry};

/// Sets each group's family counters on its entry (`set`). A group without a scheduler
/// entry is added on its own when the process table `knows` it (a process that exited
/// moments ago: its last I/O or socket close comes after the exit). Returns the tgids whose
/// family entries are stale (neither known nor alive), for the caller to remove.
pub fn merge<V: Copy>(
    entries: &mut Vec<KernelEntry>,
    family: impl IntoIterator<Item = (u32, V)>,
    live: &HashSet<u32>,
    knows: impl Fn(u32) -> bool,
    set: impl Fn(&mut Counters, V),
) -> Vec<u32> {
    let mut by_tgid: HashMap<u32, V> = family.into_iter().collect();
    for e in entries.iter_mut() {
        if let Some(v) = by_tgid.remove(&e.tgid) {
            set(&mut e.counters, v);
        }
    }
    let mut stale = Vec::new();
    for (tgid, v) in by_tgid {
        if knows(tgid) {
            let mut counters = Counters::default();
            set(&mut counters, v);
            entries.push(KernelEntry {
                tgid,
                counters,
                comm: [0; 16],
                cgroup_id: 0,
            });
        } else if !live.contains(&tgid) {
            stale.push(tgid);
        }
    }
    stale
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn joins_known_groups_and_names_the_stale() {
        let mut entries = vec![KernelEntry {
            tgid: 1,
            counters: Counters::default(),
            comm: [b'a'; 16],
            cgroup_id: 0,
        }];
        let stale = merge(
            &mut entries,
            [(1, 5u64), (2, 7), (3, 9), (4, 1)],
            &[4].into(),
            |t| t == 2,
            |c, v| c.cpu_ns = v,
        );
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[0].counters.cpu_ns, 5);
        assert_eq!((entries[1].tgid, entries[1].counters.cpu_ns), (2, 7));
        // 3 is gone and unknown; 4 is alive (its scheduler entry just not made yet).
        assert_eq!(stale, vec![3]);
    }
}
