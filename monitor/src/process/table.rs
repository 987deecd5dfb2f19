//! The process table: every live process with its identity, group and kernel totals, and
//! per-group totals that survive exits and execs.
//!
//! Kernel totals are kept per thread group since the daemon attached. A process's totals
//! belong to its current group from `base` on; what came before an exec was credited to the
//! group of the previous image. When a process exits, its final totals (read once more from
//! the kernel map after the exit event, so the last slices are in) move into its group's
//! `retired` totals and its map entry is removed.

use std::{
    collections::{HashMap, HashSet},
    sync::Arc,
    time::{Duration, Instant},
};

use super::{
    budget::{Budget, Export, GroupState, OTHER},
    cgroup::Cgroups,
    counters::Counters,
    group::Grouper,
    identity::{comm_str, Identity, IdentityError, IdentityReader},
    resident::{self, Resident},
};

/// How long an exited pid is remembered, so a final slice charged after its entry was
/// folded (the exiting task still runs briefly) joins the same group.
const EXITED_MEMORY: Duration = Duration::from_secs(5);

#[derive(Clone, Debug)]
pub struct Proc {
    pub identity: Identity,
    pub group: Arc<str>,
    /// Part of `last` credited to earlier images (before the last exec).
    base: Counters,
    /// Latest kernel totals of the thread group.
    pub last: Counters,
    /// The `update` that last read a kernel entry for it.
    seen: u64,
    /// Its resident memory, as last read (`read_resident`).
    pub resident: Resident,
}

/// One `TASK_STATS` entry as read from the kernel.
pub struct KernelEntry {
    pub tgid: u32,
    pub counters: Counters,
    /// As the kernel has it (NUL-padded); read only for a process already gone.
    pub comm: [u8; 16],
    /// Its cgroup v2 id as the kernel took it; 0 when not known (an entry of another
    /// family's map, a slice in progress).
    pub cgroup_id: u64,
}

pub struct ProcessTable {
    reader: IdentityReader,
    cgroups: Cgroups,
    grouper: Grouper,
    procs: HashMap<u32, Proc>,
    groups: HashMap<Arc<str>, GroupState>,
    /// Exit seen, final read pending.
    exited: HashMap<u32, Arc<str>>,
    recently_exited: HashMap<u32, (Arc<str>, Instant)>,
    budget: Budget,
    /// Exits noticed only because a known process vanished from procfs (its event was lost).
    pub exits_without_event: u64,
    /// Counts `update`s (`Proc::seen`).
    generation: u64,
    page_size: u64,
}

impl ProcessTable {
    pub fn new(
        reader: IdentityReader,
        cgroups: Cgroups,
        grouper: Grouper,
        max_groups: usize,
    ) -> Self {
        Self {
            reader,
            cgroups,
            grouper,
            procs: HashMap::new(),
            groups: HashMap::new(),
            exited: HashMap::new(),
            recently_exited: HashMap::new(),
            budget: Budget::new(max_groups),
            exits_without_event: 0,
            generation: 0,
            page_size: resident::page_size(),
        }
    }

    fn group_mut(&mut self, name: &Arc<str>) -> &mut GroupState {
        self.groups.entry(name.clone()).or_default()
    }

    /// Starts following `p`: its part since `base` joins its group's live totals, which are
    /// kept as the sum over the group's processes as they change (not recomputed per
    /// refresh: on a host of idle processes a refresh costs what changed).
    fn insert(&mut self, tgid: u32, p: Proc) {
        let g = self.group_mut(&p.group);
        g.live += p.last.since(p.base);
        g.live_members += 1;
        g.resident_bytes += p.resident.bytes;
        if let Some(old) = self.procs.insert(tgid, p) {
            self.leave(&old);
        }
    }

    /// Stops following `tgid`; returns it.
    fn remove(&mut self, tgid: u32) -> Option<Proc> {
        let p = self.procs.remove(&tgid)?;
        self.leave(&p);
        Some(p)
    }

    /// Takes `p`'s part out of its group's live totals.
    fn leave(&mut self, p: &Proc) {
        let g = self.group_mut(&p.group);
        g.live = g.live.since(p.last.since(p.base));
        g.live_members = g.live_members.saturating_sub(1);
        g.resident_bytes = g.resident_bytes.saturating_sub(p.resident.bytes);
    }

    /// `tgid`'s identity from procfs (only its name when it is gone already), placed in its
    /// cgroup: `cgroup_id` as the kernel took it, or 0.
    fn read_identity(&mut self, tgid: u32, comm: &str, cgroup_id: u64) -> Identity {
        let mut id = self.reader.read(tgid).unwrap_or_else(|_| Identity {
            pid: tgid,
            comm: comm.into(),
            ..Default::default()
        });
        id.place = self.cgroups.place(tgid, cgroup_id);
        id
    }

    /// The group of a process gone before procfs was read: by its name and cgroup.
    fn group_of_gone(&mut self, tgid: u32, comm: &str, cgroup_id: u64) -> Arc<str> {
        let place = self.cgroups.place(tgid, cgroup_id);
        self.grouper.group_of_gone(comm, &place.unit)
    }

    /// A thread group replaced its image. `counters` are its kernel totals just before;
    /// `cgroup_id` is the cgroup it runs the new image in.
    pub fn on_exec(
        &mut self,
        tgid: u32,
        comm: &str,
        prev_comm: &str,
        counters: Counters,
        cgroup_id: u64,
    ) {
        let mut counters = counters;
        if let Some(p) = self.remove(tgid) {
            // The last reading may hold a running slice the kernel had not charged yet at
            // the exec: it stays with the old image, and the new one starts above it.
            counters = counters.max(p.last);
            let g = p.group.clone();
            self.group_mut(&g).retired += counters.since(p.base);
        } else if !prev_comm.is_empty() {
            let g = self.group_of_gone(tgid, prev_comm, cgroup_id);
            self.group_mut(&g).retired += counters;
        }
        let identity = self.read_identity(tgid, comm, cgroup_id);
        let group = self.grouper.group(&identity);
        self.group_mut(&group).retired.starts += 1;
        self.insert(
            tgid,
            Proc {
                identity,
                group,
                base: counters,
                last: counters,
                seen: 0,
                resident: Resident::default(),
            },
        );
    }

    /// A thread group leader exited (in cgroup `cgroup_id`); its totals are folded at the
    /// next `update`.
    pub fn on_exit(&mut self, tgid: u32, comm: &str, cgroup_id: u64) {
        let group = match self.procs.get(&tgid) {
            Some(p) => p.group.clone(),
            None => self.group_of_gone(tgid, comm, cgroup_id),
        };
        self.group_mut(&group).retired.exits += 1;
        self.exited.insert(tgid, group);
    }

    /// The OOM killer chose `tgid`: counted in its group (by name when it is not known).
    pub fn on_oom_kill(&mut self, tgid: u32, comm: &str) {
        let group = match self.procs.get(&tgid) {
            Some(p) => p.group.clone(),
            // The event names no cgroup (the victim is not the running task): procfs may.
            None => self.group_of_gone(tgid, comm, 0),
        };
        self.group_mut(&group).retired.oom_kills += 1;
    }

    /// Starts tracking a live process first seen with kernel totals `last`, in cgroup
    /// `cgroup_id` (0: not known).
    fn admit(&mut self, tgid: u32, mut identity: Identity, last: Counters, cgroup_id: u64) {
        identity.place = self.cgroups.place(tgid, cgroup_id);
        let group = self.grouper.group(&identity);
        let seen = self.generation;
        self.insert(
            tgid,
            Proc {
                identity,
                group,
                base: Counters::default(),
                last,
                seen,
                resident: Resident::default(),
            },
        );
    }

    /// A known process vanished from procfs without its exit event (the ring buffer
    /// overflowed): count the exit here and fold its totals.
    fn retire_without_event(&mut self, tgid: u32, group: Arc<str>, last: Counters, now: Instant) {
        self.group_mut(&group).retired.exits += 1;
        self.exits_without_event += 1;
        self.retire(tgid, group, last, now);
    }

    fn retire(&mut self, tgid: u32, group: Arc<str>, final_counters: Counters, now: Instant) {
        let base = self.remove(tgid).map(|p| p.base).unwrap_or_default();
        self.group_mut(&group).retired += final_counters.since(base);
        self.recently_exited.insert(tgid, (group, now));
    }

    /// Takes in the kernel map's contents and the pids now in procfs. Returns the tgids
    /// whose kernel entries were folded and must be deleted from the map.
    pub fn update(
        &mut self,
        entries: impl IntoIterator<Item = KernelEntry>,
        live: &HashSet<u32>,
        now: Instant,
    ) -> Vec<u32> {
        self.recently_exited
            .retain(|_, (_, t)| now.duration_since(*t) < EXITED_MEMORY);
        self.generation += 1;
        let generation = self.generation;
        let mut delete = Vec::new();
        for KernelEntry {
            tgid,
            counters,
            comm,
            cgroup_id,
        } in entries
        {
            if let Some(p) = self
                .procs
                .get_mut(&tgid)
                .filter(|_| !self.exited.contains_key(&tgid))
            {
                p.seen = generation;
                if !live.contains(&tgid) {
                    let group = p.group.clone();
                    self.retire_without_event(tgid, group, counters, now);
                    delete.push(tgid);
                } else if counters != p.last {
                    // A reading with a running slice can be ahead of the next one when a
                    // switch fell between its two map reads: never go back.
                    let last = p.last.max(counters);
                    let grown = last.since(p.last);
                    p.last = last;
                    let group = p.group.clone();
                    self.group_mut(&group).live += grown;
                }
            } else if let Some(group) = self.exited.remove(&tgid) {
                self.retire(tgid, group, counters, now);
                delete.push(tgid);
            } else if let Some((group, _)) = self.recently_exited.get(&tgid) {
                // A slice charged after the fold: the same process, already gone.
                let group = group.clone();
                self.group_mut(&group).retired += counters;
                delete.push(tgid);
            } else {
                match self.reader.read(tgid) {
                    Ok(identity) => self.admit(tgid, identity, counters, cgroup_id),
                    Err(IdentityError::Gone(_)) => {
                        // Gone before we knew it (its exit event lost), or a thread group
                        // living on after its leader exited. Its time is kept; no exit is
                        // counted, as which of the two it is cannot be told.
                        let group = self.group_of_gone(tgid, &comm_str(&comm), cgroup_id);
                        self.group_mut(&group).retired += counters;
                        delete.push(tgid);
                    }
                    Err(e) => tracing::debug!(tgid, error = %e, "cannot read process identity"),
                }
            }
        }
        // Exits of processes that never ran since we attached.
        for (tgid, group) in std::mem::take(&mut self.exited) {
            self.retire(tgid, group, Counters::default(), now);
        }
        // Processes gone without an event and without a kernel entry.
        let vanished: Vec<u32> = self
            .procs
            .iter()
            .filter(|(t, p)| p.seen != generation && !live.contains(t))
            .map(|(t, _)| *t)
            .collect();
        for tgid in vanished {
            if let Some(p) = self.procs.get(&tgid) {
                let (group, last) = (p.group.clone(), p.last);
                self.retire_without_event(tgid, group, last, now);
            }
        }
        // Live processes never seen running: listed with zero totals.
        for &tgid in live {
            if self.procs.contains_key(&tgid) || self.recently_exited.contains_key(&tgid) {
                continue;
            }
            if let Ok(identity) = self.reader.read(tgid) {
                self.admit(tgid, identity, Counters::default(), 0);
            }
        }
        super::shrink::map(&mut self.procs);
        super::shrink::map(&mut self.exited);
        super::shrink::map(&mut self.recently_exited);
        #[cfg(test)]
        self.check_live_sums();
        delete
    }

    /// Reads the resident memory of the processes whose reading is due (`resident`) into
    /// their groups' sums. A process gone since keeps its last reading until its exit is
    /// folded.
    pub fn read_resident(&mut self, now: Instant) {
        let (root, page) = (self.reader.root(), self.page_size);
        let mut idle = 0;
        for (&tgid, p) in &mut self.procs {
            match p.resident.due(tgid, p.last.cpu_ns, now) {
                None => continue,
                Some(false) if idle >= resident::IDLE_PER_REFRESH => continue,
                Some(false) => idle += 1,
                Some(true) => {}
            }
            let Some(bytes) = resident::read(root, tgid, page) else {
                continue;
            };
            let change = p.resident.set(bytes, p.last.cpu_ns, now);
            if change != 0 {
                let g = self.groups.entry(p.group.clone()).or_default();
                g.resident_bytes = g.resident_bytes.saturating_add_signed(change);
            }
        }
        #[cfg(test)]
        self.check_live_sums();
    }

    /// Resident memory of each exported group that has some (a kept group whose processes
    /// all exited, kernel threads, a process gone before its first reading: no data, no
    /// series), and of `other` (every other group's), in the export's order.
    pub fn resident(&self, export: &Export) -> Vec<(Arc<str>, u64)> {
        let mut out = Vec::with_capacity(export.groups.len() + 1);
        let mut kept = 0;
        for (name, _) in &export.groups {
            if let Some(g) = self
                .groups
                .get(name)
                .filter(|g| g.live_members > 0 && g.resident_bytes > 0)
            {
                out.push((name.clone(), g.resident_bytes));
                kept += g.resident_bytes;
            }
        }
        let all: u64 = self.groups.values().map(|g| g.resident_bytes).sum();
        if export.other.is_some() && all > kept {
            out.push((Arc::from(OTHER), all - kept));
        }
        out
    }

    /// The live totals kept as processes change equal their sum recomputed.
    #[cfg(test)]
    fn check_live_sums(&self) {
        let mut sums: HashMap<Arc<str>, (Counters, usize, u64)> = HashMap::new();
        for p in self.procs.values() {
            let e = sums.entry(p.group.clone()).or_default();
            e.0 += p.last.since(p.base);
            e.1 += 1;
            e.2 += p.resident.bytes;
        }
        for (name, g) in &self.groups {
            let want = sums.remove(name).unwrap_or_default();
            assert_eq!(
                (g.live, g.live_members, g.resident_bytes),
                want,
                "group {name}"
            );
        }
        assert!(sums.is_empty(), "groups missing: {:?}", sums.keys());
    }

    /// Per-group values under the series budget.
    pub fn export(&mut self, now: Instant) -> Export {
        let e = self.budget.apply(&mut self.groups, now);
        self.grouper.trim();
        e
    }

    /// Whether `tgid` is a process the table follows, or one that exited in the last few
    /// seconds (whose late kernel counts still join its group).
    pub fn knows(&self, tgid: u32) -> bool {
        self.procs.contains_key(&tgid)
            || self.exited.contains_key(&tgid)
            || self.recently_exited.contains_key(&tgid)
    }

    /// Whether a running slice of `tgid` may be added to its reading: a live process whose
    /// exit has not been seen (an exited one gets its last slice from the kernel).
    pub fn may_run(&self, tgid: u32) -> bool {
        !self.exited.contains_key(&tgid) && !self.recently_exited.contains_key(&tgid)
    }

    /// The group of live process `tgid`.
    pub fn group_of(&self, tgid: u32) -> Option<&Arc<str>> {
        self.procs.get(&tgid).map(|p| &p.group)
    }

    /// The group of `tgid`, live or exited in the last few seconds (whose last figures are
    /// still to be charged).
    pub fn group_ever(&self, tgid: u32) -> Option<&Arc<str>> {
        self.group_of(tgid)
            .or_else(|| self.exited.get(&tgid))
            .or_else(|| self.recently_exited.get(&tgid).map(|(g, _)| g))
    }

    pub fn processes(&self) -> impl Iterator<Item = &Proc> {
        self.procs.values()
    }

    pub fn identity_reader(&self) -> &IdentityReader {
        &self.reader
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::process::group::GroupBy;

    fn fixture(pids: &[(u32, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for (pid, comm) in pids {
            add(dir.path(), *pid, comm);
        }
        dir
    }

    fn add(root: &std::path::Path, pid: u32, comm: &str) {
        let p = root.join(pid.to_string());
        std::fs::create_dir_all(&p).unwrap();
        std::fs::write(
            p.join("stat"),
            format!(
                "{pid} ({comm}) S 1 {pid} {pid} 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 100 0 0 0 0 0 \
                 0 0 0 0 0 0 0 0 0 0 0 0 17 0 0 0 0 0 0 0 0 0 0 0 0 0 0\n"
            ),
        )
        .unwrap();
    }

    fn table(root: &std::path::Path) -> ProcessTable {
        ProcessTable::new(
            IdentityReader::new(root),
            Cgroups::none(),
            Grouper::new(GroupBy::Comm, vec![], ""),
            100,
        )
    }

    fn cpu(ns: u64) -> Counters {
        Counters {
            cpu_ns: ns,
            ..Default::default()
        }
    }

    fn entry(tgid: u32, ns: u64, comm: &str) -> KernelEntry {
        KernelEntry {
            tgid,
            counters: cpu(ns),
            comm: {
                let mut c = [0; 16];
                c[..comm.len()].copy_from_slice(comm.as_bytes());
                c
            },
            cgroup_id: 0,
        }
    }

    fn group(e: &Export, name: &str) -> Counters {
        e.groups
            .iter()
            .find(|g| &*g.0 == name)
            .map(|g| g.1)
            .unwrap_or_default()
    }

    #[test]
    fn an_exited_process_keeps_counting_in_its_group() {
        let dir = fixture(&[(10, "worker"), (11, "worker")]);
        let mut t = table(dir.path());
        let live: HashSet<u32> = [10, 11].into();
        t.update(
            [entry(10, 100, "worker"), entry(11, 50, "worker")],
            &live,
            Instant::now(),
        );
        assert_eq!(group(&t.export(Instant::now()), "worker").cpu_ns, 150);

        t.on_exit(11, "worker", 0);
        let live: HashSet<u32> = [10].into();
        let del = t.update(
            [entry(10, 120, "worker"), entry(11, 60, "worker")],
            &live,
            Instant::now(),
        );
        assert_eq!(del, vec![11]);
        let e = t.export(Instant::now());
        assert_eq!(group(&e, "worker").cpu_ns, 180);
        assert_eq!(group(&e, "worker").exits, 1);
        // The last slice of the exited process, charged after its entry was removed.
        let del = t.update(
            [entry(10, 120, "worker"), entry(11, 5, "worker")],
            &live,
            Instant::now(),
        );
        assert_eq!(del, vec![11]);
        assert_eq!(group(&t.export(Instant::now()), "worker").cpu_ns, 185);
        assert_eq!(t.processes().count(), 1);
    }

    #[test]
    fn a_process_born_and_gone_between_reads_still_counts() {
        let dir = fixture(&[]);
        let mut t = table(dir.path());
        t.on_exec(77, "short", "bash", cpu(3), 0);
        t.on_exit(77, "short", 0);
        let del = t.update([entry(77, 40, "short")], &HashSet::new(), Instant::now());
        assert_eq!(del, vec![77]);
        let e = t.export(Instant::now());
        assert_eq!(group(&e, "short").cpu_ns, 37);
        assert_eq!(group(&e, "short").starts, 1);
        assert_eq!(group(&e, "short").exits, 1);
        assert_eq!(group(&e, "bash").cpu_ns, 3);
    }

    #[test]
    fn a_lost_exit_event_is_noticed_from_procfs() {
        let dir = fixture(&[(5, "lost")]);
        let mut t = table(dir.path());
        t.update([entry(5, 10, "lost")], &[5].into(), Instant::now());
        let del = t.update([entry(5, 12, "lost")], &HashSet::new(), Instant::now());
        assert_eq!(del, vec![5]);
        let e = t.export(Instant::now());
        assert_eq!(group(&e, "lost").cpu_ns, 12);
        assert_eq!(group(&e, "lost").exits, 1);
        assert_eq!(t.exits_without_event, 1);
    }

    #[test]
    fn exec_moves_later_time_to_the_new_group() {
        let dir = fixture(&[(9, "sh")]);
        let mut t = table(dir.path());
        t.update([entry(9, 10, "sh")], &[9].into(), Instant::now());
        add(dir.path(), 9, "app");
        t.on_exec(9, "app", "sh", cpu(15), 0);
        t.update([entry(9, 40, "app")], &[9].into(), Instant::now());
        let e = t.export(Instant::now());
        assert_eq!(group(&e, "sh").cpu_ns, 15);
        assert_eq!(group(&e, "app").cpu_ns, 25);
        assert_eq!(group(&e, "app").starts, 1);
        let p = t.processes().next().unwrap();
        assert_eq!(p.last.cpu_ns, 40);
        assert_eq!(&*p.group, "app");
    }

    #[test]
    fn a_zombie_is_not_listed_and_its_exit_counts_once() {
        let dir = fixture(&[(30, "parent")]);
        let mut t = table(dir.path());
        t.update([entry(30, 10, "parent")], &[30].into(), Instant::now());
        t.on_exit(30, "parent", 0);
        // Not reaped yet: still in procfs, as a zombie.
        std::fs::write(
            dir.path().join("30/stat"),
            "30 (parent) Z 1 30 30 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 100 0 0 0 0 0 0 0 0 0 0 0 \
             0 0 0 0 0 0 17 0 0 0 0 0 0 0 0 0 0 0 0 0 0\n",
        )
        .unwrap();
        let later = Instant::now() + EXITED_MEMORY * 2;
        t.update([entry(30, 11, "parent")], &[30].into(), Instant::now());
        t.update([entry(30, 1, "parent")], &[30].into(), later);
        assert_eq!(t.processes().count(), 0);
        t.update([], &HashSet::new(), later);
        let e = t.export(later);
        assert_eq!(group(&e, "parent").exits, 1);
        assert_eq!(group(&e, "parent").cpu_ns, 12);
        assert_eq!(t.exits_without_event, 0);
    }

    /// Born and gone between two reads, a process's unit is known only by the cgroup id the
    /// kernel took: it is what groups it under `--process.group-by unit`.
    #[test]
    fn a_short_lived_process_keeps_its_unit() {
        let proc = fixture(&[(10, "nginx")]);
        std::fs::create_dir_all(proc.path().join("self")).unwrap();
        std::fs::write(
            proc.path().join("self/mountinfo"),
            "30 23 0:26 / /sys/fs/cgroup rw,relatime - cgroup2 cgroup2 rw\n",
        )
        .unwrap();
        std::fs::write(
            proc.path().join("10/cgroup"),
            "0::/system.slice/nginx.service\n",
        )
        .unwrap();
        let sys = tempfile::tempdir().unwrap();
        let job = sys.path().join("fs/cgroup/system.slice/job.service");
        std::fs::create_dir_all(&job).unwrap();
        let id = std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(&job).unwrap());
        let mut t = ProcessTable::new(
            IdentityReader::new(proc.path()),
            Cgroups::new(proc.path(), sys.path()),
            Grouper::new(GroupBy::Unit, vec![], ""),
            100,
        );
        t.on_exec(77, "job", "sh", cpu(0), id);
        t.on_exit(77, "job", id);
        let placed = |tgid, ns| KernelEntry {
            cgroup_id: id,
            ..entry(tgid, ns, "job")
        };
        // 78 was never seen by an event: its entry's id places it.
        let del = t.update(
            [placed(77, 40), placed(78, 30)],
            &[10].into(),
            Instant::now(),
        );
        assert_eq!(del, vec![77, 78]);
        let e = t.export(Instant::now());
        let job = group(&e, "job.service");
        assert_eq!((job.cpu_ns, job.starts, job.exits), (70, 1, 1));
        // A live process seen only in procfs: its /proc/<pid>/cgroup.
        let p = t.processes().next().unwrap();
        assert_eq!(&*p.group, "nginx.service");
        assert_eq!(&*p.identity.place.path, "/system.slice/nginx.service");
    }

    #[test]
    fn idle_live_processes_are_listed() {
        let dir = fixture(&[(1, "init"), (2, "kthreadd")]);
        let mut t = table(dir.path());
        t.update([], &[1, 2].into(), Instant::now());
        assert_eq!(t.processes().count(), 2);
    }
}
