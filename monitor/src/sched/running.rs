//! The slices in progress: CPU time a running thread has used since it was switched in,
//! which the kernel charges only at its switch-out. Adding it when the counters are read
//! makes a process's CPU time right at any instant, not only after it next leaves a CPU.

use std::{collections::HashMap, path::Path};

use super::kernel::Running;
use crate::process::table::KernelEntry;

/// The thread group of thread `tid`, from `<procfs>/<tid>/status` (procfs answers for
/// thread ids too, though it does not list them).
pub fn tgid_of(procfs: &Path, tid: u32) -> Option<u32> {
    let status = std::fs::read_to_string(procfs.join(tid.to_string()).join("status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("Tgid:"))
        .and_then(|v| v.trim().parse().ok())
}

/// Adds each running slice to its thread group's entry. Only groups `live` accepts are
/// charged: a process that has exited (or is exiting) gets its last slice from the kernel
/// once it is switched out, and must not get it twice. A live group without an entry yet
/// (switched in, never out) gets one.
pub fn add_slices(
    entries: &mut Vec<KernelEntry>,
    running: &[Running],
    mut resolve: impl FnMut(u32) -> Option<u32>,
    live: impl Fn(u32) -> bool,
) {
    // At most one slice per CPU: a small map of them, and one pass over the entries.
    let mut slices: HashMap<u32, u64> = HashMap::new();
    for r in running {
        let tgid = if r.tgid != 0 {
            Some(r.tgid)
        } else {
            resolve(r.tid)
        };
        if let Some(tgid) = tgid.filter(|&t| t != 0 && live(t)) {
            *slices.entry(tgid).or_default() += r.ns;
        }
    }
    if slices.is_empty() {
        return;
    }
    for e in entries.iter_mut() {
        if let Some(ns) = slices.remove(&e.tgid) {
            e.counters.cpu_ns += ns;
        }
    }
    // Live groups without an entry yet (switched in, never out).
    for (tgid, ns) in slices {
        entries.push(KernelEntry {
            tgid,
            counters: crate::process::counters::Counters {
                cpu_ns: ns,
                ..Default::default()
            },
            comm: [0; 16],
            cgroup_id: 0,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::process::counters::Counters;

    fn entry(tgid: u32, cpu_ns: u64) -> KernelEntry {
        KernelEntry {
            tgid,
            counters: Counters {
                cpu_ns,
                ..Default::default()
            },
            comm: [b'x'; 16],
            cgroup_id: 0,
        }
    }

    #[test]
    fn running_slices_join_their_group_once() {
        let mut e = vec![entry(10, 100), entry(20, 5)];
        let running = [
            Running {
                tgid: 10,
                tid: 10,
                ns: 7,
            },
            // Another thread of 10 on a second CPU, named by thread id only.
            Running {
                tgid: 0,
                tid: 11,
                ns: 3,
            },
            // Exited: its slice comes from the kernel at its last switch-out.
            Running {
                tgid: 20,
                tid: 20,
                ns: 1_000,
            },
            // Live, never switched out yet.
            Running {
                tgid: 30,
                tid: 30,
                ns: 9,
            },
        ];
        add_slices(
            &mut e,
            &running,
            |tid| (tid == 11).then_some(10),
            |t| t != 20,
        );
        let cpu = |t: u32| e.iter().find(|x| x.tgid == t).unwrap().counters.cpu_ns;
        assert_eq!(cpu(10), 110);
        assert_eq!(cpu(20), 5);
        assert_eq!(cpu(30), 9);
        assert_eq!(e.len(), 3);
    }

    #[test]
    fn tgid_comes_from_status() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("12")).unwrap();
        std::fs::write(
            dir.path().join("12/status"),
            "Name:\tw\nUmask:\t0022\nState:\tR (running)\nTgid:\t10\nNgid:\t0\nPid:\t12\n",
        )
        .unwrap();
        assert_eq!(tgid_of(dir.path(), 12), Some(10));
        assert_eq!(tgid_of(dir.path(), 13), None);
    }
}
